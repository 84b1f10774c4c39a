"""What an agent needs from a verification mail: readable text, one-time codes, links, sender trust.

Plain functions over the parsed fields of one message (subject, text/plain, text/html,
From, Authentication-Results); they know nothing of MCP, IMAP or the cache. `parse.py`
calls `extract` in its worker process, inside the parse time limit, so hostile HTML
cannot stall the server; `inbox reindex` calls it again on the cached fields.

- Text: HTML goes through selectolax (lexbor, a C HTML5 parser: about 5x faster than
  html-text and 15x faster than inscriptis on a 300 KB mail here), parsed into a kept
  document (see _parse_html), and one walk of its tree that skips style, script, images
  and whatever a reader of the mail would not see (hidden by an inline style or a rule of
  its <style> blocks, off the screen, tiny, or in the colour behind it: see _look), and
  keeps the target of a verify, sign-in or reset link beside its text. HTML that leaves
  thousands of elements open (lexbor's tree building is quadratic in depth) is not
  rendered at all (see html_to_text). Quoted replies, signatures and legal footers are
  cut; the rest is NFKC-normalised and capped with a note.
- Codes: candidates of known shapes in the subject and the text (dates, times, prices,
  phone numbers, card numbers, URLs masked first), kept only near a one-time-code
  keyword of one of 11+ languages and away from order, invoice, phone, card, postcode
  and promotion words. A code is returned as one types it: group separators dropped
  ("123-456" -> "123456") and a letter prefix printed before the digits dropped
  ("G-123456" -> "123456": the prefix is a label the service shows beside its box).
- Links: from both bodies; ranked verify, magic_signin, reset, other, unsubscribe.
  Never opened: a tracking redirect is returned as given (its inner URL only helps
  to classify it).
- Auth: Authentication-Results headers are read only from an authserv-id the account
  trusts (its own receiving server: RFC 8601 §5), starting at the topmost such header;
  a header of any other id may be the sender's. Where no trusted header vouches, the
  results of DKIM verified in the parser worker (dkim_check.py) may. The headers are read
  by a small RFC 8601 tokenizer here (authres took about 1 ms a header). DMARC-style
  relaxed alignment of the From domain with a passing DKIM or SPF domain uses the bundled
  Public Suffix List, offline.

Most regular expressions here are written so that Python's re can jump to where a match
may begin (see _fast_alternation); setup.py compiles this module with mypyc where it can
(see native_module at the end).
"""

from __future__ import annotations

import bisect
import html as html_lib
import itertools
import re
import threading
import unicodedata
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import webcolors

# The results, re-exported: they live apart so that the compiled form of this module builds them too.
from mailgent_mcp.inbox.extract_types import EXTRACTOR_VERSION as EXTRACTOR_VERSION
from mailgent_mcp.inbox.extract_types import Code as Code
from mailgent_mcp.inbox.extract_types import Extraction as Extraction
from mailgent_mcp.inbox.extract_types import Link as Link
from mailgent_mcp.inbox.extract_types import Rendered as Rendered
from mailgent_mcp.inbox.extract_types import SenderAuth as SenderAuth

TEXT_CAP = 4000
MAX_HTML_CHARS = 2_000_000  # beyond this the HTML is cut before parsing (bounded work)
MAX_TEXT_CHARS = 200_000  # and the plain text beyond this
MAX_SCAN_CHARS = 60_000  # codes and plain-text links are looked for in this much text


def extract(*, subject: str = "", text: str = "", html: str = "", from_addr: str | None = None,
            auth_results: Sequence[str] = (), trusted_authserv_ids: Sequence[str] = (),
            local_dkim: Sequence[tuple[str, str]] | None = None, cap: int = TEXT_CAP) -> Extraction:
    """Extract text, codes, links and sender trust from one message's parsed fields.

    trusted_authserv_ids: whose Authentication-Results count (none by default); local_dkim:
    (d= domain, result) of the DKIM signatures verified here, when they were.
    """
    rendered = html_to_text(html) if html.strip() else None
    text = text[:MAX_TEXT_CHARS]
    plain = normalise(html_lib.unescape(text)) if _ENTITY.search(text) else normalise(text)
    plain_main, plain_quoted = split_quoted(plain)
    if rendered is not None and _prefer_html(plain_main, rendered.main):
        main, quoted = split_quoted(rendered.main)
        quoted = "\n".join(q for q in (quoted, rendered.quoted) if q)
    else:
        main, quoted = plain_main, plain_quoted
    main = strip_footer(strip_signature(main))
    subject = normalise(subject)
    links = find_links(rendered.anchors if rendered else [], plain, subject)
    codes = find_codes(subject, main, quoted)
    auth = sender_auth(auth_results, from_addr, trusted_authserv_ids, local_dkim)
    # A mail of quoted lines only (a forward) shows them, not nothing.
    return Extraction(cap_text(main or quoted, cap), tuple(codes), tuple(links), auth)


# -- text ---------------------------------------------------------------------------------

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad"
                                    "\u034f\u180e\u061c"), None)
# NFKC would make a full-width comma "，" a bare ",", gluing "123456，10分钟" into one decimal number.
_ZERO_WIDTH[ord("，")] = ", "
_ZERO_WIDTH_CHARS = re.compile("[" + "".join(map(chr, _ZERO_WIDTH)) + "]")  # the keys of _ZERO_WIDTH
_ENTITY = re.compile(r"&(?:[a-zA-Z]{2,8}|#\d{2,6}|#x[0-9a-fA-F]{2,5});")
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
# on text lowered by _lower (see _word_pattern too): Python's re matches a case-insensitive alternation character by
# character, without the jump to a possible first character it makes otherwise (5-8x slower
# on these multilingual alternations). _FOLD folds what re.IGNORECASE folds and str.lower
# does not (dotless i, long s, old Cyrillic letter forms), and keeps "İ" one character.
_FOLD = str.maketrans({"İ": "i", "ı": "i", "ſ": "s", "ᲀ": "в", "ᲁ": "д", "ᲂ": "о", "ᲃ": "с", "ᲄ": "т", "ᲅ": "т",
                       "ᲆ": "ъ"})


_FOLDED = re.compile("[İıſᲀᲁᲂᲃᲄᲅᲆ]")  # the keys of _FOLD
_WORD_CHAR = re.compile(r"\w")


def _lower(text: str) -> str:
    """text in lower case with every character in its place, so offsets into it are offsets into text."""
    # str.translate with a dict costs about 40 ns a character; most text holds none of its keys.
    return text.translate(_FOLD).lower() if _FOLDED.search(text) else text.lower()


def _word_pattern(pattern: str) -> re.Pattern[str]:
    """A lower-case word pattern compiled for _lower()ed text, fast to search: see _fast_alternation."""
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
    return _factor([_lead_with_literal(alt) for alt in _top_level_alternatives(pattern)])


_LEADING_GUARD = re.compile(r"\\b|\(\?<!(?:\\w|\[a-z\])\)")  # \b, (?<!\w) or (?<![a-z]) at the start


def _lead_with_literal(alternative: str) -> str:
    guard = _LEADING_GUARD.match(alternative)
    lead = _plain_lead(alternative[guard.end():]) if guard else None
    if guard is None or lead is None or (guard.group() == r"\b" and not _WORD_CHAR.match(lead[0])):
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


def _guarded_words(words: str, guard: str) -> str:
    """The alternation words, each only where the character before it is not one of guard, searched fast.

    Like _fast_alternation, but the look-behind is tested once, right after the first
    character, before the alternatives: inside a word it fails at once, and only at a
    word's start does re try the alternatives that begin with that character (a look-behind
    for it picks them). For a long list of words that begin with most letters (a quarter
    faster than _fast_alternation's form).
    """
    groups: dict[str, list[str]] = {}
    for word in _top_level_alternatives(words):
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


def _top_level_alternatives(pattern: str) -> list[str]:
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


_SKIP_TAGS = frozenset({"head", "style", "script", "noscript", "template", "title", "meta", "link", "img", "svg",
                        "picture", "video", "audio", "object", "iframe", "map", "button-hidden", "-comment"})
_BLOCK_TAGS = frozenset({"p", "div", "br", "tr", "table", "tbody", "thead", "tfoot", "h1", "h2", "h3", "h4", "h5",
                         "h6", "ul", "ol", "li", "section", "article", "header", "footer", "main", "aside", "center",
                         "blockquote", "pre", "hr", "dl", "dt", "dd", "address", "form", "fieldset", "nav", "body"})
_CELL_TAGS = frozenset({"td", "th"})
_PARAGRAPH_TAGS = frozenset({"p", "table", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "hr", "ul", "ol"})
# What is written after a cell, a paragraph or another block.
_SEPARATOR_AFTER = {**dict.fromkeys(_BLOCK_TAGS, "\n"), **dict.fromkeys(_PARAGRAPH_TAGS, "\n\n"),
                    **dict.fromkeys(_CELL_TAGS, "\t")}
_QUOTE_CLASS = re.compile(r"gmail_quote|yahoo_quoted|moz-cite-prefix|protonmail_quote|OutlookMessageHeader")
_QUOTE_ID = re.compile(r"divRplyFwdMsg|appendonsend|reply-intro|isForwardContent")


# -- what a reader of the HTML sees ------------------------------------------------------------
#
# A mail client hides an element by its inline style, by a rule of the mail's <style> blocks
# (simple selectors only: tag, .class, #id and their compounds, in lists; rules inside an
# @media query that a desktop screen matches count too), or draws its text in the colour of
# what lies behind it. _look tells, for one element, whether it is hidden and which text and
# background colours it sets; html_to_text carries the colours down the tree. Colours are
# 0xRRGGBB ints, or one of these:
_UNSET = -1  # the element does not set it (a text colour is inherited, a background shows through)
_TRANSPARENT = -2  # transparent text: never seen
_PICTURE = -3  # a background image or gradient: text on it may be seen whatever its colour
_INHERIT = -4  # the text colour of the parent, said outright ("inherit": a link then is not blue)
_WHITE, _BLACK, _LINK_BLUE = 0xFFFFFF, 0x000000, 0x0000EE  # a mail client's defaults
_MIN_CONTRAST = 1.2  # WCAG contrast ratio below which text is taken for unseen (#fefefe on white: 1.01)
_FAR = 500.0  # px: an offset this far out puts an element off the screen
_TINY = 2.0  # px: a font or box smaller than this shows nothing legible
_BODY_PX = 16.0  # a mail client's default font size
_DESKTOP_WIDTH = 800.0  # px: the screen @media queries are evaluated for

