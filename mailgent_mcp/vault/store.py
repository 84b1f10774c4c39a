"""The vault's tables and every SQL statement on them: keyring, entries and sealed fields, the TOTP
ledger, and the audit chain; with the vault's migration set.

`VaultStore` is a store (db/backend.py): the vault's statements on one database connection.
The Vault (entries.py) runs its units of work on one through a `Database`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mailgent_mcp.db.backend import Store
from mailgent_mcp.db.migrations import MigrationSet, Step

VAULT_MIGRATIONS = MigrationSet("vault", (
    # Keyring, entries, sealed fields, audit chain.
    Step("keyring-entries-audit", """
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
    """),
    # The vault's state in the audit chain. A change's row carries the state digest of its entry
    # afterwards (state), so reads and `audit verify` find entries edited, rolled back or deleted
    # outside the vault; each sealed field records the version it was sealed for (its additional
    # data binds it), 0 for values sealed before versions. Rows by entry and by time are indexed for
    # those look-ups and for merging a journal of read rows without duplicates.
    Step("audit-states-field-versions", """
    ALTER TABLE audit ADD COLUMN state BLOB;
    CREATE INDEX audit_by_entry ON audit (entry, seq) WHERE state IS NOT NULL;
    CREATE INDEX audit_by_time ON audit (at);
    ALTER TABLE entry_fields ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    """),
    # The TOTP time steps whose codes were handed out, per entry and seed (the seed field's
    # version), so that no code is handed out twice, across processes on the data folder.
    Step("totp-steps", """
    CREATE TABLE totp_steps (
        entry_id INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
        seed     INTEGER NOT NULL,
        step     INTEGER NOT NULL,
        at       REAL NOT NULL,
        PRIMARY KEY (entry_id, seed, step)
    ) WITHOUT ROWID;
    """),
))


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


class VaultStore(Store):
    """vault.db as the vault sees it."""

    MIGRATIONS: ClassVar[Sequence[MigrationSet]] = (VAULT_MIGRATIONS,)

    # -- keyring ----------------------------------------------------------------------

    def get_keyring(self) -> KeyringRow | None:
        """The keyring row, or None for a new vault."""
        row = self.conn.execute("SELECT kek_kind, kdf, wrapped_dek FROM keyring WHERE id = 1").fetchone()
        return KeyringRow(row[0], row[1], bytes(row[2])) if row else None

    def insert_keyring(self, row: KeyringRow, now: float) -> None:
        """Create the keyring row (inside a transaction that saw none)."""
        self.conn.execute(
            "INSERT INTO keyring (id, kek_kind, kdf, wrapped_dek, created_at, updated_at) VALUES (1, ?, ?, ?, ?, ?)",
            (row.kek_kind, row.kdf, row.wrapped_dek, now, now),
        )

    def replace_keyring(self, old: KeyringRow, new: KeyringRow, now: float) -> bool:
        """Swap the keyring row if it still equals old (compare-and-swap); True on success."""
        cur = self.conn.execute(
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
        rows = self.conn.execute(
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
        rows = self.conn.execute(
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

    def has_states(self) -> bool:
        """Whether any audit row records an entry's state (a vault made or upgraded by this version)."""
        return bool(self.conn.execute("SELECT 1 FROM audit WHERE state IS NOT NULL LIMIT 1").fetchall())

    def has_vault_data(self) -> bool:
        """Whether vault.db holds entries or audit rows (a vault's, even when its keyring row is gone)."""
        return bool(self.conn.execute(
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM entries) OR EXISTS (SELECT 1 FROM audit)").fetchall())

    def insert_entry(self, name: str, type_: str, now: float) -> int:
        """Create an entry row and return its id."""
        cur = self.conn.execute(
            "INSERT INTO entries (name, type, created_at, updated_at) VALUES (?, ?, ?, ?)", (name, type_, now, now)
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def update_entry(self, entry_id: int, type_: str, now: float) -> None:
        """Set an entry's type and updated time."""
        self.conn.execute("UPDATE entries SET type = ?, updated_at = ? WHERE id = ?", (type_, now, entry_id))

    def set_field(self, entry_id: int, field: str, sealed: bytes, version: int) -> None:
        """Insert or replace one sealed field, sealed for `version`."""
        self.conn.execute(
            "INSERT INTO entry_fields (entry_id, field, sealed, version) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (entry_id, field) DO UPDATE SET sealed = excluded.sealed, version = excluded.version",
            (entry_id, field, sealed, version),
        )

    def delete_field(self, entry_id: int, field: str) -> None:
        """Remove one field of an entry."""
        self.conn.execute("DELETE FROM entry_fields WHERE entry_id = ? AND field = ?", (entry_id, field))

    def claim_step(self, entry_id: int, seed: int, step: int, now: float, *, keep: int) -> bool:
        """Record a TOTP time step of a seed as handed out; False when it already was.

        Steps more than `keep` before this one are forgotten: their codes are long expired.
        """
        claimed = self.conn.execute(
            "INSERT OR IGNORE INTO totp_steps (entry_id, seed, step, at) VALUES (?, ?, ?, ?)",
            (entry_id, seed, step, now)).rowcount == 1
        if claimed:
            self.conn.execute("DELETE FROM totp_steps WHERE entry_id = ? AND step < ?", (entry_id, step - keep))
        return claimed

    def delete_entry(self, entry_id: int) -> None:
        """Remove an entry and (by cascade) its fields."""
        self.conn.execute("DELETE FROM entries WHERE id = ?", (entry_id,))

    def list_entries(self, prefix: str, totp_field: str) -> list[tuple[str, str, bool, float]]:
        """(name, type, has_totp, updated_at) for entries whose name starts with prefix, by name."""
        rows = self.conn.execute(
            "SELECT e.name, e.type, "
            "EXISTS (SELECT 1 FROM entry_fields f WHERE f.entry_id = e.id AND f.field = ?), e.updated_at "
            "FROM entries e WHERE substr(e.name, 1, ?) = ? ORDER BY e.name",
            (totp_field, len(prefix), prefix),
        ).fetchall()
        return [(name, type_, bool(has_totp), updated_at) for name, type_, has_totp, updated_at in rows]

    # -- audit --------------------------------------------------------------------------

    def audit_head(self) -> tuple[int, bytes] | None:
        """(seq, head mac) as recorded in the head row."""
        row = self.conn.execute("SELECT seq, mac FROM audit_head WHERE id = 1").fetchone()
        return (int(row[0]), bytes(row[1])) if row else None

    def audit_tip(self) -> AuditTip:
        """The head row, the newest audit row and the mac of the row before it, in one snapshot."""
        row = self.conn.execute(
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
        self.conn.executemany(
            "INSERT INTO audit (seq, at, op, entry, actor, outcome, mac, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(r.seq, r.at, r.op, r.entry, r.actor, r.outcome, r.mac, r.state) for r in rows],
        )
        self.conn.execute(
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
                for r in self.conn.execute(sql, params).fetchall()]
        return rows[::-1] if newest else rows

    def audit_has_row(self, at: float, op: str, entry: str | None, actor: str, outcome: str) -> bool:
        """Whether the chain already holds a row of these values (a journal row written before its process ended)."""
        return bool(self.conn.execute(
            "SELECT 1 FROM audit WHERE at = ? AND op = ? AND entry IS ? AND actor = ? AND outcome = ? LIMIT 1",
            (at, op, entry, actor, outcome)).fetchall())

