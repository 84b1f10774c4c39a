"""The official TypeScript SDK (@modelcontextprotocol/sdk) as a client, over real stdio and streamable HTTP.

tests/node/sdk_client.mjs is a small client on the SDK's Client with its StdioClientTransport
or StreamableHTTPClientTransport. Each test writes it a plan (the server, then the calls) on
stdin and reads one JSON line per call back from its stdout (see the script's header). It
runs on the pinned Node.js runtime (tests/helpers/node.py) with the SDK's defaults: no request
timeout or progress option is set. Node's stderr (where the stdio server's log also goes) is
shown with every failure.

Over stdio the client starts the venv's `mailgent-mcp serve`, as a client given its absolute
path would; over HTTP it connects to `mailgent-mcp serve --transport http` with the token
`mailgent-mcp token` printed, taken from MAILGENT_TOKEN in the client's environment.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .conftest import ALL_TOOLS, clean_env, run_cli
from .helpers.http_server import ServerProcess
from .helpers.node import NODE_DIR, SDK, SDK_CLIENT, needs, runtime

pytestmark = needs(SDK, SDK_CLIENT)

CONSOLE_SCRIPT = shutil.which("mailgent-mcp", path=str(Path(sys.executable).parent))
CLIENT_NAME = "mailgent-ts-sdk-test"  # the clientInfo name sdk_client.mjs declares
SDK_REQUEST_TIMEOUT = -32001  # ErrorCode.RequestTimeout: the SDK gave up waiting for an answer

# The RFC 6238 SHA-256 seed (32 bytes "1234567890..."), with 8 digits: parameters other than
# the defaults, so the test sees them pass through the URI, the vault and the TOTP engine.
SEED = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA"
SEED_HEX = b"12345678901234567890123456789012".hex()
URI = f"otpauth://totp/Example:agent@example.com?secret={SEED}&issuer=Example&algorithm=SHA256&digits=8"


@dataclass
class SdkRun:
    """What sdk_client.mjs printed: its JSON lines, its stderr and its exit status."""

    lines: list[dict[str, Any]]
    stderr: str
    returncode: int

    def why(self) -> str:
        return f"sdk_client.mjs exit {self.returncode}; its stdout lines: {self.lines}\nnode's stderr:\n" \
               f"{self.stderr[-4000:]}"

    def line(self, call: int) -> dict[str, Any]:
        """The line for call number `call` (from 0)."""
        found = [line for line in self.lines if line.get("call") == call]
        assert len(found) == 1, f"no single line for call {call}. {self.why()}"
        return found[0]

    def result(self, call: int) -> dict[str, Any]:
        """The JSON-RPC result of call number `call`, which must not be a JSON-RPC error."""
        line = self.line(call)
        assert line["kind"] == "result", f"call {call} failed: {line.get('error')}. {self.why()}"
        result: dict[str, Any] = line["result"]
        return result


def sdk_client(server: dict[str, Any], calls: list[dict[str, Any]], env: dict[str, str],
               timeout: float = 60) -> SdkRun:
    """Run sdk_client.mjs with a plan and return what it printed."""
    node = runtime(SDK, SDK_CLIENT)
    plan = json.dumps({"server": server, "calls": calls})
    try:
        done = subprocess.run([node, str(SDK_CLIENT)], input=plan, capture_output=True, text=True, env=env,
                              timeout=timeout, cwd=NODE_DIR)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        pytest.fail(f"sdk_client.mjs did not finish within {timeout} s; node's stderr:\n{err[-4000:]}")
    lines = []
    for text in done.stdout.splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            pytest.fail(f"sdk_client.mjs printed a line that is not JSON: {text[:500]!r}\n"
                        f"node's stderr:\n{done.stderr[-4000:]}")
    return SdkRun(lines, done.stderr, done.returncode)


def connected(run: SdkRun) -> SdkRun:
    """run, after checking the client connected and made every call."""
    assert run.returncode == 0 and run.lines and run.lines[0]["kind"] == "connected", run.why()
    assert run.lines[0]["server"]["name"] == "mailgent-mcp", run.why()
    return run


def stdio_server(home: Path, *args: str) -> dict[str, Any]:
    """The plan's server entry for `mailgent-mcp serve ARGS` over stdio, by the console script's absolute path."""
    assert CONSOLE_SCRIPT is not None, "the mailgent-mcp console script is not installed in this environment"
    return {"stdio": {"command": CONSOLE_SCRIPT, "args": ["serve", *args], "env": clean_env(home)}}


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    """A tools/call step of the plan."""
    return {"method": "tools/call", "name": tool, "arguments": arguments}


def oathtool_codes(oathtool: str, started_ms: int, ended_ms: int) -> set[str]:
    """oathtool's codes for URI's seed at the start and the end of a call: the server read its clock between."""
    return {subprocess.run([oathtool, "--totp=sha256", "-d", "8", "-s", "30s", f"--now=@{ms // 1000}", SEED_HEX],
                           capture_output=True, text=True, timeout=10, check=True).stdout.strip()
            for ms in (started_ms, ended_ms)}


def audit_actors(home: Path) -> set[str]:
    """The actors of the vault's audit rows other than its creation."""
    tail = run_cli(home, "audit", "tail", "-n", "50", "--json")
    assert tail.returncode == 0, tail.stderr
    return {row["actor"] for row in json.loads(tail.stdout) if row["op"] != "init"}


