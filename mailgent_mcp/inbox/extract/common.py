"""Text as extraction reads it (normalised), the size limits, and the helpers that build its regular expressions."""

from __future__ import annotations

import re
import unicodedata

TEXT_CAP = 4000
MAX_HTML_CHARS = 2_000_000  # beyond this the HTML is cut before parsing (bounded work)
MAX_TEXT_CHARS = 200_000  # and the plain text beyond this
MAX_SCAN_CHARS = 60_000  # codes and plain-text links are looked for in this much text



_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad"
                                    "\u034f\u180e\u061c"), None)
# NFKC would make a full-width comma "，" a bare ",", gluing "123456，10分钟" into one decimal number.
_ZERO_WIDTH[ord("，")] = ", "
_ZERO_WIDTH_CHARS = re.compile("[" + "".join(map(chr, _ZERO_WIDTH)) + "]")  # the keys of _ZERO_WIDTH
ENTITY = re.compile(r"&(?:[a-zA-Z]{2,8}|#\d{2,6}|#x[0-9a-fA-F]{2,5});")
# normalise's whitespace patterns match only where they change something, and each begins with
# a plain character or class, so that re jumps to where a match may begin (3 times faster):
# runs of two or more spaces, or one other than " " (each becomes " ");
_SPACES = re.compile(r"[^\S\n](?:[^\S\n]+|(?<=[^ ]))")
# spaces before or after a line break (which stays alone);
_LINE_EDGE_SPACES = re.compile(r"\s(?:(?<=[^\S\n])[^\S\n]*\n[^\S\n]*|(?<=\n)[^\S\n]+)")
# and three or more line breaks (two stay).
_BLANK_LINES = re.compile(r"\n\n\n+")
# Whitespace that the two substitutions of normalise would change: other than a space, or next to
# whitespace, or at the start of a line. Most text has none, and this one search costs less than they do.
_UNTIDY_SPACE = re.compile(r"[^\S\n](?:(?<=[^ ])|(?=\s)|(?<=\n.))")

# The word patterns of this module are written in lower case and run without re.IGNORECASE
# on text lowered by fold_case (see word_pattern too): Python's re matches a case-insensitive alternation character by
# character, without the jump to a possible first character it makes otherwise (several times
# slower on these multilingual alternations). _FOLD folds what re.IGNORECASE folds and str.lower
# does not (dotless i, long s, old Cyrillic letter forms), and keeps "İ" one character.
_FOLD = str.maketrans({"İ": "i", "ı": "i", "ſ": "s", "ᲀ": "в", "ᲁ": "д", "ᲂ": "о", "ᲃ": "с", "ᲄ": "т", "ᲅ": "т",
                       "ᲆ": "ъ"})


_FOLDED = re.compile("[İıſᲀᲁᲂᲃᲄᲅᲆ]")  # the keys of _FOLD
WORD_CHAR = re.compile(r"\w")


def fold_case(text: str) -> str:
    """text in lower case with every character in its place, so offsets into it are offsets into text."""
    # str.translate with a dict costs about 40 ns a character; most text holds none of its keys.
    return text.translate(_FOLD).lower() if _FOLDED.search(text) else text.lower()


def word_pattern(pattern: str) -> re.Pattern[str]:
    """A lower-case word pattern compiled for fold_case()ed text, fast to search: see _fast_alternation."""
    return re.compile(_fast_alternation(pattern))


def _fast_alternation(pattern: str) -> str:
    r"""pattern rewritten to match the same strings at the same places, searched several times faster.

    Python's re jumps straight to the characters that can begin a match only when every
    alternative begins with a plain character; a leading \b ("at the start of a word") or
    look-behind defeats that. So such a look-behind is moved behind the first character:
    r"\bcode" becomes r"c(?<!\w.)ode", which matches exactly the same strings. Then, where
    the pattern stops at a possible first character, re tries its alternatives one by one:
    alternatives sharing a first character are grouped, "c(?:ode|onfirm)" for "code|confirm",
    so that it tries one per first character (alternatives that begin with different characters
    cannot match at the same place, so this keeps which one matches). Case-sensitive patterns only.
    """
    return _factor([_lead_with_literal(alt) for alt in top_level_alternatives(pattern)])


