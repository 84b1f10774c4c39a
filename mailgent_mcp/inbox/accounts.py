"""IMAP accounts: `[accounts.NAME]` tables in config.toml, or one from the environment.

    [accounts.work]
    host = "imap.fastmail.com"
    port = 993
    security = "tls"            # tls | starttls | plain
    username = "agent@fastmail.com"
    mailboxes = ["INBOX"]
    # ca_file = "/path/to/private-ca.pem"
    # insecure_skip_verify = false
    # first_sync_count = 200
    # trusted_authserv_ids = ["mx.example.net"]   # whose Authentication-Results count

The password is never in the file: it is the vault entry `imap/NAME`. For a single
account an MCP client config can carry MAILGENT_IMAP_URL (imaps://user@host:993/INBOX,
imap+starttls://..., imap:// for plain) with MAILGENT_IMAP_PASSWORD (and MAILGENT_IMAP_CA).
`tomlkit` keeps the user's comments and layout when an account is added or removed.

trusted_authserv_ids names the receiving server(s) whose Authentication-Results headers
vouch for a sender (any other such header may be the sender's own); without it, an account
on a large provider's IMAP host trusts what that provider writes (PROVIDER_AUTHSERV_IDS).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import tomlkit

from mailgent_mcp.errors import ConfigError, InvalidInput
from mailgent_mcp.filelock import exclusive
from mailgent_mcp.inbox import imap
from mailgent_mcp.inbox.cache import LOCAL_ACCOUNT
from mailgent_mcp.inbox.imap import ImapAccount, Security
from mailgent_mcp.settings import (
    CONFIG_FILE,
    ENV_IMAP_URL,
    FIRST_SYNC_DAYS_MAX,
    FIRST_SYNC_MAX,
    AccountTable,
    Settings,
    account_table,
    ensure_home,
    load_config,
    load_settings,
)

ENV_ACCOUNT = imap.ENV_ACCOUNT
ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
# Names with a meaning of their own: an account by either name would mix its mail with theirs.
RESERVED_NAMES = {ENV_ACCOUNT: f"the account of {ENV_IMAP_URL}", LOCAL_ACCOUNT: "the SMTP inbox"}
SCHEMES: dict[str, tuple[Security, int]] = {"imaps": ("tls", 993), "imap+starttls": ("starttls", 143),
                                            "imap": ("plain", 143)}
TRUST_KEY = "trusted_authserv_ids"
AUTHSERV_ID = re.compile(r"(?:\*\.)?[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?)*\Z")

# The authserv-ids each large provider's receiving servers write in the Authentication-Results
# headers they add, by IMAP host, as found in delivered mail. Gmail writes one header,
# "mx.google.com"; Fastmail several per delivery from its mx host (mx3.messagingengine.com,
# phl-mx-08.messagingengine.com); iCloud one per method, each from its own host; Yahoo and AOL
# one from an atlas-*.omega.yahoo.com host. Microsoft 365 and Outlook.com write none (their
# header begins with "spf=..."), so nothing of theirs can be trusted: DKIM is verified here.
PROVIDER_AUTHSERV_IDS: dict[str, tuple[str, ...]] = {
    "imap.gmail.com": ("mx.google.com",),
    "imap.fastmail.com": ("*.messagingengine.com",),
    "imap.mail.me.com": ("bimi.icloud.com", "arc.icloud.com", "dmarc.icloud.com", "dkim-verifier.icloud.com",
                         "spf.icloud.com"),
    "imap.mail.yahoo.com": ("*.omega.yahoo.com",),
    "imap.aol.com": ("*.omega.yahoo.com",),
}


def default_authserv_ids(host: str) -> tuple[str, ...]:
    """The authserv-ids an account on this IMAP host trusts unless config.toml says otherwise."""
    return PROVIDER_AUTHSERV_IDS.get(host.strip().lower().rstrip("."), ())


def check_authserv_id(value: str) -> str:
    """An authserv-id to trust, lower-cased: a server name, or "*.example.net" for the names under it."""
    name = value.strip().lower()
    if len(name) > 253 or not AUTHSERV_ID.match(name):
        raise InvalidInput(f"{value[:80]!r} is not a server name (an authserv-id such as mx.google.com, or "
                           "*.example.net for the names under example.net).")
    return name


def _trusted_ids(name: str, host: str, value: object) -> tuple[str, ...]:
    """An account's trusted authserv-ids: its trusted_authserv_ids (value, None when absent), else its host's defaults."""
    if value is None:
        return default_authserv_ids(host)
    try:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise InvalidInput("not a list of strings")
        return tuple(dict.fromkeys(check_authserv_id(item) for item in value))
    except InvalidInput:
        raise ConfigError(
            f"{TRUST_KEY} of account {name!r} in config.toml must be a list of server names such as "
            f"[\"mx.google.com\"] (\"*.example.net\" for the names under it); `mailgent-mcp inbox trust {name}` "
            "lists the ones its cached mail carries."
        ) from None

SECURITIES = ("tls", "starttls", "plain")
MAX_PORT = 65535


def password_entry(name: str) -> str:
    """The vault entry holding an account's password."""
    return f"imap/{name}"


