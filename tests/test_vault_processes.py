"""Several real processes on one real vault.db: concurrent writers, a first-use race, SIGKILL.

Each client is tests/helpers/vault_worker.py run with the test's Python, as Claude
Desktop, Cursor and Claude Code each run their own server on one data folder. The
parent learns what a worker did only from the lines it prints and flushes ("committed
NAME" once a put has returned), read through a pipe; no test sleeps to synchronise.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailgent_mcp.db.migrations import RECORDED
from mailgent_mcp.inbox.cache import Inbox
from mailgent_mcp.inbox.store import MessageQuery
from mailgent_mcp.vault import otp
from mailgent_mcp.vault.entries import Vault

from .conftest import LATEST_STEP, db_rows, entries_snapshot, schema_steps
from .helpers.processes import LINE_TIMEOUT, Spawn, open_together, release_together, spawn, worker_env  # noqa: F401 - spawn: a fixture
from .helpers.vault_worker import (
    CHECK_AT,
    password_for,
    seed_for,
    shared_password,
    username_for,
)

pytestmark = pytest.mark.slow

ENTRY_FIELDS = {"username", "password", "secret"}


def expected_code(name: str, at: float) -> str:
    """The code the OTP engine computes from the seed the worker stored (not read from the vault)."""
    return otp.totp_at(otp.parse_secret(seed_for(name)), at).code


async def assert_entry_intact(vault: Vault, name: str, at: float) -> None:
    """The entry opens with exactly the worker's fields and gives the engine's code."""
    view = await vault.get(name)
    assert view.data == {"username": username_for(name), "password": password_for(name)}, name
    assert set(view.fields) == ENTRY_FIELDS, name
    assert view.has_totp, name
    assert (await vault.totp(name, at=at, unused_only=False)).code == expected_code(name, at), name


def audit_ops(home: Path) -> dict[str, int]:
    """Audit rows by op, read straight from the file."""
    return {str(op): int(str(n)) for op, n in db_rows(home, "SELECT op, count(*) FROM audit GROUP BY op")}


def fields_per_entry(home: Path) -> dict[str, int]:
    """How many sealed fields each entry row has: a torn put would leave fewer."""
    return {
        str(name): int(str(n))
        for name, n in db_rows(
            home, "SELECT e.name, count(f.field) FROM entries e LEFT JOIN entry_fields f ON f.entry_id = e.id "
            "GROUP BY e.id"
        )
    }


def sqlite_integrity(home: Path) -> list[tuple[object, ...]]:
    """PRAGMA integrity_check through the sqlite3 module, not through the package."""
    conn = sqlite3.connect(home / "vault.db")
    try:
        return list(conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


# -- concurrent writers ------------------------------------------------------------------


@pytest.mark.parametrize("processes", [2, 4])
async def test_concurrent_writers_on_a_fresh_folder_lose_nothing(home: Path, spawn: Spawn, processes: int) -> None:
    puts = 40
    workers = [
        spawn(home, "mixed", f"p{k}", str(puts), "--shared", "shared", "--shared-every", "4", "--barrier")
        for k in range(processes)
    ]
    release_together(workers)
    codes = [worker.finish() for worker in workers]

    for worker, rc in zip(workers, codes, strict=True):
        assert rc == 0, worker.stderr()
        assert "locked" not in worker.stderr().lower()
        assert worker.stderr() == ""
        assert len(worker.words("committed")) == puts
    # Read the audit table before this test's own checks add rows to it.
    by_op = audit_ops(home)
    assert by_op.pop("init", 0) == 1  # the vault was created once, whoever won the race
    assert sum(by_op.values()) == sum(worker.ops() for worker in workers)  # one row per operation, no more
    names = {f"p{k}-{i}" for k in range(processes) for i in range(puts)}
    assert fields_per_entry(home) == {**dict.fromkeys(names, 3), "shared": 1}

    async with await Vault.open(home, environ={}) as vault:
        assert await vault.integrity_check() == "ok"
        report = await vault.audit_verify()
        assert report.ok, report.problem
        assert {e.name for e in await vault.list()} == names | {"shared"}
        for name in sorted(names):
            await assert_entry_intact(vault, name, CHECK_AT)
        # Each worker writes the shared entry in increasing order, so the last committed
        # write overall is some worker's last write.
        last_writes = {worker.words("shared")[-1] for worker in workers}
        assert last_writes == {shared_password(f"p{k}", 36) for k in range(processes)}
        assert (await vault.get("shared")).data["password"] in last_writes


# -- first use -----------------------------------------------------------------------------


async def test_first_use_race_creates_exactly_one_key(home: Path, spawn: Spawn) -> None:
    assert not home.exists()
    workers = [spawn(home, "writer", f"race{k}", "3", "--barrier") for k in range(6)]
    release_together(workers)
    codes = [worker.finish() for worker in workers]

    for worker, rc in zip(workers, codes, strict=True):
        assert rc == 0, worker.stderr()
        assert worker.stderr() == ""
    keyfile = home / "master.key"
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    assert sorted(p.name for p in home.iterdir() if "key" in p.name) == ["master.key"]  # no stray temp key file
    assert {worker.words("ready")[0] for worker in workers} == {hashlib.sha256(keyfile.read_bytes()).hexdigest()}
    assert db_rows(home, "SELECT count(*), kek_kind FROM keyring") == [(1, "keyfile")]
    by_op = audit_ops(home)
    assert by_op.pop("put") == 18 and by_op.pop("init") == 1 and by_op == {}
    # One Vault, one key: every process's entries open, so all of them sealed under the same data key.
    async with await Vault.open(home, environ={}) as vault:
        for k in range(6):
            for i in range(3):
                await assert_entry_intact(vault, f"race{k}-{i}", CHECK_AT)
        report = await vault.audit_verify()
        assert report.ok, report.problem


async def test_vault_and_inbox_processes_opening_a_fresh_folder_at_once_each_find_their_tables(
        home: Path, spawn: Spawn) -> None:
    """Each domain migrates on its own: whichever process creates vault.db, the others add their domain's steps."""
    assert not home.exists()
    modes = ["open", "inbox"] * 3
    assert open_together(spawn, home, modes) == [["0"]] * 6
    assert db_rows(home, "PRAGMA user_version") == [(RECORDED,)]
    assert schema_steps(home) == LATEST_STEP
    assert db_rows(home, "SELECT count(*) FROM schema_migrations") == [(sum(LATEST_STEP.values()),)]
    async with await Vault.open(home, environ={}) as vault, await Inbox.open(home) as inbox:
        assert await vault.integrity_check() == "ok"
        assert await vault.list() == [] and await inbox.read(MessageQuery()) == []


