"""Every setting of the server, read here and nowhere else: the environment, then config.toml.

VARIABLES lists each environment variable and config.toml key with its default and meaning
(README.md's settings table is checked against it). `load_settings` reads them once into a
typed, validated `Settings`; `read_environment` reads the environment alone (the vault needs
no config.toml). An unknown key in config.toml is refused, naming the nearest known one.
Secrets are held as SecretStr, which never shows its value in a repr or an error.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import math
import os
import stat
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import platformdirs
from pydantic import SecretStr

from mailgent_mcp.errors import ConfigError, InvalidInput
from mailgent_mcp.times import parse_age

log = logging.getLogger(__name__)

APP_NAME = "mailgent-mcp"

ENV_HOME = "MAILGENT_HOME"
ENV_MASTER_KEY = "MAILGENT_MASTER_KEY"
ENV_PASSPHRASE = "MAILGENT_PASSPHRASE"
ENV_DEFAULT_ENTRY = "MAILGENT_DEFAULT_ENTRY"
ENV_TOOL_NAMES = "MAILGENT_TOOL_NAMES"
ENV_TOKEN = "MAILGENT_TOKEN"
ENV_SMTP_LISTEN = "MAILGENT_SMTP_LISTEN"
ENV_RETENTION = "MAILGENT_RETENTION"
ENV_LEASE_TTL = "MAILGENT_LEASE_TTL"
ENV_IMAP_URL = "MAILGENT_IMAP_URL"
ENV_IMAP_PASSWORD = "MAILGENT_IMAP_PASSWORD"
ENV_IMAP_CA = "MAILGENT_IMAP_CA"

DEFAULT_RETENTION = "30d"
DEFAULT_LISTEN = "127.0.0.1:2525"
LEASE_TTL_S = 15.0
LEASE_TTL_RANGE = (1.0, 3600.0)  # shorter renews the lease in a busy loop; longer leaves a dead poller's account idle


@dataclass(frozen=True)
class Variable:
    """One setting: its environment variable and/or config.toml key, its default and what it does."""

    env: str | None
    key: str | None  # "table.key" in config.toml
    default: str
    meaning: str
    secret: bool = False


VARIABLES: tuple[Variable, ...] = (
    Variable(ENV_HOME, None, "the platform's user data folder",
             "The data folder: vault.db, master.key, config.toml (`--home` on the command line)."),
    Variable(ENV_MASTER_KEY, None, "unset",
             "The master key itself, base64 of 32 bytes; used before the passphrase and master.key.", secret=True),
    Variable(ENV_PASSPHRASE, None, "unset",
             "A passphrase the master key is derived from (Argon2id); used before master.key.", secret=True),
    Variable(ENV_DEFAULT_ENTRY, "vault.default_entry", "none",
             "The entry `vault_totp` gives a code of when the call names none."),
    Variable(ENV_TOOL_NAMES, "server.tool_names", "underscore",
             "`underscore` (vault_get) or `dotted` (vault.get) tool names (`--tool-names`)."),
    Variable(ENV_TOKEN, None, "the token file",
             "The bearer token of the HTTP transports, instead of the hash `mailgent-mcp token` stores.", secret=True),
    Variable(ENV_SMTP_LISTEN, None, "off",
             "HOST:PORT on loopback for the embedded SMTP inbox (`--smtp-listen`), e.g. 127.0.0.1:2525."),
    Variable(ENV_RETENTION, "inbox.retention", DEFAULT_RETENTION,
             "How long cached mail is kept: an age such as 30d or 12h, or off."),
    Variable(ENV_LEASE_TTL, None, f"{LEASE_TTL_S:g}",
             "Seconds after which another server process takes over a dead one's IMAP polling."),
    Variable(ENV_IMAP_URL, None, "unset",
             "One IMAP account from the environment: imaps://user@host:993/INBOX (imap+starttls://, imap://)."),
    Variable(ENV_IMAP_PASSWORD, None, "unset", f"The password of {ENV_IMAP_URL}'s account.", secret=True),
    Variable(ENV_IMAP_CA, None, "the system's CAs", f"A PEM file of the CAs {ENV_IMAP_URL}'s server is checked with."),
    Variable(None, "accounts.NAME.host", "(required)", "An IMAP account's server (`mailgent-mcp inbox add` writes it)."),
    Variable(None, "accounts.NAME.username", "(required)", "Its login; the password is the vault entry imap/NAME."),
    Variable(None, "accounts.NAME.port", "993 (tls), 143", "Its port."),
    Variable(None, "accounts.NAME.security", "tls", "tls, starttls or plain."),
    Variable(None, "accounts.NAME.mailboxes", '["INBOX"]', "The mailboxes synced."),
    Variable(None, "accounts.NAME.ca_file", "the system's CAs", "A PEM file of the CAs its server is checked with."),
    Variable(None, "accounts.NAME.insecure_skip_verify", "false", "TLS without checking the server's certificate."),
    Variable(None, "accounts.NAME.first_sync_count", "200", "How many of the newest messages the first sync takes."),
    Variable(None, "accounts.NAME.first_sync_days", "unset", "Or: the messages of this many last days."),
    Variable(None, "accounts.NAME.trusted_authserv_ids", "the host's provider's",
             "Receiving servers whose Authentication-Results count (`mailgent-mcp inbox trust NAME`)."),
)
SECRET_VARIABLES = tuple(v.env for v in VARIABLES if v.secret and v.env)
ENVIRONMENT_VARIABLES = tuple(v.env for v in VARIABLES if v.env)
# config.toml's tables and their keys; [accounts.NAME] tables take ACCOUNT_KEYS.
CONFIG_KEYS: dict[str, tuple[str, ...]] = {}
for _variable in VARIABLES:
    if _variable.key and not _variable.key.startswith("accounts."):
        _table, _, _key = _variable.key.partition(".")
        CONFIG_KEYS[_table] = (*CONFIG_KEYS.get(_table, ()), _key)
ACCOUNT_KEYS = tuple(v.key.rsplit(".", 1)[1] for v in VARIABLES if v.key and v.key.startswith("accounts."))

# Bounds of an IMAP account's first sync (--first-sync, --first-sync-days and their config.toml keys).
FIRST_SYNC_MAX = 1_000_000  # messages
FIRST_SYNC_DAYS_MAX = 36_500

VAULT_DB = "vault.db"
MASTER_KEY_FILE = "master.key"
CONFIG_FILE = "config.toml"


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    """The data folder: $MAILGENT_HOME, else the platform's user data dir."""
    value = (os.environ if environ is None else environ).get(ENV_HOME, "").strip()
    if value:
        return Path(value).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def ensure_home(home: Path) -> Path:
    """Create the data folder with mode 0700, or tighten an existing one to 0700."""
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = stat.S_IMODE(home.stat().st_mode)
        if not home.is_dir():
            raise ConfigError(f"The data folder {str(home)!r} is not a directory; point {ENV_HOME} at a folder.")
        if mode & 0o077:
            # 0700: cached mail and key files must not be readable by other users.
            os.chmod(home, 0o700)
            log.warning("tightened data folder %s from %o to 0700", home, mode)
    except OSError as exc:
        raise ConfigError(
            f"Cannot use the data folder {str(home)!r} ({exc.strerror}); set {ENV_HOME} to a writable folder."
        ) from None
    return home.resolve()


