"""IMAP sync faults from DOVECOT.md beyond kick, stop and crash (those are in test_imap_sync.py).

A hung server, a silent network loss and a reset (through tests/dovecot.py's TcpProxy), each
while `ImapSync.run` idles, and a server crash or a stopped sync in the middle of a first sync of
120 messages. After each: every message arrives once, the status counts the fault and names the
host, and neither the status nor any log line shows the password.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from mailgent_mcp.inbox.cache import Inbox
from mailgent_mcp.inbox.imap import ImapSync
from mailgent_mcp.inbox.parse import ParsedMessage, Parser

from .conftest import db_rows
from .dovecot import Dovecot, TcpProxy, dovecot, imap_proxy  # noqa: F401 - fixtures
from .test_imap_sync import FAST, account, mail, running, subjects_when, syncing

SECRET = "sentinel-Pw-7Hq2zX"  # the test user's password here: no status or log line may show it
NOTICE_SLACK = 1.5  # seconds on top of keepalive + socket timeout, for a loaded 2-core machine
FIRST_SYNC = 120  # messages in the interrupted first syncs: three fetch batches of 50


@pytest.fixture
def server(dovecot: Dovecot) -> Dovecot:
    """The `dovecot` fixture with the test user re-passworded to SECRET."""
    dovecot.add_user(dovecot.user, SECRET)
    dovecot.password = SECRET
    return dovecot


@pytest.fixture(autouse=True)
def every_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture every logger at DEBUG (imapclient's protocol lines too), to look for the password."""
    caplog.set_level(logging.DEBUG)
    return caplog


async def until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until condition() holds (polled every 20 ms); fails the test after timeout."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def assert_fault_reported(sync: ImapSync) -> None:
    """Right after a fault (a successful sync clears last_error): counted, names the host, not the password."""
    error = sync.status.last_error
    assert sync.status.errors >= 1
    assert error is not None and sync.account.host in error, error
    assert SECRET not in error


