"""inbox_wait over MCP stdio against its baselines: mail delivered to the tool's answer.

    .venv/bin/python benchmarks/bench_wait.py            # 30 trials per side
    .venv/bin/python benchmarks/bench_wait.py --quick    # 8 trials per side

One run, on a throw-away Dovecot 2.3 (tests/dovecot.py) and a real data folder:

1. IMAP: `mailgent-mcp serve` runs as a subprocess over stdio, started by the SDK's
   `Client(StdioServerParameters(...))`, with one IMAP account (plain port, 127.0.0.1).
   Each trial calls inbox_wait(subject=<unique>) and, once the call is out, delivers the
   message by LMTP; timed from the start of the delivery to the tool's answer in the
   client, in steady IDLE (past the short first IDLE after each sync, whose NOOP would
   see the mail sooner than IDLE does). The baseline, in trials interleaved with ours: a raw imapclient connection in
   IDLE on a second user, from the start of a delivery to it until `idle_check` returns
   the EXISTS. Dovecot waits 500 ms before it notifies (NOTIFY_DELAY_MSECS): both pay it.
   Target: ours within 1.1x of the baseline at the median.
2. SMTP inbox: the same server's embedded SMTP inbox; each trial calls inbox_wait and
   sends the message with smtplib to 127.0.0.1; timed from the start of the send to the
   answer. Target: p50 under 50 ms.

Medians and p99 (nearest rank) over the trials, after two untimed warm-up trials per
side. It prints a table and one verdict line per target, and asserts nothing; a trial
whose mail does not arrive stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from importlib.metadata import version
from pathlib import Path
from typing import Any

from imapclient import IMAPClient
from mcp import Client, StdioServerParameters

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests.dovecot

from mailgent_mcp.inbox.accounts import password_entry, save_account
from mailgent_mcp.inbox.imap import ImapAccount, Timing
from mailgent_mcp.vault.entries import Vault
from tests.dovecot import Dovecot, free_ports

AGENT_USER = "agent@example.test"  # the server's IMAP account
RAW_USER = "raw@example.test"  # the raw IDLE baseline
HOST = "127.0.0.1"
IMAP_TARGET = 1.1  # ours/raw at the median, at most
SMTP_TARGET_S = 0.050  # p50, under


def message(subject: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = "Benchmark <no-reply@bench.example>"
    mail["To"] = AGENT_USER
    mail["Subject"] = subject
    mail.set_content("Your verification code is 482913.\n\n" + "Lorem ipsum dolor sit amet, consectetur.\n" * 40)
    return mail.as_bytes(policy=SMTP_POLICY)  # CRLF line ends, as on the wire


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def raw_idle_once(server: Dovecot, client: IMAPClient, subject: str) -> float:
    """Dovecot's own notify latency: IDLE, deliver, until idle_check returns the EXISTS."""
    client.idle()
    try:
        start = time.perf_counter()
        server.deliver(message(subject), to=RAW_USER)
        while time.perf_counter() - start < 10:
            if any(len(r) > 1 and r[1] == b"EXISTS" for r in client.idle_check(timeout=1.0)):
                return time.perf_counter() - start
        raise SystemExit("bench_wait: the raw IDLE connection saw no EXISTS within 10 s")
    finally:
        client.idle_done()


async def ours_once(client: Client, subject: str, send: Callable[[], Any]) -> float:
    """inbox_wait(subject) is called; once it is out, `send` delivers; seconds from send to answer."""
    call = asyncio.create_task(client.call_tool("inbox_wait", {"subject": subject, "timeout": 20}))
    await asyncio.sleep(0.3)  # the request is out and the server is waiting
    start = time.perf_counter()
    await asyncio.to_thread(send)
    result = await call
    elapsed = time.perf_counter() - start
    content = result.structured_content or {}
    if result.is_error or content.get("timed_out") or content["message"]["subject"] != subject:
        raise SystemExit(f"bench_wait: inbox_wait did not return {subject!r}: {result.content}")
    return elapsed


