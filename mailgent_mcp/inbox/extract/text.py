"""The readable text of a mail: the HTML or the plain part, quoted replies, signatures and legal footers cut, capped."""

from __future__ import annotations

import bisect
import re

from mailgent_mcp.inbox.extract.codes import URL, code_word_matches, find_codes
from mailgent_mcp.inbox.extract.common import fold_case, word_pattern

_STUB = re.compile(r"(view|read|open) (this|it) (e-?mail|message|newsletter)? ?(in|on) (a|your) (web )?browser|"
                   r"does not support html|html-capable|enable html", re.I)


def prefer_html(plain: str, html_text: str) -> bool:
    """Take the HTML rendering when there is no plain text, or it is a stub, or much poorer."""
    if not plain:
        return bool(html_text)
    if len(plain) < 400 and _STUB.search(plain):
        return True
    return len(_words(html_text)) > 2 * len(_words(plain)) + 10


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", URL.sub(" ", text))


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
# start of the text before it), so re jumps from one "-" to the next instead of trying
# every line of a long newsletter.
_SIGNATURE_SEPARATOR = re.compile(r"(?m)-(?<![^\n]-)- ?$")


def strip_signature(text: str) -> str:
    """Cut at the RFC 3676 §4.3 signature separator ("-- " on its own line)."""
    at = _SIGNATURE_SEPARATOR.search(text)
    return text[: at.start()].rstrip() if at else text


_FOOTER = word_pattern(
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
    # No match of _FOOTER runs over a paragraph break (nor of the code words or URL), so a
    # paragraph matches alone where a search of the whole text finds a match in it. Above the
    # paragraph of the first _FOOTER match no paragraph is a footer, and nothing is cut there.
    lowered = fold_case(text[tail:])
    found = _FOOTER.search(lowered)
    if found is None:
        return text.strip()  # most mails end here
    end = len(text)
    index = len(paragraphs) - 1
    while end - len(paragraphs[index]) > tail + found.start():
        end -= len(paragraphs[index]) + 2
        index -= 1
    region = end - len(paragraphs[index])  # the paragraph of the first match, and all after it
    lower = lowered[region - tail:]  # fold_case keeps every character in its place
    footers = [m.start() + region for m in _FOOTER.finditer(lower)]
    words = [m.start() + region for m in code_word_matches(lower)]
    urls = [m.start() for m in URL.finditer(text, region)]
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
