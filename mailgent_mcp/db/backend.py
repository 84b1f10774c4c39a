"""What the vault and the inbox need from a database, whatever engine keeps it.

A domain's store (vault/store.py, inbox/store.py) is a `Store`: its SQL statements, run on
one `Connection` of a backend, and its named migration sets. The domain's service runs
units of work (functions taking the store) through a `Database`: `run` on the database
thread, `read` and `short_write` on the event loop's own connection. SQLite (sqlite.py) is
the one backend; another one implements `Connection` and `Database` beside it, and the
vault's and the inbox's logic stays as it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from mailgent_mcp.db.migrations import MigrationSet
from mailgent_mcp.errors import MailgentError

T = TypeVar("T")


class StoreBusy(MailgentError):
    """Another process held the database's write lock for longer than this connection waits."""


class Cursor(Protocol):
    """The result of a statement, as DB-API 2.0 cursors give it."""

    @property
    def rowcount(self) -> int: ...

    @property
    def lastrowid(self) -> int | None: ...

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(ABC):
    """One connection to the database, used by one thread at a time.

    `reader` marks the event loop's connection: it waits on no lock and makes only
    short, non-durable writes (see `Database.short_write`).
    """

    reader: bool

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """Run one statement with its parameters ("?" placeholders)."""

    @abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Cursor:
        """Run one statement once per row of parameters."""

    @abstractmethod
    def transaction(self, *, durable: bool = True, patient: bool = True) -> AbstractContextManager[None]:
        """A write transaction that takes the write lock up front: all of it commits, or none of it.

        durable=False lets a crash-safe but not yet synced commit stand (an audit row of a
        read); patient=False waits briefly for another process's lock, for work retried later.
        """

    @abstractmethod
    def data_version(self) -> int:
        """A number that changes whenever another connection commits to the database."""

    @abstractmethod
    def total_changes(self) -> int:
        """Rows this connection has changed since it opened: moves with each of its own writes."""

    @abstractmethod
    def integrity_check(self) -> str:
        """The engine's own verdict on the database ("ok" when sound)."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""


class Store:
    """A domain's statements on one connection; a subclass names its migration sets in MIGRATIONS.

    Opening a store applies the pending steps of those sets (and of no other domain's).
    """

    MIGRATIONS: ClassVar[Sequence[MigrationSet]] = ()

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @property
    def reader(self) -> bool:
        """Whether this is the event loop's connection (see Connection)."""
        return self.conn.reader

    def transaction(self, *, durable: bool = True, patient: bool = True) -> AbstractContextManager[None]:
        """See Connection.transaction."""
        return self.conn.transaction(durable=durable, patient=patient)

    def data_version(self) -> int:
        """See Connection.data_version."""
        return self.conn.data_version()

    def total_changes(self) -> int:
        """See Connection.total_changes."""
        return self.conn.total_changes()

    def integrity_check(self) -> str:
        """See Connection.integrity_check."""
        return self.conn.integrity_check()

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


S = TypeVar("S", bound=Store)


class Database(ABC, Generic[S]):
    """A domain's store behind the database thread, plus the event loop's own connection.

    `await db.run(fn, ...)` calls fn(store, ...) on the database thread: every write, and any
    unit that may wait on another process's lock. `await db.read(fn, ...)` calls fn(reader,
    ...) on the loop thread when the backend can answer there without waiting.
    """

    @abstractmethod
    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(store, *args) on the database thread and return its result."""

    @abstractmethod
    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run the read-only fn(reader, *args), on the loop thread where it need not wait."""

    @abstractmethod
    async def short_write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(store, *args), a write of a row or two in a non-durable transaction, on the loop
        thread's connection when the write lock is free, else on the database thread."""

    @abstractmethod
    async def close(self) -> None:
        """Close the connections and stop the thread."""
