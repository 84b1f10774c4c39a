"""`mailgent-mcp demo`: the whole job, step by step, in a throw-away data folder.

An agent talks to the server only through MCP over stdio: it signs up with a sample
service, stores the password, enrols 2FA from the otpauth:// URI the service shows,
and logs in with a code from vault_totp, which the service checks against its own copy
of the seed. Exits 0 only when the login succeeds.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from mcp import Client, StdioServerParameters
from mcp_types import Implementation

from mailgent_mcp import __version__, otp
from mailgent_mcp.errors import MailgentError
from mailgent_mcp.vault import Vault


class SampleService:
    """The service side of a login with TOTP: it keeps its own copy of the seed."""

    def __init__(self) -> None:
        self._seed = secrets.token_bytes(20)
        self._password = ""

    def sign_up(self, password: str) -> None:
        """Register the account's password."""
        self._password = password

    def enrol_2fa(self, account: str) -> str:
        """The otpauth:// URI a sign-up page shows as a QR code."""
        b32 = base64.b32encode(self._seed).decode().rstrip("=")
        return f"otpauth://totp/SampleService:{quote(account)}?secret={b32}&issuer=SampleService"

    def login(self, password: str, code: str, at: float) -> bool:
        """Accept the password and a code for this time step or the one before (RFC 6238 §5.2)."""
        expected = otp.parse_secret(base64.b32encode(self._seed).decode())
        valid = {otp.totp_at(expected, at - drift).code for drift in (0, expected.params.period)}
        return secrets.compare_digest(password, self._password) and code in valid


async def run_demo(out: TextIO, home: Path | None = None, keep: bool = False) -> int:
    """Run the walkthrough as an agent would, through MCP over stdio; 0 when logged in."""
    folder = home or Path(tempfile.mkdtemp(prefix="mailgent-demo-"))
    start = time.perf_counter()

    def step(text: str) -> None:
        out.write(f"[{time.perf_counter() - start:6.3f}s] {text}\n")
        out.flush()

    try:
        step(f"data folder: {folder} (master.key is created on first use)")
        server = StdioServerParameters(
            command=sys.executable, args=["-m", "mailgent_mcp", "serve"],
            env={"MAILGENT_HOME": str(folder), "PATH": os.environ.get("PATH", "")},
        )
        async with Client(server, client_info=Implementation(name="mailgent-demo", version=__version__)) as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            step(f"MCP server up over stdio: {', '.join(tools)}")
            ok = await _agent_flow(client, step)
        async with await Vault.open(folder, environ={}, actor="demo") as vault:
            report = await vault.audit_verify()
            actors = sorted({r.actor for r in await vault.audit_tail(50) if r.op != "init"})
        step(f"audit log: {report.rows} rows by {', '.join(actors)}; chain {'intact' if report.ok else 'BROKEN'}")
        return 0 if ok and report.ok else 1
    finally:
        if keep or home is not None:
            out.write(f"data folder kept: {folder}\n")
        else:
            shutil.rmtree(folder, ignore_errors=True)


async def _agent_flow(client: Client, step: Callable[[str], None]) -> bool:
    """Sign up, enrol 2FA and log in, using only the vault tools."""
    service = SampleService()
    account = "agent@example.com"
    password = secrets.token_urlsafe(18)
    service.sign_up(password)
    await _call(client, "vault_put", name="sample-service", type="LOGIN",
                data={"username": account, "password": password, "url": "http://127.0.0.1/login"})
    step(f"signed up as {account}; vault_put stored the password, sealed with AES-256-GCM")
    uri = service.enrol_2fa(account)
    step("service shows a 2FA enrolment URI (otpauth://totp/SampleService:...)")
    info = await _call(client, "vault_put", name="sample-service", data={"secret": uri})
    totp = info["totp"]
    step(f"vault_put stored the seed: {totp['algorithm']}, {totp['digits']} digits, {totp['period']} s; "
         "it never leaves the vault again")
    view = await _call(client, "vault_get", name="sample-service")
    step(f"vault_get shows has_totp={view['has_totp']} and fields {sorted(view['data'])}: no seed")
    code = await _call(client, "vault_totp", name="sample-service", min_remaining=5)
    waited = f", waited {code['waited']:.1f} s for a fresh one" if code["waited"] else ""
    step(f"vault_totp: code {code['code']}, {code['remaining']} s left{waited}")
    ok = service.login(view["data"]["password"], code["code"], time.time())
    step("logged in: password and TOTP accepted" if ok else "LOGIN FAILED: the service refused the code")
    return ok


async def _call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    if result.is_error or result.structured_content is None:
        text = getattr(result.content[0], "text", "no content") if result.content else "no content"
        raise MailgentError(f"{tool} failed: {text}")
    content: dict[str, Any] = result.structured_content
    return content
