"""`mailgent-mcp inbox ...` as a real subprocess against a real Dovecot."""

from __future__ import annotations

import json
from pathlib import Path

from mailgent_mcp.inbox.accounts import load_accounts

from .conftest import clean_env, db_rows, run_cli
from .dovecot import Dovecot, dovecot  # noqa: F401 - fixture
from .helpers.answers import inner_text
from .test_imap_read_state import server_seen
from .test_imap_sync import mail


def add_args(server: Dovecot) -> list[str]:
    return ["inbox", "add", "work", "--host", server.host, "--port", str(server.imap_port), "--security", "starttls",
            "--username", server.user, "--ca", str(server.ca_file)]


def test_add_checks_the_login_and_a_wrong_password_writes_nothing(home: Path, dovecot: Dovecot) -> None:
    refused = run_cli(home, *add_args(dovecot), stdin="wrong password\n")
    assert refused.returncode == 2 and "refused the login" in refused.stderr  # bad input: not "vault locked" (3)
    assert "wrong password" not in refused.stderr + refused.stdout
    assert not (home / "config.toml").exists()
    added = run_cli(home, *add_args(dovecot), stdin=dovecot.password + "\n")
    assert added.returncode == 0, added.stderr
    assert "Logged in to" in added.stdout and "imap/work" in added.stdout
    [account] = load_accounts(home, {})
    assert (account.name, account.security, account.username) == ("work", "starttls", dovecot.user)
    assert dovecot.password not in (home / "config.toml").read_text()
    listed = json.loads(run_cli(home, "inbox", "list", "--json").stdout)
    assert [a["name"] for a in listed] == ["work"]


def test_sync_read_mark_purge_remove(home: Path, dovecot: Dovecot) -> None:
    assert run_cli(home, *add_args(dovecot), stdin=dovecot.password + "\n").returncode == 0
    for subject in ("alpha", "beta", "gamma"):
        dovecot.deliver(mail(subject))
    synced = run_cli(home, "inbox", "sync")
    assert synced.returncode == 0, synced.stderr
    assert "work: 3 new message(s)" in synced.stdout and "3/3" in synced.stderr  # the progress line
    assert "work: 0 new message(s)" in run_cli(home, "inbox", "sync").stdout

    messages = json.loads(run_cli(home, "inbox", "read", "--json").stdout)
    assert [m["subject"] for m in messages] == ["gamma", "beta", "alpha"]
    assert "123456" in inner_text(messages[0]["extractedText"]) and not messages[0]["seen"]
    only = json.loads(run_cli(home, "inbox", "read", "--subject", "bet", "--mark-read", "--json").stdout)
    assert [m["subject"] for m in only] == ["beta"]
    unread = json.loads(run_cli(home, "inbox", "read", "--unread", "--json").stdout)
    assert [m["subject"] for m in unread] == ["gamma", "alpha"]
    text = run_cli(home, "inbox", "read", "--from", "service.example").stdout
    assert "no-reply@service.example" in text and text.count("\n") == 3

    assert run_cli(home, "inbox", "sync").returncode == 0  # stores the mark on the server
    assert server_seen(dovecot) == {"alpha": False, "beta": True, "gamma": False}

    status = run_cli(home, "inbox", "status")
    assert status.returncode == 0 and "work" in status.stdout and "not polled" in status.stdout
    assert "last sync never" not in status.stdout  # `inbox sync` counts
    [row] = json.loads(run_cli(home, "inbox", "status", "--json").stdout)
    assert row["last_sync"] and 0 <= row["lag_seconds"] < 600

    purged = run_cli(home, "inbox", "purge", "--older-than", "0s")
    assert purged.returncode == 0 and "Purged 3" in purged.stdout
    removed = run_cli(home, "inbox", "remove", "work")
    assert removed.returncode == 0 and load_accounts(home, {}) == []
    assert db_rows(home, "SELECT COUNT(*) FROM entries WHERE name = 'imap/work'") == [(0,)]


def test_bad_input_is_a_clear_error(home: Path) -> None:
    bad_name = run_cli(home, "inbox", "add", "bad name", "--host", "h", "--username", "u", "--no-check", stdin="p\n")
    assert bad_name.returncode == 2 and "Account names" in bad_name.stderr
    assert run_cli(home, "inbox", "remove", "nope").returncode == 2
    assert "an age" in run_cli(home, "inbox", "purge", "--older-than", "soon").stderr
    env = clean_env(home, MAILGENT_IMAP_URL="http://example.test")
    assert run_cli(home, "inbox", "list", env=env).returncode == 7


def _cache_with_ages(home: Path, days_ago: list[float]) -> None:
    import asyncio
    import time

    from mailgent_mcp.inbox.cache import Inbox
    from mailgent_mcp.inbox.parse import parse_message

    async def fill() -> None:
        for n, age in enumerate(days_ago):
            async with await Inbox.open(home, clock=lambda age=age: time.time() - age * 86400) as inbox:
                await inbox.add("acct", "INBOX", 1, n + 1, parse_message(mail(f"{age} days").encode()))

    asyncio.run(fill())


def test_purge_without_an_age_uses_the_retention(home: Path) -> None:
    _cache_with_ages(home, [40, 20, 0])
    purged = run_cli(home, "inbox", "purge")  # the default retention, 30 days
    assert purged.returncode == 0 and "Purged 1" in purged.stdout and "30d (the retention)" in purged.stdout
    (home / "config.toml").write_text('[inbox]\nretention = "7d"\n')
    assert "Purged 1" in run_cli(home, "inbox", "purge").stdout
    assert db_rows(home, "SELECT subject FROM messages") == [("0 days",)]
    off = run_cli(home, "inbox", "purge", env=clean_env(home, MAILGENT_RETENTION="off"))
    assert off.returncode == 2 and "--older-than" in off.stderr
    bad = run_cli(home, "inbox", "purge", env=clean_env(home, MAILGENT_RETENTION="a while"))
    assert bad.returncode == 7 and "MAILGENT_RETENTION" in bad.stderr and "30d" in bad.stderr
    assert db_rows(home, "SELECT subject FROM messages") == [("0 days",)]
