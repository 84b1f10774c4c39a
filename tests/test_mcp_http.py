"""The HTTP transports over real sockets: bearer token, DNS-rebinding protection, a real SDK client.

Every server here is `python -m mailgent_mcp serve --transport http|sse` run as a subprocess
on a free port of 127.0.0.1 with a temporary data folder (tests/helpers/http_server.py).
One server per transport serves the whole module; the token-command tests and the
refusals start their own. Raw requests use httpx2; the round trips use the SDK's Client
over streamable_http_client and sse_client, as an MCP client would.

Observed order of checks (mcp 2.3): the SDK wraps each endpoint in RequireAuthMiddleware
and validates Host and Origin inside the transport, so the bearer token is checked first
(no token: 401 whatever the Host or Origin), then Host (421), then Origin (403).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import stat
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from mailgent_mcp import otp
from mailgent_mcp.tokens import MIN_TOKEN_CHARS, TOKEN_FILE

from .conftest import clean_env, run_cli
from .helpers.http_server import ServerProcess, free_port, start_all

TRANSPORTS = ("http", "sse")
TOOL_NAMES = {"vault_put", "vault_get", "vault_totp", "vault_list", "vault_delete"}
SEED = "JBSWY3DPEHPK3PXP"
URI = f"otpauth://totp/Example:alice@google.com?secret={SEED}&issuer=Example"
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}
# The first request a client makes on each endpoint. For SSE, /messages/ (where the client
# POSTs its JSON-RPC) is guarded too; a made-up session id gets 404 once past the guards.
ENDPOINTS = [("http", "POST", "/mcp"), ("sse", "GET", "/sse"), ("sse", "POST", "/messages/")]
ENDPOINT_IDS = [f"{t}-{m}-{p.strip('/')}" for t, m, p in ENDPOINTS]
RUN_TIMEOUT = 30  # seconds for one client session; a hang fails instead of blocking the suite


def new_token() -> str:
    """A random token of exactly MIN_TOKEN_CHARS (24) characters: the shortest the server accepts."""
    return secrets.token_urlsafe(18)


# -- servers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_token() -> str:
    return new_token()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, shared_token: str) -> Iterator[dict[str, ServerProcess]]:
    """One server per transport for the module, started side by side, each on its own data folder.

    They run with -v (INFO logs) so the no-leak test reads as much log as the server can write.
    """
    root = tmp_path_factory.mktemp("http-servers")
    specs = [(t, clean_env(root / f"home-{t}", MAILGENT_TOKEN=shared_token)) for t in TRANSPORTS]
    started = start_all(specs, root / "logs", global_args=["-v"])
    try:
        yield {s.transport: s for s in started}
    finally:
        for server in started:
            server.stop()


@pytest.fixture(params=TRANSPORTS)
def server(request: pytest.FixtureRequest, servers: dict[str, ServerProcess]) -> ServerProcess:
    """The module's running server for one transport."""
    return servers[request.param]


@pytest.fixture(params=ENDPOINTS, ids=ENDPOINT_IDS)
def endpoint(request: pytest.FixtureRequest, servers: dict[str, ServerProcess]) -> tuple[ServerProcess, str, str]:
    """A guarded endpoint of the module's servers: (server, method, path)."""
    transport, method, path = request.param
    return servers[transport], method, path


# -- clients ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawResponse:
    status_code: int
    headers: dict[str, str]
    text: str


