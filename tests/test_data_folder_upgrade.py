"""Data folders of earlier releases open with everything in them, and the schema upgrades in place.

tests/data/home-schema-11 was made by the code before its storage was split by domain (one
migration list, schema version 11 in PRAGMA user_version); its README lists what is in it.
The expected values below are from that list, and the TOTP codes from oathtool.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from mailgent_mcp.db.migrations import LEGACY, RECORDED
from mailgent_mcp.db.sqlite import open_store
from mailgent_mcp.errors import ConfigError
from mailgent_mcp.inbox.cache import Inbox
from mailgent_mcp.inbox.store import INBOX_MIGRATIONS, InboxStore, MessageQuery
from mailgent_mcp.vault.entries import Vault
from mailgent_mcp.vault.store import VAULT_MIGRATIONS, VaultStore

from .conftest import DATA, LATEST_STEP, db_exec, db_rows, run_cli, schema_steps
from .helpers.processes import Spawn, open_together, spawn  # noqa: F401 - spawn: a fixture

MADE_AT = 1_800_000_000.0
# oathtool --totp -b GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ -N @1800000000 (and @1800000030)
CODE_AT_MADE, NEXT_CODE = "768147", "050219"


def copy_of(name: str, home: Path) -> Path:
    home.mkdir(mode=0o700)
    for file in ("vault.db", "master.key"):
        (home / file).write_bytes((DATA / name / file).read_bytes())
        (home / file).chmod(0o600)
    return home


def schema_of(home: Path) -> list[tuple[object, ...]]:
    return db_rows(home, "SELECT type, name, sql FROM sqlite_master ORDER BY name")


def dump(home: Path) -> list[str]:
    """Every schema object and row of the file, as SQL."""
    conn = sqlite3.connect(home / "vault.db")
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


async def test_a_schema_11_folder_opens_with_every_entry_message_and_audit_row(home: Path) -> None:
    copy_of("home-schema-11", home)
    assert db_rows(home, "PRAGMA user_version") == [(11,)]
    async with await Vault.open(home, environ={}, clock=lambda: MADE_AT) as vault:
        assert [e.name for e in await vault.list()] == ["aws/prod", "github", "notes/recovery"]
        github = await vault.get("github")
        assert github.data == {"username": "agent@example.com", "password": "current-password"}
        assert (github.type, github.has_totp) == ("LOGIN", True)
        assert github.fields == ["backupCodes", "password", "secret", "username"]
        assert github.backup_codes_remaining == 2
        aws, notes = await vault.get("aws/prod"), await vault.get("notes/recovery")
        assert (aws.type, aws.fields, aws.data) == ("API_KEY", ["api_key"], {"api_key": "current-api-key"})
        assert (notes.type, notes.fields, notes.data) == ("NOTE", ["notes"], {"notes": "kept"})
        assert await vault.backup_codes("github") == (["bbbb-2222", "cccc-3333"], ["aaaa-1111"])
        # The ledger came along: the step handed out before is not handed out again.
        assert (await vault.totp("github", at=MADE_AT, unused_only=False)).code == CODE_AT_MADE
        assert (await vault.totp("github", at=MADE_AT)).code == NEXT_CODE
        report = await vault.audit_verify()
        assert report.ok and report.entries == 3, report
    rows = db_rows(home, "SELECT seq, op, entry, actor FROM audit ORDER BY seq")
    assert rows[:7] == [(1, "init", None, "cli"), (2, "put", "github", "cli"), (3, "put", "aws/prod", "cli"),
                        (4, "put", "notes/recovery", "cli"), (5, "get", "github", "cli"),
                        (6, "backup_code", "github", "cli"), (7, "totp", "github", "cli")]

    async with await Inbox.open(home) as inbox:
        by_subject = {m.subject: m for m in await inbox.read(MessageQuery(limit=10))}
        assert set(by_subject) == {"Your code", "Verify your email"}
        local, work = by_subject["Your code"], by_subject["Verify your email"]
        assert (local.account, local.seen, [c["code"] for c in local.codes]) == ("local", False, ["482913"])
        assert (work.account, work.mailbox, work.seen) == ("work", "INBOX", True)
        assert local.labels == work.labels == []  # the fixture labels none; the table takes one:
        await inbox.mark([work.id], label="kept")
        assert [m.subject for m in await inbox.read(MessageQuery(label="kept"))] == ["Verify your email"]
        # Marked read in the cache and not yet stored on the IMAP server: still queued for it.
        assert await inbox.pending_seen("work", "INBOX") == [(work.id, 7, 42, True)]
        assert [link["url"] for link in work.links] == ["https://example.org/verify?t=abc123"]
        assert await inbox.mailbox_state("work", "INBOX") is None  # the fixture cached it without a sync
        assert await inbox.issued_at("agent+x@example.net") == MADE_AT

    # Both domains at their newest step, each of the old versions' steps recorded by name.
    assert db_rows(home, "PRAGMA user_version") == [(RECORDED,)]
    assert schema_steps(home) == LATEST_STEP
    recorded = set(db_rows(home, "SELECT domain, step, name FROM schema_migrations"))
    assert set(LEGACY.values()) <= recorded
    verify = run_cli(home, "audit", "verify")
    assert verify.returncode == 0, verify.stderr


async def test_opening_an_upgraded_folder_again_changes_nothing(home: Path) -> None:
    copy_of("home-schema-11", home)
    async with await Vault.open(home, environ={}), await Inbox.open(home):
        pass
    upgraded = dump(home)
    assert any("schema_migrations" in line for line in upgraded)
    async with await Vault.open(home, environ={}), await Inbox.open(home):
        pass
    assert dump(home) == upgraded


def test_the_legacy_steps_are_the_sets_steps_by_name() -> None:
    """An old file's versions map onto steps of the sets that exist, with their names."""
    sets = {s.domain: s for s in (VAULT_MIGRATIONS, INBOX_MIGRATIONS)}
    for domain, step, name in LEGACY.values():
        assert sets[domain].steps[step - 1].name == name


