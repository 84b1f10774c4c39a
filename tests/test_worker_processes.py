"""The parser workers and multiprocessing's resource tracker never outlive their server.

Every server here is `python -m mailgent_mcp serve` run as a real subprocess with a mail
source (the SMTP inbox starts a parser worker at once). Its children are found through
/proc (each process's parent pid), so the test sees what `ps` would: the worker processes,
the resource tracker, and what each inherited in its environment.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from .conftest import clean_env, db_rows, ok
from .dovecot import Dovecot, dovecot, free_ports  # noqa: F401 - fixture
from .helpers.http_server import ServerProcess
from .test_imap_sync import mail

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")

EXIT_WITHIN_S = 5.0
SECRETS = {
    "MAILGENT_MASTER_KEY": base64.b64encode(b"K" * 32).decode(),
    "MAILGENT_PASSPHRASE": "passphrase-sentinel-5c1d9e",
    "MAILGENT_TOKEN": "token-sentinel-0123456789abcdef",
    "MAILGENT_IMAP_PASSWORD": "imap-password-sentinel-77a2",
}


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a live process, or None when it is gone (or a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else (int(fields[1]), fields[19])


def descendants(pid: int) -> dict[int, str]:
    """Every live process below pid, with its start time (so a reused pid is not taken for it)."""
    parents: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            parents.setdefault(st[0], []).append(int(entry.name))
            starts[int(entry.name)] = st[1]
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found[child] = starts[child]
            todo.append(child)
    return found


def alive(processes: dict[int, str]) -> list[int]:
    """Those of processes still running (same pid, same start time)."""
    return [pid for pid, start in processes.items() if (st := _stat(pid)) is not None and st[1] == start]


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def wait_for_workers(pid: int, timeout: float = 30) -> dict[int, str]:
    """The server's children once a parser worker and the resource tracker run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = descendants(pid)
        commands = [cmdline(k) for k in alive(kids)]
        if any("spawn_main" in c for c in commands) and any("resource_tracker" in c for c in commands):
            return kids
        time.sleep(0.05)
    pytest.fail(f"no parser worker under {pid} within {timeout} s")


def gone_within(processes: dict[int, str], timeout: float) -> list[int]:
    """Wait up to timeout for every process to end; those still running."""
    deadline = time.monotonic() + timeout
    while (left := alive(processes)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.fixture
def reap() -> Iterator[list[dict[int, str]]]:
    """Processes a test found; any still running at the end are killed, so no test leaves orphans."""
    found: list[dict[int, str]] = []
    yield found
    for processes in found:
        for pid in alive(processes):
            os.kill(pid, signal.SIGKILL)


def smtp_args() -> list[str]:
    return ["--smtp-listen", f"127.0.0.1:{free_ports(1)[0]}"]


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_sigterm_ends_every_child_of_an_http_server(tmp_path: Path, transport: str,
                                                   reap: list[dict[int, str]]) -> None:
    env = clean_env(tmp_path / "home", MAILGENT_TOKEN=SECRETS["MAILGENT_TOKEN"])
    server = ServerProcess.start(transport, env, tmp_path / "logs", extra_args=smtp_args())
    try:
        children = wait_for_workers(server.proc.pid)
        reap.append(children)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=20) == 0, server.stderr()
    finally:
        server.stop()
    assert gone_within(children, EXIT_WITHIN_S) == [], [cmdline(p) for p in alive(children)]
    assert "Traceback" not in server.stderr(), server.stderr()


def _stdio_server(home: Path) -> subprocess.Popen[bytes]:
    # stdin stays open and silent (a client that says nothing), so the stdio server keeps running.
    return subprocess.Popen([sys.executable, "-m", "mailgent_mcp", "serve", *smtp_args()], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=clean_env(home))


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_workers_of_a_killed_server_exit_by_themselves(tmp_path: Path, transport: str,
                                                      reap: list[dict[int, str]]) -> None:
    if transport == "stdio":
        proc = _stdio_server(tmp_path / "home")
    else:
        env = clean_env(tmp_path / "home", MAILGENT_TOKEN=SECRETS["MAILGENT_TOKEN"])
        proc = ServerProcess.start(transport, env, tmp_path / "logs", extra_args=smtp_args()).proc
    try:
        children = wait_for_workers(proc.pid)
        reap.append(children)
    finally:
        proc.kill()  # SIGKILL: the server cleans nothing up
        proc.wait(timeout=20)
    assert gone_within(children, EXIT_WITHIN_S) == [], [cmdline(p) for p in alive(children)]
    if proc.stdout is not None:
        # No child kept the MCP client's end of stdout open: the client sees the server gone.
        assert proc.stdout.read() == b""


async def test_workers_inherit_no_secret_and_the_server_still_uses_each(home: Path, dovecot: Dovecot,
                                                                        reap: list[dict[int, str]]) -> None:
    dovecot.add_user("bot", SECRETS["MAILGENT_IMAP_PASSWORD"])
    env = clean_env(home, **SECRETS, MAILGENT_IMAP_URL=f"imap://bot@{dovecot.host}:{dovecot.imap_port}/INBOX",
                    MAILGENT_LEASE_TTL="3")
    params = StdioServerParameters(command=sys.executable, args=["-m", "mailgent_mcp", "serve"], env=env)
    async with Client(params, read_timeout_seconds=60) as client:
        # The master key still opens the vault; the IMAP password still logs in; a worker parses the mail.
        ok(await client.call_tool("vault_put", {"name": "svc", "data": {"password": "p"}}))
        dovecot.deliver(mail("secret-free", body="Your code is 864209"), to="bot")
        found = ok(await client.call_tool("inbox_wait", {"subject": "secret-free", "since": "1h", "timeout": 60}))
        assert found["message"]["codes"][0]["code"] == "864209", found
        [(holder,)] = db_rows(home, "SELECT holder FROM pollers WHERE account = 'env'")
        children = wait_for_workers(int(str(holder).split(":")[1]))
        reap.append(children)
        environments = {pid: Path(f"/proc/{pid}/environ").read_bytes() for pid in alive(children)}
    assert environments and all(b"MAILGENT_HOME=" in e for e in environments.values())  # read, and not empty
    for pid, environ in environments.items():
        for name, value in SECRETS.items():
            assert name.encode() not in environ and value.encode() not in environ, (name, cmdline(pid))
