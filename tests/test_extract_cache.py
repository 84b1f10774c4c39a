"""Extraction results in the cache: stored on arrival, shown to readers, re-run by `inbox reindex`."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from mailgent_mcp.inbox.accounts import save_account
from mailgent_mcp.inbox.cache import LOCAL_ACCOUNT, Inbox
from mailgent_mcp.inbox.extract import EXTRACTOR_VERSION
from mailgent_mcp.inbox.imap import ImapAccount
from mailgent_mcp.inbox.parse import Parser, parse_message
from mailgent_mcp.inbox.store import MessageQuery

from .conftest import UNDO_TO_SCHEMA_7, add_vault_tables, db_rows, run_cli
from .helpers.answers import inner_text

PASS = "mx.receiver.test; dkim=pass header.d=bank.test; spf=pass smtp.mailfrom=bank.test; dmarc=pass"
RECEIVER = ("mx.receiver.test",)  # the authserv-id the account "acct" trusts


def code_mail(code: str, auth: str = PASS) -> bytes:
    return (f"Authentication-Results: {auth}\r\nFrom: Bank <alerts@bank.test>\r\nTo: me@x.test\r\n"
            f"Subject: Your code\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            f"<p>Your verification code is <b>{code}</b></p>"
            f'<a href="https://bank.test/verify?t=abcdefghijklmnopqrstuvwxyz">Verify</a>\r\n').encode()


async def test_extraction_is_stored_with_the_message_and_read_back(home: Path) -> None:
    async with await Inbox.open(home) as inbox:
        await inbox.add("acct", "INBOX", 1, 1, parse_message(code_mail("482913"), RECEIVER))
        [m] = await inbox.read(MessageQuery())
    assert m.codes[0]["code"] == "482913" and m.codes[0]["source"] == "body"
    assert m.links[0]["kind"] == "verify"
    assert m.extracted_text.startswith("Your verification code is 482913")
    assert m.auth is not None and m.auth["aligned"] is True and m.auth["dkim"] == "pass"
    assert db_rows(home, "SELECT extractor FROM messages") == [(EXTRACTOR_VERSION,)]


async def test_the_parser_worker_extracts_and_the_smtp_inbox_trusts_no_auth_header(home: Path) -> None:
    parser = Parser(workers=1)
    try:
        trusted = await parser.parse(code_mail("111222"), trusted_authserv_ids=RECEIVER)
        local = await parser.parse(code_mail("111222"))
    finally:
        parser.close()
    assert trusted.extraction is not None and trusted.extraction.auth.aligned
    assert local.extraction is not None and [c.code for c in local.extraction.codes] == ["111222"]
    assert local.extraction.auth.dkim == "none" and not local.extraction.auth.aligned


def _make_stale(home: Path) -> None:
    conn = sqlite3.connect(home / "vault.db")
    conn.execute("UPDATE messages SET extraction = NULL, extractor = 0")
    conn.commit()
    conn.close()


async def test_reindex_commits_each_batch_and_resumes_where_it_stopped(home: Path) -> None:
    async with await Inbox.open(home) as inbox:
        for uid in range(1, 6):
            await inbox.add("acct", "INBOX", 1, uid, parse_message(code_mail(f"{uid}00000")))
        await inbox.add_local(parse_message(code_mail("777000")), ["me@x.test"])
    _make_stale(home)
    parser = Parser(workers=1)
    seen: list[tuple[int, int]] = []

    def stop_after_first_batch(done: int, total: int) -> None:
        seen.append((done, total))
        raise KeyboardInterrupt

    try:
        async with await Inbox.open(home) as inbox:
            with pytest.raises(KeyboardInterrupt):
                await inbox.reindex(parser, batch=2, progress=stop_after_first_batch)
            assert seen == [(2, 6)]
            assert db_rows(home, "SELECT count(*) FROM messages WHERE extractor = 0") == [(4,)]
            done = await inbox.reindex(parser, batch=2, progress=lambda d, t: seen.append((d, t)))
            assert done == 4 and seen[1:] == [(2, 4), (4, 4)]
            messages = await inbox.read(MessageQuery())
            again = await inbox.reindex(parser, everything=True, batch=10)
    finally:
        parser.close()
    assert again == 6
    assert sorted(m.codes[0]["code"] for m in messages) == ["100000", "200000", "300000", "400000", "500000",
                                                             "777000"]
    local = [m for m in messages if m.account == LOCAL_ACCOUNT]
    assert local and local[0].auth is not None and local[0].auth["dkim"] == "none"  # SMTP inbox: untrusted


async def test_a_version_4_cache_is_migrated_and_reindexed(home: Path) -> None:
    async with await Inbox.open(home) as inbox:
        await inbox.add("acct", "INBOX", 1, 1, parse_message(code_mail("654321")))
    add_vault_tables(home)
    conn = sqlite3.connect(home / "vault.db")
    conn.executescript(UNDO_TO_SCHEMA_7)
    conn.execute("DROP INDEX messages_by_message_id")  # v7
    conn.execute("DROP INDEX messages_by_extractor")  # v7
    conn.execute("ALTER TABLE messages DROP COLUMN extraction")
    conn.execute("ALTER TABLE messages DROP COLUMN extractor")
    conn.execute("DROP TABLE handed_out")  # v5
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    parser = Parser(workers=1)
    try:
        async with await Inbox.open(home) as inbox:
            [before] = await inbox.read(MessageQuery())
            assert before.codes == [] and before.auth is None
            assert await inbox.reindex(parser) == 1
            [after] = await inbox.read(MessageQuery())
    finally:
        parser.close()
    assert after.codes[0]["code"] == "654321" and after.subject == "Your code"


def test_cli_reindex_shows_progress_and_read_json_shows_the_extraction(home: Path) -> None:
    async def fill() -> None:
        async with await Inbox.open(home) as inbox:
            await inbox.add("acct", "INBOX", 1, 1, parse_message(code_mail("246810")))

    asyncio.run(fill())
    _make_stale(home)
    # The account's config trusts its receiver: the reindex (another process) extracts with that.
    save_account(home, ImapAccount(name="acct", host="imap.bank.test", port=993, username="me@x.test",
                                   trusted_authserv_ids=RECEIVER))
    result = run_cli(home, "inbox", "reindex", "--batch", "1")
    assert result.returncode == 0, result.stderr
    assert "reindex 1/1" in result.stderr and "Re-extracted 1" in result.stdout
    assert "246810" not in result.stderr + result.stdout  # progress names counts, never content
    [shown] = json.loads(run_cli(home, "inbox", "read", "--json").stdout)
    assert shown["codes"][0]["code"] == "246810" and shown["links"][0]["kind"] == "verify"
    assert inner_text(shown["extractedText"]).startswith("Your verification code") and shown["auth"]["aligned"] is True
