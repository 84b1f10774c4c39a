"""`mailgent-mcp inbox ...`: accounts, sync with progress, reading, status, reindexing and purging."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from mailgent_mcp.cli.args import whole
from mailgent_mcp.errors import EntryNotFound, InvalidInput, NoMailSource
from mailgent_mcp.settings import (
    FIRST_SYNC_DAYS_MAX,
    FIRST_SYNC_MAX,
    default_home,
    ensure_home,
)
from mailgent_mcp.times import iso, parse_age

# The mail modules (imapclient, aiosmtpd, mail-parser, tomlkit) are imported by the commands
# that use them, so that `mailgent-mcp vault ...` does not pay for them at start.
if TYPE_CHECKING:
    from mailgent_mcp.inbox.cache import AccountStatus, CachedMessage
    from mailgent_mcp.inbox.imap import ImapAccount


def add_parsers(groups: Any) -> None:
    """Register the `inbox` command group on the top-level subparsers."""
    inbox = groups.add_parser("inbox", help="IMAP accounts and the message cache").add_subparsers(
        dest="cmd", required=True)

    add = inbox.add_parser("add", help="add an IMAP account (password from a prompt or stdin)")
    add.add_argument("name")
    add.add_argument("--host", required=True)
    add.add_argument("--port", type=whole(1, 65535), help="default 993 for tls, 143 otherwise")
    add.add_argument("--security", choices=["tls", "starttls", "plain"], default="tls")
    add.add_argument("--username", required=True)
    add.add_argument("--mailbox", action="append", help="mailbox to sync (repeat; default INBOX)")
    add.add_argument("--ca", metavar="FILE", help="CA certificate file for a private CA")
    add.add_argument("--insecure-skip-verify", action="store_true",
                     help="do not verify the server's certificate (only for a test server you control)")
    add.add_argument("--first-sync", type=whole(1, FIRST_SYNC_MAX), default=200, metavar="N",
                     help="newest N messages on the first sync")
    add.add_argument("--first-sync-days", type=whole(1, FIRST_SYNC_DAYS_MAX), metavar="DAYS",
                     help="on the first sync, only messages of the last DAYS days (and at most N)")
    add.add_argument("--trust-authserv", action="append", metavar="ID",
                     help="the authserv-id of the account's receiving server, whose Authentication-Results "
                          "vouch for senders (repeat; default: the provider's, for Gmail, Fastmail, iCloud, Yahoo)")
    add.add_argument("--no-check", action="store_true", help="store without trying the login now")
    add.set_defaults(handler=cmd_add)

    trust = inbox.add_parser("trust", help="the authserv-ids in an account's cached mail, and which it trusts")
    trust.add_argument("name")
    trust.add_argument("--add", action="append", metavar="ID", default=[], help="trust this authserv-id (repeat)")
    trust.add_argument("--remove", action="append", metavar="ID", default=[], help="stop trusting it (repeat)")
    trust.add_argument("--json", action="store_true")
    trust.set_defaults(handler=cmd_trust)

    lst = inbox.add_parser("list", help="list the configured accounts")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(handler=cmd_list)

    rm = inbox.add_parser("remove", help="remove an account (and its password from the vault)")
    rm.add_argument("name")
    rm.add_argument("--keep-password", action="store_true")
    rm.set_defaults(handler=cmd_remove)

    sync = inbox.add_parser("sync", help="fetch new mail now (a progress bar on a first sync)")
    sync.add_argument("name", nargs="?", help="one account (default: all)")
    sync.set_defaults(handler=cmd_sync)

    read = inbox.add_parser("read", help="show cached messages, newest first")
    read.add_argument("--account")
    read.add_argument("--from", dest="sender", metavar="ADDRESS_OR_DOMAIN")
    read.add_argument("--to")
    read.add_argument("--subject")
    read.add_argument("--query", help="full-text words")
    read.add_argument("--since", help="an age such as 10m or 2d, or an ISO time")
    state = read.add_mutually_exclusive_group()
    state.add_argument("--unread", action="store_true", help="unread only")
    state.add_argument("--read", action="store_true", help="read only")
    read.add_argument("--label")
    read.add_argument("--limit", type=int, default=10)
    read.add_argument("--mark-read", action="store_true")
    read.add_argument("--json", action="store_true")
    read.set_defaults(handler=cmd_read)

    status = inbox.add_parser("status", help="per account: poller, connection, IDLE, last sync, lag, errors")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)

    reindex = inbox.add_parser("reindex", help="re-run code, link and text extraction on cached mail")
    reindex.add_argument("--all", action="store_true",
                         help="every message (default: those extracted by an older version, or never)")
    reindex.add_argument("--batch", type=whole(1, 10_000), default=200, help="messages per committed batch")
    reindex.set_defaults(handler=cmd_reindex)

    purge = inbox.add_parser("purge", help="delete cached messages older than an age (default: the retention)")
    purge.add_argument("--older-than", metavar="AGE",
                       help="e.g. 7d, 12h, 0 for all (default: the retention, 30d unless configured)")
    purge.set_defaults(handler=cmd_purge)


def _home(args: argparse.Namespace) -> Path:
    return ensure_home(args.home if args.home is not None else default_home(args.environ))


async def cmd_add(args: argparse.Namespace, out: TextIO, read_secret: Any) -> int:
    from mailgent_mcp.inbox.accounts import password_entry, save_account
    from mailgent_mcp.inbox.imap import ImapError, ImapSession
    from mailgent_mcp.vault.entries import Vault

    home = _home(args)
    account = _account_of(args)
    password = read_secret(f"IMAP password for {args.username}")
    if not args.no_check:
        try:
            session = await asyncio.to_thread(ImapSession, account, password, 20.0)
        except ImapError as exc:
            raise InvalidInput(f"{exc} Nothing was saved.") from None  # the command's own options are wrong
        await asyncio.to_thread(session.close)
        out.write(f"Logged in to {account.host} as {account.username}.\n")
    async with await Vault.open(home, environ=args.environ) as vault:
        await vault.put(password_entry(account.name), {"username": account.username, "password": password}, "LOGIN")
    save_account(home, account)
    out.write(f"Account {account.name!r} added; its password is the vault entry {password_entry(account.name)!r}. "
              "`mailgent-mcp inbox sync` fetches mail now; `mailgent-mcp serve` keeps it current.\n")
    return 0


def _account_of(args: argparse.Namespace) -> ImapAccount:
    """The account `inbox add` describes, its options checked."""
    from mailgent_mcp.inbox.accounts import (
        account_from_table,
        check_authserv_id,
        check_name,
    )

    name = check_name(args.name)
    if not args.host.strip() or not args.username.strip() or not all(args.mailbox or ["INBOX"]):
        raise InvalidInput("--host, --username and --mailbox must not be empty.")
    table: dict[str, object] = {"host": args.host, "username": args.username, "security": args.security,
                                "mailboxes": args.mailbox or ["INBOX"], "first_sync_count": args.first_sync,
                                "insecure_skip_verify": args.insecure_skip_verify}
    if args.first_sync_days is not None:
        table["first_sync_days"] = args.first_sync_days
    if args.port:
        table["port"] = args.port
    if args.ca:
        ca = Path(args.ca).expanduser().resolve()
        if not ca.is_file():
            raise InvalidInput("--ca FILE: no such file; give the PEM file of the server's CA.")
        table["ca_file"] = str(ca)
    if args.trust_authserv:
        table["trusted_authserv_ids"] = [check_authserv_id(value) for value in args.trust_authserv]
    return account_from_table(name, table)


async def cmd_list(args: argparse.Namespace, out: TextIO, read_secret: Any) -> int:
    from mailgent_mcp.inbox.accounts import ENV_ACCOUNT, load_accounts

    accounts = load_accounts(_home(args), args.environ)
    if args.json:
        out.write(json.dumps([_account_json(a) for a in accounts], indent=2) + "\n")
        return 0
    if not accounts:
        out.write("No accounts. Add one with: mailgent-mcp inbox add NAME --host H --username U\n")
    for a in accounts:
        source = "environment" if a.name == ENV_ACCOUNT else "config.toml"
        out.write(f"{a.name:<16} {a.security}://{a.username}@{a.host}:{a.port} {','.join(a.mailboxes)}  ({source})\n")
    return 0


def _account_json(a: ImapAccount) -> dict[str, object]:
    return {"name": a.name, "host": a.host, "port": a.port, "security": a.security, "username": a.username,
            "mailboxes": list(a.mailboxes), "trusted_authserv_ids": list(a.trusted_authserv_ids)}


async def cmd_remove(args: argparse.Namespace, out: TextIO, read_secret: Any) -> int:
    from mailgent_mcp.inbox.accounts import password_entry, remove_account
    from mailgent_mcp.vault.entries import Vault

    home = _home(args)
    if not remove_account(home, args.name):
        raise InvalidInput(f"No account named {args.name!r} in config.toml; `mailgent-mcp inbox list` shows them.")
    if not args.keep_password:
        async with await Vault.open(home, environ=args.environ) as vault:
            with contextlib.suppress(EntryNotFound):
                await vault.delete(password_entry(args.name))
    out.write(f"Account {args.name!r} removed. Its cached messages stay until purged.\n")
    return 0


async def cmd_sync(args: argparse.Namespace, out: TextIO, read_secret: Any) -> int:
    from mailgent_mcp.inbox.accounts import load_accounts
    from mailgent_mcp.inbox.cache import Inbox, mail_can_arrive
    from mailgent_mcp.inbox.imap import ImapSync
    from mailgent_mcp.inbox.parse import Parser
    from mailgent_mcp.inbox.service import env_or_vault_password
    from mailgent_mcp.vault.entries import Vault

    home = _home(args)
    env = args.environ
    configured = load_accounts(home, env)
    accounts = [a for a in configured if args.name in (None, a.name)]
    if not configured:
        async with await Inbox.open(home) as inbox:
            if not await mail_can_arrive(inbox, home, env, None):
                raise NoMailSource()
    if not accounts:
        raise InvalidInput("No such account; `mailgent-mcp inbox list` shows them." if args.name else
                           "No IMAP accounts to sync (the SMTP inbox needs no sync); add one with "
                           "`mailgent-mcp inbox add NAME --host HOST --username ADDRESS`.")
    parser = Parser()
    try:
        async with await Vault.open(home, environ=env) as vault, await Inbox.open(home) as inbox:
            async def vault_data(name: str) -> dict[str, str]:
                return (await vault.get(name, actor="inbox")).data

            passwords = env_or_vault_password(vault_data, env)
            for account in accounts:
                sync = ImapSync(account, await passwords(account), inbox, parser)
                try:
                    added = await sync.sync_once(progress=_progress_bar(account.name, sys.stderr))
                finally:
                    await sync.disconnect()
                out.write(f"{account.name}: {added} new message(s)\n")
            # A first sync extracts its newest messages at once and leaves the rest to this.
            bar = _progress_bar("extracting", sys.stderr)
            extracted = await inbox.reindex(parser, trusted={a.name: a.trusted_authserv_ids for a in configured},
                                            progress=lambda done, total: bar("older mail", done, total))
            if extracted:
                out.write(f"Extracted codes, links and text of {extracted} older message(s).\n")
    finally:
        parser.close()
    return 0


def _progress_bar(name: str, err: TextIO) -> Any:
    tty = err.isatty()

    def show(mailbox: str, done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        line = f"{name}/{mailbox} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        if tty:
            err.write("\r" + line + ("\n" if done >= total else ""))
        elif done >= total or done % 500 < 50:
            err.write(line + "\n")
        err.flush()

    return show


def _since(text: str | None) -> float | None:
    """--since: an age (10m, 2d) back from now, or an ISO time (UTC when it has no zone)."""
    from mailgent_mcp.inbox.cache import parse_since

    return parse_since(text, time.time()) if text else None


async def cmd_read(args: argparse.Namespace, out: TextIO, read_secret: Any) -> int:
    from mailgent_mcp.inbox.cache import Inbox, mail_can_arrive
    from mailgent_mcp.inbox.store import MessageQuery
    from mailgent_mcp.inbox.untrusted import MAX_ADDRESS, neutralise, new_answer_id
    from mailgent_mcp.vault.entries import Vault

    query = MessageQuery(account=args.account, sender=args.sender, to=args.to, subject=args.subject,
                         text=args.query, since=_since(args.since),
                         seen=False if args.unread else True if args.read else None, label=args.label,
                         limit=args.limit)
    home = _home(args)
    # The cache is not encrypted, but mailgent-mcp shows it only to whoever can open the vault.
    async with await Vault.open(home, environ=args.environ):
        pass
    async with await Inbox.open(home) as inbox:
        messages = await inbox.read(query)
        if not messages and not await mail_can_arrive(inbox, home, args.environ, None):
            raise NoMailSource()
        if args.mark_read and messages:
            await inbox.mark([m.id for m in messages], seen=True)
    if args.json:
        answer_id = new_answer_id()
        out.write(json.dumps([_message_json(m, answer_id) for m in messages], indent=2, ensure_ascii=False) + "\n")
        return 0
    if not messages:
        out.write("No cached messages match.\n")
    for m in messages:  # sender text, shown as the tools show it: one clean line, bounded
        flag = " " if m.seen else "*"
        sender = neutralise(m.from_addr or "-", MAX_ADDRESS)
        out.write(f"{flag} {m.id:>6}  {iso(m.received_at)}  {sender:<32}  {neutralise(m.subject, 80)}\n")
    return 0


def _message_json(m: CachedMessage, answer_id: str) -> dict[str, object]:
    """A message as inbox_read shows it (see untrusted.py), with its mailbox, read flag and parse problem."""
    from mailgent_mcp.inbox.untrusted import MAX_NAME, neutralise, shown_message

    return {**shown_message(m, answer_id), "mailbox": neutralise(m.mailbox, MAX_NAME), "seen": m.seen,
            "problem": m.problem}


def _status_row(name: str, st: AccountStatus, now: float) -> dict[str, object]:
    last = st.last_sync
    return {"account": name, "polled_by": st.polled_by, "connected": st.connected, "idle": st.idle,
            "last_sync": iso(last) if last else None, "lag_seconds": round(now - last, 1) if last else None,
            "errors": st.errors, "last_error": st.last_error}


async def cmd_status(args: argparse.Namespace, out: TextIO, read_secret: Any) -> int:
    from mailgent_mcp.inbox.accounts import load_accounts
    from mailgent_mcp.inbox.cache import Inbox

    home = _home(args)
    accounts = load_accounts(home, args.environ)
    async with await Inbox.open(home) as inbox:
        status = await inbox.account_status([a.name for a in accounts])
        now = time.time()
        rows = [_status_row(name, st, now) for name, st in status.items()]
    if args.json:
        out.write(json.dumps(rows, indent=2) + "\n")
        return 0
    if not rows:
        out.write("No accounts. Add one with: mailgent-mcp inbox add NAME --host H --username U\n")
    for r in rows:
        state = ("IDLE" if r["idle"] else "connected" if r["connected"] else
                 "polled" if r["polled_by"] else "not polled (no server running)")
        ago = "" if r["lag_seconds"] is None else f" ({r['lag_seconds']} s ago)"
        error = f": {r['last_error']}" if r["last_error"] else ""
        out.write(f"{r['account']:<16} {state:<12} last sync {r['last_sync'] or 'never'}{ago}  "
                  f"errors {r['errors']}{error}\n")
    return 0


async def cmd_reindex(args: argparse.Namespace, out: TextIO, read_secret: Any) -> int:
    from mailgent_mcp.inbox.accounts import trusted_by_account
    from mailgent_mcp.inbox.cache import Inbox
    from mailgent_mcp.inbox.parse import Parser

    err = sys.stderr

    def show(done: int, total: int) -> None:
        err.write(f"reindex {done}/{total}\n")
        err.flush()

    home = _home(args)
    trusted = trusted_by_account(home, args.environ)
    parser = Parser()
    try:
        async with await Inbox.open(home) as inbox:
            done = await inbox.reindex(parser, trusted=trusted, everything=args.all, batch=args.batch,
                                       progress=show)
    finally:
        parser.close()
    out.write(f"Re-extracted {done} cached message(s).\n")
    return 0


async def cmd_purge(args: argparse.Namespace, out: TextIO, read_secret: Any) -> int:
    from mailgent_mcp.inbox.cache import Inbox
    from mailgent_mcp.settings import ENV_RETENTION, load_settings

    home = _home(args)
    if args.older_than is not None:
        age, said = parse_age(args.older_than), args.older_than
    else:
        keep = load_settings(home, args.environ).retention
        if keep is None:
            raise InvalidInput(f"The retention is off ({ENV_RETENTION} or config.toml); give --older-than AGE.")
        age, said = keep, f"{keep / 86400:g}d (the retention)"
    async with await Inbox.open(home) as inbox:
        removed = await inbox.purge(age)
    out.write(f"Purged {removed} cached message(s) older than {said}.\n")
    return 0


TRUST_SAMPLE = 1000  # `inbox trust` reads the topmost header of this many of the newest cached messages


async def cmd_trust(args: argparse.Namespace, out: TextIO, read_secret: Any) -> int:
    from mailgent_mcp.inbox.accounts import (
        check_authserv_id,
        load_accounts,
        save_trusted_ids,
        trusted_by_account,
    )
    from mailgent_mcp.inbox.cache import Inbox
    from mailgent_mcp.inbox.extract import authserv_trusted
    from mailgent_mcp.inbox.parse import Parser

    home = _home(args)
    account = next((a for a in load_accounts(home, args.environ) if a.name == args.name), None)
    if account is None:
        raise InvalidInput(f"No account named {args.name!r}; `mailgent-mcp inbox list` shows them.")
    trusted = account.trusted_authserv_ids
    if args.add or args.remove:
        removed = {check_authserv_id(value) for value in args.remove}
        trusted = tuple(i for i in dict.fromkeys([*trusted, *map(check_authserv_id, args.add)]) if i not in removed)
        save_trusted_ids(home, account.name, trusted)
    async with await Inbox.open(home) as inbox:
        redone = 0
        if trusted != account.trusted_authserv_ids:
            # What the account's cached mail vouches for changes with it: extract it again now.
            parser = Parser()
            try:
                redone = await inbox.reindex(parser, trusted=trusted_by_account(home, args.environ), everything=True,
                                             account=account.name)
            finally:
                parser.close()
        seen = await inbox.authserv_ids_seen(account.name, TRUST_SAMPLE)
    rows = [{"authserv_id": _shown_id(found), "messages": count, "trusted": authserv_trusted(found, trusted)}
            for found, count in sorted(seen.items(), key=lambda item: -item[1])]
    if args.json:
        out.write(json.dumps({"account": account.name, "trusted_authserv_ids": list(trusted), "seen": rows,
                              "reindexed": redone}, indent=2) + "\n")
        return 0
    _write_trust(out, account.name, trusted, rows, redone)
    return 0


_SHOWN_ID = re.compile(r"[A-Za-z0-9._-]{1,100}\Z")


def _shown_id(found: str | None) -> str | None:
    """An authserv-id of cached mail as shown: the sender may have written it, so only a plain server name."""
    if found is None or _SHOWN_ID.match(found):
        return found
    return "(not a server name)"


def _write_trust(out: TextIO, name: str, trusted: tuple[str, ...], rows: list[dict[str, Any]], redone: int) -> None:
    out.write(f"Account {name!r} trusts: {', '.join(trusted) if trusted else 'no authserv-id'}\n")
    if redone:
        out.write(f"Re-extracted its {redone} cached message(s) with that.\n")
    if not rows:
        out.write("No cached mail of it yet; `mailgent-mcp inbox sync` fetches some.\n")
        return
    out.write(f"authserv-id of the topmost Authentication-Results header, newest {TRUST_SAMPLE} cached messages:\n")
    for row in rows:
        shown = row["authserv_id"] or "(none: no header, or one naming no server, as Microsoft writes)"
        out.write(f"  {'trusted' if row['trusted'] else '       '}  {row['messages']:>6}  {shown}\n")
    out.write("The id on (nearly) all of its mail is its own server's. Trust it with: "
              f"mailgent-mcp inbox trust {name} --add ID\n")
