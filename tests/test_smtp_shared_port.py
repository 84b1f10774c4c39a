"""Several servers on one data folder with the same SMTP inbox port, over real stdio.

Claude Desktop, Cursor and Claude Code each start their own `mailgent-mcp serve`, often
with the same MAILGENT_SMTP_LISTEN. One of them listens; the others serve every tool and
read the mail it caches; when the listener dies, another takes the port over. A port held
by another program is reported and retried, never a reason to stop serving.
"""

from __future__ import annotations

import asyncio
import os
import signal
import smtplib
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TextIO

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from .conftest import ALL_TOOLS, clean_env, db_rows, ok
from .dovecot import free_ports

HOST = "127.0.0.1"
LEASE_TTL = "1.5"  # seconds: how soon another server takes a dead listener's port over


def params(home: Path, port: int) -> StdioServerParameters:
    env = clean_env(home, MAILGENT_SMTP_LISTEN=f"{HOST}:{port}", MAILGENT_LEASE_TTL=LEASE_TTL)
    return StdioServerParameters(command=sys.executable, args=["-m", "mailgent_mcp", "serve"], env=env)


@asynccontextmanager
async def server(home: Path, port: int, errlog: TextIO) -> AsyncIterator[Client]:
    async with Client(stdio_client(params(home, port), errlog=errlog), read_timeout_seconds=60) as client:
        yield client


def send(port: int, to: str, subject: str) -> None:
    message = EmailMessage()
    message["From"] = "Service <no-reply@service.example>"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Your verification code is 271828.")
    with smtplib.SMTP(HOST, port, timeout=10) as client:
        client.send_message(message)


def accepts(port: int) -> bool:
    """True when an SMTP server answers on the port (a bare TCP connect is not enough: it may be a blocker)."""
    try:
        with smtplib.SMTP(HOST, port, timeout=2) as probe:
            return probe.noop()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a condition off the event loop (the clients' streams stay served), up to timeout."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.05)


def listener_pid(home: Path, port: int) -> int | None:
    """The pid of the live holder of the port's SMTP lease (holder is host:pid:token)."""
    rows = db_rows(home, "SELECT holder FROM pollers WHERE account = ? AND expires_at > ? AND connected = 1",
                   (f"smtp {HOST}:{port}", time.time()))
    return int(str(rows[0][0]).split(":")[1]) if rows else None


async def wait_for_mail(client: Client, to: str, port: int, subject: str) -> dict[str, Any]:
    """inbox_wait in client while the mail is sent to the port; the message it returned."""
    waiting = asyncio.create_task(client.call_tool("inbox_wait", {"to": to, "timeout": 30}))
    await asyncio.to_thread(send, port, to, subject)
    result = ok(await waiting)
    assert result["timed_out"] is False, result
    message: dict[str, Any] = result["message"]
    assert message["subject"] == subject and message["codes"][0]["code"] == "271828", message
    return message


async def local_account(client: Client) -> dict[str, Any]:
    accounts = ok(await client.call_tool("inbox_accounts", {}))["accounts"]
    [local] = [a for a in accounts if a["name"] == "local"]
    assert isinstance(local, dict)
    return local


@pytest.mark.slow
async def test_a_second_server_on_the_same_smtp_port_serves_and_takes_the_port_over(home: Path,
                                                                                   tmp_path: Path) -> None:
    [port] = free_ports(1)
    with (tmp_path / "first.log").open("w") as first_log, (tmp_path / "second.log").open("w") as second_log:
        async with server(home, port, first_log) as first:
            await until(lambda: accepts(port), 30, "the first listening")
            async with server(home, port, second_log) as second:
                # Both serve every tool, the vault included; the first listens, the second does not.
                for n, client in enumerate((first, second)):
                    assert [t.name for t in (await client.list_tools()).tools] == ALL_TOOLS
                    ok(await client.call_tool("vault_put", {"name": f"svc-{n}", "data": {"password": "p"}}))
                    assert (await local_account(client))["polled"] is True
                listener = listener_pid(home, port)
                assert listener is not None
                # Mail sent to the port, received by the first, reaches inbox_wait in the second.
                await wait_for_mail(second, "agent+one@mailgent.localhost", port, "one")

                os.kill(listener, signal.SIGKILL)  # dies without giving up its lease or its port
                await until(lambda: (pid := listener_pid(home, port)) is not None and pid != listener
                            and accepts(port), 15, "the port taken over")
                await wait_for_mail(second, "agent+two@mailgent.localhost", port, "two")
                assert (await local_account(second))["polled"] is True
    second_text = (tmp_path / "second.log").read_text()
    assert "Traceback" not in second_text, second_text[-3000:]


async def test_a_port_held_by_another_program_is_reported_and_retried(home: Path, tmp_path: Path) -> None:
    blocker = socket.socket()
    blocker.bind((HOST, 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    log_path = tmp_path / "server.log"
    try:
        with log_path.open("w") as errlog:
            async with server(home, port, errlog) as client:
                assert [t.name for t in (await client.list_tools()).tools] == ALL_TOOLS
                ok(await client.call_tool("vault_put", {"name": "svc", "data": {"password": "p"}}))
                local = await local_account(client)
                assert local["polled"] is False and local["connected"] is False, local
                assert "in use" in (local["last_error"] or ""), local
                blocker.close()  # the other program goes away: the server binds the port on its next try
                await until(lambda: accepts(port), 15, "the server listening once the port is free")
                await wait_for_mail(client, "agent+late@mailgent.localhost", port, "late")
                local = await local_account(client)
                assert local["polled"] is True and local["last_error"] is None, local
    finally:
        blocker.close()
    log = log_path.read_text()
    assert f"{HOST}:{port}" in log and "another program" in log, log
    assert "Traceback" not in log, log
