"""A throw-away real Dovecot 2.3 for the inbox tests, and the faults an IMAP client must survive.

    with Dovecot() as server:                  # temp root, test CA, free 127.0.0.1 ports, started
        server.deliver(raw)                    # LMTP, the real delivery path, into the user's INBOX
        client = server.connect("starttls")    # imapclient, logged in as server.user
        server.kick(); server.crash(); server.start(); server.restart()
        server.pause_imap(); server.resume_imap()      # SIGSTOP / SIGCONT the logged-in imap processes
        server.reset_uidvalidity()             # doveadm mailbox update --uid-validity (old + 1)

    with SmtpHop(server) as hop: ...           # aiosmtpd on hop.host:hop.port relaying to the LMTP port
    with TcpProxy(server.host, server.imap_port) as proxy:
        proxy.blackhole(); proxy.heal(); proxy.reset()

Fixtures for test modules (import them): `dovecot`, `smtp_hop`, `imap_proxy`.

Facts behind the choices (see the template, tests/data/dovecot.conf.tmpl): as root the mail user
must be numeric and non-zero (nobody, 65534, group nogroup); that user must reach the mail folder,
so the root is a `mkdtemp()` under /tmp made 0755 (pytest's tmp_path sits under a 0700 folder);
SIGTERM to the master alone leaves logged-in imap processes serving, so every signal goes to the
process group (`dovecot -F` runs in a new session). Dovecot notifies IDLE clients no sooner than
500 ms after a change (NOTIFY_DELAY_MSECS in src/lib-storage/mailbox-watch.c): wait 1-2 s.
"""

from __future__ import annotations

import atexit
import datetime
import grp
import ipaddress
import os
import pwd
import re
import selectors
import shutil
import signal
import smtplib
import socket
import ssl
import string
import struct
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from imapclient import IMAPClient

HOST = "127.0.0.1"
USER = "agent@example.test"
PASSWORD = "correct horse"
SENDER = "sender@example.test"
TEMPLATE = Path(__file__).parent / "data" / "dovecot.conf.tmpl"
LMTP_BINARY = Path("/usr/lib/dovecot/lmtp")
IMAP_BINARY = Path("/usr/lib/dovecot/imap")
# dovecot lives in /usr/sbin, which a non-root PATH often lacks.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin", "/bin"])

START_TIMEOUT = 10.0  # seconds; a start takes 50-250 ms here
STOP_TIMEOUT = 10.0  # a SIGTERM stop takes 10-130 ms, and 1 s about one time in three (the master lingers)
COMMAND_TIMEOUT = 10.0  # doveadm, LMTP
POLL = 0.01
NO_USER_KICKED = 68  # doveadm kick's exit code (EX_NOUSER) when the user had no session

Mode = Literal["plain", "starttls", "imaps"]
T = TypeVar("T")


class DovecotError(RuntimeError):
    """Dovecot did not do what the harness asked; the message carries the end of its log or doveadm's stderr."""

    def __init__(self, message: str, returncode: int | None = None) -> None:
        super().__init__(message)
        self.returncode = returncode


def dovecot_installed() -> bool:
    """True when dovecot, doveadm and the imap and lmtp services are installed."""
    return (shutil.which("dovecot", path=SEARCH_PATH) is not None
            and shutil.which("doveadm", path=SEARCH_PATH) is not None
            and IMAP_BINARY.exists() and LMTP_BINARY.exists())


