"""The HTTP transports over real sockets: bearer token, DNS-rebinding protection, a real SDK client.

Every server here is `python -m mailgent_mcp serve --transport http|sse` run as a subprocess
on a free port of 127.0.0.1 with a temporary data folder (tests/helpers/http_server.py).
One server per transport serves most of the module; the token-command test and the
refusals start their own. Raw requests use httpx2; the round trips use the SDK's Client
over streamable_http_client and sse_client, as an MCP client would.

Order of checks (mcp 2.3, seen here and in the SDK): each endpoint is wrapped in
RequireAuthMiddleware, and Host and Origin are validated inside the transport
(transport_security.py), so the bearer token comes first: without it the answer is 401
whatever the Host or Origin. With the right token, a foreign Host gets 421 and then a
foreign Origin 403.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import stat
import time
from collections.abc import AsyncIterator, Callable, Iterator
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
from mcp_types.version import LATEST_HANDSHAKE_VERSION, LATEST_MODERN_VERSION

from mailgent_mcp.mcp.tokens import MIN_TOKEN_CHARS, TOKEN_FILE
from mailgent_mcp.vault import otp

from .conftest import ALL_TOOLS, clean_env, run_cli
from .helpers.http_server import ServerProcess, start_all

TRANSPORTS = ("http", "sse")
TOOL_NAMES = set(ALL_TOOLS)
SEED = "JBSWY3DPEHPK3PXP"
SEED_HEX = otp.decode_base32(SEED).hex()
URI = f"otpauth://totp/Example:alice@google.com?secret={SEED}&issuer=Example"
RUN_TIMEOUT = 30  # seconds for one client session: a hang fails instead of blocking the suite


def new_token() -> str:
    """A random token of exactly MIN_TOKEN_CHARS (24) characters: the shortest the server accepts."""
    return secrets.token_urlsafe(18)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- endpoints and raw requests -------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """A guarded URL and the first request a client sends to it."""

    transport: str
    method: str
    path: str
    request: str  # initialize | modern | stream | message

    @property
    def id(self) -> str:
        return f"{self.transport}-{self.request}"


ENDPOINTS = [
    Endpoint("http", "POST", "/mcp", "initialize"),  # the handshake era, as clients use today
    Endpoint("http", "POST", "/mcp", "modern"),      # the 2026-07-28 era: another code path in the SDK
    Endpoint("sse", "GET", "/sse", "stream"),
    Endpoint("sse", "POST", "/messages/", "message"),  # where an SSE client posts its JSON-RPC
]
OPENING = {"http": ENDPOINTS[0], "sse": ENDPOINTS[2]}  # what a client sends first on each transport


@dataclass(frozen=True)
class RawResponse:
    status_code: int
    headers: dict[str, str]
    text: str


def raw_request(server: ServerProcess, endpoint: Endpoint, headers: dict[str, str]) -> RawResponse:
    """Send endpoint's first request with extra headers (httpx2, no MCP client).

    A request that gets through to GET /sse or POST /mcp is answered with an event stream
    that may stay open, so of a stream only the status line and headers are read.
    """
    url = server.base_url + endpoint.path
    base = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    body: dict[str, Any] | None = None
    if endpoint.request == "initialize":
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}}
    elif endpoint.request == "modern":
        base |= {"MCP-Protocol-Version": LATEST_MODERN_VERSION, "Mcp-Method": "tools/list"}
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": LATEST_MODERN_VERSION,
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {}}}}
    elif endpoint.request == "message":
        url += f"?session_id={secrets.token_hex(16)}"  # no such session: 404 once past the guards
        body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    else:
        base = {"Accept": "text/event-stream"}
    content = None if body is None else json.dumps(body).encode()
    with (httpx2.Client(timeout=10) as http,
          http.stream(endpoint.method, url, headers={**base, **headers}, content=content) as response):
        streaming = response.headers.get("content-type", "").startswith("text/event-stream")
        text = "<event stream, not read>" if streaming else response.read().decode(errors="replace")
        return RawResponse(response.status_code, dict(response.headers), text)


# -- servers and clients ----------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_token() -> str:
    return new_token()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, shared_token: str) -> Iterator[dict[str, ServerProcess]]:
    """One server per transport for the module, started side by side, each on its own data folder.

    They run with -v (INFO logs), so the no-leak test reads all the log a server can write.
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