def check_name(name: str) -> str:
    """An account name: 1-64 letters, digits, '.', '_' or '-', and not one of the reserved names."""
    if not ACCOUNT_NAME.match(name):
        raise InvalidInput("Account names are 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.")
    if name in RESERVED_NAMES:
        raise InvalidInput(f"The account name {name!r} is reserved for {RESERVED_NAMES[name]}; choose another name.")
    return name


def account_from_table(name: str, table: Mapping[str, Any]) -> ImapAccount:
    """An ImapAccount from a config.toml table, every key checked for its type and range."""
    return account_from_settings(account_table(name, table))


def account_from_settings(table: AccountTable) -> ImapAccount:
    """An ImapAccount from its [accounts.NAME] table as Settings read it, each value checked for its range."""
    where = f"accounts.{table.name}"
    if table.security not in SECURITIES:
        raise ConfigError(f"security in config.toml's [{where}] table must be \"tls\", \"starttls\" or \"plain\".")
    port = _ranged(table.port, "port", where, 1, MAX_PORT) or (993 if table.security == "tls" else 143)
    return ImapAccount(
        name=table.name, host=table.host, port=port, username=table.username,
        security=table.security,  # type: ignore[arg-type]
        mailboxes=table.mailboxes or ("INBOX",), ca_file=table.ca_file,
        insecure_skip_verify=table.insecure_skip_verify,
        first_sync_count=_ranged(table.first_sync_count, "first_sync_count", where, 1, FIRST_SYNC_MAX) or 200,
        first_sync_days=_ranged(table.first_sync_days, "first_sync_days", where, 1, FIRST_SYNC_DAYS_MAX),
        trusted_authserv_ids=_trusted_ids(table.name, table.host, table.trusted_authserv_ids))


def _ranged(value: int | None, key: str, where: str, low: int, high: int) -> int | None:
    """An integer setting from low to high (None when absent)."""
    if value is not None and not low <= value <= high:
        raise ConfigError(f"{key} in config.toml's [{where}] table must be from {low} to {high}.")
    return value


def account_from_url(url: str, ca_file: str | None = None) -> ImapAccount:
    """The environment's single account from MAILGENT_IMAP_URL (and MAILGENT_IMAP_CA's file)."""
    usage = f"{ENV_IMAP_URL} must look like imaps://user@host:993/INBOX (or imap+starttls://, imap://)"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:  # a port that is not a number from 0 to 65535, or a broken [IPv6] host
        raise ConfigError(f"{usage}: check its host and that its port is a number from 1 to {MAX_PORT}.") from None
    if parts.scheme.lower() not in SCHEMES or not parts.hostname or not parts.username or port == 0:
        raise ConfigError(f"{usage}.")
    security, default_port = SCHEMES[parts.scheme.lower()]
    mailbox = unquote(parts.path.lstrip("/")) or "INBOX"
    return ImapAccount(name=ENV_ACCOUNT, host=parts.hostname, port=port or default_port,
                       username=unquote(parts.username), security=security, mailboxes=(mailbox,),
                       ca_file=ca_file, trusted_authserv_ids=default_authserv_ids(parts.hostname))


