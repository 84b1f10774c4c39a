"""IMAP sync into the message cache: first sync, IDLE push (RFC 2177), reconnect with backoff.

`imapclient` is used here and nowhere else, and only off the event loop: each blocking
call runs in a worker thread. A sync is a pipeline of FETCH batches: the next batch is
fetched (in a thread) while the ones before are parsed (in the Parser's worker processes)
and stored (on the database thread), in order. Progress is the (UIDVALIDITY, last UID) per
mailbox, recorded in the transaction that stores each batch, so a crash or reconnect
fetches again only what was not stored yet (the few batches in flight), and never stores
a message twice. A UIDVALIDITY change rebinds cached messages by Message-ID instead of
caching them again. Read state goes both ways: each sync first stores on the server the \\Seen
changes queued in the cache, then mirrors the server's \\Seen into it (with CONDSTORE,
only what changed since the last sync); a flag change announced in IDLE starts a sync.

This is also the one boundary for failures of the network, TLS and imapclient: each becomes
an ImapError whose text names the account, the host and the fix (an option or config key),
never the library's own message.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import errno
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import imapclient
import imapclient.exceptions

from mailgent_mcp.errors import ConfigError, MailgentError
from mailgent_mcp.inbox.cache import Inbox
from mailgent_mcp.inbox.parse import (
    MAX_MESSAGE_BYTES,
    ParsedMessage,
    Parser,
    headers_only,
)

log = logging.getLogger(__name__)

Security = Literal["tls", "starttls", "plain"]
Progress = Callable[[str, int, int], None]
FETCH_BATCH = 50
FLAGS_BATCH = 1000  # UIDs per FETCH FLAGS: a short enough command line for any server
PARSE_AHEAD = 2  # fetched batches handed to the Parser at once, so that its workers never wait on us
IDLE_MAX_S = 25 * 60.0  # servers may drop an IDLE after 30 minutes; RFC 2177 asks clients to renew within 29
EXTRACT_INLINE = 50  # a first sync extracts its newest this many at once, the rest in the background
IDLE_TICK = 0.5  # seconds between checks of the stop flag while in IDLE


ENV_ACCOUNT = "env"  # the account of MAILGENT_IMAP_URL (accounts.py)
GREETING_S = 10.0  # a server greets at once: longer means it waits for something else, such as a TLS hello
SCHEME_OF: dict[str, str] = {"tls": "imaps://", "starttls": "imap+starttls://", "plain": "imap://"}
# OpenSSL's reasons when a TLS client hears plain text (an IMAP greeting) instead of a server hello.
PLAIN_TEXT_REASONS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "UNKNOWN_PROTOCOL", "HTTP_REQUEST",
                      "PACKET_LENGTH_TOO_LONG")
X509_HOSTNAME_MISMATCH = 62
X509_CERT_EXPIRED = 10
X509_CERT_NOT_YET_VALID = 9
# What the network and imapclient raise for a connection that fails or breaks (ssl.SSLError,
# socket.timeout and ConnectionError are OSErrors; UnicodeError is an unencodable host name).
CONNECTION_FAULTS = (OSError, imapclient.exceptions.IMAPClientError, EOFError, UnicodeError)


class ImapError(ConfigError):
    """An IMAP server could not be used with an account's settings; the text names the fix.

    Exit 7 from `inbox sync` (the account's settings or password need fixing); `inbox add`
    reports it as bad input (exit 2); the poller shows it as the account's last_error.
    """

    retry_soon = False  # the poller retries after its backoff; otherwise after Timing.login_retry


class ImapLoginFailed(ImapError):
    """The server refused the username or password."""


class ImapMailboxMissing(ImapError):
    """A configured mailbox does not exist on the server (or cannot be opened)."""


class ImapUnreachable(ImapError):
    """No session: refused, unresolvable, the wrong TLS mode, an untrusted certificate, a timeout, a lost link."""

    retry_soon = True


@dataclass(frozen=True)
class ImapAccount:
    """One configured mailbox source; the password lives in the vault, not here."""

    name: str
    host: str
    port: int
    username: str
    security: Security = "tls"
    mailboxes: tuple[str, ...] = ("INBOX",)
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    first_sync_count: int = 200  # the newest messages taken on a first sync
    first_sync_days: int | None = None  # and, if set, only those of the last N days
    # Whose Authentication-Results headers count: the account's own receiving server(s); () trusts
    # none. accounts.account_from_table gives an account on a large provider's host its defaults.
    trusted_authserv_ids: tuple[str, ...] = ()


@dataclass
class SyncStatus:
    """What `inbox status` shows for an account."""

    connected: bool = False
    idling: bool = False
    last_sync: float | None = None
    last_error: str | None = None
    errors: int = 0


@dataclass(frozen=True)
class Timing:
    """How often the sync checks a quiet connection; tests shorten these."""

    socket_timeout: float = 30.0
    # IDLE is interrupted for a NOOP this often, to find a silently dead link; each IDLE is
    # re-issued after it, well inside the 29 minutes of RFC 2177 §3 (see __post_init__).
    keepalive: float = 60.0
    settle: float = 2.0  # the first IDLE after a sync ends this soon for one NOOP (see _wait_for_mail)
    poll_interval: float = 30.0  # without IDLE
    backoff_first: float = 1.0
    backoff_max: float = 60.0
    login_retry: float = 300.0  # a refused password is not retried in a tight loop

    def __post_init__(self) -> None:
        if not 0 < self.keepalive <= IDLE_MAX_S:
            raise ValueError(f"keepalive must be more than 0 and at most {IDLE_MAX_S:g} s (RFC 2177 §3)")


def ssl_context(account: ImapAccount) -> ssl.SSLContext:
    """Verify against the system CAs, or the account's CA file; no verification only if asked."""
    if account.insecure_skip_verify:
        context = ssl.create_default_context()  # TLS all the same, without the checks the user turned off
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=account.ca_file)
    except (OSError, ssl.SSLError):
        raise ImapError(f"Cannot load the CA file {account.ca_file!r} for account {account.name!r}: give a readable "
                        f"PEM file with {_fix(account, 'ca')}.") from None