_DECLARATION = re.compile(r"([a-z-]+)\s*:\s*([^;]*)")
_LENGTH = re.compile(r"(-?(?:\d+\.?\d*|\.\d+))\s*(px|pt|em|rem|%|)\s*$")
_PX_PER = {"px": 1.0, "": 1.0, "pt": 4 / 3, "em": 16.0, "rem": 16.0, "%": 0.16}  # % of a 16px font
_CLIP_HIDES = re.compile(r"rect\(\s*(?:-?[01](?:\.\d+)?(?:px)?\s*,?\s*){4}\)")
_CLIP_PATH_HIDES = re.compile(r"inset\(\s*(?:[5-9]\d|100)(?:\.\d+)?%|circle\(\s*0(?:px|%)?\s*[)a]")
_TRANSFORM_HIDES = re.compile(r"scale[xy]?\(\s*0*\.?0*\s*[,)]|translate[xy]?\(\s*-\d{4,}")
_HEX_COLOUR = re.compile(r"#(?:[0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})\Z")
_COLOUR_TOKEN = re.compile(r"#[0-9a-f]{3,8}\b|(?:rgba?|hsla?)\([^)]*\)|[a-z]+")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)%?")
_CSS_ESCAPE = re.compile(r"\\(?:([0-9a-f]{1,6})\s?|(.))", re.S)
_IMPORTANT = re.compile(r"\s*!\s*important")


def _declarations(style: str) -> dict[str, str]:
    """The declarations of a style attribute or rule body, lower case, "!important" kept at the end of a value."""
    style = style[:4000].lower()
    if "/*" in style:
        style = _CSS_COMMENT.sub(" ", style)
    if "\\" in style:  # "d\isplay: n\6f ne" is "display: none" to a browser
        style = _CSS_ESCAPE.sub(_css_unescape, style)
    decls = {}
    for name, value in _DECLARATION.findall(style):
        value = " ".join(value.split())
        decls[name] = _IMPORTANT.sub(" !important", value) if "!" in value else value
    return decls


def _css_unescape(escape: re.Match[str]) -> str:
    code = escape.group(1)
    if code is None:
        return escape.group(2)
    number = int(code, 16)
    return chr(number) if 0 < number <= 0x10FFFF and not 0xD800 <= number <= 0xDFFF else "\ufffd"


def _px(value: str) -> float | None:
    """A CSS length in px (em and % of a 16px font), or None when it is not a plain length."""
    found = _LENGTH.match(value.replace("!important", "").strip())
    if found is None:
        return None
    return float(found.group(1)) * _PX_PER[found.group(2)]


def _below(decls: dict[str, str], name: str, limit: float) -> bool:
    value = decls.get(name)
    px = _px(value) if value else None
    return px is not None and px < limit


_HIDING = frozenset({"display", "visibility", "mso-hide", "content-visibility", "opacity", "max-height",
                     "text-indent", "overflow", "overflow-y", "margin-left", "margin-top", "position",
                     "transform", "clip-path"})  # the properties _hides looks at first


def _hides(decls: dict[str, str]) -> bool:
    """Whether declarations hide their element: not displayed, transparent, tiny, clipped away or off the screen.

    Not a tiny font: an element inside may set its size again (a font-size:0 wrapper closes
    the gaps between inline blocks, whose text is of normal size), so the walk decides that
    text by text, as it does colours (see _font_px).
    """
    if decls.keys().isdisjoint(_HIDING):
        return False  # most styles: colours, padding, borders
    get = decls.get
    if get("display", "").startswith("none") or get("visibility", "").startswith(("hidden", "collapse")):
        return True
    if get("mso-hide", "").startswith("all") or get("content-visibility", "").startswith("hidden"):
        return True
    opacity = _NUMBER.match(get("opacity", ""))
    if opacity is not None and float(opacity.group().rstrip("%")) / (100 if "%" in opacity.group() else 1) < 0.05:
        return True
    if _below(decls, "max-height", _TINY) or _below(decls, "text-indent", -_FAR):
        return True
    overflow_hidden = get("overflow", "").startswith(("hidden", "clip")) or "hidden" in get("overflow-y", "")
    if overflow_hidden and (_below(decls, "height", _TINY) or _below(decls, "width", _TINY)
                            or _below(decls, "max-width", _TINY)):
        return True
    if _below(decls, "margin-left", -2 * _FAR) or _below(decls, "margin-top", -2 * _FAR):
        return True
    if get("position", "").startswith(("absolute", "fixed")) and (
            any(_below(decls, side, -_FAR) for side in ("left", "top", "right"))
            or _CLIP_HIDES.search(get("clip", ""))):
        return True
    return bool(_TRANSFORM_HIDES.search(get("transform", "")) or _CLIP_PATH_HIDES.search(get("clip-path", "")))


