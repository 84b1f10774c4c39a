"""The inbox tools called as real agents call them: with the defaults, over real stdio.

An agent submits a form, then calls inbox_wait seconds later, and the mail may have come in
between; its client gives up on a request after 60 s (the TypeScript SDK, Claude Desktop); and
the server it talks to may have no mail source at all (every example config). Mail is sent
with smtplib to the server's real SMTP inbox, which caches it before it answers 250; where a
test needs mail or an address older than the default look-back, vault.db is edited with sqlite3
instead of waiting.
"""

from __future__ import annotations

import asyncio
import email.utils
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from mailgent_mcp.errors import NoMailSource
from mailgent_mcp.inbox.accounts import save_account
from mailgent_mcp.inbox.cache import Inbox
from mailgent_mcp.inbox.imap import ImapAccount
from mailgent_mcp.inbox.parse import parse_message
from mailgent_mcp.mcp.inbox_tools import WAIT_DEFAULT_S, WAIT_LOOK_BACK_S, InboxProvider
from mailgent_mcp.mcp.server import build_server
from mailgent_mcp.mcp.vault_tools import VaultProvider
from mailgent_mcp.settings import Settings

from .conftest import clean_env, db_exec, db_rows, error_text, ok
from .test_mcp_inbox import send, smtp_server

AGENT = "agent@mailgent.localhost"
RETRY = "call inbox_wait again with the same arguments"


def progress_event() -> tuple[asyncio.Event, Callable[[float, float | None, str | None], Awaitable[None]]]:
    """An event set by the first progress notification of a call: the server looked, found nothing, and waits."""
    event = asyncio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        event.set()

    return event, on_progress


