"""The message cache on a real vault.db: each message once, filters, full text, marks, purge, migration."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mailgent_mcp.errors import InvalidInput
from mailgent_mcp.inbox import Inbox, parse_age
from mailgent_mcp.parse import parse_message
from mailgent_mcp.store import MIGRATIONS, SCHEMA_VERSION, MessageQuery, _statements
from mailgent_mcp.vault import Vault

from .conftest import db_rows


def mail(sender: str, to: str, subject: str, body: str, extra: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_each_message_is_cached_once_per_identity(home: Path) -> None:
    async with await Inbox.open(home) as inbox:
        parsed = parse_message(mail("a@example.test", "me@example.test", "Hi", "one"))
        first = await inbox.add("acct", "INBOX", 7, 1, parsed)
        again = await inbox.add("acct", "INBOX", 7, 1, parsed)
        other_validity = await inbox.add("acct", "INBOX", 8, 1, parsed)
        assert first is not None and again is None and other_validity not in (None, first)
        assert len(await inbox.read(MessageQuery(limit=100))) == 2


async def test_filters_newest_first(home: Path) -> None:
    clock = Clock()
    async with await Inbox.open(home, clock=clock) as inbox:
        rows = [
            ("acct", "noreply@github.com", "agent+gh@example.test", "Your GitHub code", "code 123456"),
            ("acct", "alerts@mail.github.com", "agent@example.test", "Security alert", "new sign-in from Paris"),
            ("other", "news@shop.example", "agent@example.test", "50% off_today", "a receipt and a coupon"),
        ]
        for uid, (account, sender, to, subject, body) in enumerate(rows, 1):
            clock.now += 60
            await inbox.add(account, "INBOX", 1, uid, parse_message(mail(sender, to, subject, body)))

        async def subjects(**filters: object) -> list[str]:
            return [m.subject for m in await inbox.read(MessageQuery(**filters))]  # type: ignore[arg-type]

        assert await subjects() == ["50% off_today", "Security alert", "Your GitHub code"]
        assert await subjects(sender="noreply@github.com") == ["Your GitHub code"]
        assert await subjects(sender="github.com") == ["Security alert", "Your GitHub code"]  # subdomains too
        assert await subjects(sender="hub.com") == []  # a domain, not a suffix of letters
        assert await subjects(to="agent+gh@example.test") == ["Your GitHub code"]
        assert await subjects(subject="SECURITY") == ["Security alert"]
        assert await subjects(subject="% off_") == ["50% off_today"]  # no LIKE wildcards
        assert await subjects(text="sign-in paris") == ["Security alert"]
        assert await subjects(text='code" OR "coupon') == []  # query syntax is quoted away
        assert await subjects(account="other") == ["50% off_today"]
        assert await subjects(since=clock.now - 90) == ["50% off_today", "Security alert"]
        assert await subjects(limit=1) == ["50% off_today"]
        with pytest.raises(InvalidInput, match="limit"):
            await inbox.read(MessageQuery(limit=101))


async def test_read_state_and_local_labels(home: Path) -> None:
    async with await Inbox.open(home) as inbox:
        a = await inbox.add("acct", "INBOX", 1, 1, parse_message(mail("a@x.test", "me@x.test", "A", "a")))
        b = await inbox.add("acct", "INBOX", 1, 2, parse_message(mail("b@x.test", "me@x.test", "B", "b")), seen=True)
        assert a is not None and b is not None
        assert [m.subject for m in await inbox.read(MessageQuery(seen=False))] == ["A"]
        await inbox.mark([a], seen=True)
        assert await inbox.read(MessageQuery(seen=False)) == []
        await inbox.mark([b], label="signup")
        tagged = await inbox.read(MessageQuery(label="signup"))
        assert [(m.subject, m.labels) for m in tagged] == [("B", ["signup"])]
        await inbox.mark([b], label="signup", present=False)
        assert await inbox.read(MessageQuery(label="signup")) == []
        with pytest.raises(InvalidInput):
            await inbox.mark([b], label="bad\nlabel")


async def test_read_state_changes_are_queued_for_the_server_and_the_server_cannot_undo_them(home: Path) -> None:
    async with await Inbox.open(home) as inbox:
        a = await inbox.add("acct", "INBOX", 1, 1, parse_message(mail("a@x.test", "me@x.test", "A", "a")))
        b = await inbox.add("acct", "INBOX", 1, 2, parse_message(mail("b@x.test", "me@x.test", "B", "b")))
        local = await inbox.add_local(parse_message(mail("c@x.test", "me@x.test", "C", "c")), ["me@x.test"])
        assert a is not None and b is not None
        assert await inbox.pending_seen("acct", "INBOX") == []
        await inbox.mark([a, local], seen=True)
        assert await inbox.pending_seen("acct", "INBOX") == [(a, 1, 1, True)]
        assert await inbox.has_pending_seen("acct", ["INBOX"]) and not await inbox.has_pending_seen("acct", ["Other"])
        assert db_rows(home, "SELECT seen_pending FROM messages WHERE id = ?", (local,)) == [(None,)]  # no server
        # The server still says unread for both: a's queued change stands, b follows the server.
        assert await inbox.apply_server_seen("acct", "INBOX", 1, {1: False, 2: True}) == 1
        assert {m.subject: m.seen for m in await inbox.read(MessageQuery(account="acct"))} == {"A": True, "B": True}
        await inbox.mark([a], seen=False)  # changed again before the poller stored it: the newest value waits
        assert await inbox.pending_seen("acct", "INBOX") == [(a, 1, 1, False)]
        await inbox.clear_pending_seen([(a, True)])  # the poller stored the older value: still queued
        assert await inbox.pending_seen("acct", "INBOX") == [(a, 1, 1, False)]
        await inbox.clear_pending_seen([(a, False)])
        assert await inbox.pending_seen("acct", "INBOX") == []
        assert await inbox.first_uid("acct", "INBOX", 1) == 1 and await inbox.first_uid("acct", "INBOX", 9) is None


async def test_fields_round_trip(home: Path) -> None:
    raw = mail("GitHub <noreply@github.com>", "agent@example.test", "Code", "Your code is 123456",
               "Cc: c@example.test\r\nMessage-ID: <m1@github.com>\r\nAuthentication-Results: mx; dkim=pass\r\n")
    async with await Inbox.open(home) as inbox:
        await inbox.add("acct", "INBOX", 1, 1, parse_message(raw))
        [m] = await inbox.read(MessageQuery())
    assert (m.from_addr, m.from_name, m.to, m.cc) == ("noreply@github.com", "GitHub", ["agent@example.test"],
                                                      ["c@example.test"])
    assert m.message_id == "<m1@github.com>" and "123456" in m.text and m.auth_results == ["mx; dkim=pass"]
    assert m.raw_size == len(raw) and not m.seen and m.problem is None


async def test_purge_removes_old_messages_and_their_index_rows(home: Path) -> None:
    clock = Clock()
    async with await Inbox.open(home, clock=clock) as inbox:
        await inbox.add("acct", "INBOX", 1, 1, parse_message(mail("a@x.test", "me@x.test", "old", "secretcode")))
        clock.now += 8 * 86400
        await inbox.add("acct", "INBOX", 1, 2, parse_message(mail("a@x.test", "me@x.test", "new", "fresh")))
        assert await inbox.purge(parse_age("7d")) == 1
        assert [m.subject for m in await inbox.read(MessageQuery())] == ["new"]
        assert await inbox.read(MessageQuery(text="secretcode")) == []
    assert db_rows(home, "SELECT COUNT(*) FROM message_recipients") == [(1,)]


@pytest.mark.parametrize(("text", "seconds"), [("7d", 604800), ("12h", 43200), ("30m", 1800), ("45", 45), ("1w", 604800)])
def test_parse_age(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


def test_parse_age_refuses_nonsense() -> None:
    with pytest.raises(InvalidInput, match="7d"):
        parse_age("soon")


async def test_a_version_1_vault_is_migrated_and_keeps_its_entries(home: Path) -> None:
    async with await Vault.open(home, environ={}) as vault:
        await vault.put("kept", {"password": "p"})
    # Take the file back to schema 1, as a vault made before the cache existed.
    conn = sqlite3.connect(home / "vault.db")
    for table in ("messages_fts", "message_recipients", "message_labels", "handed_out", "messages", "mailbox_state",
                  "pollers"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    async with await Vault.open(home, environ={}) as vault:
        assert (await vault.get("kept")).data == {"password": "p"}
    assert db_rows(home, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    async with await Inbox.open(home) as inbox:
        assert await inbox.read(MessageQuery()) == []


async def test_a_version_3_cache_is_migrated_and_keeps_its_messages(home: Path) -> None:
    async with await Inbox.open(home) as inbox:
        kept = await inbox.add("acct", "INBOX", 1, 1, parse_message(mail("a@x.test", "me@x.test", "Kept", "a")))
    conn = sqlite3.connect(home / "vault.db")
    conn.execute("ALTER TABLE messages DROP COLUMN extraction")  # v5
    conn.execute("ALTER TABLE messages DROP COLUMN extractor")
    conn.execute("DROP TABLE handed_out")
    conn.execute("DROP INDEX messages_seen_pending")
    conn.execute("ALTER TABLE messages DROP COLUMN seen_pending")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    async with await Inbox.open(home) as inbox:
        assert [m.id for m in await inbox.read(MessageQuery())] == [kept]
        await inbox.mark([kept], seen=True)
        assert await inbox.pending_seen("acct", "INBOX") == [(kept, 1, 1, True)]
    assert db_rows(home, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


def test_migration_statements_keep_trigger_bodies_whole() -> None:
    statements = _statements(MIGRATIONS[1])
    triggers = [s for s in statements if s.startswith("CREATE TRIGGER")]
    assert len(triggers) == 2 and all(t.rstrip().endswith("END;") for t in triggers)
