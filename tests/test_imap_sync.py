"""IMAP sync against a real Dovecot (tests/dovecot.py): security modes, IDLE push, faults, UIDVALIDITY."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from mailgent_mcp.inbox.cache import CachedMessage, Inbox
from mailgent_mcp.inbox.dkim import StaticKeyLookup
from mailgent_mcp.inbox.imap import (
    ImapAccount,
    ImapLoginFailed,
    ImapSync,
    Security,
    Timing,
)
from mailgent_mcp.inbox.parse import Parser
from mailgent_mcp.inbox.store import InboxStore, MessageQuery

from .dovecot import Dovecot, SmtpHop, dovecot, smtp_hop  # noqa: F401 - fixtures

# DKIM keys for the parser: none, and no DNS (a signed corpus mail is checked against nothing).
NO_DKIM_KEYS = StaticKeyLookup({})
FAST = Timing(socket_timeout=3.0, keepalive=2.0, poll_interval=1.0, backoff_first=0.2,
              backoff_max=1.0, login_retry=30.0)


def account(server: Dovecot, security: Security = "plain", **overrides: object) -> ImapAccount:
    port = {"plain": server.imap_port, "starttls": server.imap_port, "tls": server.imaps_port}[security]
    fields: dict[str, object] = {"name": "test", "host": server.host, "port": port, "username": server.user,
                                 "security": security, "ca_file": str(server.ca_file)}
    fields.update(overrides)
    return ImapAccount(**fields)  # type: ignore[arg-type]


def mail(subject: str, body: str = "Your code is 123456", message_id: str | None = None) -> str:
    mid = f"Message-ID: <{message_id}>\r\n" if message_id else ""
    return (f"From: Service <no-reply@service.example>\r\nTo: agent@example.test\r\nSubject: {subject}\r\n{mid}"
            f"Content-Type: text/plain\r\n\r\n{body}\r\n")


@asynccontextmanager
async def syncing(home: Path, acct: ImapAccount, password: str) -> AsyncIterator[tuple[Inbox, ImapSync]]:
    parser = Parser(workers=1, key_lookup=NO_DKIM_KEYS)
    async with await Inbox.open(home) as inbox:
        sync = ImapSync(acct, password, inbox, parser, timing=FAST)
        try:
            yield inbox, sync
        finally:
            await sync.disconnect()
            parser.close()


@asynccontextmanager
async def running(sync: ImapSync) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(sync.run(stop))
    try:
        yield
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, 15)
        except TimeoutError:
            task.cancel()


async def subjects_when(inbox: Inbox, count: int, timeout: float = 15.0) -> list[str]:
    """Subjects (oldest first) once `count` messages are cached; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        found: list[CachedMessage] = await inbox.read(MessageQuery(limit=100))
        if len(found) >= count or time.monotonic() > deadline:
            return [m.subject for m in reversed(found)]
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("security", ["plain", "starttls", "tls"])
async def test_first_sync_in_each_security_mode(home: Path, dovecot: Dovecot, security: Security) -> None:
    dovecot.deliver(mail("one"))
    dovecot.deliver(mail("two"))
    async with syncing(home, account(dovecot, security), dovecot.password) as (inbox, sync):
        assert await sync.sync_once() == 2
        assert await sync.sync_once() == 0  # nothing twice
        assert [m.subject for m in await inbox.read(MessageQuery())] == ["two", "one"]
        [newest, _] = await inbox.read(MessageQuery())
        assert "123456" in newest.text and newest.from_addr == "no-reply@service.example" and not newest.seen


async def test_tls_without_the_ca_is_refused(home: Path, dovecot: Dovecot) -> None:
    async with syncing(home, account(dovecot, "tls", ca_file=None), dovecot.password) as (_, sync):
        with pytest.raises(Exception) as err:  # the system CAs do not know the test CA
            await sync.sync_once()
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value) or "certificate" in str(err.value).lower()


async def test_wrong_password_is_a_clear_error(home: Path, dovecot: Dovecot) -> None:
    async with syncing(home, account(dovecot), "wrong password") as (_, sync):
        with pytest.raises(ImapLoginFailed, match=r"refused the login .* check the password") as err:
            await sync.sync_once()
        assert "wrong password" not in str(err.value)
        async with running(sync):
            deadline = time.monotonic() + 10
            while sync.status.errors == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            assert sync.status.errors == 1  # no tight retry loop on a refused password
            assert sync.status.last_error and "refused the login" in sync.status.last_error


