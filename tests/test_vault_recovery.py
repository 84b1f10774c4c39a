"""Recovery codes and generated passwords: what a service hands out at enrolment, and what a sign-up needs.

Recovery codes are sealed like every value: vault_get shows how many are left, never the
list; vault_backup_code hands out one and marks it used in the same transaction, so no two
callers (in any processes) get the same one; rolling the row back outside the vault is
caught by the audit chain. Generated passwords are checked by zxcvbn (an independent
strength estimator) and by the character classes the rule asked for.
"""

from __future__ import annotations

import json
import string
import subprocess
import sys
from pathlib import Path

import pytest
import zxcvbn
from mcp import Client

from mailgent_mcp.errors import InvalidInput, NoBackupCodes, VaultCorrupt
from mailgent_mcp.mcp.server import build_server
from mailgent_mcp.mcp.vault_tools import VaultProvider
from mailgent_mcp.settings import Settings
from mailgent_mcp.vault.entries import Vault
from mailgent_mcp.vault.passgen import DEFAULT_SYMBOLS, PasswordRule, generate

from .conftest import clean_env, db_exec, db_rows, error_text, ok, run_cli

CODES = ["3f8a-21bc", "77d0-9e4f", "a1b2-c3d4", "0e9d-8c7b", "5566-7788"]


async def test_codes_are_counted_never_shown_and_used_in_order(vault: Vault) -> None:
    stored = await vault.put("gh", {"username": "u", "backupCodes": CODES})
    assert stored.backup_codes_remaining == 5 and "backupCodes" in stored.fields
    view = await vault.get("gh")
    assert view.backup_codes_remaining == 5 and view.data == {"username": "u"}
    assert not any(code in view.model_dump_json() for code in CODES)
    handed = [await vault.use_backup_code("gh") for _ in CODES]
    assert [h.code for h in handed] == CODES and [h.remaining for h in handed] == [4, 3, 2, 1, 0]
    assert (await vault.get("gh")).backup_codes_remaining == 0
    with pytest.raises(NoBackupCodes, match="no unused recovery code left") as err:
        await vault.use_backup_code("gh")
    assert "data.backupCodes" in str(err.value)
    assert await vault.backup_codes("gh") == ([], CODES)


async def test_codes_given_as_one_string_as_services_print_them(vault: Vault) -> None:
    await vault.put("svc", {"recovery_codes": "3f8a-21bc 77d0-9e4f,\na1b2-c3d4;  3f8a-21bc"})
    assert await vault.backup_codes("svc") == (["3f8a-21bc", "77d0-9e4f", "a1b2-c3d4"], [])


async def test_new_codes_replace_the_old_ones_used_ones_included(vault: Vault) -> None:
    await vault.put("gh", {"backupCodes": CODES[:2]})
    await vault.use_backup_code("gh")
    await vault.put("gh", {"backupCodes": CODES[2:]})
    assert await vault.backup_codes("gh") == (CODES[2:], [])
    await vault.put("gh", {"backupCodes": None})
    assert (await vault.get("gh")).backup_codes_remaining is None
    with pytest.raises(NoBackupCodes, match="has no recovery codes"):
        await vault.use_backup_code("gh")


@pytest.mark.parametrize(("value", "words"), [
    ([], "holds no code"),
    (["ok", "two words"], "number 2 must be 1-64 printable characters without spaces"),
    (["x" * 65], "number 1 must be"),
    ([f"c{i}" for i in range(65)], "At most 64"),
    (12345, "must be a list of codes"),
])
async def test_bad_codes_are_refused_without_echo(vault: Vault, value: object, words: str) -> None:
    with pytest.raises(InvalidInput, match=words) as err:
        await vault.put("gh", {"backupCodes": value})
    assert "two words" not in str(err.value) and "xxxx" not in str(err.value)
    with pytest.raises(InvalidInput, match="kept by the vault"):
        await vault.put("gh", {"usedBackupCodes": ["a"]})


async def test_a_used_code_cannot_be_made_unused_by_rolling_its_row_back(vault: Vault, home: Path) -> None:
    await vault.put("gh", {"backupCodes": CODES})
    before = db_rows(home, "SELECT field, sealed, version FROM entry_fields WHERE field LIKE '%ackupCodes'")
    await vault.use_backup_code("gh")
    for field, sealed, version in before:  # an old copy of the rows, put back outside the vault
        db_exec(home, "UPDATE entry_fields SET sealed = ?, version = ? WHERE field = ?", (sealed, version, field))
    db_exec(home, "DELETE FROM entry_fields WHERE field = 'usedBackupCodes'")
    with pytest.raises(VaultCorrupt, match="does not match its last recorded change"):
        await vault.use_backup_code("gh")


