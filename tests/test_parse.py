"""Parsing untrusted mail: real corpora, hostile shapes, size caps and the time limit."""

from __future__ import annotations

import asyncio
import sysconfig
import time
from pathlib import Path

import pytest

from mailgent_mcp.inbox import parse
from mailgent_mcp.inbox.parse import MAX_HEADER_BYTES, Parser, parse_message

CPYTHON_CORPUS = sorted((Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data").glob("msg_*.txt"))

SIMPLE = (
    b"From: GitHub <noreply@GitHub.com>\r\nTo: Agent <agent+gh@example.test>, b@example.test\r\n"
    b"Cc: c@example.test\r\nSubject: =?utf-8?q?Your_code_is_123456?=\r\nMessage-ID: <abc@github.com>\r\n"
    b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
    b"Authentication-Results: mx.example.test; dkim=pass header.d=github.com; spf=pass\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
    b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYour code is 123456\r\n"
    b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Your code is <b>123456</b></p>\r\n"
    b"--b\r\nContent-Type: application/pdf; name=\"invoice.pdf\"\r\nContent-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename=\"invoice.pdf\"\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n"
)


def test_a_multipart_message_yields_every_field() -> None:
    m = parse_message(SIMPLE)
    assert (m.from_addr, m.from_name) == ("noreply@github.com", "GitHub")
    assert m.to == ("agent+gh@example.test", "b@example.test") and m.cc == ("c@example.test",)
    assert m.subject == "Your code is 123456" and m.message_id == "<abc@github.com>"
    assert m.date == 1795428000.0
    assert "Your code is 123456" in m.text and "<b>123456</b>" in m.html
    assert [(a.name, a.content_type) for a in m.attachments] == [("invoice.pdf", "application/pdf")]
    assert m.attachments[0].size == 9  # "%PDF-1.4\n" decoded from base64
    assert m.auth_results == ("mx.example.test; dkim=pass header.d=github.com; spf=pass",)
    assert m.raw_size == len(SIMPLE) and m.problem is None


@pytest.mark.parametrize("path", CPYTHON_CORPUS, ids=[p.name for p in CPYTHON_CORPUS])
def test_cpython_test_email_corpus_never_raises(path: Path) -> None:
    raw = path.read_bytes()
    m = parse_message(raw)
    assert m.raw_size == len(raw)
    assert isinstance(m.subject, str) and isinstance(m.text, str)


def test_the_corpus_is_there() -> None:
    assert len(CPYTHON_CORPUS) >= 40, "CPython's test_email corpus is missing from this Python"


def _nested(depth: int) -> bytes:
    parts = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(depth))
    return b"From: a@example.test\r\nSubject: deep\r\nMIME-Version: 1.0\r\n" + parts + b"Content-Type: text/plain\r\n\r\nx\r\n"


HOSTILE = {
    "2000-deep-nesting": _nested(2000),
    "50k-received-headers": b"From: a@example.test\r\n"
    + b"Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n" * 50_000 + b"Subject: r\r\n\r\nbody\r\n",
    "60k-encoded-words": b"From: a@example.test\r\nSubject: " + b" ".join([b"=?utf-8?q?a?="] * 60_000) + b"\r\n\r\nb\r\n",
    "no-header-end": b"From: a@example.test\r\nSubject: x" + b"y" * 300_000,
    "binary-garbage": bytes(range(256)) * 1000,
    "empty": b"",
}


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_mail_is_bounded_and_kept(case: str) -> None:
    raw = HOSTILE[case]
    start = time.perf_counter()
    m = parse_message(raw)
    assert time.perf_counter() - start < 10  # a bound on pathological input, not a speed test
    assert m.raw_size == len(raw)


def test_deep_nesting_is_kept_as_headers_with_a_marker() -> None:
    m = parse_message(HOSTILE["2000-deep-nesting"])
    assert m.problem is not None and "unparseable" in m.problem
    assert m.subject == "deep" and m.from_addr == "a@example.test"


def test_an_oversized_header_block_is_cut_and_marked() -> None:
    m = parse_message(HOSTILE["50k-received-headers"])
    assert m.problem is not None and "cut" in m.problem and len(HOSTILE["50k-received-headers"]) > MAX_HEADER_BYTES


def test_an_oversized_message_is_headers_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse, "MAX_MESSAGE_BYTES", 1000)
    m = parse_message(SIMPLE + b"x" * 2000)
    assert m.problem is not None and "over the 1000-byte limit" in m.problem
    assert m.subject == "Your code is 123456" and m.text == "" and m.from_addr == "noreply@github.com"


