"""No audit row is lost: not under another process's write lock, not at exit, not when a process is killed.

Another process holding vault.db's write lock is real here: the test's own sqlite3
connection in BEGIN IMMEDIATE, as a long `inbox sync` or a stuck client would hold it. The
server is a real stdio subprocess, or tests/helpers/vault_worker.py for a process killed
outright.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from mailgent_mcp.db.sqlite import BUSY_TIMEOUT_S

from .conftest import SEED_RFC, clean_env, db_rows, error_text, ok, run_cli
from .helpers.processes import Spawn, spawn  # noqa: F401 - spawn: a fixture

pytestmark = pytest.mark.slow


@contextmanager
def write_lock_held(home: Path) -> Iterator[None]:
    """Hold vault.db's write lock from another process (this test's own connection) for the block."""
    conn = sqlite3.connect(home / "vault.db", isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def _ops(home: Path, op: str) -> list[tuple[object, ...]]:
    return db_rows(home, "SELECT op, entry, outcome FROM audit WHERE op = ? ORDER BY seq", (op,))


def _with_seed(home: Path) -> None:
    result = run_cli(home, "vault", "put", "github", "--secret", stdin=SEED_RFC + "\n")
    assert result.returncode == 0, result.stderr


async def test_reads_and_a_refused_put_under_another_writer_are_all_recorded(home: Path) -> None:
    _with_seed(home)
    params = StdioServerParameters(command=sys.executable, args=["-m", "mailgent_mcp", "serve"], env=clean_env(home))
    async with Client(params, mode="legacy", read_timeout_seconds=120) as client:
        with write_lock_held(home):
            for _ in range(20):
                # Reads (no code recorded: recording one would wait for the lock as a put does).
                assert ok(await client.call_tool("vault_totp", {"name": "github", "unused_only": False}))["code"]
            started = time.monotonic()
            text = error_text(await client.call_tool("vault_put", {"name": "new", "data": {"notes": "n"}}))
            waited = time.monotonic() - started
        assert "stayed locked" in text
        # One wait for the lock, as documented: the rows queued before the put share its transaction.
        assert waited < BUSY_TIMEOUT_S + 3, f"the put waited {waited:.1f} s"
        # The lock is gone: the retried rows reach the chain while the server runs.
        assert ok(await client.call_tool("vault_list", {}))
    assert len(_ops(home, "totp")) == 20
    assert _ops(home, "put")[-1] == ("put", "new", "error")
    assert run_cli(home, "audit", "verify").returncode == 0


def test_rows_that_cannot_be_written_at_exit_are_written_by_the_next_process(home: Path, spawn: Spawn) -> None:
    _with_seed(home)
    with write_lock_held(home):
        worker = spawn(home, "reads", "github", "5")
        worker.expect("done")
        worker.send("exit")  # close the vault while the lock is held: the rows cannot go in
        assert worker.finish(timeout=BUSY_TIMEOUT_S * 3) == 0, worker.stderr()
    assert "could not be written to vault.db" in worker.stderr()
    assert len(_ops(home, "totp")) == 0
    assert [p.name for p in home.glob(".audit-journal-*")], "the rows were not kept"
    # The next process to open the vault writes them, once.
    assert run_cli(home, "vault", "list").returncode == 0
    assert len(_ops(home, "totp")) == 5
    assert not list(home.glob(".audit-journal-*"))
    assert run_cli(home, "vault", "list").returncode == 0
    assert len(_ops(home, "totp")) == 5
    assert run_cli(home, "audit", "verify").returncode == 0


def test_rows_of_a_process_killed_outright_are_not_lost(home: Path, spawn: Spawn) -> None:
    _with_seed(home)
    with write_lock_held(home):  # so that the worker cannot have written them before it dies
        worker = spawn(home, "reads", "github", "7")
        worker.expect("done")
        worker.proc.send_signal(signal.SIGKILL)
        worker.finish()
    assert len(_ops(home, "totp")) == 0
    audit = run_cli(home, "audit", "tail", "-n", "20")
    assert audit.returncode == 0
    assert len(_ops(home, "totp")) == 7
    assert run_cli(home, "audit", "verify").returncode == 0


def test_a_journal_row_already_in_the_chain_is_not_written_twice(home: Path, spawn: Spawn) -> None:
    _with_seed(home)
    worker = spawn(home, "reads", "github", "3", "--flush")
    worker.expect("done")
    # The rows are in the chain and the journal is empty; put them back in the journal, as if
    # the worker died between its commit and emptying the journal.
    [journal] = list(home.glob(".audit-journal-*"))
    assert journal.stat().st_size == 0
    rows = db_rows(home, "SELECT at, op, entry, actor, outcome FROM audit WHERE op = 'totp' ORDER BY seq")
    assert len(rows) == 3
    journal.write_text("".join(json.dumps({"at": r[0], "op": r[1], "entry": r[2], "actor": r[3],
                                           "outcome": r[4]}) + "\n" for r in rows))
    worker.proc.send_signal(signal.SIGKILL)
    worker.finish()
    assert run_cli(home, "vault", "list").returncode == 0
    assert len(_ops(home, "totp")) == 3
    assert not list(home.glob(".audit-journal-*"))


def test_a_vault_opens_and_reads_while_another_process_holds_the_write_lock(home: Path, spawn: Spawn) -> None:
    _with_seed(home)
    with write_lock_held(home):
        worker = spawn(home, "reads", "github", "2")
        worker.expect("done")
        worker.proc.send_signal(signal.SIGKILL)  # leaves a journal for the next process to write
        worker.finish()
        started = time.monotonic()
        result = run_cli(home, "vault", "totp", "github", "--reuse")  # a read: it records no code
        assert result.returncode == 0, result.stderr  # the journal waits; the read does not
        assert time.monotonic() - started < BUSY_TIMEOUT_S
    assert run_cli(home, "vault", "list").returncode == 0
    assert len(_ops(home, "totp")) == 3