ToolNames = Literal["underscore", "dotted"]


@dataclass(frozen=True)
class Environment:
    """The MAILGENT_* environment variables, typed; None where unset."""

    home: Path | None = None
    master_key: SecretStr | None = None
    passphrase: SecretStr | None = None
    default_entry: str | None = None
    tool_names: str | None = None
    token: SecretStr | None = None
    smtp_listen: str | None = None
    retention: str | None = None
    lease_ttl: float | None = None
    imap_url: str | None = None
    imap_password: SecretStr | None = None
    imap_ca: str | None = None


@dataclass(frozen=True)
class AccountTable:
    """An [accounts.NAME] table of config.toml, each key of its type (ranges and names: inbox/accounts.py)."""

    name: str
    host: str
    username: str
    security: str = "tls"
    port: int | None = None
    mailboxes: tuple[str, ...] | None = None
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    first_sync_count: int | None = None
    first_sync_days: int | None = None
    trusted_authserv_ids: object = None  # None: absent; checked by inbox/accounts.py


@dataclass(frozen=True)
class Settings:
    """Every setting, from the command line, else the environment, else config.toml, else the default."""

    home: Path
    default_entry: str | None = None
    tool_names: ToolNames = "underscore"
    smtp_listen: str | None = None  # checked by parse_listen
    retention: float | None = parse_age(DEFAULT_RETENTION)  # seconds; None keeps mail until purged by hand
    lease_ttl: float = LEASE_TTL_S
    master_key: SecretStr | None = None
    passphrase: SecretStr | None = None
    token: SecretStr | None = None
    imap_url: str | None = None
    imap_password: SecretStr | None = None
    imap_ca: str | None = None
    accounts: tuple[AccountTable, ...] = field(default_factory=tuple)


def load_config(home: Path) -> dict[str, Any]:
    """config.toml in the data folder as a dict ({} when there is none)."""
    path = home / CONFIG_FILE
    try:
        with path.open("rb") as fh:
            config = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        # The decoder's message names a line and column, never a value.
        raise ConfigError(f"{str(path)!r} is not valid TOML ({exc}); fix or remove it.") from None
    except OSError as exc:
        raise ConfigError(f"Cannot read {str(path)!r} ({exc.strerror}).") from None
    check_keys(config)
    return config


