"""The master key: where it comes from, how it unlocks the data key, and how it is changed safely.

The master key comes from MAILGENT_MASTER_KEY, else MAILGENT_PASSPHRASE (Argon2id), else the
master.key file in the data folder. The master key wraps a random data key kept in
vault.db's keyring row. A key change rewraps the data key in one transaction; for a new
master.key file, the file is written under a unique name first and renamed over master.key
after the commit, so every moment of a change (a SIGKILL included) leaves the vault under
a key that is on disk or in the environment. Key changes, and the repair of one
interrupted between its commit and its rename, hold the folder's key-change lock, so two
at once run one after the other.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mailgent_mcp.errors import ConfigError, InvalidInput, VaultCorrupt, VaultLocked
from mailgent_mcp.filelock import exclusive
from mailgent_mcp.settings import (
    ENV_MASTER_KEY,
    ENV_PASSPHRASE,
    MASTER_KEY_FILE,
    Environment,
)
from mailgent_mcp.vault import crypto
from mailgent_mcp.vault.audit import AuditChain, Record
from mailgent_mcp.vault.passphrase import check_passphrase
from mailgent_mcp.vault.store import KeyringRow, VaultStore

log = logging.getLogger(__name__)

KeyKind = Literal["keyfile", "key", "passphrase"]
KINDS: tuple[KeyKind, ...] = ("keyfile", "key", "passphrase")
AUDIT_KEY_PURPOSE = "mailgent-mcp audit v1"
LOCK_FILE = ".key-change.lock"
LOCK_TIMEOUT_S = 30.0
PENDING_PREFIX = MASTER_KEY_FILE + ".new"  # master.key.new-<random>: a new key file not yet in place


@dataclass(frozen=True)
class KeyChoice:
    """Which master key the environment offers."""

    kind: KeyKind
    key: bytes | None = None
    passphrase: str | None = None

    def __repr__(self) -> str:
        return f"KeyChoice(kind={self.kind!r})"


def key_choice(env: Environment) -> KeyChoice:
    """MAILGENT_MASTER_KEY, else MAILGENT_PASSPHRASE, else the master.key file (a variable set empty is refused
    by read_environment)."""
    if env.master_key is not None:
        return KeyChoice("key", key=crypto.decode_master_key(env.master_key.get_secret_value()))
    if env.passphrase is not None:
        return KeyChoice("passphrase", passphrase=env.passphrase.get_secret_value())
    return KeyChoice("keyfile")


_KIND_WORDS: dict[str, str] = {
    "key": f"a master key from {ENV_MASTER_KEY}",
    "passphrase": f"a passphrase from {ENV_PASSPHRASE}",
    "keyfile": f"the {MASTER_KEY_FILE} file in the data folder",
}


def key_change_lock(home: Path) -> AbstractContextManager[None]:
    """The data folder's key-change lock, as a context manager (waits up to LOCK_TIMEOUT_S)."""
    return exclusive(home / LOCK_FILE, timeout=LOCK_TIMEOUT_S,
                     busy="Another key change on this data folder is taking long; try again when it has finished.")


def pending_key_files(home: Path) -> list[Path]:
    """New key files of key changes not yet completed (or abandoned), oldest name first."""
    return sorted(p for p in home.glob(PENDING_PREFIX + "*") if p.is_file())


def unlock_or_create(store: VaultStore, home: Path, choice: KeyChoice, clock: Callable[[], float],
                     actor: str) -> tuple[bytes, KeyringRow]:
    """The data key and the keyring row it came from: unwrapped, or created for a new vault.

    Runs on the database thread. A new vault's keyring row and its first audit row commit
    together, so racing first openers record exactly one creation. A keyring row missing
    from a vault that has entries or audit rows is damage, never a new vault.
    """
    row = store.get_keyring()
    if row is None:
        kek, kdf_json = _new_kek(home, choice)
        with store.transaction():
            row = store.get_keyring()
            if row is None:  # still new under the write lock: this process creates it
                if store.has_vault_data():
                    raise _keyring_missing()
                dek = crypto.random_key()
                row = KeyringRow(choice.kind, kdf_json, crypto.wrap_key(kek, dek))
                store.insert_keyring(row, clock())
                chain = AuditChain(crypto.subkey(dek, AUDIT_KEY_PURPOSE), clock)
                chain.append_many(store, [Record("init", None, actor, "ok", clock(), chain.vault_state())], first=True)
                log.info("created a new vault in %s (key: %s)", home, choice.kind)
                return dek, row
    return unlock(row, home, choice), row


