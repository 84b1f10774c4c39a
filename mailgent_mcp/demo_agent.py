"""An agent's whole sign-up, using only mailgent-mcp's MCP tools (and the service's web API).

    python -m mailgent_mcp.demo_agent --service http://127.0.0.1:PORT

It starts `mailgent-mcp serve` over stdio itself (MAILGENT_HOME and MAILGENT_SMTP_LISTEN
come from the environment), then, as an agent would:

1. inbox_address: a fresh address to sign up with;
2. signs up on the service with it and a new password, kept with vault_put;
3. inbox_wait: the verification mail, with the code already extracted;
4. verifies the address with that code;
5. enrols 2FA: the service shows an otpauth:// URI, stored with vault_put (never returned);
6. vault_totp: a code to confirm 2FA, then a fresh one to log in (a service takes each
   code once, so it waits for the next time step when it must).

Exits 0 only when the login succeeds. `mailgent-mcp demo` runs the same flow.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
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
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the local sample service
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


async def sign_up_and_log_in(client: Client, service: str, step: Step, entry: str = "sample-service") -> bool:
    """The flow above, through the tools of a connected client; True when logged in."""
    address = (await call(client, "inbox_address", tag=f"signup-{secrets.token_hex(3)}"))["address"]
    password = secrets.token_urlsafe(18)
    await call(client, "vault_put", name=entry, type="LOGIN",
               data={"username": address, "password": password, "url": service})
    step(f"inbox_address gave {address}; vault_put stored a new password for it")

    await asyncio.to_thread(post, service, "/signup", email=address, password=password)
    step("signed up; the service mails a verification code")
    mail = await call(client, "inbox_wait", to=address, require_code=True, fields="codes")
    if mail["timed_out"]:
        raise FlowError("inbox_wait timed out: no verification mail came")
    code = mail["message"]["codes"][0]
    step(f"inbox_wait returned the mail after {mail['waited_seconds']:.3f} s: code {code['code']} "
         f"(from the {code['source']}: \"{code['evidence']}\")")
    status, _ = await asyncio.to_thread(post, service, "/verify", email=address, code=code["code"])
    if status != 200:
        raise FlowError(f"the service refused the code (HTTP {status})")
    step("address verified")

    status, enrol = await asyncio.to_thread(post, service, "/2fa/enrol", email=address, password=password)
    if status != 200:
        raise FlowError(f"2FA enrolment failed (HTTP {status})")
    step(f"2FA enrolment: the service shows an otpauth:// URI and its QR code ({len(enrol['qr_svg'])}-byte SVG)")
    stored = await call(client, "vault_put", name=entry, data={"secret": enrol["otpauth_uri"]})
    totp = stored["totp"]
    step(f"vault_put: the URI's seed is sealed in the vault ({totp['algorithm']}, "
         f"{totp['digits']} digits, {totp['period']} s) and never leaves it")
    confirm = await call(client, "vault_totp", name=entry, min_remaining=3)
    status, _ = await asyncio.to_thread(post, service, "/2fa/confirm", email=address, code=confirm["code"])
    if status != 200:
        raise FlowError(f"the service refused the 2FA confirmation code (HTTP {status})")
    step(f"2FA on: confirmed with code {confirm['code']} ({confirm['remaining']} s left)")

    creds = (await call(client, "vault_get", name=entry))["data"]
    login = await call(client, "vault_totp", name=entry, min_remaining=5)
    if login["code"] == confirm["code"]:
        # A service takes each code once (RFC 6238 §5.2): wait out this one for the next.
        started = time.monotonic()
        while login["code"] == confirm["code"]:
            await asyncio.sleep(max(login["remaining"], 0.2))
            login = await call(client, "vault_totp", name=entry, min_remaining=5)
        step(f"the service takes each code once: waited {time.monotonic() - started:.1f} s for the next one")
    status, answer = await asyncio.to_thread(post, service, "/login", email=creds["username"],
                                             password=creds["password"], totp=login["code"])
    ok = status == 200 and answer.get("logged_in") is True
    step(f"logged in with password and TOTP {login['code']} ({login['remaining']} s left)" if ok
         else f"LOGIN FAILED (HTTP {status})")
    return ok


async def main(argv: list[str] | None = None) -> int:
    """Run the flow against --service with a server started over stdio."""
    parser = argparse.ArgumentParser(prog="python -m mailgent_mcp.demo_agent", description=__doc__.split("\n")[0])
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