@pytest.fixture(params=ENDPOINTS, ids=[e.id for e in ENDPOINTS])
def endpoint(request: pytest.FixtureRequest, servers: dict[str, ServerProcess]) -> tuple[ServerProcess, Endpoint]:
    """A guarded endpoint of the module's servers, with the server behind it."""
    ep: Endpoint = request.param
    return servers[ep.transport], ep


@asynccontextmanager
async def mcp_client(server: ServerProcess, token: str, *, mode: str = "legacy") -> AsyncIterator[Client]:
    """The SDK's Client over the server's transport, sending the bearer token on every request."""
    if server.transport == "http":
        async with (httpx2.AsyncClient(headers=bearer(token), timeout=httpx2.Timeout(10, read=60)) as http,
                    Client(streamable_http_client(server.url, http_client=http), mode=mode,
                           read_timeout_seconds=10) as client):
            yield client
    else:
        async with Client(sse_client(server.url, headers=bearer(token)), mode=mode,
                          read_timeout_seconds=10) as client:
            yield client


async def tool_names(server: ServerProcess, token: str) -> set[str]:
    """The tool names a real client sees with this token."""
    with anyio.fail_after(RUN_TIMEOUT):
        async with mcp_client(server, token) as client:
            return {tool.name for tool in (await client.list_tools()).tools}


def result_text(result: CallToolResult) -> str:
    """Everything a tool result shows the model: its text blocks and its structured content."""
    texts = [getattr(block, "text", "") for block in result.content]
    return "\n".join(texts) + "\n" + json.dumps(result.structured_content)


def structured(result: CallToolResult) -> dict[str, Any]:
    """The structured content of a successful tool result."""
    assert not result.is_error, result_text(result)
    content: dict[str, Any] | None = result.structured_content
    assert content is not None, result_text(result)
    return content


