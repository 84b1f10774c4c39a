"""The neutralising function of sender text, checked against Unicode itself and the URL grammar."""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest

from mailgent_mcp.inbox.untrusted import neutralise, usable_url

from .helpers.answers import BRACKET_RUN
from .test_answer_fence import FORGED


def test_every_control_format_surrogate_and_separator_character_of_unicode_is_removed() -> None:
    unseen = [chr(c) for c in range(sys.maxunicode + 1)
              if unicodedata.category(chr(c)) in ("Cc", "Cf", "Cs", "Zl", "Zp")]
    assert len(unseen) > 300
    for char in unseen:
        shown = neutralise(f"a{char}b", 10)
        assert shown in ("ab", "a b"), (hex(ord(char)), shown)  # whitespace controls become a space
        text = neutralise(f"a{char}b", 10, lines=True)
        assert text in ("ab", "a\nb", "a\tb"), (hex(ord(char)), text)


@pytest.mark.parametrize("forged", FORGED)
def test_no_run_of_angle_brackets_survives_even_after_nfkc(forged: str) -> None:
    for lines in (False, True):
        shown = neutralise(f"x {forged} y", 256, lines=lines)
        for form in (shown, unicodedata.normalize("NFKC", shown)):
            assert not BRACKET_RUN.search(form) and "<<" not in form.replace(" ", "") and ">>" not in form
        assert "END" in shown  # the words stay readable: only the brackets go


def test_fields_are_cut_to_their_bound_with_a_visible_ellipsis() -> None:
    assert neutralise("word " * 100_000, 256) == ("word " * 52)[:255].rstrip() + "…"
    assert len(neutralise("\u200b" * 1000 + "x" * 1000, 128)) == 128
    assert neutralise("short", 256) == "short"


def test_a_url_is_percent_encoded_where_a_character_may_not_stand_in_one() -> None:
    assert usable_url("https://x.example/a b<>\"{}|\\^`\u00e9\u202e?q=1&r=%zz%41#f") == (
        "https://x.example/a%20b%3C%3E%22%7B%7D%7C%5C%5E%60%C3%A9%E2%80%AE?q=1&r=%25zz%41#f")
    assert usable_url("https://x.example/" + "a" * 4078) is not None
    assert usable_url("https://x.example/" + "a" * 4079) is None  # over 4,096: dropped, never cut
    assert usable_url("javascript:alert(1)") is None
    encoded = usable_url("https://x.example/\x00\x1b\n" + "\ud800")
    assert encoded is not None and re.fullmatch(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+", encoded)


def test_the_fenced_text_bound_is_the_extractors_cap() -> None:
    from mailgent_mcp.inbox import extract, untrusted

    assert untrusted.MAX_TEXT == extract.TEXT_CAP
