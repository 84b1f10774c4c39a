"""A small local web service with the sign-up and login an agent meets on the web.

    POST /signup      {email, password}        -> mails a 6-digit code to email over SMTP
    POST /verify      {email, code}            -> the address is verified
    POST /2fa/enrol   {email, password}        -> {otpauth_uri, qr_svg}: the seed, and its QR code
    POST /2fa/enrol   {email, password, show: "qr"} -> {page_png}: only a screenshot of the
                                                  enrolment page with its QR code (base64 PNG)
    POST /2fa/confirm {email, code}            -> 2FA on, once a TOTP code checks out, and
                                                  {recovery_codes}: 8 single-use codes
    POST /login       {email, password, totp}  -> {logged_in: true}, or 401
    POST /login       {email, password, recovery_code} -> the same with a recovery code, once each

JSON in, JSON out, over HTTP on 127.0.0.1 (stdlib http.server, one thread per request).
It keeps its own copy of each seed and checks codes the way a real login page does
(RFC 6238: the current step or the one before, and no code accepted twice); a recovery
code works once. For the demo and the tests; not a
template for a real service (no rate limits, state in memory).
"""

from __future__ import annotations

import base64
import io
import json
import secrets
import smtplib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import segno

from mailgent_mcp.vault import otp

SERVICE_NAME = "SampleService"
SENDER = "no-reply@sample-service.localhost"


@dataclass
class Account:
    """One sign-up."""

    password: str
    code: str
    verified: bool = False
    seed: bytes | None = None
    totp_on: bool = False
    last_step: int = -1  # the time step of the last code accepted: each code is taken once
    recovery: set[str] = field(default_factory=set)  # unused recovery codes