def near_miss(token: str) -> str:
    """The token with its last character changed."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


# -- bearer token -------------------------------------------------------------------------


def test_request_without_token_is_rejected_with_401(endpoint: tuple[ServerProcess, Endpoint]) -> None:
    server, ep = endpoint
    response = raw_request(server, ep, {})
    assert response.status_code == 401, response.text
    assert response.headers.get("www-authenticate", "").startswith("Bearer"), response.headers


@pytest.mark.parametrize("authorization", [
    pytest.param(lambda t: f"Bearer {near_miss(t)}", id="last-char-changed"),
    pytest.param(lambda t: f"Bearer {t}x", id="extra-char"),
    pytest.param(lambda t: f"Bearer {t[:-1]}", id="truncated"),
    pytest.param(lambda t: t, id="no-scheme"),
    pytest.param(lambda t: f"Basic {t}", id="basic-scheme"),
    pytest.param(lambda t: "Bearer", id="scheme-only"),
])
def test_request_with_wrong_token_is_rejected_with_401(endpoint: tuple[ServerProcess, Endpoint], shared_token: str,
                                                      authorization: Callable[[str], str]) -> None:
    server, ep = endpoint
    response = raw_request(server, ep, {"Authorization": authorization(shared_token)})
    assert response.status_code == 401, response.text


# -- DNS-rebinding protection ------------------------------------------------------------

FOREIGN_HOSTS = ["evil.example:{port}", "127.0.0.1.evil.example:{port}", "evil.example"]
FOREIGN_ORIGINS = ["http://evil.example", "http://127.0.0.1.evil.example:{port}", "https://localhost.evil.example",
                   "null"]  # "null": what a sandboxed iframe or a file:// page sends


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
def test_right_token_with_foreign_host_is_rejected_with_421(endpoint: tuple[ServerProcess, Endpoint],
                                                           shared_token: str, host: str) -> None:
    server, ep = endpoint
    response = raw_request(server, ep, {**bearer(shared_token), "Host": host.format(port=server.port)})
    assert response.status_code == 421, response.text


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
def test_right_token_with_foreign_origin_is_rejected_with_403(endpoint: tuple[ServerProcess, Endpoint],
                                                             shared_token: str, origin: str) -> None:
    server, ep = endpoint
    response = raw_request(server, ep, {**bearer(shared_token), "Origin": origin.format(port=server.port)})
    assert response.status_code == 403, response.text


@pytest.mark.parametrize("foreign", ["host", "origin"])
def test_token_is_checked_before_host_and_origin(endpoint: tuple[ServerProcess, Endpoint], foreign: str) -> None:
    # Seen, and as the SDK is built: RequireAuthMiddleware runs before the transport's
    # Host/Origin checks, so a request without the token learns nothing about them.
    server, ep = endpoint
    headers = {"Host": f"evil.example:{server.port}"} if foreign == "host" else {"Origin": "http://evil.example"}
    response = raw_request(server, ep, headers)
    assert response.status_code == 401, response.text


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_right_token_with_local_host_and_origin_is_let_through(endpoint: tuple[ServerProcess, Endpoint],
                                                               shared_token: str, host: str) -> None:
    # The control for the rejections above: these headers pass every guard.
    server, ep = endpoint
    headers = {**bearer(shared_token), "Host": f"{host}:{server.port}", "Origin": f"http://{host}:{server.port}"}
    response = raw_request(server, ep, headers)
    expected = 404 if ep.request == "message" else 200  # past the guards, the made-up session is unknown
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
            totp = await client.call_tool("vault_totp", {"name": name})
            after = time.time()
            code = structured(totp)
            assert re.fullmatch(r"[0-9]{6}", code["code"]), code
            # The server read its clock at some t in [before, after]: at a step edge, either step.
            engine = {otp.totp_at(seed, t).code: otp.totp_at(seed, t) for t in (before, after)}
            assert code["code"] in engine, (code, sorted(engine))
            expires = datetime.fromisoformat(code["expires_at"].replace("Z", "+00:00")).timestamp()
            assert expires == engine[code["code"]].expires_at, code
            assert 1 <= code["remaining"] <= 30
            assert (code["digits"], code["period"], code["algorithm"]) == (6, 30, "SHA1")

            got = await client.call_tool("vault_get", {"name": name})
            view = structured(got)
            assert view["has_totp"] is True
            assert (view["totp"]["issuer"], view["totp"]["account"]) == ("Example", "alice@google.com")
            assert "secret" not in view["data"], view["data"]

            listed = structured(await client.call_tool("vault_list", {"prefix": name}))
            assert [(e["name"], e["has_totp"]) for e in listed["entries"]] == [(name, True)]
            assert structured(await client.call_tool("vault_delete", {"name": name})) == {"name": name,
                                                                                          "deleted": True}
            gone = await client.call_tool("vault_get", {"name": name})
            assert gone.is_error and "No vault entry named" in result_text(gone)

    for result in (put, totp, got):
        shown = result_text(result).lower()
        assert SEED.lower() not in shown and SEED_HEX not in shown and "otpauth" not in shown, shown


async def test_server_log_never_contains_token_or_seed(server: ServerProcess, shared_token: str) -> None:
    # Make each kind of request that carries the token or the seed, then read the whole log
    # (which also holds whatever the module's other tests made this server do).
    wrong = near_miss(shared_token)
    opening = OPENING[server.transport]
    assert raw_request(server, opening, bearer(wrong)).status_code == 401
    assert raw_request(server, opening, {**bearer(shared_token), "Host": "evil.example"}).status_code == 421
    assert raw_request(server, opening, {**bearer(shared_token), "Origin": "http://evil"}).status_code == 403
    with anyio.fail_after(RUN_TIMEOUT):
        async with mcp_client(server, shared_token) as client:
            structured(await client.call_tool("vault_put", {"name": "leak-check", "data": {"secret": URI}}))
            structured(await client.call_tool("vault_totp", {"name": "leak-check"}))
            bad = await client.call_tool("vault_put", {"name": "leak-check-2", "data": {"secret": SEED + "1"}})
            assert bad.is_error and SEED not in result_text(bad)
    log, out = server.stderr(), server.stdout()
    assert "listening on" in log and "Invalid Host header" in log  # the right file, written as we went
    for secret in (shared_token, wrong, SEED, SEED.lower(), SEED_HEX):
        assert secret not in log, f"{secret[:4]}... appears in the server's stderr"
        assert secret not in out, f"{secret[:4]}... appears in the server's stdout"


# -- the token made by `mailgent-mcp token` -------------------------------------------------


def assert_token_file_holds_only_the_hash_of(home: Path, token: str) -> None:
    path = home / TOKEN_FILE
    raw = path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token.encode() not in raw
    assert raw.strip() == hashlib.sha256(token.encode()).hexdigest().encode()


async def test_token_command_token_works_and_rotate_revokes_it_at_once(tmp_path: Path) -> None:
    # Both transports in one test: a server start costs ~1.5 s, so the http and sse servers
    # start side by side on the same data folder and stay up across the rotation.
    home, logs = tmp_path / "home", tmp_path / "logs"
    env = clean_env(home)  # no MAILGENT_TOKEN: the servers must take the hash from the data folder
    made = run_cli(home, "token", env=env)
    assert made.returncode == 0, made.stderr
    token = made.stdout.splitlines()[0]
    assert re.fullmatch(r"mgt_[A-Za-z0-9_-]{40,}", token), made.stdout
    assert_token_file_holds_only_the_hash_of(home, token)

    servers = start_all([(t, env) for t in TRANSPORTS], logs)
    try:
        for server in servers:
            assert await tool_names(server, token) == TOOL_NAMES, server.transport
            opening = OPENING[server.transport]
            assert raw_request(server, opening, bearer(new_token())).status_code == 401, server.transport
        again = run_cli(home, "token", env=env)
        assert again.returncode == 2, again.stderr
        assert "--rotate" in again.stderr and token not in again.stdout + again.stderr
        assert_token_file_holds_only_the_hash_of(home, token)  # untouched

        rotated = run_cli(home, "token", "--rotate", env=env)
        assert rotated.returncode == 0, rotated.stderr
        new = rotated.stdout.splitlines()[0]
        assert new != token and new.startswith("mgt_")
        assert_token_file_holds_only_the_hash_of(home, new)
        for server in servers:  # the running servers read the new hash: no restart needed
            assert raw_request(server, OPENING[server.transport], bearer(token)).status_code == 401, server.transport
            assert await tool_names(server, new) == TOOL_NAMES, server.transport
    finally:
        for server in servers:
            server.stop()
    for server in servers:
        log = server.stderr() + server.stdout()
        assert "listening on" in log, server.transport
        assert token not in log and new not in log, server.transport


# -- refusing to start -------------------------------------------------------------------

SHORT_TOKEN = "short-but-secret-tok-23"  # MIN_TOKEN_CHARS - 1; the shared servers use exactly 24
REFUSALS: dict[str, tuple[list[str], str | None, str]] = {  # case: (serve args, MAILGENT_TOKEN, message)
    "no-token": ([], None, "mailgent-mcp token"),
    "remote-host": (["--host", "0.0.0.0"], new_token(), "--allow-remote"),  # a valid token: only the host is wrong
    "short-token": ([], SHORT_TOKEN, f"at least {MIN_TOKEN_CHARS}"),
}


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], ServerProcess]]:
    """Every refusal, for both transports, launched at once (each costs the SDK import, ~1.3 s)."""
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
    assert len(SHORT_TOKEN) == MIN_TOKEN_CHARS - 1
    server = refusals[(transport, case)]
    _, token, message = REFUSALS[case]
    assert server.wait_exit() == 7, server.stderr()  # fails at once if it listens instead
    err = server.stderr()
    assert message in err, err
    assert "Traceback" not in err, err
    if token is not None:
        assert token not in err + server.stdout()
