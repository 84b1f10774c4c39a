"""Security properties of the vault, each named for what it guarantees.

A sentinel password and a sentinel seed are stored; they must never appear in the data
folder's raw bytes, in any error text, log line or CLI output (except the one explicit
`vault get --field password`), on any success or failure path.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from mailgent_mcp.errors import MailgentError, VaultCorrupt
from mailgent_mcp.vault.entries import Vault

from .conftest import clean_env, db_exec, db_rows, run_cli

SENTINEL_PASSWORD = "SENTINEL-PASSWORD-" + secrets.token_hex(8)
SENTINEL_SEED_BYTES = b"SENTINEL-SEED-" + secrets.token_bytes(10)
SENTINEL_SEED = base64.b32encode(SENTINEL_SEED_BYTES).decode().rstrip("=")


def _forms() -> list[bytes]:
    """Every shape in which a sentinel could leak: text, base32 either case, hex, raw bytes."""
    return [
        SENTINEL_PASSWORD.encode(), SENTINEL_SEED.encode(), SENTINEL_SEED.lower().encode(),
        SENTINEL_SEED_BYTES, SENTINEL_SEED_BYTES.hex().encode(), b"SENTINEL",
    ]


def assert_no_sentinel(text: str | bytes, where: str) -> None:
    """Fail when any form of either sentinel appears in text."""
    blob = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    for form in _forms():
        assert form not in blob, f"a sentinel leaked into {where}"


async def _store_sentinels(home: Path) -> None:
    async with await Vault.open(home, environ={}) as v:
        await v.put("bank", {"username": "agent", "password": SENTINEL_PASSWORD, "secret": SENTINEL_SEED}, "LOGIN")


async def test_data_folder_never_holds_a_secret_in_clear(home: Path) -> None:
    async with await Vault.open(home, environ={}) as v:
        await v.put("bank", {"username": "agent", "password": SENTINEL_PASSWORD, "secret": SENTINEL_SEED}, "LOGIN")
        await v.totp("bank")
        await v.get("bank")
        # While open: WAL and SHM files hold the newest pages.
        for path in sorted(home.iterdir()):
            assert_no_sentinel(path.read_bytes(), path.name)
    for path in sorted(home.iterdir()):  # after close and checkpoint
        assert_no_sentinel(path.read_bytes(), path.name)


async def test_sealed_value_moved_to_another_entry_fails_to_open(home: Path) -> None:
    async with await Vault.open(home, environ={}) as v:
        await v.put("a", {"password": SENTINEL_PASSWORD}, "LOGIN")
        await v.put("b", {"password": "bbb"}, "LOGIN")
    db_exec(home, "UPDATE entry_fields SET sealed = (SELECT sealed FROM entry_fields f JOIN entries e ON e.id = f.entry_id "
                  "WHERE e.name = 'a' AND f.field = 'password') "
                  "WHERE entry_id = (SELECT id FROM entries WHERE name = 'b') AND field = 'password'")
    async with await Vault.open(home, environ={}) as v:
        with pytest.raises(VaultCorrupt, match="edited, rolled back") as err:
            await v.get("b")
        assert_no_sentinel(str(err.value), "the error")
        assert (await v.get("a")).data["password"] == SENTINEL_PASSWORD


async def test_sealed_value_moved_to_another_field_fails_to_open(home: Path) -> None:
    async with await Vault.open(home, environ={}) as v:
        await v.put("a", {"password": SENTINEL_PASSWORD, "notes": "n"}, "LOGIN")
    db_exec(home, "UPDATE entry_fields SET sealed = (SELECT sealed FROM entry_fields WHERE field = 'password') "
                  "WHERE field = 'notes'")
    async with await Vault.open(home, environ={}) as v:
        with pytest.raises(VaultCorrupt, match="'a'"):
            await v.get("a")


async def test_renamed_entry_fails_to_open(home: Path) -> None:
    async with await Vault.open(home, environ={}) as v:
        await v.put("a", {"password": SENTINEL_PASSWORD}, "LOGIN")
    db_exec(home, "UPDATE entries SET name = 'b' WHERE name = 'a'")
    async with await Vault.open(home, environ={}) as v:
        with pytest.raises(VaultCorrupt):
            await v.get("b")


@pytest.mark.parametrize("offset", [0, 5, 20, -1], ids=["version-byte", "nonce", "ciphertext", "tag"])
async def test_tampered_byte_fails_to_open(home: Path, offset: int) -> None:
    await _store_sentinels(home)
    [(blob,)] = db_rows(home, "SELECT sealed FROM entry_fields WHERE field = 'password'")
    assert isinstance(blob, bytes)
    tampered = bytearray(blob)
    tampered[offset] ^= 0x01
    db_exec(home, "UPDATE entry_fields SET sealed = ? WHERE field = 'password'", (bytes(tampered),))
    async with await Vault.open(home, environ={}) as v:
        with pytest.raises(VaultCorrupt):
            await v.get("bank")
        assert [r.outcome for r in await v.audit_tail(1)] == ["corrupt"]


async def test_tampered_seed_fails_to_give_a_code(home: Path) -> None:
    await _store_sentinels(home)
    [(blob,)] = db_rows(home, "SELECT sealed FROM entry_fields WHERE field = 'secret'")
    assert isinstance(blob, bytes)
    db_exec(home, "UPDATE entry_fields SET sealed = ? WHERE field = 'secret'", (blob[:-1] + bytes([blob[-1] ^ 1]),))
    async with await Vault.open(home, environ={}) as v:
        with pytest.raises(VaultCorrupt):
            await v.totp("bank")


# -- no secret in any error or log line ---------------------------------------------------

Failure = Callable[[Vault], Awaitable[object]]

FAILURES: dict[str, Failure] = {
    "bad-base32-seed": lambda v: v.put("x", {"secret": SENTINEL_SEED + "1"}),
    "seed-too-short": lambda v: v.put("x", {"secret": SENTINEL_SEED[:8]}),
    "bad-uri": lambda v: v.put("x", {"secret": f"otpauth://totp/X:y?secret={SENTINEL_SEED}&algorithm=MD5"}),
    "uri-digits-11": lambda v: v.put("x", {"secret": f"otpauth://totp/X:y?secret={SENTINEL_SEED}&digits=11"}),
    "uri-duplicate-secret": lambda v: v.put(
        "x", {"secret": f"otpauth://totp/X:y?secret={SENTINEL_SEED}&secret={SENTINEL_SEED}"}),
    "hotp-uri": lambda v: v.put("x", {"secret": f"otpauth://hotp/X:y?secret={SENTINEL_SEED}&counter=1"}),
    "oversized-password": lambda v: v.put("x", {"password": SENTINEL_PASSWORD * 5000}),
    "bad-field-name": lambda v: v.put("x", {"pass word": SENTINEL_PASSWORD}),
    "name-with-newline": lambda v: v.put("x\ny", {"password": SENTINEL_PASSWORD}),
    "if-absent-on-existing": lambda v: v.put("bank", {"password": SENTINEL_PASSWORD}, if_absent=True),
    "totp-missing": lambda v: v.totp("nope"),
    "totp-no-seed": lambda v: v.totp("plain"),
    "totp-min-remaining-too-big": lambda v: v.totp("bank", min_remaining=99),
    "get-missing": lambda v: v.get("nope"),
    "delete-missing": lambda v: v.delete("nope"),
}


@pytest.mark.parametrize("failure", list(FAILURES), ids=list(FAILURES))
async def test_no_secret_in_errors_or_logs(home: Path, failure: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await _store_sentinels(home)
    async with await Vault.open(home, environ={}) as v:
        await v.put("plain", {"password": SENTINEL_PASSWORD})
        with pytest.raises(MailgentError) as err:
            await FAILURES[failure](v)
        assert str(err.value) and "\n" not in str(err.value)
        assert_no_sentinel(str(err.value), "str(error)")
        assert_no_sentinel(repr(err.value), "repr(error)")
        assert err.value.__cause__ is None or not isinstance(err.value.__cause__, ValueError)
        assert_no_sentinel(caplog.text, "the log")
        for row in await v.audit_tail(50):
            assert_no_sentinel(row.model_dump_json(), "the audit log")


async def test_no_secret_in_success_paths_logs_or_results(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with await Vault.open(home, environ={}) as v:
        info = await v.put("bank", {"password": SENTINEL_PASSWORD, "secret": SENTINEL_SEED}, "LOGIN")
        code = await v.totp("bank")
        listing = await v.list()
        view = await v.get("bank")
        for shown in (info.model_dump_json(), code.model_dump_json(), repr(listing), repr(v)):
            assert_no_sentinel(shown, "a result")
        assert view.data["password"] == SENTINEL_PASSWORD  # vault_get is the one place a password comes back
        assert_no_sentinel(view.model_dump_json().replace(SENTINEL_PASSWORD, ""), "get's other fields")
    assert_no_sentinel(caplog.text, "the log")


# -- the CLI -------------------------------------------------------------------------------

CLI_CALLS: dict[str, tuple[list[str], str]] = {
    "put": (["vault", "put", "bank2", "--type", "login", "--username", "u", "--password", "--secret"],
            f"{SENTINEL_PASSWORD}\n{SENTINEL_SEED}\n"),
    "put-bad-seed": (["vault", "put", "bad", "--secret"], f"{SENTINEL_SEED}0\n"),
    "put-bad-uri": (["vault", "put", "bad", "--secret"], f"otpauth://totp/a:b?secret={SENTINEL_SEED}&period=0\n"),
    "get": (["vault", "get", "bank"], ""),
    "get-json": (["vault", "get", "bank", "--json"], ""),
    "get-seed-field": (["vault", "get", "bank", "--field", "secret"], ""),
    "list": (["vault", "list", "--json"], ""),
    "totp": (["vault", "totp", "bank", "--json"], ""),
    "totp-missing": (["vault", "totp", "nope"], ""),
    "audit-tail": (["audit", "tail", "--json"], ""),
    "import-bad": (["vault", "import"], f"otpauth://totp/a:b?secret={SENTINEL_SEED}&digits=5\n"),
    "verbose-put-bad": (["-v", "vault", "put", "bad", "--secret"], f"{SENTINEL_SEED}8\n"),
}


@pytest.mark.parametrize("call", list(CLI_CALLS), ids=list(CLI_CALLS))
async def test_no_secret_in_cli_output(home: Path, call: str) -> None:
    await _store_sentinels(home)
    args, stdin = CLI_CALLS[call]
    result = run_cli(home, *args, stdin=stdin)
    assert result.returncode in (0, 2, 4), result.stderr
    assert_no_sentinel(result.stdout, "stdout")
    assert_no_sentinel(result.stderr, "stderr")
    if result.returncode:
        assert result.stderr.startswith("mailgent-mcp: ")


def test_cli_prints_a_password_only_when_asked_for_that_field(home: Path) -> None:
    env = clean_env(home)
    assert run_cli(home, "vault", "put", "bank", "--password", stdin=SENTINEL_PASSWORD + "\n", env=env).returncode == 0
    result = run_cli(home, "vault", "get", "bank", "--field", "password", env=env)
    assert result.returncode == 0 and result.stdout == SENTINEL_PASSWORD + "\n"