def smtp_send(port: int, subject: str) -> None:
    with smtplib.SMTP(HOST, port, timeout=10) as smtp:
        smtp.sendmail("no-reply@bench.example", [AGENT_USER], message(subject))


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_wait: {what} not within {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def run(trials: int) -> None:
    with tempfile.TemporaryDirectory(prefix="mailgent-bench-wait-") as tmp:
        home = Path(tmp) / "home"
        server = Dovecot(user=AGENT_USER)
        server.add_user(RAW_USER, server.password)
        with server:
            async with await Vault.open(home, environ={}) as vault:
                await vault.put(password_entry("bench"), {"username": AGENT_USER, "password": server.password},
                                "LOGIN")
            save_account(home, ImapAccount(name="bench", host=server.host, port=server.imap_port,
                                           username=AGENT_USER, security="plain"))
            [smtp_port] = free_ports(1)
            env = {"MAILGENT_HOME": str(home), "PATH": "/usr/bin:/bin", "MAILGENT_SMTP_LISTEN": f"{HOST}:{smtp_port}"}
            params = StdioServerParameters(command=sys.executable, args=["-m", "mailgent_mcp", "serve"], env=env)
            raw_client = server.connect("plain", user=RAW_USER, password=server.password)
            raw_client.select_folder("INBOX", readonly=True)
            raw: list[float] = []
            imap: list[float] = []
            smtp: list[float] = []
            try:
                async with Client(params, read_timeout_seconds=60) as client:
                    async def idling() -> bool:
                        accounts = (await client.call_tool("inbox_accounts", {})).structured_content or {}
                        return any(a["name"] == "bench" and a["idle"] for a in accounts.get("accounts", []))

                    await wait_until(idling, "the IMAP poller in IDLE")
                    for trial in range(trials + 2):
                        for side in ("raw", "imap", "smtp") if trial % 2 else ("smtp", "imap", "raw"):
                            subject = f"Your Waitbench code, trial {trial} ({side})"
                            if side == "raw":
                                seconds = await asyncio.to_thread(raw_idle_once, server, raw_client, subject)
                            elif side == "imap":
                                await wait_until(idling, "the IMAP poller back in IDLE")
                                # Past the short first IDLE after a sync (Timing.settle, then a NOOP that
                                # would see the mail without Dovecot's 500 ms delay): steady-state IDLE.
                                await asyncio.sleep(Timing().settle + 0.5)
                                seconds = await ours_once(client, subject, lambda s=subject: server.deliver(message(s)))
                            else:
                                seconds = await ours_once(client, subject, lambda s=subject: smtp_send(smtp_port, s))
                            if trial >= 2:
                                {"raw": raw, "imap": imap, "smtp": smtp}[side].append(seconds)
                            await asyncio.sleep(0.2)
            finally:
                raw_client.logout()
    report(trials, raw, imap, smtp)


def report(trials: int, raw: list[float], imap: list[float], smtp: list[float]) -> None:
    dovecot = subprocess.run(["dovecot", "--version"], capture_output=True, text=True, check=False).stdout.split()
    print(f"mailgent-mcp inbox_wait benchmark: Python {platform.python_version()}, mcp {version('mcp')}, "
          f"Dovecot {dovecot[0] if dovecot else '?'}, {os.cpu_count()} CPUs")
    print(f"{trials} timed trials per side, interleaved, after 2 untimed; seconds from the start of the delivery")
    print(f"{'':42}{'p50':>10}{'p99':>10}")
    rows = [("raw imapclient IDLE: EXISTS (baseline)", raw), ("inbox_wait over stdio: IMAP (LMTP delivery)", imap),
            ("inbox_wait over stdio: SMTP inbox", smtp)]
    for label, values in rows:
        print(f"{label:42}{_ms(statistics.median(values)):>10}{_ms(percentile(values, 0.99)):>10}")
    ratio50 = statistics.median(imap) / statistics.median(raw)
    ratio99 = percentile(imap, 0.99) / percentile(raw, 0.99)
    print(f"{'ratio IMAP/raw':42}{ratio50:>9.2f}x{ratio99:>9.2f}x")
    print(f"verdict IMAP: p50 {ratio50:.2f}x Dovecot's own IDLE notify (target within {IMAP_TARGET}x): "
          f"{'met' if ratio50 <= IMAP_TARGET else 'MISSED'}")
    p50 = statistics.median(smtp)
    print(f"verdict SMTP inbox: p50 {_ms(p50)} (target under {_ms(SMTP_TARGET_S)}): "
          f"{'met' if p50 < SMTP_TARGET_S else 'MISSED'}")


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 trials per side instead of 30")
    args = parser.parse_args()
    asyncio.run(run(8 if args.quick else 30))
    return 0


if __name__ == "__main__":
    sys.exit(main())