async def test_idle_push_and_an_smtp_hop(home: Path, dovecot: Dovecot, smtp_hop: SmtpHop) -> None:
    import smtplib

    async with syncing(home, account(dovecot), dovecot.password) as (inbox, sync), running(sync):
        assert await subjects_when(inbox, 0, timeout=0) == []
        deadline = time.monotonic() + 10
        while not sync.status.idling and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert sync.status.idling
        dovecot.deliver(mail("pushed"))
        assert await subjects_when(inbox, 1) == ["pushed"]
        with smtplib.SMTP(smtp_hop.host, smtp_hop.port, timeout=10) as client:
            client.sendmail("no-reply@service.example", [dovecot.user], mail("via smtp"))
        assert await subjects_when(inbox, 2) == ["pushed", "via smtp"]


@pytest.mark.parametrize("fault", ["kick", "stop", "crash"])
async def test_every_message_arrives_once_across_a_fault(home: Path, dovecot: Dovecot, fault: str) -> None:
    dovecot.deliver(mail("before"))
    async with syncing(home, account(dovecot), dovecot.password) as (inbox, sync), running(sync):
        assert await subjects_when(inbox, 1) == ["before"]
        if fault == "kick":
            dovecot.kick()
        elif fault == "stop":
            dovecot.stop()
            dovecot.start()
        else:
            dovecot.crash()
            dovecot.start()
        dovecot.deliver(mail("after"))
        assert await subjects_when(inbox, 2, timeout=20) == ["before", "after"]
        await asyncio.sleep(FAST.keepalive + 0.5)  # another keepalive round: still no duplicate
        assert await subjects_when(inbox, 3, timeout=0) == ["before", "after"]
    assert sync.status.errors >= 1 or fault == "kick"