@pytest.mark.slow
def test_processes_using_codes_at_once_never_get_the_same_one(home: Path) -> None:
    codes = [f"code-{i:02d}" for i in range(12)]
    run_cli(home, "vault", "put", "gh", "--backup-codes", stdin=" ".join(codes) + "\n")
    env = clean_env(home)
    procs = [subprocess.Popen([sys.executable, "-m", "mailgent_mcp", "vault", "backup-codes", "gh", "--use", "--json"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
    got = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        got.append(json.loads(out)["code"])
    assert len(set(got)) == 8 and set(got) <= set(codes)
    listed = json.loads(run_cli(home, "vault", "backup-codes", "gh", "--json").stdout)
    assert sorted(listed["used"]) == sorted(got) and len(listed["unused"]) == 4


async def test_the_tools_hand_out_a_code_and_show_only_the_count(home: Path) -> None:
    provider = VaultProvider(home, {})
    try:
        async with Client(build_server(Settings(home=home), provider)) as c:
            put = ok(await c.call_tool("vault_put", {"name": "gh", "data": {"username": "u", "backupCodes": CODES}}))
            got = await c.call_tool("vault_get", {"name": "gh"})
            used = ok(await c.call_tool("vault_backup_code", {"name": "gh"}))
            missing = error_text(await c.call_tool("vault_backup_code", {"name": "plain"}))
    finally:
        await provider.close()
    assert put["backup_codes_remaining"] == 5
    assert ok(got)["backup_codes_remaining"] == 5
    assert not any(code in str(got.content) + str(got.structured_content) for code in CODES)
    assert used == {"name": "gh", "code": CODES[0], "remaining": 4}
    assert "No vault entry named 'plain'" in missing


# -- generated passwords ------------------------------------------------------------------


@pytest.mark.parametrize("rule", [
    PasswordRule(),
    PasswordRule(length=8),
    PasswordRule(length=12, symbols=""),
    PasswordRule(length=16, symbols="!@#"),
    PasswordRule(length=10, lower=False, upper=False, symbols=""),
    PasswordRule(length=128),
])
def test_a_generated_password_meets_its_rule(rule: PasswordRule) -> None:
    for _ in range(50):
        pw = generate(rule)
        assert len(pw) == rule.length
        classes = [(rule.lower, string.ascii_lowercase), (rule.upper, string.ascii_uppercase),
                   (rule.digits, string.digits), (bool(rule.symbols), rule.symbols)]
        for wanted, alphabet in classes:
            assert any(ch in alphabet for ch in pw) == wanted, (pw, alphabet)
        assert set(pw) <= set(string.ascii_letters + string.digits + rule.symbols)


def test_a_default_password_is_strong_and_never_repeats() -> None:
    made = {generate(PasswordRule()) for _ in range(200)}
    assert len(made) == 200
    assert all(zxcvbn.zxcvbn(pw)["score"] == 4 for pw in list(made)[:20])
    assert set("".join(made)) - set(string.ascii_letters + string.digits) <= set(DEFAULT_SYMBOLS)


@pytest.mark.parametrize(("rule", "words"), [
    (PasswordRule(length=7), "8-128 characters"),
    (PasswordRule(length=129), "8-128 characters"),
    (PasswordRule(lower=False, upper=False, digits=False, symbols=""), "at least one class"),
    (PasswordRule(symbols="ab"), "only ASCII punctuation"),
    (PasswordRule(symbols="! "), "only ASCII punctuation"),
])
def test_an_impossible_rule_is_refused(rule: PasswordRule, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        generate(rule)


async def test_vault_put_generates_stores_and_returns_the_password_once(home: Path) -> None:
    provider = VaultProvider(home, {})
    try:
        async with Client(build_server(Settings(home=home), provider)) as c:
            made = ok(await c.call_tool("vault_put", {"name": "new", "data": {"username": "agent@example.com"},
                                                      "generate_password": {"length": 24, "symbols": "-_"}}))
            view = ok(await c.call_tool("vault_get", {"name": "new"}))
            later = ok(await c.call_tool("vault_put", {"name": "new", "data": {"notes": "n"}}))
            both = error_text(await c.call_tool("vault_put", {"name": "x", "data": {"password": "hunter2hunter2"},
                                                              "generate_password": {}}))
    finally:
        await provider.close()
    pw = str(made["generated_password"])
    assert len(pw) == 24 and set(pw) <= set(string.ascii_letters + string.digits + "-_")
    assert view["data"] == {"username": "agent@example.com", "password": pw} and made["type"] == "LOGIN"
    assert later.get("generated_password") is None  # shown once, by the put that made it
    assert "either data.password or generate_password" in both and "hunter2" not in both
    log = run_cli(home, "audit", "tail", "--json").stdout
    assert pw not in log


def test_the_cli_generates_a_password(home: Path) -> None:
    out = run_cli(home, "vault", "put", "svc", "--username", "u", "--generate-password", "12", "--symbols", "")
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("Generated password"))
    pw = line.rsplit(" ", 1)[1]
    assert len(pw) == 12 and pw.isalnum()
    assert run_cli(home, "vault", "get", "svc", "--field", "password").stdout.strip() == pw


async def test_empty_data_that_is_no_object_leaves_the_codes_alone(vault: Vault) -> None:
    await vault.put("gh", {"backupCodes": CODES[:2]})
    await vault.put("gh", [])  # type: ignore[arg-type]  # an empty list, as a loose caller may send
    assert (await vault.get("gh")).backup_codes_remaining == 2