def free_ports(count: int) -> list[int]:
    """`count` distinct ports of 127.0.0.1 that nothing listened on a moment ago."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


# --- certificates --------------------------------------------------------------------------


def write_test_pki(folder: Path, hostname: str = "localhost") -> tuple[Path, Path, Path]:
    """A self-signed test CA and a server cert it signed for hostname and 127.0.0.1: (ca, cert, key) files."""
    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailgent test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])).issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.touch(mode=0o600)
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_file, cert_file, key_file


# --- processes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Proc:
    pid: int
    comm: str
    state: str
    pgrp: int


def _read_proc(pid: int) -> _Proc | None:
    """/proc/PID/stat of a live process, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    comm = stat[stat.index("(") + 1:stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()
    return _Proc(pid, comm, fields[0], int(fields[2]))


def group_members(pgid: int) -> list[_Proc]:
    """Processes of process group pgid that are not zombies."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            proc = _read_proc(int(entry))
            if proc is not None and proc.pgrp == pgid and proc.state != "Z":
                members.append(proc)
    return members


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _stopped(pid: int) -> bool:
    """True when the process is stopped by a signal, or gone."""
    proc = _read_proc(pid)
    return proc is None or proc.state in ("T", "t")


def _wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL)
    return True


def _accounts() -> dict[str, str]:
    """Template values for the accounts Dovecot runs as: nobody/nogroup for mail when root, else ourselves."""
    if os.geteuid() == 0:
        def existing(name: str) -> str:
            try:
                pwd.getpwnam(name)
                return name
            except KeyError:
                return "nobody"
        try:
            gid = grp.getgrnam("nogroup").gr_gid
        except KeyError:
            gid = 65534
        internal = existing("dovecot")
        return {"MAIL_UID": "65534", "MAIL_GID": str(gid), "INTERNAL_USER": internal,
                "INTERNAL_GROUP": grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name,
                "LOGIN_USER": existing("dovenull"), "AUTH_USER": "root"}
    name = pwd.getpwuid(os.geteuid()).pw_name
    return {"MAIL_UID": str(os.geteuid()), "MAIL_GID": str(os.getegid()), "INTERNAL_USER": name,
            "INTERNAL_GROUP": grp.getgrgid(os.getegid()).gr_name, "LOGIN_USER": name, "AUTH_USER": name}


# Instances still running when the interpreter exits (a test run that died): stop them anyway,
# since they live in their own session and no Ctrl-C reaches them.
_LIVE: weakref.WeakSet[Dovecot] = weakref.WeakSet()


@atexit.register
def _close_leftovers() -> None:
    for server in list(_LIVE):
        with suppress(Exception):
            server.close()


# --- the server ----------------------------------------------------------------------------


class Dovecot:
    """One Dovecot instance in its own temp root, on free 127.0.0.1 ports: plain IMAP (with STARTTLS), IMAPS, LMTP."""

    host = HOST

    def __init__(self, user: str = USER, password: str = PASSWORD) -> None:
        self.user, self.password = user, password
        self.users: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused: set[int] = set()
        self._clients: list[IMAPClient] = []
        self._started_once = False
        self.root = Path(tempfile.mkdtemp(prefix="mailgent-dovecot-", dir="/tmp"))
        try:
            self.root.chmod(0o755)
            self.conf_file = self.root / "dovecot.conf"
            self.log_file = self.root / "dovecot.log"
            self.stderr_file = self.root / "dovecot.stderr"
            self.passwd_file = self.root / "passwd"
            self.mail_root = self.root / "mail"
            self._accounts = _accounts()
            self.mail_root.mkdir()
            os.chown(self.mail_root, int(self._accounts["MAIL_UID"]), int(self._accounts["MAIL_GID"]))
            self.ca_file, self.cert_file, self.key_file = write_test_pki(self.root)
            self.add_user(user, password)
            self.imap_port, self.imaps_port, self.lmtp_port = free_ports(3)
            self._write_conf()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    # configuration

    def add_user(self, user: str, password: str) -> None:
        """Add (or re-password) a user; Dovecot re-reads the passwd-file on its next login."""
        for value in (user, password):
            if not value or any(c in value for c in ":\r\n\0"):
                raise ValueError("user and password must be non-empty, without ':' or line breaks")
        self.users[user] = password
        lines = "".join(f"{name}:{{PLAIN}}{secret}\n" for name, secret in self.users.items())
        new = self.passwd_file.with_suffix(".new")
        new.touch(mode=0o600)
        new.write_text(lines)
        new.replace(self.passwd_file)  # a new inode: Dovecot notices the change

    def maildir(self, user: str | None = None) -> Path:
        """The user's Maildir (it exists once Dovecot has delivered to or logged in that user)."""
        return self.mail_root / (user or self.user) / "Maildir"

    def _write_conf(self) -> None:
        text = string.Template(TEMPLATE.read_text()).substitute(
            ROOT=str(self.root), IMAP_PORT=self.imap_port, IMAPS_PORT=self.imaps_port,
            LMTP_PORT=self.lmtp_port, **self._accounts)
        self.conf_file.write_text(text)

    # lifecycle

    @property
    def pid(self) -> int | None:
        """The master's PID, which is also the process group of every Dovecot process; None when stopped."""
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        """True while the master process runs."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Run `dovecot -F -c CONF` and return once the plain port greets with `* OK`."""
        if self.running:
            raise DovecotError("Dovecot is already running; stop() or crash() it first")
        if self._proc is not None:  # the master died on its own: clear what is left of its group
            self._end_group(signal.SIGKILL)
        for _attempt in range(3):
            self._launch()
            try:
                self._wait_ready(timeout)
            except DovecotError as exc:
                self._end_group(signal.SIGKILL)
                # Another process took a port between free_ports() and now: new ports, unless a
                # client may already know the old ones.
                if self._started_once or "Address already in use" not in str(exc):
                    raise
                self.imap_port, self.imaps_port, self.lmtp_port = free_ports(3)
                self._write_conf()
                continue
            self._started_once = True
            _LIVE.add(self)
            return
        raise DovecotError("Dovecot found no free ports in three tries")

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """A clean stop: SIGTERM to the whole process group, wait for every process (SIGKILL after timeout)."""
        if self._proc is not None:
            self._end_group(signal.SIGTERM, timeout)

    def crash(self) -> None:
        """SIGKILL the whole process group: no BYE, sockets closed by the kernel."""
        if self._proc is not None:
            self._end_group(signal.SIGKILL)

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        """A clean stop, then a start on the same ports; the Maildir and UIDVALIDITY are kept."""
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        """Stop Dovecot if it runs, close the clients connect() made, and remove the temp root."""
        try:
            self.stop()
        finally:
            for client in self._clients:
                with suppress(Exception):
                    client.shutdown()
            self._clients.clear()
            _LIVE.discard(self)
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _launch(self) -> None:
        binary = shutil.which("dovecot", path=SEARCH_PATH)
        if binary is None:
            raise DovecotError("dovecot is not installed; scripts/setup.sh --test installs it")
        with self.stderr_file.open("ab") as err:
            self._proc = subprocess.Popen([binary, "-F", "-c", str(self.conf_file)], stdin=subprocess.DEVNULL,
                                          stdout=err, stderr=subprocess.STDOUT, start_new_session=True)

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise DovecotError(f"dovecot exited with {self._proc.returncode} before greeting\n{self.log_text()}")
            if self._greets():
                return
            time.sleep(POLL)
        raise DovecotError(f"dovecot did not greet on {self.host}:{self.imap_port} within {timeout} s\n"
                           f"{self.log_text()}")

    def _greets(self) -> bool:
        try:
            with socket.create_connection((self.host, self.imap_port), timeout=1.0) as sock:
                return sock.makefile("rb").readline(200).startswith(b"* OK")
        except OSError:
            return False

    def _end_group(self, signum: int, timeout: float = STOP_TIMEOUT) -> None:
        """Signal the whole group, wait until the master is reaped and every member has exited
        (SIGKILL what outlives timeout), then forget the process."""
        assert self._proc is not None
        proc, pgid = self._proc, self._proc.pid
        # SIGCONT too: a paused (stopped) process acts on SIGTERM only once continued.
        for sig in (signum, signal.SIGCONT):
            with suppress(ProcessLookupError):
                os.killpg(pgid, sig)

        def gone() -> bool:
            return proc.poll() is not None and not group_members(pgid)

        if not _wait_until(gone, timeout):
            with suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            if not _wait_until(gone, timeout):
                raise DovecotError(f"Dovecot processes outlived SIGKILL: {group_members(pgid)}")
        self._proc = None
        self._paused.clear()

    def log_text(self, limit: int = 8000) -> str:
        """The end of Dovecot's log and of its stderr, for error messages."""
        parts = []
        for path in (self.log_file, self.stderr_file):
            with suppress(OSError):
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-limit:]}")
        return "\n".join(parts)

    # faults

    def imap_processes(self, user: str | None = None) -> list[int]:
        """PIDs of this instance's imap processes serving a logged-in user (any user when None)."""
        if self._proc is None:
            return []
        marker = "[" if user is None else f"[{user} "  # verbose_proctitle: "dovecot/imap [user ip state]"
        return [p.pid for p in group_members(self._proc.pid) if p.comm == "imap" and marker in _cmdline(p.pid)]

    def pause_imap(self, user: str | None = None) -> list[int]:
        """SIGSTOP the logged-in imap processes (a hung server: connections open, no answers); their PIDs."""
        pids = self.imap_processes(user)
        if not pids:
            raise DovecotError(f"no logged-in imap process for {user or 'any user'} to pause")
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        self._paused.update(pids)
        if not _wait_until(lambda: all(_stopped(pid) for pid in pids), COMMAND_TIMEOUT):
            raise DovecotError(f"imap processes {pids} did not stop")
        return pids

    def resume_imap(self) -> None:
        """SIGCONT the processes pause_imap() stopped."""
        for pid in self._paused:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self._paused.clear()

    def kick(self, user: str | None = None) -> bool:
        """`doveadm kick USER`: each session of the user gets `* BYE` and is closed; False if none was open."""
        try:
            self.doveadm("kick", user or self.user)
        except DovecotError as exc:
            if exc.returncode == NO_USER_KICKED:
                return False
            raise
        return True

    def uidvalidity(self, user: str | None = None, mailbox: str = "INBOX") -> int:
        """The mailbox's UIDVALIDITY as Dovecot reports it (creates the mailbox's index if needed)."""
        out = self.doveadm("mailbox", "status", "-u", user or self.user, "uidvalidity", mailbox)
        match = re.search(r"uidvalidity=(\d+)", out)
        if match is None:
            raise DovecotError(f"doveadm mailbox status gave no uidvalidity: {out!r}")
        return int(match.group(1))

    def reset_uidvalidity(self, user: str | None = None, mailbox: str = "INBOX") -> int:
        """Give the mailbox a new UIDVALIDITY (old + 1) while Dovecot runs; the messages stay. Returns it."""
        new = self.uidvalidity(user, mailbox) + 1
        self.doveadm("mailbox", "update", "-u", user or self.user, "--uid-validity", str(new), mailbox)
        if self.uidvalidity(user, mailbox) != new:
            raise DovecotError(f"UIDVALIDITY of {mailbox} did not change to {new}")
        return new

    def doveadm(self, *args: str) -> str:
        """Run `doveadm -c CONF ARGS` against this instance; its stdout."""
        binary = shutil.which("doveadm", path=SEARCH_PATH)
        if binary is None:
            raise DovecotError("doveadm is not installed; scripts/setup.sh --test installs it")
        done = subprocess.run([binary, "-c", str(self.conf_file), *args], capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise DovecotError(f"doveadm {' '.join(args)} exited with {done.returncode}: {done.stderr.strip()}",
                               done.returncode)
        return done.stdout

    # mail and clients

    def deliver(self, message: bytes | str, to: str | None = None, mail_from: str = SENDER,
                timeout: float = COMMAND_TIMEOUT) -> None:
        """Deliver one message to one user's INBOX over LMTP (line ends made CRLF); unknown user: SMTPRecipientsRefused."""
        data = message.encode() if isinstance(message, str) else message
        data = re.sub(rb"\r?\n", b"\r\n", data)
        with smtplib.LMTP(self.host, self.lmtp_port, timeout=timeout) as lmtp:
            lmtp.sendmail(mail_from, [to or self.user], data)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the test CA and nothing else (what MAILGENT_IMAP_CA gives a user)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def connect(self, mode: Mode = "plain", *, login: bool = True, user: str | None = None,
                password: str | None = None, port: int | None = None, timeout: float = 5.0) -> IMAPClient:
        """An imapclient connection: "plain", "starttls" (plain port, then STARTTLS) or "imaps"; logged in by default.

        `port` overrides the plain or IMAPS port (a TcpProxy in front of it).
        """
        if mode == "imaps":
            client = IMAPClient(self.host, port or self.imaps_port, ssl=True, ssl_context=self.ssl_context(),
                                timeout=timeout)
        else:
            client = IMAPClient(self.host, port or self.imap_port, ssl=False, timeout=timeout)
        try:
            if mode == "starttls":
                client.starttls(self.ssl_context())
            if login:
                client.login(user or self.user, password if password is not None else self.password)
        except BaseException:
            with suppress(Exception):
                client.shutdown()
            raise
        self._clients.append(client)  # closed by close(), so a test may simply drop it
        return client


# --- an SMTP hop in front of LMTP ----------------------------------------------------------


class _LmtpRelay:
    """aiosmtpd handler: each message received is delivered to every recipient through Dovecot's LMTP."""

    def __init__(self, server: Dovecot) -> None:
        self.server = server
        self.relayed = 0

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        try:
            # Blocking, on the hop's loop: one local LMTP transaction takes milliseconds.
            for rcpt in envelope.rcpt_tos:
                self.server.deliver(content, to=rcpt, mail_from=envelope.mail_from or "")
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return f"{code} {text.decode(errors='replace')}"
        except smtplib.SMTPResponseException as exc:
            error = exc.smtp_error
            return f"{exc.smtp_code} {error.decode(errors='replace') if isinstance(error, bytes) else error}"
        except (OSError, smtplib.SMTPException):
            return "451 4.4.0 relay to LMTP failed"
        self.relayed += 1
        return "250 2.0.0 relayed to LMTP"


class _BoundController(Controller):
    """A Controller serving an already bound socket, so no other process can take its port first."""

    def __init__(self, handler: Any, sock: socket.socket) -> None:
        super().__init__(handler, hostname=HOST, port=sock.getsockname()[1], ready_timeout=START_TIMEOUT)
        self._sock = sock

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock)


