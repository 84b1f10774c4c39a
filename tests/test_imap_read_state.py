"""Read state both ways against a real Dovecot: \\Seen mirrored into the cache, marks written back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from imapclient import SEEN, IMAPClient

from mailgent_mcp.inbox import imap
from mailgent_mcp.inbox.cache import Inbox
from mailgent_mcp.inbox.store import MessageQuery

from .conftest import db_rows
from .dovecot import Dovecot, dovecot  # noqa: F401 - fixture
from .test_imap_sync import account, mail, running, subjects_when, syncing


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


def server_seen(server: Dovecot) -> dict[str, bool]:
    """Subject: \\Seen, as a separate IMAP client sees the mailbox now."""
    client: IMAPClient = server.connect()
    try:
        client.select_folder("INBOX", readonly=True)
        data = client.fetch(client.search(["ALL"]), ["FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
        return {bytes(d[b"BODY[HEADER.FIELDS (SUBJECT)]"]).decode().split(":", 1)[1].strip(): SEEN in d[b"FLAGS"]
                for d in data.values()}
    finally:
        client.logout()


async def cached_seen(inbox: Inbox) -> dict[str, bool]:
    return {m.subject: m.seen for m in await inbox.read(MessageQuery(limit=100))}


@pytest.mark.parametrize("condstore", [True, False], ids=["condstore", "no-condstore"])
async def test_read_state_mirrors_the_server_both_ways(home: Path, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch,
                                                       condstore: bool) -> None:
    if not condstore:  # a server without CONDSTORE: every sync compares all flags
        monkeypatch.setattr(imap.ImapSession, "_enable_condstore", lambda self: False)
    dovecot.deliver(mail("first"))
    dovecot.deliver(mail("second"))
    async with syncing(home, account(dovecot), dovecot.password) as (inbox, sync):
        # A keepalive longer than the waits below: only IDLE's announcement (a flag change) and
        # the poller's wake on a queued mark can make the changes arrive in time.
        sync.timing = imap.Timing(socket_timeout=3.0, keepalive=60.0)
        async with running(sync):
            await _mirror_both_ways(home, dovecot, inbox)
    assert sync.status.errors == 0


async def _mirror_both_ways(home: Path, dovecot: Dovecot, inbox: Inbox) -> None:
    assert await subjects_when(inbox, 2) == ["first", "second"]
    assert await cached_seen(inbox) == {"first": False, "second": False}
    # Another client (a person's mail app) reads "first": IDLE announces it, the cache follows.
    other = dovecot.connect()
    other.select_folder("INBOX")
    other.add_flags(other.search(["SUBJECT", "first"]), [SEEN])
    other.logout()
    assert await until(lambda: _equals(cached_seen(inbox), {"first": True, "second": False}))
    # The agent reads "second" and marks "first" unread: both reach the server.
    by_subject = {m.subject: m.id for m in await inbox.read(MessageQuery(limit=100))}
    await inbox.mark([by_subject["second"]], seen=True)
    await inbox.mark([by_subject["first"]], seen=False)
    assert await until(lambda: _now(server_seen(dovecot) == {"first": False, "second": True}))
    assert await until(lambda: _now(db_rows(home, "SELECT count(*) FROM messages WHERE seen_pending IS NOT NULL")
                                    == [(0,)]))
    assert await cached_seen(inbox) == {"first": False, "second": True}


async def test_marks_made_while_the_server_is_down_are_stored_when_it_returns(home: Path, dovecot: Dovecot) -> None:
    dovecot.deliver(mail("code"))
    async with syncing(home, account(dovecot), dovecot.password) as (inbox, sync), running(sync):
        assert await subjects_when(inbox, 1) == ["code"]
        dovecot.stop()
        [message] = await inbox.read(MessageQuery())
        await inbox.mark([message.id], seen=True)
        assert await cached_seen(inbox) == {"code": True}  # the reader sees its own mark at once
        assert await until(lambda: _now(sync.status.errors > 0))  # the poller found the server gone
        dovecot.start()
        assert await until(lambda: _now(server_seen(dovecot) == {"code": True}), timeout=20)
        assert await cached_seen(inbox) == {"code": True}  # the reconnect's pull did not undo the mark
        assert await inbox.pending_seen("test", "INBOX") == []


async def _equals(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def _now(value: bool) -> bool:
    return value