async def test_uidvalidity_reset_resyncs_without_duplicates(home: Path, dovecot: Dovecot,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    looked_up: list[str] = []  # Message-IDs looked for to rebind: only a resync has anything to rebind
    rebind = InboxStore.rebind_message

    def counted(store: InboxStore, account: str, mailbox: str, message_id: str, uidvalidity: int, uid: int) -> bool:
        looked_up.append(message_id)
        return rebind(store, account, mailbox, message_id, uidvalidity, uid)

    monkeypatch.setattr(InboxStore, "rebind_message", counted)
    dovecot.deliver(mail("first", message_id="m1@service.example"))
    dovecot.deliver(mail("second", message_id="m2@service.example"))
    async with syncing(home, account(dovecot), dovecot.password) as (inbox, sync):
        assert await sync.sync_once() == 2
        cached = [m.id for m in await inbox.read(MessageQuery())]
        await sync.disconnect()
        dovecot.deliver(mail("fourth", message_id="m4@service.example"))
        assert await sync.sync_once() == 1
        assert looked_up == []
        await sync.disconnect()
        before = dovecot.uidvalidity()
        assert dovecot.reset_uidvalidity() != before
        dovecot.deliver(mail("third", message_id="m3@service.example"))
        assert await sync.sync_once() == 1
        assert sorted(looked_up) == ["<m1@service.example>", "<m2@service.example>", "<m3@service.example>",
                                     "<m4@service.example>"]
        assert [m.subject for m in await inbox.read(MessageQuery())] == ["third", "fourth", "second", "first"]
        assert [m.id for m in await inbox.read(MessageQuery())][2:] == cached  # rebound, not cached anew
        state = await inbox.mailbox_state("test", "INBOX")
        assert state is not None and state[0] == dovecot.uidvalidity()


async def test_an_oversized_message_is_kept_as_headers(home: Path, dovecot: Dovecot) -> None:
    dovecot.deliver(mail("huge", body="x" * 20_000))
    dovecot.deliver(mail("small"))
    async with await Inbox.open(home) as inbox:
        parser = Parser(workers=1)
        try:
            sync = ImapSync(account(dovecot), dovecot.password, inbox, parser, timing=FAST, max_bytes=10_000)
            assert await sync.sync_once() == 2
            await sync.disconnect()
        finally:
            parser.close()
        huge = await inbox.read(MessageQuery(subject="huge"))
        small = await inbox.read(MessageQuery(subject="small"))
    assert huge[0].problem and "over the 10000-byte limit" in huge[0].problem and huge[0].text == ""
    assert huge[0].raw_size > 20_000 and small[0].problem is None


@pytest.mark.parametrize("step", ["all_uids", "uids_after", "idle_wait"])
async def test_mail_arriving_while_the_sync_runs_is_not_left_for_the_keepalive(
        home: Path, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    # Mail delivered after SELECT and before SEARCH is announced by an untagged EXISTS in the
    # SEARCH response, not again in IDLE; mail delivered just before IDLE (Maildir, same
    # second as the last scan) is not announced by Dovecot's IDLE until its own 30 s check.
    from mailgent_mcp.inbox import imap

    delivered: list[str] = []
    original = getattr(imap.ImapSession, step)

    def deliver_then_search(self: imap.ImapSession, *args: object) -> object:
        if not delivered:
            delivered.append("raced")
            dovecot.deliver(mail("raced"))
            if step != "idle_wait":
                time.sleep(0.2)  # let Dovecot see it before the SEARCH
        return original(self, *args)

    monkeypatch.setattr(imap.ImapSession, step, deliver_then_search)
    slow = Timing(socket_timeout=3.0, keepalive=30.0, backoff_first=0.2, backoff_max=1.0)
    async with syncing(home, account(dovecot), dovecot.password) as (inbox, sync):
        sync.timing = slow
        if step != "all_uids":  # the mailbox is known: the next sync searches for what is new
            monkeypatch.setattr(imap.ImapSession, step, original)
            dovecot.deliver(mail("first"))
            assert await sync.sync_once() == 1
            monkeypatch.setattr(imap.ImapSession, step, deliver_then_search)
        async with running(sync):
            expected = ["raced"] if step == "all_uids" else ["first", "raced"]
            deadline = time.monotonic() + 5
            while not delivered and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert delivered, "the sync never searched"
            assert await subjects_when(inbox, len(expected), timeout=5) == expected


async def test_stopping_a_sync_in_idle_does_not_wait_for_the_keepalive(home: Path, dovecot: Dovecot) -> None:
    async with syncing(home, account(dovecot), dovecot.password) as (_, sync):
        sync.timing = Timing(socket_timeout=3.0, keepalive=60.0)
        stop = asyncio.Event()
        task = asyncio.create_task(sync.run(stop))
        deadline = time.monotonic() + 10
        while not sync.status.idling and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert sync.status.idling
        stop.set()
        await asyncio.wait_for(task, 20)  # the bound is the keepalive's third, not a speed claim
        assert not sync.status.connected and sync.status.errors == 0


@pytest.mark.parametrize(("count", "days", "expected"), [
    (200, None, ["old", "new 1", "new 2"]),
    (2, None, ["new 1", "new 2"]),
    (200, 7, ["new 1", "new 2"]),
    (1, 7, ["new 2"]),
])
async def test_the_first_sync_takes_the_newest_by_count_and_days(home: Path, dovecot: Dovecot, count: int,
                                                                 days: int | None, expected: list[str]) -> None:
    import datetime

    client = dovecot.connect()
    client.append("INBOX", mail("old").encode(), msg_time=datetime.datetime.now() - datetime.timedelta(days=40))
    client.logout()
    dovecot.deliver(mail("new 1"))
    dovecot.deliver(mail("new 2"))
    acct = account(dovecot, first_sync_count=count, first_sync_days=days)
    async with syncing(home, acct, dovecot.password) as (inbox, sync):
        assert await sync.sync_once() == len(expected)
        assert await subjects_when(inbox, len(expected), timeout=0) == expected
        dovecot.deliver(mail("later"))
        assert await sync.sync_once() == 1  # after the first sync, everything new


def test_a_keepalive_past_rfc_2177s_29_minutes_is_refused() -> None:
    with pytest.raises(ValueError, match="RFC 2177"):
        Timing(keepalive=30 * 60.0)
    assert Timing(keepalive=25 * 60.0).keepalive == 1500.0


async def test_a_first_sync_extracts_its_newest_at_once_and_the_rest_after(
        home: Path, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailgent_mcp.inbox import imap

    monkeypatch.setattr(imap, "EXTRACT_INLINE", 3)
    monkeypatch.setattr(imap, "FETCH_BATCH", 2)
    for n in range(1, 7):
        dovecot.deliver(mail(f"code {n}", body=f"Your verification code is {n}0{n}0{n}0."))
    async with syncing(home, account(dovecot), dovecot.password) as (inbox, sync):
        assert await sync.sync_once() == 6
        found = {m.subject: [c["code"] for c in m.codes] for m in await inbox.read(MessageQuery(limit=10))}
        # uids 4-6 (the newest 3, in the batches holding them) at once; 1-2 left for later.
        assert found["code 6"] == ["606060"] and found["code 4"] == ["404040"]
        assert found["code 1"] == [] and found["code 2"] == []
        dovecot.deliver(mail("code 7", body="Your verification code is 707070."))
        assert await sync.sync_once() == 1  # after the first sync, new mail is extracted as it comes
        assert [c["code"] for c in (await inbox.read(MessageQuery(subject="code 7")))[0].codes] == ["707070"]
        assert await inbox.reindex(sync._parser) >= 2  # what the server's catch-up (and `inbox sync`) runs
        found = {m.subject: [c["code"] for c in m.codes] for m in await inbox.read(MessageQuery(limit=10))}
        assert found == {f"code {n}": [f"{n}0{n}0{n}0"] for n in range(1, 8)}
