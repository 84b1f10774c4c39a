"""The message cache: each message once, parsed, indexed, searchable, and purgeable.

Sources (the embedded SMTP inbox now; IMAP accounts) add parsed messages; readers query
them newest first by account, sender, recipient, subject, label, full text and time.
Beside each message the cache keeps what extraction (extract/) found in it (extractedText, codes,
links, sender auth), and `reindex` re-runs extraction when the extractor improves.
Cached bodies hold one-time codes and magic links: they live in vault.db inside the 0700
data folder, and `purge` removes old ones.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailgent_mcp.db import open_database
from mailgent_mcp.db.backend import Database
from mailgent_mcp.errors import InvalidInput
from mailgent_mcp.inbox.parse import ParsedMessage
from mailgent_mcp.inbox.store import InboxStore, MessageQuery
from mailgent_mcp.settings import (
    VAULT_DB,
    ensure_home,
    load_settings,
    mail_configured,
)
from mailgent_mcp.times import parse_age

if TYPE_CHECKING:
    from mailgent_mcp.inbox.parse import Parser

LOCAL_ACCOUNT = "local"  # the embedded SMTP inbox
LOCAL_MAILBOX = "INBOX"
LOCAL_UIDVALIDITY = 1
MAX_LIMIT = 100
MAX_LABEL_CHARS = 64
CHANGE_POLL_S = 0.05  # how often a waiter looks for mail cached by another process
SMTP_LEASE_PREFIX = "smtp "  # an SMTP inbox address's lease among the pollers' (smtp.lease_name)


@dataclass(frozen=True)
class CachedMessage:
    """A cached message as readers see it."""

    id: int
    account: str
    mailbox: str
    message_id: str | None
    from_addr: str | None
    from_name: str | None
    to: list[str]
    cc: list[str]
    subject: str
    sent_at: float | None
    received_at: float
    text: str
    html: str
    attachments: list[dict[str, object]]
    auth_results: list[str]
    raw_size: int
    problem: str | None
    seen: bool
    labels: list[str]
    extracted_text: str = ""
    codes: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    auth: dict[str, Any] | None = None  # None: not extracted yet (run `inbox reindex`)

    @classmethod
    def from_row(cls, row: dict[str, object]) -> CachedMessage:
        """From a store row."""
        extraction = json.loads(str(row["extraction"])) if row.get("extraction") else {}
        return cls(
            id=int(str(row["id"])), account=str(row["account"]), mailbox=str(row["mailbox"]),
            message_id=_opt(row["message_id"]), from_addr=_opt(row["from_addr"]), from_name=_opt(row["from_name"]),
            to=json.loads(str(row["to_addrs"])), cc=json.loads(str(row["cc_addrs"])), subject=str(row["subject"]),
            sent_at=float(str(row["sent_at"])) if row["sent_at"] is not None else None,
            received_at=float(str(row["received_at"])), text=str(row["text_body"]), html=str(row["html_body"]),
            attachments=json.loads(str(row["attachments"])), auth_results=json.loads(str(row["auth_results"])),
            raw_size=int(str(row["raw_size"])), problem=_opt(row["problem"]), seen=bool(row["seen"]),
            labels=list(row["labels"]) if isinstance(row["labels"], list) else [],
            extracted_text=str(extraction.get("extractedText", "")), codes=list(extraction.get("codes", [])),
            links=list(extraction.get("links", [])), auth=extraction.get("auth"),
        )


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def _dkim_results(value: object) -> tuple[tuple[str, str], ...] | None:
    """The stored DKIM results of a message (see parse.ParsedMessage.dkim_local)."""
    if value is None:
        return None
    return tuple((str(domain), str(result)) for domain, result in json.loads(str(value)))


def _row(account: str, mailbox: str, uidvalidity: int, uid: int, parsed: ParsedMessage, received_at: float,
         seen: bool) -> dict[str, object]:
    return {
        "account": account, "mailbox": mailbox, "uidvalidity": uidvalidity, "uid": uid,
        "message_id": parsed.message_id, "from_addr": parsed.from_addr, "from_name": parsed.from_name,
        "to_addrs": json.dumps(list(parsed.to)), "cc_addrs": json.dumps(list(parsed.cc)),
        "subject": parsed.subject, "sent_at": parsed.date, "received_at": received_at,
        "text_body": parsed.text, "html_body": parsed.html,
        "attachments": json.dumps([asdict(a) for a in parsed.attachments]),
        "auth_results": json.dumps(list(parsed.auth_results)), "raw_size": parsed.raw_size,
        "problem": parsed.problem, "seen": 1 if seen else 0,
        "extraction": json.dumps(parsed.extraction.to_json(), ensure_ascii=False) if parsed.extraction else None,
        "extractor": parsed.extraction.version if parsed.extraction else 0,
        "dkim_local": json.dumps([list(r) for r in parsed.dkim_local]) if parsed.dkim_local is not None else None,
    }


@dataclass(frozen=True)
class AccountStatus:
    """An account's poller as the cache records it."""

    polled_by: str | None  # the holder of a live lease: host:pid:token
    connected: bool
    idle: bool
    last_sync: float | None
    errors: int
    last_error: str | None


