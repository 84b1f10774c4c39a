"""The inbox's tables and every SQL statement on them: cached messages with their recipients,
labels and full-text index, sync state per mailbox, poller leases, the codes handed out and
the addresses issued; with the inbox's migration set.

`InboxStore` is a store (db/backend.py): the inbox's statements on one database connection.
The Inbox (cache.py) runs its units of work on one through a `Database`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from mailgent_mcp.db.backend import Store
from mailgent_mcp.db.migrations import MigrationSet, Step

INBOX_MIGRATIONS = MigrationSet("inbox", (
    # The message cache, its full-text index, per-mailbox sync state.
    Step("messages", """
    CREATE TABLE messages (
        id           INTEGER PRIMARY KEY,
        account      TEXT NOT NULL,
        mailbox      TEXT NOT NULL,
        uidvalidity  INTEGER NOT NULL,
        uid          INTEGER NOT NULL,
        message_id   TEXT,
        from_addr    TEXT,
        from_name    TEXT,
        to_addrs     TEXT NOT NULL,
        cc_addrs     TEXT NOT NULL,
        subject      TEXT NOT NULL,
        sent_at      REAL,
        received_at  REAL NOT NULL,
        text_body    TEXT NOT NULL,
        html_body    TEXT NOT NULL,
        attachments  TEXT NOT NULL,
        auth_results TEXT NOT NULL,
        raw_size     INTEGER NOT NULL,
        problem      TEXT,
        seen         INTEGER NOT NULL DEFAULT 0,
        UNIQUE (account, mailbox, uidvalidity, uid)
    );
    CREATE INDEX messages_by_time ON messages (received_at DESC);
    CREATE INDEX messages_by_account ON messages (account, received_at DESC);
    CREATE INDEX messages_by_sender ON messages (from_addr, received_at DESC);
    CREATE TABLE message_recipients (
        message INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        addr    TEXT NOT NULL,
        PRIMARY KEY (addr, message)
    ) WITHOUT ROWID;
    CREATE INDEX message_recipients_by_message ON message_recipients (message);
    CREATE TABLE message_labels (
        message INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        label   TEXT NOT NULL,
        PRIMARY KEY (label, message)
    ) WITHOUT ROWID;
    CREATE INDEX message_labels_by_message ON message_labels (message);
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        subject, from_addr, text_body, content='messages', content_rowid='id'
    );
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, subject, from_addr, text_body)
        VALUES (new.id, new.subject, coalesce(new.from_addr, ''), new.text_body);
    END;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, subject, from_addr, text_body)
        VALUES ('delete', old.id, old.subject, coalesce(old.from_addr, ''), old.text_body);
    END;
    CREATE TABLE mailbox_state (
        account     TEXT NOT NULL,
        mailbox     TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        last_uid    INTEGER NOT NULL,
        synced_at   REAL,
        PRIMARY KEY (account, mailbox)
    );
    """),
    # One poller per account across processes (a lease with heartbeat) and its status.
    Step("pollers", """
    CREATE TABLE pollers (
        account    TEXT PRIMARY KEY,
        holder     TEXT NOT NULL,
        expires_at REAL NOT NULL,
        heartbeat  REAL NOT NULL,
        connected  INTEGER NOT NULL DEFAULT 0,
        idling     INTEGER NOT NULL DEFAULT 0,
        last_sync  REAL,
        last_error TEXT,
        errors     INTEGER NOT NULL DEFAULT 0
    );
    """),
    # Read state written back to IMAP. seen_pending holds a read/unread change made in the cache
    # until the poller has stored it on the server (NULL: in step with the server).
    Step("seen-pending", """
    ALTER TABLE messages ADD COLUMN seen_pending INTEGER;
    CREATE INDEX messages_seen_pending ON messages (account, mailbox) WHERE seen_pending IS NOT NULL;
    """),
    # Codes and links inbox_wait has handed out, so a retry with unused_only gets fresh mail.
    Step("handed-out", """
    CREATE TABLE handed_out (
        message INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        item    TEXT NOT NULL,
        at      REAL NOT NULL,
        PRIMARY KEY (message, item)
    ) WITHOUT ROWID;
    """),
    # What extraction found in each message (JSON: extractedText, codes, links, auth) and the
    # extractor version that found it (0: never extracted), so `inbox reindex` knows what is stale.
    Step("extraction", """
    ALTER TABLE messages ADD COLUMN extraction TEXT;
    ALTER TABLE messages ADD COLUMN extractor INTEGER NOT NULL DEFAULT 0;
    """),
    # Newest first is id order (the order of caching, as received_at is), so the per-account and
    # per-sender indexes end in the id alone; a resync finds a Message-ID by index; the messages
    # still to extract (a first sync's bulk) are found by index.
    Step("indexes-by-id", """
    DROP INDEX messages_by_account;
    CREATE INDEX messages_by_account ON messages (account);
    DROP INDEX messages_by_sender;
    CREATE INDEX messages_by_sender ON messages (from_addr);
    CREATE INDEX messages_by_message_id ON messages (account, mailbox, message_id);
    CREATE INDEX messages_by_extractor ON messages (extractor, id);
    """),
    # DKIM as verified when the message was cached (JSON [[domain, result], ...]; NULL: not
    # checked), for later extractions: the raw message is not kept.
    Step("dkim-local", """
    ALTER TABLE messages ADD COLUMN dkim_local TEXT;
    """),
    # Addresses inbox_address issued (lower case) and when, so that inbox_wait(to=...) counts the
    # mail sent to one from that moment on, whenever it is called.
    Step("issued-addresses", """
    CREATE TABLE IF NOT EXISTS issued_addresses (
        address   TEXT PRIMARY KEY,
        account   TEXT NOT NULL,
        issued_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS issued_addresses_by_time ON issued_addresses (issued_at);
    """),
))


MESSAGE_COLUMNS = (
    "account", "mailbox", "uidvalidity", "uid", "message_id", "from_addr", "from_name", "to_addrs", "cc_addrs",
    "subject", "sent_at", "received_at", "text_body", "html_body", "attachments", "auth_results", "raw_size",
    "problem", "seen", "extraction", "extractor", "dkim_local",
)
EXTRACT_INPUT_COLUMNS = ("id", "account", "subject", "from_addr", "text_body", "html_body", "auth_results",
                         "dkim_local")


@dataclass(frozen=True)
class MessageQuery:
    """Filters for cached messages; None means no filter on that field."""

    account: str | None = None
    sender: str | None = None  # an address, or a domain with or without a leading "@" (matching its subdomains too)
    to: str | None = None
    subject: str | None = None  # a substring, any case
    text: str | None = None  # full-text words (FTS5), all of them
    since: float | None = None  # received at or after
    seen: bool | None = None
    label: str | None = None
    after_id: int | None = None
    limit: int = 10


class InboxStore(Store):
    """vault.db as the inbox sees it."""

    MIGRATIONS: ClassVar[Sequence[MigrationSet]] = (INBOX_MIGRATIONS,)

    # -- message cache ------------------------------------------------------------------

    def insert_message(self, row: dict[str, Any], recipients: Sequence[str]) -> int | None:
        """Cache one message; None when (account, mailbox, uidvalidity, uid) is already there."""
        cur = self.conn.execute(
            f"INSERT OR IGNORE INTO messages ({', '.join(MESSAGE_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in MESSAGE_COLUMNS)})",
            [row[c] for c in MESSAGE_COLUMNS],
        )
        if cur.rowcount != 1:
            return None
        message = cur.lastrowid
        assert message is not None
        self.conn.executemany(
            "INSERT OR IGNORE INTO message_recipients (message, addr) VALUES (?, ?)",
            [(message, addr) for addr in dict.fromkeys(recipients)],
        )
        return message

    def rebind_message(self, account: str, mailbox: str, message_id: str, uidvalidity: int, uid: int) -> bool:
        """Move a message cached under an older UIDVALIDITY to its new identity; True if one was."""
        cur = self.conn.execute(
            "UPDATE messages SET uidvalidity = ?, uid = ? WHERE id = (SELECT id FROM messages "
            "WHERE account = ? AND mailbox = ? AND message_id = ? AND uidvalidity != ? LIMIT 1)",
            (uidvalidity, uid, account, mailbox, message_id, uidvalidity),
        )
        return cur.rowcount == 1

    def delete_other_uidvalidities(self, account: str, mailbox: str, uidvalidity: int) -> int:
        """Delete a mailbox's messages cached under another UIDVALIDITY."""
        return self.conn.execute(
            "DELETE FROM messages WHERE account = ? AND mailbox = ? AND uidvalidity != ?",
            (account, mailbox, uidvalidity),
        ).rowcount

    def next_uid(self, account: str, mailbox: str, uidvalidity: int) -> int:
        """The next free uid in a local mailbox (inside the inserting transaction)."""
        row = self.conn.execute(
            "SELECT coalesce(max(uid), 0) + 1 FROM messages WHERE account = ? AND mailbox = ? AND uidvalidity = ?",
            (account, mailbox, uidvalidity),
        ).fetchall()
        return int(row[0][0])

    def query_messages(self, query: MessageQuery) -> list[dict[str, Any]]:
        """Cached messages matching query, newest first: by id, which rises in the order of caching.

        With full text, the FTS index drives the query: its matches come in rowid order, so
        the newest are found without reading every match.
        """
        where: list[str] = []
        params: list[Any] = []
        if query.text is not None:
            source, order = "messages_fts f JOIN messages m ON m.id = f.rowid", "f.rowid"
            where.append("messages_fts MATCH ?")
            params.append(_fts_phrase(query.text))
        else:
            source, order = "messages m", "m.id"
        if query.account is not None:
            where.append("m.account = ?")
            params.append(query.account)
        if query.sender is not None:
            if "@" in query.sender.lstrip("@"):
                where.append("m.from_addr = ?")
                params.append(query.sender.lower())
            else:  # a domain ("github.com", or "@github.com" as people write it): itself or any subdomain
                domain = query.sender.lower().lstrip("@")
                where.append("(m.from_addr LIKE ? ESCAPE '\\' OR m.from_addr LIKE ? ESCAPE '\\')")
                params += ["%@" + _like_escape(domain), "%." + _like_escape(domain)]
        if query.to is not None:
            where.append("EXISTS (SELECT 1 FROM message_recipients r WHERE r.message = m.id AND r.addr = ?)")
            params.append(query.to.lower())
        if query.subject is not None:
            where.append("instr(lower(m.subject), ?) > 0")
            params.append(query.subject.lower())
        if query.since is not None:
            # Every row received since then has an id at least the least of theirs, found on the
            # received_at index: the newest-first walk by id then starts there instead of scanning
            # the table for a `since` that few rows (or none, as inbox_wait asks) match.
            where.append("m.id >= (SELECT coalesce(min(id), 9223372036854775807) FROM messages "
                         "INDEXED BY messages_by_time WHERE received_at >= ?) AND m.received_at >= ?")
            params += [query.since, query.since]
        if query.seen is not None:
            where.append("m.seen = ?")
            params.append(1 if query.seen else 0)
        if query.label is not None:
            where.append("EXISTS (SELECT 1 FROM message_labels l WHERE l.message = m.id AND l.label = ?)")
            params.append(query.label)
        if query.after_id is not None:
            where.append(f"{order} > ?")
            params.append(query.after_id)
        sql = (f"SELECT {', '.join('m.' + c for c in ('id', *MESSAGE_COLUMNS))} FROM {source} "
               f"WHERE {' AND '.join(where) or '1 = 1'} ORDER BY {order} DESC LIMIT ?")
        params.append(query.limit)
        cur = self.conn.execute(sql, params)
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        for row in rows:
            row["labels"] = [r[0] for r in self.conn.execute(
                "SELECT label FROM message_labels WHERE message = ? ORDER BY label", (row["id"],)).fetchall()]
        return rows

    def set_seen(self, ids: Sequence[int], seen: bool, local_account: str) -> int:
        """Mark messages read or unread; the number changed.

        A change to an IMAP message is also queued (seen_pending) for the poller to store on
        the server; messages of local_account (the SMTP inbox) have no server.
        """
        value = 1 if seen else 0
        cur = self.conn.executemany(
            "UPDATE messages SET seen = ?, seen_pending = CASE WHEN account = ? THEN NULL ELSE ? END "
            "WHERE id = ? AND (seen != ? OR seen_pending IS NOT NULL)",
            [(value, local_account, value, i, value) for i in ids])
        return cur.rowcount

    def pending_seen(self, account: str, mailbox: str | None = None) -> list[tuple[int, int, int, bool]]:
        """Read-state changes waiting to be stored on the server: (id, uidvalidity, uid, seen)."""
        sql = "SELECT id, uidvalidity, uid, seen_pending FROM messages WHERE account = ? AND seen_pending IS NOT NULL"
        params: list[Any] = [account]
        if mailbox is not None:
            sql += " AND mailbox = ?"
            params.append(mailbox)
        return [(int(r[0]), int(r[1]), int(r[2]), bool(r[3])) for r in self.conn.execute(sql, params).fetchall()]

    def has_pending_seen(self, account: str, mailboxes: Sequence[str]) -> bool:
        """Whether any of an account's mailboxes has a read-state change to store on the server."""
        marks = ", ".join("?" for _ in mailboxes)
        row = self.conn.execute(
            f"SELECT 1 FROM messages WHERE account = ? AND mailbox IN ({marks}) AND seen_pending IS NOT NULL LIMIT 1",
            [account, *mailboxes]).fetchall()
        return bool(row)

    def clear_pending_seen(self, done: Sequence[tuple[int, bool]]) -> None:
        """Forget queued changes the server now has; one changed again meanwhile stays queued."""
        self.conn.executemany("UPDATE messages SET seen_pending = NULL WHERE id = ? AND seen_pending = ?",
                               [(i, 1 if seen else 0) for i, seen in done])

    def apply_server_seen(self, account: str, mailbox: str, uidvalidity: int, flags: dict[int, bool]) -> int:
        """Take the server's read state for cached messages without a queued change; the number changed."""
        cur = self.conn.executemany(
            "UPDATE messages SET seen = ? WHERE account = ? AND mailbox = ? AND uidvalidity = ? AND uid = ? "
            "AND seen != ? AND seen_pending IS NULL",
            [(1 if seen else 0, account, mailbox, uidvalidity, uid, 1 if seen else 0) for uid, seen in flags.items()])
        return cur.rowcount

    def first_uid(self, account: str, mailbox: str, uidvalidity: int) -> int | None:
        """The lowest uid cached for a mailbox, or None when none is."""
        row = self.conn.execute(
            "SELECT min(uid) FROM messages WHERE account = ? AND mailbox = ? AND uidvalidity = ?",
            (account, mailbox, uidvalidity)).fetchall()
        return int(row[0][0]) if row and row[0][0] is not None else None

    def set_label(self, ids: Sequence[int], label: str, present: bool) -> None:
        """Add or remove a local label."""
        if present:
            self.conn.executemany("INSERT OR IGNORE INTO message_labels (message, label) VALUES (?, ?)",
                                   [(i, label) for i in ids])
        else:
            self.conn.executemany("DELETE FROM message_labels WHERE message = ? AND label = ?",
                                   [(i, label) for i in ids])

    def existing(self, ids: Sequence[int]) -> set[int]:
        """Which of these message ids are cached."""
        if not ids:
            return set()
        marks = ", ".join("?" for _ in ids)
        return {int(r[0]) for r in self.conn.execute(f"SELECT id FROM messages WHERE id IN ({marks})",
                                                       list(ids)).fetchall()}

    def handed_out(self, ids: Sequence[int]) -> set[tuple[int, str]]:
        """Which (message, item) pairs inbox_wait has handed out, among these messages."""
        if not ids:
            return set()
        marks = ", ".join("?" for _ in ids)
        rows = self.conn.execute(f"SELECT message, item FROM handed_out WHERE message IN ({marks})", list(ids))
        return {(int(r[0]), str(r[1])) for r in rows.fetchall()}

    def hand_out(self, message: int, items: Sequence[str], now: float) -> None:
        """Record codes or links as handed out."""
        self.conn.executemany("INSERT OR IGNORE INTO handed_out (message, item, at) VALUES (?, ?, ?)",
                               [(message, item, now) for item in items])

    def issue_address(self, address: str, account: str, now: float) -> float:
        """Record an address inbox_address issued (the first issue stands); its issue time."""
        self.conn.execute("INSERT OR IGNORE INTO issued_addresses (address, account, issued_at) VALUES (?, ?, ?)",
                           (address.lower(), account, now))
        return self.issued_at(address) or now

    def issued_at(self, address: str) -> float | None:
        """When inbox_address issued an address, or None when it did not."""
        rows = self.conn.execute("SELECT issued_at FROM issued_addresses WHERE address = ?",
                                  (address.lower(),)).fetchall()
        return float(rows[0][0]) if rows else None

    def purge_messages(self, before: float) -> int:
        """Delete messages received before a time, and the records of addresses issued before it; the messages deleted."""
        self.conn.execute("DELETE FROM issued_addresses WHERE issued_at < ?", (before,))
        return self.conn.execute("DELETE FROM messages WHERE received_at < ?", (before,)).rowcount

    def stale_extractions(self, version: int, after_id: int, limit: int) -> list[dict[str, Any]]:
        """The fields extraction needs, for messages not extracted by this version (or a newer one), by id."""
        cur = self.conn.execute(
            f"SELECT {', '.join(EXTRACT_INPUT_COLUMNS)} FROM messages WHERE extractor < ? AND id > ? "
            "ORDER BY id LIMIT ?", (version, after_id, limit))
        return [dict(zip(EXTRACT_INPUT_COLUMNS, row, strict=True)) for row in cur.fetchall()]

    def count_stale_extractions(self, version: int) -> int:
        """How many cached messages are not extracted by this version (or a newer one)."""
        return int(self.conn.execute("SELECT count(*) FROM messages WHERE extractor < ?",
                                      (version,)).fetchall()[0][0])

    def set_extractions(self, results: Sequence[tuple[int, str | None, int]]) -> None:
        """Store (id, extraction JSON, extractor version) for each message."""
        self.conn.executemany("UPDATE messages SET extraction = ?, extractor = ? WHERE id = ?",
                               [(data, version, i) for i, data, version in results])

    def mark_extractions_stale(self, account: str | None = None) -> int:
        """Mark every message (of an account) for re-extraction (`inbox reindex --all`); the number marked."""
        if account is None:
            return self.conn.execute("UPDATE messages SET extractor = 0").rowcount
        return self.conn.execute("UPDATE messages SET extractor = 0 WHERE account = ?", (account,)).rowcount

    def auth_results_of(self, account: str, limit: int) -> list[str]:
        """The Authentication-Results (JSON lists) of an account's newest cached messages."""
        cur = self.conn.execute("SELECT auth_results FROM messages WHERE account = ? ORDER BY id DESC LIMIT ?",
                                 (account, limit))
        return [str(row[0]) for row in cur.fetchall()]

    def mailbox_state(self, account: str, mailbox: str) -> tuple[int, int] | None:
        """(uidvalidity, last uid) recorded for a mailbox."""
        rows = self.conn.execute("SELECT uidvalidity, last_uid FROM mailbox_state WHERE account = ? AND mailbox = ?",
                                  (account, mailbox)).fetchall()
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    def synced_at(self) -> dict[str, float]:
        """Per account, when its mailboxes were last synced (by a server's poller or `inbox sync`)."""
        rows = self.conn.execute(
            "SELECT account, max(synced_at) FROM mailbox_state WHERE synced_at IS NOT NULL GROUP BY account").fetchall()
        return {str(r[0]): float(r[1]) for r in rows}

    def set_mailbox_state(self, account: str, mailbox: str, uidvalidity: int, last_uid: int, now: float) -> None:
        """Record how far a mailbox is synced."""
        self.conn.execute(
            "INSERT INTO mailbox_state (account, mailbox, uidvalidity, last_uid, synced_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (account, mailbox) DO UPDATE SET uidvalidity = excluded.uidvalidity, "
            "last_uid = excluded.last_uid, synced_at = excluded.synced_at",
            (account, mailbox, uidvalidity, last_uid, now),
        )

    # -- pollers ------------------------------------------------------------------------

    def claim_poller(self, account: str, holder: str, now: float, ttl: float) -> bool:
        """Take (or keep) the poller lease of an account unless another live holder has it."""
        cur = self.conn.execute(
            "INSERT INTO pollers (account, holder, expires_at, heartbeat) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (account) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at, "
            "heartbeat = excluded.heartbeat, connected = 0, idling = 0 "
            "WHERE pollers.holder = excluded.holder OR pollers.expires_at < ?",
            (account, holder, now + ttl, now, now),
        )
        return cur.rowcount == 1

    def report_poller(self, account: str, holder: str, now: float, ttl: float, status: dict[str, Any]) -> bool:
        """Renew the lease and record the poller's status; False when the lease was lost."""
        cur = self.conn.execute(
            "UPDATE pollers SET expires_at = ?, heartbeat = ?, connected = ?, idling = ?, last_sync = ?, "
            "last_error = ?, errors = ? WHERE account = ? AND holder = ?",
            (now + ttl, now, int(bool(status.get("connected"))), int(bool(status.get("idling"))),
             status.get("last_sync"), status.get("last_error"), int(status.get("errors") or 0), account, holder),
        )
        return cur.rowcount == 1

    def release_poller(self, account: str, holder: str) -> None:
        """Give the lease up (another process may take it at once)."""
        self.conn.execute("UPDATE pollers SET expires_at = 0, connected = 0, idling = 0 "
                           "WHERE account = ? AND holder = ?", (account, holder))

    def poller_rows(self) -> list[dict[str, Any]]:
        """Every account's lease and status."""
        cur = self.conn.execute("SELECT * FROM pollers ORDER BY account")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _fts_phrase(text: str) -> str:
    """Free text as an FTS5 query of quoted terms (all must match): no query syntax gets through."""
    terms = [t.replace('"', '""') for t in text.split() if t.strip()]
    return " ".join(f'"{t}"' for t in terms) or '""'