def _keyring_missing() -> VaultCorrupt:
    return VaultCorrupt(
        "vault.db holds entries or audit rows but no keyring row (the wrapped data key that opens them): it was "
        "deleted or damaged. Nothing was changed. Restore vault.db from a backup; to start a new, empty vault "
        "instead, move vault.db aside."
    )


def _new_kek(home: Path, choice: KeyChoice) -> tuple[bytes, str | None]:
    if choice.kind == "key":
        assert choice.key is not None
        return choice.key, None
    if choice.kind == "passphrase":
        assert choice.passphrase is not None
        try:
            check_passphrase(choice.passphrase)
        except InvalidInput as exc:
            raise ConfigError(f"{ENV_PASSPHRASE} cannot seal a new vault: {exc}") from None
        params = crypto.KdfParams.fresh()
        return crypto.derive_kek(choice.passphrase, params), json.dumps(params.to_dict())
    path = home / MASTER_KEY_FILE
    if not path.exists():
        crypto.write_key_file(path, crypto.random_key())  # create-only: a racing process's file wins
    return crypto.read_key_file(path), None


def unlock(row: KeyringRow, home: Path, choice: KeyChoice) -> bytes:
    """The data key of an existing vault, unwrapped with the environment's key."""
    if row.kek_kind not in KINDS:
        raise VaultCorrupt("The vault's keyring row (in vault.db) is damaged or was edited: it names no key kind "
                           "mailgent-mcp knows. Nothing was changed; restore vault.db from a backup.")
    if row.kek_kind != choice.kind:
        raise VaultLocked(_mismatch_message(row.kek_kind, choice.kind))
    if row.kek_kind == "keyfile":
        return _unlock_keyfile(row, home)
    if row.kek_kind == "passphrase":
        assert choice.passphrase is not None
        try:
            record = json.loads(row.kdf or "")
        except ValueError:
            record = None
        kek = crypto.derive_kek(choice.passphrase, crypto.KdfParams.from_dict(record))
    else:
        assert choice.key is not None
        kek = choice.key
    try:
        return crypto.unwrap_key(kek, row.wrapped_dek)
    except crypto.OpenFailed:
        source = ENV_PASSPHRASE if row.kek_kind == "passphrase" else ENV_MASTER_KEY
        raise VaultLocked(
            f"Vault locked: {source} does not open this vault (wrong key or passphrase). Nothing was changed; "
            f"set {source} to the value the vault was created or last re-keyed with."
        ) from None


def _opens(path: Path, row: KeyringRow) -> bytes | None:
    """The data key when the key file at path opens the vault; a master.key that cannot be read raises."""
    try:
        return crypto.unwrap_key(crypto.read_key_file(path), row.wrapped_dek)
    except crypto.OpenFailed:
        return None
    except ConfigError:
        if path.name == MASTER_KEY_FILE:
            raise  # unreadable, readable by others, damaged: its own message says what to do
        return None  # a new key file cut short by a crash before its change committed


def _unlock_keyfile(row: KeyringRow, home: Path) -> bytes:
    """Open with master.key; else with the new key file of a change interrupted after its commit, moved into place."""
    path = home / MASTER_KEY_FILE
    if path.exists():
        dek = _opens(path, row)
        if dek is not None:
            return dek
    if pending_key_files(home):
        with key_change_lock(home):
            # Under the lock no change is half-way: a new key file that opens the vault is committed.
            for candidate in [path, *pending_key_files(home)]:
                dek = _opens(candidate, row) if candidate.exists() else None
                if dek is None:
                    continue
                if candidate != path:
                    os.replace(candidate, path)  # finish a key change interrupted between commit and rename
                    crypto.fsync_dir(home)
                    log.warning("completed an interrupted key change in %s", home)
                return dek
    if not path.exists():
        raise VaultLocked(
            f"Vault locked: {MASTER_KEY_FILE} is missing from {str(home)!r}, and only it opens this vault. "
            "Restore it from your backup; do not delete vault.db."
        )
    raise VaultLocked(
        f"Vault locked: {MASTER_KEY_FILE} in {str(home)!r} does not open this vault (it was replaced or damaged). "
        "Nothing was changed; restore the original file from your backup."
    )


def _mismatch_message(stored: str, offered: str) -> str:
    how = {
        "key": f"set {ENV_MASTER_KEY}",
        "passphrase": f"set {ENV_PASSPHRASE}",
        "keyfile": f"unset {ENV_MASTER_KEY} and {ENV_PASSPHRASE} so that {MASTER_KEY_FILE} is used",
    }[stored]
    return (
        f"Vault locked: this vault is sealed with {_KIND_WORDS[stored]}, but the environment offers "
        f"{_KIND_WORDS[offered]}. Nothing was changed; {how}. To switch, unlock it the current way and run "
        "`mailgent-mcp vault passwd --to ...`."
    )
