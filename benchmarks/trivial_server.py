"""The baseline for bench_mcp.py: a one-tool MCPServer over stdio and nothing else.

    .venv/bin/python benchmarks/trivial_server.py     # speaks MCP on stdin/stdout

Its one tool, `code`, takes a name like vault_totp does and returns a small pydantic
model, so the SDK does the same work per call as for vault_totp (argument validation,
an outputSchema, structuredContent and its text copy) and nothing more: no vault, no
disk, no thread hand-off (the tool is async, as vault_totp is). Only the SDK and
pydantic are imported, so its cold start is the SDK's own.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, Field

server = MCPServer("trivial", log_level="WARNING")


class Code(BaseModel):
    """A fixed code, shaped like a small slice of vault_totp's result."""

    name: str
    code: str
    remaining: int


@server.tool(name="code", title="A fixed code")
async def code(name: Annotated[str, Field(description="Any name; it is echoed back")] = "trivial") -> Code:
    """Return a fixed code for name."""
    return Code(name=name, code="287082", remaining=30)


if __name__ == "__main__":
    server.run()
