"""Starts mailgent-mcp from its Claude Desktop extension bundle (the entry point in manifest.json).

Claude Desktop hands each setting of the bundle's user_config to the server as the environment
variable manifest.json maps it to. A setting the user left empty arrives as "" (or, for one
with no default, as its unexpanded "${user_config.NAME}" placeholder): both mean "not set",
so they are removed before the server reads its environment. Left in, an empty
MAILGENT_PASSPHRASE would be refused, and a placeholder would be taken for a passphrase.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

from mailgent_mcp.cli.main import main as cli

PREFIX = "MAILGENT_"
PLACEHOLDER = "${user_config."


def drop_unset(environ: MutableMapping[str, str]) -> list[str]:
    """Remove the MAILGENT_* variables the user did not set in Claude Desktop; their names."""
    unset = [name for name, value in environ.items()
             if name.startswith(PREFIX) and (not value.strip() or value.startswith(PLACEHOLDER))]
    for name in unset:
        del environ[name]
    return unset


def main() -> int:
    drop_unset(os.environ)
    return cli(sys.argv[1:] or ["serve"])  # a host that starts the entry point with no arguments gets the server


if __name__ == "__main__":
    raise SystemExit(main())