def test_open_waits_for_a_writer_on_a_new_vault_db(home: Path, spawn: Spawn) -> None:
    home.mkdir(mode=0o700)
    holder = sqlite3.connect(home / "vault.db", isolation_level=None)  # a database not yet in WAL mode
    holder.execute("CREATE TABLE other (x)")
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process mid-write, still in rollback-journal mode
        worker = spawn(home, "open")
        try:
            gave_up: int | None = worker.proc.wait(timeout=1.5)  # a bound, not a synchronisation
        except subprocess.TimeoutExpired:
            gave_up = None  # still waiting for the lock, as busy_timeout (15 s) promises
        holder.execute("COMMIT")
    finally:
        holder.close()
    rc = worker.finish()
    assert gave_up is None, f"Vault.open gave up while another process held the lock: {worker.stderr()}"
    assert rc == 0 and worker.words("entries") == ["0"], worker.stderr()


# -- crash ---------------------------------------------------------------------------------


async def test_writer_killed_at_random_moments_keeps_every_committed_put(home: Path, spawn: Spawn) -> None:
    kills = 10
    rng_seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(rng_seed)
    where = f"(random seed {rng_seed})"
    committed: list[str] = []
    next_index = 0
    for _ in range(kills):
        writer = spawn(home, "writer", "crash", "1000000", "--start", str(next_index))
        writer.expect("committed", rng.randint(3, 12))
        time.sleep(rng.uniform(0.0, 0.03))  # not synchronisation: a random kill point within the put loop
        os.kill(writer.proc.pid, signal.SIGKILL)
        assert writer.finish() == -signal.SIGKILL, where
        names = writer.words("committed")
        assert names and writer.words("ops") == [], where  # it was killed mid-loop, never finished
        committed += names
        next_index = int(names[-1].rsplit("-", 1)[1]) + 1

    assert sqlite_integrity(home) == [("ok",)], where
    # Every entry row is whole: a put killed half-way left nothing, not a row without its fields.
    per_entry = fields_per_entry(home)
    assert set(per_entry.values()) == {3}, where
    assert set(committed) <= set(per_entry), where
    now = time.time()
    async with await Vault.open(home, environ={}) as vault:
        assert await vault.integrity_check() == "ok", where
        report = await vault.audit_verify()
        assert report.ok, f"{report.problem} {where}"
        assert report.rows >= 1 + len(committed), where
        # Entries committed but killed before "committed" was printed are checked too.
        for name in sorted(per_entry):
            await assert_entry_intact(vault, name, CHECK_AT)
            assert (await vault.totp(name, at=now, unused_only=False)).code == expected_code(name, now), where


