"""mailgent-mcp: auth autonomy for AI agents (vault, TOTP, verification inbox) over MCP."""

__version__ = "0.1.0"