class Inbox:
    """The cache in one data folder. Open with `await Inbox.open(home)`; close when done."""

    def __init__(self, db: Database[InboxStore], clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock
        self._arrived = asyncio.Condition()

    @classmethod
    async def open(cls, home: Path, *, clock: Callable[[], float] = time.time) -> Inbox:
        """Open the cache in the data folder home (sharing vault.db with the vault)."""
        return cls(await open_database(ensure_home(home) / VAULT_DB, InboxStore), clock)

    async def close(self) -> None:
        """Close the database."""
        await self._db.close()

    async def __aenter__(self) -> Inbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def add(self, account: str, mailbox: str, uidvalidity: int, uid: int, parsed: ParsedMessage, *,
                  seen: bool = False, rebind: bool = False) -> int | None:
        """Cache a message under its IMAP identity; None when it is cached already.

        rebind=True: a message with the same Message-ID cached under an older UIDVALIDITY of
        this mailbox takes the new identity instead of being cached twice.
        """
        added = await self.add_many(account, mailbox, uidvalidity, [(uid, parsed, seen)], rebind=rebind)
        return added[0] if added else None

    async def add_many(self, account: str, mailbox: str, uidvalidity: int,
                       messages: Sequence[tuple[int, ParsedMessage, bool]], *, last_uid: int | None = None,
                       rebind: bool = False) -> list[int]:
        """Cache a batch of (uid, parsed, seen) in one transaction; the ids of those cached anew.

        last_uid: the mailbox's sync state moves to (uidvalidity, last_uid) in the same
        transaction, so the batch is stored and the progress recorded together or not at all.
        rebind=True: as for `add`, message by message.
        """
        now = self._clock()
        rows = [(_row(account, mailbox, uidvalidity, uid, parsed, now, seen), [*parsed.to, *parsed.cc],
                 parsed.message_id, uid) for uid, parsed, seen in messages]

        def unit(store: InboxStore) -> list[int]:
            added = []
            with store.transaction(durable=False):
                for row, addrs, message_id, uid in rows:
                    if rebind and message_id and store.rebind_message(account, mailbox, message_id, uidvalidity, uid):
                        continue
                    message = store.insert_message(row, addrs)
                    if message is not None:
                        added.append(message)
                if last_uid is not None:
                    store.set_mailbox_state(account, mailbox, uidvalidity, last_uid, now)
            return added

        added = await self._db.run(unit)
        if added:
            await self._notify()
        return added

    async def add_local(self, parsed: ParsedMessage, recipients: Sequence[str]) -> int:
        """Cache a message received by the embedded SMTP inbox; its uid is the next free one."""
        addrs = [*parsed.to, *parsed.cc, *(r.lower() for r in recipients)]
        now = self._clock()

        def unit(store: InboxStore) -> int:
            with store.transaction(durable=False):
                uid = store.next_uid(LOCAL_ACCOUNT, LOCAL_MAILBOX, LOCAL_UIDVALIDITY)
                row = _row(LOCAL_ACCOUNT, LOCAL_MAILBOX, LOCAL_UIDVALIDITY, uid, parsed, now, False)
                message = store.insert_message(row, addrs)
                assert message is not None  # a fresh uid under the write lock
                return message

        message = await self._db.run(unit)
        await self._notify()
        return message

    async def mailbox_state(self, account: str, mailbox: str) -> tuple[int, int] | None:
        """(UIDVALIDITY, last UID) synced for a mailbox, or None before its first sync."""
        return await self._db.run(InboxStore.mailbox_state, account, mailbox)

    async def set_mailbox_state(self, account: str, mailbox: str, uidvalidity: int, last_uid: int) -> None:
        """Record sync progress (after the messages up to last_uid are cached)."""
        now = self._clock()

        def unit(store: InboxStore) -> None:
            with store.transaction(durable=False):
                store.set_mailbox_state(account, mailbox, uidvalidity, last_uid, now)

        await self._db.run(unit)

    async def drop_other_uidvalidities(self, account: str, mailbox: str, uidvalidity: int) -> int:
        """Delete a mailbox's messages cached under any other UIDVALIDITY; the number deleted."""
        def unit(store: InboxStore) -> int:
            with store.transaction(durable=False):
                return store.delete_other_uidvalidities(account, mailbox, uidvalidity)

        return await self._db.run(unit)

    async def _notify(self) -> None:
        async with self._arrived:
            self._arrived.notify_all()

    async def wait_for_mail(self, timeout: float) -> bool:
        """Wait until new mail may be cached (True) or the timeout passes (False).

        Mail cached by this process wakes the waiter at once; mail cached by another process
        on the same folder (the one holding the poller lease) is seen within CHANGE_POLL_S,
        by SQLite's data_version, which moves whenever another connection commits.
        """
        deadline = time.monotonic() + timeout
        version = await self._db.read(InboxStore.data_version)
        while (left := deadline - time.monotonic()) > 0:
            async with self._arrived:
                try:
                    await asyncio.wait_for(self._arrived.wait(), min(left, CHANGE_POLL_S))
                    return True
                except TimeoutError:
                    pass
            if await self._db.read(InboxStore.data_version) != version:
                return True
        return False

    async def account_status(self, names: Sequence[str]) -> dict[str, AccountStatus]:
        """Each named account's poller (if a live process holds its lease) and last sync of any kind."""
        pollers = {str(p["account"]): p for p in await self.pollers()}
        synced = await self.synced_at()
        now = self._clock()
        status = {}
        for name in names:
            p = pollers.get(name, {})
            alive = bool(p) and float(str(p.get("expires_at") or 0)) > now
            # The poller's own record, else the last sync of any kind (`inbox sync` included).
            last = (p.get("last_sync") if alive else None) or synced.get(name)
            status[name] = AccountStatus(
                polled_by=str(p.get("holder")) if alive else None, connected=alive and bool(p.get("connected")),
                idle=alive and bool(p.get("idling")), last_sync=float(str(last)) if last else None,
                errors=int(str(p.get("errors") or 0)), last_error=str(p["last_error"]) if p.get("last_error") else None)
        return status

    async def synced_at(self) -> dict[str, float]:
        """Per account, the time of its last completed mailbox sync."""
        return await self._db.read(InboxStore.synced_at)

    async def pollers(self) -> list[dict[str, object]]:
        """Each account's poller lease and status, as recorded by whichever process polls it."""
        return await self._db.read(InboxStore.poller_rows)

    async def claim_poller(self, account: str, holder: str, ttl: float) -> bool:
        """Take or renew an account's poller lease."""
        now = self._clock()

        def unit(store: InboxStore) -> bool:
            with store.transaction(durable=False):
                return store.claim_poller(account, holder, now, ttl)

        return await self._db.run(unit)

    async def report_poller(self, account: str, holder: str, ttl: float, status: dict[str, object]) -> bool:
        """Heartbeat: renew the lease with the current status; False when it was lost."""
        now = self._clock()

        def unit(store: InboxStore) -> bool:
            with store.transaction(durable=False):
                return store.report_poller(account, holder, now, ttl, status)

        return await self._db.run(unit)

    async def release_poller(self, account: str, holder: str) -> None:
        """Give up an account's lease."""
        def unit(store: InboxStore) -> None:
            with store.transaction(durable=False):
                store.release_poller(account, holder)

        await self._db.run(unit)

    async def read(self, query: MessageQuery) -> list[CachedMessage]:
        """Cached messages matching query, newest first (at most 100)."""
        if not 1 <= query.limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be from 1 to {MAX_LIMIT}.")
        rows = await self._db.read(InboxStore.query_messages, query)
        return [CachedMessage.from_row(r) for r in rows]

    async def mark(self, ids: Sequence[int], *, seen: bool | None = None, label: str | None = None,
                   present: bool = True) -> None:
        """Mark messages read/unread, or add/remove a local label.

        Read state of an IMAP message is queued for its account's poller, which stores it on
        the server (at once when connected, else after it reconnects).
        """
        if label is not None and (not label or len(label) > MAX_LABEL_CHARS or not label.isprintable()):
            raise InvalidInput(f"A label is 1-{MAX_LABEL_CHARS} printable characters.")

        def unit(store: InboxStore) -> None:
            with store.transaction(durable=False):
                if seen is not None:
                    store.set_seen(ids, seen, LOCAL_ACCOUNT)
                if label is not None:
                    store.set_label(ids, label, present)

        await self._db.run(unit)

    async def pending_seen(self, account: str, mailbox: str) -> list[tuple[int, int, int, bool]]:
        """Read-state changes of a mailbox waiting for the server: (id, uidvalidity, uid, seen)."""
        return await self._db.read(InboxStore.pending_seen, account, mailbox)

    async def has_pending_seen(self, account: str, mailboxes: Sequence[str]) -> bool:
        """Whether the poller of an account has read state to store on the server."""
        return await self._db.read(InboxStore.has_pending_seen, account, mailboxes)

    async def clear_pending_seen(self, done: Sequence[tuple[int, bool]]) -> None:
        """Forget queued (id, seen) changes the server has taken."""
        def unit(store: InboxStore) -> None:
            with store.transaction(durable=False):
                store.clear_pending_seen(done)

        await self._db.run(unit)

    async def apply_server_seen(self, account: str, mailbox: str, uidvalidity: int, flags: dict[int, bool]) -> int:
        """Mirror the server's \\Seen flags {uid: seen} into the cache; the number changed."""
        if not flags:
            return 0

        def unit(store: InboxStore) -> int:
            with store.transaction(durable=False):
                return store.apply_server_seen(account, mailbox, uidvalidity, flags)

        changed = await self._db.run(unit)
        if changed:
            await self._notify()
        return changed

    async def first_uid(self, account: str, mailbox: str, uidvalidity: int) -> int | None:
        """The lowest uid cached for a mailbox under a UIDVALIDITY."""
        return await self._db.read(InboxStore.first_uid, account, mailbox, uidvalidity)

    async def existing(self, ids: Sequence[int]) -> set[int]:
        """Which of these message ids are cached."""
        return await self._db.read(InboxStore.existing, ids)

    async def issue_address(self, address: str, account: str) -> float:
        """Record that inbox_address issued an address (the first issue stands); when it was issued."""
        now = self._clock()

        def unit(store: InboxStore) -> float:
            with store.transaction(durable=False):
                return store.issue_address(address, account, now)

        return await self._db.run(unit)

    async def issued_at(self, address: str) -> float | None:
        """When inbox_address issued an address, or None when it did not (or the record was purged)."""
        return await self._db.read(InboxStore.issued_at, address)

    async def smtp_elsewhere(self) -> str | None:
        """HOST:PORT of an SMTP inbox whose lease a live server process of this folder holds, if any."""
        now = self._clock()
        for p in await self.pollers():
            name = str(p["account"])
            if name.startswith(SMTP_LEASE_PREFIX) and float(str(p["expires_at"])) > now:
                return name.removeprefix(SMTP_LEASE_PREFIX)
        return None

    async def handed_out(self, ids: Sequence[int]) -> set[tuple[int, str]]:
        """(message, item) pairs already handed out by inbox_wait, among ids."""
        return await self._db.read(InboxStore.handed_out, ids)

    async def hand_out(self, message: int, items: Sequence[str]) -> None:
        """Record that items (codes, links) of a message were handed out."""
        now = self._clock()

        def unit(store: InboxStore) -> None:
            with store.transaction(durable=False):
                store.hand_out(message, items, now)

        await self._db.run(unit)

    async def reindex(self, parser: Parser, *, trusted: Mapping[str, Sequence[str]] | None = None,
                      everything: bool = False, account: str | None = None, batch: int = 200,
                      progress: Callable[[int, int], None] | None = None) -> int:
        """Re-run extraction on cached messages extracted by an older extractor; the number done.

        Works from the cached fields (subject, bodies, From, Authentication-Results, the DKIM
        results of when it was cached): the raw message is not kept. trusted: the authserv-ids
        each account trusts (an account missing from it, the SMTP inbox's included, trusts
        none). Each batch commits on its own, so an interrupted reindex keeps what it did and
        the next run goes on from there. everything=True first marks every message (of
        account, when given) stale. progress(done, total) is called after each batch.
        """
        from mailgent_mcp.inbox.extract import EXTRACTOR_VERSION
        from mailgent_mcp.inbox.parse import ExtractInput

        trust = {name: tuple(ids) for name, ids in (trusted or {}).items() if name != LOCAL_ACCOUNT}
        if everything:
            def mark(store: InboxStore) -> int:
                with store.transaction(durable=False):
                    return store.mark_extractions_stale(account)

            await self._db.run(mark)
        total = await self._db.run(InboxStore.count_stale_extractions, EXTRACTOR_VERSION)
        done, after = 0, 0
        while rows := await self._db.run(InboxStore.stale_extractions, EXTRACTOR_VERSION, after, batch):
            inps = [ExtractInput(str(row["subject"]), str(row["text_body"]), str(row["html_body"]),
                                 _opt(row["from_addr"]), tuple(json.loads(str(row["auth_results"]))),
                                 trust.get(str(row["account"]), ()), _dkim_results(row["dkim_local"]))
                    for row in rows]
            # A message that failed (or overran the time limit) is recorded as done, empty,
            # so hostile mail is not retried by every reindex.
            results: list[tuple[int, str | None, int]] = [
                (int(row["id"]), json.dumps(extraction.to_json(), ensure_ascii=False) if extraction else None,
                 EXTRACTOR_VERSION)
                for row, extraction in zip(rows, await parser.extract_many(inps), strict=True)]

            def write(store: InboxStore, results: list[tuple[int, str | None, int]] = results) -> None:
                with store.transaction(durable=False):
                    store.set_extractions(results)

            await self._db.run(write)
            done += len(rows)
            after = int(rows[-1]["id"])
            if progress is not None:
                progress(done, total)
        return done

    async def authserv_ids_seen(self, account: str, limit: int = 1000) -> dict[str | None, int]:
        """How many of an account's newest cached messages carry each authserv-id in their topmost
        Authentication-Results header (None: a header without one, or no header)."""
        from mailgent_mcp.inbox.extract import authserv_id_of

        counts: dict[str | None, int] = {}
        for value in await self._db.read(InboxStore.auth_results_of, account, limit):
            headers = json.loads(value)
            found = authserv_id_of(headers[0]) if headers else None
            counts[found] = counts.get(found, 0) + 1
        return counts

    async def purge(self, older_than: float) -> int:
        """Delete messages received more than older_than seconds ago; the number deleted."""
        if older_than < 0:
            raise InvalidInput("The age to purge must be zero or more.")
        before = self._clock() - older_than

        def unit(store: InboxStore) -> int:
            with store.transaction(durable=True):
                return store.purge_messages(before)

        return await self._db.run(unit)


async def mail_can_arrive(inbox: Inbox, home: Path, environ: Mapping[str, str], smtp_listen: str | None) -> bool:
    """True when mail can reach this folder's cache: a source configured here, or an SMTP inbox another server runs."""
    settings = load_settings(home, environ, smtp_listen=smtp_listen)
    return mail_configured(settings) or await inbox.smtp_elsewhere() is not None


def parse_since(text: str, now: float) -> float:
    """A moment: an age back from now ("10m", "2d") or an ISO 8601 time (UTC when it has no zone)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            return now - parse_age(text)
        except InvalidInput:
            raise InvalidInput(f"{text[:40]!r} is neither an age (10m, 2d) nor an ISO time "
                               "(2026-01-31T12:00:00Z).") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
