"""The inbox service a server process runs: the SMTP inbox and one IMAP poller per account.

Several server processes may share a data folder (Claude Desktop, Cursor and Claude Code
each start one). Each account is polled by one of them only: the holder of its lease in
vault.db, renewed by a heartbeat every third of the lease time. When the holder dies, its
lease runs out and another process takes the account over. The others read the cache
and learn of new mail through Inbox.wait_for_mail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from pathlib import Path

from mailgent_mcp.accounts import ENV_ACCOUNT, ENV_IMAP_PASSWORD, load_accounts, password_entry
from mailgent_mcp.errors import ConfigError, MailgentError
from mailgent_mcp.imap import ImapAccount, ImapSync, SyncStatus, Timing
from mailgent_mcp.config import load_config
from mailgent_mcp.inbox import Inbox, retention
from mailgent_mcp.parse import Parser
from mailgent_mcp.smtp import ENV_SMTP_LISTEN, SmtpInbox, parse_listen

log = logging.getLogger(__name__)

LEASE_TTL_S = 15.0
PURGE_EVERY_S = 3600.0
CATCH_UP_EVERY_S = 5.0  # how often the server looks for cached mail still to extract
ENV_LEASE_TTL = "MAILGENT_LEASE_TTL"  # seconds; how soon another process takes over a dead poller's account
LEASE_TTL_RANGE = (1.0, 3600.0)  # shorter renews the lease in a busy loop; longer leaves a dead poller's account idle

PasswordLookup = Callable[[ImapAccount], Awaitable[str]]


class InboxService:
    """Starts and stops the mail sources of one server process."""

    def __init__(self, home: Path, environ: Mapping[str, str], passwords: PasswordLookup, *,
                 lease_ttl: float = LEASE_TTL_S, timing: Timing | None = None, smtp_listen: str | None = None) -> None:
        self._home = home
        self._environ = dict(environ)
        self._passwords = passwords
        self._lease_ttl = lease_ttl_from(environ, lease_ttl)
        self._timing = timing
        self._smtp_listen = smtp_listen or environ.get(ENV_SMTP_LISTEN) or None
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.inbox: Inbox | None = None
        self.smtp: SmtpInbox | None = None
        self.syncs: dict[str, ImapSync] = {}
        self._parser = Parser()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> Inbox:
        """Open the cache, start the SMTP inbox (if configured) and the account pollers."""
        self.inbox = await Inbox.open(self._home)
        if self._smtp_listen:
            self.smtp = await SmtpInbox.start(self.inbox, parse_listen(self._smtp_listen), parser=self._parser)
        for account in load_accounts(self._home, self._environ):
            self._tasks.append(asyncio.create_task(self._poll(account), name=f"poller {account.name}"))
        keep = retention(load_config(self._home), self._environ)
        if keep is not None:
            self._tasks.append(asyncio.create_task(self._expire(self.inbox, keep), name="retention"))
        self._tasks.append(asyncio.create_task(self._catch_up(self.inbox), name="extraction"))
        return self.inbox

    async def _catch_up(self, inbox: Inbox) -> None:
        """Extract what is cached without it: a first sync's bulk, or all after an extractor upgrade."""
        while not self._stop.is_set():
            try:
                done = await inbox.reindex(self._parser)
                if done:
                    log.info("extracted codes, links and text of %d cached messages", done)
            except MailgentError as exc:
                log.warning("extracting cached mail: %s", exc)
            await _wait(self._stop, CATCH_UP_EVERY_S)

    async def _expire(self, inbox: Inbox, keep: float) -> None:
        """Purge mail older than the retention now and every PURGE_EVERY_S (every process may; it is idempotent)."""
        while not self._stop.is_set():
            try:
                removed = await inbox.purge(keep)
                if removed:
                    log.info("purged %d cached messages older than the retention", removed)
            except MailgentError as exc:
                log.warning("purging old mail: %s", exc)
            await _wait(self._stop, PURGE_EVERY_S)

    async def close(self) -> None:
        """Stop pollers (giving up their leases), the SMTP inbox and the cache."""
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)
        if self.smtp is not None:
            await self.smtp.close()
        else:
            self._parser.close()
        if self.inbox is not None:
            await self.inbox.close()

    async def _poll(self, account: ImapAccount) -> None:
        """Hold the account's lease and sync it; wait and retry while another process holds it."""
        assert self.inbox is not None
        inbox = self.inbox
        while not self._stop.is_set():
            try:
                if await inbox.claim_poller(account.name, self.holder, self._lease_ttl):
                    await self._hold(inbox, account)
            except MailgentError as exc:
                log.warning("poller for %s: %s", account.name, exc)
            await _wait(self._stop, self._lease_ttl / 3)

    async def _hold(self, inbox: Inbox, account: ImapAccount) -> None:
        log.info("polling account %s (holder %s)", account.name, self.holder)
        try:
            password = await self._passwords(account)
        except MailgentError as exc:
            # Shown as the account's last_error (inbox status, inbox_accounts), as a refused login is.
            await inbox.report_poller(account.name, self.holder, self._lease_ttl,
                                      asdict(SyncStatus(last_error=str(exc), errors=1)))
            raise
        sync = ImapSync(account, password, inbox, self._parser, timing=self._timing)
        self.syncs[account.name] = sync
        halt = asyncio.Event()  # set on shutdown or when the lease is lost
        runner = asyncio.create_task(sync.run(halt))
        try:
            while not runner.done():
                await _wait(self._stop, self._lease_ttl / 3)  # returns at once on shutdown
                if self._stop.is_set():
                    break
                if not await inbox.report_poller(account.name, self.holder, self._lease_ttl, asdict(sync.status)):
                    log.warning("lost the lease of account %s to another process", account.name)
                    break
        finally:
            halt.set()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(runner, 10)
            if self._stop.is_set():
                with contextlib.suppress(MailgentError):
                    await inbox.release_poller(account.name, self.holder)
            self.syncs.pop(account.name, None)


def lease_ttl_from(environ: Mapping[str, str], default: float) -> float:
    """MAILGENT_LEASE_TTL in seconds (default when unset); a ConfigError when it is not a number in range."""
    text = environ.get(ENV_LEASE_TTL)
    if not text:
        return default
    low, high = LEASE_TTL_RANGE
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not low <= seconds <= high:  # also refuses nan
        raise ConfigError(f"{ENV_LEASE_TTL} must be a number of seconds from {low:g} to {high:g} "
                          f"(default {LEASE_TTL_S:g}).")
    return seconds


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


def env_or_vault_password(vault_get: Callable[[str], Awaitable[Mapping[str, str]]],
                          environ: Mapping[str, str]) -> PasswordLookup:
    """Passwords: MAILGENT_IMAP_PASSWORD for the environment's account, else the vault entry imap/NAME."""

    async def lookup(account: ImapAccount) -> str:
        if account.name == ENV_ACCOUNT:
            value = environ.get(ENV_IMAP_PASSWORD, "")
            if not value:
                raise ConfigError(f"MAILGENT_IMAP_URL is set but {ENV_IMAP_PASSWORD} is not; set it too.")
            return value
        data = await vault_get(password_entry(account.name))
        if not data.get("password"):
            raise ConfigError(f"The vault entry {password_entry(account.name)!r} has no password; run "
                                f"`mailgent-mcp inbox add {account.name} ...` again.")
        return data["password"]

    return lookup