async def test_parser_processes_enforce_the_time_limit_and_recover() -> None:
    slow = b"From: a@example.test\r\nSubject: " + b" ".join([b"=?utf-8?q?a?="] * 9000) + b"\r\n\r\nb\r\n"
    parser = Parser(workers=1, time_limit=5.0)
    try:
        assert (await parser.parse(SIMPLE)).subject == "Your code is 123456"  # warms a worker up
        parser._time_limit = 0.1  # the slow subject takes 0.8-1.5 s here: far over 0.1 s
        start = time.perf_counter()
        m = await parser.parse(slow)
        assert time.perf_counter() - start < 2
        assert m.problem == "parsing took over 0.1 s" and m.from_addr == "a@example.test"
        parser._time_limit = 5.0
        after = await parser.parse(SIMPLE)  # the killed worker is replaced
        assert after.subject == "Your code is 123456" and after.problem is None
    finally:
        parser.close()


def numbered(n: int, extra: bytes = b"") -> bytes:
    return (b"From: Sender %d <s%d@example.test>\r\nTo: agent@example.test\r\nSubject: message %d\r\n%s"
            b"Content-Type: text/plain\r\n\r\nbody %d\r\n" % (n, n, n, extra, n))


async def test_parse_many_parses_a_batch_across_the_workers_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    raws = [numbered(n) for n in range(7)]
    monkeypatch.setattr(parse, "MAX_MESSAGE_BYTES", max(len(r) for r in raws) + 10)
    raws.insert(3, numbered(99, b"X-Padding: " + b"x" * 100 + b"\r\n"))  # over the cap: headers only
    parser = Parser(workers=2)
    try:
        parsed = await parser.parse_many(raws)
        assert await parser.parse_many([]) == []
    finally:
        parser.close()
    assert [m.subject for m in parsed] == [f"message {n}" for n in (0, 1, 2, 99, 3, 4, 5, 6)]
    assert [m.text.strip() for m in parsed] == [f"body {n}" for n in (0, 1, 2)] + [""] + [
        f"body {n}" for n in (3, 4, 5, 6)]
    assert parsed[3].problem is not None and "-byte limit" in parsed[3].problem
    assert all(m.problem is None for i, m in enumerate(parsed) if i != 3)


async def test_a_chunk_whose_worker_dies_keeps_its_other_messages() -> None:
    from .helpers.parse_faults import FaultyParser

    raws = [numbered(n, b"X-Test-Fault: exit\r\n" if n == 4 else b"") for n in range(6)]
    parser = FaultyParser(workers=2)
    try:
        parsed = await parser.parse_many(raws)
        again = await parser.parse_many([numbered(10), numbered(11)])  # a new pool took over
    finally:
        parser.close()
    assert [m.subject for m in parsed] == [f"message {n}" for n in range(6)]
    assert parsed[4].problem == "the parser process died on this message" and parsed[4].text == ""
    assert [m.text.strip() for i, m in enumerate(parsed) if i != 4] == [f"body {n}" for n in (0, 1, 2, 3, 5)]
    assert all(m.problem is None for i, m in enumerate(parsed) if i != 4)
    assert [(m.subject, m.problem) for m in again] == [("message 10", None), ("message 11", None)]


