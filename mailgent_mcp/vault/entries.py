"""The vault: named entries whose every field value is sealed, TOTP codes, and the audit chain.

A stored TOTP seed goes in through `put` and never comes out: `get` shows its
parameters, `totp` shows a code. Each change appends a hash-chained audit row, recording
the entry's resulting state, in the same transaction as its effect, so there is no change
without its record; a read checks the chain's tip and its entry against the newest record
before it answers (see audit.py). Each sealed value is bound to its entry, field and
version, so a value copied from another row, or from an older copy of its own row, does not
open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import secrets
import time
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import NoReturn, TypeVar

from mailgent_mcp.db import open_database
from mailgent_mcp.db.backend import Database
from mailgent_mcp.errors import (
    AuditChainBroken,
    EntryExists,
    EntryNotFound,
    InvalidInput,
    MailgentError,
    NoBackupCodes,
    NoTotpSeed,
    VaultCorrupt,
)
from mailgent_mcp.settings import (
    MASTER_KEY_FILE,
    VAULT_DB,
    default_home,
    ensure_home,
    read_environment,
)
from mailgent_mcp.times import iso
from mailgent_mcp.vault import crypto, otp
from mailgent_mcp.vault.audit import AuditChain, Record, clean_actor
from mailgent_mcp.vault.fields import (
    BACKUP_FIELD,
    MAX_NAME_CHARS,
    SECRET_FIELD,
    USED_BACKUP_FIELD,
    given,
    parse_type,
    take_backup_codes,
    take_seed,
    validate_fields,
    validate_name,
)
from mailgent_mcp.vault.fields import (
    MAX_FIELDS as MAX_FIELDS,
)
from mailgent_mcp.vault.journal import Journal, orphans
from mailgent_mcp.vault.keys import (
    AUDIT_KEY_PURPOSE,
    KeyKind,
    key_change_lock,
    key_choice,
    pending_key_files,
    unlock_or_create,
)
from mailgent_mcp.vault.models import (
    AuditRecord,
    AuditReport,
    BackupCode,
    EntrySummary,
    EntryType,
    EntryView,
    StoredEntry,
    TotpCode,
    TotpInfo,
)
from mailgent_mcp.vault.passgen import PasswordRule, generate
from mailgent_mcp.vault.passphrase import check_passphrase
from mailgent_mcp.vault.store import EntryRow, KeyringRow, VaultStore

__all__ = ["MAX_FIELDS", "SECRET_FIELD", "Vault"]

log = logging.getLogger(__name__)

T = TypeVar("T")

ACTOR_CLI = "cli"
SEED_CACHE_SIZE = 256
AUDIT_FLUSH_DELAY_S = 0.05  # queued read rows are written once the reads pause this long ...
AUDIT_FLUSH_MAX_S = 1.0  # ... or, under a steady stream of reads, this long after the first
AUDIT_RETRY_MAX_S = 15.0  # queued rows that could not be written are retried, backing off to this
ENTRIES_KEY_PURPOSE = "mailgent-mcp entries v1"
DEFAULT_MIN_REMAINING_S = 5  # a code handed out stays valid at least this long (a third of a shorter period)
KEPT_STEPS = 10  # handed-out TOTP steps remembered per entry; older codes are long expired
PROGRESS_EVERY_S = 5.0  # while totp waits for the next step, progress is reported this often

HIDDEN_FIELDS = frozenset({SECRET_FIELD, BACKUP_FIELD, USED_BACKUP_FIELD})  # never in get's data

Progress = Callable[[float, float], Awaitable[None]]
Codes = list[str]  # named here: inside Vault, `list` is its method


def _infer_type(fields: Mapping[str, str | None], *, has_seed: bool) -> EntryType:
    if fields.get("password"):
        return EntryType.LOGIN
    return EntryType.TOTP if has_seed else EntryType.NOTE


def _safe_label(text: str | None) -> str | None:
    """A name fit for the audit log even when it was rejected: printable and bounded."""
    if text is None:
        return None
    shown = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in str(text)[: MAX_NAME_CHARS + 1])
    return shown[: MAX_NAME_CHARS + 16]


def _aad(name: str, field: str, version: int) -> bytes:
    # Names hold no control characters and field names match FIELD_NAME, so NUL separates unambiguously.
    # Version 0: a value sealed before versions, bound to its entry and field only.
    aad = b"entry\x00" + name.encode("utf-8") + b"\x00" + field.encode("ascii")
    return aad if version == 0 else aad + b"\x00" + version.to_bytes(8, "big")


def _new_version() -> int:
    """A version for the values sealed by one change: random, so no other change ever seals under it."""
    return secrets.randbits(62) + 1


def _outcome(exc: BaseException) -> str:
    return {
        EntryExists: "exists",
        EntryNotFound: "not_found",
        NoTotpSeed: "no_totp",
        NoBackupCodes: "no_backup_codes",
        VaultCorrupt: "corrupt",
        AuditChainBroken: "chain_broken",
    }.get(type(exc), "invalid" if isinstance(exc, InvalidInput) else "error")


class Vault:
    """An unlocked vault on one data folder. Open with `await Vault.open()`; close when done."""

    def __init__(
        self,
        db: Database[VaultStore],
        home: Path,
        dek: bytes,
        keyring: KeyringRow,
        *,
        actor: str,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._db = db
        self.home = home
        self._dek = dek
        self._keyring = keyring  # the row this vault was unlocked with: a key change must still find it
        self._sealer = crypto.Sealer(crypto.subkey(dek, ENTRIES_KEY_PURPOSE))
        self._chain = AuditChain(crypto.subkey(dek, AUDIT_KEY_PURPOSE), clock)
        self.key_kind: str = keyring.kek_kind
        self.actor = actor
        self._clock = clock
        self._sleep = sleep
        # Audit rows of reads and refused calls, waiting for the database thread (see _queue_audit),
        # and every row not yet in the chain, as the journal file holds them.
        self._pending: list[Record] = []
        self._unwritten: list[Record] = []
        self._journal = Journal(home)
        self._write_lock = asyncio.Lock()  # one writer of queued rows at a time, in order
        self._flusher: asyncio.Task[None] | None = None
        self._flush_now = asyncio.Event()
        self._last_queued = 0.0  # loop time of the newest queued row
        self._retry_s = 0.0
        self._closing = False
        # Opened seeds by (entry, sealed blob): a changed or deleted seed never matches again.
        self._seeds: dict[tuple[str, bytes], otp.OtpSeed] = {}
        # The read connection's data_version at which the chain's tip, or an entry, was last found sound.
        self._tip_sound_at: int | None = None
        self._states_recorded = True  # set by _recover
        self._checked_rows: dict[str, tuple[int, EntryRow]] = {}
        # Entries checked by a code's claim, keyed by the connection's (data_version, total_changes):
        # the first moves when another connection commits, the second when this one writes, so a
        # key seen again means the entry is as it was checked.
        self._claim_rows: dict[str, tuple[tuple[bool, int, int], EntryRow]] = {}

    def __repr__(self) -> str:
        return f"Vault(home={str(self.home)!r})"

    # -- opening ----------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        home: Path | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        actor: str = ACTOR_CLI,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> Vault:
        """Open the vault in home (created on first use) and unlock it with the environment's key."""
        env = os.environ if environ is None else environ
        home = ensure_home(home if home is not None else default_home(env))
        choice = key_choice(read_environment(env))
        db = await open_database(home / VAULT_DB, VaultStore)
        try:
            dek, keyring = await db.run(unlock_or_create, home, choice, clock, actor)
            vault = cls(db, home, dek, keyring, actor=actor, clock=clock, sleep=sleep)
            await db.run(vault._recover)
        except BaseException:
            await db.close()
            raise
        return vault

    def _recover(self, store: VaultStore) -> None:
        """Write the rows of ended processes' journals; record every entry's state once in a vault made before states.

        A broken chain takes neither (they wait for `audit acknowledge`), nor does a vault.db
        that another process keeps locked (the next open tries again); neither keeps the vault
        from opening, so that `audit verify` can say what is wrong.
        """
        try:
            with orphans(self.home) as records:
                if records:
                    with store.transaction(durable=False, patient=False):
                        new = [r for r in records
                               if not store.audit_has_row(r.at, r.op, r.entry, clean_actor(r.actor), r.outcome)]
                        self._chain.append_many(store, new)
                    log.warning("wrote %d audit rows left in the journals of processes that ended", len(new))
            if not store.has_states():
                with store.transaction(patient=False):
                    if not store.has_states():
                        now = self._clock()
                        rows = [Record("baseline", e.name, self.actor, "ok", now, self._chain.entry_state(e))
                                for e in store.all_entries()]
                        rows.append(Record("baseline", None, self.actor, "ok", now, self._chain.vault_state()))
                        self._chain.append_many(store, rows)
                        log.info("recorded the state of %d entries in the audit log", len(rows) - 1)
        except AuditChainBroken as exc:
            log.error("%s", exc)
        except MailgentError as exc:
            log.warning("left for the next open: ended processes' audit rows, entry states (%s)", exc)
        self._states_recorded = store.has_states()

    async def close(self) -> None:
        """Write any queued audit rows and close the database; rows that cannot be written stay in the journal."""
        self._closing = True
        try:
            # Not the whole busy timeout: rows that cannot be written now are safe in the journal,
            # and the next process to open the vault writes them.
            await self.flush_audit(patient=False)
        except MailgentError as exc:
            log.error("%d audit rows could not be written to vault.db (%s) They stay in %s, and the next "
                      "mailgent-mcp to open this vault writes them.", len(self._unwritten), exc, self._journal.path)
        finally:
            if self._flusher is not None:
                self._flusher.cancel()
            self._journal.close(keep=bool(self._unwritten))
            self._seeds.clear()
            self._checked_rows.clear()
            await self._db.close()

    async def __aenter__(self) -> Vault:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- running operations -----------------------------------------------------------

    async def _audited(self, op: str, entry: str | None, actor: str | None,
                       body: Callable[[VaultStore], tuple[T, bytes | None]]) -> T:
        """A change: body, its audit row (with the state body returns) and the reads queued before it commit together.

        One transaction, synced to disk, so a change waits for vault.db's write lock once. A
        failure is queued as a row of its own, as a read's is.
        """
        who = actor or self.actor

        def unit(store: VaultStore, earlier: list[Record]) -> T:
            with store.transaction(durable=True):
                self._chain.append_many(store, earlier)  # reads queued before this change keep their place
                result, state = body(store)
                self._chain.append_many(store, [Record(op, entry, who, "ok", self._clock(), state)])
            return result

        async with self._write_lock:
            earlier = self._take_pending()
            try:
                result = await self._db.run(unit, earlier)
            except BaseException as exc:
                self._pending[:0] = earlier
                if isinstance(exc, MailgentError):
                    self._queue_audit(op, _safe_label(entry), who, _outcome(exc))
                raise
            self._written(earlier)
        return result

    async def _read(self, op: str, entry: str | None, actor: str | None,
                    body: Callable[[VaultStore, int | None], T]) -> T:
        """A read: body(store, version) runs on the read connection after the chain's tip is checked.

        version: the read connection's data_version (None on the database thread's connection,
        where a busy read falls back), for _entry's cache. The read's audit row is queued.
        """
        def checked(store: VaultStore) -> T:
            version = store.data_version() if store.reader else None
            if version is None or version != self._tip_sound_at:
                self._chain.check_tip(store)
                self._tip_sound_at = version
            return body(store, version)

        try:
            result = await self._db.read(checked)
        except MailgentError as exc:
            self._queue_audit(op, _safe_label(entry), actor, _outcome(exc))
            raise
        self._queue_audit(op, entry, actor, "ok")
        return result

    def _queue_audit(self, op: str, entry: str | None, actor: str | None, outcome: str) -> None:
        """Record a read or a refused call: in the journal now, in the chain when the database thread is free.

        Reads do not wait for their audit row: a write transaction per read would double the
        cost of a code. The row keeps the time of the read; rows are written in one
        transaction once reads pause for AUDIT_FLUSH_DELAY_S, or AUDIT_FLUSH_MAX_S after the
        first under a steady stream; a change first writes the rows queued before it; close()
        (and audit_tail/audit_verify) writes them all. A row that cannot be written yet is
        retried, and is in this process's journal until it is in the chain (journal.py).
        """
        record = Record(op, entry, actor or self.actor, outcome, self._clock())
        self._pending.append(record)
        self._unwritten.append(record)
        self._journal.append(record)
        self._last_queued = asyncio.get_running_loop().time()
        self._schedule_flush()

    def _schedule_flush(self, retry_after: float | None = None) -> None:
        if self._closing or (self._flusher is not None and not self._flusher.done()):
            return
        self._flusher = asyncio.get_running_loop().create_task(self._flush_pending(retry_after))

    def _take_pending(self) -> list[Record]:
        rows, self._pending = self._pending, []
        return rows

    def _written(self, rows: list[Record]) -> None:
        """rows are in the chain: the journal keeps only the rest."""
        if not rows:
            return
        done = {id(r) for r in rows}
        self._unwritten = [r for r in self._unwritten if id(r) not in done]
        self._journal.reset(self._unwritten)

    def _append_rows(self, store: VaultStore, rows: list[Record], patient: bool) -> None:
        with store.transaction(durable=False, patient=patient):
            self._chain.append_many(store, rows)

    async def _write_pending(self, *, patient: bool = True) -> None:
        """Write the queued rows in one transaction; on failure they stay queued (and in the journal) and it raises.

        patient=False (the background flusher, which retries) gives up soon on another
        process's write lock, so that a change queued behind it waits for the lock only once.
        """
        async with self._write_lock:
            rows = self._take_pending()
            if not rows:
                return
            try:
                await self._db.run(self._append_rows, rows, patient)
            except BaseException:
                self._pending[:0] = rows
                raise
            self._written(rows)

    async def _flush_pending(self, retry_after: float | None) -> None:
        # Rows are written when the reads pause: writing them takes the GIL and a CPU from the
        # event loop, which would then answer the calls of a burst late. A burst's rows go in
        # one transaction; a steady stream of reads has its rows written at least every second.
        loop = asyncio.get_running_loop()
        if retry_after is not None:
            await self._pause(retry_after)
        else:
            deadline = loop.time() + AUDIT_FLUSH_MAX_S
            while (wait := min(self._last_queued + AUDIT_FLUSH_DELAY_S, deadline) - loop.time()) > 0:
                if await self._pause(wait):
                    break
        try:
            await self._write_pending(patient=False)
            self._retry_s = 0.0
        except MailgentError as exc:
            self._retry_s = min(max(self._retry_s * 2, AUDIT_FLUSH_MAX_S), AUDIT_RETRY_MAX_S)
            log.error("could not write %d audit rows yet (%s); they are kept and retried in %.0f s",
                      len(self._pending), exc, self._retry_s)
            self._flusher = None
            self._schedule_flush(self._retry_s)

    async def _pause(self, seconds: float) -> bool:
        """Wait up to seconds; True when flush_audit asked for the rows now."""
        try:
            await asyncio.wait_for(self._flush_now.wait(), seconds)
        except TimeoutError:
            return False
        self._flush_now.clear()
        return True

    async def flush_audit(self, *, patient: bool = True) -> None:
        """Write every queued audit row now; raises (keeping them queued) when vault.db cannot take them.

        patient=False gives up soon on another process's write lock (the rows stay in the journal).
        """
        self._flush_now.set()  # a waiting flusher writes at once; this writes whatever is left after it
        await self._write_pending(patient=patient)

    async def _refuse(self, op: str, entry: object, actor: str | None, exc: MailgentError) -> NoReturn:
        """Audit a call refused before it reached the database, then raise its error."""
        self._queue_audit(op, _safe_label(entry if isinstance(entry, str) else None), actor, _outcome(exc))
        raise exc

    async def _checked_name(self, op: str, name: object, actor: str | None) -> str:
        try:
            return validate_name(name)
        except InvalidInput as exc:
            await self._refuse(op, name, actor, exc)

    async def audit_tail(self, limit: int = 20) -> list[AuditRecord]:
        """The newest audit rows, oldest first."""
        await self.flush_audit()
        return await self._db.run(self._chain.tail, limit)

    async def audit_verify(self) -> AuditReport:
        """Walk the whole chain, then compare every entry with its newest recorded state."""
        try:
            await self.flush_audit()
        except MailgentError as exc:
            log.warning("queued audit rows not written before verifying: %s", exc)
        report = await self._db.run(self._chain.verify)
        return report.model_copy(update={"unwritten": len(self._unwritten)})

    async def audit_acknowledge(self, actor: str | None = None) -> str:
        """Record a break of the chain's tip in the log itself, so that the vault goes on; the break found."""
        def unit(store: VaultStore) -> str:
            with store.transaction(durable=True):
                return self._chain.acknowledge(store, actor or self.actor)

        problem = await self._db.run(unit)
        log.warning("audit log break acknowledged: %s", problem)
        await self._db.run(self._recover)  # journals and states that waited for a sound chain
        await self.flush_audit()
        return problem

    # -- sealing ------------------------------------------------------------------------

    def _seal(self, name: str, field: str, value: str, version: int) -> bytes:
        return self._sealer.seal(value.encode("utf-8"), _aad(name, field, version))

    def _open(self, name: str, field: str, blob: bytes, version: int) -> str:
        try:
            return self._sealer.open(blob, _aad(name, field, version)).decode("utf-8", "surrogatepass")
        except crypto.OpenFailed:
            raise VaultCorrupt(
                f"The stored field {field!r} of entry {name!r} failed its integrity check: it was altered, moved "
                "from another entry or rolled back to an older value. Store the value again with vault_put, or "
                "restore vault.db from a backup."
            ) from None

    def _open_seed(self, row: EntryRow) -> otp.OtpSeed:
        blob = row.fields[SECRET_FIELD]
        cached = self._seeds.get((row.name, blob))
        if cached is not None:
            return cached
        record = json.loads(self._open(row.name, SECRET_FIELD, blob, row.versions.get(SECRET_FIELD, 0)))
        seed = otp.OtpSeed(seed=bytes.fromhex(record["seed"]), params=otp.OtpParams.from_dict(record["params"]))
        if len(self._seeds) >= SEED_CACHE_SIZE:
            self._seeds.clear()
        self._seeds[(row.name, blob)] = seed
        return seed

    def _seal_seed(self, name: str, seed: otp.OtpSeed, version: int) -> bytes:
        record = {"seed": seed.seed.hex(), "params": seed.params.to_dict()}
        return self._seal(name, SECRET_FIELD, json.dumps(record, sort_keys=True), version)

    def _entry(self, store: VaultStore, name: str, version: int | None) -> EntryRow | None:
        """An entry checked against its recorded state; or None. Reused while no connection has committed since.

        SQLite's data_version of the read connection moves whenever any other connection
        commits (this process's writes included), so an entry read and checked at a version is
        the entry as long as the version stays.
        """
        if version is not None:
            hit = self._checked_rows.get(name)
            if hit is not None and hit[0] == version:
                return hit[1]
        row = store.get_entry(name)
        if row is not None:
            self._check_state(row)
        if version is not None:
            if len(self._checked_rows) >= SEED_CACHE_SIZE:
                self._checked_rows.clear()
            if row is None:
                self._checked_rows.pop(name, None)
            else:
                self._checked_rows[name] = (version, row)
        return row

    def _check_state(self, row: EntryRow) -> None:
        """Refuse an entry that differs from the state its newest audit row recorded (edited outside the vault)."""
        if row.recorded_state is None and not self._states_recorded:
            return  # a vault made before states, whose states could not be recorded yet (see _recover)
        if row.recorded_state is None or row.recorded_state != self._chain.entry_state(row):
            raise VaultCorrupt(
                f"Entry {row.name!r} does not match its last recorded change: its type, fields or values were "
                "edited, rolled back or added outside mailgent-mcp. Nothing was read or changed. Restore vault.db "
                "from a backup, or delete the entry and store it again; `mailgent-mcp audit verify` lists every "
                "such entry."
            )

    def _backup_codes(self, row: EntryRow, field: str = BACKUP_FIELD) -> list[str] | None:
        """An entry's unused (or used) recovery codes; None when it has none stored."""
        blob = row.fields.get(field)
        if blob is None:
            return None
        codes = json.loads(self._open(row.name, field, blob, row.versions.get(field, 0)))
        return [str(c) for c in codes]

    def _info(self, row: EntryRow, seed: otp.OtpSeed | None) -> dict[str, object]:
        codes = self._backup_codes(row)
        return {
            "name": row.name,
            "type": EntryType(row.type),
            "has_totp": SECRET_FIELD in row.fields,
            "totp": _totp_info(seed.params) if seed else None,
            "fields": sorted(f for f in row.fields if f != USED_BACKUP_FIELD),
            "backup_codes_remaining": len(codes) if codes is not None else None,
            "created_at": iso(row.created_at),
            "updated_at": iso(row.updated_at),
        }

    # -- operations -------------------------------------------------------------------

    async def put(
        self,
        name: str,
        data: Mapping[str, object] | None = None,
        type: str | EntryType | None = None,
        *,
        totp: Mapping[str, object] | None = None,
        seed: otp.OtpSeed | None = None,
        if_absent: bool = False,
        password: PasswordRule | None = None,
        actor: str | None = None,
    ) -> StoredEntry:
        """Create or update an entry: given fields are replaced, None removes one, others are kept.

        data["secret"] (or a field named like it: totp_secret, seed, otpauth...) takes a base32
        seed or an otpauth:// URI; `totp` gives algorithm, digits, period, issuer and account
        for a bare base32 seed; `seed` stores an already parsed one. An otpauth:// URI in any
        other field is refused. data["backupCodes"] takes recovery codes (a list, or one string
        of them); new ones replace the old, used ones included. `password` makes a random
        password by that rule and stores it as data["password"]; the result shows it once.
        With if_absent=True an existing entry is left alone and EntryExists raised.
        """
        try:
            clean_name = validate_name(name)
            raw = dict(data) if isinstance(data, Mapping) else data
            codes = take_backup_codes(raw)
            fields = validate_fields(raw or {})
            if given(codes):
                fields[BACKUP_FIELD] = json.dumps(codes) if codes is not None else None
                fields[USED_BACKUP_FIELD] = None  # new codes: the old used ones mean nothing
            made = None
            if password is not None:
                if fields.get("password") is not None:
                    raise InvalidInput("Give either data.password or generate_password, not both.")
                made = fields["password"] = generate(password)
            type_ = parse_type(type) if type is not None else None
            secret_text = take_seed(fields)
            if secret_text is not None:
                if seed is not None:
                    raise InvalidInput("Give the TOTP seed once: either data.secret or a parsed seed.")
                seed = _parse_seed(secret_text, totp or {})
            elif totp:
                raise InvalidInput("TOTP options (algorithm, digits, period...) apply only with data.secret.")
            if seed is not None:
                _check_storable(seed)
                fields.pop(SECRET_FIELD, None)  # stored below as a sealed seed record, not as text
        except MailgentError as exc:
            await self._refuse("put", name, actor, exc)
        # Seal before taking the write lock: the lock is held only for the SQL.
        version = _new_version()
        sealed = {f: (self._seal(clean_name, f, v, version) if v is not None else None) for f, v in fields.items()}
        if seed is not None:
            sealed[SECRET_FIELD] = self._seal_seed(clean_name, seed, version)

        def body(store: VaultStore) -> tuple[StoredEntry, bytes]:
            now = self._clock()
            row = store.get_entry(clean_name)
            if row is not None and if_absent:
                raise EntryExists(clean_name)
            if row is None:
                final_type = (type_ or _infer_type(fields, has_seed=seed is not None)).value
                entry_id, created = store.insert_entry(clean_name, final_type, now), now
                blobs, versions = {}, {}
            else:
                self._check_state(row)  # a change must not adopt what was edited outside the vault
                entry_id, created, final_type = row.id, row.created_at, (type_.value if type_ else row.type)
                blobs, versions = dict(row.fields), dict(row.versions)
                store.update_entry(entry_id, final_type, now)
            for field, blob in sealed.items():
                if blob is None:
                    store.delete_field(entry_id, field)
                    blobs.pop(field, None)
                    versions.pop(field, None)
                else:
                    store.set_field(entry_id, field, blob, version)
                    blobs[field], versions[field] = blob, version
            saved = EntryRow(entry_id, clean_name, final_type, created, now, blobs, versions)
            shown = seed if seed is not None else (self._open_seed(saved) if SECRET_FIELD in blobs else None)
            info = StoredEntry.model_validate({**self._info(saved, shown), "generated_password": made})
            return info, self._chain.entry_state(saved)

        info = await self._audited("put", clean_name, actor, body)
        log.info("stored entry %s", clean_name)
        return info

    async def get(self, name: str, *, actor: str | None = None) -> EntryView:
        """An entry with its field values; for a TOTP seed, only its parameters."""
        clean_name = await self._checked_name("get", name, actor)

        def body(store: VaultStore, version: int | None) -> EntryView:
            row = self._entry(store, clean_name, version)
            if row is None:
                raise EntryNotFound(clean_name)
            data = {f: self._open(clean_name, f, blob, row.versions.get(f, 0))
                    for f, blob in row.fields.items() if f not in HIDDEN_FIELDS}
            seed = self._open_seed(row) if SECRET_FIELD in row.fields else None
            return EntryView.model_validate({**self._info(row, seed), "data": data})

        return await self._read("get", clean_name, actor, body)

    async def list(self, prefix: str = "", *, actor: str | None = None) -> list[EntrySummary]:
        """Entries whose name starts with prefix (all by default), sorted by name."""
        if not isinstance(prefix, str) or len(prefix) > MAX_NAME_CHARS:
            await self._refuse("list", None, actor, InvalidInput(
                f"The prefix must be a string of at most {MAX_NAME_CHARS} characters."))
        prefix = unicodedata.normalize("NFC", prefix)

        def body(store: VaultStore, version: int | None) -> list[EntrySummary]:
            rows = store.list_entries(prefix, SECRET_FIELD)
            return [EntrySummary(name=n, type=EntryType(t), has_totp=h, updated_at=iso(u)) for n, t, h, u in rows]

        return await self._read("list", prefix or None, actor, body)

    async def delete(self, name: str, *, actor: str | None = None) -> bool:
        """Remove an entry and all its fields; EntryNotFound when there is none."""
        clean_name = await self._checked_name("delete", name, actor)

        def body(store: VaultStore) -> tuple[bool, bytes]:
            row = store.get_entry(clean_name, only=SECRET_FIELD)
            if row is None:
                raise EntryNotFound(clean_name)
            store.delete_entry(row.id)
            return True, self._chain.absent_state(clean_name)

        deleted = await self._audited("delete", clean_name, actor, body)
        log.info("deleted entry %s", clean_name)
        return deleted

    async def use_backup_code(self, name: str, *, actor: str | None = None) -> BackupCode:
        """Hand out one unused recovery code of an entry and mark it used, in one transaction.

        Codes go in the order they were stored; two callers, in any processes, never get the
        same one. NoBackupCodes when none is stored or all were used.
        """
        clean_name = await self._checked_name("backup_code", name, actor)

        def body(store: VaultStore) -> tuple[BackupCode, bytes]:
            row = store.get_entry(clean_name)
            if row is None:
                raise EntryNotFound(clean_name)
            self._check_state(row)
            codes = self._backup_codes(row)
            if not codes:
                raise NoBackupCodes(clean_name, all_used=codes is not None)
            used = self._backup_codes(row, USED_BACKUP_FIELD) or []
            code = codes.pop(0)
            used.append(code)
            version, now = _new_version(), self._clock()
            blobs, versions = dict(row.fields), dict(row.versions)
            for field, value in ((BACKUP_FIELD, codes), (USED_BACKUP_FIELD, used)):
                blobs[field] = self._seal(clean_name, field, json.dumps(value), version)
                versions[field] = version
                store.set_field(row.id, field, blobs[field], version)
            store.update_entry(row.id, row.type, now)
            saved = EntryRow(row.id, clean_name, row.type, row.created_at, now, blobs, versions)
            return BackupCode(name=clean_name, code=code, remaining=len(codes)), self._chain.entry_state(saved)

        return await self._audited("backup_code", clean_name, actor, body)

    async def backup_codes(self, name: str, *, actor: str | None = None) -> tuple[Codes, Codes]:
        """An entry's recovery codes, (unused, used), for a person to see (the CLI); NoBackupCodes when none."""
        clean_name = await self._checked_name("backup_list", name, actor)

        def body(store: VaultStore, version: int | None) -> tuple[Codes, Codes]:
            row = self._entry(store, clean_name, version)
            if row is None:
                raise EntryNotFound(clean_name)
            codes = self._backup_codes(row)
            if codes is None:
                raise NoBackupCodes(clean_name, all_used=False)
            return codes, self._backup_codes(row, USED_BACKUP_FIELD) or []

        return await self._read("backup_list", clean_name, actor, body)

    async def totp(
        self, name: str, *, min_remaining: int | None = None, unused_only: bool = True, at: float | None = None,
        actor: str | None = None, progress: Progress | None = None,
    ) -> TotpCode:
        """A code of an entry's seed that no one was handed before, with at least min_remaining seconds left.

        min_remaining defaults to DEFAULT_MIN_REMAINING_S (a third of the period for a shorter
        one). With unused_only (the default) each time step's code is handed out once, across
        calls and processes on the data folder: when the current one was, or has too little
        time left, the call waits for the next step (progress(waited, expected) is called while
        it waits; cancelling it hands nothing out). unused_only=False returns the current code
        without recording it. With `at` given nothing waits: the code is computed for that time
        or a later step.
        """
        clean_name = await self._checked_name("totp", name, actor)
        if min_remaining is not None and (isinstance(min_remaining, bool) or not isinstance(min_remaining, int)
                                          or min_remaining < 0):
            await self._refuse("totp", clean_name, actor, InvalidInput(
                "min_remaining must be a whole number of seconds, 0 or more."))

        def check(row: EntryRow | None) -> otp.OtpSeed:
            if row is None:
                raise EntryNotFound(clean_name)
            if SECRET_FIELD not in row.fields:
                raise NoTotpSeed(clean_name)
            seed = self._open_seed(row)
            if min_remaining is not None and min_remaining >= seed.params.period:
                raise InvalidInput(
                    f"min_remaining ({min_remaining}) must be below the code period ({seed.params.period} s)."
                )
            return seed

        def least_of(seed: otp.OtpSeed) -> int:
            period = seed.params.period
            return min(DEFAULT_MIN_REMAINING_S, period // 3) if min_remaining is None else min_remaining

        start = at if at is not None else self._clock()
        if not unused_only:
            seed = await self._read("totp", clean_name, actor,
                                    lambda store, version: check(self._entry(store, clean_name, version)))
            code = otp.totp_at(seed, start)
            moment = start
            if code.remaining < least_of(seed):
                moment = await self._until(code.expires_at, start, at is not None, progress)
                code = otp.totp_at(seed, moment)
            now = moment if at is not None else self._clock()
            left = min(code.period, max(1, math.ceil(code.expires_at - now)))
        else:
            moment = start
            try:
                while True:
                    code, claimed, least = await self._db.short_write(self._claim, clean_name, moment, check,
                                                                       least_of)
                    if claimed:
                        now = moment if at is not None else self._clock()
                        left = min(code.period, math.ceil(code.expires_at - now))
                        if left >= max(least, 1):  # not when the claim itself took too long
                            break
                    moment = await self._until(code.expires_at, start, at is not None, progress)
            except MailgentError as exc:
                self._queue_audit("totp", _safe_label(clean_name), actor, _outcome(exc))
                raise
            self._queue_audit("totp", clean_name, actor, "ok")
        return TotpCode(
            name=clean_name, code=code.code, remaining=left, period=code.period, digits=code.digits,
            algorithm=code.algorithm, expires_at=iso(code.expires_at), waited=round(max(now - start, 0.0), 3),
        )

    def _claim(self, store: VaultStore, name: str, moment: float, check: Callable[[EntryRow | None], otp.OtpSeed],
               least_of: Callable[[otp.OtpSeed], int]) -> tuple[otp.OtpCode, bool, int]:
        """The entry's code at `moment`, recorded as handed out unless it was already (Database.short_write).

        One write transaction, on whichever connection short_write gives, reads the entry
        (checked against the chain, or as checked at the same key), computes the code and
        records its time step; (code, recorded, least). Not synced at commit: after a power
        cut the step would long be over.
        """
        with store.transaction(durable=False):
            key = (store.reader, store.data_version(), store.total_changes())
            hit = self._claim_rows.get(name)
            if hit is not None and hit[0] == key:
                row: EntryRow | None = hit[1]
            else:
                self._chain.check_tip(store)
                row = store.get_entry(name)
                if row is not None:
                    self._check_state(row)
            seed = check(row)
            assert row is not None
            least = least_of(seed)
            code = otp.totp_at(seed, moment)
            claimed = code.remaining >= least and store.claim_step(
                row.id, row.versions.get(SECRET_FIELD, 0), code.step, self._clock(), keep=KEPT_STEPS)
        if len(self._claim_rows) >= SEED_CACHE_SIZE:
            self._claim_rows.clear()
        self._claim_rows[name] = ((store.reader, store.data_version(), store.total_changes()), row)
        return code, claimed, least

    async def _until(self, moment: float, started: float, computed: bool, progress: Progress | None) -> float:
        """Wait until `moment` (at once when computing for a given time); the time then."""
        if computed:
            return moment
        while (now := self._clock()) < moment:
            if progress is not None:
                await progress(now - started, moment - started)
            await self._sleep(min(moment - now, PROGRESS_EVERY_S))
        return now

    # -- key change -------------------------------------------------------------------

    async def change_key(self, to: KeyKind, *, passphrase: str | None = None, key: bytes | None = None,
                         actor: str | None = None) -> None:
        """Rewrap the data key under a new master key; entries are not touched.

        to="passphrase" needs a strong passphrase; to="key" needs the new 32-byte key;
        to="keyfile" writes a new random master.key. The change holds the data folder's
        key-change lock, and fails with nothing changed when another process changed the key
        since this vault was unlocked. A new key file is written (synced, under a unique
        name) before the commit and renamed over master.key after it.
        """
        kdf_json: str | None = None
        if to == "passphrase":
            check_passphrase(passphrase or "")
            assert passphrase is not None
            params = crypto.KdfParams.fresh()
            kek = await asyncio.to_thread(crypto.derive_kek, passphrase, params)  # slow on purpose: off the loop
            kdf_json = json.dumps(params.to_dict())
        elif to == "key":
            if key is None or len(key) != crypto.KEY_BYTES:
                raise InvalidInput("The new master key must be 32 bytes.")
            kek = key
        elif to == "keyfile":
            kek = crypto.random_key()
        else:
            raise InvalidInput("The new key kind must be passphrase, key or keyfile.")
        new_row = KeyringRow(kek_kind=to, kdf=kdf_json, wrapped_dek=crypto.wrap_key(kek, self._dek))
        lock = key_change_lock(self.home)
        await asyncio.to_thread(lock.__enter__)
        try:
            await self._swap_key(to, kek, new_row, actor)
        finally:
            lock.__exit__(None, None, None)
        log.info("vault key changed to %s", to)

    async def _swap_key(self, to: KeyKind, kek: bytes, new_row: KeyringRow, actor: str | None) -> None:
        """The key change itself; runs under the key-change lock."""
        keyfile = self.home / MASTER_KEY_FILE
        pending = keyfile.with_name(f"{MASTER_KEY_FILE}.new-{secrets.token_hex(8)}")
        if to == "keyfile":
            crypto.write_key_file(pending, kek)

        def body(store: VaultStore) -> tuple[None, None]:
            old = store.get_keyring()
            if old is None or old != self._keyring:
                raise MailgentError(
                    "Another process changed the vault key after this one unlocked the vault. Nothing was changed; "
                    "run the command again with the new key.")
            if not store.replace_keyring(old, new_row, self._clock()):
                raise MailgentError("The vault key changed while rewrapping. Nothing was changed; run the command "
                                    "again.")
            return None, None

        try:
            await self._audited("passwd", None, actor, body)
        except BaseException:
            pending.unlink(missing_ok=True)
            raise
        self._keyring = new_row
        self.key_kind = to
        try:
            if to == "keyfile":
                os.replace(pending, keyfile)
            else:
                keyfile.unlink(missing_ok=True)  # it no longer opens this vault; leaving it would only mislead
            for leftover in pending_key_files(self.home):
                leftover.unlink(missing_ok=True)  # of changes that ended before their commit: they open nothing
            crypto.fsync_dir(self.home)
        except OSError as exc:
            raise MailgentError(
                f"The vault key was changed, but the key files could not be tidied ({exc.strerror}). The vault opens "
                f"with the new key; if master.key is missing, the new key file is {str(pending)!r}: rename it to "
                "master.key."
            ) from None

    async def integrity_check(self) -> str:
        """SQLite's integrity verdict for vault.db."""
        return await self._db.run(VaultStore.integrity_check)


# -- helpers ------------------------------------------------------------------------------


def _totp_info(params: otp.OtpParams) -> TotpInfo:
    return TotpInfo(
        issuer=params.issuer, account=params.account, algorithm=params.algorithm, digits=params.digits,
        period=params.period, encoder=params.encoder, seed_bits=params.seed_bits, weak=params.weak,
    )


def _parse_seed(text: str, options: Mapping[str, object]) -> otp.OtpSeed:
    allowed = {"algorithm", "digits", "period", "issuer", "account"}
    unknown = set(options) - allowed
    if unknown:
        raise InvalidInput(f"Unknown TOTP option {sorted(unknown)[0]!r}; use algorithm, digits, period, issuer or account.")
    digits, period = options.get("digits"), options.get("period")
    return otp.parse_secret(
        text,
        algorithm=str(options["algorithm"]) if options.get("algorithm") is not None else None,
        digits=_as_int("digits", digits),
        period=_as_int("period", period),
        issuer=str(options["issuer"]) if options.get("issuer") is not None else None,
        account=str(options["account"]) if options.get("account") is not None else None,
    )


def _as_int(label: str, value: object) -> int | None:
    if value is None:
        return None
    try:
        return int(str(value))
    except ValueError:
        raise InvalidInput(f"{label} must be a whole number.") from None


def _check_storable(seed: otp.OtpSeed) -> None:
    if seed.params.kind != "totp":
        raise InvalidInput(
            "This is a counter-based (HOTP) seed; the vault stores time-based (TOTP) seeds only. "
            "Ask the service for an authenticator-app (TOTP) setup instead."
        )

