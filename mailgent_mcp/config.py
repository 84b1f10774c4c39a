"""Where the data folder is and which environment variables steer the server."""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import platformdirs

from mailgent_mcp.errors import ConfigError

log = logging.getLogger(__name__)

APP_NAME = "mailgent-mcp"

ENV_HOME = "MAILGENT_HOME"
ENV_MASTER_KEY = "MAILGENT_MASTER_KEY"
ENV_PASSPHRASE = "MAILGENT_PASSPHRASE"
ENV_DEFAULT_ENTRY = "MAILGENT_DEFAULT_ENTRY"
ENV_TOOL_NAMES = "MAILGENT_TOOL_NAMES"

# Bounds of an IMAP account's first sync (--first-sync, --first-sync-days and their config.toml keys).
FIRST_SYNC_MAX = 1_000_000  # messages
FIRST_SYNC_DAYS_MAX = 36_500

VAULT_DB = "vault.db"
MASTER_KEY_FILE = "master.key"
CONFIG_FILE = "config.toml"


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    """The data folder: $MAILGENT_HOME, else the platform's user data dir."""
    env = os.environ if environ is None else environ
    value = env.get(ENV_HOME, "").strip()
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
            # DESIGN "Data folder": 0700. Cached mail and key files must not be readable by others.
            os.chmod(home, 0o700)
            log.warning("tightened data folder %s from %o to 0700", home, mode)
    except OSError as exc:
        raise ConfigError(
            f"Cannot use the data folder {str(home)!r} ({exc.strerror}); set {ENV_HOME} to a writable folder."
        ) from None
    return home.resolve()


ToolNames = Literal["underscore", "dotted"]


@dataclass(frozen=True)
class Settings:
    """What the server needs to know beyond the vault: from the environment, else config.toml."""

    home: Path
    default_entry: str | None = None
    tool_names: ToolNames = "underscore"


def load_config(home: Path) -> dict[str, Any]:
    """config.toml in the data folder as a dict ({} when there is none)."""
    path = home / CONFIG_FILE
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        # The decoder's message names a line and column, never a value.
        raise ConfigError(f"{str(path)!r} is not valid TOML ({exc}); fix or remove it.") from None
    except OSError as exc:
        raise ConfigError(f"Cannot read {str(path)!r} ({exc.strerror}).") from None


def load_settings(home: Path, environ: Mapping[str, str], *, tool_names: str | None = None) -> Settings:
    """Settings from (in order) the arguments, the environment and config.toml."""
    config = load_config(home)
    vault, server = config_table(config, "vault"), config_table(config, "server")
    default_entry = environ.get(ENV_DEFAULT_ENTRY) or config_value(vault, "default_entry", str, "vault",
                                                                   '"github"') or None
    names = (tool_names or environ.get(ENV_TOOL_NAMES)
             or config_value(server, "tool_names", str, "server", '"underscore" or "dotted"') or "underscore")
    if names not in ("underscore", "dotted"):
        raise ConfigError(f"Tool names must be 'underscore' or 'dotted' (--tool-names, {ENV_TOOL_NAMES}, or "
                          "tool_names in config.toml's [server] table).")
    return Settings(home=home, default_entry=default_entry, tool_names=names)  # type: ignore[arg-type]


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


def mail_configured(home: Path, environ: Mapping[str, str], smtp_listen: str | None) -> bool:
    """True when a server with these settings has mail to receive: IMAP accounts, MAILGENT_IMAP_URL or an SMTP inbox."""
    return bool(smtp_listen or environ.get("MAILGENT_SMTP_LISTEN") or environ.get("MAILGENT_IMAP_URL")
                or load_config(home).get("accounts"))


def is_loopback(host: str) -> bool:
    """A loopback IP literal (127.0.0.0/8, ::1) or 'localhost'; any other name could resolve anywhere."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