async def until_waiting(call: asyncio.Task[Any], waiting: asyncio.Event) -> None:
    """Return once the call is waiting for mail; fail if it answered instead."""
    waiter = asyncio.create_task(waiting.wait())
    done, _ = await asyncio.wait({call, waiter}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    assert call not in done, f"it answered instead of waiting: {call.result().structured_content}"
    assert waiter in done, "no progress notification: the call is not waiting"


async def test_mail_that_came_before_a_default_inbox_wait_is_returned_at_once_and_only_once(home: Path) -> None:
    async with smtp_server(home) as (client, port):
        # The form was submitted and its mail came before the agent called inbox_wait.
        await asyncio.to_thread(send, port, AGENT, "Your code", "Your verification code is 314159.")
        first = ok(await client.call_tool("inbox_wait", {}))  # the defaults only
        assert first["timed_out"] is False and first["waited_seconds"] < 1
        assert first["message"]["codes"][0]["code"] == "314159"

        # The same default call again does not hand the same code out: it waits for fresh mail.
        waiting, on_progress = progress_event()
        second = asyncio.create_task(client.call_tool("inbox_wait", {}, progress_callback=on_progress))
        await until_waiting(second, waiting)
        await asyncio.to_thread(send, port, AGENT, "Your new code", "Your verification code is 271828.")
        fresh = ok(await second)
        assert fresh["message"]["codes"][0]["code"] == "271828"
        assert fresh["message"]["id"] != first["message"]["id"]

        # unused_only=false still gets the newest mail again, at once.
        again = ok(await client.call_tool("inbox_wait", {"unused_only": False}))
        assert again["message"]["id"] == fresh["message"]["id"] and again["waited_seconds"] < 1


async def test_a_default_wait_on_an_issued_address_counts_its_mail_from_the_issue_time(home: Path) -> None:
    async with smtp_server(home) as (client, port):
        early = ok(await client.call_tool("inbox_address", {"tag": "early"}))["address"]
        late = ok(await client.call_tool("inbox_address", {"tag": "late"}))["address"]
        await asyncio.to_thread(send, port, early, "Confirm early", "Your verification code is 111111.")
        await asyncio.to_thread(send, port, late, "Confirm late", "Your verification code is 222222.")
        now = time.time()
        look_back = WAIT_LOOK_BACK_S
        # `early` was issued 3 look-backs ago and its mail came 2 look-backs ago: older than the default
        # look-back, but after the issue. `late` was issued a fifth of a look-back ago, its mail half a
        # look-back ago: inside the default look-back, but before the issue.
        for address, issued, subject, received in ((early, 3.0, "Confirm early", 2.0),
                                                   (late, 0.2, "Confirm late", 0.5)):
            db_exec(home, "UPDATE issued_addresses SET issued_at = ? WHERE address = ?",
                    (now - issued * look_back, address))
            db_exec(home, "UPDATE messages SET received_at = ? WHERE subject = ?", (now - received * look_back, subject))

        got = ok(await client.call_tool("inbox_wait", {"to": early}))  # the defaults only
        assert got["timed_out"] is False and got["waited_seconds"] < 1
        assert got["message"]["codes"][0]["code"] == "111111"
        none = ok(await client.call_tool("inbox_wait", {"to": late, "timeout": 1}))
        assert none["timed_out"] is True and RETRY in none["reason"]

        # An explicit since wins, either way.
        assert ok(await client.call_tool("inbox_wait", {"to": early, "since": f"{look_back}s", "timeout": 1,
                                                        "unused_only": False}))["timed_out"] is True
        there = ok(await client.call_tool("inbox_wait", {"to": late, "since": f"{look_back}s", "timeout": 1}))
        assert there["message"]["codes"][0]["code"] == "222222"

        # Asking for the address again keeps its first issue time (the tool is idempotent).
        assert ok(await client.call_tool("inbox_address", {"tag": "early"}))["address"] == early
        [(issued_at,)] = db_rows(home, "SELECT issued_at FROM issued_addresses WHERE address = ?", (early,))
        assert issued_at == pytest.approx(now - 3 * look_back)


async def test_old_mail_that_a_first_sync_cached_just_now_is_not_taken_for_new_mail(home: Path) -> None:
    save_account(home, ImapAccount(name="work", host="imap.work.test", port=993, username="agent@work.test"))
    two_days_ago = email.utils.formatdate(time.time() - 2 * 86400)
    old = (f"Date: {two_days_ago}\r\nFrom: no-reply@service.example\r\nTo: agent@work.test\r\n"
           "Subject: Your code\r\n\r\nYour verification code is 123456.\r\n").encode()
    async with await Inbox.open(home) as inbox:  # cached now, as a first sync caches a mailbox's past
        await inbox.add("work", "INBOX", 1, 1, parse_message(old))
    server = build_server(Settings(home=home), VaultProvider(home, {}), inbox=InboxProvider(home, {}))
    async with Client(server) as client:
        none = ok(await client.call_tool("inbox_wait", {"sender": "service.example", "timeout": 1}))
        assert none["timed_out"] is True
        asked = ok(await client.call_tool("inbox_wait", {"sender": "service.example", "since": "1h", "timeout": 1}))
        assert asked["message"]["codes"][0]["code"] == "123456"  # an explicit since counts it


async def test_the_tool_list_and_a_timed_out_answer_say_how_to_wait_longer(home: Path) -> None:
    server = build_server(Settings(home=home), VaultProvider(home, {}),
                          inbox=InboxProvider(home, {}, smtp_listen="127.0.0.1:0"))
    async with Client(server) as client:
        [wait] = [t for t in (await client.list_tools()).tools if t.name == "inbox_wait"]
        properties = wait.input_schema["properties"]
        assert (properties["timeout"]["default"], properties["timeout"]["maximum"]) == (45, 300)
        assert properties["unused_only"]["default"] is True
        assert "call it again with the same arguments" in (wait.description or "")
        timed_out = ok(await client.call_tool("inbox_wait", {"subject": "never sent", "timeout": 1}))
        assert (timed_out["message"], timed_out["timed_out"]) == (None, True)
        assert timed_out["reason"] == f"No matching mail came in 1 s: {RETRY} to keep waiting."


@pytest.mark.slow  # waits out the default timeout
async def test_a_default_wait_with_no_mail_answers_before_a_60_s_client_gives_up(home: Path) -> None:
    async with smtp_server(home) as (client, _):  # the client gives up after 60 s, as the TypeScript SDK does
        result = ok(await client.call_tool("inbox_wait", {"subject": "never sent"}))
    assert result["timed_out"] is True and WAIT_DEFAULT_S <= result["waited_seconds"] < WAIT_DEFAULT_S + 5
    assert RETRY in result["reason"]


async def test_with_no_mail_source_every_inbox_tool_names_the_fix_at_once(home: Path) -> None:
    fix = str(NoMailSource())
    assert fix.startswith("No mail source is set up, so no mail can arrive.")
    assert "`mailgent-mcp inbox add NAME --host HOST --username ADDRESS`" in fix
    assert "`mailgent-mcp serve --smtp-listen 127.0.0.1:2525`" in fix
    params = StdioServerParameters(command=sys.executable, args=["-m", "mailgent_mcp", "serve"], env=clean_env(home))
    async with Client(params, read_timeout_seconds=60) as client:  # as an example config starts it
        for tool, arguments in (("inbox_address", {}), ("inbox_wait", {}), ("inbox_read", {}),
                                ("inbox_mark", {"ids": [1], "read": True})):
            started = time.monotonic()
            text = error_text(await client.call_tool(tool, arguments))
            assert time.monotonic() - started < 10, tool  # not the wait's timeout
            assert text.endswith(fix), (tool, text)
            assert "vault" not in text, (tool, text)  # not "No vault entry named ...; store one with vault_put"
        assert ok(await client.call_tool("inbox_accounts", {})) == {"accounts": [], "hint": fix}


async def test_a_server_without_a_source_uses_the_smtp_inbox_another_server_of_its_folder_runs(home: Path) -> None:
    async with smtp_server(home) as (_, port):
        params = StdioServerParameters(command=sys.executable, args=["-m", "mailgent_mcp", "serve"],
                                       env=clean_env(home))
        async with Client(params, read_timeout_seconds=60) as client:
            [local] = ok(await client.call_tool("inbox_accounts", {}))["accounts"]
            assert (local["name"], local["host"], local["polled"]) == ("local", f"127.0.0.1:{port}", True)
            address = ok(await client.call_tool("inbox_address", {"tag": "shared"}))["address"]
            assert address == "agent+shared@mailgent.localhost"
            await asyncio.to_thread(send, port, address, "Confirm", "Your verification code is 161803.")
            got = ok(await client.call_tool("inbox_wait", {"to": address}))
            assert got["message"]["codes"][0]["code"] == "161803"
