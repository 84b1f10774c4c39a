"""The vault: named entries whose every field value is sealed, TOTP codes, and the audit chain.

A stored TOTP seed goes in through `put` and never comes out: `get` shows its
parameters, `totp` shows a code. Each operation appends a hash-chained audit row in the
same transaction as its effect, so there is no change without its record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NoReturn, TypeVar

from mailgent_mcp import crypto, otp
from mailgent_mcp.audit import AuditChain
from mailgent_mcp.config import (
    ENV_MASTER_KEY,
    ENV_PASSPHRASE,
    MASTER_KEY_FILE,
    VAULT_DB,
    default_home,
    ensure_home,
)
from mailgent_mcp.errors import (
    EntryExists,
    EntryNotFound,
    InvalidInput,
    MailgentError,
    NoTotpSeed,
    VaultCorrupt,
    VaultLocked,
)
from mailgent_mcp.models import (
    AuditRecord,
    AuditReport,
    EntryInfo,
    EntrySummary,
    EntryType,
    EntryView,
    TotpCode,
    TotpInfo,
    iso,
)
from mailgent_mcp.store import Database, EntryRow, KeyringRow, Store

log = logging.getLogger(__name__)

T = TypeVar("T")
KeyKind = Literal["keyfile", "key", "passphrase"]

SECRET_FIELD = "secret"
MAX_NAME_CHARS = 128
MAX_VALUE_BYTES = 64 * 1024
MAX_FIELDS = 32
FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}\Z")
# Unicode categories refused in names: controls, format (bidi overrides, zero-width), separators.
_FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}

ACTOR_CLI = "cli"
SEED_CACHE_SIZE = 256
AUDIT_FLUSH_DELAY_S = 0.05  # queued read rows are written once the reads pause this long ...
AUDIT_FLUSH_MAX_S = 1.0  # ... or, under a steady stream of reads, this long after the first
ENTRIES_KEY_PURPOSE = "mailgent-mcp entries v1"
AUDIT_KEY_PURPOSE = "mailgent-mcp audit v1"


# -- validation -------------------------------------------------------------------------


def validate_name(name: object) -> str:
    """An entry name: 1-128 characters, no control or invisible characters, NFC-normalised."""
    if not isinstance(name, str):
        raise InvalidInput("The entry name must be a string.")
    name = unicodedata.normalize("NFC", name)
    if not name or not name.strip():
        raise InvalidInput("The entry name is empty; give a name such as 'github' or 'aws/prod'.")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidInput(f"The entry name is {len(name)} characters; the limit is {MAX_NAME_CHARS}.")
    if any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in name):
        raise InvalidInput(
            "The entry name contains a control or invisible character (newline, tab, zero-width...); "
            "use printable characters only."
        )
    if name != name.strip():
        raise InvalidInput("The entry name starts or ends with whitespace; remove it.")
    return name


def parse_type(value: object) -> EntryType:
    """An entry type from any case: LOGIN, API_KEY, TOTP or NOTE."""
    text = str(value).strip().upper().replace("-", "_")
    try:
        return EntryType(text)
    except ValueError:
        allowed = ", ".join(t.value for t in EntryType)
        raise InvalidInput(f"Unknown entry type {str(value)[:40]!r}; use one of {allowed}.") from None


def validate_fields(data: Mapping[str, object]) -> dict[str, str | None]:
    """Field names and sizes; a None value means 'remove this field'. Values are never echoed."""
    if not isinstance(data, Mapping):
        raise InvalidInput("data must be an object of field names to string values.")
    if len(data) > MAX_FIELDS:
        raise InvalidInput(f"An entry holds at most {MAX_FIELDS} fields; {len(data)} were given.")
    clean: dict[str, str | None] = {}
    for position, (field, value) in enumerate(data.items(), 1):
        if not isinstance(field, str) or not FIELD_NAME.match(field):
            # Not echoed: a caller that swapped key and value would see its secret in the error.
            raise InvalidInput(
                f"Field name number {position} in data is not allowed; use 1-64 letters, digits, '_', '-' or '.', "
                "starting with a letter (username, password, secret, url, notes, api_key...)."
            )
        if value is None:
            clean[field] = None
            continue
        if not isinstance(value, str):
            raise InvalidInput(f"The value of field {field!r} must be a string.")
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > MAX_VALUE_BYTES:
            raise InvalidInput(
                f"The value of field {field!r} is {size} bytes; the limit is {MAX_VALUE_BYTES} bytes. Nothing was stored."
            )
        clean[field] = value
    return clean


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


def _aad(name: str, field: str) -> bytes:
    # Names hold no control characters and field names match FIELD_NAME, so NUL separates unambiguously.
    return b"entry\x00" + name.encode("utf-8") + b"\x00" + field.encode("ascii")


def _outcome(exc: BaseException) -> str:
    return {
        EntryExists: "exists",
        EntryNotFound: "not_found",
        NoTotpSeed: "no_totp",
        VaultCorrupt: "corrupt",
    }.get(type(exc), "invalid" if isinstance(exc, InvalidInput) else "error")


# -- key sources ------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyChoice:
    """Which master key the environment offers (DESIGN "Secrets": env key, passphrase, key file)."""

    kind: KeyKind
    key: bytes | None = None
    passphrase: str | None = None

    def __repr__(self) -> str:
        return f"KeyChoice(kind={self.kind!r})"


def key_choice(environ: Mapping[str, str]) -> KeyChoice:
    """MAILGENT_MASTER_KEY, else MAILGENT_PASSPHRASE, else the master.key file."""
    if environ.get(ENV_MASTER_KEY, "").strip():
        return KeyChoice("key", key=crypto.decode_master_key(environ[ENV_MASTER_KEY]))
    if environ.get(ENV_PASSPHRASE, ""):
        return KeyChoice("passphrase", passphrase=environ[ENV_PASSPHRASE])
    return KeyChoice("keyfile")


_KIND_WORDS: dict[str, str] = {
    "key": f"a master key from {ENV_MASTER_KEY}",
    "passphrase": f"a passphrase from {ENV_PASSPHRASE}",
    "keyfile": f"the {MASTER_KEY_FILE} file in the data folder",
}


class Vault:
    """An unlocked vault on one data folder. Open with `await Vault.open()`; close when done."""

    def __init__(
        self,
        db: Database,
        home: Path,
        dek: bytes,
        *,
        key_kind: str,
        actor: str,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._db = db
        self.home = home
        self._dek = dek
        self._sealer = crypto.Sealer(crypto.subkey(dek, ENTRIES_KEY_PURPOSE))
        self._chain = AuditChain(crypto.subkey(dek, AUDIT_KEY_PURPOSE), clock)
        self.key_kind = key_kind
        self.actor = actor
        self._clock = clock
        self._sleep = sleep
        # Audit rows of reads, waiting for the database thread (see _queue_audit).
        self._pending: list[tuple[str, str | None, str, str, float]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._flush_now = asyncio.Event()
        self._last_queued = 0.0  # loop time of the newest queued row
        # Opened seeds by (entry, sealed blob): a changed or deleted seed never matches again.
        self._seeds: dict[tuple[str, bytes], otp.OtpSeed] = {}

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
        choice = key_choice(env)
        db = await Database.open(home / VAULT_DB)
        try:
            dek = await db.run(_unlock_or_create, home, choice, clock, actor)
        except BaseException:
            await db.close()
            raise
        return cls(db, home, dek, key_kind=choice.kind, actor=actor, clock=clock, sleep=sleep)

    async def close(self) -> None:
        """Write any queued audit rows and close the database."""
        try:
            await self.flush_audit()
        finally:
            self._seeds.clear()
            await self._db.close()

    async def __aenter__(self) -> Vault:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- running operations -----------------------------------------------------------

    async def _audited(self, op: str, entry: str | None, actor: str | None, body: Callable[[Store], T]) -> T:
        """A change: body and its audit row commit together, synced to disk; a failure is audited alone."""
        who = actor or self.actor
        earlier = self._take_pending()

        def unit(store: Store) -> T:
            self._append_rows(store, earlier)  # reads queued before this change keep their place
            try:
                with store.transaction(durable=True):
                    result = body(store)
                    self._chain.append(store, op, entry, who, "ok")
                return result
            except MailgentError as exc:
                self._append_rows(store, [(op, _safe_label(entry), who, _outcome(exc), self._clock())])
                raise

        return await self._db.run(unit)

    async def _read(self, op: str, entry: str | None, actor: str | None, body: Callable[[Store], T]) -> T:
        """A read: body runs on the read connection; its audit row is queued (see _queue_audit)."""
        try:
            result = await self._db.read(body)
        except MailgentError as exc:
            self._queue_audit(op, _safe_label(entry), actor, _outcome(exc))
            raise
        self._queue_audit(op, entry, actor, "ok")
        return result

    def _queue_audit(self, op: str, entry: str | None, actor: str | None, outcome: str) -> None:
        """Record a read or a refused call, written by the database thread as soon as it is free.

        Reads do not wait for their audit row: a write transaction per read would double the
        cost of a code. The row keeps the time of the read; rows are written in one
        transaction once reads pause for AUDIT_FLUSH_DELAY_S, or AUDIT_FLUSH_MAX_S after the
        first under a steady stream; a change first writes the rows queued before it; close()
        (and audit_tail/audit_verify) writes them all. A process killed outright can lose the
        rows of its last second of reads at most, never a change's row.
        """
        self._pending.append((op, entry, actor or self.actor, outcome, self._clock()))
        self._last_queued = asyncio.get_running_loop().time()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_pending())

    def _take_pending(self) -> list[tuple[str, str | None, str, str, float]]:
        rows, self._pending = self._pending, []
        return rows

    def _append_rows(self, store: Store, rows: list[tuple[str, str | None, str, str, float]]) -> None:
        if rows:
            with store.transaction(durable=False):
                self._chain.append_many(store, rows)

    async def _flush_pending(self) -> None:
        # Rows are written when the reads pause: writing them takes the GIL and a CPU from the
        # event loop, which would then answer the calls of a burst late. A burst's rows go in
        # one transaction; a steady stream of reads has its rows written at least every second.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + AUDIT_FLUSH_MAX_S
        while (wait := min(self._last_queued + AUDIT_FLUSH_DELAY_S, deadline) - loop.time()) > 0:
            try:
                await asyncio.wait_for(self._flush_now.wait(), wait)
                break
            except TimeoutError:
                pass  # a read came meanwhile: wait for the pause (or the deadline)
        while self._pending:
            rows = self._take_pending()
            try:
                await self._db.run(self._append_rows, rows)
            except MailgentError as exc:
                self._pending[:0] = rows  # kept for the next flush
                log.error("could not write %d audit rows yet: %s", len(rows), exc)
                return

    async def flush_audit(self) -> None:
        """Write every queued audit row now."""
        if self._flusher is not None and not self._flusher.done():
            self._flush_now.set()  # end its gathering wait
            await self._flusher
        self._flush_now.clear()
        if self._pending:
            await self._db.run(self._append_rows, self._take_pending())

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
        """Walk the whole chain; any edited, inserted, reordered or removed row breaks it."""
        await self.flush_audit()
        return await self._db.run(self._chain.verify)

    # -- sealing ------------------------------------------------------------------------

    def _seal(self, name: str, field: str, value: str) -> bytes:
        return self._sealer.seal(value.encode("utf-8", "surrogatepass"), _aad(name, field))

    def _open(self, name: str, field: str, blob: bytes) -> str:
        try:
            return self._sealer.open(blob, _aad(name, field)).decode("utf-8", "surrogatepass")
        except crypto.OpenFailed:
            raise VaultCorrupt(
                f"The stored field {field!r} of entry {name!r} failed its integrity check: it was altered or "
                "moved from another entry. Store the value again with vault_put, or restore vault.db from a backup."
            ) from None

    def _open_seed(self, name: str, blob: bytes) -> otp.OtpSeed:
        cached = self._seeds.get((name, blob))
        if cached is not None:
            return cached
        record = json.loads(self._open(name, SECRET_FIELD, blob))
        seed = otp.OtpSeed(seed=bytes.fromhex(record["seed"]), params=otp.OtpParams.from_dict(record["params"]))
        if len(self._seeds) >= SEED_CACHE_SIZE:
            self._seeds.clear()
        self._seeds[(name, blob)] = seed
        return seed

    def _seal_seed(self, name: str, seed: otp.OtpSeed) -> bytes:
        record = {"seed": seed.seed.hex(), "params": seed.params.to_dict()}
        return self._seal(name, SECRET_FIELD, json.dumps(record, sort_keys=True))

    def _info(self, row: EntryRow, field_names: list[str], seed: otp.OtpSeed | None) -> dict[str, object]:
        return {
            "name": row.name,
            "type": EntryType(row.type),
            "has_totp": SECRET_FIELD in field_names,
            "totp": _totp_info(seed.params) if seed else None,
            "fields": field_names,
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
        actor: str | None = None,
    ) -> EntryInfo:
        """Create or update an entry: given fields are replaced, None removes one, others are kept.

        data["secret"] takes a base32 seed or an otpauth:// URI; `totp` gives algorithm, digits,
        period, issuer and account for a bare base32 seed; `seed` stores an already parsed one.
        With if_absent=True an existing entry is left alone and EntryExists raised.
        """
        try:
            clean_name = validate_name(name)
            fields = validate_fields(data or {})
            type_ = parse_type(type) if type is not None else None
            secret_text = fields.get(SECRET_FIELD)
            if secret_text is not None:
                if seed is not None:
                    raise InvalidInput("Give the TOTP seed once: either data.secret or a parsed seed.")
                seed = _parse_seed(secret_text, totp or {})
                del fields[SECRET_FIELD]  # stored below as a sealed seed record, not as text
            elif totp:
                raise InvalidInput("TOTP options (algorithm, digits, period...) apply only with data.secret.")
            if seed is not None:
                _check_storable(seed)
        except MailgentError as exc:
            await self._refuse("put", name, actor, exc)
        # Seal before taking the write lock: the lock is held only for the SQL.
        sealed = {f: (self._seal(clean_name, f, v) if v is not None else None) for f, v in fields.items()}
        if seed is not None:
            sealed[SECRET_FIELD] = self._seal_seed(clean_name, seed)

        def body(store: Store) -> EntryInfo:
            now = self._clock()
            row = store.get_entry(clean_name, only=SECRET_FIELD)
            if row is not None and if_absent:
                raise EntryExists(clean_name)
            if row is None:
                final_type = (type_ or _infer_type(fields, has_seed=seed is not None)).value
                entry_id, created = store.insert_entry(clean_name, final_type, now), now
            else:
                entry_id, created, final_type = row.id, row.created_at, (type_.value if type_ else row.type)
                store.update_entry(entry_id, final_type, now)
            for field, blob in sealed.items():
                if blob is None:
                    store.delete_field(entry_id, field)
                else:
                    store.set_field(entry_id, field, blob)
            shown = seed
            if shown is None and row is not None and SECRET_FIELD in row.fields and SECRET_FIELD not in sealed:
                shown = self._open_seed(clean_name, row.fields[SECRET_FIELD])
            saved = EntryRow(entry_id, clean_name, final_type, created, now, {})
            return EntryInfo.model_validate(self._info(saved, store.field_names(entry_id), shown))

        info = await self._audited("put", clean_name, actor, body)
        log.info("stored entry %s", clean_name)
        return info

    async def get(self, name: str, *, actor: str | None = None) -> EntryView:
        """An entry with its field values; for a TOTP seed, only its parameters."""
        clean_name = await self._checked_name("get", name, actor)

        def body(store: Store) -> EntryView:
            row = store.get_entry(clean_name)
            if row is None:
                raise EntryNotFound(clean_name)
            data = {f: self._open(clean_name, f, blob) for f, blob in row.fields.items() if f != SECRET_FIELD}
            seed = self._open_seed(clean_name, row.fields[SECRET_FIELD]) if SECRET_FIELD in row.fields else None
            return EntryView.model_validate({**self._info(row, sorted(row.fields), seed), "data": data})

        return await self._read("get", clean_name, actor, body)

    async def list(self, prefix: str = "", *, actor: str | None = None) -> list[EntrySummary]:
        """Entries whose name starts with prefix (all by default), sorted by name."""
        if not isinstance(prefix, str) or len(prefix) > MAX_NAME_CHARS:
            await self._refuse("list", None, actor, InvalidInput(
                f"The prefix must be a string of at most {MAX_NAME_CHARS} characters."))
        prefix = unicodedata.normalize("NFC", prefix)

        def body(store: Store) -> list[EntrySummary]:
            rows = store.list_entries(prefix, SECRET_FIELD)
            return [EntrySummary(name=n, type=EntryType(t), has_totp=h, updated_at=iso(u)) for n, t, h, u in rows]

        return await self._read("list", prefix or None, actor, body)

    async def delete(self, name: str, *, actor: str | None = None) -> bool:
        """Remove an entry and all its fields; EntryNotFound when there is none."""
        clean_name = await self._checked_name("delete", name, actor)

        def body(store: Store) -> bool:
            row = store.get_entry(clean_name, only=SECRET_FIELD)
            if row is None:
                raise EntryNotFound(clean_name)
            store.delete_entry(row.id)
            return True

        deleted = await self._audited("delete", clean_name, actor, body)
        log.info("deleted entry %s", clean_name)
        return deleted

    async def totp(
        self, name: str, *, min_remaining: int = 0, at: float | None = None, actor: str | None = None
    ) -> TotpCode:
        """The current code of an entry's seed and its seconds left.

        With min_remaining=N, a code with fewer than N seconds left is not returned: the call
        waits for the next time step (or, with `at` given, computes it) and returns that code.
        """
        clean_name = await self._checked_name("totp", name, actor)
        if isinstance(min_remaining, bool) or not isinstance(min_remaining, int) or min_remaining < 0:
            await self._refuse("totp", clean_name, actor, InvalidInput(
                "min_remaining must be a whole number of seconds, 0 or more."))

        def body(store: Store) -> otp.OtpSeed:
            row = store.get_entry(clean_name, only=SECRET_FIELD)
            if row is None:
                raise EntryNotFound(clean_name)
            if SECRET_FIELD not in row.fields:
                raise NoTotpSeed(clean_name)
            seed = self._open_seed(clean_name, row.fields[SECRET_FIELD])
            if min_remaining >= seed.params.period:
                raise InvalidInput(
                    f"min_remaining ({min_remaining}) must be below the code period ({seed.params.period} s)."
                )
            return seed

        seed = await self._read("totp", clean_name, actor, body)
        start = at if at is not None else self._clock()
        code = otp.totp_at(seed, start)
        now = start
        if code.remaining < min_remaining:
            if at is not None:
                now = code.expires_at
            else:
                while (now := self._clock()) < code.expires_at:
                    await self._sleep(max(code.expires_at - now, 0.001))
            code = otp.totp_at(seed, now)
        return TotpCode(
            name=clean_name, code=code.code, remaining=code.remaining, period=code.period, digits=code.digits,
            algorithm=code.algorithm, expires_at=iso(code.expires_at), waited=round(max(now - start, 0.0), 3),
        )

    # -- key change -------------------------------------------------------------------

    async def change_key(self, to: KeyKind, *, passphrase: str | None = None, key: bytes | None = None,
                         actor: str | None = None) -> None:
        """Rewrap the data key under a new master key; entries are not touched.

        to="passphrase" needs passphrase; to="key" needs the new 32-byte key; to="keyfile"
        writes a new random master.key. The swap is one compare-and-swap transaction.
        """
        keyfile = self.home / MASTER_KEY_FILE
        pending = keyfile.with_name(MASTER_KEY_FILE + ".new")
        kdf_json: str | None = None
        if to == "passphrase":
            if not passphrase:
                raise InvalidInput("The new passphrase is empty.")
            params = crypto.KdfParams.fresh()
            kek = await asyncio.to_thread(crypto.derive_kek, passphrase, params)  # ~0.2 s: off the loop
            kdf_json = json.dumps(params.to_dict())
        elif to == "key":
            if key is None or len(key) != crypto.KEY_BYTES:
                raise InvalidInput("The new master key must be 32 bytes.")
            kek = key
        elif to == "keyfile":
            kek = crypto.random_key()
            # Written before the swap and renamed after it; _unlock_keyfile finishes an interrupted rename.
            crypto.write_key_file(pending, kek, replace=True)
        else:
            raise InvalidInput("The new key kind must be passphrase, key or keyfile.")
        new_row = KeyringRow(kek_kind=to, kdf=kdf_json, wrapped_dek=crypto.wrap_key(kek, self._dek))

        def body(store: Store) -> None:
            old = store.get_keyring()
            if old is None or not store.replace_keyring(old, new_row, self._clock()):
                raise MailgentError("The vault key changed while rewrapping; run the command again.")

        try:
            await self._audited("passwd", None, actor, body)
        except BaseException:
            pending.unlink(missing_ok=True)
            raise
        self.key_kind = to
        if to == "keyfile":
            os.replace(pending, keyfile)
        else:
            # The old file no longer opens this vault; leaving it would only mislead.
            keyfile.unlink(missing_ok=True)
        log.info("vault key changed to %s", to)

    async def integrity_check(self) -> str:
        """SQLite's integrity verdict for vault.db."""
        return await self._db.run(Store.integrity_check)


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


