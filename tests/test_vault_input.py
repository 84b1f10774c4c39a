"""Bad input: each case is a clear error that names the fix, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailgent_mcp.errors import InvalidInput, InvalidSecret
from mailgent_mcp.vault.entries import MAX_FIELDS, Vault

from .conftest import SEED_RFC, entries_snapshot

TEN_MB = "x" * (10 * 1024 * 1024)

BAD_PUTS: dict[str, tuple[str, dict[str, object], str | None, type[Exception], str]] = {
    # id: (name, data, type, error, words the message must contain)
    "invalid-base32": ("svc", {"secret": "JBSWY3DPEHPK3PX1"}, None, InvalidSecret, "not base32"),
    "base32-impossible-length": ("svc", {"secret": "JBSWY3DPEHPK3PXPA"}, None, InvalidSecret, "length"),
    "empty-seed": ("svc", {"secret": ""}, None, InvalidSecret, "empty"),
    "wrong-uri-scheme": ("svc", {"secret": f"https://totp/Ex:a?secret={SEED_RFC}"}, None, InvalidSecret, "otpauth://"),
    "uri-unknown-type": ("svc", {"secret": f"otpauth://motp/Ex:a?secret={SEED_RFC}"}, None, InvalidSecret, "totp"),
    "uri-no-secret": ("svc", {"secret": "otpauth://totp/Ex:a?issuer=Ex"}, None, InvalidSecret, "secret"),
    "unknown-algorithm": ("svc", {"secret": f"otpauth://totp/Ex:a?secret={SEED_RFC}&algorithm=MD5"}, None,
                          InvalidSecret, "SHA1"),
    "digits-5": ("svc", {"secret": f"otpauth://totp/Ex:a?secret={SEED_RFC}&digits=5"}, None, InvalidSecret, "6"),
    "digits-11": ("svc", {"secret": f"otpauth://totp/Ex:a?secret={SEED_RFC}&digits=11"}, None, InvalidSecret, "10"),
    "period-0": ("svc", {"secret": f"otpauth://totp/Ex:a?secret={SEED_RFC}&period=0"}, None, InvalidSecret, "period"),
    "ten-mb-value": ("svc", {"notes": TEN_MB}, None, InvalidInput, "limit"),
    "ten-mb-seed": ("svc", {"secret": "A" * (10 * 1024 * 1024)}, None, InvalidInput, "limit"),
    "name-with-newline": ("svc\nevil", {"password": "p"}, None, InvalidInput, "control"),
    "name-with-bidi-override": ("svc\u202eevil", {"password": "p"}, None, InvalidInput, "invisible"),
    "name-too-long": ("n" * 129, {"password": "p"}, None, InvalidInput, "128"),
    "empty-name": ("", {"password": "p"}, None, InvalidInput, "empty"),
    "unknown-type": ("svc", {"password": "p"}, "PASSWORD", InvalidInput, "LOGIN"),
    "field-name-with-space": ("svc", {"api key": "k"}, None, InvalidInput, "letters"),
    "non-string-value": ("svc", {"pin": 1234}, None, InvalidInput, "string"),
    "too-many-fields": ("svc", {f"f{i}": "v" for i in range(MAX_FIELDS + 1)}, None, InvalidInput, "at most"),
}


@pytest.mark.parametrize("case", list(BAD_PUTS), ids=list(BAD_PUTS))
async def test_bad_put_is_a_clear_error_and_writes_nothing(vault: Vault, home: Path, case: str) -> None:
    await vault.put("svc", {"username": "kept", "password": "old", "secret": SEED_RFC}, "LOGIN")
    before = entries_snapshot(home)
    name, data, type_, error, words = BAD_PUTS[case]
    with pytest.raises(error) as err:
        await vault.put(name, data, type_)
    message = str(err.value)
    assert words.lower() in message.lower(), message
    assert len(message) < 400 and message.endswith((".", ")")), message
    assert entries_snapshot(home) == before
    assert (await vault.get("svc")).data == {"username": "kept", "password": "old"}
    assert (await vault.totp("svc", at=1_234_567_890)).code == "005924"
    assert (await vault.audit_tail(3))[-3].outcome == "invalid"


async def test_failed_put_of_a_new_entry_leaves_no_trace(vault: Vault, home: Path) -> None:
    with pytest.raises(InvalidSecret):
        await vault.put("new", {"username": "u", "password": "p", "secret": "not a seed!"}, "LOGIN")
    assert entries_snapshot(home) == []
    assert await vault.list() == []
