"""The inbox service a server process runs: the SMTP inbox and one IMAP poller per account.

Several server processes may share a data folder (Claude Desktop, Cursor and Claude Code
each start one). Each account is polled by one of them only: the holder of its lease in
vault.db, renewed by a heartbeat every third of the lease time. When the holder dies, its
lease runs out and another process takes the account over. The others read the cache
and learn of new mail through Inbox.wait_for_mail.

The SMTP inbox's address works the same way, often shared too (the same
MAILGENT_SMTP_LISTEN in every client's config): the holder of its lease listens, the
others serve what it caches and take the port over when it dies. A holder that cannot
bind the port (another program has it) records why, and tries again at each heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, replace
from pathlib import Path

from mailgent_mcp.errors import ConfigError, MailgentError
from mailgent_mcp.inbox.accounts import (
    ENV_ACCOUNT,
    accounts_of,
    password_entry,
    trusted_by_account,
)
from mailgent_mcp.inbox.cache import Inbox
from mailgent_mcp.inbox.imap import ImapAccount, ImapSync, SyncStatus, Timing
from mailgent_mcp.inbox.parse import Parser
from mailgent_mcp.inbox.smtp import SmtpInbox, lease_name
from mailgent_mcp.settings import (
    ENV_IMAP_PASSWORD,
    LEASE_TTL_S,
    Listen,
    load_settings,
    parse_listen,
    read_environment,
)

log = logging.getLogger(__name__)

PURGE_EVERY_S = 3600.0
CATCH_UP_EVERY_S = 5.0  # how often the server looks for cached mail still to extract

PasswordLookup = Callable[[ImapAccount], Awaitable[str]]


class InboxService:
    """Starts and stops the mail sources of one server process."""

    def __init__(self, home: Path, environ: Mapping[str, str], passwords: PasswordLookup, *,
                 lease_ttl: float = LEASE_TTL_S, timing: Timing | None = None, smtp_listen: str | None = None) -> None:
        self._home = home
        self._environ = dict(environ)
        self._passwords = passwords
        env = read_environment(environ)
        self._lease_ttl = env.lease_ttl if env.lease_ttl is not None else lease_ttl
        self._timing = timing
        self._smtp_listen = smtp_listen or env.smtp_listen
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.inbox: Inbox | None = None
        self.smtp: SmtpInbox | None = None
        self.smtp_error: str | None = None  # why this process, holding the SMTP lease, does not listen
        self._smtp_errors = 0
        self.syncs: dict[str, ImapSync] = {}
        self._parser = Parser()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> Inbox:
        """Open the cache, start the SMTP inbox (if configured) and the account pollers."""
        settings = load_settings(self._home, self._environ, smtp_listen=self._smtp_listen)
        self.inbox = await Inbox.open(self._home)
        if settings.smtp_listen:
            listen = parse_listen(settings.smtp_listen)
            if listen.port == 0:  # any free port: this process's own, shared with none
                self.smtp = await SmtpInbox.start(self.inbox, listen, parser=self._parser)
            else:
                await self._try_smtp(self.inbox, listen)  # at once, so mail sent right after start is taken
                self._tasks.append(asyncio.create_task(self._keep_smtp(self.inbox, listen), name="smtp inbox"))
        for account in accounts_of(settings):
            self._tasks.append(asyncio.create_task(self._poll(account), name=f"poller {account.name}"))
        if settings.retention is not None:
            self._tasks.append(asyncio.create_task(self._expire(self.inbox, settings.retention), name="retention"))
        self._tasks.append(asyncio.create_task(self._catch_up(self.inbox), name="extraction"))
        return self.inbox

    async def _catch_up(self, inbox: Inbox) -> None:
        """Extract what is cached without it: a first sync's bulk, or all after an extractor upgrade.

        The accounts' trusted authserv-ids are read anew each time (`inbox trust` edits them
        while the server runs), for this and for the mail the pollers cache from then on; an
        account whose list changed has its mail extracted again, as a poller may have cached
        some with the old list in between.
        """
        before: dict[str, tuple[str, ...]] | None = None
        while not self._stop.is_set():
            try:
                trusted = trusted_by_account(self._home, self._environ)
                for name, sync in self.syncs.items():
                    if name in trusted:
                        sync.account = replace(sync.account, trusted_authserv_ids=trusted[name])
                for name in [n for n in trusted if before is not None and before.get(n) != trusted[n]]:
                    await inbox.reindex(self._parser, trusted=trusted, everything=True, account=name)
                before = trusted
                done = await inbox.reindex(self._parser, trusted=trusted)
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
            self.smtp = None
        self._parser.close()
        if self.inbox is not None:
            await self.inbox.close()

    async def _try_smtp(self, inbox: Inbox, listen: Listen) -> None:
        """Listen on the SMTP inbox's address unless another live server of this folder holds its lease."""
        lease = lease_name(listen)
        if not await inbox.claim_poller(lease, self.holder, self._lease_ttl):
            return  # another server listens there (or is the one retrying it)
        try:
            self.smtp = await SmtpInbox.start(inbox, listen, parser=self._parser)
        except ConfigError as exc:
            if self.smtp_error is None:
                log.warning("%s No mailgent-mcp server of this data folder listens there (another program holds the "
                            "port, or it cannot be used): this server goes on serving the vault and cached mail, and "
                            "tries the port again every %g s.", exc, self._lease_ttl / 3)
            self.smtp_error = str(exc)
            self._smtp_errors += 1
        else:
            self.smtp_error = None
        await self._report_smtp(inbox, lease)

    async def _report_smtp(self, inbox: Inbox, lease: str) -> bool:
        """Heartbeat of the SMTP lease with whether this process listens; False when it was lost."""
        status: dict[str, object] = {"connected": self.smtp is not None, "last_error": self.smtp_error,
                                     "errors": self._smtp_errors}
        return await inbox.report_poller(lease, self.holder, self._lease_ttl, status)

    async def _keep_smtp(self, inbox: Inbox, listen: Listen) -> None:
        """Hold the SMTP lease while listening; else try for it (and the port) at every heartbeat."""
        lease = lease_name(listen)
        try:
            while not self._stop.is_set():
                await _wait(self._stop, self._lease_ttl / 3)  # returns at once on shutdown
                if self._stop.is_set():
                    break
                try:
                    if self.smtp is None:
                        await self._try_smtp(inbox, listen)
                    elif not await self._report_smtp(inbox, lease):
                        log.warning("lost the SMTP inbox lease of %s:%d to another process", listen.host,
                                    listen.port)
                        await self._stop_smtp()
                except MailgentError as exc:
                    log.warning("SMTP inbox lease of %s:%d: %s", listen.host, listen.port, exc)
        finally:
            await self._stop_smtp()
            with contextlib.suppress(MailgentError):
                await inbox.release_poller(lease, self.holder)

    async def _stop_smtp(self) -> None:
        smtp, self.smtp = self.smtp, None
        if smtp is not None:
            await smtp.close()

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


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


def env_or_vault_password(vault_get: Callable[[str], Awaitable[Mapping[str, str]]],
                          environ: Mapping[str, str]) -> PasswordLookup:
    """Passwords: MAILGENT_IMAP_PASSWORD for the environment's account, else the vault entry imap/NAME."""
    password = read_environment(environ).imap_password

    async def lookup(account: ImapAccount) -> str:
        if account.name == ENV_ACCOUNT:
            if password is None:
                raise ConfigError(f"MAILGENT_IMAP_URL is set but {ENV_IMAP_PASSWORD} is not; set it too.")
            return password.get_secret_value()
        data = await vault_get(password_entry(account.name))
        if not data.get("password"):
            raise ConfigError(f"The vault entry {password_entry(account.name)!r} has no password; run "
                                f"`mailgent-mcp inbox add {account.name} ...` again.")
        return data["password"]

    return lookup
