"""`mailgent-mcp demo`: the vault's whole job, step by step, in a throw-away data folder.

A sample service enrols 2FA (it shows an otpauth:// URI, as a real sign-up page does),
the vault stores the seed, and a login is completed with the vault's code, which the
service checks against its own copy of the seed. Exits 0 only when the login succeeds.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import TextIO
from urllib.parse import quote

from mailgent_mcp import otp
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
    """Run the walkthrough; return the exit code (0 when logged in)."""
    folder = home or Path(tempfile.mkdtemp(prefix="mailgent-demo-"))
    start = time.perf_counter()

    def step(text: str) -> None:
        out.write(f"[{time.perf_counter() - start:6.3f}s] {text}\n")
        out.flush()

    try:
        step(f"data folder: {folder} (master.key created on first use)")
        async with await Vault.open(folder, environ={}, actor="demo") as vault:
            service = SampleService()
            account = "agent@example.com"
            password = secrets.token_urlsafe(18)
            service.sign_up(password)
            await vault.put("sample-service", {"username": account, "password": password,
                                               "url": "http://127.0.0.1/login"}, "LOGIN")
            step(f"signed up as {account}; password stored sealed (AES-256-GCM) in vault.db")
            uri = service.enrol_2fa(account)
            step("service shows a 2FA enrolment URI (otpauth://totp/SampleService:...)")
            info = await vault.put("sample-service", {"secret": uri})
            assert info.totp is not None
            step(f"seed stored: {info.totp.algorithm}, {info.totp.digits} digits, {info.totp.period} s; "
                 "it never leaves the vault again")
            view = await vault.get("sample-service")
            step(f"vault get shows has_totp={view.has_totp} and fields {sorted(view.data)}: no seed")
            code = await vault.totp("sample-service", min_remaining=5)
            waited = f", waited {code.waited:.1f} s for a fresh one" if code.waited else ""
            step(f"TOTP code {code.code}, {code.remaining} s left{waited}")
            ok = service.login(view.data["password"], code.code, time.time())
            step("logged in: password and TOTP accepted" if ok else "LOGIN FAILED: the service refused the code")
            report = await vault.audit_verify()
            step(f"audit log: {report.rows} rows, chain {'intact' if report.ok else 'BROKEN'}")
            return 0 if ok and report.ok else 1
    finally:
        if keep or home is not None:
            out.write(f"data folder kept: {folder}\n")
        else:
            shutil.rmtree(folder, ignore_errors=True)
