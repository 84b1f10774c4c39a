"""Extraction: the labelled verification corpus, then one test per rule."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mailgent_mcp.inbox.extract import (
    TEXT_CAP,
    extract,
    find_codes,
    html_to_text,
    sender_auth,
)
from mailgent_mcp.inbox.extract.html import NESTED_TOO_DEEPLY
from mailgent_mcp.inbox.parse import parse_message

CORPUS = Path(__file__).parent / "data" / "verification"
CORPUS_RECEIVER = ("mx.mailgent.test",)  # the authserv-id of the corpus's receiving server
MANIFEST: list[dict[str, Any]] = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))


def codes_of(**fields: Any) -> list[str]:
    return [c.code for c in extract(**fields).codes]


def test_the_corpus_is_large_and_varied() -> None:
    assert len(MANIFEST) >= 80
    raw = b"".join((CORPUS / e["file"]).read_bytes() for e in MANIFEST)
    for charset in (b"iso-8859-1", b"shift_jis", b"koi8-r", b"gb2312", b"euc-kr", b"quoted-printable", b"base64"):
        assert charset in raw
    assert sum(1 for e in MANIFEST if not e["codes"]) >= 15
    assert {e["first_link"]["kind"] for e in MANIFEST if e["first_link"]} >= {"verify", "magic_signin", "reset", "other"}


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_corpus_mail_gives_exactly_its_labelled_codes_and_first_link(entry: dict[str, Any]) -> None:
    parsed = parse_message((CORPUS / entry["file"]).read_bytes(), CORPUS_RECEIVER)
    assert parsed.extraction is not None
    found = parsed.extraction
    assert [c.code for c in found.codes] == entry["codes"]
    first = {"kind": found.links[0].kind, "url": found.links[0].url} if found.links else None
    assert first == entry["first_link"]
    assert found.auth.aligned == entry["aligned"]
    assert len(found.extracted_text) <= TEXT_CAP


# -- codes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "code"), [
    ("Your code is 123-456.", "123456"),
    ("Your code is 123 456.", "123456"),
    ("G-123456 is your Google verification code.", "123456"),
    ("Your confirmation code: X7K-9QZ", "X7K9QZ"),
    ("Ihr Bestätigungscode: 482913", "482913"),
    ("Votre code de vérification : 482913", "482913"),
    ("Tu código es 482913", "482913"),
    ("Seu código é 482913", "482913"),
    ("Il tuo codice è 482913", "482913"),
    ("Je verificatiecode is 482913", "482913"),
    ("Ваш код: 482913", "482913"),
    ("验证码：482913，5分钟内有效", "482913"),
    ("認証コード：４８２９１３", "482913"),
    ("인증번호 [482913]", "482913"),
])
def test_code_shapes_and_languages(text: str, code: str) -> None:
    assert codes_of(text=text) == [code]


def test_prefixed_codes_are_returned_as_the_digits_one_types() -> None:
    [code] = extract(subject="G-739214 is your verification code").codes
    assert (code.code, code.kind, code.source) == ("739214", "numeric", "subject")
    assert "G-739214" in code.evidence


@pytest.mark.parametrize("text", [
    "Your code was requested on 2026-11-26 at 10:42.",
    "Your code: see below. Copyright 2026",
    "Code requested at 14:05:33.",
    "Your code costs $1,299.00 or €49,99.",
    "Verification questions? Call +1 (555) 123-4567 or 0800 123 4567.",
    "Your verification for order #48291733.",
    "Verification code for invoice number 88123456",
    "Verification: Acme Ltd, 10115 Berlin",
    "Verification of card ending in 4242",
    "Turn on 2-step verification with a code in 3 steps.",
    "Use promo code SAVE2026 for 25% off.",
    "Verification code sent to https://x.test/v?id=482913",
])
def test_distractors_are_never_codes(text: str) -> None:
    assert codes_of(text=text) == []


def test_no_keyword_no_code() -> None:
    assert codes_of(text="Meeting 482913 moved.\n\nSee you there.") == []


def test_one_digit_per_table_cell_is_one_code() -> None:
    cells = "".join(f"<td>{d}</td>" for d in "592038")
    assert codes_of(html=f"<p>Your verification code:</p><table><tr>{cells}</tr></table>") == ["592038"]


def test_a_resend_lists_the_newest_code_first() -> None:
    text = "Your new code is 222222.\n\nOn Tue, Acme wrote:\n> Your code is 111111.\n"
    assert codes_of(text=text) == ["222222", "111111"]
    assert [c.code for c in find_codes("", "New code: 333333.\nThe previous code 444444 has expired.")] == \
        ["333333", "444444"]


# -- text -------------------------------------------------------------------------------------------


def marketing_html(code: str) -> str:
    """A 300 KB ESP newsletter with a code: CSS, hidden preheader, pixels, tracked links everywhere."""
    css = "".join(f".c{i}{{color:#{i % 999:03d};padding:{i % 9}px}}\n" for i in range(1500))
    items = "".join(
        f'<tr><td class="c{i}" style="padding:8px"><a href="https://click.esp.test/track/{i:06d}?u=abc">'
        f'<img src="https://img.esp.test/p/{i}.jpg" alt="Product {i}" width="120"></a>'
        f'<p style="font-size:14px">Deal number {i}: only ${i}.99 with free shipping.</p>'
        f'<img src="https://t.esp.test/pixel/{i}.gif" width="1" height="1"></td></tr>'
        for i in range(900))
    html = (f"<html><head><style>{css}</style><script>var t='tracking';</script></head><body>"
            f'<div style="display:none;max-height:0;overflow:hidden">HIDDEN PREHEADER text</div>'
            f'<span style="font-size:0px;opacity:0">SECRET PREVIEW</span>'
            f"<h1>Your sign-in code</h1><p>Your verification code is</p><p><b>{code}</b></p>"
            f"<table>{items}</table></body></html>")
    assert len(html) >= 300_000
    return html


def test_a_300kb_marketing_mail_gives_short_clean_text_that_keeps_the_code() -> None:
    found = extract(subject="Your code", html=marketing_html("583920"))
    text = found.extracted_text
    assert len(text) <= TEXT_CAP
    assert "583920" in text and [c.code for c in found.codes] == ["583920"]
    assert "more characters cut" in text
    assert not re.search(r"\{|\}|padding:|color:#", text)  # no CSS
    assert "esp.test" not in text and "http" not in text  # no tracking URLs
    assert "HIDDEN PREHEADER" not in text and "SECRET PREVIEW" not in text and "tracking" not in text


@pytest.mark.parametrize("style", ["display:none", "display: none !important", "max-height:0px;overflow:hidden",
                                   "font-size:0", "opacity:0", "mso-hide:all", "visibility:hidden"])
def test_hidden_elements_are_dropped(style: str) -> None:
    rendered = html_to_text(f'<div style="{style}">PREHEADER</div><p>Body</p>')
    assert rendered.main == "Body"


def test_quotes_signatures_and_footers_are_stripped() -> None:
    text = ("Your code is 482913.\n\nThanks\n-- \nJane, Support\n")
    assert extract(text=text).extracted_text == "Your code is 482913.\n\nThanks"
    text = "Hello!\n\nOn Mon, Bob <b@x.test> wrote:\n> earlier mail\n"
    assert extract(text=text).extracted_text == "Hello!"
    html = "<p>Hello!</p><blockquote type='cite'>old</blockquote><p>© 2026 Acme Inc. All rights reserved.</p>"
    assert extract(html=html).extracted_text == "Hello!"


def test_text_is_normalised() -> None:
    text = extract(text="Code:\u200b ４８２９１３ &amp; more\u00a0\u00a0words\r\n\r\n\r\n\r\nend").extracted_text
    assert text == "Code: 482913 & more words\n\nend"


def test_html_wins_when_the_plain_part_is_a_stub() -> None:
    found = extract(text="View this email in your browser.", html="<p>Your verification code is 482913</p>")
    assert found.extracted_text == "Your verification code is 482913"


def test_verify_link_targets_are_kept_beside_their_text() -> None:
    html = '<a href="https://x.test/verify?t=abcdefghijklmnopqrstuvwxyz">Verify email</a> <a href="https://x.test/">Home</a>'
    assert extract(html=html).extracted_text == "Verify email <https://x.test/verify?t=abcdefghijklmnopqrstuvwxyz> Home"


def test_hostile_nesting_is_left_out_in_bounded_work() -> None:
    # Too deep for lexbor, and no cheaper reading could tell what of it is hidden: none of it is used.
    found = extract(html="<div>" * 100_000 + "Your code is 482913")
    assert found.codes == () and found.extracted_text == NESTED_TOO_DEEPLY


# -- links ---------------------------------------------------------------------------------------


def test_links_are_ranked_and_decoded_from_both_bodies() -> None:
    token = "abcdefghijklmnopqrstuvwxyz0123"
    html = (f'<a href="https://x.test/unsubscribe?u=1">Unsubscribe</a> <a href="https://x.test/help">Help</a>'
            f'<a href="https://x.test/confirm?a=1&amp;t={token}">Confirm your email</a>')
    text = f"Reset your password: https://x.test/reset/{token}.\nmailto:help@x.test"
    links = extract(html=html, text=text).links
    assert [(link.kind, link.url) for link in links] == [
        ("verify", f"https://x.test/confirm?a=1&t={token}"), ("reset", f"https://x.test/reset/{token}"),
        ("other", "https://x.test/help"), ("unsubscribe", "https://x.test/unsubscribe?u=1")]


def test_a_login_page_link_is_not_a_magic_link() -> None:
    [link] = extract(html='<a href="https://x.test/login">Sign in</a>').links
    assert link.kind == "other"


# -- sender trust -----------------------------------------------------------------------------------

PASS = "mx.receiver.test; dkim=pass header.d=bank.test; spf=pass smtp.mailfrom=bank.test; dmarc=pass header.from=bank.test"
FAIL = "mx.receiver.test; dkim=fail header.d=bank.test; spf=fail smtp.mailfrom=evil.test; dmarc=fail header.from=bank.test"


RECEIVER = ("mx.receiver.test",)


def test_sender_auth_reads_the_receivers_header() -> None:
    auth = sender_auth([PASS], "alerts@mail.bank.test", RECEIVER)
    assert (auth.from_domain, auth.dkim, auth.spf, auth.dmarc, auth.aligned, auth.authserv_id) == \
        ("mail.bank.test", "pass", "pass", "pass", True, "mx.receiver.test")


def test_a_forged_lower_authentication_results_header_is_ignored() -> None:
    auth = sender_auth([FAIL, PASS], "alerts@bank.test", RECEIVER)
    assert (auth.dkim, auth.spf, auth.dmarc, auth.aligned) == ("fail", "fail", "fail", False)


def test_alignment_needs_the_same_organisational_domain() -> None:
    esp = "mx.r.test; dkim=pass header.d=esp.test; spf=pass smtp.mailfrom=b@esp.test; dmarc=none"
    assert not sender_auth([esp], "alerts@bank.test", ("mx.r.test",)).aligned
    subdomain = "mx.r.test; dkim=pass header.d=bank.test; spf=none; dmarc=none"
    assert sender_auth([subdomain], "alerts@eu.mail.bank.test", ("mx.r.test",)).aligned
    # github.io is a public suffix: two users' sites there are different organisations.
    assert not sender_auth(["mx.r.test; dkim=pass header.d=mallory.github.io"], "x@alice.github.io",
                           ("mx.r.test",)).aligned


def test_no_or_unparseable_header_vouches_for_nothing() -> None:
    assert sender_auth([], "a@bank.test", RECEIVER).aligned is False
    assert sender_auth(["garbage ;;; ="], "a@bank.test", RECEIVER).dkim == "none"


def test_untrusted_auth_results_are_not_read() -> None:
    found = extract(text="hi", from_addr="a@bank.test", auth_results=[PASS])
    assert (found.auth.from_domain, found.auth.dkim, found.auth.aligned) == ("bank.test", "none", False)
    other = extract(text="hi", from_addr="a@bank.test", auth_results=[PASS], trusted_authserv_ids=("mx.other.test",))
    assert (other.auth.dkim, other.auth.aligned, other.auth.authserv_id) == ("none", False, None)


@pytest.mark.parametrize("text", ["x" * 200_000, "X" * 200_000, "1" * 200_000, "A1" * 100_000, "x@" * 100_000,
                                  "*" * 200_000, "Your code 123456 is here. " * 8000, "+1 " * 60_000])
def test_pathological_text_still_gives_a_result(text: str) -> None:
    # Each of these once took seconds to minutes (quadratic regexes); the parse time limit is 5 s.
    for fields in ({"text": text}, {"html": text}):
        assert len(extract(**fields).extracted_text) <= TEXT_CAP



def test_word_patterns_on_lowered_text_match_like_the_case_insensitive_ones() -> None:
    # The word patterns run without re.IGNORECASE on _lower()ed text, the code words with each
    # leading \b moved behind the first character: spans must be those of the plain re.I pattern.
    import random

    from mailgent_mcp.inbox.extract.codes import _CODE_WORDS, _CODE_WORDS_SOURCE
    from mailgent_mcp.inbox.extract.common import fold_case as _lower

    reference = re.compile(_CODE_WORDS_SOURCE, re.I)
    words = ["Code", "CODES", "passcode", "Verificationcode", "Bestätigungscode", "OTP", "pin-code", "Sign-In Code",
             "xcode", "2FA", "Two-Factor", "КОД", "Kodu", "KODE", "验证码", "コード", "인증 번호", "Código", "One-time",
             "Authentication", "token", "İnfo", "ſecurity code", "your", "is", "123456", "\n", ".", "—"]
    rng = random.Random(7)
    for _ in range(3000):
        text = rng.choice([" ", "", "-"]).join(rng.choice(words) for _ in range(rng.randint(1, 12)))
        lowered = _lower(text)
        assert len(lowered) == len(text)
        assert [m.span() for m in _CODE_WORDS.finditer(lowered)] == [m.span() for m in reference.finditer(text)], text
