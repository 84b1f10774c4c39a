"""Shared fixtures: a real data folder in a temporary directory, a real vault.db, the real CLI."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from mcp_types import CallToolResult

from mailgent_mcp.db.sqlite import open_store
from mailgent_mcp.inbox.store import INBOX_MIGRATIONS
from mailgent_mcp.vault.entries import Vault
from mailgent_mcp.vault.store import VAULT_MIGRATIONS, VaultStore

DATA = Path(__file__).parent / "data"

# The Key URI spec's own 80-bit example seed and the RFC 6238 SHA-1 seed.
SEED_80 = "JBSWY3DPEHPK3PXP"
SEED_RFC = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"

# Every tool the server lists, in its order: the five vault tools, then the five inbox tools.
ALL_TOOLS = ["vault_put", "vault_get", "vault_totp", "vault_backup_code", "vault_list", "vault_delete",
             "inbox_read", "inbox_wait", "inbox_mark", "inbox_accounts", "inbox_address"]


# The lanes (see README "Tests"): a test is put in one by the fixtures it uses or its module, so
# that a new test of Dovecot or of several processes needs no marker by hand.
LANE_BY_FIXTURE = {"dovecot": "dovecot", "imap_proxy": "dovecot", "smtp_hop": "dovecot", "spawn": "processes"}
LANE_BY_MODULE = {"test_mcp_inspector": "node", "test_mcp_typescript": "node", "test_readme": "demo"}
# Tests measured over half a second each (scripts/slow_tests.py keeps the list).
SLOW_TESTS = frozenset(line for line in (Path(__file__).parent / "slow_tests.txt").read_text().splitlines()
                       if line and not line.startswith("#"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        lanes = {LANE_BY_FIXTURE[name] for name in getattr(item, "fixturenames", ()) if name in LANE_BY_FIXTURE}
        module = item.module.__name__.rpartition(".")[2] if item.module is not None else ""  # type: ignore[attr-defined]
        if module in LANE_BY_MODULE:
            lanes.add(LANE_BY_MODULE[module])
        if item.nodeid in SLOW_TESTS:
            lanes.add("slow")
        for lane in sorted(lanes):
            item.add_marker(lane)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A data folder that does not exist yet (the vault creates it)."""
    return tmp_path / "home"


@pytest.fixture
async def vault(home: Path) -> AsyncIterator[Vault]:
    """A vault on the embedded default key (master.key in the data folder)."""
    v = await Vault.open(home, environ={})
    try:
        yield v
    finally:
        await v.close()


def ok(result: CallToolResult) -> dict[str, object]:
    """The structured result of a tool call that must have succeeded."""
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    """The text of a tool call that must have failed with an isError result."""
    assert result.is_error, result.structured_content
    text = getattr(result.content[0], "text", None)
    assert isinstance(text, str)
    return text


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment for a CLI subprocess: the basics, MAILGENT_HOME, and nothing inherited by chance."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR")}
    env["MAILGENT_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(home: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `python -m mailgent_mcp ARGS` as a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "mailgent_mcp", *args],
        input=stdin, capture_output=True, text=True, env=env or clean_env(home), timeout=timeout,
    )


def db_rows(home: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Read vault.db directly with the sqlite3 module, as an attacker or an auditor would."""
    conn = sqlite3.connect(home / "vault.db")
    try:
        return list(conn.execute(sql, params))
    finally:
        conn.close()


def db_exec(home: Path, sql: str, params: tuple[object, ...] = ()) -> None:
    """Write vault.db directly, bypassing the vault (to tamper with it in a test)."""
    conn = sqlite3.connect(home / "vault.db")
    try:
        conn.execute(sql, params)
        conn.commit()
    finally:
        conn.close()


def schema_steps(home: Path) -> dict[str, int]:
    """The newest migration step recorded per domain in the data folder's vault.db."""
    return {str(domain): int(step) for domain, step in
            db_rows(home, "SELECT domain, max(step) FROM schema_migrations GROUP BY domain")}


LATEST_STEP = {"vault": len(VAULT_MIGRATIONS.steps), "inbox": len(INBOX_MIGRATIONS.steps)}


def add_vault_tables(home: Path) -> None:
    """Give a data folder that only the inbox opened the vault's tables too, as an older release's file has."""
    open_store(home / "vault.db", VaultStore).close()


# Takes a vault.db of this version back to schema 7 (the tests that fake an older file start there).
UNDO_TO_SCHEMA_7 = """
    DROP TABLE totp_steps;
    DROP TABLE issued_addresses;
    ALTER TABLE messages DROP COLUMN dkim_local;
    DROP INDEX audit_by_entry;
    DROP INDEX audit_by_time;
    ALTER TABLE audit DROP COLUMN state;
    ALTER TABLE entry_fields DROP COLUMN version;
"""


def entries_snapshot(home: Path) -> list[tuple[object, ...]]:
    """Every entry row and sealed field, to prove that a failed call wrote nothing."""
    return db_rows(
        home,
        "SELECT e.name, e.type, e.created_at, e.updated_at, f.field, f.sealed "
        "FROM entries e LEFT JOIN entry_fields f ON f.entry_id = e.id ORDER BY e.name, f.field",
    )


@pytest.fixture
def oathtool() -> Iterator[str]:
    """Path of Debian's oathtool, the independent implementation we compare against."""
    import shutil

    path = shutil.which("oathtool")
    if path is None:
        pytest.skip("oathtool is not installed; scripts/setup.sh --test installs it (apt-get install oathtool)")
    yield path
