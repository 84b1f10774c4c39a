"""A journal of the audit rows a process has not yet written to the chain: one file per process.

A read does not wait for its audit row to reach vault.db (that would double the cost of a
code); the row is queued in memory and written with others when reads pause. So that no
queued row is lost when the write cannot happen (another process holds vault.db's write
lock past the busy timeout, the process is killed, the chain is broken and refused), each
one is also appended to this process's journal file before the read answers, and the file
is emptied once its rows are in the chain. A journal is held under flock while its process
lives; the next process to open the vault takes the journals of processes that ended and
appends their rows to the chain, skipping any row already there (one written just before
its process was killed, before the journal was emptied).

A journal is an ordinary file: a power loss may lose its newest rows (they are written, not
synced), a process killed outright does not.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from mailgent_mcp.filelock import try_lock
from mailgent_mcp.vault.audit import Record

log = logging.getLogger(__name__)

PREFIX = ".audit-journal-"


def _line(record: Record) -> bytes:
    """One JSON object a line (written for every read, so built without json.dumps' generality)."""
    entry = "null" if record.entry is None else _quote(record.entry)
    return (f'{{"at":{record.at!r},"op":{_quote(record.op)},"entry":{entry},"actor":{_quote(record.actor)},'
            f'"outcome":{_quote(record.outcome)}}}\n').encode("ascii")


_quote = json.encoder.encode_basestring_ascii


def _parse(data: bytes) -> list[Record]:
    records = []
    for line in data.splitlines():
        try:
            row = json.loads(line)
            records.append(Record(str(row["op"]), None if row["entry"] is None else str(row["entry"]),
                                  str(row["actor"]), str(row["outcome"]), float(row["at"])))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash mid-write
    return records


class Journal:
    """This process's journal in a data folder, created at its first row."""

    def __init__(self, home: Path) -> None:
        self._home = home
        self._fd: int | None = None
        self.path: Path | None = None

    def _open(self) -> int:
        if self._fd is None:
            path = self._home / f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
            try_lock(fd)  # a new file: nobody else holds it
            self._fd, self.path = fd, path
        return self._fd

    def append(self, record: Record) -> None:
        """Add a row (written to the file, not synced)."""
        try:
            os.write(self._open(), _line(record))
        except OSError as exc:
            log.error("cannot write the audit journal (%s); the row is kept in memory only", exc.strerror)

    def reset(self, pending: Sequence[Record]) -> None:
        """The rows before are in the chain: keep only pending (the rows queued since)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            if pending:
                os.write(self._fd, b"".join(_line(r) for r in pending))
        except OSError as exc:
            log.error("cannot rewrite the audit journal (%s)", exc.strerror)

    def close(self, *, keep: bool) -> None:
        """Close the journal; remove its file unless it still holds rows (keep=True) for the next process."""
        if self._fd is None:
            return
        if not keep and self.path is not None:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)  # releases the lock: the next process to open the vault takes what is left
        self._fd = None


@contextmanager
def orphans(home: Path) -> Iterator[list[Record]]:
    """The rows in the journals of processes that ended, oldest first; the files are removed after the block.

    Journals of live processes (their lock held) are left alone. The caller appends the rows
    in the block; if it raises, the files stay for the next attempt.
    """
    held: list[tuple[Path, int]] = []
    records: list[Record] = []
    try:
        for path in sorted(home.glob(PREFIX + "*")):
            try:
                fd = os.open(path, os.O_RDWR)
            except OSError:
                continue  # taken and removed by another process meanwhile
            if not try_lock(fd):
                os.close(fd)
                continue
            held.append((path, fd))
            with open(fd, "rb", closefd=False) as fh:
                records += _parse(fh.read())
        records.sort(key=lambda r: r.at)
        yield records
        for path, _ in held:
            path.unlink(missing_ok=True)
    finally:
        for _, fd in held:
            os.close(fd)