@lru_cache(maxsize=1024)
def _css_colour(value: str) -> int:
    """A CSS colour value as 0xRRGGBB, _TRANSPARENT, or _UNSET where it names none (inherit, var(), ...)."""
    value = value.replace("!important", "").strip()
    if value == "transparent":
        return _TRANSPARENT
    if value in ("inherit", "currentcolor", "unset"):
        return _INHERIT
    if value == "initial":
        return _BLACK
    if value.startswith("#"):
        if not _HEX_COLOUR.match(value):
            return _UNSET
        digits = value[1:]
        if len(digits) in (4, 8) and int(digits[len(digits) // 4 * 3:], 16) < (2 if len(digits) == 4 else 26):
            return _TRANSPARENT  # (nearly) no alpha
        return int("".join(d * 2 for d in digits[:3]) if len(digits) < 6 else digits[:6], 16)
    if value.startswith(("rgb", "hsl")):
        return _functional_colour(value)
    try:
        red, green, blue = webcolors.name_to_rgb(value)
    except ValueError:
        return _UNSET
    return int(red) << 16 | int(green) << 8 | int(blue)


def _functional_colour(value: str) -> int:
    """rgb(), rgba(), hsl() or hsla() as 0xRRGGBB (or _TRANSPARENT for a zero alpha)."""
    numbers = _NUMBER.findall(value)
    if len(numbers) < 3:
        return _UNSET
    if len(numbers) > 3 and float(numbers[3].rstrip("%")) / (100 if numbers[3].endswith("%") else 1) < 0.1:
        return _TRANSPARENT  # (nearly) no alpha
    if value.startswith("rgb"):
        red, green, blue = (float(n[:-1]) * 2.55 if n.endswith("%") else float(n) for n in numbers[:3])
    else:
        red, green, blue = _hsl(float(numbers[0].rstrip("%")), float(numbers[1].rstrip("%")) / 100,
                                float(numbers[2].rstrip("%")) / 100)
    channels = [max(0, min(255, round(c))) for c in (red, green, blue)]
    return channels[0] << 16 | channels[1] << 8 | channels[2]


def _hsl(hue: float, saturation: float, lightness: float) -> tuple[float, float, float]:
    """CSS Color 4 §7.1: hsl() as red, green and blue, 0-255."""
    def channel(n: int) -> float:
        k = (n + hue / 30) % 12
        a = saturation * min(lightness, 1 - lightness)
        return 255 * (lightness - a * max(-1.0, min(k - 3, 9 - k, 1.0)))

    return channel(0), channel(8), channel(4)


@lru_cache(maxsize=256)
def _attribute_colour(value: str) -> int:
    """A bgcolor, text or color attribute as 0xRRGGBB (HTML's legacy colour parsing), _UNSET if it names none."""
    try:
        red, green, blue = webcolors.html5_parse_legacy_color(value)
    except ValueError:
        return _UNSET
    return int(red) << 16 | int(green) << 8 | int(blue)


def _background(decls: dict[str, str]) -> int:
    """The background the declarations paint: a colour, _PICTURE, _TRANSPARENT or _UNSET."""
    for name in ("background-image", "background"):
        value = decls.get(name, "")
        if "url(" in value or "gradient" in value or "image-set" in value:
            return _PICTURE
    paint = decls.get("background-color") or decls.get("background")
    if not paint:
        return _UNSET
    for token in _COLOUR_TOKEN.findall(paint):
        colour = _css_colour(token)
        if colour >= 0 or colour == _TRANSPARENT:
            return colour
    return _UNSET


@lru_cache(maxsize=4096)  # a template repeats the same few style attributes
def _style_look(style: str) -> tuple[bool, int, int, float]:
    """(hidden, text colour, background, font size) of an inline style alone."""
    return _look_of(_declarations(style))


def _look_of(decls: dict[str, str]) -> tuple[bool, int, int, float]:
    if not decls:
        return False, _UNSET, _UNSET, _NO_SIZE
    colour = _css_colour(decls["color"]) if "color" in decls else _UNSET
    return _hides(decls), colour, _background(decls), _font_px(decls)


_NO_SIZE = -1.0  # the element does not set its font size: it inherits it
_FONT_SIZE = re.compile(r"(?:^|\s)(\d*\.?\d+(?:px|pt|em|rem|%)?)(?=\s*/|\s|$)")


def _font_px(decls: dict[str, str]) -> float:
    """The font size the declarations set, in px (from font-size, or the font shorthand), or _NO_SIZE."""
    value = decls.get("font-size")
    if value is None and "font" in decls:
        found = _FONT_SIZE.search(decls["font"].replace("!important", ""))
        value = found.group(1) if found else None
    px = _px(value) if value else None
    return _NO_SIZE if px is None or px < 0 else px


class _Sheet:
    """The rules of a mail's <style> blocks that a reader's screen applies, indexed by what they select.

    Simple selectors (tag, #id, .class and their compounds, the most of mail's) are matched
    here, by an index; others (descendants, children, attributes, pseudo-classes) by lexbor's
    own selector engine over the parsed body (see matched), up to MAX_COMPLEX_RULES of them.
    """

    __slots__ = ("by_key", "complex", "looks", "rules")

    def __init__(self) -> None:
        # (tag or "*", id, classes, specificity, normal declarations, !important ones), in the sheet's order
        self.rules: list[tuple[str, str, tuple[str, ...], int, dict[str, str], dict[str, str]]] = []
        self.by_key: dict[str, list[int]] = {}  # "#id", ".class" or "tag": the rules to try
        self.looks: dict[tuple[str, str, str, str], tuple[bool, int, int, float]] = {}
        # (selector, specificity, normal declarations, !important ones) of the other rules
        self.complex: list[tuple[str, int, dict[str, str], dict[str, str]]] = []

    def add(self, selectors: str, body: str) -> None:
        """A rule: its selector list and its declarations."""
        if not _RELEVANT.search(body):
            return  # it neither hides nor colours anything
        picked: list[tuple[str, str, tuple[str, ...]]] = []
        others: list[str] = []
        for selector in selectors.lower().split(","):
            found = _SIMPLE_SELECTOR.match(selector.strip())
            if found is None or not found.group():
                if selector.strip():
                    others.append(selector.strip())
                continue
            parts = _SELECTOR_PART.findall(found.group(2))
            ids = [part[1:] for part in parts if part[0] == "#"]
            if len(ids) < 2:
                picked.append((found.group(1) or "*", ids[0] if ids else "",
                               tuple(part[1:] for part in parts if part[0] == ".")))
        normal: dict[str, str] = {}
        important: dict[str, str] = {}
        for name, value in _declarations(body).items():
            if "!important" in value:
                important[name] = value.replace("!important", "").strip()
            else:
                normal[name] = value
        for selector in others:
            if len(self.complex) < MAX_COMPLEX_RULES:
                self.complex.append((selector, _specificity(selector), normal, important))
        if not picked or len(self.rules) >= MAX_CSS_RULES:
            return
        for tag, id_, classes in picked:
            key = f"#{id_}" if id_ else f".{classes[0]}" if classes else tag
            specificity = 10_000 * bool(id_) + 100 * len(classes) + (tag != "*")
            self.by_key.setdefault(key, []).append(len(self.rules))
            self.rules.append((tag, id_, classes, specificity, normal, important))

    def matched(self, root: Any) -> dict[int, list[int]]:
        """The complex rules each element of the parsed body matches: {mem_id: [rule index]}."""
        found: dict[int, list[int]] = {}
        for index, rule in enumerate(self.complex):
            try:
                nodes = root.css(rule[0])
            except Exception:
                continue
            for node in nodes[:MAX_COMPLEX_MATCHES]:
                found.setdefault(node.mem_id, []).append(index)
        return found

    def look(self, tag: str, attrs: dict[str, str | None], extra: list[int] | None = None,
             ) -> tuple[bool, int, int, float]:
        """(hidden, text colour, background, font size) of an element by these rules and its inline style.

        extra: the complex rules this very element matches (see matched), if any.
        """
        id_ = (attrs.get("id") or "").lower()
        class_ = (attrs.get("class") or "").lower()
        style = attrs.get("style") or ""
        if extra:
            return self._look_anew(tag, id_, class_.split(), style, extra)
        key = (tag, id_, class_, style)
        found = self.looks.get(key)
        if found is None:
            found = self._look_anew(tag, id_, class_.split(), style, None)
            if len(self.looks) < 4096:
                self.looks[key] = found
        return found

    def _look_anew(self, tag: str, id_: str, classes: list[str], style: str,
                   extra: list[int] | None) -> tuple[bool, int, int, float]:
        by_key = self.by_key
        indexes = [*by_key.get(tag, ()), *by_key.get("*", ())]
        if id_:
            indexes += by_key.get("#" + id_, ())
        for name in classes:
            indexes += by_key.get("." + name, ())
        # (specificity, order, normal, important): complex rules after simple ones of the same specificity
        matching = [(rule[3], i, rule[4], rule[5]) for i, rule in ((i, self.rules[i]) for i in sorted(set(indexes)))
                    if rule[0] in ("*", tag) and rule[1] in ("", id_) and all(c in classes for c in rule[2])]
        for i in extra or ():
            rule_c = self.complex[i]
            matching.append((rule_c[1], MAX_CSS_RULES + i, rule_c[2], rule_c[3]))
        if not matching:
            return _style_look(style) if style else (False, _UNSET, _UNSET, _NO_SIZE)
        matching.sort(key=lambda rule: (rule[0], rule[1]))
        decls: dict[str, str] = {}
        for rule in matching:
            decls.update(rule[2])
        if style:
            decls.update(_declarations(style))
        for rule in matching:
            decls.update(rule[3])
        return _look_of(decls)


MAX_COMPLEX_RULES = 64  # rules with selectors lexbor matches (each is a walk of the body)
MAX_COMPLEX_MATCHES = 10_000  # elements one such rule applies to
_SPECIFICITY_PARTS = re.compile(r"#[-\w]+|\.[-\w]+|\[[^\]]*\]|::?[-\w]+|(?<![-\w#.:])[a-z][-\w]*")


def _specificity(selector: str) -> int:
    """A selector's specificity as one number: ids, then classes, attributes and pseudo-classes, then tags."""
    ids = classes = tags = 0
    for part in _SPECIFICITY_PARTS.findall(selector):
        if part[0] == "#":
            ids += 1
        elif part[0] in ".[:":
            classes += 1
        else:
            tags += 1
    return 10_000 * ids + 100 * classes + tags


_SIMPLE_SELECTOR = re.compile(r"([a-z][a-z0-9]*|\*)?((?:[.#][-\w]+)*)\Z")
_SELECTOR_PART = re.compile(r"[.#][-\w]+")
# The properties _look_of reads (a rule with none of them changes nothing seen).
_RELEVANT = re.compile(r"display|visib|opacity|mso-hide|font-size|height|width|indent|overflow|margin|position|clip"
                       r"|transform|colou?r|background", re.I)
_STYLE_BLOCK = re.compile(r"<style\b[^>]*>(.*?)(?:</style\s*>|\Z)", re.I | re.S)
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)|<!--|-->", re.S)
# A rule "selectors { declarations }", the start of a block of rules ("@media ... {"), or the "}" ending one.
_CSS_TOKEN = re.compile(r"([^{}]*)\{([^{}]*)\}|([^{}]*)\{|\}")
MAX_CSS_CHARS = 200_000  # of <style> blocks read (bounded work)
MAX_CSS_RULES = 5_000


def _style_sheet(html: str) -> _Sheet | None:
    """The rules of html's <style> blocks, or None where it has none."""
    if "<style" not in html and "<STYLE" not in html and not re.search("<style", html, re.I):
        return None
    css = "\n".join(block.group(1) for block in itertools.islice(_STYLE_BLOCK.finditer(html), 100))
    return _sheet_of(css[:MAX_CSS_CHARS])


@lru_cache(maxsize=16)  # mail from one sender's template comes with the same <style> blocks
def _sheet_of(css: str) -> _Sheet | None:
    """The rules of a style sheet (see _read_rules), or None where none of them matters here."""
    sheet = _Sheet()
    _read_rules(_CSS_COMMENT.sub(" ", css), sheet)
    return sheet if sheet.rules or sheet.complex else None


def _read_rules(css: str, sheet: _Sheet) -> None:
    """Add the rules of css to sheet: plain ones, and those of @media (a desktop screen) and @supports blocks."""
    skipping: list[bool] = []  # for each block of rules open: whether its rules are left out
    for token in _CSS_TOKEN.finditer(css):
        prelude, body, block = token.group(1), token.group(2), token.group(3)
        if block is not None:
            block = block.rsplit(";", 1)[-1].strip()  # after an "@import ...;" or a stray declaration
            applies = block.startswith("@supports") or (block.startswith("@media") and _desktop_media(block[6:]))
            skipping.append(bool(skipping and skipping[-1]) or not applies)
        elif prelude is None:
            if skipping:
                skipping.pop()
        elif not (skipping and skipping[-1]):
            prelude = prelude.rsplit(";", 1)[-1]
            if not prelude.lstrip().startswith("@"):  # @font-face, @page: no rules for elements
                sheet.add(prelude, body)


_MEDIA_FEATURE = re.compile(r"\(\s*([a-z-]+)\s*(?::\s*([^)]*))?\)")


def _desktop_media(query_list: str) -> bool:
    """Whether a desktop screen, in the light, matches an @media query list (features unknown here do not)."""
    for query in query_list.lower().split(","):
        words = _MEDIA_FEATURE.sub(" ", query).replace(" and ", " ").split()
        if "not" in words or any(word not in ("only", "screen", "all", "and") for word in words):
            continue
        if all(_desktop_feature(name, value or "") for name, value in _MEDIA_FEATURE.findall(query)):
            return True
    return False


def _desktop_feature(name: str, value: str) -> bool:
    px = _px(value)
    if name in ("min-width", "min-device-width"):
        return px is not None and px <= _DESKTOP_WIDTH
    if name in ("max-width", "max-device-width"):
        return px is not None and px >= _DESKTOP_WIDTH
    return (name, value.strip()) in (("prefers-color-scheme", "light"), ("orientation", "landscape"))


def _look(tag: str, attrs: dict[str, str | None], sheet: _Sheet | None,
          extra: list[int] | None = None) -> tuple[bool, int, int, float]:
    """(hidden, text colour, background, font size) of an element: its attributes, inline style and the sheet's rules.

    extra: the sheet's complex rules the element matches (see _Sheet.matched).
    """
    if "hidden" in attrs or (attrs.get("aria-hidden") or "").lower() == "true":
        return True, _UNSET, _UNSET, _NO_SIZE
    style = attrs.get("style")
    if sheet is not None and (extra or "class" in attrs or "id" in attrs or tag in sheet.by_key
                              or "*" in sheet.by_key):
        hidden, colour, background, size = sheet.look(tag, attrs, extra)
    elif style:
        hidden, colour, background, size = _style_look(style)
    elif "bgcolor" not in attrs and "background" not in attrs and tag != "font" and tag != "body":
        return False, _UNSET, _UNSET, _NO_SIZE  # most elements of most mail
    else:
        hidden, colour, background, size = False, _UNSET, _UNSET, _NO_SIZE
    if hidden:
        return True, _UNSET, _UNSET, _NO_SIZE
    if colour == _UNSET and (value := attrs.get("color") if tag == "font" else attrs.get("text") if tag == "body"
                             else None):
        colour = _attribute_colour(value)
    if background == _UNSET:
        if attrs.get("background"):
            background = _PICTURE
        elif value := attrs.get("bgcolor"):
            background = _attribute_colour(value)
    return False, colour, background, size


@lru_cache(maxsize=1024)
def _unseen(colour: int, background: int) -> bool:
    """Whether text of colour on background cannot be read: transparent, or (nearly) the same colour."""
    if colour == _TRANSPARENT:
        return True
    if colour < 0 or background < 0:
        return False  # on a picture, or a colour not known: taken as seen
    light, dark = sorted((_luminance(colour), _luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05) < _MIN_CONTRAST


def _luminance(colour: int) -> float:
    """WCAG 2 relative luminance of 0xRRGGBB."""
    total = 0.0
    for shift, weight in ((16, 0.2126), (8, 0.7152), (0, 0.0722)):
        c = (colour >> shift & 0xFF) / 255
        total += weight * (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    return total


def _quoting(tag: str, attrs: dict[str, str | None]) -> bool:
    if tag == "blockquote":
        return True
    class_, id_ = attrs.get("class"), attrs.get("id")  # most elements have neither: no regex then
    return bool((class_ and _QUOTE_CLASS.search(class_)) or (id_ and _QUOTE_ID.search(id_)))


_NESTING_TAGS = ("div", "span", "table", "font", "blockquote", "center", "section", "b", "i", "u", "strong", "em", "a")
MAX_UNCLOSED = 2000


# What _too_deep counts: each "<" or "</" followed by one of _NESTING_TAGS as a whole name (so
# not "<br", "<body" or "<img", which nest nothing: a newsletter is full of them).
_OPENING = re.compile("<(?:" + "|".join(_NESTING_TAGS) + r")(?=[\s/>])")
_CLOSING = re.compile("</(?:" + "|".join(_NESTING_TAGS) + r")(?=[\s/>])")


def _too_deep(html: str) -> bool:
    """Whether html leaves thousands of elements open: lexbor's tree building is quadratic in depth."""
    if html.count("<") <= MAX_UNCLOSED:
        return False  # each "<" opens at most one element
    lower = html.lower()  # one pass per direction rather than a str.count per tag name (4 ms on 300 KB)
    return len(_OPENING.findall(lower)) - len(_CLOSING.findall(lower)) > MAX_UNCLOSED


# The lexbor documents that HTML bodies are parsed into, one per thread and mode (see _parse_html):
# .documents, {quirks: parser}, and .parsed, the characters parsed into them. (A plain
# threading.local: mypyc compiles no subclass of it.)
_DOCUMENTS = threading.local()
DOCUMENT_REUSE_CHARS = 1_000_000  # new documents after this much HTML (see _parse_html)
# The DOCTYPE that decides a document's mode: the first thing in it but spaces and comments.
_DOCTYPE = re.compile(r"(?:\s|<!--.*?-->)*(<!doctype[^>]*>)?", re.I | re.S)


def _parse_html(html: str) -> Any:
    """The body element of html parsed by lexbor (or its root element, where there is no body).

    A new lexbor document costs about 20 us and fills some 640 KB of fresh memory, which
    pushes mail-parser's and our own working data out of the processor's caches: a mail
    with HTML took twice as long through parse and extraction as one without. So each body
    is parsed as the content of a kept document's root <html> element: the HTML fragment
    algorithm in that context builds <head> and <body> as a document parse does, attributes
    included, except that the mode (quirks or not: whether a <table> closes an open <p>) is
    the kept document's, not the one the DOCTYPE asks for. So there is a kept document for
    each mode, and the DOCTYPE picks one (_quirks). The children replaced are unlinked, not
    freed, so the documents are replaced after DOCUMENT_REUSE_CHARS characters of HTML.
    (tests/test_extract_forms.py compares the trees with a document parse's.)
    """
    from selectolax.lexbor import LexborHTMLParser

    state = _DOCUMENTS
    if getattr(state, "documents", None) is None or state.parsed > DOCUMENT_REUSE_CHARS:
        state.documents, state.parsed = {}, 0
    state.parsed += len(html) + 1000
    quirks = _quirks(_DOCTYPE.match(html).group(1) or "")  # type: ignore[union-attr]  # it matches ""
    document = state.documents.get(quirks)
    if document is None:
        document = state.documents[quirks] = LexborHTMLParser("" if quirks else "<!DOCTYPE html>")
    root = document.root
    try:
        root.inner_html = html
    except UnicodeEncodeError:  # lone surrogates: left out, as lexbor's own input step does
        root.inner_html = html.encode("utf-8", "ignore").decode("utf-8")
    body = next((child for child in root.iter() if child.tag == "body"), None)
    if body is not None:
        return body
    # No body: a <frameset>, which the fragment algorithm lets in where a document parse would
    # not. Such (rare) mail is parsed as a document of its own.
    tree = LexborHTMLParser(html)
    return tree.body or tree.root


@lru_cache(maxsize=256)  # mail comes with a handful of DOCTYPEs
def _quirks(doctype: str) -> bool:
    """Whether lexbor parses a document that begins with doctype in quirks mode (no DOCTYPE: it does).

    Asked of lexbor itself, by where a <table> lands after an open <p>: in quirks mode it
    nests in the paragraph, else it closes it (HTML standard, "in body" insertion mode).
    """
    from selectolax.lexbor import LexborHTMLParser

    body = LexborHTMLParser(doctype + "<p><table></table>").body
    return body is not None and body.css_first("p > table") is not None


NESTED_TOO_DEEPLY = "[HTML left out: it nests elements too deeply to be rendered safely.]"


def html_to_text(html: str) -> Rendered:
    """Visible text of an HTML body in reading order; what a reader cannot see, style, script and images left out.

    Hidden is what an inline style or a <style> rule hides (see _hides), and text drawn in
    (nearly) the colour behind it; a link is kept only where some of it is seen (its text,
    or an image). HTML that leaves thousands of elements open (lexbor's tree building is
    quadratic in depth) is not rendered at all, only named by NESTED_TOO_DEEPLY: no cheaper
    reading of it could tell what is hidden, so none of its text, codes or links is used.
    """
    html = html[:MAX_HTML_CHARS]
    if _too_deep(html):
        return Rendered(NESTED_TOO_DEEPLY, "", [])
    root = _parse_html(html)
    sheet = _style_sheet(html)
    matches = sheet.matched(root) if sheet is not None and sheet.complex else {}
    main: list[str] = []
    quoted: list[str] = []
    anchors: list[tuple[str, str]] = []
    # One pass over lexbor's own traversal of the tree (document order, no recursion: hostile
    # mail nests thousands of elements deep). An element ends where the node that follows its
    # subtree begins: its next sibling, else where its parent ends. opened holds the elements
    # entered and not yet ended, innermost last: (the mem_id of the node after it, 0 for the
    # end of the body, which a None after the traversal stands for; what to do then: None, a
    # separator to write after a cell or block, or (tag, start, href, quoted, images) to close
    # an anchor or a quote). out is main, or quoted inside a quote. inks holds, the same way,
    # the text colour, background, font size and unseen flag to go back to where an element that
    # changed them ends; images counts the images seen, so that a link of an image alone is kept.
    opened: list[tuple[int, Any]] = []
    inks: list[tuple[int, int, int, float, bool]] = []
    colour, background, size, unseen, link_colour = _BLACK, _WHITE, _BODY_PX, False, _LINK_BLUE
    images = in_links = 0  # images seen; links open
    separator_after, block_tags, skip_tags = _SEPARATOR_AFTER, _BLOCK_TAGS, _SKIP_TAGS
    quote_depth = 0
    out = main
    skip_to = -1  # skipping a hidden or skipped element: the mem_id of the node after it (0: the end)
    for node in itertools.chain(root.traverse(include_text=True), (None,)):
        node_id = 0 if node is None else node.mem_id
        if skip_to >= 0:
            if node_id != skip_to:
                continue
            skip_to = -1
        while opened and opened[-1][0] == node_id:  # the elements that end here, innermost first
            then = opened.pop()[1]
            if then is None:
                continue
            if type(then) is str:
                out.append(then)
                continue
            tag, start, href, was_quote, images_before = then
            in_links -= tag == "a"
            if tag == "a" and not quote_depth:
                label = normalise("".join(out[start:]))
                if label or images > images_before:  # a link nobody can see is no link
                    anchors.append((href, label))
                    if _link_kind(href, label)[0] in _SHOWN_KINDS and href.startswith(("http://", "https://")):
                        out.append(f" <{href}>")
            if tag in separator_after:
                out.append(separator_after[tag])
            if was_quote:
                quote_depth -= 1
                out = quoted if quote_depth else main
        while inks and inks[-1][0] == node_id:
            _, colour, background, size, unseen = inks.pop()
        if node is None:
            break
        if node.is_text_node:
            if not unseen:
                out.append(node.text_content or "")
            continue
        if not opened:
            end = 0  # the body itself (the first node): it ends with the traversal
        elif (following := node.next) is not None:
            end = following.mem_id
        else:
            end = opened[-1][0]
        tag = node.tag
        attrs = node.attributes
        if not tag or tag in skip_tags or tag[0] == "-":
            # An image in a link that is seen (not hidden, not a tracking pixel) keeps the link.
            if tag == "img" and in_links and not _pixel(attrs) and not _look(tag, attrs, sheet,
                                                                              matches.get(node.mem_id))[0]:
                images += 1
                alt = attrs.get("alt")  # an image button: its alt text names the link
                if alt and node.parent is not None and node.parent.tag == "a":
                    out.append(f" {alt} ")
            skip_to = end
            continue
        # An element without attributes is neither hidden nor coloured nor a quote by class
        # (unless a tag rule of the sheet says otherwise); a link takes the link colour.
        extra = matches.get(node.mem_id) if matches else None
        if attrs or tag == "a" or extra or (sheet is not None and (tag in sheet.by_key or "*" in sheet.by_key)):
            hidden, new_colour, new_background, new_size = _look(tag, attrs, sheet, extra)
            if hidden:
                skip_to = end
                continue
            if tag == "body" and (value := attrs.get("link")):
                link_colour = _attribute_colour(value)
            if new_colour == _UNSET and tag == "a" and attrs.get("href"):
                new_colour = link_colour
            elif new_colour == _INHERIT:
                new_colour = _UNSET
            if new_background == _TRANSPARENT:
                new_background = _UNSET
            if ((new_colour != _UNSET and new_colour != colour) or (new_background != _UNSET
                                                                      and new_background != background)
                    or (new_size != _NO_SIZE and new_size != size)):
                inks.append((end, colour, background, size, unseen))
                colour = colour if new_colour == _UNSET else new_colour
                background = background if new_background == _UNSET else new_background
                size = size if new_size == _NO_SIZE else new_size
                unseen = size < _TINY or _unseen(colour, background)
        is_quote = tag == "blockquote" or (bool(attrs) and _quoting(tag, attrs))
        if is_quote:
            quote_depth += 1
            out = quoted
        if tag in block_tags:
            out.append("\n")
        if is_quote or tag == "a":
            href = (attrs.get("href") or "").strip() if tag == "a" else ""
            opened.append((end, (tag, len(out), href, is_quote, images)))
            in_links += tag == "a"
        else:  # a span, font, b... writes nothing when it ends
            opened.append((end, separator_after.get(tag)))
    return Rendered(normalise("".join(main)), normalise("".join(quoted)), anchors)


_PIXEL_SIZES = frozenset({"0", "1", "0px", "1px"})


def _pixel(attrs: dict[str, str | None]) -> bool:
    """Whether an image's width or height attribute makes it a pixel or less (a tracker, not a button)."""
    return (attrs.get("width") or "").strip() in _PIXEL_SIZES or (attrs.get("height") or "").strip() in _PIXEL_SIZES


_STUB = re.compile(r"(view|read|open) (this|it) (e-?mail|message|newsletter)? ?(in|on) (a|your) (web )?browser|"
                   r"does not support html|html-capable|enable html", re.I)


def _prefer_html(plain: str, html_text: str) -> bool:
    """Take the HTML rendering when there is no plain text, or it is a stub, or much poorer."""
    if not plain:
        return bool(html_text)
    if len(plain) < 400 and _STUB.search(plain):
        return True
    return len(_words(html_text)) > 2 * len(_words(plain)) + 10


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", _URL.sub(" ", text))


_ATTRIBUTION = re.compile(
    r"^(?:"
    r"on\b.{0,200}\bwrote:|am\b.{0,200}\bschrieb.{0,80}:|le\b.{0,200}\ba écrit ?:|el\b.{0,200}\bescribió:|"
    r"em\b.{0,200}\bescreveu:|il giorno\b.{0,200}\bha scritto:|il\b.{0,200}\bha scritto:|op\b.{0,200}\bschreef.{0,80}:|"
    r".{0,200}\bпишет:|.{0,200}(?:写道|寫道)[:：]|.{0,200}wrote:|"
    r"-{2,}\s*(?:original message|ursprüngliche nachricht|message d'origine|mensaje original|mensagem original|"
    r"messaggio originale|oorspronkelijk bericht|исходное сообщение)\s*-{2,}"
    r")$", re.I)


_FROM = re.compile("[Ff][Rr][Oo][Mm]:")


def split_quoted(text: str) -> tuple[str, str]:
    """(new text, quoted earlier mail): '>' lines and everything from an attribution line on."""
    if not (text.startswith(">") or "\n>" in text or ":\n" in text or "：\n" in text or "-\n" in text
            or text.endswith((":", "：", "-")) or _FROM.search(text)):
        return text.strip(), ""  # no line that the loop below would treat apart
    lines = text.split("\n")
    main: list[str] = []
    quoted: list[str] = []
    for index, line in enumerate(lines):
        if line.startswith(">"):
            quoted.append(line.lstrip("> "))
            continue
        # Every attribution line ends in ":" or "-": the cheap test first.
        attribution = line.endswith((":", "：", "-")) and _ATTRIBUTION.match(line)
        if attribution or (line[:5].lower() == "from:" and index + 1 < len(lines) and
                           re.match(r"(?i)(sent|date|gesendet|envoyé|enviado|inviato):", lines[index + 1])):
            quoted.extend(ln.lstrip("> ") for ln in lines[index + 1:])
            break
        main.append(line)
    return "\n".join(main).strip(), "\n".join(q for q in quoted if q).strip()


# r"(?m)^-- ?$" with its "^" moved behind the first "-" (a look-behind for a line break or the
# start of the text before it), so re jumps from one "-" to the next: on 56,000 characters of
# newsletter text 0.2 ms before, 0.013 ms now.
_SIGNATURE_SEPARATOR = re.compile(r"(?m)-(?<![^\n]-)- ?$")


def strip_signature(text: str) -> str:
    """Cut at the RFC 3676 §4.3 signature separator ("-- " on its own line)."""
    at = _SIGNATURE_SEPARATOR.search(text)
    return text[: at.start()].rstrip() if at else text


_FOOTER = _word_pattern(
    r"©|\(c\) ?\d{4}|copyright|all rights reserved|unsubscribe|privacy (policy|statement|notice)|terms (of|and) "
    r"(service|use)|this (e-?mail|message) was sent (to|by)|you('re| are) receiving this|"
    r"sent to (?:[^ \n]|\n(?!\n)){1,64}@|intended (only )?for the (named |addressee|recipient)|intended recipient|confidential|"
    r"do not reply to this|please do not reply|no-?reply|manage (your )?(email )?(preferences|notifications)|"
    r"alle rechte vorbehalten|impressum|datenschutz|abmelden|abbestellen|tous droits réservés|se désabonner|"
    r"désinscri|todos los derechos reservados|darse de baja|cancelar (a )?inscrição|todos os direitos reservados|"
    r"tutti i diritti riservati|annulla l'iscrizione|alle rechten voorbehouden|afmelden|uitschrijven|"
    r"все права защищены|отписаться|版权所有|保留所有权利|退订|配信停止|無断転載|著作権|수신 ?거부|무단 전재|"
    r"registered (office|in)|company (no|number)|ust-idnr|handelsregister|siège social")


def strip_footer(text: str) -> str:
    """Drop trailing legal paragraphs (copyright, unsubscribe, address, disclaimers)."""
    paragraphs = text.split("\n\n")
    first = max(1, len(paragraphs) - 39)  # the paragraphs looked at: the last 39, never the first
    tail = sum(map(len, paragraphs[:first])) + 2 * first  # where paragraphs[first] begins
    # No match of _FOOTER runs over a paragraph break (nor of the code words or _URL), so a
    # paragraph matches alone where a search of the whole text finds a match in it. Above the
    # paragraph of the first _FOOTER match no paragraph is a footer, and nothing is cut there.
    lowered = _lower(text[tail:])
    found = _FOOTER.search(lowered)
    if found is None:
        return text.strip()  # most mails end here
    end = len(text)
    index = len(paragraphs) - 1
    while end - len(paragraphs[index]) > tail + found.start():
        end -= len(paragraphs[index]) + 2
        index -= 1
    region = end - len(paragraphs[index])  # the paragraph of the first match, and all after it
    lower = lowered[region - tail:]  # _lower keeps every character in its place
    footers = [m.start() + region for m in _FOOTER.finditer(lower)]
    words = [m.start() + region for m in _code_words(lower)]
    urls = [m.start() for m in _URL.finditer(text, region)]
    start = len(paragraphs)
    end = len(text)
    for index in range(len(paragraphs) - 1, first - 1, -1):  # a footer is a few paragraphs
        paragraph = paragraphs[index]
        begin = end - len(paragraph)
        if begin < region:
            break
        has_word = _any_within(words, begin, end)
        if _any_within(footers, begin, end) and not (has_word and _has_code(paragraph)):
            start = index
        elif len(paragraph) > 240 or has_word or _any_within(urls, begin, end):
            break
        end = begin - 2
    return "\n\n".join(paragraphs[:start]).strip()


def _any_within(positions: list[int], begin: int, end: int) -> bool:
    """Whether one of positions (sorted) lies in [begin, end)."""
    at = bisect.bisect_left(positions, begin)
    return at < len(positions) and positions[at] < end


def _has_code(paragraph: str) -> bool:
    """Whether a paragraph holds a code beside its keyword (such a paragraph is never a footer)."""
    return bool(find_codes("", paragraph))


def cap_text(text: str, cap: int) -> str:
    """text cut to at most cap characters (at a line or word), with a note of how much was cut."""
    if len(text) <= cap:
        return text
    note_room = 60
    cut = text.rfind("\n", 0, cap - note_room)
    if cut < (cap - note_room) // 2:
        cut = text.rfind(" ", 0, cap - note_room)
    if cut <= 0:
        cut = cap - note_room
    return f"{text[:cut].rstrip()}\n[… {len(text) - cut:,} more characters cut]"


# -- codes -----------------------------------------------------------------------------------

# Words that announce a one-time code, by language (en de fr es pt it nl ru zh ja ko, and a few more).
_CODE_WORDS_SOURCE = (
    r"\bcodes?\b|\bpass ?codes?\b|\bone[- ]time\b|\botp\b|\bpin\b|verification|\bverify\b|security code|"
    r"2fa|two[- ]factor|sign[- ]?in code|log[- ]?in code|confirmation code|authenticat|token\b|"
    r"\b\w{0,24}code\b|bestätigungs|sicherheits|einmal|anmelde|verifizierungs|"
    r"\bcode de\b|vérification|sécurité|\bcódigo|\bverificación|seguridad|verificação|segurança|"
    r"\bcodice\b|verifica\b|\bverifica|sicurezza|\bcode\b|verificatie|beveiligings|"
    r"\bкод\w*|подтвержд|провероч|одноразов|"
    r"验证码|驗證碼|校验码|动态码|確認碼|认证码|"
    r"認証コード|確認コード|認証番号|確認番号|ワンタイム|コード|パスコード|"
    r"인증 ?번호|인증 ?코드|확인 ?코드|보안 ?코드|코드|"
    r"\bkod\w*|\bkoodi|\bkode\b")
_CODE_WORDS = _word_pattern(_CODE_WORDS_SOURCE)  # for _lower()ed text
# The one alternative that keeps re from jumping ahead ("any word ending in code"), and the
# others without it: see _code_words.
_ANY_CODE_WORD = r"\b\w{0,24}code\b"
_CODE_WORDS_NOT_ANY = _word_pattern(_CODE_WORDS_SOURCE.replace("|" + _ANY_CODE_WORD, ""))


def _code_words(lower: str) -> Iterator[re.Match[str]]:
    """The matches of _CODE_WORDS.finditer(lower), found 2-3 times faster.

    _ANY_CODE_WORD can only match at the start of a word holding "code" at most 24
    characters in, which str.find finds at once. Everywhere else _CODE_WORDS matches what
    _CODE_WORDS_NOT_ANY matches, whose alternatives all begin with a plain character, so re
    jumps from one possible start to the next. At such a word start _CODE_WORDS itself
    decides, so the order of its alternatives keeps deciding which one matches.
    """
    pos = 0
    while True:
        match = _CODE_WORDS_NOT_ANY.search(lower, pos)
        limit = match.start() if match else len(lower)  # the next match, unless one starts at a "code" word
        at = lower.find("code", pos)
        while 0 <= at <= limit + 24:
            word_start = _word_start(lower, at)
            if word_start is not None and word_start > limit:
                break
            if word_start is not None and word_start >= pos:  # a word begun before pos has no \b left in it
                whole = _CODE_WORDS.match(lower, word_start)
                if whole:
                    match = whole
                    break
            at = lower.find("code", at + 1)
        if match is None:
            return
        yield match
        pos = match.end()  # no alternative matches the empty string


def _word_start(text: str, at: int) -> int | None:
    """Where the word holding text[at] begins, or None when that is more than 24 characters back."""
    start = at
    while start > 0 and _WORD_CHAR.match(text, start - 1):
        start -= 1
        if at - start > 24:
            return None
    return start
# Phrases in which a code word means something else: promotions, places, sources, bookings.
# The words before "code" are spelt out one by one, "promo[- ]?codes?|discount[- ]?codes?|...",
# rather than grouped, "(promo|discount|...)[- ]?codes?": then every alternative begins with a
# plain character and re jumps ahead to where one may begin (same matches, same order).
_CODE_KINDS = ("promo(?:tion(?:al)?)?|discount|coupon|gift(?: card)?|voucher|referral|invite|invitation|tracking|"
               "postal|zip|area|country|dialing|source|qr|bar|swift|sort|bank|tax|booking|reservation|"
               "confirmation number|product|item|style|colou?r|error|status|reference|offer|sale")
_NOT_CODE_PHRASE = _word_pattern(
    "|".join(kind + "[- ]?codes?" for kind in _top_level_alternatives(_CODE_KINDS)) + "|"
    r"rabatt\w*|gutschein\w*|aktions\w*|postleitzahl|code promo\w*|code postal|code de réduction|code de parrainage|"
    r"c[oó]digo (promocional|de descuento|de desconto|postal|de rastreio|de seguimiento|de reserva)|cupón|cupom|"
    r"codice (sconto|promozionale|postale|di prenotazione)|kortingscode|actiecode|postcode|"
    r"промокод\w*|почтов\w+ индекс|код скидки|скидк\w*|优惠码|优惠券|折扣码|邮编|邮政编码|"
    r"クーポン\w*|割引コード|郵便番号|할인 ?코드|쿠폰|우편 ?번호")
# Words right before a number that make it something other than a code.
_NOT_CODE_BEFORE_WORDS = (
    r"order|invoice|receipt|ref(erence)?|ticket|case|account|customer|member|tracking|transaction|booking|"
    r"reservation|confirmation (number|no)|shipment|parcel|package|item|sku|model|serial|version|build|"
    r"room|flight|seat|gate|table|suite|apt|floor|street|st\.|ave|road|box|zip|postcode|post code|"
    r"phone|tel|telephone|mobile|call|fax|whatsapp|text us|sms to|dial|hotline|helpline|support|"
    r"customer (service|care|support|center|centre)|kundenservice|service client|atención al cliente|"
    r"assistenza|klantenservice|служба поддержки|客服|お問い合わせ|고객 ?센터|문의|"
    r"card|ending( in)?|ends (in|with)|visa|mastercard|amex|iban|account no|"
    r"bestell\w*|auftrag\w*|rechnung\w*|kunden\w*|telefon\w*|karte\w*|endet auf|plz|"
    r"commande|facture|client|téléphone|tél|carte|se terminant par|"
    r"pedido|factura|cliente|tel[eé]fono|tarjeta|terminada en|fatura|telefone|cartão|final|"
    r"ordine|fattura|telefono|carta|che termina|bestelling|factuur|klant|telefoon|kaart|eindigend op|"
    r"заказ\w*|сч[её]т\w*|телефон\w*|карт\w*|"
    r"订单号?|發票|发票|电话|手机|尾号|卡号|注文番号?|請求書|電話|カード|末尾|주문 ?번호?|전화|카드|송장")
_NOT_CODE_BEFORE = re.compile(
    _guarded_words(_NOT_CODE_BEFORE_WORDS, "[a-z]") + r"[\s#:.\-–№]*(?:\w{0,12}[\s:#.\-]*)?$")
_NOT_CODE_AFTER = re.compile(r"^\s*(%|€|eur|usd|gbp|chf|\$|£|¥|₩|₽|руб|元|円|원|kr|px|pt|mb|kb|gb|ms|km|kg|mi|"
                             r"points|pts|miles|items|x\b|\+|[/.,]\d)")
# A promotion's line: "20% off" (searched only where the line holds a "%"), or a promotion word.
_PERCENT_OFF = re.compile(r"\d ?% ?(?:off|rabatt|de réduction|de descuento|de desconto|di sconto|korting)")
_PROMO_WORDS = _word_pattern(r"\bsale\b|\bdiscount\b|\bcoupon\b|\bpromo\b|\bsave\b|скидк|折扣|優惠|割引|할인")
_NL_POSTCODE = re.compile(r" [A-Z]{2}\b")
_CITY = re.compile(r" [A-ZÄÖÜÉ][\wäöüéèß-]+")
_OLD_WORDS = _word_pattern(r"previous|earlier|old(er)?\b|expired|no longer|invalid|replaced|vorherige|abgelaufen|"
                        r"ungültig|précédent|expiré|anterior|caducado|expirado|precedente|scaduto|vorige|verlopen|"
                        r"предыдущ|истек|之前|已失效|以前|期限切れ|이전|만료")
_NEW_WORDS = _word_pattern(r"\bnew\b|latest|neue[rn]?\b|nouveau|nuevo|novo\b|nuovo|nieuwe|новый|新しい|新的|새")
_MONTHS = _word_pattern("|".join(r"(?<![a-z])" + word for word in _top_level_alternatives(
    r"jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|januar|märz|mai|juni|juli|okt|dez|"
                     r"janv|févr|mars|avr|juin|juil|août|sept|déc|ene|abr|ago|dic|fev|gen|mag|giu|lug|ott|"
                     r"янв|фев|мар|апр|ма[йя]|июн|июл|авг|сен|окт|ноя|дек|年|月|日|년|월|일|"
                     r"mon|tue|wed|thu|fri|sat|sun|since|seit|depuis|desde|dal|sinds|copyright")) + "|©")

# Masked before candidates are looked for: things made of digits that are never codes.
_ADDRESS_MASK = r"\b[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+"
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"']+", re.I)
_MASKS = re.compile(
    r"(?:https?://|www\.)[^\s<>\"']+|" + _ADDRESS_MASK + "|"  # URLs, addresses
    r"\b\d{1,4}[./-]\d{1,2}[./-]\d{1,4}\b|\d{4}年\d{1,2}月(?:\d{1,2}日)?|\d{1,2}月\d{1,2}日|"  # dates
    r"\b\d{1,2}:\d{2}(?::\d{2})?\b|"  # times
    r"[$€£¥₩₽]\s?\d[\d,.' ]*\d|[$€£¥₩₽]\s?\d|\b\d+(?:[.,]\d+)+\b|"  # prices, decimals, thousands
    r"\+\d[\d \-().]{6,20}\d|\(\d{2,5}\)[ \-]?\d[\d \-]{4,16}\d|\b\d{2,4}[-. ]\d{3,4}[-. ]\d{3,4}\b|"  # phones
    r"(?<![A-Za-z*•·])(?:\*|•|·|x|X){2,8}[ \-]?\d{4}\b|"  # masked card numbers
    r"\b\d+(?:st|nd|rd|th)\b|\b[1-9]-(?:step|factor|stufig|étapes)\b", re.I)

# Each shape begins with the character class of its first character (its look-behinds come
# after it, widened by one "."): then re jumps from one possible first character to the next
# instead of trying the pattern at every position (the same matches, a third of the time).
_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    # "4 8 2 9 1 3": one digit per table cell
    ("cells", re.compile(r"[0-9](?<![0-9A-Za-z].)(?:[ \t][0-9]){3,9}(?![0-9A-Za-z])")),
    # "G-123456"
    ("prefixed", re.compile(r"[A-Z](?<![0-9A-Za-z-].)[A-Z]{0,2}-([0-9]{4,10})(?![0-9A-Za-z]|-[0-9A-Za-z])")),
    # "X7K-9QZ": letters and digits both, in two groups
    ("grouped_alnum", re.compile(r"[A-Z0-9](?<![0-9A-Za-z-].)(?:(?<=[0-9])|(?=[A-Z0-9-]{0,7}[0-9]))"
                                 r"(?:(?<=[A-Z])|(?=[A-Z0-9-]{0,7}[A-Z]))[A-Z0-9]{2,3}-[A-Z0-9]{3,4}"
                                 r"(?![0-9A-Za-z]|-[0-9A-Za-z])")),
    # "123-456", "123 456"
    ("grouped", re.compile(r"([0-9](?<![0-9A-Za-z-].)[0-9]{2,3})[ -]([0-9]{3,4})(?![0-9A-Za-z]|[ -][0-9])")),
    # "AB12CD": letters and digits both
    ("alnum", re.compile(r"[A-Z0-9](?<![0-9A-Za-z-].)(?:(?<=[0-9])|(?=[A-Z0-9]{0,8}[0-9]))"
                         r"(?:(?<=[A-Z])|(?=[A-Z0-9]{0,8}[A-Z]))[A-Z0-9]{4,9}(?![0-9A-Za-z-])")),
    # "123456"
    ("digits", re.compile(r"[0-9](?<![0-9A-Za-z].)(?<![0-9]-.)[0-9]{3,9}(?![0-9A-Za-z]|-[0-9])")),
)
_DIGIT = re.compile(r"[0-9]")
# In a match of a shape with letters (prefixed, grouped_alnum, alnum) a capital letter and a
# digit stand side by side, or with a "-" between them ("G-1", "ABC-123", "X7K").
_CAPITAL_BY_DIGIT = re.compile(r"[A-Z0-9](?:(?<=[A-Z])-?[0-9]|(?<=[0-9])-?[A-Z])")
_LETTER_SHAPES = frozenset({"prefixed", "grouped_alnum", "alnum"})
_CURRENCY = frozenset("$€£¥₩₽")  # the signs _MASKS takes for prices
MAX_CANDIDATES = 200  # per text: a real verification mail has a handful; this bounds hostile ones
_KEYWORD_BEFORE = 160  # how far before a candidate its keyword may stand
_KEYWORD_AFTER = 90


class _Candidate:
    """A string of a code's shape in a text, and the bounds of its line there (see _line_of)."""

    __slots__ = ("code", "end", "kind", "line_end", "line_start", "raw", "start")

    def __init__(self, code: str, kind: str, start: int, end: int, raw: str, text: str) -> None:
        self.code, self.kind, self.start, self.end, self.raw = code, kind, start, end, raw
        self.line_start, self.line_end = _line_of(text, start, end)

    def __repr__(self) -> str:
        return f"_Candidate({self.code!r}, {self.kind}, {self.start}, {self.end})"


def _line_of(text: str, start: int, end: int) -> tuple[int, int]:
    """The line of text[start:end], at most 300 characters either side (a hostile line may be megabytes long)."""
    line_start = max(text.rfind("\n", max(0, start - 300), start) + 1, start - 300, 0)
    line_end = text.find("\n", end, end + 300)
    return line_start, min(len(text), end + 300) if line_end < 0 else line_end


# _MASKS without its e-mail address alternative (which needs an "@"), behind a look-ahead for
# the characters every other alternative begins with. Python's re finds no character to jump
# to in _MASKS (its alternatives begin with \b, classes and look-behinds) and tries all of
# them at every position; the look-ahead rejects most positions in one test: half the time.
_MASK_STARTS = r"(?=[\dhwx$€£¥₩₽+(*•·])"
_MASKS_NO_ADDRESS = re.compile(_MASK_STARTS + "(?:" + _MASKS.pattern.replace("|" + _ADDRESS_MASK, "") + ")", re.I)


def _mask(text: str) -> str:
    """text with what _MASKS matches blanked out, every character in its place."""
    return (_MASKS if "@" in text else _MASKS_NO_ADDRESS).sub(_blank, text)


def _blank(match: re.Match[str]) -> str:
    return " " * (match.end() - match.start())


def _code_lines(text: str, code_words: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """(start, end) of the runs of lines where a candidate could stand near one of code_words.

    A candidate counts only with a keyword from _KEYWORD_BEFORE before its start to
    _KEYWORD_AFTER after its end, so it overlaps [end - _KEYWORD_AFTER, start + _KEYWORD_BEFORE]
    of that word. Whole lines are taken because neither a mask nor a code shape runs over a
    line break, except a price whose currency sign ends the line above: that line comes too.
    """
    runs: list[tuple[int, int]] = []
    for word_start, word_end in code_words:
        start = text.rfind("\n", 0, max(0, word_end - _KEYWORD_AFTER)) + 1
        while start >= 2 and text[start - 2] in _CURRENCY:
            start = text.rfind("\n", 0, start - 1) + 1
        end = text.find("\n", min(len(text), word_start + _KEYWORD_BEFORE))
        end = len(text) if end < 0 else end
        if runs and start <= runs[-1][1]:
            runs[-1] = (runs[-1][0], max(end, runs[-1][1]))
        else:
            runs.append((start, end))
    return runs


def _candidates(text: str, lines: Iterable[tuple[int, int]] | None = None) -> list[_Candidate]:
    """Candidates of every shape in text, or in those runs of its lines (see _code_lines) only."""
    taken: list[tuple[int, int]] = []
    found: list[_Candidate] = []
    for line_start, line_end in lines if lines is not None else [(0, len(text))]:
        _shapes_in(text[line_start:line_end], line_start, taken, found, text)
    found.sort(key=lambda c: c.start)
    return found


def _shapes_in(text: str, offset: int, taken: list[tuple[int, int]], found: list[_Candidate], whole: str) -> None:
    """Candidates in text, which starts at offset in whole, added to found; taken: the spans of those found before."""
    masked = _mask(text)
    if not _DIGIT.search(masked):
        return  # every shape holds a digit, and the masks took them all (dates, prices, phone numbers)
    # The three shapes with letters need a capital letter next to a digit (or a "-" between them):
    # one quick search that spares most texts three of the six passes.
    letters = _CAPITAL_BY_DIGIT.search(masked) is not None
    for shape, pattern in _SHAPES:
        if not letters and shape in _LETTER_SHAPES:
            continue
        for match in pattern.finditer(masked):
            start, end = match.start() + offset, match.end() + offset
            if taken and any(start < b and a < end for a, b in taken):
                continue
            raw = match.group()
            if shape == "grouped" and len(match.group(1)) != len(match.group(2)):
                continue
            if shape == "prefixed":
                code, kind = match.group(1), "numeric"
            else:
                code = raw.replace(" ", "").replace("\t", "").replace("-", "")  # the separators of the shapes
                kind = "numeric" if code.isdigit() else "alphanumeric"
            taken.append((start, end))
            found.append(_Candidate(code, kind, start, end, raw, whole))


def _ruled_out(text: str, lower: str, cand: _Candidate) -> bool:
    """Whether what stands around cand makes it something else than a code, whatever keywords are near.

    lower is _lower(text). These checks need no keyword, so they run first: the keyword
    search, the costliest step, then only looks around the candidates that are left.
    """
    line_start, line_end = cand.line_start, cand.line_end
    before_line = text[line_start:cand.start]
    not_code = _NOT_CODE_BEFORE.search(lower[max(line_start, cand.start - 40):cand.start])
    if (not_code and not next(_code_words(not_code.group()), None)) or _NOT_CODE_AFTER.match(lower[cand.end:line_end]):
        return True
    if before_line.rstrip().endswith(("#", "№", "No.", "no.", "Nr.", "nr.", "n°", "N°", "+")):
        return True
    line = lower[line_start:line_end]
    if ("%" in line and _PERCENT_OFF.search(line)) or _PROMO_WORDS.search(line):
        return True
    after_line = text[cand.end:line_end]
    # A postcode: "1015 CJ Amsterdam", "…, 10115 Berlin".
    return cand.code.isdigit() and len(cand.code) in (4, 5) and bool(
        _NL_POSTCODE.match(after_line) or (_CITY.match(after_line) and before_line.rstrip().endswith(",")))


def _score(text: str, lower: str, cand: _Candidate, keywords: list[tuple[int, int]], quoted: bool) -> float:
    """Confidence that cand (not _ruled_out) is a one-time code, 0 when it is not one; lower is _lower(text)."""
    line_start, line_end = cand.line_start, cand.line_end
    near = [(a, b) for a, b in keywords if cand.start - _KEYWORD_BEFORE <= a and b <= cand.end + _KEYWORD_AFTER]
    if not near:
        return 0.0
    # A year, unless a code word stands right before it on its line ("code: 2024").
    if cand.code.isdigit() and len(cand.code) == 4 and 1900 <= int(cand.code) <= 2099 and (
            _MONTHS.search(lower[max(line_start, cand.start - 25):cand.end + 25]) or not any(
                line_start <= a and b <= cand.start and cand.start - b <= 25 for a, b in near)):
        return 0.0
    if cand.kind == "alphanumeric" and not any(
            abs(cand.start - b) <= 60 or abs(a - cand.end) <= 40 for a, b in near):
        return 0.0  # letters and digits mixed are codes only right next to their keyword
    score = 0.55
    if any(cand.start - 60 <= b <= cand.start or cand.end <= a <= cand.end + 30 for a, b in near):
        score += 0.2
    if text[line_start:line_end].strip() in (cand.raw, cand.raw.strip()):
        score += 0.1  # on a line of its own, as verification mails show it
    context = lower[max(line_start, cand.start - 60): min(line_end, cand.end + 40)]
    if _OLD_WORDS.search(context):
        score -= 0.3
    elif _NEW_WORDS.search(context):
        score += 0.05
    if quoted:
        score -= 0.3
    return round(max(0.0, min(score, 0.99)), 2)


def _keywords(lower: str, cands: Sequence[_Candidate], code_words: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans of code words near the candidates in lower, a _lower()ed text (only there: the word regexes are costly).

    code_words: the spans of _code_words(lower), taken as they are where a window is the whole text.
    """
    windows: list[list[int]] = []
    for cand in cands:
        start, end = max(0, cand.start - _KEYWORD_BEFORE - 40), cand.end + _KEYWORD_AFTER + 40
        if windows and start <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], end)
        else:
            windows.append([start, end])
    spans: list[tuple[int, int]] = []
    for start, end in windows:
        window = lower[start:end]
        blocked = [m.span() for m in _NOT_CODE_PHRASE.finditer(window)]
        words = code_words if start == 0 and end >= len(lower) else [m.span() for m in _code_words(window)]
        spans += [(a + start, b + start) for a, b in words
                  if not any(x <= a < y or x < b <= y for x, y in blocked)]
    return spans


def _evidence(text: str, cand: _Candidate) -> str:
    start = max(0, cand.start - 40)
    end = min(len(text), cand.end + 25)
    snippet = " ".join(text[start:end].split())
    return ("…" if start else "") + snippet + ("…" if end < len(text) else "")


def find_codes(subject: str, main: str, quoted: str = "") -> list[Code]:
    """Ranked one-time codes of a message: best first, newest before an older resend."""
    scored: dict[str, tuple[float, int, Code]] = {}
    order = 0
    for source, text, is_quoted in (("subject", subject, False), ("body", main[:MAX_SCAN_CHARS], False),
                                    ("body", quoted[:MAX_SCAN_CHARS], True)):
        if not _DIGIT.search(text):
            continue  # every shape of code has a digit
        lower = _lower(text)
        code_words = [m.span() for m in _code_words(lower)]
        if not code_words:
            # No code word anywhere: no candidate could score. (A keyword window cut out of the text
            # can only add a match at its edge, 200 characters before its candidate: too far to count.)
            continue
        # Candidates are looked for only on the lines near a code word: masking and the shapes
        # cost most on long newsletters whose code stands in a line or two at the top.
        cands = [c for c in _candidates(text, _code_lines(text, code_words))[:MAX_CANDIDATES]
                 if not _ruled_out(text, lower, c)]
        keywords = _keywords(lower, cands, code_words) if cands else []
        if not keywords:
            continue
        for cand in cands:
            confidence = _score(text, lower, cand, keywords, is_quoted)
            if confidence < 0.4:
                continue
            order += 1
            code = Code(cand.code, confidence, cand.kind, source, _evidence(text, cand))
            best = scored.get(cand.code)
            if best is None or confidence > best[0]:
                scored[cand.code] = (confidence, best[1] if best else order, code)
    ranked = sorted(scored.values(), key=lambda item: (-item[0], item[1]))
    return [code for _, _, code in ranked]


# -- links ------------------------------------------------------------------------------------

_KIND_ORDER = {"verify": 0, "magic_signin": 1, "reset": 2, "other": 3, "unsubscribe": 4}
_SHOWN_KINDS = frozenset({"verify", "magic_signin", "reset"})
_UNSUBSCRIBE = _word_pattern(r"unsubscri|opt[-_ ]?out|list-?manage|email[-_ ]?preferences|manage (your )?"
                          r"(email|subscription|notification)|abmelden|abbestellen|désinscri|desinscri|désabonner|"
                          r"darse de baja|cancelar (a )?(inscrição|suscripción)|disiscriv|annulla l'iscrizione|"
                          r"uitschrijven|afmelden|отписаться|отписк|退订|取消订阅|配信停止|購読解除|수신 ?거부")
_RESET = _word_pattern(r"reset|forgot|password|passwort|mot[- ]de[- ]passe|contraseña|senha|wachtwoord|пароль|"
                    r"密码|密碼|パスワード|비밀번호")
_VERIFY = _word_pattern(r"verif|confirm|activat|validat|bestätig|aktivier|vérifi|valider|activer|"
                     r"conferm|attiva|bevestig|activeer|подтверд|активир|验证|驗證|确认|確認|認証|激活|"
                     r"인증|확인|활성화")
_SIGNIN = _word_pattern(r"sign[-_ ]?in|log[-_ ]?in|magic|anmelden|einloggen|se connecter|connexion|iniciar sesión|"
                     r"entrar|accedi|inloggen|войти|вход|登录|登入|ログイン|サインイン|로그인")
# A query value or path segment long and random enough to be a one-time token.
_TOKEN = re.compile(r"[A-Za-z0-9_\-.~%]{20,}")
_PLAIN_URL = re.compile(r"(?:https?://)[^\s<>\"'\]\[]+", re.I)


@lru_cache(maxsize=4096)
def _link_kind(url: str, text: str) -> tuple[str, float]:
    """What a link does, from its text and its URL (the inner URL of a redirect included)."""
    inner = url
    for _ in range(2):  # tracking redirects carry the real target percent-encoded
        inner = urllib.parse.unquote(inner)
    parts = urllib.parse.urlsplit(inner if "://" in inner else "http://x/" + inner)
    where = " ".join([parts.path, parts.query, parts.fragment])
    has_token = bool(_TOKEN.search(parts.query) or _TOKEN.search(parts.path.rsplit("/", 1)[-1]))
    text, where = _lower(text), _lower(where)
    if _UNSUBSCRIBE.search(text) or _UNSUBSCRIBE.search(where):
        return "unsubscribe", 0.9
    for pattern, kind in ((_RESET, "reset"), (_VERIFY, "verify"), (_SIGNIN, "magic_signin")):
        if pattern.search(text):
            if kind == "magic_signin" and not has_token:
                continue  # a plain "Sign in" link to a login page is not a magic link
            return kind, 0.95 if has_token else 0.8
    for pattern, kind in ((_RESET, "reset"), (_VERIFY, "verify"), (_SIGNIN, "magic_signin")):
        if pattern.search(where) and has_token:
            return kind, 0.7
    return "other", 0.3


def _plain_links(text: str) -> list[tuple[str, str]]:
    """(url, the words before it on its line, or the line above) for each URL in plain text."""
    found = []
    for match in _PLAIN_URL.finditer(text[:MAX_SCAN_CHARS]):
        url = match.group().rstrip(".,;:!?)>»")
        line_start = text.rfind("\n", 0, match.start()) + 1
        label = text[line_start:match.start()].strip(" <([:-")
        if not label:
            prev_end = max(line_start - 1, 0)
            prev_start = text.rfind("\n", 0, prev_end) + 1
            label = text[prev_start:prev_end].strip(" <([:-")
        found.append((url, label[-100:]))
    return found


def find_links(anchors: Iterable[tuple[str, str]], plain: str, subject: str = "") -> list[Link]:
    """Links of both bodies, deduplicated, ranked: verification first, unsubscribe last."""
    seen: dict[str, Link] = {}
    order: dict[str, int] = {}
    for url, text in [*anchors, *_plain_links(plain)]:
        url = html_lib.unescape(url.strip())
        if not url.lower().startswith(("http://", "https://")):
            continue  # mailto:, tel:, cid:, javascript: and page anchors are not links to follow
        label = " ".join(text.split())[:200]
        kind, confidence = _link_kind(url, label)
        if kind == "other" and subject and not label:
            kind, confidence = _link_kind(url, subject)
            kind, confidence = (kind, confidence * 0.8) if kind in _SHOWN_KINDS else ("other", 0.3)
        old = seen.get(url)
        if old is None or confidence > old.confidence:
            seen[url] = Link(url, kind, round(confidence, 2), label or (old.text if old else ""))
            order.setdefault(url, len(order))
    return sorted(seen.values(), key=lambda link: (_KIND_ORDER[link.kind], -link.confidence, order[link.url]))


# -- sender trust ----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _psl() -> Any:
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()  # the list bundled with the package: nothing is fetched


@lru_cache(maxsize=4096)  # the same few sender domains come again and again; a lookup costs ~10 µs (IDNA)
def organisational_domain(domain: str) -> str:
    """RFC 7489 §3.2: the registrable domain (one label below its public suffix)."""
    domain = domain.lower().strip(".")
    return str(_psl().privatesuffix(domain) or domain)


def _domain_of(value: str | None) -> str | None:
    if not value:
        return None
    return value.rsplit("@", 1)[-1].strip().strip("<>").lower() or None


_COMMENT = re.compile(r"\([^()]*\)")
# A ";" (the end of a resinfo) or a name=value pair; a quoted value holds no ";" (see _results).
_RESINFO = re.compile(r";|([A-Za-z][\w.-]*)(?:/\d+)?\s*=\s*(\"(?:[^\"\\\\;]|\\\\[^;])*\"|[^\s;]+)")


def _results(header: str) -> tuple[str | None, dict[str, list[tuple[str, dict[str, str]]]]]:
    """authserv-id and {method: [(result, {ptype.property: value})]} of one header value (RFC 8601 §2.2).

    A small tokenizer of our own: authres, tried first, took about 1 ms a header here, more
    than mail-parser's whole parse of a typical verification mail.
    """
    text = " ".join(header.split())[:8000]
    if '"' in text:
        text = re.sub(r'"[^"]*"', lambda m: m.group().replace(";", ","), text)  # reason="a; b" is one value
    for _ in range(5 if "(" in text else 0):  # comments nest; each pass removes the innermost ones
        text, found = _COMMENT.subn(" ", text)
        if not found or "(" not in text:
            break
    end = text.find(";")
    head = (text if end < 0 else text[:end]).split()
    if not head or "=" in head[0]:
        return None, {}
    methods: dict[str, list[tuple[str, dict[str, str]]]] = {}
    props: dict[str, str] | None = None  # the properties of the resinfo being read, None to skip its pairs
    starting = True  # at the first pair of a resinfo: the method and its result
    for name, value in _RESINFO.findall(text, end + 1 if end >= 0 else len(text)):
        if not name:  # a ";"
            starting = True
        elif starting:
            starting = False
            props = None if "." in name else {}
            if props is not None:
                methods.setdefault(name.lower(), []).append((value.strip('"').lower(), props))
        elif props is not None and "." in name:
            props[name.lower()] = value.strip('"')
    return head[0].lower(), methods


# The results a verdict is shown as (RFC 8601 §2.7, with SPF's and providers' own); any other
# token is "other", so that no header text of the sender's reaches an answer through it.
_RESULTS = frozenset({"pass", "fail", "none", "neutral", "policy", "temperror", "permerror", "softfail", "hardfail",
                      "unknown", "bestguesspass", "skipped"})


def _verdict(results: list[tuple[str, dict[str, str]]]) -> str:
    for result, _ in results:
        if result == "pass":
            return "pass"
    if not results:
        return "none"
    return results[0][0] if results[0][0] in _RESULTS else "other"


def _aligned_pass(results: list[tuple[str, dict[str, str]]], keys: tuple[str, str], org: str) -> bool:
    """Whether one of results passed for a domain whose organisational domain is org."""
    for result, props in results:
        if result != "pass":
            continue
        domain = next((_domain_of(props[k]) for k in keys if props.get(k)), None)
        if domain and organisational_domain(domain) == org:
            return True
    return False


MAX_AUTH_HEADERS = 50  # Authentication-Results headers looked at in one message (hostile mail has thousands)


def authserv_id_of(header: str) -> str | None:
    """The authserv-id of one Authentication-Results header value (None when it names none)."""
    return _results(header)[0]


def authserv_trusted(authserv_id: str | None, trusted: Sequence[str]) -> bool:
    """Whether authserv_id is one of trusted: a name as given, or "*.example.net" for any name under it."""
    if not authserv_id:
        return False
    for pattern in trusted:
        if pattern.startswith("*."):
            if authserv_id.endswith(pattern[1:]) and len(authserv_id) >= len(pattern):
                return True
        elif authserv_id == pattern:
            return True
    return False


def receiver_stamp(auth_results: Sequence[str],
                   trusted: Sequence[str]) -> tuple[str | None, dict[str, list[tuple[str, dict[str, str]]]]]:
    """The authserv-id and results of the account's receiving server, from its trusted headers (RFC 8601 §5).

    The receiver adds its headers above everything the message arrived with, so reading starts
    at the topmost header of a trusted authserv-id; any header above it is another server's.
    Some receivers split one delivery's results over several headers (Fastmail writes
    x-me-sender, bimi and arc headers above its dkim, spf and dmarc one; iCloud one header per
    method, each from its own host), so the headers right below count too, up to one of an
    untrusted id or one repeating a method already read (an earlier hop's header, or a
    forgery), and not past the one with the receiver's DMARC verdict, its last word.
    """
    if not trusted:
        return None, {}
    stamp_id: str | None = None
    methods: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for header in auth_results[:MAX_AUTH_HEADERS]:
        authserv_id, found = _results(header)
        if not authserv_trusted(authserv_id, trusted):
            if stamp_id is None:
                continue
            break
        if stamp_id is not None and not methods.keys().isdisjoint(found.keys()):
            break
        if stamp_id is None:
            stamp_id = authserv_id
        methods.update(found)
        if "dmarc" in found:
            break
    return stamp_id, methods


def _receiver_aligned(methods: dict[str, list[tuple[str, dict[str, str]]]], from_domain: str, org: str) -> bool:
    """Whether the receiver's results vouch for from_domain: a DMARC pass, or an aligned DKIM or SPF pass."""
    dmarc = methods.get("dmarc") or []
    verdict = _verdict(dmarc)
    if verdict == "fail":
        return False  # the receiver checked alignment itself and found none: no other clause overrides it
    dmarc_from = next((_domain_of(p.get("header.from")) for r, p in dmarc if r == "pass"), None)
    return ((verdict == "pass" and (dmarc_from is None or dmarc_from == from_domain))
            or _aligned_pass(methods.get("dkim") or [], ("header.d", "header.i"), org)
            or _aligned_pass(methods.get("spf") or [], ("smtp.mailfrom", "smtp.helo"), org))


def _local_verdict(local_dkim: Sequence[tuple[str, str]]) -> str:
    for _, result in local_dkim:
        if result == "pass":
            return "pass"
    return local_dkim[0][1] if local_dkim else "none"


def sender_auth(auth_results: Sequence[str], from_addr: str | None, trusted_authserv_ids: Sequence[str] = (),
                local_dkim: Sequence[tuple[str, str]] | None = None) -> SenderAuth:
    """Who vouches for the From domain: the trusted receiver's headers, else DKIM verified here, else nobody."""
    from_domain = _domain_of(from_addr)
    org = organisational_domain(from_domain) if from_domain else None
    authserv_id, methods = receiver_stamp(auth_results, trusted_authserv_ids)
    dkim, spf, dmarc = methods.get("dkim") or [], methods.get("spf") or [], methods.get("dmarc") or []
    local = local_dkim or ()
    verified_by: str | None = None
    if from_domain and org and authserv_id is not None and _receiver_aligned(methods, from_domain, org):
        verified_by = "authserv:" + authserv_id
    elif org and any(result == "pass" and organisational_domain(domain) == org for domain, result in local):
        verified_by = "dkim"
    dkim_verdict = "pass" if verified_by == "dkim" else _verdict(dkim) if dkim else _local_verdict(local)
    return SenderAuth(from_domain, dkim_verdict, _verdict(spf), _verdict(dmarc), verified_by is not None,
                      authserv_id, verified_by)