class SmtpHop:
    """A real SMTP server on 127.0.0.1 (aiosmtpd in its own thread) that relays each message to Dovecot's LMTP."""

    host = HOST

    def __init__(self, server: Dovecot) -> None:
        self.server = server
        self._handler = _LmtpRelay(server)
        self._controller: _BoundController | None = None
        self.port = 0

    @property
    def relayed(self) -> int:
        """Messages relayed to LMTP so far."""
        return self._handler.relayed

    def start(self) -> None:
        """Listen on a free port of 127.0.0.1 (self.port)."""
        sock = socket.create_server((HOST, 0))
        self.port = sock.getsockname()[1]
        self._controller = _BoundController(self._handler, sock)
        try:
            self._controller.start()
        except BaseException:
            sock.close()
            self._controller = None
            raise

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpHop:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


# --- a TCP proxy that can fail -------------------------------------------------------------


BUFFER_LIMIT = 1 << 20  # bytes held per direction before the proxy stops reading that side
CONTROL_TIMEOUT = 5.0


@dataclass(eq=False)
class _Link:
    """One proxied connection: bytes read from one side wait in a buffer until the other side takes them."""

    client: socket.socket
    upstream: socket.socket
    to_upstream: bytearray = field(default_factory=bytearray)
    to_client: bytearray = field(default_factory=bytearray)
    eof: set[str] = field(default_factory=set)  # sides that sent FIN


