"""Real mail corpora and hostile mail through a real Dovecot and the IMAP sync.

Every message of CPython's test_email corpus and of enmime's test mails goes through the sync
without stopping it, and the hostile cases of DOVECOT.md are cached in bounded time. Each file
is delivered over LMTP as it is; a file LMTP refuses is recorded and does not count. What the
cache must hold after one sync is what Dovecot holds (SELECT's EXISTS).
"""

from __future__ import annotations

import smtplib
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import DATA, db_rows
from .dovecot import Dovecot, dovecot  # noqa: F401 - fixture
from .test_imap_sync import account, mail, running, subjects_when, syncing

CPYTHON_TEST_EMAIL = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"
ENMIME = DATA / "mail_corpus" / "enmime"  # enmime's testdata, shipped (MIT): see its README.md
ENMIME_MAILS = 96
HOSTILE_BOUND = 60.0  # seconds for the first sync of all the hostile mails together


def corpus(name: str) -> list[Path]:
    """The corpus's mail files, in a stable order."""
    if name == "enmime":
        files = sorted(p for p in ENMIME.rglob("*") if p.suffix in (".raw", ".golden"))
        assert len(files) == ENMIME_MAILS, "tests/data/mail_corpus/enmime is incomplete"
        return files
    files = sorted(CPYTHON_TEST_EMAIL.glob("msg_*.txt"))
    if not files:
        pytest.skip(f"CPython's test_email corpus is not installed ({CPYTHON_TEST_EMAIL}); "
                    f"Debian ships it in libpython{sys.version_info.major}.{sys.version_info.minor}-testsuite")
    return files


def deliver_all(server: Dovecot, files: list[Path]) -> dict[str, str]:
    """Deliver each file's bytes over LMTP; the files LMTP refused, with its answer."""
    refused = {}
    for path in files:
        try:
            server.deliver(path.read_bytes())
        except smtplib.SMTPException as exc:
            refused[path.name] = f"{type(exc).__name__}: {exc}"
    return refused


def in_dovecot(server: Dovecot) -> int:
    """Messages in the user's INBOX, as Dovecot counts them."""
    client = server.connect()
    try:
        return int(client.select_folder("INBOX", readonly=True)[b"EXISTS"])
    finally:
        client.logout()


def cached(home: Path) -> int:
    """Messages in the cache, read straight from vault.db."""
    [(count,)] = db_rows(home, "SELECT count(*) FROM messages")
    return int(str(count))


def delivered_corpus(server: Dovecot, name: str) -> int:
    """Deliver a corpus; how many messages Dovecot took (nearly all, or the corpus is not under test)."""
    files = corpus(name)
    refused = deliver_all(server, files)
    taken = in_dovecot(server)
    assert taken == len(files) - len(refused), refused
    assert taken >= 0.9 * len(files), refused
    return taken


@pytest.mark.parametrize("name", ["cpython", "enmime"])
async def test_every_corpus_message_goes_through_one_sync(home: Path, dovecot: Dovecot, name: str) -> None:
    taken = delivered_corpus(dovecot, name)
    async with syncing(home, account(dovecot), dovecot.password) as (_, sync):
        assert await sync.sync_once() == taken
        assert await sync.sync_once() == 0
    assert cached(home) == taken


@pytest.mark.parametrize("name", ["cpython", "enmime"])
async def test_no_cached_subject_holds_a_line_break(home: Path, dovecot: Dovecot, name: str) -> None:
    delivered_corpus(dovecot, name)
    async with syncing(home, account(dovecot), dovecot.password) as (_, sync):
        await sync.sync_once()
    broken = [str(s) for (s,) in db_rows(home, "SELECT subject FROM messages") if set("\r\n") & set(str(s))]
    assert broken == []


async def test_a_uidvalidity_change_leaves_each_corpus_message_cached_once(home: Path, dovecot: Dovecot) -> None:
    taken = delivered_corpus(dovecot, "enmime")
    async with syncing(home, account(dovecot), dovecot.password) as (_, sync):
        assert await sync.sync_once() == taken
        await sync.disconnect()
        dovecot.reset_uidvalidity()
        await sync.sync_once()
    assert cached(home) == taken