@dataclass
class HttpServer:
    """A `serve --transport http` subprocess, its data folder and the token `mailgent-mcp token` printed."""

    process: ServerProcess
    home: Path
    token: str

    def client_env(self, token: str | None) -> dict[str, str]:
        """The client's environment: MAILGENT_TOKEN holds the token it sends, when it has one."""
        return clean_env(self.home.parent / "client", **({} if token is None else {"MAILGENT_TOKEN": token}))


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    root = tmp_path_factory.mktemp("ts-http")
    home = root / "home"
    made = run_cli(home, "token")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()  # what `MAILGENT_TOKEN=$(mailgent-mcp token)` captures
    process = ServerProcess.start("http", clean_env(home), root / "logs")  # no MAILGENT_TOKEN: the hash file
    try:
        yield HttpServer(process, home, token)
    finally:
        process.stop()


@pytest.fixture(params=["stdio", "http"])
def transport(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def plan_for(transport: str, home: Path,
             request: pytest.FixtureRequest) -> tuple[dict[str, Any], dict[str, str], Path]:
    """The server entry, the client's environment and the data folder the server uses, for a transport."""
    if transport == "stdio":
        return stdio_server(home), clean_env(home), home
    server: HttpServer = request.getfixturevalue("http_server")
    return {"http": {"url": server.process.url}}, server.client_env(server.token), server.home


def test_typescript_sdk_lists_tools_stores_a_uri_and_gets_oathtools_code(
        transport: str, home: Path, oathtool: str, request: pytest.FixtureRequest) -> None:
    server, env, server_home = plan_for(transport, home, request)
    name = f"ts-{transport}-{secrets.token_hex(3)}"
    run = connected(sdk_client(server, [
        {"method": "tools/list"},
        call("vault_put", name=name, data={"secret": URI}),
        call("vault_totp", name=name),
        call("vault_get", name=name),
    ], env))

    tools = {tool["name"]: tool for tool in run.result(0)["tools"]}
    assert list(tools) == ALL_TOOLS, run.why()
    assert tools["vault_get"]["annotations"]["readOnlyHint"] is True and "outputSchema" in tools["vault_totp"]

    put = run.result(1)
    assert put.get("isError") is False and put["structuredContent"]["has_totp"] is True, run.why()
    assert (put["structuredContent"]["totp"]["algorithm"], put["structuredContent"]["totp"]["digits"]) == ("SHA256", 8)

    line = run.line(2)
    totp = run.result(2)["structuredContent"]
    assert re.fullmatch(r"\d{8}", totp["code"]) and 1 <= totp["remaining"] <= 30, totp
    assert totp["code"] in oathtool_codes(oathtool, line["started_ms"], line["ended_ms"]), (totp, line)

    view = run.result(3)["structuredContent"]
    assert view["has_totp"] is True and "secret" not in view["data"], view
    shown = json.dumps([run.result(i) for i in (1, 2, 3)]).lower()  # the tool list describes otpauth:// URIs
    assert SEED.lower() not in shown and SEED_HEX not in shown and "otpauth" not in shown
    assert f"mcp:{CLIENT_NAME}" in audit_actors(server_home)  # the SDK client's clientInfo reached the audit log


def test_typescript_sdk_sees_tool_errors_as_is_error(transport: str, home: Path,
                                                      request: pytest.FixtureRequest) -> None:
    server, env, _ = plan_for(transport, home, request)
    run = connected(sdk_client(server, [
        call("vault_totp", name="nope"),
        call("vault_put", name="bad-seed", data={"secret": "0000"}),
    ], env))
    for index, words in ((0, "No vault entry named 'nope'"), (1, "not base32")):
        result = run.result(index)  # a tool error is a result, not a JSON-RPC error
        assert result["isError"] is True, run.why()
        assert words in result["content"][0]["text"], result


@pytest.mark.parametrize("sent", ["none", "wrong"])
def test_typescript_sdk_without_the_right_token_is_refused_with_401(http_server: HttpServer, sent: str) -> None:
    token = None if sent == "none" else http_server.token[:-1] + ("A" if http_server.token[-1] != "A" else "B")
    run = sdk_client({"http": {"url": http_server.process.url}}, [{"method": "tools/list"}],
                     http_server.client_env(token))
    assert run.returncode == 1 and [line["kind"] for line in run.lines] == ["connect_error"], run.why()
    assert run.lines[0]["error"]["code"] == 401, run.why()


@pytest.mark.slow
def test_inbox_wait_default_timeout_answers_before_the_sdk_default_request_timeout(home: Path) -> None:
    # An agent calls inbox_wait with a filter only and no mail comes: the server's own timeout
    # must end the wait with its timed_out answer before the SDK's default request timeout
    # (DEFAULT_REQUEST_TIMEOUT_MSEC, 60 s in 1.32) abandons the call with -32001. No timeout
    # argument is passed, and the SDK's default is left as it is.
    run = connected(sdk_client(stdio_server(home, "--smtp-listen", "127.0.0.1:0"),
                               [call("inbox_wait", subject=f"never sent {secrets.token_hex(4)}")],
                               clean_env(home), timeout=180))
    sdk_timeout_s = run.lines[0]["default_timeout_ms"] / 1000
    line = run.line(0)
    if line["kind"] == "error":
        waited = (line["ended_ms"] - line["started_ms"]) / 1000
        assert line["error"]["code"] != SDK_REQUEST_TIMEOUT, (
            f"the SDK's default request timeout ({sdk_timeout_s:.0f} s) gave up after {waited:.1f} s, before "
            f"inbox_wait's default timeout answered: {line['error']}")
        pytest.fail(f"inbox_wait failed: {line['error']}. {run.why()}")
    result = run.result(0)
    assert result.get("isError") is False, run.why()
    answer = result["structuredContent"]
    assert answer["timed_out"] is True and answer["message"] is None, answer
    assert answer["waited_seconds"] < sdk_timeout_s, answer