def accounts_of(settings: Settings) -> list[ImapAccount]:
    """The accounts of config.toml, plus the environment's one when MAILGENT_IMAP_URL is set."""
    accounts = []
    for table in settings.accounts:
        try:
            check_name(table.name)
        except InvalidInput as exc:
            raise ConfigError(f"Account {table.name[:64]!r} in config.toml ([accounts.NAME]): {exc}") from None
        accounts.append(account_from_settings(table))
    if settings.imap_url:
        accounts.append(account_from_url(settings.imap_url, settings.imap_ca))
    return accounts


def load_accounts(home: Path, environ: Mapping[str, str]) -> list[ImapAccount]:
    """The accounts of the data folder's config.toml and of environ (see accounts_of)."""
    return accounts_of(load_settings(home, environ))


def trusted_by_account(home: Path, environ: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """Each account's trusted authserv-ids, by name (what `Inbox.reindex` extracts with)."""
    return {account.name: account.trusted_authserv_ids for account in load_accounts(home, environ)}


CONFIG_LOCK = ".config.lock"


@contextmanager
def _editing(home: Path) -> Iterator[tomlkit.TOMLDocument]:
    """config.toml as a document to change in place, written back when the block ends without an error.

    Other processes' edits wait for this one (a lock file), so two commands changing the file
    at once both keep their change: neither writes back a copy read before the other's.
    """
    ensure_home(home)
    with exclusive(home / CONFIG_LOCK, timeout=30.0,
                   busy="config.toml is being changed by another command that does not finish; try again."):
        document = _read_document(home)
        before = tomlkit.dumps(document)
        yield document
        if tomlkit.dumps(document) != before:
            _write_document(home, document)


def save_account(home: Path, account: ImapAccount) -> None:
    """Add or replace [accounts.NAME] in config.toml, keeping the rest of the file as it was."""
    with _editing(home) as document:
        _put_account(document, account)


def _put_account(document: tomlkit.TOMLDocument, account: ImapAccount) -> None:
    accounts = document.setdefault("accounts", tomlkit.table(is_super_table=True))
    table = tomlkit.table()
    table["host"] = account.host
    table["port"] = account.port
    table["security"] = account.security
    table["username"] = account.username
    table["mailboxes"] = list(account.mailboxes)
    if account.ca_file:
        table["ca_file"] = account.ca_file
    if account.insecure_skip_verify:
        table["insecure_skip_verify"] = True
    table["first_sync_count"] = account.first_sync_count
    if account.first_sync_days is not None:
        table["first_sync_days"] = account.first_sync_days
    if account.trusted_authserv_ids != default_authserv_ids(account.host):
        table[TRUST_KEY] = list(account.trusted_authserv_ids)
    accounts[account.name] = table


def save_trusted_ids(home: Path, name: str, ids: tuple[str, ...]) -> None:
    """Set [accounts.NAME]'s trusted_authserv_ids (removed when they are its host's defaults), keeping the rest."""
    with _editing(home) as document:
        accounts = document.get("accounts")
        if accounts is None or name not in accounts:
            raise InvalidInput(f"No account named {name!r} in config.toml; `mailgent-mcp inbox list` shows them "
                               f"(the {ENV_ACCOUNT!r} account of {ENV_IMAP_URL} trusts its host's defaults only).")
        table = accounts[name]
        if ids == default_authserv_ids(str(table.get("host", ""))):
            table.pop(TRUST_KEY, None)
        else:
            table[TRUST_KEY] = list(ids)


def remove_account(home: Path, name: str) -> bool:
    """Remove [accounts.NAME]; False when there was none."""
    with _editing(home) as document:
        accounts = document.get("accounts")
        if accounts is None or name not in accounts:
            return False
        del accounts[name]
    return True


def _read_document(home: Path) -> tomlkit.TOMLDocument:
    path = home / CONFIG_FILE
    load_config(home)  # the same clear error for a broken file
    return tomlkit.parse(path.read_text()) if path.exists() else tomlkit.document()


def _write_document(home: Path, document: tomlkit.TOMLDocument) -> None:
    """Write config.toml atomically (a temporary file renamed over it), mode 0600."""
    path = ensure_home(home) / CONFIG_FILE
    tmp = path.with_name(f".{CONFIG_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(tomlkit.dumps(document))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
