"""Cached mail is read only through an unlocked vault: a wrong or missing key shows no mail.

The cache itself is not encrypted (full-text search needs it; the README says so): what keeps
a client without the vault's key from reading codes and reset links through mailgent-mcp is
that inbox_read, inbox_wait and inbox_mark, and `mailgent-mcp inbox read`, first open the vault.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

from mailgent_mcp.inbox.cache import Inbox
from mailgent_mcp.inbox.parse import parse_message
from mailgent_mcp.inbox.store import MessageQuery
from mailgent_mcp.vault.entries import Vault

from .conftest import clean_env, run_cli

PASSPHRASE = "quiet-harbour-lantern-91-orbit"
WRONG = "loud-desert-compass-17-meteor"
CODE = "735194"
SUBJECT = "Reset your password"


async def _vault_with_cached_mail(home: Path) -> int:
    """A passphrase vault and one cached message holding a code; its id."""
    async with await Vault.open(home, environ={"MAILGENT_PASSPHRASE": PASSPHRASE}):
        pass
    raw = (f"From: no-reply@service.example\r\nTo: agent@mailgent.localhost\r\nSubject: {SUBJECT}\r\n\r\n"
           f"Your code is {CODE}. Reset link: https://service.example/reset?t=abcdef\r\n").encode()
    async with await Inbox.open(home) as inbox:
        return await inbox.add_local(parse_message(raw), ["agent@mailgent.localhost"])


async def test_a_wrong_passphrase_shows_no_cached_mail_over_stdio(home: Path) -> None:
    message_id = await _vault_with_cached_mail(home)
    params = StdioServerParameters(command=sys.executable, args=["-m", "mailgent_mcp", "serve"],
                                   env=clean_env(home, MAILGENT_PASSPHRASE=WRONG))
    async with Client(params, read_timeout_seconds=60) as client:
        calls: list[tuple[str, dict[str, Any]]] = [("inbox_read", {"labels": ["all"]}),
                 ("inbox_wait", {"since": "1h", "timeout": 1}),
                 ("inbox_mark", {"ids": [message_id], "read": True})]
        for tool, arguments in calls:
            result = await client.call_tool(tool, arguments)
            text = " ".join(getattr(c, "text", "") for c in result.content)
            assert result.is_error, (tool, result.structured_content)
            assert "Vault locked: MAILGENT_PASSPHRASE" in text, (tool, text)
            assert CODE not in text and SUBJECT not in text and "reset?t=" not in text
    async with await Inbox.open(home) as inbox:
        [message] = await inbox.read(MessageQuery())
    assert message.id == message_id and not message.seen  # inbox_mark changed nothing


async def test_the_right_passphrase_reads_the_mail_over_stdio(home: Path) -> None:
    await _vault_with_cached_mail(home)
    params = StdioServerParameters(command=sys.executable, args=["-m", "mailgent_mcp", "serve"],
                                   env=clean_env(home, MAILGENT_PASSPHRASE=PASSPHRASE))
    async with Client(params, read_timeout_seconds=60) as client:
        result = await client.call_tool("inbox_read", {"labels": ["all"]})
        assert not result.is_error and result.structured_content is not None
        [message] = result.structured_content["messages"]
        assert message["subject"] == SUBJECT and message["codes"][0]["code"] == CODE


def test_cli_inbox_read_with_a_wrong_or_missing_passphrase_exits_3(home: Path) -> None:
    asyncio.run(_vault_with_cached_mail(home))
    for env in (clean_env(home, MAILGENT_PASSPHRASE=WRONG), clean_env(home)):
        result = run_cli(home, "inbox", "read", "--json", env=env)
        assert result.returncode == 3, result.stderr
        assert "Vault locked" in result.stderr
        assert CODE not in result.stdout + result.stderr and SUBJECT not in result.stdout + result.stderr
    right = run_cli(home, "inbox", "read", "--json", env=clean_env(home, MAILGENT_PASSPHRASE=PASSPHRASE))
    assert right.returncode == 0 and CODE in right.stdout