_LEADING_GUARD = re.compile(r"\\b|\(\?<!(?:\\w|\[a-z\])\)")  # \b, (?<!\w) or (?<![a-z]) at the start


def _lead_with_literal(alternative: str) -> str:
    guard = _LEADING_GUARD.match(alternative)
    lead = _plain_lead(alternative[guard.end():]) if guard else None
    if guard is None or lead is None or (guard.group() == r"\b" and not WORD_CHAR.match(lead[0])):
        return alternative
    first, rest = lead
    before = r"\w" if guard.group() == r"\b" else guard.group()[4:-1]
    return f"{first}(?<!{before}.){rest}"


def _plain_lead(alternative: str) -> tuple[str, str] | None:
    """(first character, the rest) of an alternative that begins with one plain character, not repeated.

    The first character may be escaped ("\\(" for "("), not a class ("\\d").
    """
    size = 2 if alternative[:1] == "\\" and alternative[1:2] in _ESCAPED_PLAIN else 1
    if not alternative or (size == 1 and alternative[0] in "\\()[].?*+{|^$") or alternative[size:size + 1] in (
            "?", "*", "+", "{"):
        return None
    return alternative[:size], alternative[size:]


def guarded_words(words: str, guard: str) -> str:
    """The alternation words, each only where the character before it is not one of guard, searched fast.

    Like _fast_alternation, but the look-behind is tested once, right after the first
    character, before the alternatives: inside a word it fails at once, and only at a
    word's start does re try the alternatives that begin with that character (a look-behind
    for it picks them): for a long list of words that begin with most letters, faster than
    _fast_alternation's form.
    """
    groups: dict[str, list[str]] = {}
    for word in top_level_alternatives(words):
        lead = _plain_lead(word)
        if lead is None:
            raise ValueError(f"{word!r} does not begin with a plain character")
        groups.setdefault(lead[0], []).append(lead[1])
    firsts = "".join(re.escape(first) for first in groups)
    picks = "|".join(f"(?<={re.escape(first)})" + (rests[0] if len(rests) == 1 else f"(?:{_factor(rests)})")
                     for first, rests in groups.items())
    return f"[{firsts}](?<!{guard}.)(?:{picks})"


_ESCAPED_PLAIN = frozenset("\\()[].?*+{}|^$-#&~ ")


def _factor(alternatives: list[str]) -> str:
    """alternatives joined with |, those with the same plain first character grouped (recursively)."""
    leads = [_plain_lead(alt) for alt in alternatives]
    if len(alternatives) < 2 or None in leads:
        return "|".join(alternatives)
    groups: dict[str, list[str]] = {}
    for first, rest in filter(None, leads):
        groups.setdefault(first, []).append(rest)
    return "|".join(first + (rests[0] if len(rests) == 1 else f"(?:{_factor(rests)})") for first, rests in groups.items())


def top_level_alternatives(pattern: str) -> list[str]:
    """pattern split at the | that are outside groups and character classes."""
    alternatives, depth, start, i = [], 0, 0, 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 1
        elif char == "[":
            i = pattern.index("]", i + 1)  # the classes of these patterns hold no "]"
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            alternatives.append(pattern[start:i])
            start = i + 1
        i += 1
    return [*alternatives, pattern[start:]]


def normalise(text: str) -> str:
    """NFKC (full-width digits and letters become ASCII), no zero-width characters, tidy whitespace."""
    if not text.isascii():  # ASCII is NFKC already and holds none of the characters dropped
        if _ZERO_WIDTH_CHARS.search(text):  # translate with a dict costs about 40 ns a character
            text = text.translate(_ZERO_WIDTH)
        text = unicodedata.normalize("NFKC", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Spaces around line breaks go (each line stripped), then runs of them become one: the
    # same as stripping every line of the split text, without a Python step per line.
    if _UNTIDY_SPACE.search(text):
        text = _SPACES.sub(" ", _LINE_EDGE_SPACES.sub("\n", text))
    return (_BLANK_LINES.sub("\n\n", text) if "\n\n\n" in text else text).strip()
