"""SQLite, the database backend: the file, its connections, the writer thread, transactions
and the migrations applied to the file.

One `vault.db` per data folder, in WAL mode with a busy timeout, so several server
processes (Claude Desktop, Cursor and Claude Code each start one) share it safely.
Every write runs in `BEGIN IMMEDIATE`: the write lock is taken up front, so a
transaction never has to upgrade a read lock and fail with SQLITE_BUSY half-way.

A `SqliteConnection` is synchronous. `SqliteDatabase` runs whole units of work (a function
taking the store, usually one transaction) on one dedicated thread, so the event loop never
waits on the disk or on another process's lock, and an operation costs one thread
hand-off instead of one per statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from mailgent_mcp.db import migrations
from mailgent_mcp.db.backend import Connection, Database, S, StoreBusy
from mailgent_mcp.db.migrations import MigrationSet
from mailgent_mcp.errors import ConfigError, MailgentError

log = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_TIMEOUT_S = 15.0
IMPATIENT_TIMEOUT_S = 0.5


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or (
        "locked" in str(exc) or "busy" in str(exc)
    )


def _busy_error() -> MailgentError:
    return StoreBusy(f"vault.db stayed locked by another process for {BUSY_TIMEOUT_S:.0f} s; try again.")


class SqliteConnection(Connection):
    """A synchronous connection to vault.db; use it from one thread (the database thread, or the loop's).

    Opening one creates the file if needed and applies the pending steps of `sets`.
    """

    def __init__(self, path: Path, sets: Sequence[MigrationSet], *, reader: bool = False) -> None:
        self.path = path
        self.reader = reader
        _create_database(path, sets)
        try:
            self._conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S,
                                         check_same_thread=False)
        except sqlite3.Error:
            raise ConfigError(f"Cannot open {str(path)!r} as a SQLite database.") from None
        self._durable = True
        try:
            self._configure()
            self._migrate(sets)
            if reader:
                # The loop thread's connection: it must never wait on a lock (a busy read falls
                # back to the database thread) and writes only in short_write's transactions.
                self._conn.execute("PRAGMA busy_timeout = 0")
                self._conn.execute("PRAGMA synchronous = NORMAL")
                self._durable = False
                self._conn.execute("PRAGMA query_only = ON")
        except BaseException:
            self._conn.close()
            raise

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> sqlite3.Cursor:
        return self._conn.executemany(sql, rows)

    def close(self) -> None:
        self._conn.close()

    def _configure(self) -> None:
        self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        mode = self._switch_to_wal()
        if mode != "wal":
            log.warning("could not switch %s to WAL mode (it is in %s mode)", self.path, mode)
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.execute("PRAGMA foreign_keys = ON")

    def _switch_to_wal(self) -> str:
        # Switching a new database to WAL needs an exclusive lock, and SQLite answers BUSY at
        # once instead of waiting when another process holds the write lock: retry until the
        # busy timeout, as every other statement waits.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        delay = 0.005
        while True:
            try:
                row = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()
                return str(row[0]).lower() if row else "unknown"
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise self._not_a_vault() from None
                if time.monotonic() >= deadline:
                    raise _busy_error() from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
            except sqlite3.DatabaseError:
                raise self._not_a_vault() from None

    def _not_a_vault(self) -> ConfigError:
        return ConfigError(
            f"{str(self.path)!r} is not a mailgent-mcp database (or it is damaged); "
            "move it aside and let a new one be created, or set MAILGENT_HOME to another folder."
        )

    def _migrate(self, sets: Sequence[MigrationSet]) -> None:
        try:
            if _user_version(self._conn) == migrations.RECORDED and not migrations.pending(_record(self._conn), sets):
                return
            with self.transaction():
                # Under the write lock: another process may have migrated meanwhile.
                for done in _apply_migrations(self._conn, sets):
                    log.info("migrated %s: %s", self.path, done)
        except sqlite3.DatabaseError:
            raise self._not_a_vault() from None

    @contextmanager
    def transaction(self, *, durable: bool = True, patient: bool = True) -> Iterator[None]:
        """A write transaction (BEGIN IMMEDIATE): all of it commits, or none of it.

        durable=True (changes to entries and keys) syncs to disk at commit
        (synchronous=FULL); durable=False (an audit row for a read) lets WAL batch the
        sync (synchronous=NORMAL): a crash loses no data, a power cut at worst the newest
        read records, which the next durable commit would have synced. patient=False waits
        IMPATIENT_TIMEOUT_S for another process's write lock instead of BUSY_TIMEOUT_S: for
        work that is retried later anyway, so that it does not hold the database thread
        (and a change queued behind it) for the whole busy timeout.
        """
        if self.reader:
            if durable:
                raise ValueError("the loop thread's connection makes no durable writes")
            # Its busy_timeout is 0: a write lock held elsewhere is StoreBusy at once.
            self._conn.execute("PRAGMA query_only = OFF")
            try:
                yield from self._immediate(patient=True)
            finally:
                self._conn.execute("PRAGMA query_only = ON")
            return
        if durable != self._durable:
            self._conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            self._durable = durable
        yield from self._immediate(patient=patient)

    def _immediate(self, *, patient: bool) -> Iterator[None]:
        """BEGIN IMMEDIATE, the caller's block, then COMMIT (or ROLLBACK on an exception)."""
        if not patient:
            self._conn.execute(f"PRAGMA busy_timeout = {int(IMPATIENT_TIMEOUT_S * 1000)}")
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise (_busy_error() if _is_busy(exc) else _write_error()) from None
        finally:
            if not patient:
                self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise (_busy_error() if _is_busy(exc) else _write_error()) from None

    def total_changes(self) -> int:
        return int(self._conn.total_changes)

    def data_version(self) -> int:
        """PRAGMA data_version: changes whenever another connection commits to the file."""
        return int(self._conn.execute("PRAGMA data_version").fetchall()[0][0])

    def integrity_check(self) -> str:
        """SQLite's own PRAGMA integrity_check verdict ("ok" when sound)."""
        row = self._conn.execute("PRAGMA integrity_check").fetchone()
        return str(row[0]) if row else "no answer"


def open_store(path: Path, kind: type[S], *, reader: bool = False) -> S:
    """Open vault.db at path as a store of that kind (creating it, and migrating the kind's domains, if needed)."""
    return kind(SqliteConnection(path, kind.MIGRATIONS, reader=reader))


class SqliteDatabase(Database[S]):
    """vault.db behind one worker thread, plus a read-only connection for the event loop.

    `await db.run(fn, ...)` calls fn(store, ...) on the worker thread: every write, and any
    unit that may wait on another process's lock. `await db.read(fn, ...)` calls
    fn(reader, ...) on the loop thread itself: a WAL read takes microseconds and waits on
    no writer; in the rare case SQLite reports it busy, it is retried on the worker thread.
    """

    def __init__(self, store: S, reader: S, executor: ThreadPoolExecutor) -> None:
        self.store = store
        self._reader = reader
        self._executor = executor

    @classmethod
    async def open(cls, path: Path, kind: type[S]) -> SqliteDatabase[S]:
        """Open vault.db at path as a store of that kind (creating it, and migrating the kind's domains, if needed)."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mailgent-db")
        loop = asyncio.get_running_loop()
        try:
            store = await loop.run_in_executor(executor, open_store, path, kind)
            reader = await loop.run_in_executor(executor, functools.partial(open_store, path, kind, reader=True))
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(store, reader, executor)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(store, *args) on the database thread and return its result."""
        call = functools.partial(fn, self.store, *args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run the read-only fn(reader, *args) here, or on the database thread if SQLite is busy."""
        try:
            return fn(self._reader, *args)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
        return await self.run(fn, *args)

    async def short_write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(store, *args), a write of a row or two, here when vault.db's write lock is free, else on
        the database thread (which waits for it).

        Here, on the loop thread's connection, costs no thread hand-off, and the connection's
        own commits leave its data_version (and the reads cached by it) as they were.
        """
        try:
            return fn(self._reader, *args)
        except StoreBusy:
            return await self.run(fn, *args)

    async def close(self) -> None:
        try:
            self._reader.close()
            await asyncio.get_running_loop().run_in_executor(self._executor, self.store.close)
        finally:
            self._executor.shutdown(wait=True)


def _create_database(path: Path, sets: Sequence[MigrationSet]) -> None:
    """Create vault.db, with the schema of sets, with mode 0600, unless it exists; refuse an existing empty one.

    A new database is built in a temporary file and linked into place only once complete, so
    vault.db is never seen empty: an empty one was truncated, and taking it for a new vault
    would hide that its entries are gone. An existing file is not opened here at all: closing
    any descriptor of a file drops every POSIX lock this process holds on it, including those
    of its open SQLite connections (the SQLite docs' "broken POSIX advisory locking"). Another
    process could then take the database for unused and delete the WAL under this one's feet.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = -1
    except OSError as exc:
        raise ConfigError(f"Cannot read {str(path)!r} ({exc.strerror}); check the data folder.") from None
    if size > 0:
        return
    if size == 0:
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            return  # SQLite recovers the content from its write-ahead log
        raise ConfigError(
            f"{str(path)!r} is empty (0 bytes): it was truncated or replaced, and its entries are not in it. "
            "Nothing was changed. Restore vault.db from a backup; to start a new, empty vault instead, move the "
            "empty file aside."
        )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.new")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = DELETE")  # everything in the one file that is linked below
            conn.execute("BEGIN")
            _apply_migrations(conn, sets)
            conn.execute("COMMIT")
        finally:
            conn.close()
        _fsync_file(tmp)
        with contextlib.suppress(FileExistsError):  # create-only: a racing process's database wins
            os.link(tmp, path)
    except OSError as exc:
        raise ConfigError(f"Cannot create {str(path)!r} ({exc.strerror}); check the data folder.") from None
    except sqlite3.Error:
        raise ConfigError(f"Cannot create {str(path)!r}; check the data folder and free disk space.") from None
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def statements(script: str) -> list[str]:
    """Split a migration step into statements; a trigger's body holds ';' inside BEGIN ... END.

    (executescript would run them all, but it commits the open transaction first.)
    """
    out, buffer = [], ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n;"):
                out.append(buffer.strip())
            buffer = ""
    return out


def _user_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0]) if row else 0


def _record(conn: sqlite3.Connection) -> migrations.Record:
    """The steps the file has applied: its record, or those its older schema version stands for."""
    version = _user_version(conn)
    if version == migrations.RECORDED:
        return migrations.record_of(conn.execute(migrations.READ_RECORD).fetchall())
    return migrations.legacy_record(version)


def _apply_migrations(conn: sqlite3.Connection, sets: Sequence[MigrationSet]) -> list[str]:
    """Apply the pending steps of sets, recording each; inside the caller's write transaction.

    Returns the "domain/name" of each step applied. A file of an older schema version first
    gets its record, for every domain it has steps of (each domain then finds its own), and
    user_version RECORDED.
    """
    at = time.time()
    recorded = _record(conn)
    if _user_version(conn) != migrations.RECORDED:
        conn.execute(migrations.RECORD_TABLE)
        conn.execute("DELETE FROM schema_migrations")  # the schema version decides; a stray record does not
        conn.executemany(migrations.RECORD_STEP, [(domain, step, name, at) for domain, steps in recorded.items()
                                                  for step, name in steps.items()])
        conn.execute(f"PRAGMA user_version = {migrations.RECORDED}")
    done = []
    for migration_set, step in migrations.pending(recorded, sets):
        name = migration_set.steps[step - 1].name
        for statement in statements(migration_set.steps[step - 1].sql):
            conn.execute(statement)
        conn.execute(migrations.RECORD_STEP, (migration_set.domain, step, name, at))
        done.append(f"{migration_set.domain}/{name}")
    return done


def _write_error() -> MailgentError:
    return MailgentError("vault.db could not complete the write; check free disk space and try again.")
