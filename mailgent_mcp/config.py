"""Where the data folder is and which environment variables steer the server."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path

import platformdirs

from mailgent_mcp.errors import ConfigError

log = logging.getLogger(__name__)

APP_NAME = "mailgent-mcp"

ENV_HOME = "MAILGENT_HOME"
ENV_MASTER_KEY = "MAILGENT_MASTER_KEY"
ENV_PASSPHRASE = "MAILGENT_PASSPHRASE"

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
