"""One poller per account across server processes, and every process sees new mail."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailgent_mcp.errors import ConfigError
from mailgent_mcp.inbox.accounts import (
    load_accounts,
    password_entry,
    remove_account,
    save_account,
)
from mailgent_mcp.inbox.cache import Inbox
from mailgent_mcp.inbox.imap import ImapAccount
from mailgent_mcp.inbox.parse import parse_message
from mailgent_mcp.inbox.store import MessageQuery
from mailgent_mcp.vault.entries import Vault

from .conftest import clean_env, db_rows
from .dovecot import Dovecot, dovecot  # noqa: F401 - fixture
from .test_imap_sync import mail


async def test_a_waiter_learns_of_mail_cached_by_another_connection_within_100_ms(home: Path) -> None:
    async with await Inbox.open(home) as watcher, await Inbox.open(home) as writer:
        waiting = asyncio.create_task(watcher.wait_for_mail(5.0))
        await asyncio.sleep(0.2)  # the waiter is in its loop
        start = time.monotonic()
        await writer.add("acct", "INBOX", 1, 1, parse_message(mail("hello").encode()))
        assert await waiting is True
        assert time.monotonic() - start < 0.5  # 50 ms polling; a generous bound for a noisy machine
        assert await watcher.wait_for_mail(0.2) is False  # nothing new: it times out


def test_accounts_round_trip_through_config_toml_keeping_comments(home: Path) -> None:
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text("# my settings\n[vault]\ndefault_entry = \"github\"\n")
    account = ImapAccount(name="work", host="imap.example.test", port=993, username="agent@example.test",
                          mailboxes=("INBOX", "Verify"), ca_file="/etc/ca.pem", first_sync_days=14)
    save_account(home, account)
    assert load_accounts(home, {}) == [account]
    text = (home / "config.toml").read_text()
    assert text.startswith("# my settings") and "default_entry" in text and "password" not in text
    assert (home / "config.toml").stat().st_mode & 0o777 == 0o600
    env = {"MAILGENT_IMAP_URL": "imaps://bot%40example.test@mail.example.test/Codes", "MAILGENT_IMAP_CA": "/ca"}
    [_, from_env] = load_accounts(home, env)
    assert (from_env.name, from_env.username, from_env.host, from_env.port, from_env.security, from_env.mailboxes,
            from_env.ca_file) == ("env", "bot@example.test", "mail.example.test", 993, "tls", ("Codes",), "/ca")
    assert remove_account(home, "work") and load_accounts(home, {}) == []


@pytest.mark.parametrize("setting", ["first_sync_days = 0", "first_sync_count = -5", "first_sync_days = \"soon\""])
def test_a_nonsense_first_sync_setting_is_a_clear_error(home: Path, setting: str) -> None:
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text(f'[accounts.work]\nhost = "h"\nusername = "u"\n{setting}\n')
    with pytest.raises(ConfigError, match=r"first_sync_(days|count)|invalid literal"):
        load_accounts(home, {})


def _serve(home: Path, ttl: str) -> subprocess.Popen[bytes]:
    # stdin stays open (a client that says nothing), so the stdio server keeps running.
    return subprocess.Popen([sys.executable, "-m", "mailgent_mcp", "serve"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=open(home.parent / f"serve-{time.monotonic_ns()}.log", "wb"),
                            env=clean_env(home, MAILGENT_LEASE_TTL=ttl))


def _holder(home: Path) -> str | None:
    """The live holder of account test's lease; None before a server's inbox has made the table."""
    tables = db_rows(home, "SELECT 1 FROM sqlite_master WHERE name = 'pollers'") if (home / "vault.db").exists() else []
    rows = db_rows(home, "SELECT holder FROM pollers WHERE account = 'test' AND expires_at > ?", (time.time(),)) \
        if tables else []
    return str(rows[0][0]) if rows else None


def _until(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    pytest.fail(f"not within {timeout} s")


@pytest.mark.slow
async def test_one_poller_across_processes_and_takeover_when_it_dies(home: Path, dovecot: Dovecot) -> None:
    async with await Vault.open(home, environ={}) as vault:
        await vault.put(password_entry("test"), {"username": dovecot.user, "password": dovecot.password}, "LOGIN")
    save_account(home, ImapAccount(name="test", host=dovecot.host, port=dovecot.imap_port, username=dovecot.user,
                                   security="plain"))
    servers = [_serve(home, "1.5"), _serve(home, "1.5")]
    try:
        _until(lambda: _holder(home) is not None, 20)
        holder = _holder(home)
        pids = {p.pid: p for p in servers}
        owner = next(pid for pid in pids if f":{pid}:" in str(holder))
        dovecot.deliver(mail("one"))
        async with await Inbox.open(home) as inbox:
            async def subjects() -> list[str]:
                return sorted(m.subject for m in await inbox.read(MessageQuery(limit=100)))

            deadline = time.monotonic() + 15
            while await subjects() != ["one"] and time.monotonic() < deadline:
                await inbox.wait_for_mail(0.5)
            assert await subjects() == ["one"]
            os.kill(owner, signal.SIGKILL)  # the poller's process dies without giving up its lease
            pids[owner].wait(timeout=10)
            _until(lambda: _holder(home) is not None and f":{owner}:" not in str(_holder(home)), 15)
            dovecot.deliver(mail("two"))
            deadline = time.monotonic() + 15
            while await subjects() != ["one", "two"] and time.monotonic() < deadline:
                await inbox.wait_for_mail(0.5)
            assert await subjects() == ["one", "two"]  # each once
    finally:
        for proc in servers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in servers:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    for log_file in home.parent.glob("serve-*.log"):
        assert "Traceback" not in log_file.read_text(), log_file.read_text()[-3000:]


async def test_the_service_purges_mail_past_the_retention(home: Path) -> None:
    from mailgent_mcp.inbox.service import InboxService

    async with await Inbox.open(home, clock=lambda: time.time() - 3 * 86400) as inbox:
        await inbox.add("acct", "INBOX", 1, 1, parse_message(mail("old").encode()))
    async with await Inbox.open(home) as inbox:
        await inbox.add("acct", "INBOX", 1, 2, parse_message(mail("new").encode()))

    async def no_password(account: ImapAccount) -> str:
        raise AssertionError("no account is configured")

    service = InboxService(home, {"MAILGENT_RETENTION": "2d"}, no_password)
    inbox = await service.start()
    try:
        deadline = time.monotonic() + 10
        while len(await inbox.read(MessageQuery())) != 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert [m.subject for m in await inbox.read(MessageQuery())] == ["new"]
    finally:
        await service.close()
    async with await Inbox.open(home, clock=lambda: time.time() - 3 * 86400) as inbox:
        await inbox.add("acct", "INBOX", 1, 3, parse_message(mail("old, kept").encode()))
    kept = InboxService(home, {"MAILGENT_RETENTION": "off"}, no_password)
    await kept.start()
    await asyncio.sleep(0.2)  # time enough for a purge task, were there one
    await kept.close()
    assert sorted(db_rows(home, "SELECT subject FROM messages")) == [("new",), ("old, kept",)]


async def test_the_service_extracts_mail_cached_without_extraction(home: Path) -> None:
    from mailgent_mcp.inbox.service import InboxService

    raw = mail("later", body="Your verification code is 246810.").encode()
    async with await Inbox.open(home) as inbox:
        await inbox.add("acct", "INBOX", 1, 1, parse_message(raw, extracting=False))  # as a first sync's bulk
        assert (await inbox.read(MessageQuery()))[0].codes == []

    async def no_password(account: ImapAccount) -> str:
        raise AssertionError("no account is configured")

    service = InboxService(home, {}, no_password)
    inbox = await service.start()
    try:
        deadline = time.monotonic() + 20
        while not (await inbox.read(MessageQuery()))[0].codes and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert [c["code"] for c in (await inbox.read(MessageQuery()))[0].codes] == ["246810"]
    finally:
        await service.close()