def raw_request(server: ServerProcess, method: str, path: str, headers: dict[str, str]) -> RawResponse:
    """The request a client opens with on this endpoint, plus headers (httpx2, no MCP client).

    A request that gets through to GET /sse (or to POST /mcp) is answered with an event
    stream that stays open, so only the status line and headers of a stream are read.
    """
    url = server.base_url + path
    if path == "/mcp":
        # Streamable HTTP requires both media types in Accept and a JSON body.
        base = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        body = json.dumps(INITIALIZE).encode()
    elif path == "/messages/":
        url += f"?session_id={secrets.token_hex(16)}"
        base = {"Content-Type": "application/json"}
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()
    else:
        base, body = {"Accept": "text/event-stream"}, b""
    with httpx2.Client(timeout=10) as http:
        with http.stream(method, url, headers={**base, **headers}, content=body or None) as response:
            streaming = response.headers.get("content-type", "").startswith("text/event-stream")
            text = "<event stream, not read>" if streaming else response.read().decode(errors="replace")
            return RawResponse(response.status_code, dict(response.headers), text)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def mcp_client(server: ServerProcess, token: str, *, mode: str = "legacy") -> AsyncIterator[Client]:
    """The SDK's Client over the server's transport, sending the bearer token on every request."""
    if server.transport == "http":
        async with httpx2.AsyncClient(headers=bearer(token), timeout=httpx2.Timeout(10, read=60)) as http:
            async with Client(streamable_http_client(server.url, http_client=http), mode=mode,
                              read_timeout_seconds=10) as client:
                yield client
    else:
        async with Client(sse_client(server.url, headers=bearer(token)), mode=mode,
                          read_timeout_seconds=10) as client:
            yield client


def result_text(result: CallToolResult) -> str:
    """Everything a tool result shows the model: its text content and its structured content."""
    texts = [getattr(block, "text", "") for block in result.content]
    return "\n".join(texts) + "\n" + json.dumps(result.structured_content)


def structured(result: CallToolResult) -> dict[str, Any]:
    """The structured content of a successful tool result."""
    assert not result.is_error, result_text(result)
    content: dict[str, Any] | None = result.structured_content
    assert content is not None, result_text(result)
    return content


async def tool_names(server: ServerProcess, token: str) -> set[str]:
    with anyio.fail_after(RUN_TIMEOUT):
        async with mcp_client(server, token) as client:
            return {tool.name for tool in (await client.list_tools()).tools}


# -- bearer token and DNS-rebinding protection ---------------------------------------------


def test_request_without_token_is_rejected_with_401(endpoint: tuple[ServerProcess, str, str]) -> None:
    server, method, path = endpoint
    response = raw_request(server, method, path, {})
    assert response.status_code == 401, response.text
    assert response.headers.get("www-authenticate", "").startswith("Bearer"), response.headers


@pytest.mark.parametrize("make_header", [
    pytest.param(lambda t: f"Bearer {t[:-1]}{'A' if t[-1] != 'A' else 'B'}", id="last-char-changed"),
    pytest.param(lambda t: f"Bearer {t}x", id="extra-char"),
    pytest.param(lambda t: f"Bearer {t[:-1]}", id="truncated"),
    pytest.param(lambda t: t, id="no-bearer-scheme"),
    pytest.param(lambda t: f"Basic {t}", id="basic-scheme"),
    pytest.param(lambda t: "Bearer", id="scheme-only"),
])
def test_request_with_wrong_token_is_rejected_with_401(endpoint: tuple[ServerProcess, str, str], shared_token: str,
                                                      make_header: Any) -> None:
    server, method, path = endpoint
    response = raw_request(server, method, path, {"Authorization": make_header(shared_token)})
    assert response.status_code == 401, response.text


def test_right_token_with_foreign_host_is_rejected_with_421(endpoint: tuple[ServerProcess, str, str],
                                                           shared_token: str) -> None:
    server, method, path = endpoint
    response = raw_request(server, method, path, {**bearer(shared_token), "Host": f"evil.example:{server.port}"})
    assert response.status_code == 421, response.text


def test_right_token_with_foreign_origin_is_rejected_with_403(endpoint: tuple[ServerProcess, str, str],
                                                             shared_token: str) -> None:
    server, method, path = endpoint
    response = raw_request(server, method, path, {**bearer(shared_token), "Origin": "http://evil.example"})
    assert response.status_code == 403, response.text


@pytest.mark.parametrize("foreign", [
    pytest.param("host", id="foreign-host"),
    pytest.param("origin", id="foreign-origin"),
])
def test_token_is_checked_before_host_and_origin(endpoint: tuple[ServerProcess, str, str], foreign: str) -> None:
    # RequireAuthMiddleware wraps the transport, whose TransportSecurityMiddleware checks
    # Host and Origin: without a token the answer is 401, and says nothing about the headers.
    server, method, path = endpoint
    headers = {"Host": f"evil.example:{server.port}"} if foreign == "host" else {"Origin": "http://evil.example"}
    response = raw_request(server, method, path, headers)
    assert response.status_code == 401, response.text


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_right_token_with_local_host_and_origin_is_let_through(endpoint: tuple[ServerProcess, str, str],
                                                               shared_token: str, host: str) -> None:
    # The control for the three tests above: these headers pass every guard.
    server, method, path = endpoint
    headers = {**bearer(shared_token), "Host": f"{host}:{server.port}", "Origin": f"http://{host}:{server.port}"}
    response = raw_request(server, method, path, headers)
    expected = 404 if path == "/messages/" else 200  # /messages/: past the guards, the session is unknown
    assert response.status_code == expected, response.text


