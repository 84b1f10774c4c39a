"""Named migration sets, one per domain, and the record of which steps a database has.

Each domain (the vault, the inbox) brings an ordered set of named steps and upgrades on its
own: the table `schema_migrations` records (domain, step, name, applied_at) for each step
applied, so a step added to one domain never renumbers another's, and a domain's store
creates its own tables only. The backend applies the pending steps inside one write
transaction, so that of several processes opening a database at once one migrates and the
others find it done; this module decides which steps are pending, and refuses a database
that records a step this code does not know.

A vault.db made before the record (schema versions 1 to 11 in SQLite's PRAGMA user_version,
one list for both domains) is converted in place: LEGACY says which steps each of those
versions had applied. From then on its user_version is RECORDED (100), which the releases
before the record refuse as the schema of a newer release instead of running on tables
they do not know; the record, not user_version, says what the file has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
)
"""
RECORD_STEP = "INSERT INTO schema_migrations (domain, step, name, applied_at) VALUES (?, ?, ?, ?)"
READ_RECORD = "SELECT domain, step, name FROM schema_migrations"

Record = dict[str, dict[int, str]]  # {domain: {step: name}}


def newer_release(detail: str) -> ConfigError:
    """The error for a file that a newer mailgent-mcp upgraded: this one must not run on it."""
    return ConfigError(f"vault.db was upgraded by a newer mailgent-mcp ({detail}); upgrade mailgent-mcp to use it.")


def record_of(rows: Sequence[tuple[Any, Any, Any]]) -> Record:
    """The record as read from schema_migrations (READ_RECORD's rows)."""
    found: Record = {}
    for domain, step, name in rows:
        found.setdefault(str(domain), {})[int(step)] = str(name)
    return found


def legacy_record(version: int) -> Record:
    """The steps a file of an older schema version (one list for both domains) has applied."""
    if version > LEGACY_MAX:
        raise newer_release(f"schema version {version}")
    found: Record = {}
    for number in range(1, version + 1):
        domain, step, name = LEGACY[number]
        found.setdefault(domain, {})[step] = name
    return found


def pending(recorded: Record, sets: Sequence[MigrationSet]) -> list[tuple[MigrationSet, int]]:
    """The (set, step) pairs still to apply, in order; refuses a file with steps this code does not know."""
    todo: list[tuple[MigrationSet, int]] = []
    for migration_set in sets:
        have = recorded.get(migration_set.domain, {})
        for step, name in sorted(have.items()):
            if step > len(migration_set.steps):
                raise newer_release(f"its {migration_set.domain} schema has step {step}, {name!r}")
            if migration_set.steps[step - 1].name != name:
                raise ConfigError(
                    f"vault.db's {migration_set.domain} schema step {step} is {name!r}, not "
                    f"{migration_set.steps[step - 1].name!r}: it was made by another build of mailgent-mcp. "
                    "Open it with that build, or restore a backup.")
        todo += [(migration_set, step) for step in range(1, len(migration_set.steps) + 1) if step not in have]
    return todo
