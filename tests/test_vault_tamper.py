"""A vault.db edited behind the vault's back, as an attacker with the file (but not the key) would.

Each test edits vault.db with the sqlite3 module directly, then uses the vault the way it
is used: the CLI as a subprocess and the tools over a real stdio MCP server. The vault must
notice (refuse the entry, refuse to extend a shortened audit log, refuse a damaged keyring)
with a clear error and the documented exit code, never hand out what was edited, and never
take a damaged file for a new, empty vault.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from mailgent_mcp.errors import VaultCorrupt
from mailgent_mcp.vault.entries import Vault

from .conftest import (
    DATA,
    SEED_RFC,
    clean_env,
    db_exec,
    db_rows,
    error_text,
    ok,
    run_cli,
)


def _put(home: Path, name: str, *args: str, stdin: str = "") -> None:
    result = run_cli(home, "vault", "put", name, *args, stdin=stdin)
    assert result.returncode == 0, result.stderr


def _snapshot_field(home: Path, name: str, field: str) -> tuple[bytes, int]:
    [(blob, version)] = db_rows(home, "SELECT f.sealed, f.version FROM entry_fields f JOIN entries e "
                                      "ON e.id = f.entry_id WHERE e.name = ? AND f.field = ?", (name, field))
    assert isinstance(blob, bytes) and isinstance(version, int)
    return blob, version


def _set_field(home: Path, name: str, field: str, blob: bytes, version: int) -> None:
    db_exec(home, "UPDATE entry_fields SET sealed = ?, version = ? WHERE field = ? AND entry_id = "
                  "(SELECT id FROM entries WHERE name = ?)", (blob, version, field, name))


def _stdio(home: Path) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "mailgent_mcp", "serve"], env=clean_env(home))


# -- rollback and direct edits of entries ---------------------------------------------------


def test_password_rolled_back_with_its_version_is_refused_by_get(home: Path) -> None:
    _put(home, "bank", "--password", stdin="old-password\n")
    old = _snapshot_field(home, "bank", "password")
    _put(home, "bank", "--password", stdin="new-password\n")
    _set_field(home, "bank", "password", *old)  # the whole older row, value and version
    result = run_cli(home, "vault", "get", "bank", "--field", "password")
    assert result.returncode == 5, result.stderr
    assert "does not match its last recorded change" in result.stderr
    assert "old-password" not in result.stdout + result.stderr


async def test_older_value_under_the_current_version_does_not_open(home: Path) -> None:
    async with await Vault.open(home, environ={}) as v:
        await v.put("bank", {"password": "old-password"}, "LOGIN")
        old_blob, _ = _snapshot_field(home, "bank", "password")
        await v.put("bank", {"password": "new-password"})
        _, version = _snapshot_field(home, "bank", "password")
    _set_field(home, "bank", "password", old_blob, version)  # the older value, the current version
    async with await Vault.open(home, environ={}) as v:
        with pytest.raises(VaultCorrupt):
            await v.get("bank")
        # The value's additional data names its version, so it fails to open on its own too
        # (a layer apart from the state check, which refuses the entry first).
        with pytest.raises(VaultCorrupt, match="failed its integrity check"):
            v._open("bank", "password", old_blob, version)


async def test_totp_refuses_an_entry_whose_type_was_changed_with_sqlite(home: Path) -> None:
    _put(home, "github", "--secret", stdin=SEED_RFC + "\n")
    db_exec(home, "UPDATE entries SET type = 'NOTE' WHERE name = 'github'")
    async with Client(_stdio(home), mode="legacy") as client:
        text = error_text(await client.call_tool("vault_totp", {"name": "github"}))
    assert "does not match its last recorded change" in text and "audit verify" in text


@pytest.mark.parametrize("edit", ["delete-entry", "change-type", "delete-field", "insert-entry", "rollback-field"])
def test_audit_verify_finds_every_direct_edit_of_an_entry(home: Path, edit: str) -> None:
    _put(home, "bank", "--password", "--username", "u", stdin="p1\n")
    old = _snapshot_field(home, "bank", "password")
    _put(home, "bank", "--password", stdin="p2\n")
    _put(home, "other", "--notes", "n")
    assert run_cli(home, "audit", "verify").returncode == 0
    if edit == "delete-entry":
        db_exec(home, "DELETE FROM entries WHERE name = 'bank'")
        expected = "entry 'bank' was deleted outside mailgent-mcp"
    elif edit == "change-type":
        db_exec(home, "UPDATE entries SET type = 'API_KEY' WHERE name = 'bank'")
        expected = "entry 'bank' differs from its last recorded change"
    elif edit == "delete-field":
        db_exec(home, "DELETE FROM entry_fields WHERE field = 'username'")
        expected = "entry 'bank' differs from its last recorded change"
    elif edit == "insert-entry":
        db_exec(home, "INSERT INTO entries (name, type, created_at, updated_at) VALUES ('planted', 'NOTE', 0, 0)")
        expected = "entry 'planted' has no record in the audit log"
    else:
        _set_field(home, "bank", "password", *old)
        expected = "entry 'bank' differs from its last recorded change"
    result = run_cli(home, "audit", "verify")
    assert result.returncode == 5, result.stdout + result.stderr
    assert expected in result.stdout
    assert "'other'" not in result.stdout  # the untouched entry is not blamed


def _release_home(home: Path) -> Path:
    """A copy of the data folder made by release 0.1.0 (tests/data/home-0.1.0), mode as the vault wants it."""
    home.mkdir(mode=0o700)
    for name in ("vault.db", "master.key"):
        (home / name).write_bytes((DATA / "home-0.1.0" / name).read_bytes())
        (home / name).chmod(0o600)
    return home


async def test_a_data_folder_of_the_previous_release_opens_with_everything_in_it(home: Path) -> None:
    _release_home(home)
    async with await Vault.open(home, environ={}) as v:
        github = await v.get("github")
        assert github.data == {"username": "agent@example.com", "password": "legacy-password"}
        assert (await v.totp("github", at=1_234_567_890)).code == "005924"
        assert (await v.get("aws/prod")).data == {"api_key": "legacy-api-key"}
        assert [e.name for e in await v.list()] == ["aws/prod", "github", "notes/recovery"]
        report = await v.audit_verify()
        assert report.ok and report.entries == 3, report
    rows = db_rows(home, "SELECT seq, op, entry FROM audit ORDER BY seq")
    assert [r[1] for r in rows[:6]] == ["init", "put", "put", "put", "get", "totp"]  # the release's own rows
    # The upgrade recorded each entry's state once, in the chain.
    assert [r[2] for r in rows if r[1] == "baseline"] == ["aws/prod", "github", "notes/recovery", None]
    assert db_rows(home, "SELECT subject FROM messages") == [("Your code",)]


def test_after_the_upgrade_an_entry_added_behind_the_vaults_back_is_not_blessed(home: Path) -> None:
    _release_home(home)
    assert run_cli(home, "vault", "list").returncode == 0  # the upgrade: states recorded once
    db_exec(home, "INSERT INTO entries (name, type, created_at, updated_at) VALUES ('planted', 'NOTE', 0, 0)")
    assert run_cli(home, "vault", "list").returncode == 0
    assert len(db_rows(home, "SELECT 1 FROM audit WHERE op = 'baseline' AND entry IS NULL")) == 1
    result = run_cli(home, "audit", "verify")
    assert result.returncode == 5 and "'planted' has no record" in result.stdout
    assert run_cli(home, "vault", "get", "planted").returncode == 5


# -- a shortened audit log is never extended as if intact -----------------------------------


def _drop_newest_rows(home: Path, count: int) -> None:
    db_exec(home, "DELETE FROM audit WHERE seq > (SELECT max(seq) FROM audit) - ?", (count,))


async def test_deleting_the_newest_audit_rows_stops_every_operation_until_acknowledged(home: Path) -> None:
    _put(home, "github", "--secret", stdin=SEED_RFC + "\n")
    _put(home, "bank", "--password", stdin="p\n")
    assert run_cli(home, "vault", "get", "bank").returncode == 0
    _drop_newest_rows(home, 1)  # the row of the get: a read leaves no state to miss
    rows_before = db_rows(home, "SELECT count(*) FROM audit")

    # A read over MCP, a change over MCP and the CLI: all refused, loudly, and nothing appended.
    async with Client(_stdio(home), mode="legacy") as client:
        for tool, args in (("vault_totp", {"name": "github"}), ("vault_list", {}),
                           ("vault_put", {"name": "x", "data": {"notes": "n"}})):
            text = error_text(await client.call_tool(tool, args))
            assert "audit log was changed outside mailgent-mcp" in text and "acknowledge" in text, tool
    cli = run_cli(home, "vault", "get", "bank")
    assert cli.returncode == 6 and "rows after row" in cli.stderr
    assert db_rows(home, "SELECT count(*) FROM audit") == rows_before
    verify = run_cli(home, "audit", "verify")
    assert verify.returncode == 6 and "BROKEN" in verify.stdout

    # The owner records the break; the vault works again; the break stays on record.
    ack = run_cli(home, "audit", "acknowledge")
    assert ack.returncode == 0 and "rows after row" in ack.stdout
    async with Client(_stdio(home), mode="legacy") as client:
        assert ok(await client.call_tool("vault_totp", {"name": "github"}))["code"]
    verify = run_cli(home, "audit", "verify")
    assert verify.returncode == 0 and "Recorded break: row" in verify.stdout
    # The reads refused while the log was broken were kept and are in the log now.
    assert db_rows(home, "SELECT count(*) FROM audit WHERE outcome = 'chain_broken'")[0][0] >= 3


def test_acknowledge_on_an_intact_log_changes_nothing(home: Path) -> None:
    _put(home, "bank", "--password", stdin="p\n")
    before = db_rows(home, "SELECT count(*) FROM audit")
    result = run_cli(home, "audit", "acknowledge")
    assert result.returncode == 2 and "no break to acknowledge" in result.stderr
    assert db_rows(home, "SELECT count(*) FROM audit") == before


# -- a damaged keyring or vault.db is refused, never taken for a new vault ------------------


def test_zero_byte_vault_db_is_refused_not_recreated(home: Path) -> None:
    _put(home, "bank", "--password", stdin="p\n")
    (home / "vault.db").write_bytes(b"")  # truncated (the WAL is checkpointed and gone after a clean exit)
    assert not (home / "vault.db-wal").exists()
    result = run_cli(home, "vault", "list")
    assert result.returncode == 7, result.stderr
    assert "is empty (0 bytes)" in result.stderr and "Restore vault.db from a backup" in result.stderr
    assert (home / "vault.db").stat().st_size == 0  # nothing was created over it


@pytest.mark.parametrize("command", [("vault", "list"), ("vault", "put", "new", "--notes", "n")])
def test_vault_with_its_keyring_row_deleted_is_refused(home: Path, command: tuple[str, ...]) -> None:
    _put(home, "bank", "--password", stdin="p\n")
    db_exec(home, "DELETE FROM keyring")
    result = run_cli(home, *command)
    assert result.returncode == 5, result.stderr
    assert "no keyring row" in result.stderr and "backup" in result.stderr
    assert db_rows(home, "SELECT count(*) FROM keyring") == [(0,)]
    assert db_rows(home, "SELECT name FROM entries") == [("bank",)]


def test_new_vault_db_is_never_seen_empty(home: Path) -> None:
    # Created in a temporary file and linked into place: the first thing any process sees is a
    # complete database, so an empty one can be refused as damage.
    assert run_cli(home, "vault", "list").returncode == 0
    assert (home / "vault.db").stat().st_size > 0
    assert not [p for p in home.iterdir() if p.name.endswith(".new")]


PASS_ENV = "amber quiet river stone"


@pytest.mark.parametrize("kdf", [
    "not json",
    json.dumps({"kdf": "argon2id", "salt": "AAAAAAAAAAAAAAAAAAAAAA==", "memory_cost": 2**31, "iterations": 4,
                "lanes": 4}),
    json.dumps({"kdf": "argon2id", "salt": "AAAAAAAAAAAAAAAAAAAAAA==", "memory_cost": 65536, "iterations": 10**9,
                "lanes": 4}),
    json.dumps({"kdf": "argon2id", "salt": "%%%", "memory_cost": 65536, "iterations": 4, "lanes": 4}),
    json.dumps({"kdf": "argon2id", "memory_cost": 65536}),
    json.dumps(["argon2id"]),
], ids=["garbage", "huge-memory", "huge-iterations", "bad-salt", "missing-keys", "not-an-object"])
def test_tampered_kdf_row_is_a_clear_error_not_a_hang(home: Path, kdf: str) -> None:
    env = clean_env(home, MAILGENT_PASSPHRASE=PASS_ENV)
    assert run_cli(home, "vault", "put", "x", "--notes", "n", env=env).returncode == 0
    db_exec(home, "UPDATE keyring SET kdf = ?", (kdf,))
    result = run_cli(home, "vault", "list", env=env, timeout=30)
    assert result.returncode == 5, result.stderr
    assert "key derivation record" in result.stderr and "internal error" not in result.stderr


@pytest.mark.parametrize("kind", ["", "rot13", "passphrase "])
def test_tampered_keyring_kind_is_a_clear_error(home: Path, kind: str) -> None:
    _put(home, "bank", "--password", stdin="p\n")
    db_exec(home, "UPDATE keyring SET kek_kind = ?", (kind,))
    result = run_cli(home, "vault", "list")
    assert result.returncode == 5, result.stderr
    assert "keyring row" in result.stderr and "internal error" not in result.stderr


async def test_an_open_vault_sees_edits_and_changes_made_by_other_processes_at_once(home: Path) -> None:
    async with await Vault.open(home, environ={}) as v:
        await v.put("bank", {"password": "p1"}, "LOGIN")
        assert (await v.get("bank")).data["password"] == "p1"  # checked once, then reused while nothing commits
        _put(home, "bank", "--password", stdin="p2\n")  # another process's change
        assert (await v.get("bank")).data["password"] == "p2"
        db_exec(home, "UPDATE entries SET type = 'NOTE' WHERE name = 'bank'")  # an edit behind the vault's back
        with pytest.raises(VaultCorrupt):
            await v.get("bank")