class SampleService:
    """The service's state and rules; `serve()` puts it on HTTP."""

    def __init__(self, smtp_host: str, smtp_port: int, *, clock: Callable[[], float] = time.time,
                 totp_period: int = 30) -> None:
        self.smtp = (smtp_host, smtp_port)
        self.clock = clock
        self.totp_period = totp_period  # the seconds each code lasts, as the service's otpauth URI says
        self.accounts: dict[str, Account] = {}
        self._lock = threading.Lock()
        self._http: ThreadingHTTPServer | None = None
        self.url = ""

    # -- the rules ----------------------------------------------------------------------

    def sign_up(self, email: str, password: str) -> None:
        """Create the account and mail it a verification code."""
        if "@" not in email or len(password) < 8:
            raise ValueError("an email address and a password of 8 or more characters are required")
        code = f"{secrets.randbelow(10**6):06d}"
        with self._lock:
            self.accounts[email] = Account(password=password, code=code)
        self._mail(email, code)

    def verify(self, email: str, code: str) -> bool:
        """Check the mailed code."""
        with self._lock:
            account = self.accounts.get(email)
            if account is None or not secrets.compare_digest(code, account.code):
                return False
            account.verified = True
            return True

    def enrol(self, email: str, password: str) -> str:
        """A new TOTP seed for a verified account, as the otpauth:// URI its QR code holds."""
        with self._lock:
            account = self._checked(email, password)
            if not account.verified:
                raise PermissionError("verify the email address first")
            account.seed = secrets.token_bytes(20)
            b32 = base64.b32encode(account.seed).decode().rstrip("=")
        period = "" if self.totp_period == 30 else f"&period={self.totp_period}"  # 30: the URI's default
        return f"otpauth://totp/{SERVICE_NAME}:{quote(email)}?secret={b32}&issuer={SERVICE_NAME}{period}"

    def confirm(self, email: str, code: str) -> list[str] | None:
        """Turn 2FA on once the agent shows a valid code; the recovery codes, or None."""
        with self._lock:
            account = self.accounts.get(email)
            if account is None or account.seed is None or not self._totp_ok(account, code):
                return None
            account.totp_on = True
            account.recovery = {f"{secrets.token_hex(2)}-{secrets.token_hex(2)}" for _ in range(8)}
            return sorted(account.recovery)

    def login(self, email: str, password: str, code: str, recovery_code: str = "") -> bool:
        """Password, then TOTP (or a recovery code, once) when 2FA is on."""
        with self._lock:
            try:
                account = self._checked(email, password)
            except PermissionError:
                return False
            if not account.verified:
                return False
            if not account.totp_on:
                return True
            if recovery_code:
                if recovery_code in account.recovery:
                    account.recovery.discard(recovery_code)
                    return True
                return False
            return self._totp_ok(account, code)

    def _checked(self, email: str, password: str) -> Account:
        account = self.accounts.get(email)
        if account is None or not secrets.compare_digest(password, account.password):
            raise PermissionError("wrong email or password")
        return account

    def _totp_ok(self, account: Account, code: str) -> bool:
        """RFC 6238 §5.2: the current step or the one before (drift, slow typing), and never a code twice."""
        if account.seed is None:
            return False
        secret = otp.parse_secret(base64.b32encode(account.seed).decode(), period=self.totp_period)
        now = self.clock()
        for back in (0, secret.params.period):
            step = int((now - back) // secret.params.period)
            if step > account.last_step and secrets.compare_digest(code, otp.totp_at(secret, now - back).code):
                account.last_step = step
                return True
        return False

    def _mail(self, email: str, code: str) -> None:
        message = EmailMessage()
        message["From"] = f"{SERVICE_NAME} <{SENDER}>"
        message["To"] = email
        message["Subject"] = f"Your {SERVICE_NAME} verification code"
        message.set_content(f"Welcome to {SERVICE_NAME}!\n\nYour verification code is {code}.\n"
                            "It expires in 10 minutes. If you did not sign up, ignore this mail.\n")
        message.add_alternative(
            f"<html><body><p>Welcome to {SERVICE_NAME}!</p><p>Your verification code is <b>{code}</b>.</p>"
            "<p>It expires in 10 minutes.</p></body></html>", subtype="html")
        with smtplib.SMTP(*self.smtp, timeout=10) as client:
            client.send_message(message)

    # -- HTTP ---------------------------------------------------------------------------

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving in a thread; the base URL."""
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = json.loads(self.rfile.read(min(length, 64 * 1024)) or b"{}")
                    status, answer = service.handle(self.path, body if isinstance(body, dict) else {})
                except (ValueError, KeyError, TypeError) as exc:
                    status, answer = HTTPStatus.BAD_REQUEST, {"error": str(exc)}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._http = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=self._http.serve_forever, name="sample-service", daemon=True).start()
        self.url = f"http://{host}:{self._http.server_address[1]}"
        return self.url

    def handle(self, path: str, body: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
        """One request: (status, JSON answer)."""
        email, password, code = str(body.get("email", "")), str(body.get("password", "")), str(body.get("code", ""))
        if path == "/signup":
            self.sign_up(email, password)
            return HTTPStatus.CREATED, {"status": f"check {email} for a verification code"}
        if path == "/verify":
            ok = self.verify(email, code)
            return (HTTPStatus.OK, {"verified": True}) if ok else (HTTPStatus.BAD_REQUEST, {"error": "wrong code"})
        if path == "/2fa/enrol":
            try:
                uri = self.enrol(email, password)
            except PermissionError as exc:
                return HTTPStatus.FORBIDDEN, {"error": str(exc)}
            if body.get("show") == "qr":
                return HTTPStatus.OK, {"page_png": base64.b64encode(enrolment_page(uri, email)).decode()}
            return HTTPStatus.OK, {"otpauth_uri": uri, "qr_svg": segno.make(uri, error="m").svg_inline()}
        if path == "/2fa/confirm":
            codes = self.confirm(email, code)
            return ((HTTPStatus.OK, {"totp": "on", "recovery_codes": codes}) if codes is not None
                    else (HTTPStatus.BAD_REQUEST, {"error": "wrong code"}))
        if path == "/login":
            ok = self.login(email, password, str(body.get("totp", "")), str(body.get("recovery_code", "")))
            return (HTTPStatus.OK, {"logged_in": True}) if ok else (HTTPStatus.UNAUTHORIZED, {"logged_in": False})
        return HTTPStatus.NOT_FOUND, {"error": "no such endpoint"}

    def close(self) -> None:
        """Stop serving."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


def enrolment_page(uri: str, email: str) -> bytes:
    """A screenshot of a 2FA set-up page (1280x800 PNG): headings, text, and the QR code, no key in text."""
    from PIL import Image, ImageDraw, ImageFont

    page = Image.new("RGB", (1280, 800), "white")
    draw = ImageDraw.Draw(page)
    draw.rectangle((0, 0, 1280, 64), fill=(36, 41, 47))
    draw.text((32, 18), SERVICE_NAME, fill="white", font=ImageFont.load_default(size=26))
    draw.rectangle((960, 64, 1280, 800), fill=(246, 248, 250))
    for i, item in enumerate(("Profile", "Password", "Two-factor authentication", "Sessions")):
        draw.text((990, 100 + 40 * i), item, fill=(36, 41, 47), font=ImageFont.load_default(size=18))
    draw.text((80, 100), "Set up two-factor authentication", fill="black", font=ImageFont.load_default(size=30))
    text = ImageFont.load_default(size=18)
    draw.text((80, 150), f"Scan this code with your authenticator app to protect {email}.", fill=(60, 60, 60),
              font=text)
    qr = io.BytesIO()
    segno.make(uri, error="m").save(qr, kind="png", scale=6, border=4)
    page.paste(Image.open(io.BytesIO(qr.getvalue())).convert("RGB"), (80, 200))
    draw.text((80, 640), "Then enter the 6-digit code the app shows to finish.", fill=(60, 60, 60), font=text)
    draw.rectangle((80, 680, 380, 730), outline=(200, 200, 200), width=2)
    out = io.BytesIO()
    page.save(out, format="PNG")
    return out.getvalue()
