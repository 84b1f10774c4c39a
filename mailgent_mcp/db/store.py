"""The SQLite file: schema, migrations and every SQL statement of the package.

One `vault.db` per data folder, in WAL mode with a busy timeout, so several server
processes (Claude Desktop, Cursor and Claude Code each start one) share it safely.
Every write runs in `BEGIN IMMEDIATE`: the write lock is taken up front, so a
transaction never has to upgrade a read lock and fail with SQLITE_BUSY half-way.

`Store` is synchronous. `Database` runs whole units of work (a function taking the
Store, usually one transaction) on one dedicated thread, so the event loop never
waits on the disk or on another process's lock, and an operation costs one thread
hand-off instead of one per statement (about 0.2 ms each here, which is what a
statement-level bridge such as aiosqlite pays).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mailgent_mcp.errors import ConfigError, MailgentError

log = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_TIMEOUT_S = 15.0
IMPATIENT_TIMEOUT_S = 0.5

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
    # v2: the message cache, its full-text index, per-mailbox sync state.
    """
    CREATE TABLE messages (
        id           INTEGER PRIMARY KEY,
        account      TEXT NOT NULL,
        mailbox      TEXT NOT NULL,
        uidvalidity  INTEGER NOT NULL,
        uid          INTEGER NOT NULL,
        message_id   TEXT,
        from_addr    TEXT,
        from_name    TEXT,
        to_addrs     TEXT NOT NULL,
        cc_addrs     TEXT NOT NULL,
        subject      TEXT NOT NULL,
        sent_at      REAL,
        received_at  REAL NOT NULL,
        text_body    TEXT NOT NULL,
        html_body    TEXT NOT NULL,
        attachments  TEXT NOT NULL,
        auth_results TEXT NOT NULL,
        raw_size     INTEGER NOT NULL,
        problem      TEXT,
        seen         INTEGER NOT NULL DEFAULT 0,
        UNIQUE (account, mailbox, uidvalidity, uid)
    );
    CREATE INDEX messages_by_time ON messages (received_at DESC);
    CREATE INDEX messages_by_account ON messages (account, received_at DESC);
    CREATE INDEX messages_by_sender ON messages (from_addr, received_at DESC);
    CREATE TABLE message_recipients (
        message INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        addr    TEXT NOT NULL,
        PRIMARY KEY (addr, message)
    ) WITHOUT ROWID;
    CREATE INDEX message_recipients_by_message ON message_recipients (message);
    CREATE TABLE message_labels (
        message INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        label   TEXT NOT NULL,
        PRIMARY KEY (label, message)
    ) WITHOUT ROWID;
    CREATE INDEX message_labels_by_message ON message_labels (message);
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        subject, from_addr, text_body, content='messages', content_rowid='id'
    );
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, subject, from_addr, text_body)
        VALUES (new.id, new.subject, coalesce(new.from_addr, ''), new.text_body);
    END;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, subject, from_addr, text_body)
        VALUES ('delete', old.id, old.subject, coalesce(old.from_addr, ''), old.text_body);
    END;
    CREATE TABLE mailbox_state (
        account     TEXT NOT NULL,
        mailbox     TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        last_uid    INTEGER NOT NULL,
        synced_at   REAL,
        PRIMARY KEY (account, mailbox)
    );
    """,
    # v3: one poller per account across processes (a lease with heartbeat) and its status.
    """
    CREATE TABLE pollers (
        account    TEXT PRIMARY KEY,
        holder     TEXT NOT NULL,
        expires_at REAL NOT NULL,
        heartbeat  REAL NOT NULL,
        connected  INTEGER NOT NULL DEFAULT 0,
        idling     INTEGER NOT NULL DEFAULT 0,
        last_sync  REAL,
        last_error TEXT,
        errors     INTEGER NOT NULL DEFAULT 0
    );
    """,
    # v4: read state written back to IMAP. seen_pending holds a read/unread change made in
    # the cache until the poller has stored it on the server (NULL: in step with the server).
    """
    ALTER TABLE messages ADD COLUMN seen_pending INTEGER;
    CREATE INDEX messages_seen_pending ON messages (account, mailbox) WHERE seen_pending IS NOT NULL;
    """,
    # v5: codes and links inbox_wait has handed out, so a retry with unused_only gets fresh mail.
    """
    CREATE TABLE handed_out (
        message INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        item    TEXT NOT NULL,
        at      REAL NOT NULL,
        PRIMARY KEY (message, item)
    ) WITHOUT ROWID;
    """,
    # v6: what extract.py found in each message (JSON: extractedText, codes, links, auth) and the
    # extractor version that found it (0: never extracted), so `inbox reindex` knows what is stale.
    """
    ALTER TABLE messages ADD COLUMN extraction TEXT;
    ALTER TABLE messages ADD COLUMN extractor INTEGER NOT NULL DEFAULT 0;
    """,
    # v7: newest first is id order (the order of caching, as received_at is), so the
    # per-account and per-sender indexes end in the id alone; a resync finds a Message-ID
    # by index; the messages still to extract (a first sync's bulk) are found by index.
    """
    DROP INDEX messages_by_account;
    CREATE INDEX messages_by_account ON messages (account);
    DROP INDEX messages_by_sender;
    CREATE INDEX messages_by_sender ON messages (from_addr);
    CREATE INDEX messages_by_message_id ON messages (account, mailbox, message_id);
    CREATE INDEX messages_by_extractor ON messages (extractor, id);
    """,
    # v8: the vault's state in the audit chain. A change's row carries the state digest of its
    # entry afterwards (state), so reads and `audit verify` find entries edited, rolled back or
    # deleted outside the vault; each sealed field records the version it was sealed for (its
    # additional data binds it), 0 for values sealed before versions. Rows by entry and by time
    # are indexed for those look-ups and for merging a journal of read rows without duplicates.
    """
    ALTER TABLE audit ADD COLUMN state BLOB;
    CREATE INDEX audit_by_entry ON audit (entry, seq) WHERE state IS NOT NULL;
    CREATE INDEX audit_by_time ON audit (at);
    ALTER TABLE entry_fields ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    """,
    # v9: DKIM as verified when the message was cached (JSON [[domain, result], ...]; NULL: not
    # checked), for later extractions: the raw message is not kept.
    """
    ALTER TABLE messages ADD COLUMN dkim_local TEXT;
    """,
    # v10: the TOTP time steps whose codes were handed out, per entry and seed (the seed field's
    # version), so that no code is handed out twice, across processes on the data folder.
    """
    CREATE TABLE totp_steps (
        entry_id INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
        seed     INTEGER NOT NULL,
        step     INTEGER NOT NULL,
        at       REAL NOT NULL,
        PRIMARY KEY (entry_id, seed, step)
    ) WITHOUT ROWID;
    """,
    # v11: addresses inbox_address issued (lower case) and when, so that inbox_wait(to=...) counts
    # the mail sent to one from that moment on, whenever it is called.
    """
    CREATE TABLE IF NOT EXISTS issued_addresses (
        address   TEXT PRIMARY KEY,
        account   TEXT NOT NULL,
        issued_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS issued_addresses_by_time ON issued_addresses (issued_at);
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
    """An entry's plain columns, its sealed fields and their versions, and its state as the audit chain last recorded it."""

    id: int
    name: str
    type: str
    created_at: float
    updated_at: float
    fields: dict[str, bytes]
    versions: dict[str, int] = field(default_factory=dict)
    recorded_state: bytes | None = None  # the state of the newest audit row of this entry that records one


MESSAGE_COLUMNS = (
    "account", "mailbox", "uidvalidity", "uid", "message_id", "from_addr", "from_name", "to_addrs", "cc_addrs",
    "subject", "sent_at", "received_at", "text_body", "html_body", "attachments", "auth_results", "raw_size",
    "problem", "seen", "extraction", "extractor", "dkim_local",
)
EXTRACT_INPUT_COLUMNS = ("id", "account", "subject", "from_addr", "text_body", "html_body", "auth_results",
                         "dkim_local")


@dataclass(frozen=True)
class MessageQuery:
    """Filters for cached messages; None means no filter on that field."""

    account: str | None = None
    sender: str | None = None  # an address, or a domain with or without a leading "@" (matching its subdomains too)
    to: str | None = None
    subject: str | None = None  # a substring, any case
    text: str | None = None  # full-text words (FTS5), all of them
    since: float | None = None  # received at or after
    seen: bool | None = None
    label: str | None = None
    after_id: int | None = None
    limit: int = 10


@dataclass(frozen=True)
class AuditRow:
    """One audit record; `mac` chains it to the row before; `state`: its entry's state after a change."""

    seq: int
    at: float
    op: str
    entry: str | None
    actor: str
    outcome: str
    mac: bytes
    state: bytes | None = None


@dataclass(frozen=True)
class AuditTip:
    """The head row and the newest audit row (with its predecessor's mac), read together."""

    head: tuple[int, bytes] | None
    last: AuditRow | None
    prev_mac: bytes | None  # the mac of the row before `last` (None when last is the first row)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or (
        "locked" in str(exc) or "busy" in str(exc)
    )


