"""A vault client run as a separate process by tests/test_vault_processes.py.

    python tests/helpers/vault_worker.py MODE HOME [options]

Modes:
    writer PREFIX COUNT   put PREFIX-i (i from --start) COUNT times, or until "stop" on stdin
                          with --until-stop; after each put returns, print "committed NAME";
                          --cycle N overwrites PREFIX-0..N-1 in turn instead of new names
    mixed PREFIX COUNT    like writer, and after each put a totp and a get of the same entry
                          (both checked here), and every --shared-every puts a put of --shared
    open                  open the vault and print "entries N" (a wrong key exits 3)
    inbox                 open the inbox (the mail cache, no key) and print "messages N"
    reads NAME COUNT      COUNT totp reads of entry NAME, printing "read I" after each, then
                          (with --flush, after writing their audit rows) "done reading", then wait
                          for a line on stdin before closing the vault
    passwd KIND           change the master key to KIND (keyfile, passphrase: the new one is
                          MAILGENT_NEW_PASSPHRASE); with --pause-at STEP print "at STEP" at that
                          step of the change (written: the new key file is on disk; committed: the
                          keyring row is replaced; renamed: master.key is the new key) and wait
                          for a line on stdin, so the parent can kill it exactly there

The key comes from the environment (MAILGENT_MASTER_KEY, MAILGENT_PASSPHRASE, or the
master.key file), as for the server. Every line is flushed as soon as it is printed, so
the parent knows exactly which puts had committed when it killed this process. After
opening, the worker prints "ready KEYHASH" (sha256 of master.key, or "-" without one);
with --barrier it first prints "armed" and waits for a line on stdin, so several workers
can be released into Vault.open at the same instant. At the end it prints "ops N": the
number of vault operations it completed, each of which wrote one audit row.

Values are derived from the entry name (see password_for, seed_for), so the parent can
check any entry without being told what was written. A MailgentError exits with its
exit_code and its (safe) message on stderr; a wrong value read back exits 9.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import sys
import threading
from pathlib import Path

# A fixed time at which both sides compute the code (RFC 6238 Appendix B's 1234567890).
CHECK_AT = 1_234_567_890.0
MISMATCH_EXIT = 9


def password_for(name: str) -> str:
    """The password the workers store for entry `name`."""
    return "pw-" + hashlib.sha256(b"password\x00" + name.encode()).hexdigest()[:24]


def username_for(name: str) -> str:
    """The username the workers store for entry `name`."""
    return f"user-{name}@example.test"


def seed_for(name: str) -> str:
    """A 160-bit base32 TOTP seed the workers store for entry `name`."""
    return base64.b32encode(hashlib.sha256(b"seed\x00" + name.encode()).digest()[:20]).decode()


def shared_password(prefix: str, index: int) -> str:
    """The value a mixed worker writes to the shared entry at its index-th put."""
    return f"shared-{prefix}-{index}"


def fields_for(name: str) -> dict[str, str]:
    """The full field set of a worker entry."""
    return {"username": username_for(name), "password": password_for(name), "secret": seed_for(name)}


def say(line: str) -> None:
    """Print one line and flush it at once: the parent reads it through a pipe."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def key_hash(home: Path) -> str:
    """sha256 of the master.key file, or '-' when there is none."""
    path = home / "master.key"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "-"


def stop_flag() -> threading.Event:
    """An event set when stdin gives a line (or closes): the parent's 'stop'."""
    event = threading.Event()

    def watch() -> None:
        sys.stdin.readline()
        event.set()

    threading.Thread(target=watch, daemon=True).start()
    return event


def pause_at(step: str | None) -> None:
    """Make the key change stop at step (see the module docstring) until the parent writes a line."""
    from mailgent_mcp.vault import crypto
    from mailgent_mcp.vault.entries import Vault

    def pause() -> None:
        say(f"at {step}")
        sys.stdin.readline()

    if step == "written":
        real_write = crypto.write_key_file

        def write(path: Path, key: bytes, *, replace: bool = False) -> bool:
            created = real_write(path, key, replace=replace)
            if path.name.startswith("master.key.new"):
                pause()
            return created

        crypto.write_key_file = write  # type: ignore[assignment]
    elif step == "committed":
        real_audited = Vault._audited

        async def audited(self: Vault, op: str, *args: object) -> object:
            result = await real_audited(self, op, *args)  # type: ignore[arg-type]
            if op == "passwd":
                pause()
            return result

        Vault._audited = audited  # type: ignore[assignment, method-assign]
    elif step == "renamed":
        real_replace = os.replace

        def replace(src: object, dst: object) -> None:
            real_replace(src, dst)  # type: ignore[arg-type]
            if str(dst).endswith("master.key"):
                pause()

        os.replace = replace  # type: ignore[assignment]


