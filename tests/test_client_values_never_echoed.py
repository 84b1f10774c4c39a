"""Values from clients and from mail reach no answer and no log line: names only.

A sentinel value goes where a client or a mail sender controls the text: a prompt name, a
resource URI, an unknown method, a tool name, a malformed or invalid JSON-RPC line, HTTP
bodies, and mail headers that make mail-parser log. The real server runs as a subprocess
(stdio, and streamable HTTP for the HTTP paths) with -v, so every log line it can write
at INFO is read; the sentinel must appear in none of its answers and nowhere in stderr.
"""

from __future__ import annotations

import json
import queue
import smtplib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError

from .conftest import clean_env
from .dovecot import free_ports
from .helpers.http_server import ServerProcess

SENTINEL = "SENTINEL-6b1f0c-value"
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND = -32700, -32600, -32601
# A header mail-parser cannot decode (base64 of a length no encoder writes): it logs the raw header at ERROR.
HOSTILE_MAIL = ("From: Service <no-reply@service.example>\r\nTo: agent@mailgent.localhost\r\n"
                f"Subject: header check\r\nX-Campaign: =?utf-8?b?{SENTINEL}XY?=\r\n"
                f"Content-Type: text/plain\r\n\r\nYour code is 505050.\r\n")


@dataclass
class RawStdio:
    """The server over its real stdin and stdout, one JSON-RPC line at a time (no client library)."""

    proc: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def send(self, line: str | dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
        self.proc.stdin.flush()

    def answers(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        """The next count answers, as sent (their order is the server's)."""
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < count:
            try:
                out.append(json.loads(self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))))
            except queue.Empty:
                pytest.fail(f"{len(out)} of {count} answers within {timeout} s: {out}")
        return out


@pytest.fixture
def raw_server(tmp_path: Path) -> Iterator[tuple[RawStdio, Path, int]]:
    """`mailgent-mcp -v serve` with an SMTP inbox, initialised over raw stdio; its stderr file and SMTP port."""
    [port] = free_ports(1)
    stderr_path = tmp_path / "server.stderr"
    with stderr_path.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "mailgent_mcp", "-v", "serve"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, text=True,
                                env=clean_env(tmp_path / "home", MAILGENT_SMTP_LISTEN=f"127.0.0.1:{port}"))
    server = RawStdio(proc)
    try:
        server.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})
        assert server.answers(1)[0]["id"] == 1
        server.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        yield server, stderr_path, port
    finally:
        proc.kill()
        proc.wait()