def _unlock_or_create(store: Store, home: Path, choice: KeyChoice, clock: Callable[[], float], actor: str) -> bytes:
    """Return the data key: unwrap the stored one, or create and wrap one for a new vault.

    Runs on the database thread. A new vault's keyring row and its first audit row
    ("init") commit together, so racing first openers record exactly one creation.
    """
    row = store.get_keyring()
    if row is None:
        kek, kdf_json = _new_kek(home, choice)
        with store.transaction():
            row = store.get_keyring()
            if row is None:  # still new under the write lock: this process creates it
                dek = crypto.random_key()
                store.insert_keyring(KeyringRow(choice.kind, kdf_json, crypto.wrap_key(kek, dek)), clock())
                AuditChain(crypto.subkey(dek, AUDIT_KEY_PURPOSE), clock).append(store, "init", None, actor, "ok")
                log.info("created a new vault in %s (key: %s)", home, choice.kind)
                return dek
    return _unlock(row, home, choice)


def _new_kek(home: Path, choice: KeyChoice) -> tuple[bytes, str | None]:
    if choice.kind == "key":
        assert choice.key is not None
        return choice.key, None
    if choice.kind == "passphrase":
        assert choice.passphrase is not None
        params = crypto.KdfParams.fresh()
        return crypto.derive_kek(choice.passphrase, params), json.dumps(params.to_dict())
    path = home / MASTER_KEY_FILE
    if not path.exists():
        crypto.write_key_file(path, crypto.random_key())  # create-only: a racing process's file wins
    return crypto.read_key_file(path), None