def assert_no_log_shows_the_password(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing logged during the test, by us or imapclient, holds the password."""
    assert " LOGIN " in caplog.text, "imapclient's LOGIN line was not captured: the check below would prove nothing"
    assert SECRET not in caplog.text
    assert all(SECRET not in str(r.args) for r in caplog.records)


def cached_subjects(home: Path) -> Counter[str]:
    """How often each subject is cached, read straight from vault.db."""
    return Counter(str(subject) for (subject,) in db_rows(home, "SELECT subject FROM messages"))


async def test_a_hung_server_is_noticed_and_left_for_a_new_connection(
        home: Path, server: Dovecot, caplog: pytest.LogCaptureFixture) -> None:
    server.deliver(mail("before"))
    async with syncing(home, account(server), SECRET) as (inbox, sync), running(sync):
        assert await subjects_when(inbox, 1) == ["before"]
        await until(lambda: sync.status.idling, 10, "idling after the first sync")
        hung = server.pause_imap()
        try:
            noticed = await until(lambda: sync.status.errors >= 1, 15, "the hung server noticed")
            assert_fault_reported(sync)
            assert noticed <= FAST.keepalive + FAST.socket_timeout + NOTICE_SLACK
            server.deliver(mail("during"))
            await until(lambda: sync.status.connected and sync.status.idling, 15, "reconnected and idling")
            assert set(server.imap_processes()) - set(hung), "no new imap process serves the sync"
            server.deliver(mail("after"))
            assert await subjects_when(inbox, 3) == ["before", "during", "after"]
            await asyncio.sleep(FAST.keepalive + 0.5)  # another keepalive round: still no duplicate
            assert await subjects_when(inbox, 4, timeout=0) == ["before", "during", "after"]
        finally:
            server.resume_imap()
    assert_no_log_shows_the_password(caplog)


async def test_a_silent_network_loss_is_noticed_and_survived(
        home: Path, server: Dovecot, imap_proxy: TcpProxy, caplog: pytest.LogCaptureFixture) -> None:
    server.deliver(mail("before"))
    async with syncing(home, account(server, port=imap_proxy.port), SECRET) as (inbox, sync), running(sync):
        assert await subjects_when(inbox, 1) == ["before"]
        await until(lambda: sync.status.idling, 10, "idling after the first sync")
        imap_proxy.blackhole()  # no FIN, no RST: only the sync's own timeouts can tell
        noticed = await until(lambda: sync.status.errors >= 1, 15, "the silent loss noticed")
        assert_fault_reported(sync)
        assert noticed <= FAST.keepalive + FAST.socket_timeout + NOTICE_SLACK
        assert not sync.status.connected
        server.deliver(mail("during"))
        imap_proxy.heal()  # the blackhole also refused new connections: only now can the sync get back
        await until(lambda: sync.status.connected and sync.status.idling, 15, "reconnected and idling")
        assert imap_proxy.accepted >= 2
        server.deliver(mail("after"))
        assert await subjects_when(inbox, 3) == ["before", "during", "after"]
        await asyncio.sleep(FAST.keepalive + 0.5)
        assert await subjects_when(inbox, 4, timeout=0) == ["before", "during", "after"]
    assert_no_log_shows_the_password(caplog)


async def test_a_reset_connection_is_reopened_at_once(
        home: Path, server: Dovecot, imap_proxy: TcpProxy, caplog: pytest.LogCaptureFixture) -> None:
    server.deliver(mail("before"))
    async with syncing(home, account(server, port=imap_proxy.port), SECRET) as (inbox, sync), running(sync):
        assert await subjects_when(inbox, 1) == ["before"]
        await until(lambda: sync.status.idling, 10, "idling after the first sync")
        imap_proxy.reset()
        noticed = await until(lambda: sync.status.errors >= 1, 10, "the reset noticed")
        assert_fault_reported(sync)
        assert noticed < FAST.socket_timeout  # a RST is seen at once, not by a timeout
        await until(lambda: sync.status.connected and sync.status.idling, 10, "reconnected and idling")
        server.deliver(mail("after"))
        assert await subjects_when(inbox, 2) == ["before", "after"]
        await asyncio.sleep(FAST.keepalive + 0.5)
        assert await subjects_when(inbox, 3, timeout=0) == ["before", "after"]
    assert_no_log_shows_the_password(caplog)


class FaultAtParse(Parser):
    """The real Parser, calling `fault` when the batch holding its nth message is handed to it, or parsed.

    The sync fetches batches of 50 and parses each as a whole, while it fetches the next one and
    stores the ones before; a fault placed here lands at a known point of that pipeline, which no
    timing from outside can do reliably.
    """

    def __init__(self, nth: int, fault: Callable[[], object], *, before: bool = False) -> None:
        super().__init__(workers=1)
        self.parsed = 0
        self._nth = nth
        self._fault = fault
        self._before = before

    async def parse_many(self, raws: Sequence[bytes], **options: bool) -> list[ParsedMessage]:
        before, self.parsed = self.parsed, self.parsed + len(raws)
        hit = before < self._nth <= self.parsed
        if hit and self._before:
            self._fault()
        parsed = await super().parse_many(raws, **options)
        if hit and not self._before:
            self._fault()
        return parsed


def deliver_first_sync(server: Dovecot) -> list[str]:
    """Deliver FIRST_SYNC numbered messages; their subjects."""
    subjects = [f"message {n:03d}" for n in range(FIRST_SYNC)]
    for subject in subjects:
        server.deliver(mail(subject))
    return subjects


async def test_a_server_crash_in_the_middle_of_a_first_sync_caches_each_message_once(
        home: Path, server: Dovecot, caplog: pytest.LogCaptureFixture) -> None:
    subjects = deliver_first_sync(server)
    # As the first batch is handed to the parser, while the second one is fetched: that FETCH or the
    # third one's fails; what was fetched before is parsed and stored.
    parser = FaultAtParse(30, server.crash, before=True)
    async with await Inbox.open(home) as inbox:
        sync = ImapSync(account(server), SECRET, inbox, parser, timing=FAST)
        try:
            async with running(sync):
                await until(lambda: sync.status.errors >= 1, 15, "the crash noticed")
                assert_fault_reported(sync)
                partly = sum(cached_subjects(home).values())
                assert 0 < partly < FIRST_SYNC, partly
                await asyncio.sleep(FAST.backoff_max)  # a reconnect or two refused while it is down
                server.start()
                await until(lambda: sync.status.connected and sync.status.idling, 15, "reconnected and idling")
                server.deliver(mail("after"))
                await until(lambda: "after" in cached_subjects(home), 10, "new mail after the restart")
        finally:
            await sync.disconnect()
            parser.close()
    assert cached_subjects(home) == Counter([*subjects, "after"])
    assert_no_log_shows_the_password(caplog)


async def test_a_first_sync_stores_batch_by_batch_in_order_with_its_progress(home: Path, server: Dovecot) -> None:
    """Fetch, parse and store overlap, yet batches are stored in order, each with the progress up to it."""
    subjects = deliver_first_sync(server)
    seen: list[tuple[str, int, int, list[tuple[object, ...]]]] = []

    def progress(mailbox: str, done: int, total: int) -> None:
        seen.append((mailbox, done, total, db_rows(home, "SELECT last_uid, COUNT(*) FROM mailbox_state, messages")))

    async with syncing(home, account(server), SECRET) as (_, sync):
        assert await sync.sync_once(progress) == FIRST_SYNC
    assert seen == [("INBOX", done, FIRST_SYNC, [(done, done)]) for done in (50, 100, 120)]  # uids 1 to 120
    assert cached_subjects(home) == Counter(subjects)


async def test_a_sync_stopped_in_the_middle_of_a_batch_resumes_without_duplicates(
        home: Path, server: Dovecot) -> None:
    """The sync's own process stops mid-sync (its task cancelled); a new sync fetches the rest, nothing twice.

    A batch is stored together with the mailbox's progress, in one transaction: what the stop
    leaves is whole batches, and the progress says exactly which.
    """
    subjects = deliver_first_sync(server)
    stopped: list[asyncio.Task[None]] = []
    parser = FaultAtParse(60, lambda: stopped[0].cancel())
    async with await Inbox.open(home) as inbox:
        sync = ImapSync(account(server), SECRET, inbox, parser, timing=FAST)
        try:
            stopped.append(asyncio.create_task(sync.run(asyncio.Event())))
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(stopped[0], 30)
            # this runs on the database thread after any insert the cancellation left running there
            state = await inbox.mailbox_state("test", "INBOX")
            partly = sum(cached_subjects(home).values())
            assert partly in (50, 100), partly  # the first batch, and the second if its store had begun
            assert state == (server.uidvalidity(), partly)  # uids 1 to 120: the progress is what is stored
        finally:
            await sync.disconnect()
            parser.close()
    async with syncing(home, account(server), SECRET) as (_, again):  # as a restarted process would
        assert await again.sync_once() == FIRST_SYNC - partly
    assert cached_subjects(home) == Counter(subjects)


async def test_a_refused_connection_is_reported_and_retried(
        home: Path, server: Dovecot, caplog: pytest.LogCaptureFixture) -> None:
    server.stop()
    async with syncing(home, account(server), SECRET) as (inbox, sync), running(sync):
        await until(lambda: sync.status.errors >= 2, 10, "refused connections retried")
        assert_fault_reported(sync)
        assert sync.status.last_error is not None and "Connection refused on" in sync.status.last_error
        assert "--port" in sync.status.last_error  # it names the fix
        assert not sync.status.connected
        server.start()
        server.deliver(mail("first"))
        await until(lambda: sync.status.connected, 10, "connected once the server is up")
        assert await subjects_when(inbox, 1) == ["first"]
        # The message is readable once stored, a moment before the sync that stored it ends.
        await until(lambda: sync.status.last_sync is not None, 10, "the first sync after the outage done")
        assert sync.status.last_error is None  # a successful sync clears it
    assert_no_log_shows_the_password(caplog)


SLOW_KEEPALIVE = dataclasses.replace(FAST, keepalive=4.0)  # IDLE periods long enough to have a second half


async def test_a_reset_late_in_an_idle_period_is_noticed_at_once(home: Path, server: Dovecot,
                                                                 imap_proxy: TcpProxy) -> None:
    """A link that dies in the second half of an IDLE period is found as fast as in the first, without spinning."""
    parser = Parser(workers=1)
    async with await Inbox.open(home) as inbox:
        sync = ImapSync(account(server, port=imap_proxy.port), SECRET, inbox, parser, timing=SLOW_KEEPALIVE)
        try:
            async with running(sync):
                await until(lambda: sync.status.idling, 10, "idling after the first sync")
                await asyncio.sleep(SLOW_KEEPALIVE.keepalive * 0.7)
                cpu = time.process_time()
                imap_proxy.reset()
                noticed = await until(lambda: sync.status.errors >= 1, 10, "the reset noticed")
                busy = time.process_time() - cpu  # every thread of this process
                assert noticed < 0.75, f"noticed {noticed:.2f} s after the reset"
                assert busy < 0.5, f"{busy:.2f} s of CPU while the link was dead"
        finally:
            await sync.disconnect()
            parser.close()