class StoreBusy(MailgentError):
    """Another process held vault.db's write lock for longer than this connection waits."""


def _busy_error() -> MailgentError:
    return StoreBusy(f"vault.db stayed locked by another process for {BUSY_TIMEOUT_S:.0f} s; try again.")


class Store:
    """A synchronous connection to vault.db; use it from one thread (Database's worker)."""

    def __init__(self, path: Path, *, reader: bool = False) -> None:
        self.path = path
        self.reader = reader
        _create_database(path)
        try:
            self._conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S,
                                         check_same_thread=False)
        except sqlite3.Error:
            raise ConfigError(f"Cannot open {str(path)!r} as a SQLite database.") from None
        self._durable = True
        try:
            self._configure()
            self._migrate()
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

    def close(self) -> None:
        """Close the connection."""
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

    def _migrate(self) -> None:
        version = self._user_version()
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"vault.db has schema version {version}, newer than this mailgent-mcp knows "
                f"({SCHEMA_VERSION}); upgrade mailgent-mcp."
            )
        with self.transaction():
            # Re-read under the write lock: another process may have migrated meanwhile.
            version = self._user_version()
            for index in range(version, SCHEMA_VERSION):
                for statement in _statements(MIGRATIONS[index]):
                    self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version = {index + 1}")
                log.info("migrated %s to schema version %d", self.path, index + 1)

    def _user_version(self) -> int:
        row = self._conn.execute("PRAGMA user_version").fetchone()
        return int(row[0]) if row else 0

    @contextmanager
    def transaction(self, *, durable: bool = True, patient: bool = True) -> Iterator[Store]:
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

    def _immediate(self, *, patient: bool) -> Iterator[Store]:
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
            yield self
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise (_busy_error() if _is_busy(exc) else _write_error()) from None

    # -- keyring ----------------------------------------------------------------------

    def get_keyring(self) -> KeyringRow | None:
        """The keyring row, or None for a new vault."""
        row = self._conn.execute("SELECT kek_kind, kdf, wrapped_dek FROM keyring WHERE id = 1").fetchone()
        return KeyringRow(row[0], row[1], bytes(row[2])) if row else None

    def insert_keyring(self, row: KeyringRow, now: float) -> None:
        """Create the keyring row (inside a transaction that saw none)."""
        self._conn.execute(
            "INSERT INTO keyring (id, kek_kind, kdf, wrapped_dek, created_at, updated_at) VALUES (1, ?, ?, ?, ?, ?)",
            (row.kek_kind, row.kdf, row.wrapped_dek, now, now),
        )

    def replace_keyring(self, old: KeyringRow, new: KeyringRow, now: float) -> bool:
        """Swap the keyring row if it still equals old (compare-and-swap); True on success."""
        cur = self._conn.execute(
            "UPDATE keyring SET kek_kind = ?, kdf = ?, wrapped_dek = ?, updated_at = ? "
            "WHERE id = 1 AND wrapped_dek = ?",
            (new.kek_kind, new.kdf, new.wrapped_dek, now, old.wrapped_dek),
        )
        return cur.rowcount == 1

    # -- entries ------------------------------------------------------------------------

    def get_entry(self, name: str, only: str | None = None) -> EntryRow | None:
        """An entry with its sealed fields (all, or just the one named `only`) and recorded state, or None.

        One statement, so the fields and the recorded state come from one snapshot even while
        other processes write.
        """
        rows = self._conn.execute(
            "SELECT e.id, e.name, e.type, e.created_at, e.updated_at, f.field, f.sealed, f.version, s.state "
            "FROM entries e LEFT JOIN entry_fields f ON f.entry_id = e.id AND (? IS NULL OR f.field = ?) "
            "LEFT JOIN (SELECT state FROM audit WHERE entry = ? AND state IS NOT NULL ORDER BY seq DESC LIMIT 1) s "
            "WHERE e.name = ?",
            (only, only, name, name),
        ).fetchall()
        if not rows:
            return None
        first = rows[0]
        fields = {r[5]: bytes(r[6]) for r in rows if r[5] is not None}
        versions = {r[5]: int(r[7]) for r in rows if r[5] is not None}
        state = bytes(first[8]) if first[8] is not None else None
        return EntryRow(first[0], first[1], first[2], first[3], first[4], fields, versions, state)

    def all_entries(self) -> list[EntryRow]:
        """Every entry with all its sealed fields, by name (for `audit verify`)."""
        rows = self._conn.execute(
            "SELECT e.id, e.name, e.type, e.created_at, e.updated_at, f.field, f.sealed, f.version "
            "FROM entries e LEFT JOIN entry_fields f ON f.entry_id = e.id ORDER BY e.name"
        ).fetchall()
        out: list[EntryRow] = []
        for r in rows:
            if not out or out[-1].id != r[0]:
                out.append(EntryRow(r[0], r[1], r[2], r[3], r[4], {}, {}))
            if r[5] is not None:
                out[-1].fields[r[5]] = bytes(r[6])
                out[-1].versions[r[5]] = int(r[7])
        return out

    def entries_without_state(self) -> list[str]:
        """Names of entries that no audit row records a state of."""
        rows = self._conn.execute(
            "SELECT e.name FROM entries e WHERE NOT EXISTS "
            "(SELECT 1 FROM audit a WHERE a.entry = e.name AND a.state IS NOT NULL) ORDER BY e.name").fetchall()
        return [str(r[0]) for r in rows]

    def has_states(self) -> bool:
        """Whether any audit row records an entry's state (a vault made or upgraded by this version)."""
        return bool(self._conn.execute("SELECT 1 FROM audit WHERE state IS NOT NULL LIMIT 1").fetchall())

    def has_vault_data(self) -> bool:
        """Whether vault.db holds entries or audit rows (a vault's, even when its keyring row is gone)."""
        return bool(self._conn.execute(
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM entries) OR EXISTS (SELECT 1 FROM audit)").fetchall())

    def field_names(self, entry_id: int) -> list[str]:
        """The names of an entry's fields, sorted."""
        rows = self._conn.execute(
            "SELECT field FROM entry_fields WHERE entry_id = ? ORDER BY field", (entry_id,)
        ).fetchall()
        return [r[0] for r in rows]

    def insert_entry(self, name: str, type_: str, now: float) -> int:
        """Create an entry row and return its id."""
        cur = self._conn.execute(
            "INSERT INTO entries (name, type, created_at, updated_at) VALUES (?, ?, ?, ?)", (name, type_, now, now)
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def update_entry(self, entry_id: int, type_: str, now: float) -> None:
        """Set an entry's type and updated time."""
        self._conn.execute("UPDATE entries SET type = ?, updated_at = ? WHERE id = ?", (type_, now, entry_id))

    def set_field(self, entry_id: int, field: str, sealed: bytes, version: int) -> None:
        """Insert or replace one sealed field, sealed for `version`."""
        self._conn.execute(
            "INSERT INTO entry_fields (entry_id, field, sealed, version) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (entry_id, field) DO UPDATE SET sealed = excluded.sealed, version = excluded.version",
            (entry_id, field, sealed, version),
        )

    def delete_field(self, entry_id: int, field: str) -> None:
        """Remove one field of an entry."""
        self._conn.execute("DELETE FROM entry_fields WHERE entry_id = ? AND field = ?", (entry_id, field))

    def claim_step(self, entry_id: int, seed: int, step: int, now: float, *, keep: int) -> bool:
        """Record a TOTP time step of a seed as handed out; False when it already was.

        Steps more than `keep` before this one are forgotten: their codes are long expired.
        """
        claimed = self._conn.execute(
            "INSERT OR IGNORE INTO totp_steps (entry_id, seed, step, at) VALUES (?, ?, ?, ?)",
            (entry_id, seed, step, now)).rowcount == 1
        if claimed:
            self._conn.execute("DELETE FROM totp_steps WHERE entry_id = ? AND step < ?", (entry_id, step - keep))
        return claimed

    def delete_entry(self, entry_id: int) -> None:
        """Remove an entry and (by cascade) its fields."""
        self._conn.execute("DELETE FROM entries WHERE id = ?", (entry_id,))

    def list_entries(self, prefix: str, totp_field: str) -> list[tuple[str, str, bool, float]]:
        """(name, type, has_totp, updated_at) for entries whose name starts with prefix, by name."""
        rows = self._conn.execute(
            "SELECT e.name, e.type, "
            "EXISTS (SELECT 1 FROM entry_fields f WHERE f.entry_id = e.id AND f.field = ?), e.updated_at "
            "FROM entries e WHERE substr(e.name, 1, ?) = ? ORDER BY e.name",
            (totp_field, len(prefix), prefix),
        ).fetchall()
        return [(name, type_, bool(has_totp), updated_at) for name, type_, has_totp, updated_at in rows]

    # -- audit --------------------------------------------------------------------------

    def audit_head(self) -> tuple[int, bytes] | None:
        """(seq, head mac) as recorded in the head row."""
        row = self._conn.execute("SELECT seq, mac FROM audit_head WHERE id = 1").fetchone()
        return (int(row[0]), bytes(row[1])) if row else None

    def audit_tip(self) -> AuditTip:
        """The head row, the newest audit row and the mac of the row before it, in one snapshot."""
        row = self._conn.execute(
            "SELECT h.seq, h.mac, l.seq, l.at, l.op, l.entry, l.actor, l.outcome, l.mac, l.state, "
            "(SELECT p.mac FROM audit p WHERE p.seq = l.seq - 1) "
            "FROM (SELECT 1) LEFT JOIN audit_head h ON h.id = 1 "
            "LEFT JOIN audit l ON l.seq = (SELECT max(seq) FROM audit)").fetchone()
        head = (int(row[0]), bytes(row[1])) if row[0] is not None else None
        last = (AuditRow(int(row[2]), float(row[3]), row[4], row[5], row[6], row[7], bytes(row[8]),
                         bytes(row[9]) if row[9] is not None else None) if row[2] is not None else None)
        return AuditTip(head, last, bytes(row[10]) if row[10] is not None else None)

    def audit_append_many(self, rows: Sequence[AuditRow], head_mac: bytes) -> None:
        """Insert audit rows (in seq order) and move the head to the last one."""
        self._conn.executemany(
            "INSERT INTO audit (seq, at, op, entry, actor, outcome, mac, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(r.seq, r.at, r.op, r.entry, r.actor, r.outcome, r.mac, r.state) for r in rows],
        )
        self._conn.execute(
            "INSERT INTO audit_head (id, seq, mac) VALUES (1, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, mac = excluded.mac",
            (rows[-1].seq, head_mac),
        )

    def audit_rows(self, *, after: int = 0, limit: int | None = None, newest: bool = False) -> list[AuditRow]:
        """Audit rows by seq (oldest first, or the newest `limit` when newest=True)."""
        sql = "SELECT seq, at, op, entry, actor, outcome, mac, state FROM audit WHERE seq > ? ORDER BY seq"
        params: list[Any] = [after]
        if newest:
            sql += " DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = [AuditRow(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6]), bytes(r[7]) if r[7] is not None else None)
                for r in self._conn.execute(sql, params).fetchall()]
        return rows[::-1] if newest else rows

    def audit_has_row(self, at: float, op: str, entry: str | None, actor: str, outcome: str) -> bool:
        """Whether the chain already holds a row of these values (a journal row written before its process ended)."""
        return bool(self._conn.execute(
            "SELECT 1 FROM audit WHERE at = ? AND op = ? AND entry IS ? AND actor = ? AND outcome = ? LIMIT 1",
            (at, op, entry, actor, outcome)).fetchall())

    # -- message cache ------------------------------------------------------------------

    def insert_message(self, row: dict[str, Any], recipients: Sequence[str]) -> int | None:
        """Cache one message; None when (account, mailbox, uidvalidity, uid) is already there."""
        cur = self._conn.execute(
            f"INSERT OR IGNORE INTO messages ({', '.join(MESSAGE_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in MESSAGE_COLUMNS)})",
            [row[c] for c in MESSAGE_COLUMNS],
        )
        if cur.rowcount != 1:
            return None
        message = cur.lastrowid
        assert message is not None
        self._conn.executemany(
            "INSERT OR IGNORE INTO message_recipients (message, addr) VALUES (?, ?)",
            [(message, addr) for addr in dict.fromkeys(recipients)],
        )
        return message

    def rebind_message(self, account: str, mailbox: str, message_id: str, uidvalidity: int, uid: int) -> bool:
        """Move a message cached under an older UIDVALIDITY to its new identity; True if one was."""
        cur = self._conn.execute(
            "UPDATE messages SET uidvalidity = ?, uid = ? WHERE id = (SELECT id FROM messages "
            "WHERE account = ? AND mailbox = ? AND message_id = ? AND uidvalidity != ? LIMIT 1)",
            (uidvalidity, uid, account, mailbox, message_id, uidvalidity),
        )
        return cur.rowcount == 1

    def delete_other_uidvalidities(self, account: str, mailbox: str, uidvalidity: int) -> int:
        """Delete a mailbox's messages cached under another UIDVALIDITY."""
        return self._conn.execute(
            "DELETE FROM messages WHERE account = ? AND mailbox = ? AND uidvalidity != ?",
            (account, mailbox, uidvalidity),
        ).rowcount

    def next_uid(self, account: str, mailbox: str, uidvalidity: int) -> int:
        """The next free uid in a local mailbox (inside the inserting transaction)."""
        row = self._conn.execute(
            "SELECT coalesce(max(uid), 0) + 1 FROM messages WHERE account = ? AND mailbox = ? AND uidvalidity = ?",
            (account, mailbox, uidvalidity),
        ).fetchall()
        return int(row[0][0])

    def query_messages(self, query: MessageQuery) -> list[dict[str, Any]]:
        """Cached messages matching query, newest first: by id, which rises in the order of caching.

        With full text, the FTS index drives the query: its matches come in rowid order, so
        the newest are found without reading every match.
        """
        where: list[str] = []
        params: list[Any] = []
        if query.text is not None:
            source, order = "messages_fts f JOIN messages m ON m.id = f.rowid", "f.rowid"
            where.append("messages_fts MATCH ?")
            params.append(_fts_phrase(query.text))
        else:
            source, order = "messages m", "m.id"
        if query.account is not None:
            where.append("m.account = ?")
            params.append(query.account)
        if query.sender is not None:
            if "@" in query.sender.lstrip("@"):
                where.append("m.from_addr = ?")
                params.append(query.sender.lower())
            else:  # a domain ("github.com", or "@github.com" as people write it): itself or any subdomain
                domain = query.sender.lower().lstrip("@")
                where.append("(m.from_addr LIKE ? ESCAPE '\\' OR m.from_addr LIKE ? ESCAPE '\\')")
                params += ["%@" + _like_escape(domain), "%." + _like_escape(domain)]
        if query.to is not None:
            where.append("EXISTS (SELECT 1 FROM message_recipients r WHERE r.message = m.id AND r.addr = ?)")
            params.append(query.to.lower())
        if query.subject is not None:
            where.append("instr(lower(m.subject), ?) > 0")
            params.append(query.subject.lower())
        if query.since is not None:
            # Every row received since then has an id at least the least of theirs, found on the
            # received_at index: the newest-first walk by id then starts there instead of scanning
            # the table for a `since` that few rows (or none, as inbox_wait asks) match.
            where.append("m.id >= (SELECT coalesce(min(id), 9223372036854775807) FROM messages "
                         "INDEXED BY messages_by_time WHERE received_at >= ?) AND m.received_at >= ?")
            params += [query.since, query.since]
        if query.seen is not None:
            where.append("m.seen = ?")
            params.append(1 if query.seen else 0)
        if query.label is not None:
            where.append("EXISTS (SELECT 1 FROM message_labels l WHERE l.message = m.id AND l.label = ?)")
            params.append(query.label)
        if query.after_id is not None:
            where.append(f"{order} > ?")
            params.append(query.after_id)
        sql = (f"SELECT {', '.join('m.' + c for c in ('id', *MESSAGE_COLUMNS))} FROM {source} "
               f"WHERE {' AND '.join(where) or '1 = 1'} ORDER BY {order} DESC LIMIT ?")
        params.append(query.limit)
        cur = self._conn.execute(sql, params)
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
        for row in rows:
            row["labels"] = [r[0] for r in self._conn.execute(
                "SELECT label FROM message_labels WHERE message = ? ORDER BY label", (row["id"],)).fetchall()]
        return rows

    def set_seen(self, ids: Sequence[int], seen: bool, local_account: str) -> int:
        """Mark messages read or unread; the number changed.

        A change to an IMAP message is also queued (seen_pending) for the poller to store on
        the server; messages of local_account (the SMTP inbox) have no server.
        """
        value = 1 if seen else 0
        cur = self._conn.executemany(
            "UPDATE messages SET seen = ?, seen_pending = CASE WHEN account = ? THEN NULL ELSE ? END "
            "WHERE id = ? AND (seen != ? OR seen_pending IS NOT NULL)",
            [(value, local_account, value, i, value) for i in ids])
        return cur.rowcount

    def pending_seen(self, account: str, mailbox: str | None = None) -> list[tuple[int, int, int, bool]]:
        """Read-state changes waiting to be stored on the server: (id, uidvalidity, uid, seen)."""
        sql = "SELECT id, uidvalidity, uid, seen_pending FROM messages WHERE account = ? AND seen_pending IS NOT NULL"
        params: list[Any] = [account]
        if mailbox is not None:
            sql += " AND mailbox = ?"
            params.append(mailbox)
        return [(int(r[0]), int(r[1]), int(r[2]), bool(r[3])) for r in self._conn.execute(sql, params).fetchall()]

    def has_pending_seen(self, account: str, mailboxes: Sequence[str]) -> bool:
        """Whether any of an account's mailboxes has a read-state change to store on the server."""
        marks = ", ".join("?" for _ in mailboxes)
        row = self._conn.execute(
            f"SELECT 1 FROM messages WHERE account = ? AND mailbox IN ({marks}) AND seen_pending IS NOT NULL LIMIT 1",
            [account, *mailboxes]).fetchall()
        return bool(row)

    def clear_pending_seen(self, done: Sequence[tuple[int, bool]]) -> None:
        """Forget queued changes the server now has; one changed again meanwhile stays queued."""
        self._conn.executemany("UPDATE messages SET seen_pending = NULL WHERE id = ? AND seen_pending = ?",
                               [(i, 1 if seen else 0) for i, seen in done])

    def apply_server_seen(self, account: str, mailbox: str, uidvalidity: int, flags: dict[int, bool]) -> int:
        """Take the server's read state for cached messages without a queued change; the number changed."""
        cur = self._conn.executemany(
            "UPDATE messages SET seen = ? WHERE account = ? AND mailbox = ? AND uidvalidity = ? AND uid = ? "
            "AND seen != ? AND seen_pending IS NULL",
            [(1 if seen else 0, account, mailbox, uidvalidity, uid, 1 if seen else 0) for uid, seen in flags.items()])
        return cur.rowcount

    def first_uid(self, account: str, mailbox: str, uidvalidity: int) -> int | None:
        """The lowest uid cached for a mailbox, or None when none is."""
        row = self._conn.execute(
            "SELECT min(uid) FROM messages WHERE account = ? AND mailbox = ? AND uidvalidity = ?",
            (account, mailbox, uidvalidity)).fetchall()
        return int(row[0][0]) if row and row[0][0] is not None else None

    def set_label(self, ids: Sequence[int], label: str, present: bool) -> None:
        """Add or remove a local label."""
        if present:
            self._conn.executemany("INSERT OR IGNORE INTO message_labels (message, label) VALUES (?, ?)",
                                   [(i, label) for i in ids])
        else:
            self._conn.executemany("DELETE FROM message_labels WHERE message = ? AND label = ?",
                                   [(i, label) for i in ids])

    def existing(self, ids: Sequence[int]) -> set[int]:
        """Which of these message ids are cached."""
        if not ids:
            return set()
        marks = ", ".join("?" for _ in ids)
        return {int(r[0]) for r in self._conn.execute(f"SELECT id FROM messages WHERE id IN ({marks})",
                                                       list(ids)).fetchall()}

    def handed_out(self, ids: Sequence[int]) -> set[tuple[int, str]]:
        """Which (message, item) pairs inbox_wait has handed out, among these messages."""
        if not ids:
            return set()
        marks = ", ".join("?" for _ in ids)
        rows = self._conn.execute(f"SELECT message, item FROM handed_out WHERE message IN ({marks})", list(ids))
        return {(int(r[0]), str(r[1])) for r in rows.fetchall()}

    def hand_out(self, message: int, items: Sequence[str], now: float) -> None:
        """Record codes or links as handed out."""
        self._conn.executemany("INSERT OR IGNORE INTO handed_out (message, item, at) VALUES (?, ?, ?)",
                               [(message, item, now) for item in items])

    def issue_address(self, address: str, account: str, now: float) -> float:
        """Record an address inbox_address issued (the first issue stands); its issue time."""
        self._conn.execute("INSERT OR IGNORE INTO issued_addresses (address, account, issued_at) VALUES (?, ?, ?)",
                           (address.lower(), account, now))
        return self.issued_at(address) or now

    def issued_at(self, address: str) -> float | None:
        """When inbox_address issued an address, or None when it did not."""
        rows = self._conn.execute("SELECT issued_at FROM issued_addresses WHERE address = ?",
                                  (address.lower(),)).fetchall()
        return float(rows[0][0]) if rows else None

    def purge_messages(self, before: float) -> int:
        """Delete messages received before a time, and the records of addresses issued before it; the messages deleted."""
        self._conn.execute("DELETE FROM issued_addresses WHERE issued_at < ?", (before,))
        return self._conn.execute("DELETE FROM messages WHERE received_at < ?", (before,)).rowcount

    def stale_extractions(self, version: int, after_id: int, limit: int) -> list[dict[str, Any]]:
        """The fields extraction needs, for messages not extracted by this version (or a newer one), by id."""
        cur = self._conn.execute(
            f"SELECT {', '.join(EXTRACT_INPUT_COLUMNS)} FROM messages WHERE extractor < ? AND id > ? "
            "ORDER BY id LIMIT ?", (version, after_id, limit))
        return [dict(zip(EXTRACT_INPUT_COLUMNS, row)) for row in cur.fetchall()]

    def count_stale_extractions(self, version: int) -> int:
        """How many cached messages are not extracted by this version (or a newer one)."""
        return int(self._conn.execute("SELECT count(*) FROM messages WHERE extractor < ?",
                                      (version,)).fetchall()[0][0])

    def set_extractions(self, results: Sequence[tuple[int, str | None, int]]) -> None:
        """Store (id, extraction JSON, extractor version) for each message."""
        self._conn.executemany("UPDATE messages SET extraction = ?, extractor = ? WHERE id = ?",
                               [(data, version, i) for i, data, version in results])

    def mark_extractions_stale(self, account: str | None = None) -> int:
        """Mark every message (of an account) for re-extraction (`inbox reindex --all`); the number marked."""
        if account is None:
            return self._conn.execute("UPDATE messages SET extractor = 0").rowcount
        return self._conn.execute("UPDATE messages SET extractor = 0 WHERE account = ?", (account,)).rowcount

    def auth_results_of(self, account: str, limit: int) -> list[str]:
        """The Authentication-Results (JSON lists) of an account's newest cached messages."""
        cur = self._conn.execute("SELECT auth_results FROM messages WHERE account = ? ORDER BY id DESC LIMIT ?",
                                 (account, limit))
        return [str(row[0]) for row in cur.fetchall()]

    def mailbox_state(self, account: str, mailbox: str) -> tuple[int, int] | None:
        """(uidvalidity, last uid) recorded for a mailbox."""
        rows = self._conn.execute("SELECT uidvalidity, last_uid FROM mailbox_state WHERE account = ? AND mailbox = ?",
                                  (account, mailbox)).fetchall()
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    def synced_at(self) -> dict[str, float]:
        """Per account, when its mailboxes were last synced (by a server's poller or `inbox sync`)."""
        rows = self._conn.execute(
            "SELECT account, max(synced_at) FROM mailbox_state WHERE synced_at IS NOT NULL GROUP BY account").fetchall()
        return {str(r[0]): float(r[1]) for r in rows}

    def set_mailbox_state(self, account: str, mailbox: str, uidvalidity: int, last_uid: int, now: float) -> None:
        """Record how far a mailbox is synced."""
        self._conn.execute(
            "INSERT INTO mailbox_state (account, mailbox, uidvalidity, last_uid, synced_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (account, mailbox) DO UPDATE SET uidvalidity = excluded.uidvalidity, "
            "last_uid = excluded.last_uid, synced_at = excluded.synced_at",
            (account, mailbox, uidvalidity, last_uid, now),
        )

    # -- pollers ------------------------------------------------------------------------

    def claim_poller(self, account: str, holder: str, now: float, ttl: float) -> bool:
        """Take (or keep) the poller lease of an account unless another live holder has it."""
        cur = self._conn.execute(
            "INSERT INTO pollers (account, holder, expires_at, heartbeat) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (account) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at, "
            "heartbeat = excluded.heartbeat, connected = 0, idling = 0 "
            "WHERE pollers.holder = excluded.holder OR pollers.expires_at < ?",
            (account, holder, now + ttl, now, now),
        )
        return cur.rowcount == 1

    def report_poller(self, account: str, holder: str, now: float, ttl: float, status: dict[str, Any]) -> bool:
        """Renew the lease and record the poller's status; False when the lease was lost."""
        cur = self._conn.execute(
            "UPDATE pollers SET expires_at = ?, heartbeat = ?, connected = ?, idling = ?, last_sync = ?, "
            "last_error = ?, errors = ? WHERE account = ? AND holder = ?",
            (now + ttl, now, int(bool(status.get("connected"))), int(bool(status.get("idling"))),
             status.get("last_sync"), status.get("last_error"), int(status.get("errors") or 0), account, holder),
        )
        return cur.rowcount == 1

    def release_poller(self, account: str, holder: str) -> None:
        """Give the lease up (another process may take it at once)."""
        self._conn.execute("UPDATE pollers SET expires_at = 0, connected = 0, idling = 0 "
                           "WHERE account = ? AND holder = ?", (account, holder))

    def poller_rows(self) -> list[dict[str, Any]]:
        """Every account's lease and status."""
        cur = self._conn.execute("SELECT * FROM pollers ORDER BY account")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def total_changes(self) -> int:
        """Rows this connection has changed since it opened: moves with each of its own writes."""
        return int(self._conn.total_changes)

    def data_version(self) -> int:
        """Changes whenever another connection commits to the file (PRAGMA data_version)."""
        return int(self._conn.execute("PRAGMA data_version").fetchall()[0][0])

    def integrity_check(self) -> str:
        """SQLite's own PRAGMA integrity_check verdict ("ok" when sound)."""
        row = self._conn.execute("PRAGMA integrity_check").fetchone()
        return str(row[0]) if row else "no answer"


class Database:
    """vault.db behind one worker thread, plus a read-only connection for the event loop.

    `await db.run(fn, ...)` calls fn(store, ...) on the worker thread: every write, and any
    unit that may wait on another process's lock. `await db.read(fn, ...)` calls
    fn(reader, ...) on the loop thread itself: a WAL read takes microseconds and waits on
    no writer; in the rare case SQLite reports it busy, it is retried on the worker thread.
    """

    def __init__(self, store: Store, reader: Store, executor: ThreadPoolExecutor) -> None:
        self.store = store
        self._reader = reader
        self._executor = executor

    @classmethod
    async def open(cls, path: Path) -> Database:
        """Open (creating and migrating if needed) vault.db at path."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mailgent-db")
        loop = asyncio.get_running_loop()
        try:
            store = await loop.run_in_executor(executor, Store, path)
            reader = await loop.run_in_executor(executor, functools.partial(Store, path, reader=True))
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
        """Close both connections and stop the thread."""
        try:
            self._reader.close()
            await asyncio.get_running_loop().run_in_executor(self._executor, self.store.close)
        finally:
            self._executor.shutdown(wait=True)


def _create_database(path: Path) -> None:
    """Create vault.db, schema and all, with mode 0600, unless it exists; refuse an existing empty one.

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
            for script in MIGRATIONS:
                for statement in _statements(script):
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        finally:
            conn.close()
        _fsync_file(tmp)
        try:
            os.link(tmp, path)  # create-only: a racing process's database wins
        except FileExistsError:
            pass
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


def _statements(script: str) -> list[str]:
    """Split a migration into statements; a trigger's body holds ';' inside BEGIN ... END."""
    statements, buffer = [], ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n;"):
                statements.append(buffer.strip())
            buffer = ""
    return statements


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _fts_phrase(text: str) -> str:
    """Free text as an FTS5 query of quoted terms (all must match): no query syntax gets through."""
    terms = [t.replace('"', '""') for t in text.split() if t.strip()]
    return " ".join(f'"{t}"' for t in terms) or '""'


def _write_error() -> MailgentError:
    return MailgentError("vault.db could not complete the write; check free disk space and try again.")
