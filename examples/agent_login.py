"""An agent's sign-up, email verification, 2FA enrolment and login, through mailgent-mcp's MCP tools.

    python examples/agent_login.py            # a throw-away data folder
    MAILGENT_HOME=~/.mailgent python examples/agent_login.py

It starts the local sample service (mailgent_mcp/sample_service.py: a web sign-up that
mails a code, 2FA enrolment shown only as a QR code in a screenshot, recovery codes, a
login checking the TOTP code once) and `mailgent-mcp serve` over stdio with its SMTP
inbox, where the service's mail arrives. The agent's side is mailgent_mcp/demo_agent.py,
one tool call a step, each with its defaults: inbox_address, vault_put (a generated
password), inbox_wait (the code comes back extracted), vault_put with the screenshot as
qr_image, vault_totp, vault_put with the recovery codes, vault_totp, vault_backup_code.
Exits 0 when the service accepted both logins.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time

from mcp import Client, StdioServerParameters

from mailgent_mcp.demo.agent import sign_up_and_log_in
from mailgent_mcp.demo.run import free_port
from mailgent_mcp.demo.service import SampleService


async def main() -> int:
    home = os.environ.get("MAILGENT_HOME") or tempfile.mkdtemp(prefix="mailgent-agent-")
    smtp_port = free_port()  # for the server's SMTP inbox
    service = SampleService("127.0.0.1", smtp_port)  # the service mails its codes there
    url = service.serve()
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "mailgent_mcp", "serve"],
        env={"MAILGENT_HOME": home, "MAILGENT_SMTP_LISTEN": f"127.0.0.1:{smtp_port}", "PATH": os.environ["PATH"]},
    )
    start = time.perf_counter()
    try:
        async with Client(server) as client:
            ok = await sign_up_and_log_in(
                client, url, lambda text: print(f"[{time.perf_counter() - start:5.2f}s] {text}", flush=True))
    finally:
        service.close()
    print("logged in" if ok else "login refused")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
