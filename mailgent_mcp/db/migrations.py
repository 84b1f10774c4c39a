"""Named migration sets, one per domain, and the record of which steps a file has.

Each domain (the vault, the inbox) brings an ordered set of named steps and upgrades on its
own: the table `schema_migrations` records (domain, step, name) for each step applied, so a
step added to one domain never renumbers another's. A file made before this record (schema
versions 1 to 11 in PRAGMA user_version, one list for both domains) is converted in place:
LEGACY says which steps each of those versions had applied.

PRAGMA user_version is RECORDED (100) in a file that keeps the record. The releases before
it know versions up to 11 only and refuse a file of version 100 as made by a newer release,
instead of running on tables they do not know.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

from mailgent_mcp.errors import ConfigError


@dataclass(frozen=True)
class Step:
    """One migration step: its name (recorded, never changed once released) and its SQL."""

    name: str
    sql: str


@dataclass(frozen=True)
class MigrationSet:
    """A domain's steps in order; step numbers start at 1."""

    domain: str
    steps: tuple[Step, ...]


RECORDED = 100
LEGACY_MAX = 11
# The steps each schema version of the single list applied: version -> (domain, step, name).
LEGACY: dict[int, tuple[str, int, str]] = {
    1: ("vault", 1, "keyring-entries-audit"),
    2: ("inbox", 1, "messages"),
    3: ("inbox", 2, "pollers"),
    4: ("inbox", 3, "seen-pending"),
    5: ("inbox", 4, "handed-out"),
    6: ("inbox", 5, "extraction"),
    7: ("inbox", 6, "indexes-by-id"),
    8: ("vault", 2, "audit-states-field-versions"),
    9: ("inbox", 7, "dkim-local"),
    10: ("vault", 3, "totp-steps"),
    11: ("inbox", 8, "issued-addresses"),
}

RECORD_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    domain     TEXT NOT NULL,
    step       INTEGER NOT NULL,
    name       TEXT NOT NULL,
    applied_at REAL NOT NULL,
    PRIMARY KEY (domain, step)
) WITHOUT ROWID
"""


def statements(script: str) -> list[str]:
    """Split a migration into statements; a trigger's body holds ';' inside BEGIN ... END."""
    out, buffer = [], ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n;"):
                out.append(buffer.strip())
            buffer = ""
    return out


def _newer(detail: str) -> ConfigError:
    return ConfigError(f"vault.db was upgraded by a newer mailgent-mcp ({detail}); upgrade mailgent-mcp to use it.")


def _user_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0]) if row else 0


def recorded_steps(conn: sqlite3.Connection) -> dict[str, dict[int, str]]:
    """{domain: {step: name}} as the file records them (converted from its schema version if it is older)."""
    version = _user_version(conn)
    if version == RECORDED:
        rows = conn.execute("SELECT domain, step, name FROM schema_migrations").fetchall()
        found: dict[str, dict[int, str]] = {}
        for domain, step, name in rows:
            found.setdefault(str(domain), {})[int(step)] = str(name)
        return found
    if version > LEGACY_MAX:
        raise _newer(f"schema version {version}")
    found = {}
    for number in range(1, version + 1):
        domain, step, name = LEGACY[number]
        found.setdefault(domain, {})[step] = name
    return found


def pending(conn: sqlite3.Connection, sets: Sequence[MigrationSet]) -> list[tuple[MigrationSet, int]]:
    """The (set, step) pairs still to apply, in order; refuses a file with steps this code does not know."""
    recorded = recorded_steps(conn)
    todo: list[tuple[MigrationSet, int]] = []
    for migration_set in sets:
        have = recorded.get(migration_set.domain, {})
        for step, name in sorted(have.items()):
            if step > len(migration_set.steps):
                raise _newer(f"its {migration_set.domain} schema has step {step}, {name!r}")
            if migration_set.steps[step - 1].name != name:
                raise ConfigError(
                    f"vault.db's {migration_set.domain} schema step {step} is {name!r}, not "
                    f"{migration_set.steps[step - 1].name!r}: it was made by another build of mailgent-mcp. "
                    "Open it with that build, or restore a backup.")
        todo += [(migration_set, step) for step in range(1, len(migration_set.steps) + 1) if step not in have]
    return todo


def up_to_date(conn: sqlite3.Connection, sets: Sequence[MigrationSet]) -> bool:
    """Whether the file keeps the record and has every step of sets (raises for a newer file)."""
    return not pending(conn, sets) and _user_version(conn) == RECORDED


def apply(conn: sqlite3.Connection, sets: Sequence[MigrationSet], now: float | None = None) -> list[str]:
    """Apply the pending steps of sets, recording each; inside the caller's write transaction.

    Returns the "domain/name" of each step applied. An older file's record is written first,
    for every domain it has steps of, so that each domain finds its own steps recorded.
    """
    at = time.time() if now is None else now
    if _user_version(conn) != RECORDED:
        legacy = recorded_steps(conn)
        conn.execute(RECORD_TABLE)
        conn.execute("DELETE FROM schema_migrations")  # the schema version decides; a stray record does not
        conn.executemany("INSERT OR IGNORE INTO schema_migrations (domain, step, name, applied_at) VALUES (?, ?, ?, ?)",
                         [(domain, step, name, at) for domain, steps in legacy.items() for step, name in steps.items()])
        conn.execute(f"PRAGMA user_version = {RECORDED}")
    done = []
    for migration_set, step in pending(conn, sets):
        for statement in statements(migration_set.steps[step - 1].sql):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations (domain, step, name, applied_at) VALUES (?, ?, ?, ?)",
                     (migration_set.domain, step, migration_set.steps[step - 1].name, at))
        done.append(f"{migration_set.domain}/{migration_set.steps[step - 1].name}")
    return done
