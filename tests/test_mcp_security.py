"""The sentinel test for the MCP tools: every tool's success and error path, results and logs.

A sentinel password and seed are stored. The seed must appear in no tool result, error or
log line; the password only in vault_get's result. Run in process (with the log captured)
and over a real stdio subprocess (with the server's stderr captured), in both eras.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import stdio_client
from mcp_types import CallToolResult

from mailgent_mcp.mcp.server import build_server
from mailgent_mcp.mcp.vault_tools import VaultProvider
from mailgent_mcp.settings import Settings

from .test_mcp_stdio import server_params
from .test_vault_security import SENTINEL_PASSWORD, SENTINEL_SEED, assert_no_sentinel

URI = f"otpauth://totp/Bank:agent?secret={SENTINEL_SEED}&issuer=Bank"

# (tool, arguments, expected to fail). The store call comes first; the rest run against it.
CALLS: list[tuple[str, dict[str, Any], bool]] = [
    ("vault_put", {"name": "bank", "data": {"username": "agent", "password": SENTINEL_PASSWORD, "secret": URI}}, False),
    ("vault_put", {"name": "bank", "data": {"notes": "more"}}, False),
    ("vault_get", {"name": "bank"}, False),
    ("vault_totp", {"name": "bank"}, False),
    ("vault_totp", {"name": "bank", "min_remaining": 1}, False),
    ("vault_list", {}, False),
    ("vault_list", {"prefix": "ba"}, False),
    # error paths carrying the sentinels in their input
    ("vault_put", {"name": "bad", "data": {"secret": SENTINEL_SEED + "0"}}, True),
    ("vault_put", {"name": "bad", "data": {"secret": URI + "&digits=11"}}, True),
    ("vault_put", {"name": "bad", "data": {"secret": URI.replace("otpauth", "https")}}, True),
    ("vault_put", {"name": "bad", "data": {"password": [SENTINEL_PASSWORD]}}, True),
    ("vault_put", {"name": "bad", "data": {"password": SENTINEL_PASSWORD * 4000}}, True),
    ("vault_put", {"name": "bad", "data": {SENTINEL_PASSWORD + " x": "v"}}, True),
    ("vault_put", {"name": "bank", "data": {"password": SENTINEL_PASSWORD}, "if_absent": True}, True),
    ("vault_put", {"name": "bad", "data": {"secret": SENTINEL_SEED}, "totp": {"digits": SENTINEL_SEED}}, True),
    ("vault_put", {"name": "bad", "data": {}, "type": SENTINEL_PASSWORD}, True),
    ("vault_get", {"name": "missing"}, True),
    ("vault_get", {"name": ["bank", SENTINEL_PASSWORD]}, True),
    ("vault_totp", {"name": "missing"}, True),
    ("vault_totp", {"name": "bank", "min_remaining": SENTINEL_PASSWORD}, True),
    ("vault_totp", {}, True),
    ("vault_list", {"prefix": SENTINEL_PASSWORD * 10}, True),
    ("vault_delete", {"name": "missing"}, True),
    ("vault_delete", {"name": "bank"}, False),
    ("vault_totp", {"name": "bank"}, True),
]


def check(tool: str, result: CallToolResult, fails: bool) -> None:
    assert result.is_error is fails, (tool, result.content)
    text = " ".join(getattr(c, "text", "") for c in result.content) + repr(result.structured_content)
    if tool == "vault_get" and not fails:
        # The one place a password comes back; the seed still never does.
        assert result.structured_content is not None
        assert result.structured_content["data"]["password"] == SENTINEL_PASSWORD
        text = text.replace(SENTINEL_PASSWORD, "")
    assert_no_sentinel(text, f"the result of {tool}")


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_no_secret_in_any_tool_result_or_log_in_process(
    home: Path, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = VaultProvider(home, {})
    try:
        async with Client(build_server(Settings(home=home), provider), mode=mode) as c:
            for tool, args, fails in CALLS:
                check(tool, await c.call_tool(tool, args), fails)
    finally:
        await provider.close()
    assert_no_sentinel(caplog.text, "the log")
    for path in home.iterdir():
        assert_no_sentinel(path.read_bytes(), path.name)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_no_secret_in_any_tool_result_or_stderr_over_stdio(home: Path, tmp_path: Path, mode: str) -> None:
    stderr_path = tmp_path / "server.stderr"
    with stderr_path.open("w") as errlog:
        async with Client(stdio_client(server_params(home), errlog=errlog), mode=mode, read_timeout_seconds=60) as c:
            for tool, args, fails in CALLS:
                check(tool, await c.call_tool(tool, args), fails)
    assert_no_sentinel(stderr_path.read_text(), "the server's stderr")
