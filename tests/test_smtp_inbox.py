"""The embedded SMTP inbox: real smtplib clients over loopback into the real cache."""

from __future__ import annotations

import asyncio
import smtplib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from mailgent_mcp.errors import ConfigError
from mailgent_mcp.inbox.cache import LOCAL_ACCOUNT, Inbox
from mailgent_mcp.inbox.smtp import SmtpInbox
from mailgent_mcp.inbox.store import MessageQuery
from mailgent_mcp.settings import Listen, parse_listen

SIGNUP = (
    "From: Example Service <no-reply@service.example>\r\nTo: agent+signup@example.test\r\n"
    "Subject: Confirm your email\r\nMessage-ID: <s1@service.example>\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n\r\nYour verification code is 482913.\r\n"
)


@asynccontextmanager
async def running(home: Path) -> AsyncIterator[tuple[Inbox, SmtpInbox]]:
    async with await Inbox.open(home) as inbox:
        receiver = await SmtpInbox.start(inbox, Listen("127.0.0.1", 0))
        try:
            yield inbox, receiver
        finally:
            await receiver.close()


async def send(port: int, sender: str, recipients: list[str], raw: str | bytes) -> None:
    """smtplib is blocking: run it off the loop that serves the receiver."""
    def deliver() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail(sender, recipients, raw)

    await asyncio.to_thread(deliver)


async def wait_for(inbox: Inbox, query: MessageQuery, count: int = 1, timeout: float = 10.0) -> list[object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await inbox.read(query)
        if len(found) >= count:
            return list(found)
        await inbox.wait_for_mail(0.2)
    pytest.fail(f"fewer than {count} messages arrived within {timeout} s")


async def test_mail_sent_with_smtplib_lands_in_the_cache(home: Path) -> None:
    async with running(home) as (inbox, receiver):
        await send(receiver.listen.port, "no-reply@service.example", ["agent+signup@example.test"], SIGNUP)
        [message] = await wait_for(inbox, MessageQuery(account=LOCAL_ACCOUNT))
    assert message.subject == "Confirm your email"  # type: ignore[attr-defined]
    assert message.from_addr == "no-reply@service.example"  # type: ignore[attr-defined]
    assert "482913" in message.text and message.mailbox == "INBOX"  # type: ignore[attr-defined]


async def test_envelope_recipients_are_indexed_even_when_not_in_the_headers(home: Path) -> None:
    async with running(home) as (inbox, receiver):
        await send(receiver.listen.port, "a@service.example", ["hidden+bcc@example.test"], SIGNUP)
        found = await wait_for(inbox, MessageQuery(to="hidden+bcc@example.test"))
    assert len(found) == 1


async def test_every_message_gets_its_own_uid_in_order(home: Path) -> None:
    async with running(home) as (inbox, receiver):
        for i in range(5):
            await send(receiver.listen.port, "a@service.example", ["me@example.test"],
                       SIGNUP.replace("Confirm your email", f"Mail {i}"))
        found = await wait_for(inbox, MessageQuery(limit=10), count=5)
    assert [m.subject for m in found] == [f"Mail {i}" for i in reversed(range(5))]  # type: ignore[attr-defined]


async def test_hostile_mail_is_accepted_and_marked(home: Path) -> None:
    deep = "From: a@x.test\r\nSubject: deep\r\nMIME-Version: 1.0\r\n" + "".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(2000)) + "x\r\n"
    async with running(home) as (inbox, receiver):
        await send(receiver.listen.port, "a@x.test", ["me@example.test"], deep)
        [message] = await wait_for(inbox, MessageQuery())
    assert message.subject == "deep" and message.problem and "unparseable" in message.problem  # type: ignore[attr-defined]


@pytest.mark.parametrize("text", ["0.0.0.0:2525", "192.168.1.5:25", "example.com:25", "127.evil.example:2525",
                                  "127.0.0.1.nip.io:2525", "localhost.evil.example:25", "[::]:2525"])
def test_non_loopback_listen_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        parse_listen(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:2525", Listen("127.0.0.1", 2525)), ("[::1]:2526", Listen("::1", 2526)),
    ("2527", Listen("127.0.0.1", 2527)), ("localhost:2528", Listen("localhost", 2528)),
    ("127.0.0.2:2529", Listen("127.0.0.2", 2529))])
def test_listen_forms(text: str, expected: Listen) -> None:
    assert parse_listen(text) == expected


async def test_a_taken_port_is_a_clear_error(home: Path) -> None:
    async with running(home) as (inbox, receiver):
        with pytest.raises(ConfigError, match="MAILGENT_SMTP_LISTEN"):
            await SmtpInbox.start(inbox, Listen("127.0.0.1", receiver.listen.port))