def test_no_client_or_mail_value_in_stdio_answers_or_stderr(raw_server: tuple[RawStdio, Path, int]) -> None:
    server, stderr_path, port = raw_server
    requests: list[str | dict[str, Any]] = [
        {"jsonrpc": "2.0", "id": 2, "method": "prompts/get", "params": {"name": SENTINEL}},
        {"jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {"uri": f"mailgent://{SENTINEL}"}},
        {"jsonrpc": "2.0", "id": 4, "method": SENTINEL, "params": {}},
        {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": SENTINEL, "arguments": {}}},
        '{"jsonrpc": "2.0", "id": 6, "method": "' + SENTINEL,  # cut short: not JSON
        {"jsonrpc": "2.0", "id": 7, "method": 42, "params": {"name": SENTINEL}},  # JSON, not a request
        [{"jsonrpc": "2.0", "id": 8, "method": "ping", "params": {"x": SENTINEL}}],  # a batch: not in MCP
    ]
    for request in requests:
        server.send(request if isinstance(request, str) else json.dumps(request))
    answers = server.answers(len(requests))
    by_id = {a.get("id"): a for a in answers if a.get("id") is not None}
    for answer in answers:
        assert SENTINEL not in json.dumps(answer), answer
    assert by_id[2]["error"]["code"] == -32602 and "prompt" in by_id[2]["error"]["message"].lower()
    assert by_id[3]["error"]["code"] == -32602 and "resource" in by_id[3]["error"]["message"].lower()
    assert by_id[4]["error"]["code"] == METHOD_NOT_FOUND and "data" not in by_id[4]["error"]
    assert by_id[5]["result"]["isError"] is True
    assert by_id[7]["error"]["code"] == INVALID_REQUEST
    unanswerable = [a for a in answers if a.get("id") is None]  # JSON-RPC 2.0 §5.1: id null when unknown
    assert sorted(a["error"]["code"] for a in unanswerable) == sorted([PARSE_ERROR, INVALID_REQUEST]), answers

    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail("no-reply@service.example", ["agent@mailgent.localhost"], HOSTILE_MAIL)
    server.send({"jsonrpc": "2.0", "id": 20, "method": "tools/call", "params": {
        "name": "inbox_wait", "arguments": {"subject": "header check", "since": "1h", "timeout": 30}}})
    [waited] = server.answers(1, timeout=60)
    assert waited["result"]["structuredContent"]["message"]["codes"][0]["code"] == "505050", waited
    assert SENTINEL not in json.dumps(waited)

    server.send({"jsonrpc": "2.0", "id": 21, "method": "ping"})  # still serving after all of it
    assert server.answers(1)[0] == {"jsonrpc": "2.0", "id": 21, "result": {}}
    stderr = stderr_path.read_text()
    assert "SMTP inbox listening" in stderr  # the right file, written as the server ran
    assert SENTINEL not in stderr, stderr
    assert "mailparser" in stderr  # the worker's log line came through, without the header's text


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_sdk_client_errors_name_no_client_value(tmp_path: Path, mode: str) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "mailgent_mcp", "-v", "serve"],
                                   env=clean_env(tmp_path / "home"))
    stderr_path = tmp_path / "server.stderr"
    with stderr_path.open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode=mode, read_timeout_seconds=60) as client:
            for attempt in (lambda: client.get_prompt(SENTINEL), lambda: client.read_resource(f"file:///{SENTINEL}")):
                with pytest.raises(MCPError) as caught:
                    await attempt()
                assert SENTINEL not in str(caught.value) and SENTINEL not in repr(caught.value.error)
            result = await client.call_tool(SENTINEL, {})
            assert result.is_error and SENTINEL not in json.dumps([c.model_dump() for c in result.content])
    assert SENTINEL not in stderr_path.read_text()


# -- streamable HTTP ---------------------------------------------------------------------

TOKEN = "http-token-for-the-value-checks-0001"


def _post(http: httpx2.Client, server: ServerProcess, body: str, session: str | None = None) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    if session:
        headers["mcp-session-id"] = session
    return http.post(server.url, content=body.encode(), headers=headers)


def _messages(response: httpx2.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages of an answer: a JSON body, or the data lines of an event stream."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]
    return [response.json()]


def test_no_client_value_in_http_answers_or_log(tmp_path: Path) -> None:
    server = ServerProcess.start("http", clean_env(tmp_path / "home", MAILGENT_TOKEN=TOKEN), tmp_path / "logs",
                                 global_args=["-v"])
    try:
        with httpx2.Client(timeout=30) as http:
            opened = _post(http, server, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}))
            session = opened.headers["mcp-session-id"]
            _post(http, server, json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}), session)
            calls = {
                2: ("prompts/get", {"name": SENTINEL}),
                3: ("resources/read", {"uri": f"mailgent://{SENTINEL}"}),
                4: (SENTINEL, {}),
                5: ("tools/call", {"name": SENTINEL, "arguments": {}}),
            }
            for id_, (method, params) in calls.items():
                response = _post(http, server, json.dumps({"jsonrpc": "2.0", "id": id_, "method": method,
                                                           "params": params}), session)
                [answer] = _messages(response)
                assert answer["id"] == id_ and SENTINEL not in response.text, response.text
            malformed = _post(http, server, '{"jsonrpc": "2.0", "id": 6, "method": "' + SENTINEL, session)
            assert malformed.status_code == 400 and SENTINEL not in malformed.text, malformed.text
            assert _messages(malformed)[0]["error"]["code"] == PARSE_ERROR
            invalid = _post(http, server, json.dumps({"jsonrpc": "2.0", "id": 7, "method": 42,
                                                      "params": {"name": SENTINEL}}), session)
            assert invalid.status_code == 400 and SENTINEL not in invalid.text, invalid.text
            assert _messages(invalid)[0]["error"]["code"] == INVALID_REQUEST
    finally:
        server.stop()
    log = server.stderr() + server.stdout()
    assert "listening on" in log
    assert SENTINEL not in log, log