def _fix(account: ImapAccount, what: str, value: str = "") -> str:
    """Where the user changes `what` for this account: the option and config key, or MAILGENT_IMAP_*."""
    if account.name == ENV_ACCOUNT:
        return {"security": f"the {SCHEME_OF.get(value, '')} scheme in MAILGENT_IMAP_URL",
                "ca": "MAILGENT_IMAP_CA", "address": "the host and port in MAILGENT_IMAP_URL",
                "mailbox": "the mailbox in MAILGENT_IMAP_URL",
                "password": "MAILGENT_IMAP_PASSWORD (for Gmail or Fastmail, an app password)"}[what]
    return {"security": f'--security {value} (security = "{value}" in config.toml)',
            "ca": "--ca FILE (ca_file in config.toml)", "address": "--host and --port (host, port in config.toml)",
            "mailbox": "--mailbox (mailboxes in config.toml)",
            "password": ("the password (for Gmail or Fastmail, an app password); "
                         f"`mailgent-mcp inbox add {account.name} ...` stores a new one")}[what]


def connect_error(account: ImapAccount, exc: BaseException, greeting: float | None) -> ImapError:
    """A failure to set up a session, as an error naming the fix; never the library's own text.

    greeting: the seconds the server had to greet, or None once it has greeted.
    """
    where = f"{account.host}:{account.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ImapUnreachable(_certificate_problem(account, exc.verify_code))
    if isinstance(exc, ssl.SSLError):
        if account.security == "tls" and exc.reason in PLAIN_TEXT_REASONS:
            return ImapUnreachable(
                f"{where} answered in plain text, not TLS (account {account.name!r}): use "
                f"{_fix(account, 'security', 'starttls')}, or the IMAPS port (993) with TLS.")
        return ImapUnreachable(f"The TLS handshake with {where} failed ({exc.reason or 'no reason given'}; account "
                               f"{account.name!r}): check {_fix(account, 'security', account.security)} and "
                               f"{_fix(account, 'address')}.")
    if isinstance(exc, socket.gaierror | UnicodeError):
        return ImapUnreachable(f"Cannot resolve the host name {account.host!r} (account {account.name!r}): check "
                               f"{_fix(account, 'address')}.")
    if isinstance(exc, ConnectionRefusedError):
        return ImapUnreachable(f"Connection refused on {where} (account {account.name!r}): check "
                               f"{_fix(account, 'address')}, and that the server is running.")
    if isinstance(exc, TimeoutError) and greeting is not None:
        other = "starttls" if account.security == "tls" else "tls"
        return ImapUnreachable(
            f"{where} did not greet within {greeting:g} s (account {account.name!r}): if it expects "
            f"{'plain text first' if other == 'starttls' else 'TLS from the start (IMAPS, port 993)'}, use "
            f"{_fix(account, 'security', other)}; else check {_fix(account, 'address')}.")
    if isinstance(exc, imapclient.exceptions.CapabilityError):
        return ImapUnreachable(f"{where} does not offer STARTTLS (account {account.name!r}): use "
                               f"{_fix(account, 'security', 'tls')} with the IMAPS port (993).")
    return connection_lost(account, exc)


