"""`mailgent-mcp serve --transport http|sse` run as a real subprocess, for tests/test_mcp_http.py.

    server = ServerProcess.launch("http", env, logs)   # env carries MAILGENT_HOME; returns at once
    server.wait_ready()      # polls a TCP connect; raises ServerExited with its stderr
    ...
    server.stop()            # SIGTERM, then SIGKILL after a grace period

The port is a free one of 127.0.0.1 (bind to port 0, close, hand the number over). Another
process can take it in between; the server then exits with "address already in use", and
`start` launches it again on a new port. stdout and stderr go to files, not pipes, so a
chatty server never blocks on a full pipe and a test can read its log while it runs.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

READY_TIMEOUT = 30.0  # seconds; a start takes ~1.5 s, more on a loaded 2-core machine
STOP_GRACE = 10.0
POLL_INTERVAL = 0.05
ADDRESS_IN_USE = "address already in use"
PATHS = {"http": "/mcp", "sse": "/sse"}


class ServerExited(RuntimeError):
    """The server exited before it listened; carries its exit code and stderr."""

    def __init__(self, transport: str, returncode: int, stderr: str) -> None:
        super().__init__(f"mailgent-mcp serve --transport {transport} exited with {returncode} before listening;"
                         f" its stderr:\n{stderr}")
        self.returncode = returncode
        self.stderr = stderr


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def accepts_connections(port: int, host: str = "127.0.0.1") -> bool:
    """True when a TCP connect to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class ServerProcess:
    """One server subprocess and the files holding its output."""

    transport: str
    port: int
    proc: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    args: Sequence[str]
    _files: list[IO[bytes]] = field(default_factory=list, repr=False)

    @classmethod
    def launch(cls, transport: str, env: dict[str, str], logs: Path, *,
               extra_args: Sequence[str] = (), global_args: Sequence[str] = (), port: int | None = None,
               ) -> ServerProcess:
        """Start `python -m mailgent_mcp [GLOBAL] serve --transport T --port N [EXTRA]`; do not wait."""
        port = free_port() if port is None else port
        logs.mkdir(parents=True, exist_ok=True)
        stem = f"{transport}-{port}-{time.monotonic_ns()}"
        stdout_path, stderr_path = logs / f"{stem}.stdout", logs / f"{stem}.stderr"
        out, err = stdout_path.open("wb"), stderr_path.open("wb")
        args = [*global_args, "serve", "--transport", transport, "--port", str(port),
                *extra_args]
        proc = subprocess.Popen([sys.executable, "-m", "mailgent_mcp", *args], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err, env=env)
        return cls(transport, port, proc, stdout_path, stderr_path, args, [out, err])

    @classmethod
    def start(cls, transport: str, env: dict[str, str], logs: Path, *,
              extra_args: Sequence[str] = (), global_args: Sequence[str] = (), attempts: int = 3) -> ServerProcess:
        """Launch and wait until it listens, on a new port if the chosen one was taken meanwhile."""
        return start_all([(transport, env)], logs, extra_args=extra_args, global_args=global_args,
                         attempts=attempts)[0]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The MCP endpoint: /mcp for streamable HTTP, /sse for SSE."""
        return self.base_url + PATHS[self.transport]

    def stderr(self) -> str:
        """Everything the server has written to stderr so far."""
        return self.stderr_path.read_text(errors="replace")

    def stdout(self) -> str:
        """Everything the server has written to stdout so far."""
        return self.stdout_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Return once the port accepts connections; raise ServerExited if the server exits first."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                self._close_files()
                raise ServerExited(self.transport, code, self.stderr())
            if accepts_connections(self.port):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"mailgent-mcp serve --transport {self.transport} did not listen on port "
                                   f"{self.port} within {timeout:.0f} s; its stderr:\n{self.stderr()}")
            time.sleep(POLL_INTERVAL)  # the bounded readiness poll, not a synchronisation sleep

    def wait_exit(self, timeout: float = READY_TIMEOUT) -> int:
        """The exit code of a server expected to refuse to start; raise if it listens instead."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                self._close_files()
                return code
            if accepts_connections(self.port):
                self.stop()
                raise AssertionError(f"the server was expected to refuse to start but listens on port {self.port}; "
                                     f"args {list(self.args)}; stderr:\n{self.stderr()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the server neither exited nor listened within {timeout:.0f} s; "
                                   f"stderr:\n{self.stderr()}")
            time.sleep(POLL_INTERVAL)

    def stop(self) -> int:
        """Stop the server (SIGTERM, then SIGKILL) and return its exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_files()
        return self.proc.returncode

    def _close_files(self) -> None:
        for fh in self._files:
            fh.close()
        self._files.clear()


def start_all(specs: Sequence[tuple[str, dict[str, str]]], logs: Path, *, extra_args: Sequence[str] = (),
              global_args: Sequence[str] = (), attempts: int = 3) -> list[ServerProcess]:
    """Start several servers side by side (each start costs ~1.5 s of imports) and wait for all."""
    servers = [ServerProcess.launch(t, e, logs, extra_args=extra_args, global_args=global_args) for t, e in specs]
    try:
        for i, (transport, env) in enumerate(specs):
            for attempt in range(attempts):
                try:
                    servers[i].wait_ready()
                    break
                except ServerExited as exc:
                    if ADDRESS_IN_USE not in exc.stderr.lower() or attempt == attempts - 1:
                        raise
                    servers[i] = ServerProcess.launch(transport, env, logs, extra_args=extra_args,
                                                      global_args=global_args)
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers
