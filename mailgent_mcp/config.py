"""Where the data folder is and which environment variables steer the server."""

from __future__ import annotations

import logging
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import platformdirs

from mailgent_mcp.errors import ConfigError

log = logging.getLogger(__name__)

APP_NAME = "mailgent-mcp"

ENV_HOME = "MAILGENT_HOME"
ENV_MASTER_KEY = "MAILGENT_MASTER_KEY"
ENV_PASSPHRASE = "MAILGENT_PASSPHRASE"
ENV_DEFAULT_ENTRY = "MAILGENT_DEFAULT_ENTRY"
ENV_TOOL_NAMES = "MAILGENT_TOOL_NAMES"

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
    vault_section = config.get("vault", {})
    server_section = config.get("server", {})
    default_entry = environ.get(ENV_DEFAULT_ENTRY) or vault_section.get("default_entry") or None
    names = tool_names or environ.get(ENV_TOOL_NAMES) or server_section.get("tool_names") or "underscore"
    if names not in ("underscore", "dotted"):
        raise ConfigError(
            f"Tool names must be 'underscore' or 'dotted' (from --tool-names, {ENV_TOOL_NAMES} or config.toml)."
        )
    if default_entry is not None and not isinstance(default_entry, str):
        raise ConfigError("default_entry in config.toml must be a string.")
    return Settings(home=home, default_entry=default_entry, tool_names=names)  # type: ignore[arg-type]