def _certificate_problem(account: ImapAccount, code: int) -> str:
    where = f"{account.host}:{account.port}"
    if code == X509_HOSTNAME_MISMATCH:
        return (f"The certificate of {where} is not for the name {account.host!r} (account {account.name!r}): "
                f"connect by a name it was issued for, with {_fix(account, 'address')}.")
    if code in (X509_CERT_EXPIRED, X509_CERT_NOT_YET_VALID):
        return (f"The certificate of {where} has expired or is not valid yet (account {account.name!r}): the "
                "server must renew it, or check this machine's clock.")
    return (f"The certificate of {where} is not trusted (account {account.name!r}): for a private CA, give its "
            f"file with {_fix(account, 'ca')}.")


def connection_lost(account: ImapAccount, exc: BaseException) -> ImapUnreachable:
    """A connection that failed or broke after it was set up (or spoke no IMAP); retried by the poller."""
    name = errno.errorcode.get(exc.errno or 0, "") if isinstance(exc, OSError) else ""
    reason = f" ({name})" if name else ""
    return ImapUnreachable(
        f"The connection to {account.host}:{account.port} failed or was lost{reason} (account {account.name!r}): "
        f"check {_fix(account, 'address')} and {_fix(account, 'security', account.security)}, and that the "
        "server is up.")