def _abort(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer gets a RST, not a FIN."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class TcpProxy:
    """A 127.0.0.1 TCP proxy to (target_host, target_port), run by one selector thread, that can fail on demand.

    blackhole(): stop moving bytes both ways and stop accepting, silently; sockets stay open and
    bytes wait in buffers (a network that went quiet). heal(): move them again, as TCP would
    retransmit them after a short outage. reset(): close every current connection with a RST on
    both sides. close(): stop for good.
    """

    host = HOST

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.accepted = 0  # connections accepted so far
        self._listener = socket.create_server((HOST, 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._calls: list[Callable[[], None]] = []
        self._calls_lock = threading.Lock()
        self._links: set[_Link] = set()
        self._forwarding = True
        self._closing = False
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._selector.register(self._listener, selectors.EVENT_READ, "listen")
        self._thread = threading.Thread(target=self._run, name=f"TcpProxy-{self.port}", daemon=True)
        self._thread.start()

    # control, from any thread

    def blackhole(self) -> None:
        """Stop forwarding both ways and stop accepting; nothing is closed, nothing is said."""
        self._call(lambda: self._set_forwarding(False))

    def heal(self) -> None:
        """Forward again, including the bytes held while blackholed, and accept waiting connections."""
        self._call(lambda: self._set_forwarding(True))

    def reset(self) -> None:
        """Close every current connection with SO_LINGER 0 (RST to the client and to the target)."""
        self._call(self._reset_all)

    @property
    def connections(self) -> int:
        """Connections currently open through the proxy."""
        return self._call(lambda: len(self._links))

    def close(self) -> None:
        """Close every connection and the listener, and join the thread."""
        if self._thread.is_alive():
            with suppress(DovecotError):
                self._call(self._begin_close)
            self._thread.join(CONTROL_TIMEOUT)
        for sock in (self._wake_r, self._wake_w):
            sock.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _call(self, fn: Callable[[], T]) -> T:
        """Run fn on the proxy thread (which owns every socket) and return its result."""
        done = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # handed to the caller
                box["error"] = exc
            finally:
                done.set()

        with self._calls_lock:
            self._calls.append(run)
        self._wake_w.send(b"\0")
        if not done.wait(CONTROL_TIMEOUT):
            raise DovecotError("the TcpProxy thread did not answer")
        if "error" in box:
            raise box["error"]
        return box["value"]  # type: ignore[no-any-return]

    # the proxy thread

    def _run(self) -> None:
        try:
            while not self._closing:
                for key, mask in self._selector.select():
                    if key.data == "wake":
                        self._run_calls()
                    elif key.data == "listen" and self._forwarding:
                        self._accept()
                    else:
                        link, side = key.data
                        # blackhole() or reset() may have run earlier in this same batch
                        if link in self._links and self._forwarding:
                            self._service(link, side, mask)
        finally:
            self._reset_all()
            self._listener.close()
            self._selector.close()

    def _run_calls(self) -> None:
        with suppress(BlockingIOError):
            self._wake_r.recv(4096)
        with self._calls_lock:
            calls, self._calls = self._calls, []
        for call in calls:
            call()

    def _begin_close(self) -> None:
        self._closing = True

    def _set_forwarding(self, on: bool) -> None:
        self._forwarding = on
        self._update(self._listener, selectors.EVENT_READ if on else 0, "listen")
        for link in list(self._links):
            self._interest(link)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        self.accepted += 1
        try:
            upstream = socket.create_connection(self.target, timeout=CONTROL_TIMEOUT)
        except OSError:
            _abort(client)  # the target is down: the client sees its connection reset
            return
        for sock in (client, upstream):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(client, upstream)
        self._links.add(link)
        self._interest(link)

    def _service(self, link: _Link, side: str, mask: int) -> None:
        sock = link.client if side == "client" else link.upstream
        inbox = link.to_upstream if side == "client" else link.to_client  # what this side sends
        outbox = link.to_client if side == "client" else link.to_upstream  # what this side receives
        try:
            if mask & selectors.EVENT_READ:
                data = sock.recv(65536)
                if data:
                    inbox += data
                else:
                    link.eof.add(side)
            if mask & selectors.EVENT_WRITE and outbox:
                del outbox[:sock.send(outbox)]
        except BlockingIOError:
            pass
        except OSError:
            self._drop(link, abort=True)
            return
        # A FIN ends the link once what that side sent has been passed on (the client gets its BYE).
        if ("client" in link.eof and not link.to_upstream) or ("upstream" in link.eof and not link.to_client):
            self._drop(link, abort=False)
            return
        self._interest(link)

    def _interest(self, link: _Link) -> None:
        for side, sock, inbox, outbox in (("client", link.client, link.to_upstream, link.to_client),
                                          ("upstream", link.upstream, link.to_client, link.to_upstream)):
            events = 0
            if self._forwarding:
                if side not in link.eof and len(inbox) < BUFFER_LIMIT:
                    events |= selectors.EVENT_READ
                if outbox:
                    events |= selectors.EVENT_WRITE
            self._update(sock, events, (link, side))

    def _update(self, sock: socket.socket, events: int, data: object) -> None:
        try:
            self._selector.get_key(sock)
            registered = True
        except KeyError:
            registered = False
        if events and registered:
            self._selector.modify(sock, events, data)
        elif events:
            self._selector.register(sock, events, data)
        elif registered:
            self._selector.unregister(sock)

    def _drop(self, link: _Link, abort: bool) -> None:
        self._links.discard(link)
        for sock in (link.client, link.upstream):
            self._update(sock, 0, None)
            if abort:
                _abort(sock)
            else:
                sock.close()

    def _reset_all(self) -> None:
        for link in list(self._links):
            self._drop(link, abort=True)


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """A started Dovecot with user `agent@example.test` / `correct horse`; stopped and removed at teardown."""
    if not dovecot_installed():
        if os.environ.get("CI"):  # CI installs it: missing there is a failure, not a skip
            pytest.fail("Dovecot is not installed; scripts/setup.sh --test should have installed it")
        pytest.skip("Dovecot is not installed; scripts/setup.sh --test installs it "
                    "(apt-get install dovecot-imapd dovecot-lmtpd)")
    with Dovecot() as server:
        yield server


@pytest.fixture
def smtp_hop(dovecot: Dovecot) -> Iterator[SmtpHop]:
    """An SMTP server on 127.0.0.1 relaying to the `dovecot` fixture's LMTP port."""
    with SmtpHop(dovecot) as hop:
        yield hop


@pytest.fixture
def imap_proxy(dovecot: Dovecot) -> Iterator[TcpProxy]:
    """A TcpProxy in front of the `dovecot` fixture's plain IMAP port (connect with port=imap_proxy.port)."""
    with TcpProxy(dovecot.host, dovecot.imap_port) as proxy:
        yield proxy
