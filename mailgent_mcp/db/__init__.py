"""The database layer: what the vault and the inbox need from a database (backend.py: a store's
connection, transactions, the database thread), named migration sets per domain and their
record (migrations.py), and SQLite, the one backend (sqlite.py: vault.db, WAL, the writer
thread). It knows no table of its own: the vault and the inbox each bring their SQL and
their migration set (vault/store.py, inbox/store.py). open_database picks the backend."""

from __future__ import annotations

from pathlib import Path

from mailgent_mcp.db.backend import Database, S
from mailgent_mcp.db.sqlite import SqliteDatabase


async def open_database(path: Path, kind: type[S]) -> Database[S]:
    """Open the database at path as a store of that kind, created and migrated as needed."""
    return await SqliteDatabase.open(path, kind)