class ImapSession:
    """A logged-in imapclient connection; every method blocks (call it from a thread)."""

    def __init__(self, account: ImapAccount, password: str, timeout: float) -> None:
        self.account = account
        context = ssl_context(account) if account.security != "plain" else None
        # The connect timeout covers the TCP connect, a TLS handshake and the greeting.
        greeting = min(timeout, GREETING_S)
        try:
            client = imapclient.IMAPClient(account.host, port=account.port, ssl=account.security == "tls",
                                           ssl_context=context,
                                           timeout=imapclient.SocketTimeout(connect=greeting, read=timeout))
        except CONNECTION_FAULTS as exc:
            raise connect_error(account, exc, greeting) from exc
        try:
            if account.security == "starttls":
                client.starttls(context)
            _login(client, account.username, password)
        except imapclient.exceptions.LoginError:
            _quietly(client.logout)
            raise ImapLoginFailed(
                f"The IMAP server {account.host} refused the login of {account.username!r} (account "
                f"{account.name!r}): check {_fix(account, 'password')}."
            ) from None
        except UnicodeError:  # PLAIN sends any UTF-8: only text from a non-UTF-8 terminal gets here
            _quietly(client.shutdown)
            raise ImapLoginFailed(f"The username or password of account {account.name!r} is not valid UTF-8 text: "
                                  f"give it in UTF-8; check {_fix(account, 'password')}.") from None
        except CONNECTION_FAULTS as exc:
            _quietly(client.shutdown)
            raise connect_error(account, exc, None) from exc
        except BaseException:
            _quietly(client.shutdown)
            raise
        self.client = client
        self.has_idle = bool(client.has_capability("IDLE"))
        self.condstore = self._enable_condstore()
        self.highest_modseq: int | None = None  # of the selected mailbox, with CONDSTORE

    def _enable_condstore(self) -> bool:
        """Turn on CONDSTORE (RFC 7162) where offered: flag changes are then fetched by MODSEQ."""
        if not (self.client.has_capability("CONDSTORE") and self.client.has_capability("ENABLE")):
            return False
        try:
            return b"CONDSTORE" in (self.client.enable("CONDSTORE") or [])
        except imapclient.exceptions.IMAPClientError:
            return False

    def select(self, mailbox: str) -> tuple[int, int]:
        """Select a mailbox (read-write, to store \\Seen; bodies are fetched with PEEK); (UIDVALIDITY, EXISTS)."""
        try:
            info = self.client.select_folder(mailbox)
        except imapclient.exceptions.IMAPClientAbortError:
            raise  # the connection, not the mailbox
        except imapclient.exceptions.IMAPClientError:
            raise ImapMailboxMissing(
                f"The IMAP server {self.account.host} has no mailbox {mailbox[:100]!r} for account "
                f"{self.account.name!r} (or refused to open it): fix {_fix(self.account, 'mailbox')}.") from None
        self._take_announcements()  # the SELECT's own EXISTS is not news
        modseq = info.get(b"HIGHESTMODSEQ")
        self.highest_modseq = int(modseq) if self.condstore and modseq is not None else None
        return int(info[b"UIDVALIDITY"]), int(info.get(b"EXISTS", 0))

    def store_seen(self, uids: Sequence[int], seen: bool) -> None:
        """Set or clear \\Seen on uids of the selected mailbox."""
        if seen:
            self.client.add_flags(list(uids), [imapclient.SEEN], silent=True)
        else:
            self.client.remove_flags(list(uids), [imapclient.SEEN], silent=True)

    def seen_flags(self, first_uid: int, changed_since: int | None) -> dict[int, bool]:
        """{uid: seen} for uids from first_uid on; with CONDSTORE, only those changed since a MODSEQ."""
        criteria: list[str] = ["UID", f"{first_uid}:*"]
        if self.condstore and changed_since is not None:
            criteria += ["MODSEQ", str(changed_since + 1)]
        uids = sorted(u for u in self.client.search(criteria) if u >= first_uid)
        flags: dict[int, bool] = {}
        for start in range(0, len(uids), FLAGS_BATCH):
            data = self.client.fetch(uids[start:start + FLAGS_BATCH], ["FLAGS"])
            flags.update({uid: b"\\Seen" in d.get(b"FLAGS", ()) for uid, d in data.items()})
        return flags

    def _take_announcements(self) -> bool:
        """Whether the server announced mail (untagged EXISTS or RECENT) in a command's response.

        Mail that arrives while a SEARCH or FETCH runs is announced once, in that command's
        response, where imapclient leaves it unread (imaplib's untagged_responses); IDLE would
        not announce it again. Taking it here makes the sync look again at once instead of
        waiting for the keepalive.
        """
        # imapclient has no public accessor for these; imaplib documents untagged_responses as its store.
        pending = self.client._imap.untagged_responses
        announced = False
        for name in ("EXISTS", "RECENT"):
            announced = pending.pop(name, None) is not None or announced
        return announced

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above last_uid ("N:*" always returns the newest message, so filter)."""
        return sorted(u for u in self.client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid)

    def all_uids(self, since: datetime.date | None = None) -> list[int]:
        """Every UID in the selected mailbox (received on or after `since`, if given)."""
        return sorted(self.client.search(["SINCE", since] if since is not None else ["ALL"]))

    def fetch_batch(self, uids: Sequence[int], max_bytes: int) -> list[tuple[int, bytes, bool, int]]:
        """(uid, raw or header bytes, seen, size) for uids; oversized messages give their header only."""
        meta = self.client.fetch(list(uids), ["RFC822.SIZE", "FLAGS"])
        small = [u for u in uids if int(meta.get(u, {}).get(b"RFC822.SIZE", 0)) <= max_bytes]
        large = [u for u in uids if u in meta and u not in small]
        bodies: dict[int, Any] = self.client.fetch(small, ["BODY.PEEK[]"]) if small else {}
        headers: dict[int, Any] = self.client.fetch(large, ["BODY.PEEK[HEADER]"]) if large else {}
        out = []
        for uid in uids:
            if uid not in meta:
                continue  # expunged meanwhile
            seen = b"\\Seen" in meta[uid].get(b"FLAGS", ())
            size = int(meta[uid].get(b"RFC822.SIZE", 0))
            if uid in bodies:
                out.append((uid, bytes(bodies[uid].get(b"BODY[]", b"")), seen, size))
            elif uid in headers:
                out.append((uid, bytes(headers[uid].get(b"BODY[HEADER]", b"")), seen, size))
        return out

    def idle_wait(self, timeout: float, wake: threading.Event | None = None) -> bool:
        """IDLE for up to timeout seconds; True when the server announced new mail.

        Mail announced during the sync's own commands returns True without idling. The wait
        checks `wake` every IDLE_TICK seconds, so a shutdown or queued work does not wait for the keepalive.
        imapclient's idle_check swallows EOF and returns [] at once: an early empty answer
        is checked with idle_done, which raises on a dead connection.
        """
        if self._take_announcements():
            return True
        self.client.idle()
        started = time.monotonic()
        try:
            while (left := timeout - (time.monotonic() - started)) > 0 and not (wake and wake.is_set()):
                chunk = min(left, IDLE_TICK)
                asked = time.monotonic()
                responses = self.client.idle_check(timeout=chunk)
                if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT", b"FETCH") for r in responses):
                    return True
                if not responses and time.monotonic() - asked < chunk * 0.5:
                    return False  # early and empty: idle_done below tells a live link from a dead one
            return False
        finally:
            self.client.idle_done()

    def noop(self) -> None:
        """A round trip; raises on a dead or hung connection (socket timeout)."""
        self.client.noop()

    def close(self) -> None:
        """Log out, then close the socket."""
        _quietly(self.client.logout)
        _quietly(self.client.shutdown)

    def drop(self) -> None:
        """Close the socket without a LOGOUT, which a dead link would only make wait for its timeout."""
        _quietly(self.client.shutdown)


def _login(client: imapclient.IMAPClient, username: str, password: str) -> None:
    """LOGIN, or AUTHENTICATE PLAIN when the username or password is not ASCII."""
    # imaplib sends LOGIN's arguments as ASCII; PLAIN's as UTF-8 (RFC 4616).
    if username.isascii() and password.isascii():
        client.login(username, password)
    else:
        client.plain_login(username, password)


def _quietly(call: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):
        call()


class ImapSync:
    """Keeps one account's mailboxes cached: sync, then IDLE, reconnecting on every fault."""

    def __init__(self, account: ImapAccount, password: str, inbox: Inbox, parser: Parser, *,
                 timing: Timing | None = None, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.account = account
        self._password = password
        self._inbox = inbox
        self._parser = parser
        self.timing = timing or Timing()
        self._max_bytes = max_bytes
        self.status = SyncStatus()
        self._session: ImapSession | None = None
        self._modseq: dict[tuple[str, int], int] = {}  # (mailbox, UIDVALIDITY): HIGHESTMODSEQ of the last flag pull

    def __repr__(self) -> str:
        return f"ImapSync(account={self.account.name!r})"

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def connect(self) -> ImapSession:
        """A logged-in session (new if there is none)."""
        if self._session is None:
            self._session = await self._call(ImapSession, self.account, self._password, self.timing.socket_timeout)
            self.status.connected = True
            log.info("IMAP account %s connected", self.account.name)
        return self._session

    async def disconnect(self, *, graceful: bool = True) -> None:
        """Drop the session: with LOGOUT, or (after a fault) by closing the socket at once."""
        session, self._session = self._session, None
        self.status.connected = self.status.idling = False
        if session is not None:
            await self._call(session.close if graceful else session.drop)

    async def sync_once(self, progress: Progress | None = None) -> int:
        """Fetch what is new in every mailbox; the number of messages cached.

        progress(mailbox, done, total) is called after each stored batch.
        """
        self._parser.start()  # its workers start while we log in
        session = await self.connect()
        added = 0
        try:
            for mailbox in self.account.mailboxes:
                added += await self._sync_mailbox(session, mailbox, progress)
        except CONNECTION_FAULTS as exc:
            raise connection_lost(self.account, exc) from exc
        self.status.last_sync = time.time()
        return added

    async def _sync_mailbox(self, session: ImapSession, mailbox: str, progress: Progress | None = None) -> int:
        uidvalidity, _ = await self._call(session.select, mailbox)
        await self._push_seen(session, mailbox, uidvalidity)
        added = await self._fetch_new(session, mailbox, uidvalidity, progress)
        await self._pull_seen(session, mailbox, uidvalidity)
        return added

    async def _push_seen(self, session: ImapSession, mailbox: str, uidvalidity: int) -> None:
        """Store read/unread changes made in the cache on the server (queued while it was down)."""
        pending = await self._inbox.pending_seen(self.account.name, mailbox)
        if not pending:
            return
        for seen in (True, False):
            uids = [uid for _, validity, uid, s in pending if validity == uidvalidity and s is seen]
            if not uids:
                continue
            try:
                await self._call(session.store_seen, uids, seen)
            except imapclient.exceptions.IMAPClientAbortError:
                raise  # the connection: reconnect and try again
            except imapclient.exceptions.IMAPClientError as exc:
                # The server refused (a read-only mailbox, say): its state stands; retrying would loop.
                log.warning("IMAP account %s: the server refused to store read state in %s: %s",
                            self.account.name, mailbox, str(exc)[:200])
        # Done, refused, or for a message cached under an older UIDVALIDITY (gone from the
        # server as such): nothing is left to store.
        await self._inbox.clear_pending_seen([(i, seen) for i, _, _, seen in pending])

    async def _pull_seen(self, session: ImapSession, mailbox: str, uidvalidity: int) -> None:
        """Mirror the server's \\Seen into the cache (only what changed since the last pull, with CONDSTORE)."""
        first = await self._inbox.first_uid(self.account.name, mailbox, uidvalidity)
        if first is None:
            return
        key = (mailbox, uidvalidity)
        modseq = session.highest_modseq
        if session.condstore and modseq is not None and self._modseq.get(key) == modseq:
            return  # nothing in the mailbox changed since the last pull
        flags = await self._call(session.seen_flags, first, self._modseq.get(key))
        await self._inbox.apply_server_seen(self.account.name, mailbox, uidvalidity, flags)
        if modseq is not None:
            self._modseq[key] = modseq

    async def _fetch_new(self, session: ImapSession, mailbox: str, uidvalidity: int,
                         progress: Progress | None) -> int:
        state = await self._inbox.mailbox_state(self.account.name, mailbox)
        resync = state is not None and state[0] != uidvalidity
        if state is None or resync:
            if resync:
                log.warning("UIDVALIDITY of %s/%s changed: resyncing", self.account.name, mailbox)
            days = None if resync else self.account.first_sync_days
            since = datetime.date.today() - datetime.timedelta(days=days) if days else None
            uids = await self._call(session.all_uids, since)
            if not resync:
                uids = uids[-self.account.first_sync_count:]
            last_uid = 0
        else:
            last_uid = state[1]
            uids = await self._call(session.uids_after, last_uid)
        added = await self._cache(session, mailbox, uidvalidity, uids, resync=resync, bulk=state is None or resync,
                                  progress=progress)
        last_uid = max([last_uid, *uids])
        if resync:
            # Every message now has its new identity (rebound by Message-ID, or cached anew):
            # what is left under the old UIDVALIDITY is gone from the server or a copy of one
            # without a Message-ID. An interrupted resync starts over; nothing is cached twice.
            dropped = await self._inbox.drop_other_uidvalidities(self.account.name, mailbox, uidvalidity)
            log.info("resync of %s/%s dropped %d stale messages", self.account.name, mailbox, dropped)
        if resync or not uids:
            await self._inbox.set_mailbox_state(self.account.name, mailbox, uidvalidity, last_uid)
        return added

    async def _cache(self, session: ImapSession, mailbox: str, uidvalidity: int, uids: list[int], *,
                     resync: bool, bulk: bool, progress: Progress | None) -> int:
        """Fetch, parse and store uids batch by batch, the three stages overlapping; the number cached.

        Batches are stored in order, each in one transaction with the mailbox's progress (but a
        resync's, recorded by the caller once complete). On a fault, what was fetched before it
        is still parsed and stored; on cancellation, what is being stored is.
        """
        batches = [uids[at:at + FETCH_BATCH] for at in range(0, len(uids), FETCH_BATCH)]
        # A first sync or a resync caches a mailbox's past in bulk: its newest messages are
        # extracted as they come, the rest are cached at once and extracted after, in the
        # background (Inbox.reindex, run by the server's InboxService and by `inbox sync`).
        extract_from = uids[-EXTRACT_INLINE] if bulk and len(uids) > EXTRACT_INLINE else 0
        added = done = 0
        fetching: asyncio.Task[list[tuple[int, bytes, bool, int]]] | None = None
        parsing: collections.deque[tuple[list[int], asyncio.Task[list[tuple[int, ParsedMessage, bool]]]]] = (
            collections.deque())
        storing: asyncio.Task[int] | None = None

        async def store(batch: list[int], messages: list[tuple[int, ParsedMessage, bool]], upto: int) -> int:
            stored = await self._inbox.add_many(self.account.name, mailbox, uidvalidity, messages,
                                                last_uid=None if resync else batch[-1], rebind=resync)
            if progress is not None:
                progress(mailbox, upto, len(uids))
            return len(stored)

        async def store_next() -> None:  # the oldest batch handed to the Parser, once parsed
            nonlocal added, done, storing
            batch, task = parsing.popleft()
            parsed = await task
            if storing is not None:
                added += await storing
            done += len(batch)
            storing = asyncio.create_task(store(batch, parsed, done))

        async def stop_fetching() -> None:
            if fetching is not None and not fetching.done():
                # Its thread still talks on the connection: no other command may follow there.
                fetching.cancel()
                await self.disconnect(graceful=False)

        try:
            for index, batch in enumerate(batches):
                if fetching is None:
                    fetched = await self._call(session.fetch_batch, batch, self._max_bytes)
                else:
                    fetched, fetching = await fetching, None
                if index + 1 < len(batches):
                    fetching = asyncio.create_task(self._call(session.fetch_batch, batches[index + 1],
                                                              self._max_bytes))
                parsing.append((batch, asyncio.create_task(self._parse(fetched, extract=batch[-1] >= extract_from))))
                if len(parsing) >= PARSE_AHEAD:
                    await store_next()
            while parsing:
                await store_next()
            if storing is not None:
                added += await storing
        except Exception:
            await stop_fetching()
            while parsing:
                await store_next()
            raise
        finally:
            await stop_fetching()
            for _, parse in parsing:
                parse.cancel()
            if storing is not None and not storing.done():
                await asyncio.wait([storing])
            for stage in (fetching, storing):
                if stage is not None and stage.done() and not stage.cancelled():
                    stage.exception()  # retrieved: the fault that ended the sync is raised already
        return added

    async def _parse(self, fetched: list[tuple[int, bytes, bool, int]], *,
                     extract: bool = True) -> list[tuple[int, ParsedMessage, bool]]:
        """(uid, parsed, seen) of a fetched batch; an oversized message is kept as its headers."""
        parsed = iter(await self._parser.parse_many([raw for _, raw, _, size in fetched if size <= self._max_bytes],
                                                    trusted_authserv_ids=self.account.trusted_authserv_ids,
                                                    extract=extract))
        return [(uid, next(parsed) if size <= self._max_bytes else headers_only(
                    raw, f"message of {size} bytes is over the {self._max_bytes}-byte limit", raw_size=size), seen)
                for uid, raw, seen, size in fetched]

    async def run(self, stop: asyncio.Event) -> None:
        """Sync, then wait for mail (IDLE or polling), until stop is set; every fault reconnects.

        The wait also ends when the cache has read state to store on the server (marked by
        a reader in this or another process), within IDLE_TICK.
        """
        wake = threading.Event()  # stop or work to do, as the IDLE thread can see it
        watcher = asyncio.create_task(self._watch(stop, wake))
        try:
            await self._run(stop, wake)
        finally:
            watcher.cancel()
        await self.disconnect()

    async def _watch(self, stop: asyncio.Event, wake: threading.Event) -> None:
        while not stop.is_set():
            await _sleep_or_stop(stop, IDLE_TICK)
            with contextlib.suppress(MailgentError):
                if not stop.is_set() and await self._inbox.has_pending_seen(self.account.name, self.account.mailboxes):
                    wake.set()
        wake.set()

    async def _run(self, stop: asyncio.Event, wake: threading.Event) -> None:
        delay = self.timing.backoff_first
        while not stop.is_set():
            try:
                await self.sync_once()
                self.status.last_error = None
                delay = self.timing.backoff_first
                await self._wait_for_mail(stop, wake)
            except asyncio.CancelledError:
                raise
            except (ImapError, *CONNECTION_FAULTS) as exc:
                error = exc if isinstance(exc, ImapError) else connection_lost(self.account, exc)
                await self._fault(str(error))
                if not error.retry_soon:  # a refused password or a missing mailbox: not in a tight loop
                    await _sleep_or_stop(stop, self.timing.login_retry)
                    continue
                await _sleep_or_stop(stop, delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, self.timing.backoff_max)

    async def _fault(self, message: str) -> None:
        self.status.errors += 1
        self.status.last_error = message
        log.warning("IMAP account %s: %s", self.account.name, message)
        await self.disconnect(graceful=False)

    async def _wait_for_mail(self, stop: asyncio.Event, wake: threading.Event) -> None:
        """Return when there may be new mail or work (or at the keepalive); raise on a dead link."""
        if not stop.is_set():
            wake.clear()  # the watcher sets it again within IDLE_TICK while work is left
        session = await self.connect()
        if not session.has_idle:
            deadline = time.monotonic() + self.timing.poll_interval
            while not wake.is_set() and (left := deadline - time.monotonic()) > 0:
                await _sleep_or_stop(stop, min(left, IDLE_TICK))
            if not stop.is_set():
                await self._call(session.noop)
            return
        # Mail delivered just before IDLE began may not be announced in it: Dovecot's IDLE
        # does a fast sync that skips a Maildir whose new/ changed in the second of its last
        # scan, and only rechecks every 30 s. So the first IDLE after a sync is short, and a
        # NOOP (a full sync on the server) follows it; idle_wait takes what the NOOP announced.
        self.status.idling = True
        try:
            settle = min(self.timing.settle, self.timing.keepalive)
            if not await self._call(session.idle_wait, settle, wake) and not wake.is_set():
                await self._call(session.noop)
                if self.timing.keepalive > settle:
                    await self._call(session.idle_wait, self.timing.keepalive - settle, wake)
        finally:
            self.status.idling = False
        if stop.is_set():
            return
        await self._call(session.noop)  # a hung or silently dead link raises here (socket timeout)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