def read_environment(environ: Mapping[str, str]) -> Environment:
    """The MAILGENT_* variables of environ, typed; a ConfigError naming the variable for a bad value."""

    def text(name: str) -> str | None:
        return environ.get(name) or None

    def key(name: str) -> SecretStr | None:
        if name in environ and not environ[name].strip():
            raise ConfigError(f"{name} is set but empty. Nothing was changed; set it to the vault's key, or unset "
                              f"it to use {MASTER_KEY_FILE} in the data folder.")
        return SecretStr(environ[name]) if environ.get(name) else None

    def secret(name: str) -> SecretStr | None:
        return SecretStr(environ[name]) if environ.get(name) else None

    home = environ.get(ENV_HOME, "").strip()
    lease = text(ENV_LEASE_TTL)
    return Environment(
        home=Path(home).expanduser() if home else None, master_key=key(ENV_MASTER_KEY),
        passphrase=key(ENV_PASSPHRASE), default_entry=text(ENV_DEFAULT_ENTRY),
        tool_names=text(ENV_TOOL_NAMES), token=secret(ENV_TOKEN),
        smtp_listen=text(ENV_SMTP_LISTEN), retention=text(ENV_RETENTION),
        lease_ttl=_lease_ttl(lease) if lease else None, imap_url=text(ENV_IMAP_URL),
        imap_password=secret(ENV_IMAP_PASSWORD),
        imap_ca=text(ENV_IMAP_CA))


def _lease_ttl(text: str) -> float:
    low, high = LEASE_TTL_RANGE
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not low <= seconds <= high:  # also refuses nan
        raise ConfigError(f"{ENV_LEASE_TTL} must be a number of seconds from {low:g} to {high:g} "
                          f"(default {LEASE_TTL_S:g}).")
    return seconds


def load_settings(home: Path, environ: Mapping[str, str], *, tool_names: str | None = None,
                  smtp_listen: str | None = None) -> Settings:
    """Settings from (in order) the arguments, the environment and config.toml."""
    env = read_environment(environ)
    config = load_config(home)
    vault, server, inbox = (config_table(config, name) for name in ("vault", "server", "inbox"))
    default_entry = env.default_entry or config_value(vault, "default_entry", str, "vault", '"github"') or None
    names = (tool_names or env.tool_names
             or config_value(server, "tool_names", str, "server", '"underscore" or "dotted"') or "underscore")
    if names not in ("underscore", "dotted"):
        raise ConfigError(f"Tool names must be 'underscore' or 'dotted' (--tool-names, {ENV_TOOL_NAMES}, or "
                          "tool_names in config.toml's [server] table).")
    if env.retention:
        retention = _retention(env.retention, ENV_RETENTION)
    else:
        kept = config_value(inbox, "retention", str, "inbox", '"30d" or "off"')
        retention = _retention(kept or DEFAULT_RETENTION, "retention in config.toml's [inbox] table")
    listen = smtp_listen or env.smtp_listen
    if listen:
        parse_listen(listen)  # a bad address stops every command at once, not the server's mail service later
    tables = config_table(config, "accounts")
    accounts = tuple(account_table(name, config_table(tables, name, "accounts")) for name in tables)
    return Settings(
        home=home, default_entry=default_entry, tool_names=names,  # type: ignore[arg-type]
        smtp_listen=listen, retention=retention,
        lease_ttl=env.lease_ttl if env.lease_ttl is not None else LEASE_TTL_S, master_key=env.master_key,
        passphrase=env.passphrase, token=env.token, imap_url=env.imap_url, imap_password=env.imap_password,
        imap_ca=env.imap_ca, accounts=accounts)


def _retention(value: str, source: str) -> float | None:
    """An age such as 30d or 12h, in seconds; None for off (also "never" and "0")."""
    if value.strip().lower() in ("off", "never", "0"):
        return None
    try:
        seconds = parse_age(value)
    except InvalidInput:
        seconds = 0.0
    if seconds <= 0:
        raise ConfigError(f"{source} must be a positive age such as 30d or 12h, or off (default "
                          f"{DEFAULT_RETENTION}).")
    return seconds


