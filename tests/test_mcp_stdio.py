"""The server as MCP clients start it: a real subprocess over real stdio, in both protocol eras."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from mailgent_mcp.vault import otp
from mailgent_mcp.vault.entries import Vault

from .conftest import ALL_TOOLS, SEED_RFC, clean_env, error_text, ok, run_cli

MODES = ["legacy", "auto"]


def server_params(home: Path, **env: str) -> StdioServerParameters:
    """How Claude Desktop or Cursor would start us: `python -m mailgent_mcp serve`, env passed explicitly."""
    return StdioServerParameters(command=sys.executable, args=["-m", "mailgent_mcp", "serve"],
                                 env=clean_env(home, **env))


@asynccontextmanager
async def stdio_client(home: Path, mode: str, **env: str) -> AsyncIterator[Client]:
    async with Client(server_params(home, **env), mode=mode, read_timeout_seconds=60) as client:
        yield client


@pytest.mark.parametrize("mode", MODES)
async def test_every_tool_succeeds_and_fails_cleanly_over_stdio(home: Path, mode: str) -> None:
    async with stdio_client(home, mode) as c:
        assert [t.name for t in (await c.list_tools()).tools] == ALL_TOOLS
        # vault_put
        put = ok(await c.call_tool("vault_put", {"name": "svc", "data": {"username": "u", "password": "p",
                                                                          "secret": SEED_RFC}}))
        assert put["type"] == "LOGIN" and put["has_totp"]
        assert "not base32" in error_text(await c.call_tool("vault_put", {"name": "x", "data": {"secret": "0000"}}))
        # vault_get
        assert ok(await c.call_tool("vault_get", {"name": "svc"}))["data"] == {"username": "u", "password": "p"}
        assert "No vault entry named 'nope'" in error_text(await c.call_tool("vault_get", {"name": "nope"}))
        # vault_totp
        code = ok(await c.call_tool("vault_totp", {"name": "svc"}))
        assert re.fullmatch(r"\d{6}", code["code"])
        assert "no default entry" in error_text(await c.call_tool("vault_totp", {}))
        # vault_list
        assert [e["name"] for e in ok(await c.call_tool("vault_list", {}))["entries"]] == ["svc"]
        assert "at most 128" in error_text(await c.call_tool("vault_list", {"prefix": "x" * 300}))
        # vault_delete
        assert ok(await c.call_tool("vault_delete", {"name": "svc"}))["deleted"] is True
        assert "No vault entry" in error_text(await c.call_tool("vault_delete", {"name": "svc"}))
    async with await Vault.open(home, environ={}) as vault:
        assert (await vault.audit_verify()).ok
        actors = {r.actor for r in await vault.audit_tail(20) if r.op != "init"}
    assert actors == {"mcp:mcp"}  # the SDK client's default client_info name


@pytest.mark.parametrize("mode", MODES)
async def test_settings_from_the_environment(home: Path, mode: str) -> None:
    async with stdio_client(home, mode, MAILGENT_TOOL_NAMES="dotted", MAILGENT_DEFAULT_ENTRY="main") as c:
        assert {t.name for t in (await c.list_tools()).tools} == {n.replace("_", ".", 1) for n in ALL_TOOLS}
        ok(await c.call_tool("vault.put", {"name": "main", "data": {"secret": SEED_RFC}}))
        assert ok(await c.call_tool("vault.totp", {}))["name"] == "main"


async def test_locked_vault_serves_a_clear_error(home: Path) -> None:
    async with await Vault.open(home, environ={"MAILGENT_PASSPHRASE": "amber quiet river stone"}) as vault:
        await vault.put("svc", {"secret": SEED_RFC})
    async with stdio_client(home, "legacy", MAILGENT_PASSPHRASE="wrong") as c:
        text = error_text(await c.call_tool("vault_totp", {"name": "svc"}))
    assert "Vault locked" in text and "MAILGENT_PASSPHRASE" in text


async def test_several_server_processes_share_one_folder(home: Path) -> None:
    """As when Claude Desktop, Cursor and Claude Code each start their own server."""
    processes, puts = 3, 12

    async def one_client(k: int) -> list[str]:
        codes = []
        async with stdio_client(home, "legacy") as c:
            for i in range(puts):
                ok(await c.call_tool("vault_put", {"name": f"p{k}-{i}", "data": {"password": f"pw{k}-{i}",
                                                                                    "secret": SEED_RFC}}))
                ok(await c.call_tool("vault_put", {"name": "shared", "data": {"notes": f"from {k}"}}))
                codes.append(ok(await c.call_tool("vault_totp", {"name": f"p{k}-{i}"}))["code"])
        return codes

    results = await asyncio.gather(*(one_client(k) for k in range(processes)))
    assert all(len(codes) == puts for codes in results)
    async with await Vault.open(home, environ={}) as vault:
        names = {e.name for e in await vault.list()}
        assert names == {f"p{k}-{i}" for k in range(processes) for i in range(puts)} | {"shared"}
        for k in range(processes):
            assert (await vault.get(f"p{k}-0")).data["password"] == f"pw{k}-0"
        assert (await vault.audit_verify()).ok
        assert await vault.integrity_check() == "ok"
    engine = otp.parse_secret(SEED_RFC)
    import time

    now = time.time()
    valid = {otp.totp_at(engine, now - d).code for d in range(0, 120, 30)}
    assert all(code in valid for codes in results for code in codes)


def test_sigterm_ends_the_server_cleanly_with_its_audit_rows(home: Path) -> None:
    """A client that stops the server with SIGTERM still leaves the audit rows of its reads."""
    import json
    import signal
    import subprocess

    assert run_cli(home, "vault", "put", "svc", "--secret", stdin=SEED_RFC + "\n").returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "mailgent_mcp", "serve"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(home))
    assert proc.stdin is not None and proc.stdout is not None

    def request(id_: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": params}) + "\n")
        proc.stdin.flush()
        answer: dict[str, Any] = json.loads(proc.stdout.readline())
        assert answer.get("id") == id_, answer
        return answer

    try:
        request(1, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                  "clientInfo": {"name": "raw-jsonrpc", "version": "1"}})
        proc.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")
        proc.stdin.flush()
        for i in range(5):
            answer = request(2 + i, "tools/call", {"name": "vault_totp", "arguments": {"name": "svc"}})
            assert re.fullmatch(r"\d{6}", answer["result"]["structuredContent"]["code"])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
    tail = run_cli(home, "audit", "tail", "--json")
    rows = [r for r in json.loads(tail.stdout) if r["actor"] == "mcp:raw-jsonrpc"]
    assert [(r["op"], r["outcome"]) for r in rows] == [("totp", "ok")] * 5
