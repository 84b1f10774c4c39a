"""Sealing and key handling. The `cryptography` package is used here and nowhere else.

Envelope encryption: a master key (KEK) wraps a random 32-byte data
key (DEK). Values are sealed under sub-keys derived from the DEK, so changing the KEK
rewraps 48 bytes and touches no entry.

Sealed blob, version 1:  0x01 | nonce (12 bytes, random) | AES-256-GCM ciphertext+tag
The additional data binds each blob to its purpose (entry name and field), so a blob
copied to another row fails to open. Like Fernet, every failure to open is one bare
exception that says nothing of which check failed.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mailgent_mcp.errors import ConfigError, InvalidInput, VaultCorrupt

KEY_BYTES = 32
NONCE_BYTES = 12  # NIST SP 800-38D §8.2.2: 96-bit random nonces
BLOB_V1 = b"\x01"

# RFC 9106 §4, second recommended option (64 MiB, 4 lanes), with t=4: about 0.2 s here.
ARGON2_DEFAULTS: dict[str, int] = {"memory_cost": 65536, "iterations": 4, "lanes": 4}


class OpenFailed(Exception):
    """A sealed value did not open: wrong key, wrong binding, or altered bytes."""


def random_key() -> bytes:
    """A fresh 32-byte key from the OS CSPRNG."""
    return secrets.token_bytes(KEY_BYTES)


class Sealer:
    """AES-256-GCM with a fresh random nonce per value; the caller never supplies one."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("AES-256 needs a 32-byte key")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "Sealer(<key hidden>)"

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt and authenticate plaintext, bound to aad."""
        nonce = os.urandom(NONCE_BYTES)
        return BLOB_V1 + nonce + self._aead.encrypt(nonce, plaintext, BLOB_V1 + aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        """Decrypt a blob made by seal() with the same aad, or raise OpenFailed."""
        if len(blob) < 1 + NONCE_BYTES + 16 or blob[:1] != BLOB_V1:
            raise OpenFailed()
        nonce, body = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, BLOB_V1 + aad)
        except InvalidTag:
            raise OpenFailed() from None


def subkey(dek: bytes, purpose: str) -> bytes:
    """A purpose-bound key derived from the DEK (HKDF-SHA256, RFC 5869)."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose.encode()).derive(dek)


def mac(key: bytes, *parts: bytes) -> bytes:
    """HMAC-SHA256 over length-prefixed parts, so part boundaries cannot shift."""
    message = b"".join(len(part).to_bytes(4, "big") + part for part in parts)
    return hmac.digest(key, message, "sha256")


# -- key encryption keys ---------------------------------------------------------------

WRAP_AAD = b"mailgent-mcp data key v1"


def wrap_key(kek: bytes, dek: bytes) -> bytes:
    """Seal the DEK under the KEK."""
    return Sealer(kek).seal(dek, WRAP_AAD)


def unwrap_key(kek: bytes, wrapped: bytes) -> bytes:
    """Open a wrapped DEK, or raise OpenFailed when the KEK is not the one that wrapped it."""
    return Sealer(kek).open(wrapped, WRAP_AAD)


