"""The SQLite file: schema, migrations and every SQL statement of the package.

One `vault.db` per data folder, in WAL mode with a busy timeout, so several server
processes (Claude Desktop, Cursor and Claude Code each start one) share it safely.
Every write runs in `BEGIN IMMEDIATE`: the write lock is taken up front, so a
transaction never has to upgrade a read lock and fail with SQLITE_BUSY half-way.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from mailgent_mcp.errors import ConfigError, MailgentError

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 15_000

# Each migration takes the schema from version i to i+1 (PRAGMA user_version).
MIGRATIONS: Sequence[str] = (
    # v1: keyring, entries, sealed fields, audit chain.
    """
    CREATE TABLE keyring (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        kek_kind    TEXT NOT NULL,
        kdf         TEXT,
        wrapped_dek BLOB NOT NULL,
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    );
    CREATE TABLE entries (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        type       TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE entry_fields (
        entry_id INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
        field    TEXT NOT NULL,
        sealed   BLOB NOT NULL,
        PRIMARY KEY (entry_id, field)
    ) WITHOUT ROWID;
    CREATE TABLE audit (
        seq     INTEGER PRIMARY KEY,
        at      REAL NOT NULL,
        op      TEXT NOT NULL,
        entry   TEXT,
        actor   TEXT NOT NULL,
        outcome TEXT NOT NULL,
        mac     BLOB NOT NULL
    );
    CREATE TABLE audit_head (
        id   INTEGER PRIMARY KEY CHECK (id = 1),
        seq  INTEGER NOT NULL,
        mac  BLOB NOT NULL
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class KeyringRow:
    """The single row that holds the wrapped data key."""

    kek_kind: str
    kdf: str | None
    wrapped_dek: bytes


@dataclass(frozen=True)
class EntryRow:
    """An entry's plain columns."""

    id: int
    name: str
    type: str
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class AuditRow:
    """One audit record; `mac` chains it to the row before."""

    seq: int
    at: float
    op: str
    entry: str | None
    actor: str
    outcome: str
    mac: bytes


def _create_private_file(path: Path) -> None:
    """Create the database file with mode 0600 before SQLite does (WAL and SHM inherit it)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
    except OSError as exc:
        raise ConfigError(f"Cannot create {str(path)!r} ({exc.strerror}); check the data folder.") from None


class Store:
    """An open vault.db. Use `await Store.open(path)` and `await store.close()`."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    async def open(cls, path: Path) -> Store:
        """Open (creating if needed) and migrate the database at path."""
        _create_private_file(path)
        try:
            conn = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error:
            raise ConfigError(f"Cannot open {str(path)!r} as a SQLite database.") from None
        store = cls(conn, path)
        try:
            await store._configure()
            await store._migrate()
        except BaseException:
            await conn.close()
            raise
        return store

    async def close(self) -> None:
        """Close the connection."""
        await self._conn.close()

    async def _configure(self) -> None:
        await self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        try:
            row = await (await self._conn.execute("PRAGMA journal_mode = WAL")).fetchone()
        except sqlite3.DatabaseError:
            raise ConfigError(
                f"{str(self.path)!r} is not a mailgent-mcp database (or it is damaged); "
                "move it aside and let a new one be created, or set MAILGENT_HOME to another folder."
            ) from None
        if row is None or str(row[0]).lower() != "wal":
            log.warning("could not switch %s to WAL mode", self.path)
        # FULL: a stored seed survives power loss, not only a crashed process.
        await self._conn.execute("PRAGMA synchronous = FULL")
        await self._conn.execute("PRAGMA foreign_keys = ON")

    async def _migrate(self) -> None:
        version = await self._user_version()
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"vault.db has schema version {version}, newer than this mailgent-mcp knows "
                f"({SCHEMA_VERSION}); upgrade mailgent-mcp."
            )
        async with self.transaction():
            # Re-read under the write lock: another process may have migrated meanwhile.
            version = await self._user_version()
            for index in range(version, SCHEMA_VERSION):
                for statement in _statements(MIGRATIONS[index]):
                    await self._conn.execute(statement)
                await self._conn.execute(f"PRAGMA user_version = {index + 1}")
                log.info("migrated %s to schema version %d", self.path, index + 1)

    async def _user_version(self) -> int:
        row = await (await self._conn.execute("PRAGMA user_version")).fetchone()
        return int(row[0]) if row else 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Store]:
        """A write transaction (BEGIN IMMEDIATE): all of it commits, or none of it."""
        try:
            await self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _busy_error(exc) from None
        try:
            yield self
        except BaseException:
            await self._conn.execute("ROLLBACK")
            raise
        else:
            try:
                await self._conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                await self._conn.execute("ROLLBACK")
                raise _busy_error(exc) from None

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return await (await self._conn.execute(sql, params)).fetchone()

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await (await self._conn.execute(sql, params)).fetchall())

    # -- keyring ----------------------------------------------------------------------

    async def get_keyring(self) -> KeyringRow | None:
        """The keyring row, or None for a new vault."""
        row = await self._one("SELECT kek_kind, kdf, wrapped_dek FROM keyring WHERE id = 1")
        return KeyringRow(row[0], row[1], bytes(row[2])) if row else None

    async def insert_keyring(self, row: KeyringRow, now: float) -> None:
        """Create the keyring row (inside a transaction that saw none)."""
        await self._conn.execute(
            "INSERT INTO keyring (id, kek_kind, kdf, wrapped_dek, created_at, updated_at) VALUES (1, ?, ?, ?, ?, ?)",
            (row.kek_kind, row.kdf, row.wrapped_dek, now, now),
        )

    async def replace_keyring(self, old: KeyringRow, new: KeyringRow, now: float) -> bool:
        """Swap the keyring row if it still equals old (compare-and-swap); True on success."""
        cur = await self._conn.execute(
            "UPDATE keyring SET kek_kind = ?, kdf = ?, wrapped_dek = ?, updated_at = ? "
            "WHERE id = 1 AND wrapped_dek = ?",
            (new.kek_kind, new.kdf, new.wrapped_dek, now, old.wrapped_dek),
        )
        return cur.rowcount == 1

    # -- entries ------------------------------------------------------------------------

    async def get_entry(self, name: str) -> EntryRow | None:
        """The entry's plain columns, or None."""
        row = await self._one("SELECT id, name, type, created_at, updated_at FROM entries WHERE name = ?", (name,))
        return EntryRow(*row) if row else None

    async def get_fields(self, entry_id: int, only: str | None = None) -> dict[str, bytes]:
        """Sealed field blobs of an entry (all, or the one named `only`)."""
        if only is None:
            rows = await self._all("SELECT field, sealed FROM entry_fields WHERE entry_id = ?", (entry_id,))
        else:
            rows = await self._all(
                "SELECT field, sealed FROM entry_fields WHERE entry_id = ? AND field = ?", (entry_id, only)
            )
        return {field: bytes(sealed) for field, sealed in rows}

    async def insert_entry(self, name: str, type_: str, now: float) -> int:
        """Create an entry row and return its id."""
        cur = await self._conn.execute(
            "INSERT INTO entries (name, type, created_at, updated_at) VALUES (?, ?, ?, ?)", (name, type_, now, now)
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    async def update_entry(self, entry_id: int, type_: str, now: float) -> None:
        """Set an entry's type and updated time."""
        await self._conn.execute("UPDATE entries SET type = ?, updated_at = ? WHERE id = ?", (type_, now, entry_id))

    async def set_field(self, entry_id: int, field: str, sealed: bytes) -> None:
        """Insert or replace one sealed field."""
        await self._conn.execute(
            "INSERT INTO entry_fields (entry_id, field, sealed) VALUES (?, ?, ?) "
            "ON CONFLICT (entry_id, field) DO UPDATE SET sealed = excluded.sealed",
            (entry_id, field, sealed),
        )

    async def delete_field(self, entry_id: int, field: str) -> None:
        """Remove one field of an entry."""
        await self._conn.execute("DELETE FROM entry_fields WHERE entry_id = ? AND field = ?", (entry_id, field))

    async def delete_entry(self, entry_id: int) -> None:
        """Remove an entry and (by cascade) its fields."""
        await self._conn.execute("DELETE FROM entries WHERE id = ?", (entry_id,))

    async def list_entries(self, prefix: str, totp_field: str) -> list[tuple[str, str, bool, float]]:
        """(name, type, has_totp, updated_at) for entries whose name starts with prefix, by name."""
        return [
            (name, type_, bool(has_totp), updated_at)
            for name, type_, has_totp, updated_at in await self._all(
                "SELECT e.name, e.type, "
                "EXISTS (SELECT 1 FROM entry_fields f WHERE f.entry_id = e.id AND f.field = ?), e.updated_at "
                "FROM entries e WHERE substr(e.name, 1, ?) = ? ORDER BY e.name",
                (totp_field, len(prefix), prefix),
            )
        ]

    # -- audit --------------------------------------------------------------------------

    async def audit_head(self) -> tuple[int, bytes] | None:
        """(seq, mac) of the newest audit row as recorded in the head row."""
        row = await self._one("SELECT seq, mac FROM audit_head WHERE id = 1")
        return (int(row[0]), bytes(row[1])) if row else None

    async def audit_append(self, row: AuditRow, head_mac: bytes) -> None:
        """Insert an audit row and move the head to it."""
        await self._conn.execute(
            "INSERT INTO audit (seq, at, op, entry, actor, outcome, mac) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (row.seq, row.at, row.op, row.entry, row.actor, row.outcome, row.mac),
        )
        await self._conn.execute(
            "INSERT INTO audit_head (id, seq, mac) VALUES (1, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, mac = excluded.mac",
            (row.seq, head_mac),
        )

    async def audit_rows(self, *, after: int = 0, limit: int | None = None, newest: bool = False) -> list[AuditRow]:
        """Audit rows by seq (oldest first, or the newest `limit` when newest=True)."""
        sql = "SELECT seq, at, op, entry, actor, outcome, mac FROM audit WHERE seq > ? ORDER BY seq"
        params: list[Any] = [after]
        if newest:
            sql += " DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = [AuditRow(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6])) for r in await self._all(sql, params)]
        return rows[::-1] if newest else rows

    async def integrity_check(self) -> str:
        """SQLite's own PRAGMA integrity_check verdict ("ok" when sound)."""
        row = await self._one("PRAGMA integrity_check")
        return str(row[0]) if row else "no answer"


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _busy_error(exc: sqlite3.OperationalError) -> MailgentError:
    if "locked" in str(exc) or "busy" in str(exc):
        return MailgentError(
            f"vault.db stayed locked by another process for {BUSY_TIMEOUT_MS // 1000} s; try again."
        )
    return MailgentError("vault.db could not complete the write; check free disk space and try again.")