# --- hostile mail (DOVECOT.md): each is cached, in bounded time, and the sync goes on --------------

HEADER = "From: Service <no-reply@service.example>\r\nTo: agent@example.test\r\n"


def deep_nesting(depth: int = 2000) -> str:
    """multipart/mixed inside multipart/mixed, depth times (mail-parser: MailParserRecursionError)."""
    opening = "".join(f'Content-Type: multipart/mixed; boundary="b{n}"\r\n\r\n--b{n}\r\n' for n in range(depth))
    closing = "".join(f"--b{n}--\r\n" for n in reversed(range(depth)))
    innermost = "Content-Type: text/plain\r\n\r\ndeep\r\n"
    return f"{HEADER}Subject: deep nesting\r\nMIME-Version: 1.0\r\n{opening}{innermost}{closing}"


def many_received(count: int = 50_000) -> str:
    """50k Received headers above the rest, as relays prepend them (a 4 MB header block)."""
    received = "".join(f"Received: from relay{n}.example by mx.example; Tue, 1 Jul 2025 10:00:00 +0000\r\n"
                       for n in range(count))
    return f"{received}{HEADER}Subject: many received\r\n\r\nbody\r\n"


def encoded_word_subject(words: int = 60_000) -> str:
    """A subject of 60k encoded-words (the stdlib's decoding is quadratic: CPython issue 136063)."""
    return HEADER + "Subject: " + "\r\n ".join(["=?utf-8?q?a?="] * words) + "\r\n\r\nbody\r\n"


def one_long_line(size: int = 5 * 2**20) -> str:
    """A body of one 5 MiB line."""
    return f"{HEADER}Subject: one long line\r\n\r\n{'x' * size}\r\n"


def no_separator() -> str:
    """No empty line between header and body."""
    return f"{HEADER}Subject: no separator\r\nthis line is no header, and no empty line came before it\r\n"


Row = tuple[str, str | None, int]  # subject, problem, length of the text body
HOSTILE: list[tuple[Callable[[], str], Callable[[Row], bool]]] = [
    (deep_nesting, lambda r: r[0] == "deep nesting" and r[1] is not None),
    (many_received, lambda r: r[1] is not None),  # the header block is cut: the subject below it too
    (encoded_word_subject, lambda r: r[1] is not None and set(r[0]) == {"a"}),
    (one_long_line, lambda r: r[0] == "one long line" and r[2] >= 5 * 2**20),
    (no_separator, lambda r: r[0] == "no separator"),
]


async def test_hostile_mail_is_cached_in_bounded_time_and_the_sync_goes_on(home: Path, dovecot: Dovecot) -> None:
    for make, _ in HOSTILE:
        dovecot.deliver(make())
    dovecot.deliver(mail("normal after them"))
    async with syncing(home, account(dovecot), dovecot.password) as (inbox, sync), running(sync):
        started = time.monotonic()
        subjects = await subjects_when(inbox, len(HOSTILE) + 1, timeout=HOSTILE_BOUND)
        assert len(subjects) == len(HOSTILE) + 1, f"{len(subjects)} cached after {HOSTILE_BOUND} s"
        assert time.monotonic() - started < HOSTILE_BOUND
        assert subjects[-1] == "normal after them"
        dovecot.deliver(mail("pushed after them"))
        assert (await subjects_when(inbox, len(HOSTILE) + 2))[-1] == "pushed after them"
        assert sync.status.errors == 0 and sync.status.connected
    rows = db_rows(home, "SELECT subject, problem, length(text_body) FROM messages ORDER BY uid")
    assert len(rows) == len(HOSTILE) + 2
    for (make, expected), row in zip(HOSTILE, rows[:len(HOSTILE)], strict=True):
        assert expected((str(row[0]), None if row[1] is None else str(row[1]), int(str(row[2])))), \
            (make.__name__, row)
    assert [r[1] for r in rows[-2:]] == [None, None]
