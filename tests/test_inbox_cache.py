"""The message cache on a real vault.db: each message once, filters, full text, marks, purge, migration."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from mailgent_mcp.db.migrations import RECORDED
from mailgent_mcp.db.sqlite import statements
from mailgent_mcp.errors import InvalidInput
from mailgent_mcp.inbox.cache import Inbox
from mailgent_mcp.inbox.parse import ParsedMessage, parse_message
from mailgent_mcp.inbox.store import INBOX_MIGRATIONS, MessageQuery
from mailgent_mcp.times import parse_age
from mailgent_mcp.vault.entries import Vault

from .conftest import (
    DATA,
    LATEST_STEP,
    UNDO_TO_SCHEMA_7,
    add_vault_tables,
    db_rows,
    schema_steps,
)


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
    # The data folder of release 0.1.0 (schema 7), taken back to schema 1: a vault made before the cache existed.
    home.mkdir(mode=0o700)
    for name in ("vault.db", "master.key"):
        (home / name).write_bytes((DATA / "home-0.1.0" / name).read_bytes())
        (home / name).chmod(0o600)
    conn = sqlite3.connect(home / "vault.db")
    for table in ("messages_fts", "message_recipients", "message_labels", "handed_out", "messages", "mailbox_state",
                  "pollers"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    async with await Vault.open(home, environ={}) as vault:
        assert (await vault.get("aws/prod")).data == {"api_key": "legacy-api-key"}
    assert schema_steps(home)["vault"] == LATEST_STEP["vault"]
    assert db_rows(home, "PRAGMA user_version") == [(RECORDED,)]
    async with await Inbox.open(home) as inbox:
        assert await inbox.read(MessageQuery()) == []
    assert schema_steps(home) == LATEST_STEP


async def test_a_version_3_cache_is_migrated_and_keeps_its_messages(home: Path) -> None:
    async with await Inbox.open(home) as inbox:
        kept = await inbox.add("acct", "INBOX", 1, 1, parse_message(mail("a@x.test", "me@x.test", "Kept", "a")))
    add_vault_tables(home)
    conn = sqlite3.connect(home / "vault.db")
    conn.executescript(UNDO_TO_SCHEMA_7)
    conn.execute("DROP INDEX messages_by_message_id")  # v7
    conn.execute("DROP INDEX messages_by_extractor")  # v7
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
    assert db_rows(home, "PRAGMA user_version") == [(RECORDED,)]
    assert schema_steps(home)["inbox"] == LATEST_STEP["inbox"]


async def test_a_version_9_cache_gets_the_record_of_issued_addresses(home: Path) -> None:
    async with await Inbox.open(home) as inbox:
        kept = await inbox.add("acct", "INBOX", 1, 1, parse_message(mail("a@x.test", "me@x.test", "Kept", "a")))
    add_vault_tables(home)
    conn = sqlite3.connect(home / "vault.db")
    conn.executescript("DROP TABLE issued_addresses; DROP TABLE totp_steps; PRAGMA user_version = 9;")
    conn.close()
    async with await Inbox.open(home, clock=lambda: 1000.0) as inbox:
        assert [m.id for m in await inbox.read(MessageQuery())] == [kept]
        assert await inbox.issue_address("agent+a@x.test", "acct") == 1000.0
    assert db_rows(home, "PRAGMA user_version") == [(RECORDED,)]
    assert schema_steps(home)["inbox"] == LATEST_STEP["inbox"]


async def test_an_issued_address_keeps_its_first_issue_time_until_it_is_purged(home: Path) -> None:
    now = [1000.0]
    async with await Inbox.open(home, clock=lambda: now[0]) as inbox:
        assert await inbox.issued_at("agent+a@x.test") is None
        assert await inbox.issue_address("agent+a@x.test", "acct") == 1000.0
        now[0] = 2000.0
        assert await inbox.issue_address("Agent+A@X.test", "acct") == 1000.0  # the first issue stands, any case
        assert await inbox.issued_at("AGENT+a@x.test") == 1000.0
        await inbox.issue_address("agent+b@x.test", "acct")
        await inbox.purge(500.0)  # what is older than the retention goes, with the mail
        assert await inbox.issued_at("agent+a@x.test") is None
        assert await inbox.issued_at("agent+b@x.test") == 2000.0


def test_migration_statements_keep_trigger_bodies_whole() -> None:
    found = statements(INBOX_MIGRATIONS.steps[0].sql)
    triggers = [s for s in found if s.startswith("CREATE TRIGGER")]
    assert len(triggers) == 2 and all(t.rstrip().endswith("END;") for t in triggers)


async def test_add_many_stores_a_batch_with_the_mailbox_state_in_one_transaction(home: Path) -> None:
    batch = [(uid, parse_message(mail(f"s{uid}@x.test", "me@x.test", f"m{uid}", "body")), uid == 2)
             for uid in (1, 2, 3)]
    async with await Inbox.open(home) as inbox:
        ids = await inbox.add_many("acct", "INBOX", 7, batch, last_uid=3)
        assert len(ids) == 3 and await inbox.mailbox_state("acct", "INBOX") == (7, 3)
        assert await inbox.add_many("acct", "INBOX", 7, batch[1:], last_uid=3) == []  # nothing twice
        assert [(m.subject, m.seen) for m in await inbox.read(MessageQuery())] == [
            ("m3", False), ("m2", True), ("m1", False)]
        # A message that cannot be stored fails its batch: none of it, and no progress, is kept.
        broken = dataclasses.replace(parse_message(mail("b@x.test", "me@x.test", "bad", "b")), raw_size=object())
        good = parse_message(mail("g@x.test", "me@x.test", "good", "g"))
        with pytest.raises(sqlite3.Error):
            await inbox.add_many("acct", "INBOX", 7, [(4, good, False), (5, broken, False)], last_uid=5)
        assert await inbox.mailbox_state("acct", "INBOX") == (7, 3)
        assert [m.subject for m in await inbox.read(MessageQuery())] == ["m3", "m2", "m1"]
        # Without last_uid the state stays where it is (a resync records it at the end).
        assert len(await inbox.add_many("acct", "INBOX", 7, [(4, good, False)])) == 1
        assert await inbox.mailbox_state("acct", "INBOX") == (7, 3)


async def test_add_many_rebinds_by_message_id_only_when_asked(home: Path) -> None:
    def batch(uids: tuple[int, ...]) -> list[tuple[int, ParsedMessage, bool]]:
        return [(uid, parse_message(mail("a@x.test", "me@x.test", f"m{n}", "b", f"Message-ID: <m{n}@x.test>\r\n")),
                 False) for n, uid in enumerate(uids)]

    async with await Inbox.open(home) as inbox:
        first = await inbox.add_many("acct", "INBOX", 1, batch((1, 2)), last_uid=2)
        assert await inbox.add_many("acct", "INBOX", 2, batch((10, 11)), rebind=True) == []
        assert sorted(db_rows(home, "SELECT id, uidvalidity, uid FROM messages")) == [
            (first[0], 2, 10), (first[1], 2, 11)]
        assert len(await inbox.add_many("acct", "INBOX", 3, batch((20, 21)))) == 2  # a copy each, not rebound


async def test_newest_first_is_the_order_of_caching_for_every_filter(home: Path) -> None:
    """Full text, any other filter and none at all agree, even when the clock steps back."""
    clock = Clock()
    async with await Inbox.open(home, clock=clock) as inbox:
        for uid in range(1, 31):
            clock.now += -3600 if uid == 20 else 60  # one step back (an NTP correction)
            sender = "even@x.test" if uid % 2 == 0 else "odd@y.test"
            await inbox.add("acct", "INBOX", 1, uid, parse_message(mail(sender, "me@x.test", f"m{uid}", "common word")))

        async def uids(**filters: object) -> list[int]:
            return [int(m.subject[1:]) for m in await inbox.read(MessageQuery(**filters))]  # type: ignore[arg-type]

        assert await uids(limit=5) == [30, 29, 28, 27, 26]
        assert await uids(text="common", limit=5) == [30, 29, 28, 27, 26]
        assert await uids(text="word", sender="x.test", limit=4) == [30, 28, 26, 24]
        assert await uids(sender="x.test", limit=4) == [30, 28, 26, 24]
        assert await uids(text="common", limit=3, after_id=(await inbox.read(MessageQuery(limit=1)))[0].id - 4) == [
            30, 29, 28]
        assert await uids(text="common", account="other") == []
        assert (await uids(text="common", limit=100))[::-1] == list(range(1, 31))


async def test_a_version_6_cache_gets_the_id_ordered_indexes_and_keeps_its_messages(home: Path) -> None:
    async with await Inbox.open(home) as inbox:
        await inbox.add("acct", "INBOX", 1, 1, parse_message(mail("a@x.test", "me@x.test", "kept", "still here")))
    # Take the file back to schema 6: the indexes as they were, without the Message-ID one.
    add_vault_tables(home)
    conn = sqlite3.connect(home / "vault.db")
    conn.executescript(UNDO_TO_SCHEMA_7)
    conn.executescript("""
        DROP INDEX messages_by_message_id;
        DROP INDEX messages_by_extractor;
        DROP INDEX messages_by_account;
        CREATE INDEX messages_by_account ON messages (account, received_at DESC);
        DROP INDEX messages_by_sender;
        CREATE INDEX messages_by_sender ON messages (from_addr, received_at DESC);
        PRAGMA user_version = 6;
    """)
    conn.close()
    async with await Inbox.open(home) as inbox:
        assert [m.subject for m in await inbox.read(MessageQuery(text="still"))] == ["kept"]
    assert db_rows(home, "PRAGMA user_version") == [(RECORDED,)]
    assert schema_steps(home)["inbox"] == LATEST_STEP["inbox"]
    indexes = dict(db_rows(home, "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages' "
                                 "AND sql IS NOT NULL"))
    assert "(account, mailbox, message_id)" in str(indexes["messages_by_message_id"])
    assert str(indexes["messages_by_sender"]).endswith("(from_addr)")
    assert str(indexes["messages_by_account"]).endswith("(account)")


async def test_since_finds_every_message_received_since_even_when_the_clock_stepped_back(home: Path) -> None:
    clock = Clock()
    async with await Inbox.open(home, clock=clock) as inbox:
        for uid, at in enumerate((1000.0, 500.0, 2000.0, 100.0), start=1):  # cached in this order
            clock.now = 1_800_000_000.0 + at
            await inbox.add("acct", "INBOX", 1, uid, parse_message(mail("a@x.test", "me@x.test", f"at {at:g}", "b")))

        async def subjects(since: float) -> list[str]:
            return [m.subject for m in await inbox.read(MessageQuery(since=1_800_000_000.0 + since, limit=100))]

        assert await subjects(900) == ["at 2000", "at 1000"]
        assert await subjects(400) == ["at 2000", "at 500", "at 1000"]
        assert await subjects(50) == ["at 100", "at 2000", "at 500", "at 1000"]
        assert await subjects(3000) == []
