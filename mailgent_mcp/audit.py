"""The audit log's hash chain: each row carries an HMAC over the row before it.

row.mac  = HMAC(audit key, "audit-row", previous row's mac, seq, at, op, entry, actor, outcome)
head.mac = HMAC(audit key, "audit-head", seq, newest row's mac)

The audit key is derived from the vault's data key, so only a holder of the master key
can forge a row. Editing, inserting, reordering or deleting a row breaks the chain; the
MACed head catches deleted newest rows. A whole vault.db rolled back to an older copy
cannot be detected from inside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mailgent_mcp import crypto
from mailgent_mcp.models import AuditRecord, AuditReport, iso
from mailgent_mcp.store import AuditRow, Store

GENESIS = bytes(32)
MAX_ACTOR_CHARS = 128
VERIFY_BATCH = 5000


def clean_actor(actor: str) -> str:
    """An actor name fit for the log: printable, at most 128 characters."""
    text = "".join(ch for ch in str(actor) if ch.isprintable())[:MAX_ACTOR_CHARS]
    return text or "unknown"


class AuditChain:
    """Appends and verifies audit rows; call its methods inside the Store's thread."""

    def __init__(self, key: bytes, clock: Callable[[], float]) -> None:
        self._key = key
        self._clock = clock

    def __repr__(self) -> str:
        return "AuditChain(<key hidden>)"

    def _row_mac(self, prev: bytes, seq: int, at: float, op: str, entry: str | None, actor: str,
                 outcome: str) -> bytes:
        return crypto.mac(
            self._key, b"audit-row", prev, str(seq).encode(), repr(at).encode(), op.encode(),
            b"\x01" + entry.encode() if entry is not None else b"\x00", actor.encode(), outcome.encode(),
        )

    def _head_mac(self, seq: int, row_mac: bytes) -> bytes:
        return crypto.mac(self._key, b"audit-head", str(seq).encode(), row_mac)

    def append(self, store: Store, op: str, entry: str | None, actor: str, outcome: str,
               at: float | None = None) -> None:
        """Append one row (at: when it happened, default now); run inside a write transaction."""
        last = store.audit_last()
        seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
        who = clean_actor(actor)
        at = self._clock() if at is None else at
        row_mac = self._row_mac(prev, seq, at, op, entry, who, outcome)
        store.audit_append(AuditRow(seq, at, op, entry, who, outcome, row_mac), self._head_mac(seq, row_mac))

    def append_many(self, store: Store, rows: Sequence[tuple[str, str | None, str, str, float]]) -> None:
        """Append (op, entry, actor, outcome, at) rows in order, in two statements; inside a write transaction.

        The same chain as append() row by row, for the reads' queued rows: one look-up of the
        last row and one insert for the batch keep the database thread's turn short.
        """
        if not rows:
            return
        last = store.audit_last()
        seq, prev = (last[0], last[1]) if last else (0, GENESIS)
        out = []
        for op, entry, actor, outcome, at in rows:
            seq += 1
            who = clean_actor(actor)
            prev = self._row_mac(prev, seq, at, op, entry, who, outcome)
            out.append(AuditRow(seq, at, op, entry, who, outcome, prev))
        store.audit_append_many(out, self._head_mac(seq, prev))

    def tail(self, store: Store, limit: int) -> list[AuditRecord]:
        """The newest rows, oldest first."""
        rows = store.audit_rows(limit=max(1, min(limit, 10_000)), newest=True)
        return [AuditRecord(seq=r.seq, at=iso(r.at), op=r.op, entry=r.entry, actor=r.actor, outcome=r.outcome)
                for r in rows]

    def verify(self, store: Store) -> AuditReport:
        """Walk the whole chain and the head; report the first break found."""
        prev, count = GENESIS, 0
        last: AuditRow | None = None
        while batch := store.audit_rows(after=last.seq if last else 0, limit=VERIFY_BATCH):
            for row in batch:
                if row.seq != count + 1:
                    return AuditReport(ok=False, rows=count, problem=f"row {count + 1} is missing")
                if row.mac != self._row_mac(prev, row.seq, row.at, row.op, row.entry, row.actor, row.outcome):
                    return AuditReport(ok=False, rows=count, problem=f"row {row.seq} was altered")
                prev, count, last = row.mac, count + 1, row
        if last is None:
            return AuditReport(ok=False, rows=0, problem="the audit log is empty: its rows were removed")
        head = store.audit_head()
        if head is None or head[0] != last.seq or head[1] != self._head_mac(last.seq, last.mac):
            return AuditReport(ok=False, rows=count,
                               problem=f"rows after {last.seq} were removed (the head does not match)")
        return AuditReport(ok=True, rows=count)
