"""An agent's whole sign-up, using only mailgent-mcp's MCP tools (and the service's web API).

    python -m mailgent_mcp.demo.agent --service http://127.0.0.1:PORT

It starts `mailgent-mcp serve` over stdio itself (MAILGENT_HOME and MAILGENT_SMTP_LISTEN
come from the environment), then, as an agent would, calling every tool with its
defaults (no since, no timeout, no min_remaining):

1. inbox_address: a fresh address to sign up with;
2. vault_put with generate_password: a strong password for it, kept in the vault;
3. signs up; the service mails a code at once, before the agent asks for it;
4. inbox_wait: the verification mail, already there, with the code extracted;
5. enrols 2FA: the service shows only a screenshot of a QR code; vault_put reads the
   seed from it (qr_image) and seals it;
6. vault_totp: a code to confirm 2FA; the service answers with recovery codes, stored
   with vault_put (data.backupCodes);
7. vault_totp again to log in: the confirmation's code was used, so the tool waits for
   the next one by itself (the service refuses a code twice, as the replay shows);
8. vault_backup_code: a login with a recovery code, as when the authenticator is lost.

Exits 0 only when both logins succeed. `mailgent-mcp demo` runs the same flow.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from mcp import Client, StdioServerParameters
from mcp_types import Implementation

from mailgent_mcp import __version__

Step = Callable[[str], None]


class FlowError(Exception):
    """A step failed; the message says which and why."""


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool; a tool error stops the flow with its message."""
    result = await client.call_tool(tool, arguments)
    if result.is_error or result.structured_content is None:
        text = getattr(result.content[0], "text", "no content") if result.content else "no content"
        raise FlowError(f"{tool} failed: {text}")
    content: dict[str, Any] = result.structured_content
    return content


def post(service: str, path: str, **body: str) -> tuple[int, dict[str, Any]]:
    """POST JSON to the service; (status, answer)."""
    request = urllib.request.Request(f"{service}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


async def sign_up_and_log_in(client: Client, service: str, step: Step, entry: str = "sample-service") -> bool:
    """The flow above, through the tools of a connected client; True when both logins went through."""
    address = (await call(client, "inbox_address"))["address"]
    made = await call(client, "vault_put", name=entry, data={"username": address, "url": service},
                      generate_password={})
    password = made["generated_password"]
    step(f"inbox_address gave {address}; vault_put made a {len(password)}-character password and stored it")

    await asyncio.to_thread(post, service, "/signup", email=address, password=password)
    step("signed up; the service mailed a verification code at once")
    mail = await call(client, "inbox_wait", to=address)
    if mail["timed_out"] or not mail["message"]["codes"]:
        raise FlowError(f"inbox_wait found no verification mail with a code: {mail.get('reason') or 'timed out'}")
    code = mail["message"]["codes"][0]
    step(f"inbox_wait returned the mail that was already there after {mail['waited_seconds']:.3f} s: code "
         f"{code['code']} (from the {code['source']}: \"{code['evidence']}\")")
    status, _ = await asyncio.to_thread(post, service, "/verify", email=address, code=code["code"])
    if status != 200:
        raise FlowError(f"the service refused the code (HTTP {status})")
    step("address verified")

    status, enrol = await asyncio.to_thread(post, service, "/2fa/enrol", email=address, password=password, show="qr")
    if status != 200:
        raise FlowError(f"2FA enrolment failed (HTTP {status})")
    step(f"2FA enrolment: the service shows only a screenshot with a QR code ({len(enrol['page_png']) * 3 // 4:,} "
         "bytes of PNG)")
    stored = await call(client, "vault_put", name=entry, qr_image=enrol["page_png"])
    totp = stored["totp"]
    step(f"vault_put read the seed from the QR code and sealed it ({totp['algorithm']}, {totp['digits']} digits, "
         f"{totp['period']} s); the image was not kept, the seed never leaves the vault")
    confirm = await call(client, "vault_totp", name=entry)
    status, confirmed = await asyncio.to_thread(post, service, "/2fa/confirm", email=address, code=confirm["code"])
    if status != 200:
        raise FlowError(f"the service refused the 2FA confirmation code (HTTP {status})")
    step(f"2FA on: confirmed with code {confirm['code']} ({confirm['remaining']} s left)")
    saved = await call(client, "vault_put", name=entry, data={"backupCodes": confirmed["recovery_codes"]})
    step(f"the service gave {len(confirmed['recovery_codes'])} recovery codes; vault_put sealed them "
         f"(vault_get shows only the count: {saved['backup_codes_remaining']})")

    creds = (await call(client, "vault_get", name=entry))["data"]
    login = await call(client, "vault_totp", name=entry)
    if login["waited"]:
        step(f"vault_totp: the confirmation's code was used, so it waited {login['waited']:.1f} s for the next one")
    status, answer = await asyncio.to_thread(post, service, "/login", email=creds["username"],
                                             password=creds["password"], totp=login["code"])
    logged_in = status == 200 and answer.get("logged_in") is True
    step(f"logged in with password and TOTP {login['code']} ({login['remaining']} s left)" if logged_in
         else f"LOGIN FAILED (HTTP {status})")
    replay, _ = await asyncio.to_thread(post, service, "/login", email=creds["username"],
                                        password=creds["password"], totp=login["code"])
    step(f"the same code again is refused (HTTP {replay}): no tool hands a code out twice")

    recovery = await call(client, "vault_backup_code", name=entry)
    status, answer = await asyncio.to_thread(post, service, "/login", email=creds["username"],
                                             password=creds["password"], recovery_code=recovery["code"])
    by_recovery = status == 200 and answer.get("logged_in") is True
    step(f"logged in with recovery code {recovery['code']} ({recovery['remaining']} left)" if by_recovery
         else f"RECOVERY LOGIN FAILED (HTTP {status})")
    return logged_in and replay == 401 and by_recovery


async def main(argv: list[str] | None = None) -> int:
    """Run the flow against --service with a server started over stdio."""
    parser = argparse.ArgumentParser(prog="python -m mailgent_mcp.demo.agent", description=__doc__.split("\n")[0])
    parser.add_argument("--service", required=True, help="the sample service's base URL")
    args = parser.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k.startswith("MAILGENT_") or k in ("PATH", "HOME")}
    server = StdioServerParameters(command=sys.executable, args=["-m", "mailgent_mcp", "serve"], env=env)
    start = time.perf_counter()

    def step(text: str) -> None:
        print(f"[{time.perf_counter() - start:6.3f}s] {text}", flush=True)

    try:
        async with Client(server, client_info=Implementation(name="mailgent-demo-agent", version=__version__),
                          read_timeout_seconds=90) as client:
            return 0 if await sign_up_and_log_in(client, args.service.rstrip("/"), step) else 1
    except FlowError as exc:
        print(f"demo agent: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
