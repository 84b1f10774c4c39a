"""Master keys: the three sources, wrong keys, key changes, and interrupted key changes."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from mailgent_mcp.errors import ConfigError, VaultLocked
from mailgent_mcp.vault import crypto
from mailgent_mcp.vault.entries import Vault

from .conftest import SEED_RFC, db_rows, entries_snapshot

KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_B = base64.b64encode(b"B" * 32).decode()


async def _store_sample(home: Path, environ: dict[str, str]) -> None:
    async with await Vault.open(home, environ=environ) as v:
        await v.put("svc", {"username": "u", "password": "p", "secret": SEED_RFC}, "LOGIN")


async def _read_sample(home: Path, environ: dict[str, str]) -> str:
    async with await Vault.open(home, environ=environ) as v:
        assert (await v.totp("svc", at=1_234_567_890, unused_only=False)).code == "005924"
        return (await v.get("svc")).data["password"]


def _audit_count(home: Path) -> int:
    return int(db_rows(home, "SELECT COUNT(*) FROM audit")[0][0])  # type: ignore[call-overload]


async def test_embedded_default_creates_a_private_key_file(home: Path) -> None:
    await _store_sample(home, {})
    key_file = home / "master.key"
    assert key_file.stat().st_size == 32 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert await _read_sample(home, {}) == "p"
    assert db_rows(home, "SELECT kek_kind, kdf FROM keyring") == [("keyfile", None)]


async def test_master_key_from_environment(home: Path) -> None:
    await _store_sample(home, {"MAILGENT_MASTER_KEY": KEY_A})
    assert not (home / "master.key").exists()
    assert await _read_sample(home, {"MAILGENT_MASTER_KEY": KEY_A}) == "p"


async def test_passphrase_uses_stored_argon2id_parameters(home: Path) -> None:
    await _store_sample(home, {"MAILGENT_PASSPHRASE": "correct horse"})
    [(kind, kdf)] = db_rows(home, "SELECT kek_kind, kdf FROM keyring")
    params = json.loads(str(kdf))
    assert kind == "passphrase" and params["kdf"] == "argon2id"
    assert params["memory_cost"] >= 65536 and len(base64.b64decode(params["salt"])) == 16
    assert await _read_sample(home, {"MAILGENT_PASSPHRASE": "correct horse"}) == "p"


@pytest.mark.parametrize(
    ("created_with", "opened_with", "message"),
    [
        ({"MAILGENT_MASTER_KEY": KEY_A}, {"MAILGENT_MASTER_KEY": KEY_B}, "MAILGENT_MASTER_KEY does not open"),
        ({"MAILGENT_PASSPHRASE": "amber quiet river stone"}, {"MAILGENT_PASSPHRASE": "wrong"},
         "MAILGENT_PASSPHRASE does not open"),
        ({}, {"MAILGENT_PASSPHRASE": "x"}, "sealed with the master.key file"),
        ({"MAILGENT_PASSPHRASE": "amber quiet river stone"}, {}, "set MAILGENT_PASSPHRASE"),
        ({"MAILGENT_MASTER_KEY": KEY_A}, {}, "set MAILGENT_MASTER_KEY"),
    ],
    ids=["wrong-key", "wrong-passphrase", "keyfile-vault-given-passphrase", "passphrase-vault-given-nothing",
         "key-vault-given-nothing"],
)
async def test_wrong_key_is_vault_locked_and_changes_nothing(
    home: Path, created_with: dict[str, str], opened_with: dict[str, str], message: str
) -> None:
    await _store_sample(home, created_with)
    before, audit_before = entries_snapshot(home), _audit_count(home)
    files_before = sorted(p.name for p in home.iterdir())
    with pytest.raises(VaultLocked, match=message) as err:
        await Vault.open(home, environ=opened_with)
    assert "Vault locked" in str(err.value) or "vault" in str(err.value).lower()
    assert entries_snapshot(home) == before and _audit_count(home) == audit_before
    assert sorted(p.name for p in home.iterdir() if not p.name.startswith("vault.db-")) == [
        n for n in files_before if not n.startswith("vault.db-")]
    assert await _read_sample(home, created_with) == "p"


async def test_missing_key_file_is_locked_and_no_new_key_is_made(home: Path) -> None:
    await _store_sample(home, {})
    (home / "master.key").rename(home / "elsewhere.key")
    with pytest.raises(VaultLocked, match=r"master.key is missing"):
        await Vault.open(home, environ={})
    assert not (home / "master.key").exists()


async def test_replaced_key_file_is_locked(home: Path) -> None:
    await _store_sample(home, {})
    key_file = home / "master.key"
    key_file.write_bytes(os.urandom(32))
    with pytest.raises(VaultLocked, match="does not open this vault"):
        await Vault.open(home, environ={})


async def test_key_file_readable_by_others_is_refused(home: Path) -> None:
    await _store_sample(home, {})
    (home / "master.key").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        await Vault.open(home, environ={})


@pytest.mark.parametrize("value", ["not base64!!", base64.b64encode(b"short").decode()], ids=["not-base64", "wrong-length"])
async def test_malformed_master_key_is_a_config_error(home: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="MAILGENT_MASTER_KEY"):
        await Vault.open(home, environ={"MAILGENT_MASTER_KEY": value})


async def test_key_change_rewraps_without_touching_entries(home: Path) -> None:
    await _store_sample(home, {})
    sealed_before = entries_snapshot(home)
    async with await Vault.open(home, environ={}) as v:
        await v.change_key("passphrase", passphrase="plum velvet harbor cactus")
    assert entries_snapshot(home) == sealed_before  # not one sealed byte rewritten
    assert not (home / "master.key").exists()
    with pytest.raises(VaultLocked):
        await Vault.open(home, environ={"MAILGENT_PASSPHRASE": "copper lantern meadow fig"})
    assert await _read_sample(home, {"MAILGENT_PASSPHRASE": "plum velvet harbor cactus"}) == "p"

    async with await Vault.open(home, environ={"MAILGENT_PASSPHRASE": "plum velvet harbor cactus"}) as v:
        await v.change_key("key", key=b"K" * 32)
    key_env = {"MAILGENT_MASTER_KEY": crypto.encode_master_key(b"K" * 32)}
    assert await _read_sample(home, key_env) == "p"

    async with await Vault.open(home, environ=key_env) as v:
        await v.change_key("keyfile")
        assert (await v.audit_tail(1))[0].op == "passwd"
    assert (home / "master.key").exists() and not (home / "master.key.new").exists()
    assert await _read_sample(home, {}) == "p"
    assert entries_snapshot(home) == sealed_before
    async with await Vault.open(home, environ={}) as v:
        assert (await v.audit_verify()).ok


async def test_an_open_vault_keeps_working_across_a_key_change(home: Path) -> None:
    await _store_sample(home, {})
    async with await Vault.open(home, environ={}) as first, await Vault.open(home, environ={}) as second:
        await first.change_key("keyfile")
        assert (await second.get("svc")).data["password"] == "p"  # the data key itself did not change
        await second.put("after", {"password": "q"})
    async with await Vault.open(home, environ={}) as reopened:
        assert reopened.key_kind == "keyfile"


async def test_interrupted_key_file_change_is_finished_on_next_open(home: Path) -> None:
    await _store_sample(home, {})
    old_key = (home / "master.key").read_bytes()
    async with await Vault.open(home, environ={}) as v:
        await v.change_key("keyfile")
    new_key = (home / "master.key").read_bytes()
    # Recreate the state of a crash between the database commit and the file rename.
    os.replace(home / "master.key", home / "master.key.new")
    crypto.write_key_file(home / "master.key", old_key)
    assert await _read_sample(home, {}) == "p"
    assert (home / "master.key").read_bytes() == new_key and not (home / "master.key.new").exists()


async def test_a_file_that_is_not_a_database_is_a_config_error(home: Path) -> None:
    home.mkdir(mode=0o700)
    (home / "vault.db").write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(ConfigError, match="not a mailgent-mcp database"):
        await Vault.open(home, environ={})
    assert (home / "vault.db").read_bytes() == b"this is not SQLite" * 100