def test_each_domain_creates_only_its_own_tables(tmp_path: Path) -> None:
    open_store(tmp_path / "inbox-only.db", InboxStore).close()
    open_store(tmp_path / "vault-only.db", VaultStore).close()

    def tables(path: Path) -> set[str]:
        with closing(sqlite3.connect(path)) as conn:
            return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def steps(path: Path) -> dict[str, int]:
        with closing(sqlite3.connect(path)) as conn:
            return dict(conn.execute("SELECT domain, max(step) FROM schema_migrations GROUP BY domain").fetchall())

    assert {"messages", "pollers", "issued_addresses"} <= tables(tmp_path / "inbox-only.db")
    assert not {"entries", "keyring", "audit"} & tables(tmp_path / "inbox-only.db")
    assert {"entries", "keyring", "audit", "totp_steps"} <= tables(tmp_path / "vault-only.db")
    assert "messages" not in tables(tmp_path / "vault-only.db")
    assert steps(tmp_path / "inbox-only.db") == {"inbox": LATEST_STEP["inbox"]}
    assert steps(tmp_path / "vault-only.db") == {"vault": LATEST_STEP["vault"]}
    # The other domain's steps are added in place when it opens the file.
    open_store(tmp_path / "inbox-only.db", VaultStore).close()
    assert {"entries", "messages"} <= tables(tmp_path / "inbox-only.db")
    assert steps(tmp_path / "inbox-only.db") == LATEST_STEP


@pytest.mark.parametrize("newer", ["vault step", "inbox step", "version"])
async def test_a_folder_from_a_newer_release_is_refused_and_left_alone(home: Path, newer: str) -> None:
    copy_of("home-schema-11", home)
    async with await Vault.open(home, environ={}):
        pass
    if newer == "version":
        db_exec(home, "PRAGMA user_version = 12")
    else:
        db_exec(home, "INSERT INTO schema_migrations VALUES (?, ?, 'from-a-newer-release', 0)",
                (newer.split()[0], LATEST_STEP[newer.split()[0]] + 1))
    before = dump(home)
    opens = {"vault step": lambda: Vault.open(home, environ={}), "inbox step": lambda: Inbox.open(home),
             "version": lambda: Vault.open(home, environ={})}
    with pytest.raises(ConfigError, match="newer mailgent-mcp") as caught:
        await opens[newer]()
    assert "upgrade mailgent-mcp" in str(caught.value)
    result = run_cli(home, *(["inbox", "read"] if newer == "inbox step" else ["vault", "list"]))
    assert result.returncode != 0 and "upgrade mailgent-mcp" in result.stderr
    assert dump(home) == before


async def test_a_step_of_another_build_is_refused(home: Path) -> None:
    async with await Vault.open(home, environ={}):
        pass
    db_exec(home, "UPDATE schema_migrations SET name = 'something-else' WHERE domain = 'vault' AND step = 2")
    with pytest.raises(ConfigError, match="another build"):
        await Vault.open(home, environ={})


def test_processes_opening_a_schema_11_folder_at_once_upgrade_it_once(home: Path, spawn: Spawn) -> None:
    copy_of("home-schema-11", home)
    modes = ["open", "inbox"] * 2
    assert open_together(spawn, home, modes) == [["3"], ["2"]] * 2
    assert schema_steps(home) == LATEST_STEP
    assert db_rows(home, "SELECT count(*) FROM schema_migrations") == [(sum(LATEST_STEP.values()),)]
    assert set(LEGACY.values()) <= set(db_rows(home, "SELECT domain, step, name FROM schema_migrations"))