@dataclass(frozen=True)
class KdfParams:
    """Argon2id parameters, stored beside the wrapped key so a passphrase re-derives the same KEK."""

    salt: bytes
    memory_cost: int = ARGON2_DEFAULTS["memory_cost"]
    iterations: int = ARGON2_DEFAULTS["iterations"]
    lanes: int = ARGON2_DEFAULTS["lanes"]

    @classmethod
    def fresh(cls) -> KdfParams:
        """New parameters with a random 16-byte salt."""
        return cls(salt=secrets.token_bytes(16))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for the keyring row."""
        return {
            "kdf": "argon2id",
            "salt": base64.b64encode(self.salt).decode(),
            "memory_cost": self.memory_cost,
            "iterations": self.iterations,
            "lanes": self.lanes,
        }

    @classmethod
    def from_dict(cls, d: object) -> KdfParams:
        """Inverse of to_dict; VaultCorrupt for a record that is damaged or asks for unbounded work."""
        if not isinstance(d, dict) or d.get("kdf") != "argon2id":
            raise VaultCorrupt(_KDF_DAMAGED)
        try:
            params = cls(salt=base64.b64decode(str(d["salt"]), validate=True), memory_cost=_whole(d["memory_cost"]),
                         iterations=_whole(d["iterations"]), lanes=_whole(d["lanes"]))
        except (KeyError, ValueError, TypeError, binascii.Error):
            raise VaultCorrupt(_KDF_DAMAGED) from None
        # Bounds, so that an edited record cannot make every unlock run for hours or exhaust memory.
        if not (16 <= len(params.salt) <= 64 and KDF_MEMORY_KIB[0] <= params.memory_cost <= KDF_MEMORY_KIB[1]
                and 1 <= params.iterations <= KDF_MAX_ITERATIONS and 1 <= params.lanes <= KDF_MAX_LANES
                and params.memory_cost >= 8 * params.lanes):
            raise VaultCorrupt(_KDF_DAMAGED)
        return params


# What this version writes is well inside these; what lies outside was not written by it.
KDF_MEMORY_KIB = (8 * 1024, 1024 * 1024)  # 8 MiB to 1 GiB
KDF_MAX_ITERATIONS = 16
KDF_MAX_LANES = 16
_KDF_DAMAGED = ("The vault's key derivation record (in vault.db) is damaged or was edited: its parameters are not "
                "ones mailgent-mcp writes. Nothing was changed; restore vault.db from a backup.")


def _whole(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("not a whole number")
    return value


def derive_kek(passphrase: str, params: KdfParams) -> bytes:
    """Argon2id (RFC 9106) of the passphrase; deliberately slow, so paid once per process."""
    if not passphrase:
        raise InvalidInput("The passphrase is empty; set a non-empty MAILGENT_PASSPHRASE.")
    kdf = Argon2id(
        salt=params.salt,
        length=KEY_BYTES,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_cost,
    )
    return kdf.derive(passphrase.encode("utf-8"))


def decode_master_key(value: str) -> bytes:
    """Decode a base64 (standard or URL-safe) 32-byte master key, e.g. MAILGENT_MASTER_KEY."""
    text = value.strip()
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if ("-" in text or "_" in text) else None,
                               validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            "MAILGENT_MASTER_KEY is not valid base64; generate one with: "
            "python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'"
        ) from None
    if len(raw) != KEY_BYTES:
        raise ConfigError(f"MAILGENT_MASTER_KEY decodes to {len(raw)} bytes; it must be exactly 32 bytes of base64.")
    return raw


def encode_master_key(key: bytes) -> str:
    """Base64 text of a master key, as MAILGENT_MASTER_KEY expects it."""
    return base64.b64encode(key).decode()


# -- the master.key file -----------------------------------------------------------------


def read_key_file(path: Path) -> bytes:
    """Read a 32-byte key file, refusing one that others can read."""
    try:
        st = path.stat()
        if st.st_mode & 0o077:
            raise ConfigError(
                f"{str(path)!r} is readable by other users; run: chmod 600 {str(path)!r}"
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read the key file {str(path)!r} ({exc.strerror}).") from None
    if len(raw) != KEY_BYTES:
        raise ConfigError(
            f"The key file {str(path)!r} holds {len(raw)} bytes, not 32: it is damaged; restore it from a backup."
        )
    return raw


def write_key_file(path: Path, key: bytes, *, replace: bool = False) -> bool:
    """Write a key (or other private) file atomically with mode 0600.

    With replace=False it is create-only: when another process won the race, its file is
    kept and False returned. The key is written to a temporary file first and linked into
    place, so no reader ever sees a half-written key.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
            created = True
        else:
            try:
                os.link(tmp, path)
                created = True
            except FileExistsError:
                created = False
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return created


def fsync_dir(folder: Path) -> None:
    """Make a rename or link durable (POSIX: the directory entry needs its own fsync)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