# -- a real client over each transport -----------------------------------------------------


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_vault_round_trip_gives_engine_totp_code_and_never_the_seed(server: ServerProcess, shared_token: str,
                                                                         mode: str) -> None:
    name = f"example-{server.transport}-{mode}"
    seed = otp.parse_secret(URI)
    with anyio.fail_after(RUN_TIMEOUT):
        async with mcp_client(server, shared_token, mode=mode) as client:
            assert {tool.name for tool in (await client.list_tools()).tools} == TOOL_NAMES

            put = await client.call_tool("vault_put", {"name": name, "data": {"secret": URI}})
            info = structured(put)
            assert (info["name"], info["type"], info["has_totp"]) == (name, "TOTP", True)

            before = time.time()
            code_result = await client.call_tool("vault_totp", {"name": name})
            after = time.time()
            code = structured(code_result)
            assert re.fullmatch(r"[0-9]{6}", code["code"]), code
            # The server computed at some t in [before, after]; at a step edge that is either step.
            engine = {otp.totp_at(seed, t).code: otp.totp_at(seed, t) for t in (before, after)}
            assert code["code"] in engine, (code, sorted(engine))
            expected = engine[code["code"]]
            assert datetime.fromisoformat(code["expires_at"].replace("Z", "+00:00")).timestamp() == expected.expires_at
            assert 1 <= code["remaining"] <= 30
            assert (code["digits"], code["period"], code["algorithm"]) == (6, 30, "SHA1")

            got = await client.call_tool("vault_get", {"name": name})
            view = structured(got)
            assert view["has_totp"] is True
            assert (view["totp"]["issuer"], view["totp"]["account"]) == ("Example", "alice@google.com")
            assert "secret" not in view["data"], view["data"]

            listed = structured(await client.call_tool("vault_list", {"prefix": name}))
            assert [(e["name"], e["has_totp"]) for e in listed["entries"]] == [(name, True)]

            deleted = structured(await client.call_tool("vault_delete", {"name": name}))
            assert deleted == {"name": name, "deleted": True}
            gone = await client.call_tool("vault_get", {"name": name})
            assert gone.is_error and "No vault entry named" in result_text(gone)

    for result in (put, code_result, got):
        shown = result_text(result)
        assert SEED.lower() not in shown.lower() and "otpauth" not in shown.lower(), shown


async def test_server_log_never_contains_token_or_seed(server: ServerProcess, shared_token: str) -> None:
    # Make every kind of request that carries the token or the seed, then read the whole log
    # (it also holds whatever the module's other tests made this server do).
    near_miss = shared_token[:-1] + ("A" if shared_token[-1] != "A" else "B")
    method, path = endpoint_of(server)
    assert raw_request(server, method, path, bearer(near_miss)).status_code == 401
    assert raw_request(server, method, path, {**bearer(shared_token), "Host": "evil.example"}).status_code == 421
    assert raw_request(server, method, path, {**bearer(shared_token), "Origin": "http://evil"}).status_code == 403
    with anyio.fail_after(RUN_TIMEOUT):
        async with mcp_client(server, shared_token) as client:
            structured(await client.call_tool("vault_put", {"name": "leak-check", "data": {"secret": URI}}))
            structured(await client.call_tool("vault_totp", {"name": "leak-check"}))
            bad = await client.call_tool("vault_put", {"name": "leak-check-2", "data": {"secret": SEED + "1"}})
            assert bad.is_error and SEED not in result_text(bad)
    log = server.stderr()
    assert "listening on" in log  # the right file, and not empty
    for secret in (shared_token, near_miss, SEED, SEED.lower()):
        assert secret not in log, f"{secret[:4]}... appears in the server's stderr"
        assert secret not in server.stdout()


