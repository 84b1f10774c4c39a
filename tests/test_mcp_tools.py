"""Every tool through the SDK's own Client, in process, in both protocol eras, success and failure."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mailgent_mcp.mcp.boundary import INTERNAL_ERROR
from mailgent_mcp.mcp.server import MailgentServer, build_server
from mailgent_mcp.mcp.vault_tools import VaultProvider
from mailgent_mcp.settings import Settings
from mailgent_mcp.vault import otp
from mailgent_mcp.vault.entries import Vault

from .conftest import ALL_TOOLS, SEED_80, SEED_RFC, error_text, ok

URI = "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example"
UNDERSCORE = ALL_TOOLS
MODES = ["legacy", "auto"]  # the 2025-11-25 initialize handshake, and the 2026-07-28 stateless era


def make_server(home: Path, environ: dict[str, str] | None = None, **settings: Any) -> tuple[MailgentServer, VaultProvider]:
    provider = VaultProvider(home, environ or {})
    return build_server(Settings(home=home, **settings), provider), provider


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Each test runs in both protocol eras."""
    return str(request.param)


@asynccontextmanager
async def connected(home: Path, mode: str, environ: dict[str, str] | None = None, **settings: Any
                    ) -> AsyncIterator[Client]:
    """A Client connected in process to a fresh server on home; the vault closed afterwards.

    (A context manager inside the test, not a yield fixture: the SDK's task groups must be
    entered and left in the same task.)
    """
    server, provider = make_server(home, environ, **settings)
    try:
        async with Client(server, mode=mode) as c:
            yield c
    finally:
        await provider.close()


