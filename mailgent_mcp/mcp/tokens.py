"""Bearer tokens for the HTTP transports: made once, shown once, stored only as a hash.

`mailgent-mcp token` writes the SHA-256 of a new random token to `http-token.sha256` in
the data folder (0600) and prints the token a single time; running servers read the
file per request, so `--rotate` takes effect at once. `MAILGENT_TOKEN` in the
environment takes precedence. Tokens are compared as digests with hmac.compare_digest,
in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from pathlib import Path

from mailgent_mcp.errors import ConfigError, InvalidInput
from mailgent_mcp.settings import ENV_TOKEN, read_environment
from mailgent_mcp.vault import crypto

TOKEN_FILE = "http-token.sha256"
TOKEN_PREFIX = "mgt_"
MIN_TOKEN_CHARS = 24


def digest(token: str) -> bytes:
    """SHA-256 of a token's UTF-8 bytes."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def matches(token: str, expected: bytes) -> bool:
    """True when token hashes to expected; constant time in the token's content."""
    return hmac.compare_digest(digest(token), expected)


def create_token(home: Path, *, rotate: bool = False) -> str:
    """Make a new token, store its hash in the data folder and return it (to show once)."""
    path = home / TOKEN_FILE
    if path.exists() and not rotate:
        raise InvalidInput(
            f"An HTTP token already exists ({str(path)!r}); it was shown once when made. "
            "Run `mailgent-mcp token --rotate` to replace it (clients using the old one stop working)."
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    crypto.write_key_file(path, digest(token).hex().encode() + b"\n", replace=True)
    return token


def expected_digest(home: Path, environ: Mapping[str, str]) -> bytes | None:
    """The digest HTTP requests must match: from MAILGENT_TOKEN, else the token file, else None."""
    token = read_environment(environ).token
    value = token.get_secret_value() if token is not None else ""
    if value:
        if not value.isascii() and not _is_utf8(value):
            raise ConfigError(f"{ENV_TOKEN} is not valid UTF-8 text; set it again (or unset it and run "
                              "`mailgent-mcp token`).")
        if len(value) < MIN_TOKEN_CHARS:
            raise ConfigError(
                f"{ENV_TOKEN} is {len(value)} characters; use at least {MIN_TOKEN_CHARS} random ones "
                "(or unset it and run `mailgent-mcp token`)."
            )
        return digest(value)
    path = home / TOKEN_FILE
    if not path.exists():
        return None
    try:
        if path.stat().st_mode & 0o077:
            raise ConfigError(f"{str(path)!r} is readable by other users; run: chmod 600 {str(path)!r}")
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        raise ConfigError(
            f"Cannot read the HTTP token hash in {str(path)!r}; run `mailgent-mcp token --rotate` to make a new token."
        ) from None


def _is_utf8(text: str) -> bool:
    """False for text holding surrogates (bytes that were not UTF-8, as the environment keeps them)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
