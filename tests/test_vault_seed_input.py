"""A seed goes in once and never comes out, whatever the caller calls it; secrets never come back in errors.

Agents do not always use `data.secret`: they pass the seed as `totp_secret`, `Secret`,
`seed`, `otpauth`, or an otpauth:// URI inside `notes`, or swap a key and its value. Over a
real stdio MCP server, each such put either stores the seed as the seed (vault_get never
returns it, vault_totp gives its codes) or is refused without quoting what was sent.
Also: passphrases (empty, weak, unconfirmed) and text that is not UTF-8, through the CLI.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from .conftest import SEED_RFC, clean_env, db_rows, error_text, ok, run_cli

SEED_TEXT = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
URI = f"otpauth://totp/Example:agent?secret={SEED_TEXT}&issuer=Example"


def _params(home: Path) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "mailgent_mcp", "serve"], env=clean_env(home))


@pytest.mark.parametrize("field", ["Secret", "totp_secret", "seed", "otpauth", "TOTP", "mfa-seed", "2fa_secret"])
@pytest.mark.parametrize("value", [SEED_TEXT, URI], ids=["base32", "uri"])
async def test_a_seed_under_another_field_name_is_stored_as_the_seed(home: Path, field: str, value: str) -> None:
    async with Client(_params(home), mode="legacy") as client:
        put = ok(await client.call_tool("vault_put", {"name": "svc", "data": {"username": "u", field: value}}))
        assert put["has_totp"] and field not in put["fields"] and "secret" in put["fields"]
        got = await client.call_tool("vault_get", {"name": "svc"})
        assert SEED_TEXT not in str(got.structured_content) + str(got.content)
        assert ok(got)["data"] == {"username": "u"}
        assert ok(await client.call_tool("vault_totp", {"name": "svc"}))["code"]


@pytest.mark.parametrize("field", ["notes", "backup", "password"])
async def test_an_otpauth_uri_in_another_field_is_refused_without_echo(home: Path, field: str) -> None:
    async with Client(_params(home), mode="legacy") as client:
        result = await client.call_tool("vault_put", {"name": "svc", "data": {"username": "u",
                                                                             field: f"my 2fa: {URI} (keep)"}})
        text = error_text(result)
    assert "otpauth:// URI" in text and "data.secret" in text and "Field number 2" in text
    assert SEED_TEXT not in text and field not in text.replace("data.secret", "")
    assert db_rows(home, "SELECT count(*) FROM entries") == [(0,)]


async def test_a_seed_given_as_a_field_name_is_refused_and_never_echoed(home: Path) -> None:
    async with Client(_params(home), mode="legacy") as client:
        swapped = error_text(await client.call_tool("vault_put", {"name": "svc", "data": {SEED_TEXT: "secret"}}))
        # A value of the wrong type under a key that is a secret: the SDK's validation error path.
        typed = error_text(await client.call_tool("vault_put", {"name": "svc", "data": {SEED_TEXT: 123}}))
        listed = await client.call_tool("vault_list", {})
    assert "looks like a secret value" in swapped
    assert "data.<a field>" in typed
    for text in (swapped, typed, str(listed.structured_content)):
        assert SEED_TEXT not in text and SEED_TEXT.lower() not in text.lower()
    assert db_rows(home, "SELECT count(*) FROM entries") == [(0,)]


async def test_two_seed_fields_are_refused(home: Path) -> None:
    async with Client(_params(home), mode="legacy") as client:
        text = error_text(await client.call_tool("vault_put", {"name": "svc",
                                                               "data": {"secret": SEED_RFC, "totp_secret": SEED_TEXT}}))
    assert "Give the TOTP seed once" in text and SEED_TEXT not in text and SEED_RFC not in text


# -- passphrases -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "   "], ids=["empty", "blank"])
def test_an_empty_passphrase_is_refused_not_replaced_by_a_key_file(home: Path, value: str) -> None:
    result = run_cli(home, "vault", "put", "x", "--notes", "n", env=clean_env(home, MAILGENT_PASSPHRASE=value))
    assert result.returncode == 7 and "MAILGENT_PASSPHRASE is set but empty" in result.stderr
    assert not (home / "master.key").exists()
    assert not (home / "vault.db").exists() or db_rows(home, "SELECT count(*) FROM keyring") == [(0,)]


@pytest.mark.parametrize("weak", ["1", "zzzzzzzzzzzz", "letmein2024", "qwertyuiop"])
def test_a_weak_passphrase_cannot_seal_a_new_vault(home: Path, weak: str) -> None:
    result = run_cli(home, "vault", "put", "x", "--notes", "n", env=clean_env(home, MAILGENT_PASSPHRASE=weak))
    assert result.returncode == 7 and "too easy to guess" in result.stderr
    assert len(weak) < 2 or weak not in result.stderr
    assert db_rows(home, "SELECT count(*) FROM keyring") == [(0,)]


def test_passwd_from_a_pipe_needs_the_passphrase_twice_and_yes_before_deleting_the_key(home: Path) -> None:
    assert run_cli(home, "vault", "put", "x", "--password", stdin="p\n").returncode == 0
    key = (home / "master.key").read_bytes()
    one_line = run_cli(home, "vault", "passwd", "--to", "passphrase", "--yes", stdin="plum velvet harbor cactus\n")
    no_yes = run_cli(home, "vault", "passwd", "--to", "passphrase", stdin="plum velvet harbor cactus\n" * 2)
    differ = run_cli(home, "vault", "passwd", "--to", "passphrase", "--yes",
                     stdin="plum velvet harbor cactus\nplum velvet harbor cactvs\n")
    weak = run_cli(home, "vault", "passwd", "--to", "passphrase", "--yes", stdin="hunter2\nhunter2\n")
    assert one_line.returncode == 2 and "ended" in one_line.stderr
    assert no_yes.returncode == 2 and "--yes" in no_yes.stderr
    assert differ.returncode == 2 and "differ" in differ.stderr
    assert weak.returncode == 2 and "too easy to guess" in weak.stderr and "hunter2" not in weak.stderr
    assert (home / "master.key").read_bytes() == key  # every refusal left the key file and the vault alone
    assert run_cli(home, "vault", "list").returncode == 0


def test_passwd_at_a_terminal_asks_twice_and_confirms_deleting_the_key(home: Path) -> None:
    assert run_cli(home, "vault", "put", "x", "--password", stdin="p\n").returncode == 0
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI on a real terminal
        os.execve(sys.executable, [sys.executable, "-m", "mailgent_mcp", "vault", "passwd", "--to", "passphrase"],
                  clean_env(home))
    answers = [(b"Continue? [y/N]", b"y\n"), (b"New passphrase:", b"plum velvet harbor cactus\n"),
               (b"(again):", b"plum velvet harbor cactus\n")]
    seen = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 60)
        assert ready, f"the CLI stopped answering: {seen!r}"
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break  # the child closed the terminal
        if not chunk:
            break
        seen += chunk
        if answers and answers[0][0] in seen:
            os.write(fd, answers.pop(0)[1])
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert not answers and b"plum" not in seen  # every prompt came, and the passphrase was not echoed
    assert not (home / "master.key").exists()
    env = clean_env(home, MAILGENT_PASSPHRASE="plum velvet harbor cactus")
    assert run_cli(home, "vault", "get", "x", "--field", "password", env=env).stdout == "p\n"


# -- text that is not UTF-8 ---------------------------------------------------------------------


def test_a_password_that_is_not_utf8_is_refused_at_the_cli(home: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "mailgent_mcp", "vault", "put", "x", "--password"],
                            input=b"caf\xe9-latin1\n", capture_output=True, env=clean_env(home), timeout=60)
    assert result.returncode == 2, result.stderr
    assert b"UTF-8" in result.stderr and b"nothing was stored" in result.stderr.lower() and b"caf" not in result.stderr
    assert db_rows(home, "SELECT count(*) FROM entries") == [(0,)]


async def test_a_value_with_lone_surrogates_is_refused_so_it_can_always_be_read_back(home: Path) -> None:
    # What the CLI reads from a non-UTF-8 stdin in the C locale (surrogateescape), given to the
    # vault directly: refused here, whichever caller sends it. (Over MCP such a string does not
    # get past the SDK's JSON parsing.)
    from mailgent_mcp.errors import InvalidInput
    from mailgent_mcp.vault.entries import Vault

    async with await Vault.open(home, environ={}) as vault:
        with pytest.raises(InvalidInput, match="not valid text"):
            await vault.put("x", {"password": "caf\udce9"})
        assert await vault.list() == []
