"""mailgent-mcp: auth autonomy for AI agents (vault, TOTP, verification inbox) over MCP."""

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "mailgent-mcp"

try:
    # The version is pyproject.toml's, as the installed package's metadata records it.
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:
    # A source checkout run without installing (PYTHONPATH=.): no metadata to read. A marked
    # version, never one a release could carry, so a report that shows it says so.
    __version__ = "0+unknown"