# -- the token made by `mailgent-mcp token` -------------------------------------------------


def token_file_holds_only_the_hash_of(home: Path, token: str) -> None:
    path = home / TOKEN_FILE
    raw = path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token.encode() not in raw
    assert raw.strip() == hashlib.sha256(token.encode()).hexdigest().encode()


async def test_token_command_token_works_and_rotate_revokes_it(tmp_path: Path) -> None:
    # Both transports in one test: each server start costs ~1.5 s, so at each stage the
    # http and sse servers start side by side on the same data folder.
    home = tmp_path / "home"
    env = clean_env(home)  # no MAILGENT_TOKEN: the servers must take the hash from the data folder
    made = run_cli(home, "token", env=env)
    assert made.returncode == 0, made.stderr
    token = made.stdout.splitlines()[0]
    assert re.fullmatch(r"mgt_[A-Za-z0-9_-]{40,}", token), made.stdout
    token_file_holds_only_the_hash_of(home, token)

    first = start_all([(t, env) for t in TRANSPORTS], tmp_path / "logs")
    try:
        for server in first:
            assert await tool_names(server, token) == TOOL_NAMES, server.transport
            assert raw_request(server, *endpoint_of(server), bearer(new_token())).status_code == 401, server.transport
        again = run_cli(home, "token", env=env)
        assert again.returncode == 2, again.stderr
        assert "--rotate" in again.stderr and token not in again.stdout + again.stderr
        token_file_holds_only_the_hash_of(home, token)  # untouched
    finally:
        for server in first:
            server.stop()

    rotated = run_cli(home, "token", "--rotate", env=env)
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.splitlines()[0]
    assert new != token and new.startswith("mgt_")
    token_file_holds_only_the_hash_of(home, new)

    second = start_all([(t, env) for t in TRANSPORTS], tmp_path / "logs")
    try:
        for server in second:
            assert raw_request(server, *endpoint_of(server), bearer(token)).status_code == 401, server.transport
            assert await tool_names(server, new) == TOOL_NAMES, server.transport
    finally:
        for server in second:
            server.stop()
    for server in first + second:
        log = server.stderr()
        assert "listening on" in log, server.transport
        assert token not in log and new not in log, server.transport


def endpoint_of(server: ServerProcess) -> tuple[str, str]:
    """The method and path a client opens with on this server's transport."""
    return ("POST", "/mcp") if server.transport == "http" else ("GET", "/sse")


# -- refusing to start -------------------------------------------------------------------

SHORT_TOKEN = "short-but-secret-tok-23"
REFUSALS = {
    "no-token": ([], None, "mailgent-mcp token"),
    "remote-host": (["--host", "0.0.0.0"], new_token(), "--allow-remote"),
    "short-token": ([], SHORT_TOKEN, f"at least {MIN_TOKEN_CHARS}"),
}


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], ServerProcess]]:
    """Every refusal case, for both transports, launched at once (each costs the SDK import, ~1.3 s)."""
    root = tmp_path_factory.mktemp("refusals")
    launched = {}
    for transport in TRANSPORTS:
        for case, (args, token, _) in REFUSALS.items():
            extra = {} if token is None else {"MAILGENT_TOKEN": token}
            env = clean_env(root / f"home-{transport}-{case}", **extra)
            launched[(transport, case)] = ServerProcess.launch(transport, env, root / "logs", extra_args=args)
    try:
        yield launched
    finally:
        for server in launched.values():
            server.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("case", list(REFUSALS))
def test_server_refuses_to_start_unsafely_with_exit_7(refusals: dict[tuple[str, str], ServerProcess],
                                                      transport: str, case: str) -> None:
    server = refusals[(transport, case)]
    _, token, message = REFUSALS[case]
    assert server.wait_exit() == 7, server.stderr()
    err = server.stderr()
    assert message in err, err
    assert "Traceback" not in err, err
    if token is not None:
        assert token not in err + server.stdout()
    if case == "short-token":
        assert len(SHORT_TOKEN) == MIN_TOKEN_CHARS - 1  # the boundary; the shared servers use exactly 24