def _unlock(row: KeyringRow, home: Path, choice: KeyChoice) -> bytes:
    if row.kek_kind != choice.kind:
        raise VaultLocked(_mismatch_message(row.kek_kind, choice.kind))
    if row.kek_kind == "keyfile":
        return _unlock_keyfile(row, home)
    if row.kek_kind == "passphrase":
        assert choice.passphrase is not None and row.kdf is not None
        kek = crypto.derive_kek(choice.passphrase, crypto.KdfParams.from_dict(json.loads(row.kdf)))
    else:
        assert choice.key is not None
        kek = choice.key
    try:
        return crypto.unwrap_key(kek, row.wrapped_dek)
    except crypto.OpenFailed:
        source = ENV_PASSPHRASE if row.kek_kind == "passphrase" else ENV_MASTER_KEY
        raise VaultLocked(
            f"Vault locked: {source} does not open this vault (wrong key or passphrase). Nothing was changed; "
            f"set {source} to the value the vault was created or last re-keyed with."
        ) from None


def _unlock_keyfile(row: KeyringRow, home: Path) -> bytes:
    path = home / MASTER_KEY_FILE
    pending = path.with_name(MASTER_KEY_FILE + ".new")
    candidates = [p for p in (path, pending) if p.exists()]
    if not candidates:
        raise VaultLocked(
            f"Vault locked: {MASTER_KEY_FILE} is missing from {str(home)!r}, and only it opens this vault. "
            "Restore it from your backup; do not delete vault.db."
        )
    for candidate in candidates:
        try:
            dek = crypto.unwrap_key(crypto.read_key_file(candidate), row.wrapped_dek)
        except crypto.OpenFailed:
            continue
        if candidate == pending:
            os.replace(pending, path)  # finish a key change interrupted between commit and rename
            log.warning("completed an interrupted key change in %s", home)
        return dek
    raise VaultLocked(
        f"Vault locked: {MASTER_KEY_FILE} in {str(home)!r} does not open this vault (it was replaced or damaged). "
        "Nothing was changed; restore the original file from your backup."
    )


def _mismatch_message(stored: str, offered: str) -> str:
    how = {
        "key": f"set {ENV_MASTER_KEY}",
        "passphrase": f"set {ENV_PASSPHRASE}",
        "keyfile": f"unset {ENV_MASTER_KEY} and {ENV_PASSPHRASE} so that {MASTER_KEY_FILE} is used",
    }[stored]
    return (
        f"Vault locked: this vault is sealed with {_KIND_WORDS[stored]}, but the environment offers "
        f"{_KIND_WORDS[offered]}. Nothing was changed; {how}. To switch, unlock it the current way and run "
        "`mailgent-mcp vault passwd --to ...`."
    )
