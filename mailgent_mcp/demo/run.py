"""`mailgent-mcp demo`: the whole job, step by step, with nothing configured.

In a throw-away data folder it starts a small local web service (sign-up by email, a
verification code sent over SMTP, 2FA enrolment shown only as a QR code in a screenshot,
recovery codes, a login that checks the password and the TOTP code, and takes each code
once; see sample_service.py) and `mailgent-mcp serve` with its embedded SMTP inbox, over
stdio. An agent (demo_agent.py) talks to the server only through MCP, calling each tool
with its defaults: it gets an address, has a password made, signs up, finds the
verification mail that already came, types the code, has the seed read from the QR
screenshot, stores the recovery codes, and logs in with a TOTP code and then with a
recovery code. Exits 0 only when the service accepted both logins. With --keep, the folder and the service stay
up so a person can try the tools from their own MCP client.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_types import Implementation

from mailgent_mcp import __version__
from mailgent_mcp.demo.agent import FlowError, sign_up_and_log_in
from mailgent_mcp.demo.service import SampleService
from mailgent_mcp.settings import ensure_home
from mailgent_mcp.vault.entries import Vault

HOST = "127.0.0.1"


def free_port() -> int:
    """A loopback port nothing listens on now (the server binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


async def run_demo(out: TextIO, home: Path | None = None, keep: bool = False, totp_period: int = 30) -> int:
    """Run the walkthrough as an agent would, through MCP over stdio; 0 when logged in."""
    folder = ensure_home(home or Path(tempfile.mkdtemp(prefix="mailgent-demo-")))
    start = time.perf_counter()

    def step(text: str) -> None:
        out.write(f"[{time.perf_counter() - start:6.3f}s] {text}\n")
        out.flush()

    smtp_port = free_port()
    service = SampleService(HOST, smtp_port, totp_period=totp_period)
    try:
        step(f"data folder: {folder} (master.key is created on first use)")
        url = service.serve(HOST)
        step(f"sample service on {url}: sign-up by email, 2FA by QR code, login with TOTP or a recovery code")
        env = {"MAILGENT_HOME": str(folder), "MAILGENT_SMTP_LISTEN": f"{HOST}:{smtp_port}",
               "PATH": os.environ.get("PATH", "")}
        server = StdioServerParameters(command=sys.executable, args=["-m", "mailgent_mcp", "serve"], env=env)
        log_file = folder / "server.log"  # the server's stderr, apart from the steps
        with log_file.open("a") as errlog:
            ok = await _agent(server, errlog, url, smtp_port, step)
        if not ok and log_file.stat().st_size:
            out.write(f"the server's log ({log_file}):\n{log_file.read_text()[-3000:]}\n")
        async with await Vault.open(folder, environ={}, actor="demo") as vault:

            report = await vault.audit_verify()
            actors = sorted({r.actor for r in await vault.audit_tail(50) if r.op != "init"})
        step(f"audit log: {report.rows} rows by {', '.join(actors)}; chain {'intact' if report.ok else 'BROKEN'}")
        if keep:
            await _stay_up(out, folder, url, smtp_port)
        return 0 if ok and report.ok else 1
    finally:
        service.close()
        if keep or home is not None:
            out.write(f"data folder kept: {folder}\n")
        else:
            shutil.rmtree(folder, ignore_errors=True)


async def _agent(server: StdioServerParameters, errlog: TextIO, url: str, smtp_port: int,
                 step: Callable[[str], None]) -> bool:
    """The agent's session with the server: True when it logged in."""
    async with Client(stdio_client(server, errlog=errlog),
                      client_info=Implementation(name="mailgent-demo", version=__version__),
                      read_timeout_seconds=90) as client:
        tools = [t.name for t in (await client.list_tools()).tools]
        step(f"MCP server up over stdio, SMTP inbox on {HOST}:{smtp_port}; tools: {', '.join(tools)}")
        try:
            return await sign_up_and_log_in(client, url, step)
        except FlowError as exc:
            step(f"FAILED: {exc}")
            return False


async def _stay_up(out: TextIO, folder: Path, url: str, smtp_port: int) -> None:
    """Keep the service running until Ctrl-C (or SIGTERM), saying how to reach it."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):  # before saying so: a Ctrl-C right after must find them
        loop.add_signal_handler(signum, stop.set)
    out.write(
        f"\nThe sample service stays up at {url}; the data folder is {folder}.\n"
        "Try the tools from your own MCP client with this server command (its SMTP inbox gets the service's mail):\n"
        f"  MAILGENT_HOME={folder} MAILGENT_SMTP_LISTEN={HOST}:{smtp_port} mailgent-mcp serve\n"
        "Press Ctrl-C to stop.\n")
    out.flush()
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
