"""One-time codes: candidates of known shapes near a code keyword, away from order, price and promotion words."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from mailgent_mcp.inbox.extract.common import (
    MAX_SCAN_CHARS,
    WORD_CHAR,
    fold_case,
    guarded_words,
    top_level_alternatives,
    word_pattern,
)
from mailgent_mcp.inbox.extract.result import Code

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
_CODE_WORDS = word_pattern(_CODE_WORDS_SOURCE)  # for fold_case()ed text
# The one alternative that keeps re from jumping ahead ("any word ending in code"), and the
# others without it: see code_word_matches.
_ANY_CODE_WORD = r"\b\w{0,24}code\b"
_CODE_WORDS_NOT_ANY = word_pattern(_CODE_WORDS_SOURCE.replace("|" + _ANY_CODE_WORD, ""))


def code_word_matches(lower: str) -> Iterator[re.Match[str]]:
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
    while start > 0 and WORD_CHAR.match(text, start - 1):
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
_NOT_CODE_PHRASE = word_pattern(
    "|".join(kind + "[- ]?codes?" for kind in top_level_alternatives(_CODE_KINDS)) + "|"
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
    guarded_words(_NOT_CODE_BEFORE_WORDS, "[a-z]") + r"[\s#:.\-–№]*(?:\w{0,12}[\s:#.\-]*)?$")
_NOT_CODE_AFTER = re.compile(r"^\s*(%|€|eur|usd|gbp|chf|\$|£|¥|₩|₽|руб|元|円|원|kr|px|pt|mb|kb|gb|ms|km|kg|mi|"
                             r"points|pts|miles|items|x\b|\+|[/.,]\d)")
# A promotion's line: "20% off" (searched only where the line holds a "%"), or a promotion word.
_PERCENT_OFF = re.compile(r"\d ?% ?(?:off|rabatt|de réduction|de descuento|de desconto|di sconto|korting)")
_PROMO_WORDS = word_pattern(r"\bsale\b|\bdiscount\b|\bcoupon\b|\bpromo\b|\bsave\b|скидк|折扣|優惠|割引|할인")
_NL_POSTCODE = re.compile(r" [A-Z]{2}\b")
_CITY = re.compile(r" [A-ZÄÖÜÉ][\wäöüéèß-]+")
_OLD_WORDS = word_pattern(r"previous|earlier|old(er)?\b|expired|no longer|invalid|replaced|vorherige|abgelaufen|"
                        r"ungültig|précédent|expiré|anterior|caducado|expirado|precedente|scaduto|vorige|verlopen|"
                        r"предыдущ|истек|之前|已失效|以前|期限切れ|이전|만료")
_NEW_WORDS = word_pattern(r"\bnew\b|latest|neue[rn]?\b|nouveau|nuevo|novo\b|nuovo|nieuwe|новый|新しい|新的|새")
_MONTHS = word_pattern("|".join(r"(?<![a-z])" + word for word in top_level_alternatives(
    r"jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|januar|märz|mai|juni|juli|okt|dez|"
                     r"janv|févr|mars|avr|juin|juil|août|sept|déc|ene|abr|ago|dic|fev|gen|mag|giu|lug|ott|"
                     r"янв|фев|мар|апр|ма[йя]|июн|июл|авг|сен|окт|ноя|дек|年|月|日|년|월|일|"
                     r"mon|tue|wed|thu|fri|sat|sun|since|seit|depuis|desde|dal|sinds|copyright")) + "|©")

# Masked before candidates are looked for: things made of digits that are never codes.
_ADDRESS_MASK = r"\b[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+"
URL = re.compile(r"(?:https?://|www\.)[^\s<>\"']+", re.I)
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

    lower is fold_case(text). These checks need no keyword, so they run first: the keyword
    search, the costliest step, then only looks around the candidates that are left.
    """
    line_start, line_end = cand.line_start, cand.line_end
    before_line = text[line_start:cand.start]
    not_code = _NOT_CODE_BEFORE.search(lower[max(line_start, cand.start - 40):cand.start])
    if (not_code and not next(code_word_matches(not_code.group()), None)) or _NOT_CODE_AFTER.match(lower[cand.end:line_end]):
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
    """Confidence that cand (not _ruled_out) is a one-time code, 0 when it is not one; lower is fold_case(text)."""
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
    """Spans of code words near the candidates in lower, a fold_case()ed text (only there: the word regexes are costly).

    code_words: the spans of code_word_matches(lower), taken as they are where a window is the whole text.
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
        words = code_words if start == 0 and end >= len(lower) else [m.span() for m in code_word_matches(window)]
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
        lower = fold_case(text)
        code_words = [m.span() for m in code_word_matches(lower)]
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