class Mismatch(Exception):
    """A value read back from the vault is not the one written."""


async def run(args: argparse.Namespace) -> int:
    from mailgent_mcp.inbox.cache import Inbox
    from mailgent_mcp.inbox.store import MessageQuery
    from mailgent_mcp.vault import otp
    from mailgent_mcp.vault.entries import Vault

    home = Path(args.home)
    if args.barrier:
        say("armed")
        sys.stdin.readline()
    if args.mode == "inbox":
        async with await Inbox.open(home) as inbox:
            say(f"messages {len(await inbox.read(MessageQuery(limit=100)))}")
        return 0
    vault = await Vault.open(home, environ=os.environ, actor=f"worker-{os.getpid()}")
    ops = 0
    try:
        say(f"ready {key_hash(home)}")
        if args.mode == "open":
            entries = await vault.list()
            ops += 1
            say(f"entries {len(entries)}")
            return 0
        if args.mode == "reads":
            for i in range(args.count):
                await vault.totp(args.prefix, unused_only=False)  # a read: no code handed out
                ops += 1
                say(f"read {i}")
            if args.flush:
                await vault.flush_audit()
            say("done reading")
            await asyncio.to_thread(sys.stdin.readline)
            return 0
        if args.mode == "passwd":
            pause_at(args.pause_at)
            await vault.change_key(args.prefix, passphrase=os.environ.get("MAILGENT_NEW_PASSPHRASE"))
            ops += 1
            say("changed")
            return 0
        stop = stop_flag() if args.until_stop else None
        i = args.start
        while (stop is None and i < args.start + args.count) or (stop is not None and not stop.is_set()):
            name = f"{args.prefix}-{i % args.cycle if args.cycle else i}"
            await vault.put(name, fields_for(name), "LOGIN")
            ops += 1
            say(f"committed {name}")
            if args.mode == "mixed":
                code = await vault.totp(name, at=CHECK_AT, unused_only=False)
                expected = otp.totp_at(otp.parse_secret(seed_for(name)), CHECK_AT).code
                view = await vault.get(name)
                ops += 2
                if code.code != expected or view.data.get("password") != password_for(name):
                    raise Mismatch(name)
                if args.shared and i % args.shared_every == 0:
                    await vault.put(args.shared, {"password": shared_password(args.prefix, i)}, "LOGIN")
                    ops += 1
                    say(f"shared {shared_password(args.prefix, i)}")
            i += 1
        return 0
    finally:
        await vault.close()
        say(f"ops {ops}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["writer", "mixed", "open", "inbox", "reads", "passwd"])
    parser.add_argument("home")
    parser.add_argument("prefix", nargs="?", default="w")
    parser.add_argument("count", nargs="?", type=int, default=0)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--until-stop", action="store_true", help="write until a line arrives on stdin")
    parser.add_argument("--cycle", type=int, default=0, help="reuse the names PREFIX-0..N-1 (overwrites)")
    parser.add_argument("--barrier", action="store_true", help="print 'armed' and wait for a stdin line first")
    parser.add_argument("--shared", default="", help="name of an entry every mixed worker also writes")
    parser.add_argument("--shared-every", type=int, default=5)
    parser.add_argument("--pause-at", choices=["written", "committed", "renamed"])
    parser.add_argument("--flush", action="store_true", help="reads: write the audit rows before saying done")
    args = parser.parse_args()

    from mailgent_mcp.errors import MailgentError

    try:
        return asyncio.run(run(args))
    except MailgentError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code
    except Mismatch as exc:
        print(f"mismatch: entry {exc} read back a different value", file=sys.stderr)
        return MISMATCH_EXIT


if __name__ == "__main__":
    sys.exit(main())