def account_table(name: str, table: Mapping[str, Any]) -> AccountTable:
    """An [accounts.NAME] table with each key of its type, and host and username present."""
    where = f"accounts.{name}"
    host = config_value(table, "host", str, where, '"imap.example.com"')
    username = config_value(table, "username", str, where, '"agent@example.com"')
    if not host or not username:
        raise ConfigError(f"[{where}] in config.toml needs host and username (strings); run `mailgent-mcp inbox "
                          f"add {name} ...` to write it.")
    mailboxes = config_value(table, "mailboxes", list, where, '["INBOX"]')
    if mailboxes is not None and (not mailboxes or not all(isinstance(m, str) and m for m in mailboxes)):
        raise ConfigError(f"mailboxes in config.toml's [{where}] table must be an array of mailbox names, "
                          'e.g. ["INBOX"].')
    return AccountTable(
        name=name, host=host, username=username,
        security=config_value(table, "security", str, where, '"tls", "starttls" or "plain"') or "tls",
        port=config_value(table, "port", int, where), mailboxes=tuple(mailboxes) if mailboxes else None,
        ca_file=config_value(table, "ca_file", str, where, "a PEM file's path") or None,
        insecure_skip_verify=config_value(table, "insecure_skip_verify", bool, where) or False,
        first_sync_count=config_value(table, "first_sync_count", int, where),
        first_sync_days=config_value(table, "first_sync_days", int, where),
        trusted_authserv_ids=table.get("trusted_authserv_ids"))


def check_keys(config: Mapping[str, Any]) -> None:
    """Refuse a table or key config.toml has that no setting reads, naming the nearest known one."""
    for table, value in config.items():
        if table == "accounts" and isinstance(value, dict):
            for name, account in value.items():
                if isinstance(account, dict):
                    _check_known(account, ACCOUNT_KEYS, f"[accounts.{name}]")
        elif table in CONFIG_KEYS:
            if isinstance(value, dict):
                _check_known(value, CONFIG_KEYS[table], f"[{table}]")
        else:
            _refuse_unknown(table, (*CONFIG_KEYS, "accounts"), "a table")


def _check_known(table: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    for key in table:
        if key not in known:
            _refuse_unknown(key, known, f"a key of {where}")


def _refuse_unknown(name: str, known: Sequence[str], what: str) -> None:
    near = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else f" (known: {', '.join(known)})"
    raise ConfigError(f"{name[:64]!r} in config.toml is not {what} mailgent-mcp knows{hint}; fix or remove it.")


# What each TOML type is called in an error message (the type, never the value).
TOML_TYPES: dict[type, str] = {str: "a string", bool: "true or false", int: "an integer", float: "a number",
                               list: "an array", dict: "a table"}


def toml_type(value: object) -> str:
    """The TOML type of a parsed value, as words."""
    for kind, words in TOML_TYPES.items():
        if isinstance(value, kind):
            return words
    return "a date or time"


def config_table(config: Mapping[str, Any], name: str, where: str = "") -> dict[str, Any]:
    """config.toml's table `name` ({} when absent); a ConfigError naming it when it is not a table."""
    value = config.get(name, {})
    if not isinstance(value, dict):
        shown = f"{where}.{name}" if where else name
        raise ConfigError(f"{shown} in config.toml must be a table ([{shown}]), not {toml_type(value)}; "
                          "fix or remove it.")
    return value


T = TypeVar("T")


def config_value(table: Mapping[str, Any], key: str, kind: type[T], where: str, example: str = "") -> T | None:
    """table[key] when it is of `kind` (None when absent); a ConfigError naming key, table and type otherwise."""
    value = table.get(key)
    if value is None:
        return None
    # bool is a subclass of int in Python, but `port = true` is not a port.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        such = f" such as {example}" if example else ""
        raise ConfigError(f"{key} in config.toml's [{where}] table must be {TOML_TYPES[kind]}{such}, not "
                          f"{toml_type(value)}; fix or remove it.")
    return value


def mail_configured(settings: Settings) -> bool:
    """True when a server with these settings has mail to receive: IMAP accounts, MAILGENT_IMAP_URL or an SMTP inbox."""
    return bool(settings.smtp_listen or settings.imap_url or settings.accounts)


def is_loopback(host: str) -> bool:
    """A loopback IP literal (127.0.0.0/8, ::1) or 'localhost'; any other name could resolve anywhere."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Listen:
    """Where the SMTP inbox listens."""

    host: str
    port: int


def parse_listen(text: str) -> Listen:
    """'127.0.0.1:2525' (or '[::1]:2525', 'localhost:2525', or a bare port) as a loopback Listen."""
    value = text.strip()
    host, _, port_text = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{ENV_SMTP_LISTEN} (or --smtp-listen) must be HOST:PORT, e.g. {DEFAULT_LISTEN}.") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"The SMTP inbox port in {ENV_SMTP_LISTEN} (or --smtp-listen) must be from 0 to 65535.")
    if not is_loopback(host):
        raise ConfigError(
            f"The SMTP inbox accepts mail for any address and listens on loopback only; {host[:64]!r} is not a "
            f"loopback address: set {ENV_SMTP_LISTEN} (or --smtp-listen) to 127.0.0.1, [::1] or localhost with a port."
        )
    return Listen(host, port)
