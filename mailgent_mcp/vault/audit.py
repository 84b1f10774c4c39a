"""The audit log's hash chain: each row carries an HMAC over the row before it, and the vault's state.

row.mac   = HMAC(audit key, "audit-row", previous row's mac, seq, at, op, entry, actor, outcome[, state])
head.mac  = HMAC(audit key, "audit-head", seq, newest row's mac)
row.state = HMAC(audit key, "entry-state", name, type, each field's name, version and blob digest)
            after a change to an entry (HMAC(..., "entry-absent", name) after its deletion)

The audit key is derived from the vault's data key, so only a holder of the master key can
forge a row. Editing, inserting, reordering or deleting a row breaks the chain; the MACed
head catches deleted newest rows, and every append and every read checks the head and the
newest row first, so a shortened chain is never extended as if intact. A change records its
entry's resulting state, so an entry edited, rolled back, added or deleted with sqlite3 no
longer matches its newest recorded state: reads refuse it and `audit verify` lists it. A
whole vault.db rolled back to an older copy stays consistent, and cannot be detected from
inside it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple

from mailgent_mcp.errors import AuditChainBroken, InvalidInput
from mailgent_mcp.times import iso
from mailgent_mcp.vault import crypto
from mailgent_mcp.vault.models import AuditRecord, AuditReport
from mailgent_mcp.vault.store import AuditRow, AuditTip, EntryRow, VaultStore

GENESIS = bytes(32)
MAX_ACTOR_CHARS = 128
VERIFY_BATCH = 5000
BREAK_OP = "break"  # a row that records a break found in the chain, written by `audit acknowledge`


class Record(NamedTuple):
    """An audit row to append: what happened, to which entry, by whom, how it ended, when, and the resulting state."""

    op: str
    entry: str | None
    actor: str
    outcome: str
    at: float
    state: bytes | None = None


def clean_actor(actor: str) -> str:
    """An actor name fit for the log: printable, at most 128 characters."""
    text = "".join(ch for ch in str(actor) if ch.isprintable())[:MAX_ACTOR_CHARS]
    return text or "unknown"


def _broken(what: str) -> AuditChainBroken:
    return AuditChainBroken(
        f"The audit log was changed outside mailgent-mcp: {what}. Nothing was done. Run `mailgent-mcp audit verify` "
        "for details; restore vault.db from a backup, or run `mailgent-mcp audit acknowledge` to record the break "
        "in the log and go on."
    )


class AuditChain:
    """Appends and verifies audit rows; call its methods on the thread that uses the VaultStore given."""

    def __init__(self, key: bytes, clock: Callable[[], float]) -> None:
        self._key = key
        self._clock = clock
        self._checked: AuditTip | None = None  # the tip last found sound

    def __repr__(self) -> str:
        return "AuditChain(<key hidden>)"

    # -- the MACs -------------------------------------------------------------------------

    def _row_mac(self, prev: bytes, row: AuditRow | Record, seq: int) -> bytes:
        parts = [b"audit-row", prev, str(seq).encode(), repr(row.at).encode(), row.op.encode(),
                 b"\x01" + row.entry.encode() if row.entry is not None else b"\x00", row.actor.encode(),
                 row.outcome.encode()]
        if row.state is not None:  # rows written before states were recorded have none
            parts.append(row.state)
        return crypto.mac(self._key, *parts)

    def _head_mac(self, seq: int, row_mac: bytes) -> bytes:
        return crypto.mac(self._key, b"audit-head", str(seq).encode(), row_mac)

    def entry_state(self, row: EntryRow) -> bytes:
        """The state digest of an entry: its name, type, and each field's name, version and sealed blob."""
        parts = [b"entry-state", row.name.encode("utf-8", "surrogatepass"), row.type.encode()]
        for field in sorted(row.fields):
            parts += [field.encode(), str(row.versions.get(field, 0)).encode(),
                      hashlib.sha256(row.fields[field]).digest()]
        return crypto.mac(self._key, *parts)

    def absent_state(self, name: str) -> bytes:
        """The state recorded when an entry is deleted."""
        return crypto.mac(self._key, b"entry-absent", name.encode("utf-8", "surrogatepass"))

    def vault_state(self) -> bytes:
        """The state recorded by a vault's first row: it records entries' states from then on."""
        return crypto.mac(self._key, b"vault-states")

    # -- appending ------------------------------------------------------------------------

    def check_tip(self, store: VaultStore, tip: AuditTip | None = None) -> AuditTip:
        """Raise AuditChainBroken unless the head names the newest row and that row's mac is sound."""
        tip = tip if tip is not None else store.audit_tip()
        if tip == self._checked:
            return tip  # unchanged since it was last found sound: no MAC to recompute
        problem = self._tip_problem(tip)
        if problem is not None:
            raise _broken(problem)
        self._checked = tip
        return tip

    def _tip_problem(self, tip: AuditTip) -> str | None:
        last = tip.last
        if last is None:
            return "its rows were removed (the log is empty)"
        if tip.head is None or tip.head[0] != last.seq or tip.head[1] != self._head_mac(last.seq, last.mac):
            return f"rows after row {last.seq} were removed, or its head was edited"
        if last.seq > 1 and tip.prev_mac is None:
            return f"row {last.seq - 1} is missing"
        if last.mac != self._row_mac(tip.prev_mac if last.seq > 1 and tip.prev_mac else GENESIS, last, last.seq):
            return f"row {last.seq} was altered"
        return None

    def append_many(self, store: VaultStore, rows: Sequence[Record], *, first: bool = False) -> int:
        """Append rows in order after checking the chain's tip; inside a write transaction. The last seq written.

        first=True: the vault's first row, on an empty log.
        """
        if not rows:
            return 0
        if first:
            seq, prev = 0, GENESIS
        else:
            tip = self.check_tip(store)
            assert tip.last is not None
            seq, prev = tip.last.seq, tip.last.mac
        out = []
        for record in rows:
            seq += 1
            clean = record._replace(actor=clean_actor(record.actor))
            prev = self._row_mac(prev, clean, seq)
            out.append(AuditRow(seq, clean.at, clean.op, clean.entry, clean.actor, clean.outcome, prev, clean.state))
        store.audit_append_many(out, self._head_mac(seq, prev))
        self._checked = None
        return seq

    def acknowledge(self, store: VaultStore, actor: str) -> str:
        """Record a break of the chain's tip as a row of its own, so that the log goes on from it; the break found.

        The break stays in the log for `audit verify` to report. A chain whose tip is sound has
        nothing to acknowledge (an altered older row is reported by verify, and cannot be).
        """
        tip = store.audit_tip()
        problem = self._tip_problem(tip)
        if problem is None:
            raise InvalidInput("The audit log's newest rows and head are intact: there is no break to acknowledge. "
                               "`mailgent-mcp audit verify` checks the whole log.")
        seq, prev = (tip.last.seq, tip.last.mac) if tip.last is not None else (0, GENESIS)
        record = Record(BREAK_OP, None, clean_actor(actor), f"acknowledged: {problem}", self._clock())
        row_mac = self._row_mac(prev, record, seq + 1)
        row = AuditRow(seq + 1, record.at, record.op, None, record.actor, record.outcome, row_mac)
        store.audit_append_many([row], self._head_mac(seq + 1, row_mac))
        self._checked = None
        return problem

    # -- reading --------------------------------------------------------------------------

    def tail(self, store: VaultStore, limit: int) -> list[AuditRecord]:
        """The newest rows, oldest first."""
        rows = store.audit_rows(limit=max(1, min(limit, 10_000)), newest=True)
        return [AuditRecord(seq=r.seq, at=iso(r.at), op=r.op, entry=r.entry, actor=r.actor, outcome=r.outcome)
                for r in rows]

    def verify(self, store: VaultStore) -> AuditReport:
        """Walk the whole chain and the head, then compare every entry with its newest recorded state."""
        prev, count = GENESIS, 0
        last: AuditRow | None = None
        states: dict[str, bytes] = {}
        breaks: list[str] = []
        while batch := store.audit_rows(after=last.seq if last else 0, limit=VERIFY_BATCH):
            for row in batch:
                if row.seq != count + 1:
                    return AuditReport(ok=False, rows=count, problem=f"row {count + 1} is missing", breaks=breaks)
                if row.mac != self._row_mac(prev, row, row.seq):
                    return AuditReport(ok=False, rows=count, problem=f"row {row.seq} was altered", breaks=breaks)
                if row.op == BREAK_OP:
                    breaks.append(f"row {row.seq} ({iso(row.at)}): {row.outcome}")
                if row.state is not None and row.entry is not None:
                    states[row.entry] = row.state
                prev, count, last = row.mac, count + 1, row
        if last is None:
            return AuditReport(ok=False, rows=0, problem="the audit log is empty: its rows were removed")
        head = store.audit_head()
        if head is None or head[0] != last.seq or head[1] != self._head_mac(last.seq, last.mac):
            return AuditReport(ok=False, rows=count, breaks=breaks,
                               problem=f"rows after {last.seq} were removed (the head does not match)")
        entries = store.all_entries()
        problems = self.state_problems(entries, states)
        return AuditReport(ok=not problems, rows=count, entries=len(entries), breaks=breaks,
                           problem=problems[0] if problems else None, entry_problems=problems)

    def state_problems(self, entries: Iterable[EntryRow], states: Mapping[str, bytes]) -> list[str]:
        """How the entries differ from their newest recorded states (names only, never values)."""
        problems = []
        present = set()
        for row in entries:
            present.add(row.name)
            recorded = states.get(row.name)
            if recorded is None:
                problems.append(f"entry {row.name!r} has no record in the audit log: it was added outside mailgent-mcp")
            elif recorded == self.absent_state(row.name):
                problems.append(f"entry {row.name!r} was deleted according to the audit log, but is back in vault.db")
            elif recorded != self.entry_state(row):
                problems.append(f"entry {row.name!r} differs from its last recorded change: its type, fields or "
                                "values were edited or rolled back outside mailgent-mcp")
        for name, recorded in sorted(states.items()):
            if name not in present and recorded != self.absent_state(name):
                problems.append(f"entry {name!r} was deleted outside mailgent-mcp")
        return problems