async def test_tools_are_listed_with_schemas_titles_and_annotations(home: Path, mode: str) -> None:
    async with connected(home, mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert list(tools) == UNDERSCORE
        for tool in tools.values():
            assert tool.title and tool.description and tool.output_schema, tool.name
            assert tool.annotations is not None and tool.annotations.open_world_hint is False
        for name in ("vault_get", "vault_list"):
            assert tools[name].annotations.read_only_hint is True  # type: ignore[union-attr]
        assert tools["vault_delete"].annotations.destructive_hint is True  # type: ignore[union-attr]
        assert tools["vault_put"].annotations.read_only_hint is False  # type: ignore[union-attr]
        assert "handed out once" in (tools["vault_totp"].description or "")
        assert "remaining" in (tools["vault_totp"].description or "")
        put_schema = tools["vault_put"].input_schema
        assert set(put_schema["required"]) == {"name"}
        assert "ctx" not in put_schema["properties"]


async def test_put_get_totp_list_delete_round_trip(home: Path, mode: str) -> None:
    async with connected(home, mode) as client:
        put = ok(await client.call_tool("vault_put", {
            "name": "github", "type": "LOGIN",
            "data": {"username": "bot@example.com", "password": "pw-1", "url": "https://github.com", "secret": URI}}))
        assert put["has_totp"] and put["totp"]["issuer"] == "Example" and put["totp"]["weak"] is True
        assert put["fields"] == ["password", "secret", "url", "username"]

        got = ok(await client.call_tool("vault_get", {"name": "github"}))
        assert got["data"] == {"username": "bot@example.com", "password": "pw-1", "url": "https://github.com"}
        assert got["totp"]["account"] == "alice@google.com"

        code = ok(await client.call_tool("vault_totp", {"name": "github"}))
        assert re.fullmatch(r"\d{6}", code["code"]) and 1 <= code["remaining"] <= 30
        assert set(code) >= {"name", "code", "remaining", "period", "digits", "algorithm", "expires_at"}

        listed = ok(await client.call_tool("vault_list", {}))
        assert listed["entries"] == [{"name": "github", "type": "LOGIN", "has_totp": True,
                                      "updated_at": put["updated_at"]}]
        assert ok(await client.call_tool("vault_delete", {"name": "github"})) == {"name": "github", "deleted": True}
        assert ok(await client.call_tool("vault_list", {})) == {"entries": []}


async def test_totp_code_is_the_engines_code(home: Path, mode: str) -> None:
    async with connected(home, mode) as client:
        ok(await client.call_tool("vault_put", {"name": "svc", "data": {"secret": SEED_RFC},
                                                "totp": {"algorithm": "SHA256", "digits": 8, "period": 60}}))
        code = ok(await client.call_tool("vault_totp", {"name": "svc", "min_remaining": 3}))
        assert code["remaining"] >= 3 and code["digits"] == 8 and code["algorithm"] == "SHA256"
        from datetime import UTC, datetime

        end = datetime.strptime(code["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        seed = otp.parse_secret(SEED_RFC, algorithm="SHA256", digits=8, period=60)
        assert code["code"] == otp.totp_at(seed, end - 1).code


@pytest.mark.parametrize(
    ("tool", "args", "words"),
    [
        ("vault_get", {"name": "missing"}, "No vault entry named 'missing'; store one with vault_put"),
        ("vault_totp", {"name": "missing"}, "store one with vault_put"),
        ("vault_totp", {"name": "plain"}, "has no TOTP seed"),
        ("vault_totp", {}, "no default entry is set"),
        ("vault_totp", {"name": "plain", "min_remaining": 500}, "Invalid arguments for vault_totp: min_remaining"),
        ("vault_delete", {"name": "missing"}, "No vault entry named 'missing'"),
        ("vault_put", {"name": "bad", "data": {"secret": "not base32!"}}, "not base32"),
        ("vault_put", {"name": "bad", "data": {"secret": "otpauth://totp/X:y?secret=JBSWY3DPEHPK3PXP&digits=11"}},
         "6 to 10"),
        ("vault_put", {"name": "a\nb", "data": {"notes": "n"}}, "control or invisible character"),
        ("vault_put", {"name": "bad", "data": {"notes": "x" * 70_000}}, "limit"),
        ("vault_put", {"name": "plain", "data": {"notes": "n"}, "if_absent": True}, "already exists"),
        ("vault_put", {"name": "bad", "data": {"notes": 5}}, "Invalid arguments for vault_put: data.<a field>"),
        ("vault_put", {"name": "bad"}, "Nothing to store: pass data, generate_password or remove"),
        ("vault_put", {"name": "bad", "data": {}, "type": "PASSWORD"}, "Invalid arguments for vault_put: type"),
        ("vault_list", {"prefix": "p" * 200}, "at most 128"),
    ],
    ids=["get-missing", "totp-missing", "totp-no-seed", "totp-no-default", "totp-min-remaining-range",
         "delete-missing", "put-bad-seed", "put-digits-11", "put-newline-name", "put-oversized",
         "put-if-absent", "put-non-string", "put-no-data", "put-bad-type", "list-long-prefix"],
)
async def test_errors_are_is_error_results_naming_the_next_step(
    home: Path, mode: str, tool: str, args: dict[str, Any], words: str
) -> None:
    async with connected(home, mode) as client:
        ok(await client.call_tool("vault_put", {"name": "plain", "data": {"password": "p"}}))
        assert words in error_text(await client.call_tool(tool, args))


async def test_dotted_call_is_accepted_with_underscore_names(home: Path, mode: str) -> None:
    async with connected(home, mode) as client:
        ok(await client.call_tool("vault.put", {"name": "svc", "data": {"secret": SEED_RFC}}))
        assert re.fullmatch(r"\d{6}", ok(await client.call_tool("vault.totp", {"name": "svc"}))["code"])
        assert "Unknown tool" in error_text(await client.call_tool("vault.nothing", {}))


@pytest.mark.parametrize("mode", MODES)
async def test_dotted_names_on_request(home: Path, mode: str) -> None:
    server, provider = make_server(home, tool_names="dotted")
    try:
        async with Client(server, mode=mode) as c:
            assert [t.name for t in (await c.list_tools()).tools] == [n.replace("_", ".", 1) for n in UNDERSCORE]
            ok(await c.call_tool("vault.put", {"name": "svc", "data": {"secret": SEED_RFC}}))
            ok(await c.call_tool("vault_totp", {"name": "svc"}))  # the other spelling works too
    finally:
        await provider.close()


@pytest.mark.parametrize("mode", MODES)
async def test_totp_without_name_uses_the_default_entry(home: Path, mode: str) -> None:
    server, provider = make_server(home, default_entry="main")
    try:
        async with Client(server, mode=mode) as c:
            assert "No vault entry named 'main'" in error_text(await c.call_tool("vault_totp", {}))
            ok(await c.call_tool("vault_put", {"name": "main", "data": {"secret": SEED_80}}))
            assert ok(await c.call_tool("vault_totp", {}))["name"] == "main"
    finally:
        await provider.close()


@pytest.mark.parametrize("mode", MODES)
async def test_audit_log_records_the_client_name(home: Path, mode: str) -> None:
    from mcp_types import Implementation

    server, provider = make_server(home)
    try:
        async with Client(server, mode=mode, client_info=Implementation(name="Claude Desktop", version="1.0")) as c:
            ok(await c.call_tool("vault_put", {"name": "svc", "data": {"secret": SEED_RFC}}))
            error_text(await c.call_tool("vault_get", {"name": "nope"}))
    finally:
        await provider.close()
    async with await Vault.open(home, environ={}) as vault:
        rows = await vault.audit_tail(2)
    assert [(r.op, r.entry, r.actor, r.outcome) for r in rows] == [
        ("put", "svc", "mcp:Claude Desktop", "ok"), ("get", "nope", "mcp:Claude Desktop", "not_found")]


@pytest.mark.parametrize("mode", MODES)
async def test_locked_vault_is_a_tool_error_not_a_dead_server(home: Path, mode: str) -> None:
    async with await Vault.open(home, environ={"MAILGENT_PASSPHRASE": "amber quiet river stone"}) as vault:
        await vault.put("svc", {"secret": SEED_RFC})
    server, provider = make_server(home, {"MAILGENT_PASSPHRASE": "wrong"})
    try:
        async with Client(server, mode=mode) as c:
            assert len((await c.list_tools()).tools) == len(ALL_TOOLS)
            text = error_text(await c.call_tool("vault_totp", {"name": "svc"}))
            assert "Vault locked" in text and "MAILGENT_PASSPHRASE" in text
    finally:
        await provider.close()


@pytest.mark.parametrize("mode", MODES)
async def test_unexpected_exception_answers_internal_error(
    home: Path, mode: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    leaked = "-".join(["SENTINEL", "VALUE", "123"])

    async def broken(self: Vault, *args: object, **kwargs: object) -> None:
        raise RuntimeError("library text that quotes " + leaked)  # the traceback's source line shows no value

    monkeypatch.setattr(Vault, "list", broken)
    server, provider = make_server(home)
    try:
        async with Client(server, mode=mode) as c:
            text = error_text(await c.call_tool("vault_list", {}))
    finally:
        await provider.close()
    assert text.endswith(INTERNAL_ERROR) and "SENTINEL" not in text
    assert "internal error in vault_list: RuntimeError" in caplog.text and "SENTINEL" not in caplog.text


def rfc6238(seed_base32: str, step: int, digits: int = 6) -> str:
    """RFC 6238's TOTP (HMAC-SHA1, dynamic truncation), written out here as an independent check."""
    import base64
    import hashlib
    import hmac

    mac = hmac.new(base64.b32decode(seed_base32), step.to_bytes(8, "big"), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    return f"{(int.from_bytes(mac[offset:offset + 4], 'big') & 0x7FFFFFFF) % 10**digits:0{digits}d}"


@pytest.mark.slow  # waits for the end of a real time step, then for the next one
@pytest.mark.parametrize("mode", MODES)
async def test_min_remaining_waits_for_the_next_code_when_the_current_one_is_ending(home: Path, mode: str) -> None:
    """With 2 s or less left of a 6-second step, min_remaining 4 gets the next step's code, not the current one."""
    import asyncio
    import time

    period = 6
    server, provider = make_server(home)
    try:
        async with Client(server, mode=mode) as c:
            ok(await c.call_tool("vault_put", {"name": "fast", "data": {"secret": SEED_RFC},
                                               "totp": {"period": period}}))
            while time.time() % period < period - 2:  # until the current step is ending (a clock condition)
                await asyncio.sleep(0.05)
            ending = int(time.time() // period)
            code = ok(await c.call_tool("vault_totp", {"name": "fast", "min_remaining": 4}))
            assert code["code"] == rfc6238(SEED_RFC, ending + 1) != rfc6238(SEED_RFC, ending)
            assert code["remaining"] >= 4 and code["period"] == period and code["waited"] > 0
    finally:
        await provider.close()