async def test_a_chunk_that_overruns_is_parsed_again_one_at_a_time() -> None:
    """The hanging message alone is kept as headers with a marker; the rest of its chunk is parsed."""
    from .helpers.parse_faults import FaultyParser

    raws = [numbered(n, b"X-Test-Fault: hang\r\n" if n == 1 else b"") for n in range(6)]
    parser = FaultyParser(workers=2, time_limit=3.0)  # a worker's start and a parse fit well inside
    try:
        parsed = await parser.parse_many(raws)
    finally:
        parser.close()
    assert [m.subject for m in parsed] == [f"message {n}" for n in range(6)]
    assert parsed[1].problem == "parsing took over 3 s" and parsed[1].from_addr == "s1@example.test"
    assert [m.text.strip() for i, m in enumerate(parsed) if i != 1] == [f"body {n}" for n in (0, 2, 3, 4, 5)]
    assert all(m.problem is None for i, m in enumerate(parsed) if i != 1)


async def test_extract_many_extracts_across_the_workers_and_goes_past_a_hanging_or_crashing_message() -> None:
    """What `inbox reindex` runs: chunks per worker; the culprits alone end empty (None), the rest extracted."""
    import dataclasses

    from mailgent_mcp.inbox.parse import ExtractInput

    from .helpers.parse_faults import FaultyParser

    inps = [ExtractInput(f"Your code {n}", f"Your verification code is {100000 + n}.", "", "a@x.test", (), ())
            for n in range(6)]
    inps[1] = dataclasses.replace(inps[1], subject="X-Test-Fault: hang")
    inps[4] = dataclasses.replace(inps[4], subject="X-Test-Fault: exit")
    parser = FaultyParser(workers=2, time_limit=3.0)
    try:
        out = await parser.extract_many(inps)
        again = await parser.extract_many(inps[:1])  # a new pool took over
        assert await parser.extract_many([]) == []
    finally:
        parser.close()
    assert out[1] is None and out[4] is None
    assert [e.codes[0].code for i, e in enumerate(out) if e is not None] == [str(100000 + n) for n in (0, 2, 3, 5)]
    assert again[0] is not None and again[0].codes[0].code == "100000"


async def test_a_parse_caught_in_another_parses_overrun_is_tried_again() -> None:
    """One worker: the second message waits behind a hanging one, whose overrun kills the pool under it."""
    from .helpers.parse_faults import FaultyParser

    parser = FaultyParser(workers=1, time_limit=3.0)
    try:
        hanging = asyncio.create_task(parser.parse(numbered(1, b"X-Test-Fault: hang\r\n")))
        await asyncio.sleep(1.0)  # its limit ends a second before the waiting one's
        waiting = await parser.parse(numbered(2))
        assert (await hanging).problem == "parsing took over 3 s"
    finally:
        parser.close()
    assert (waiting.subject, waiting.text.strip(), waiting.problem) == ("message 2", "body 2", None)


@pytest.mark.parametrize("path", [*CPYTHON_CORPUS, *sorted((Path(__file__).parent / "data").rglob("*.eml")),
                                  *sorted((Path(__file__).parent / "data").rglob("*.raw"))], ids=lambda p: p.name)
def test_fields_come_from_what_mail_parser_decoded_while_parsing(path: Path) -> None:
    # _parse reads the headers mail-parser decoded during its parse (mail.mail) instead of
    # decoding them again through mail.subject, mail.headers...: the values must be the same.
    import mailparser

    mail = mailparser.parse_from_bytes(path.read_bytes())
    m = parse.parse_message(path.read_bytes(), extracting=False)
    assert m.subject == parse.unfold(str(mail.subject or ""))
    assert m.message_id == ((str(mail.message_id).strip() or None) if mail.message_id else None)
    assert (m.to, m.cc) == (tuple(a for _, a in parse._addresses(mail.to) if a),
                            tuple(a for _, a in parse._addresses(mail.cc) if a))
    from_pairs = parse._addresses(mail.from_)
    assert m.from_addr == (from_pairs[0][1] or None if from_pairs else None)
