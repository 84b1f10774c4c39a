"""Real vault client processes for the multi-process tests: tests/helpers/vault_worker.py run with the test's Python.

The parent learns what a worker did only from the lines it prints and flushes, read through
a pipe; no test sleeps to synchronise.
"""

from __future__ import annotations

import contextlib
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from ..conftest import clean_env

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parent / "vault_worker.py"
LINE_TIMEOUT = 60.0  # seconds to wait for one line: far above any healthy run, so a hang fails, not blocks


class Worker:
    """One vault_worker.py process; its stdout lines arrive on a queue through a reader thread."""

    def __init__(self, home: Path, args: list[str], log_dir: Path, **env: str) -> None:
        self.stderr_path = log_dir / f"worker-{len(list(log_dir.iterdir()))}.stderr"
        self._stderr: IO[bytes] = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), args[0], str(home), *args[1:]],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            env=worker_env(home, **env),
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect(self, word: str, count: int = 1) -> list[str]:
        """Read lines until `count` of them start with `word`; fail if the worker ends first."""
        found: list[str] = []
        while len(found) < count:
            try:
                line = self._queue.get(timeout=LINE_TIMEOUT)
            except queue.Empty:
                pytest.fail(f"worker printed no {word!r} line within {LINE_TIMEOUT} s")
            if line is None:
                pytest.fail(f"worker ended before {count} {word!r} lines: rc={self.proc.wait()} {self.stderr()!r}")
            self.lines.append(line)
            if line.split(" ", 1)[0] == word:
                found.append(line)
        return found

    def send(self, line: str) -> None:
        """Write one line to the worker's stdin (a barrier release or a stop)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = LINE_TIMEOUT) -> int:
        """Wait for the exit, collect every remaining line, and return the exit status."""
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        while (line := self._queue.get_nowait()) is not None:
            self.lines.append(line)
        self.close()
        return rc

    def close(self) -> None:
        """Kill the process if it still runs (only this worker's own pid) and close the pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=LINE_TIMEOUT)
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        self._stderr.close()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def words(self, word: str) -> list[str]:
        """The arguments of every line so far that starts with `word`."""
        return [line.split(" ", 1)[1] for line in self.lines if line.split(" ", 1)[0] == word]

    def ops(self) -> int:
        (ops,) = self.words("ops")
        return int(ops)


def worker_env(home: Path, **extra: str) -> dict[str, str]:
    """clean_env plus PYTHONPATH at the repository, so the worker imports this checkout's package."""
    return clean_env(home, PYTHONPATH=str(REPO), **extra)


Spawn = Callable[..., Worker]  # spawn(home, MODE, *ARGS, **ENV) -> a started Worker


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start workers; any still running at teardown is killed (by its own pid)."""
    log_dir = tmp_path / "worker-logs"
    log_dir.mkdir()
    started: list[Worker] = []

    def start(home: Path, *args: str, **env: str) -> Worker:
        worker = Worker(home, list(args), log_dir, **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.close()


def open_together(spawn: Spawn, home: Path, modes: list[str]) -> list[list[str]]:
    """Workers opening the folder at one moment, the vault ("open") or the inbox ("inbox"); each must end
    cleanly, and says how many entries or messages it found."""
    workers = [spawn(home, mode, "--barrier") for mode in modes]
    release_together(workers)
    codes = [worker.finish() for worker in workers]
    for worker, rc in zip(workers, codes, strict=True):
        assert rc == 0, worker.stderr()
        assert worker.stderr() == ""
    return [w.words("entries" if mode == "open" else "messages") for w, mode in zip(workers, modes, strict=True)]


def release_together(workers: list[Worker]) -> None:
    """Wait until every worker is armed (imports done), then let all of them go at once."""
    for worker in workers:
        worker.expect("armed")
    for worker in workers:
        worker.send("go")