# -- wrong key -----------------------------------------------------------------------------


async def test_wrong_key_beside_a_running_writer_writes_nothing(home: Path, spawn: Spawn) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    async with await Vault.open(home, environ={"MAILGENT_MASTER_KEY": key}) as vault:
        for name in ("keep-1", "keep-2"):
            await vault.put(name, {"password": password_for(name), "secret": seed_for(name)}, "LOGIN")
    before = entries_snapshot(home)
    keyring_before = db_rows(home, "SELECT * FROM keyring")
    audit_before = sum(audit_ops(home).values())

    # --cycle: it keeps overwriting 8 entries, so it writes without pause and the check stays short.
    writer = spawn(home, "writer", "w", "--until-stop", "--cycle", "8", MAILGENT_MASTER_KEY=key)
    writer.expect("committed", 3)
    intruders = {
        "a wrong master key": ({"MAILGENT_MASTER_KEY": base64.b64encode(os.urandom(32)).decode()},
                               "does not open this vault"),
        "a passphrase": ({"MAILGENT_PASSPHRASE": "not the key"}, "sealed with a master key"),
        "the key file": ({}, "sealed with a master key"),
    }
    for label, (env, message) in intruders.items():
        intruder = spawn(home, "open", **env)
        assert intruder.finish() == 3, label
        assert message in intruder.stderr(), label
        assert intruder.words("ready") == [], label
    writer.expect("committed", 3)  # the writer kept going after every refused open
    writer.send("stop")
    assert writer.finish() == 0, writer.stderr()
    assert writer.stderr() == ""

    written = set(writer.words("committed"))
    assert len(written) >= 6 and len(writer.words("committed")) >= 6
    after = entries_snapshot(home)
    assert [row for row in after if row[0] not in written] == before
    assert db_rows(home, "SELECT * FROM keyring") == keyring_before
    assert sum(audit_ops(home).values()) == audit_before + writer.ops()  # the refused opens wrote no audit row
    assert not (home / "master.key").exists(), "a refused open must not leave a key file behind"
    async with await Vault.open(home, environ={"MAILGENT_MASTER_KEY": key}) as vault:
        for name in sorted(written):
            await assert_entry_intact(vault, name, CHECK_AT)
        report = await vault.audit_verify()
        assert report.ok, report.problem


async def test_another_process_closing_never_deletes_the_wal_under_an_open_vault(home: Path) -> None:
    """SQLite's POSIX-lock pitfall: if this process ever closes a stray descriptor of vault.db,
    its connections' locks vanish, the next process to close takes itself for the last user,
    and deletes the WAL that this one still writes to (commits then get lost)."""
    async with await Vault.open(home, environ={}) as vault:
        await vault.put("before", {"password": "p"})
        for _ in range(2):  # another process opens, writes and closes: it must see it is not alone
            done = subprocess.run(
                [sys.executable, "-m", "mailgent_mcp", "vault", "put", "other", "--notes", "n"],
                capture_output=True, text=True, env=worker_env(home), timeout=60,
            )
            assert done.returncode == 0, done.stderr
            assert (home / "vault.db-wal").exists(), "a closing process deleted the WAL of an open vault"
        await vault.put("after", {"password": "q"})
        assert {e.name for e in await vault.list()} == {"before", "other", "after"}
    async with await Vault.open(home, environ={}) as reopened:
        assert (await reopened.get("after")).data == {"password": "q"}
