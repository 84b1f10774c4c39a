"""An agent's login with 2FA, driven only through mailgent-mcp's MCP tools over stdio.

    python examples/agent_login.py            # uses a throw-away data folder
    MAILGENT_HOME=~/.mailgent python examples/agent_login.py

The "service" is mailgent_mcp.demo.SampleService, a local stand-in that keeps its own copy
of the seed and checks password + TOTP the way a real login page does. Exits 0 when the
login succeeds.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
import time
from typing import Any

from mcp import Client, StdioServerParameters

from mailgent_mcp.demo import SampleService


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool; stop with its message if it answers an error."""
    result = await client.call_tool(tool, arguments)
    if result.is_error or result.structured_content is None:
        raise SystemExit(f"{tool} failed: {result.content[0].text if result.content else 'no content'}")
    return result.structured_content


async def main() -> int:
    home = os.environ.get("MAILGENT_HOME") or tempfile.mkdtemp(prefix="mailgent-agent-")
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "mailgent_mcp", "serve"],
        env={"MAILGENT_HOME": home, "PATH": os.environ.get("PATH", "")},
    )
    service = SampleService()
    async with Client(server) as client:
        # 1. Sign up with a fresh password, and keep it in the vault.
        password = secrets.token_urlsafe(18)
        service.sign_up(password)
        await call(client, "vault_put", name="sample-service", type="LOGIN",
                   data={"username": "agent@example.com", "password": password})
        print("signed up; password stored")

        # 2. Enable 2FA: the service shows an otpauth:// URI; the seed goes into the vault once.
        entry = await call(client, "vault_put", name="sample-service", data={"secret": service.enrol_2fa("agent")})
        print(f"2FA enrolled: {entry['totp']['algorithm']}, {entry['totp']['digits']} digits")

        # 3. Log in: password from vault_get, a code with at least 5 s left from vault_totp.
        login = await call(client, "vault_get", name="sample-service")
        code = await call(client, "vault_totp", name="sample-service", min_remaining=5)
        print(f"code {code['code']} ({code['remaining']} s left)")
        if service.login(login["data"]["password"], code["code"], time.time()):
            print("logged in")
            return 0
    print("login refused", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
