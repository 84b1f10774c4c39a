"""The command line for the people who set the server up.

Passwords, seeds and keys are read from a hidden prompt or from standard input, never
from argv (which other users can read in the process list). Exit codes:
0 ok, 1 internal error, 2 bad input, 3 vault locked, 4 not found, 5 a stored value or
entry was altered, 6 the audit chain is broken, 7 unusable data folder or setting, 130
interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TextIO

from mailgent_mcp import __version__, logs
from mailgent_mcp.cli.args import check_text_arguments, whole
from mailgent_mcp.errors import EntryExists, InvalidInput, MailgentError
from mailgent_mcp.mcp.tokens import TOKEN_FILE, create_token
from mailgent_mcp.settings import (
    ENV_TOKEN,
    SECRET_VARIABLES,
    default_home,
    ensure_home,
    read_environment,
)
from mailgent_mcp.vault import otp
from mailgent_mcp.vault.crypto import decode_master_key
from mailgent_mcp.vault.entries import SECRET_FIELD, Vault
from mailgent_mcp.vault.fields import BACKUP_FIELD
from mailgent_mcp.vault.models import EntryView, TotpCode
from mailgent_mcp.vault.passgen import DEFAULT_LENGTH, DEFAULT_SYMBOLS, PasswordRule

log = logging.getLogger("mailgent_mcp")

# Field values shown in clear by `vault get`; every other value is masked unless asked for.
PLAIN_FIELDS = ("username", "email", "url", "notes")
MASK = "********"


class SecretReader:
    """Reads secret values: a hidden prompt on a terminal, else one line each from stdin."""

    def __init__(self, stdin: TextIO) -> None:
        self._stdin = stdin
        self._tty = stdin.isatty()

    @property
    def interactive(self) -> bool:
        """Whether values come from a person at a terminal."""
        return self._tty

    def read(self, label: str, *, confirm: bool = False, confirm_piped: bool = False) -> str:
        """One secret value; never echoed, never taken from argv.

        confirm: asked twice at a terminal. confirm_piped: also read twice (two lines) from a
        pipe, for a value whose typo would lock the vault (a new passphrase or key).
        """
        if self._tty:
            value = getpass.getpass(f"{label}: ")
            if confirm and getpass.getpass(f"{label} (again): ") != value:
                raise InvalidInput(f"The two {label.lower()} entries differ; nothing was stored.")
            return value
        value = self._line(label)
        if confirm_piped and self._line(f"{label} (again, to confirm)") != value:
            raise InvalidInput(f"The two {label.lower()} lines on standard input differ; nothing was changed.")
        return value

    def _line(self, label: str) -> str:
        try:
            line = self._stdin.readline()
        except UnicodeDecodeError:
            raise InvalidInput(f"The {label.lower()} on standard input is not valid UTF-8 text; nothing was "
                               "stored.") from None
        if not line:
            raise InvalidInput(f"Expected the {label.lower()} as a line on standard input, but it ended.")
        return line.rstrip("\r\n")


# -- commands -----------------------------------------------------------------------------


async def cmd_vault_put(vault: Vault, args: argparse.Namespace, out: TextIO, reader: SecretReader) -> int:
    data: dict[str, object] = {}
    for flag in ("username", "url", "notes"):
        if getattr(args, flag) is not None:
            data[flag] = getattr(args, flag)
    for pair in args.set or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInput(f"--set takes FIELD=VALUE; {key[:40]!r} has no '='.")
        if key in ("password", SECRET_FIELD):
            raise InvalidInput(f"The {key} is never taken from the command line; use --{key} to be asked for it.")
        data[key] = value
    if args.qr is not None:
        if args.secret:
            raise InvalidInput("Give the TOTP seed one way: --secret or --qr FILE, not both. Nothing was stored.")
        data[SECRET_FIELD] = _seed_from_qr_file(args.qr)  # before any prompt: a bad image asks for nothing
    # Read order on stdin: password, secret, then each --field in the order given.
    if args.password:
        data["password"] = reader.read("Password", confirm=True)
    if args.secret:
        data[SECRET_FIELD] = reader.read("TOTP seed (base32) or otpauth:// URI")
    for field in args.field or []:
        data[field] = reader.read(f"Value of {field}")
    if args.backup_codes:
        data[BACKUP_FIELD] = reader.read("Recovery codes (separated by spaces or commas)")
    totp_opts = {k: getattr(args, k) for k in ("algorithm", "digits", "period", "issuer", "account")
                 if getattr(args, k) is not None}
    rule = None
    if args.generate_password is not None:
        rule = PasswordRule(length=args.generate_password, symbols=DEFAULT_SYMBOLS if args.symbols is None
                            else args.symbols)
    info = await vault.put(args.name, data, args.type, totp=totp_opts or None, if_absent=args.no_overwrite,
                           password=rule)
    if args.json:
        _print_json(out, info.model_dump(mode="json", exclude_none=info.generated_password is None))
        return 0
    out.write(f"Stored {info.name!r} ({info.type.value}; fields: {', '.join(info.fields) or 'none'}).\n")
    if info.totp is not None:
        out.write(f"TOTP: {_describe_totp(info.totp.model_dump())}\n")
    if info.backup_codes_remaining is not None:
        out.write(f"Recovery codes: {info.backup_codes_remaining} unused.\n")
    if info.generated_password is not None:
        out.write(f"Generated password (also in the entry): {info.generated_password}\n")
    return 0


async def cmd_vault_backup_codes(vault: Vault, args: argparse.Namespace, out: TextIO, reader: SecretReader) -> int:
    if args.use:
        used = await vault.use_backup_code(args.name)
        if args.json:
            _print_json(out, used.model_dump(mode="json"))
        else:
            out.write(f"{used.code}  ({used.remaining} unused left)\n")
        return 0
    unused, spent = await vault.backup_codes(args.name)
    if args.json:
        _print_json(out, {"name": args.name, "unused": unused, "used": spent})
        return 0
    for code in unused:
        out.write(f"{code}\n")
    for code in spent:
        out.write(f"{code}  (used)\n")
    out.write(f"{len(unused)} unused, {len(spent)} used.\n" if out.isatty() else "")
    return 0


def _seed_from_qr_file(path: str) -> str:
    """The otpauth:// URI in the QR code of the image file given to --qr (read whole, at most qr.MAX_IMAGE_BYTES)."""
    from mailgent_mcp.vault import (
        qr,  # Pillow and zxing-cpp are loaded only when an image is given
    )

    what = f"--qr {path!r}"
    try:
        with open(path, "rb") as file:
            image = file.read(qr.MAX_IMAGE_BYTES + 1)
    except FileNotFoundError:
        raise InvalidInput(f"{what}: no such file; give the path of the QR code image (PNG, JPEG, WebP or "
                           "GIF).") from None
    except IsADirectoryError:
        raise InvalidInput(f"{what} is a folder; give the path of the QR code image file.") from None
    except PermissionError:
        raise InvalidInput(f"{what} cannot be read (permission denied); make it readable, or copy it "
                           "elsewhere.") from None
    except OSError:
        raise InvalidInput(f"{what} could not be read; check the path and give the image file itself.") from None
    if len(image) > qr.MAX_IMAGE_BYTES:
        raise InvalidInput(f"{what} is larger than {qr.MAX_IMAGE_BYTES // (1024 * 1024)} MB; crop it to the part "
                           "of the page with the QR code, or save it as PNG or JPEG.")
    return qr.secret_from_image(image)


async def cmd_vault_get(vault: Vault, args: argparse.Namespace, out: TextIO, reader: SecretReader) -> int:
    if args.field == SECRET_FIELD:
        raise InvalidInput(f"The TOTP seed never leaves the vault; run `mailgent-mcp vault totp {args.name}` for a code.")
    view = await vault.get(args.name)
    if args.field:
        if args.field not in view.data:
            raise InvalidInput(f"Entry {view.name!r} has no field {args.field!r}; it has: {', '.join(view.fields)}.")
        out.write(view.data[args.field] + "\n")
        return 0
    shown = {k: (v if args.reveal or k in PLAIN_FIELDS else MASK) for k, v in view.data.items()}
    if args.json:
        _print_json(out, {**view.model_dump(mode="json"), "data": shown})
        return 0
    _print_entry(out, view, shown, masked=not args.reveal)
    return 0


async def cmd_vault_list(vault: Vault, args: argparse.Namespace, out: TextIO, reader: SecretReader) -> int:
    entries = await vault.list(args.prefix or "")
    if args.json:
        _print_json(out, [e.model_dump(mode="json") for e in entries])
        return 0
    if not entries:
        out.write("No entries" + (f" starting with {args.prefix!r}" if args.prefix else "") +
                  ". Add one with: mailgent-mcp vault put NAME --type login --username U --password\n")
        return 0
    width = max(len(e.name) for e in entries)
    for e in entries:
        out.write(f"{e.name:<{width}}  {e.type.value:<8} {'totp' if e.has_totp else '    '}  {e.updated_at}\n")
    return 0


async def cmd_vault_rm(vault: Vault, args: argparse.Namespace, out: TextIO, reader: SecretReader) -> int:
    if not args.yes and sys.stdin.isatty():
        answer = input(f"Delete {args.name!r} and all its fields, seed included? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            out.write("Nothing deleted.\n")
            return 1
    await vault.delete(args.name)
    out.write(f"Deleted {args.name!r}.\n")
    return 0


async def cmd_vault_totp(vault: Vault, args: argparse.Namespace, out: TextIO, reader: SecretReader) -> int:
    # --watch shows codes the way an authenticator app does: none of them is claimed for a login.
    code = await vault.totp(args.name, min_remaining=args.min_remaining, unused_only=not (args.reuse or args.watch))
    if args.json and not args.watch:
        _print_json(out, code.model_dump(mode="json"))
        return 0
    if not args.watch:
        out.write(f"{code.code}  ({code.remaining} s left)\n")
        return 0
    return await _watch(vault, args.name, code, out)


async def _watch(vault: Vault, name: str, code: TotpCode, out: TextIO) -> int:
    """Count down the current code and show each next one, until interrupted."""
    tty = out.isatty()
    try:
        while True:
            expires = time.time() + code.remaining
            last_left = -1
            while (left := int(expires - time.time() + 0.999)) > 0:
                if tty and left != last_left:
                    out.write(f"\r{code.code}  {left:>3} s left ")
                    out.flush()
                elif not tty and last_left == -1:
                    out.write(f"{code.code}  ({left} s left)\n")
                    out.flush()
                last_left = left
                await asyncio.sleep(min(0.2, max(expires - time.time(), 0.01)))
            code = await vault.totp(name, min_remaining=0, unused_only=False)
    except (KeyboardInterrupt, asyncio.CancelledError):
        out.write("\n" if tty else "")
        return 0


async def cmd_vault_passwd(vault: Vault, args: argparse.Namespace, out: TextIO, reader: SecretReader) -> int:
    to = args.to or vault.key_kind
    if to != "keyfile" and (vault.home / "master.key").exists() and not args.yes:
        # The change deletes master.key: once it is gone only the new passphrase or key opens the vault.
        question = (f"This deletes {vault.home / 'master.key'}: afterwards only the new {to} opens the vault. "
                    "Continue? [y/N] ")
        if not reader.interactive:
            raise InvalidInput(f"Switching to a {to} deletes master.key; nothing was changed. Add --yes to confirm.")
        if input(question).strip().lower() not in ("y", "yes"):
            out.write("Nothing changed.\n")
            return 1
    if to == "passphrase":
        phrase = reader.read("New passphrase", confirm=True, confirm_piped=True)
        await vault.change_key("passphrase", passphrase=phrase)
        how = "Set MAILGENT_PASSPHRASE to the new passphrase wherever the server or CLI runs."
    elif to == "key":
        text = reader.read("New master key (base64 of 32 bytes)", confirm=True, confirm_piped=True)
        await vault.change_key("key", key=decode_master_key(text))
        how = "Set MAILGENT_MASTER_KEY to the new key wherever the server or CLI runs."
    else:
        await vault.change_key("keyfile")
        how = f"The new key is in {vault.home / 'master.key'}; back it up. Unset MAILGENT_MASTER_KEY and MAILGENT_PASSPHRASE."
    out.write(f"Vault key changed ({to}); entries were not touched. {how}\n")
    return 0


async def cmd_vault_import(vault: Vault, args: argparse.Namespace, out: TextIO, reader: SecretReader) -> int:
    stored = skipped = 0
    for lineno, line in enumerate(sys.stdin, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            seeds = otp.parse_migration(text) if text.lower().startswith("otpauth-migration:") else [otp.parse_uri(text)]
        except MailgentError as exc:
            print(f"mailgent-mcp: line {lineno} skipped: {exc}", file=sys.stderr)
            skipped += 1
            continue
        for seed in seeds:
            label = seed.name or ":".join(p for p in (seed.params.issuer, seed.params.account) if p) or f"line{lineno}"
            name = args.prefix + label
            try:
                await vault.put(name, {}, "TOTP", seed=seed, if_absent=not args.overwrite)
            except (EntryExists, InvalidInput) as exc:
                print(f"mailgent-mcp: line {lineno}: {name!r} skipped: {exc}", file=sys.stderr)
                skipped += 1
                continue
            out.write(f"stored {name!r}\n")
            stored += 1
    out.write(f"Imported {stored} seed(s); skipped {skipped}.\n")
    return 0 if skipped == 0 else 2


async def cmd_audit_tail(vault: Vault, args: argparse.Namespace, out: TextIO, reader: SecretReader) -> int:
    rows = await vault.audit_tail(args.n)
    if args.json:
        _print_json(out, [r.model_dump(mode="json") for r in rows])
        return 0
    for r in rows:
        out.write(f"{r.seq:>6}  {r.at}  {r.op:<7} {r.entry or '-':<24} {r.actor:<16} {r.outcome}\n")
    return 0


async def cmd_audit_verify(vault: Vault, args: argparse.Namespace, out: TextIO, reader: SecretReader) -> int:
    report = await vault.audit_verify()
    if args.json:
        _print_json(out, report.model_dump(mode="json"))
    elif report.ok:
        out.write(f"Audit log intact: {report.rows} rows, chain verified; {report.entries} entries match their "
                  "last recorded change.\n")
    elif report.entry_problems:
        out.write(f"Audit log intact ({report.rows} rows), but {len(report.entry_problems)} entries were changed "
                  "outside mailgent-mcp:\n" + "".join(f"  - {p}\n" for p in report.entry_problems))
    else:
        out.write(f"Audit log BROKEN after {report.rows} good rows: {report.problem}.\n")
    if not args.json:
        for brk in report.breaks:
            out.write(f"Recorded break: {brk}\n")
        if report.unwritten:
            out.write(f"{report.unwritten} audit rows of this command are not written yet (see the message above).\n")
    if report.ok:
        return 0
    return 5 if report.entry_problems else 6


async def cmd_audit_acknowledge(vault: Vault, args: argparse.Namespace, out: TextIO, reader: SecretReader) -> int:
    problem = await vault.audit_acknowledge()
    out.write(f"Recorded in the audit log: {problem}. The vault works again; `mailgent-mcp audit verify` will keep "
              "reporting this break.\n")
    return 0


def cmd_token(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Print a new token alone on out, so `TOKEN=$(mailgent-mcp token)` captures it; the explanation goes to err."""
    home = ensure_home(args.home if args.home is not None else default_home(args.environ))
    token = create_token(home, rotate=args.rotate)
    out.write(f"{token}\n")
    out.flush()
    err.write(
        "The line on standard output is the bearer token for `mailgent-mcp serve --transport http|sse`.\n"
        f"It is shown only now: the data folder keeps just its hash ({TOKEN_FILE}).\n"
        + ("The previous token stops working at once, in running servers too.\n" if args.rotate else "")
        + "Clients send it as the header `Authorization: Bearer <token>`. Only the token goes to standard\n"
        "output, so `TOKEN=$(mailgent-mcp token)` (or `token --rotate`) captures it alone.\n"
    )
    if read_environment(args.environ).token is not None:
        err.write(f"{ENV_TOKEN} is set here: a server started with it accepts that value instead of this token.\n")
    return 0


# -- plumbing -----------------------------------------------------------------------------

# Flags by argparse dest, where the dest is not the flag's own spelling.
Handler = Callable[[Vault, argparse.Namespace, TextIO, SecretReader], Coroutine[Any, Any, int]]


def _print_json(out: TextIO, value: object) -> None:
    out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def _describe_totp(t: dict[str, Any]) -> str:
    parts = [f"{t['algorithm']}, {t['digits']} {'chars' if t.get('encoder') == 'steam' else 'digits'}, {t['period']} s"]
    if t.get("issuer") or t.get("account"):
        parts.append(f"issuer {t.get('issuer') or '-'}, account {t.get('account') or '-'}")
    if t.get("weak"):
        parts.append(f"WEAK: {t['seed_bits']}-bit seed, below RFC 4226's 128-bit minimum")
    return "; ".join(parts)


def _print_entry(out: TextIO, view: EntryView, shown: dict[str, str], *, masked: bool) -> None:
    rows: list[tuple[str, str]] = [("name", view.name), ("type", view.type.value)]
    rows += sorted(shown.items())
    if view.totp is not None:
        rows.append(("totp", _describe_totp(view.totp.model_dump())))
    if view.backup_codes_remaining is not None:
        rows.append(("recovery codes", f"{view.backup_codes_remaining} unused (vault backup-codes NAME)"))
    rows += [("created", view.created_at), ("updated", view.updated_at)]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        out.write(f"{key + ':':<{width + 1}} {value}\n")
    if masked and any(v == MASK for v in shown.values()):
        out.write("(hidden values: add --reveal, or --field NAME to print one value alone)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for `mailgent-mcp`."""
    p = argparse.ArgumentParser(prog="mailgent-mcp", description="Vault, TOTP codes and inbox for AI agents, over MCP.")
    p.add_argument("--home", type=Path, help="data folder (default: $MAILGENT_HOME or the user data dir)")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress and internal errors to stderr")
    p.add_argument("--version", action="version", version=f"mailgent-mcp {__version__}")
    groups = p.add_subparsers(dest="group", required=True, metavar="COMMAND")

    vault = groups.add_parser("vault", help="store and read credentials").add_subparsers(dest="cmd", required=True)
    put = vault.add_parser("put", help="create or update an entry (given fields replace, others stay)")
    put.add_argument("name")
    put.add_argument("--type", type=str.upper, choices=["LOGIN", "API_KEY", "TOTP", "NOTE"],
                     help="entry type (new entries: inferred when omitted)")
    put.add_argument("--username")
    put.add_argument("--url")
    put.add_argument("--notes")
    put.add_argument("--set", action="append", metavar="FIELD=VALUE", help="a non-secret extra field")
    put.add_argument("--password", action="store_true", help="ask for the password (or read a line of stdin)")
    put.add_argument("--secret", action="store_true", help="ask for the TOTP seed or otpauth:// URI (or read stdin)")
    put.add_argument("--qr", metavar="FILE",
                     help="read the TOTP seed from the QR code in this image (PNG, JPEG, WebP, GIF; a page screenshot)")
    put.add_argument("--field", action="append", metavar="FIELD", help="ask for a secret extra field, e.g. api_key")
    put.add_argument("--backup-codes", action="store_true",
                     help="ask for the recovery codes the service gave (one line, separated by spaces or commas)")
    put.add_argument("--generate-password", type=int, nargs="?", const=DEFAULT_LENGTH, metavar="LENGTH",
                     help=f"make a random password (default {DEFAULT_LENGTH} characters), store and print it")
    put.add_argument("--symbols", metavar="CHARS",
                     help="with --generate-password: the symbols the service allows ('' for none)")
    put.add_argument("--algorithm", help="TOTP hash for a bare base32 seed: SHA1 (default), SHA256, SHA512")
    put.add_argument("--digits", type=int, help="TOTP digits for a bare base32 seed (6-10, default 6)")
    put.add_argument("--period", type=int, help="TOTP period in seconds for a bare base32 seed (default 30)")
    put.add_argument("--issuer")
    put.add_argument("--account")
    put.add_argument("--no-overwrite", action="store_true", help="fail if the entry exists")
    put.add_argument("--json", action="store_true")
    put.set_defaults(handler=cmd_vault_put)

    get = vault.add_parser("get", help="show an entry (secret values masked)")
    get.add_argument("name")
    get.add_argument("--field", help="print this one field's value alone (e.g. password), for piping")
    get.add_argument("--reveal", action="store_true", help="show masked values")
    get.add_argument("--json", action="store_true")
    get.set_defaults(handler=cmd_vault_get)

    lst = vault.add_parser("list", help="list entries")
    lst.add_argument("prefix", nargs="?", default="")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(handler=cmd_vault_list)

    codes = vault.add_parser("backup-codes", help="list an entry's recovery codes, or use one (--use)")
    codes.add_argument("name")
    codes.add_argument("--use", action="store_true", help="print one unused code and mark it used")
    codes.add_argument("--json", action="store_true")
    codes.set_defaults(handler=cmd_vault_backup_codes)

    rm = vault.add_parser("rm", help="delete an entry")
    rm.add_argument("name")
    rm.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    rm.set_defaults(handler=cmd_vault_rm)

    totp = vault.add_parser("totp", help="print a TOTP code no one was handed yet, and its seconds left")
    totp.add_argument("name")
    totp.add_argument("--min-remaining", type=int, default=None, metavar="N",
                      help="if fewer than N seconds are left, wait for the next code (default 5)")
    totp.add_argument("--reuse", action="store_true",
                      help="the current code even if it was handed out already (and without recording it)")
    totp.add_argument("--watch", action="store_true",
                      help="keep showing the current code with a countdown, recording none (Ctrl-C ends)")
    totp.add_argument("--json", action="store_true")
    totp.set_defaults(handler=cmd_vault_totp)

    passwd = vault.add_parser("passwd", help="change the master key (rewraps the data key; entries untouched)")
    passwd.add_argument("--to", choices=["passphrase", "keyfile", "key"],
                        help="new key kind (default: the current one, with a new value)")
    passwd.add_argument("-y", "--yes", action="store_true",
                        help="do not ask before deleting master.key (needed when stdin is not a terminal)")
    passwd.set_defaults(handler=cmd_vault_passwd)

    imp = vault.add_parser("import", help="store seeds from otpauth:// or otpauth-migration:// URIs on stdin")
    imp.add_argument("--prefix", default="", help="prefix for the new entry names")
    imp.add_argument("--overwrite", action="store_true", help="replace entries that exist")
    imp.set_defaults(handler=cmd_vault_import)

    serve = groups.add_parser("serve", help="run the MCP server (stdio by default)")
    serve.add_argument("--transport", choices=["stdio", "http", "sse"], default="stdio",
                       help="stdio (default), http (streamable HTTP at /mcp) or sse (at /sse, for older clients)")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=whole(1, 65535), default=8765, help="HTTP port (default 8765)")
    serve.add_argument("--tool-names", choices=["underscore", "dotted"],
                       help="vault_get (default) or vault.get; also MAILGENT_TOOL_NAMES")
    serve.add_argument("--allow-remote", action="store_true",
                       help="allow a non-loopback --host (exposes the vault to the network)")
    serve.add_argument("--allowed-host", action="append", default=[], metavar="HOST[:PORT]",
                       help="another Host header value to accept (DNS-rebinding protection)")
    serve.add_argument("--smtp-listen", metavar="HOST:PORT",
                       help="run the embedded SMTP inbox there, e.g. 127.0.0.1:2525 (also MAILGENT_SMTP_LISTEN)")

    token = groups.add_parser("token", help="make the bearer token for the HTTP transports (printed once)")
    token.add_argument("--rotate", action="store_true", help="replace an existing token")

    from mailgent_mcp.cli.inbox import add_parsers as add_inbox_parsers

    add_inbox_parsers(groups)

    demo = groups.add_parser("demo", help=(
        "an agent signs up on a local sample service, verifies its address from the mail, enrols 2FA and logs in, "
        "through MCP only, in a temp folder"))
    demo.add_argument("--keep", action="store_true",
                      help="keep the data folder and the sample service running (until Ctrl-C) to try the tools")
    demo.add_argument("--totp-period", type=whole(5, 120), default=30, metavar="SECONDS",
                      help="how long each of the sample service's 2FA codes lasts (default 30; shorter, the second "
                           "login waits less for a fresh code)")

    audit = groups.add_parser("audit", help="the vault's audit log").add_subparsers(dest="cmd", required=True)
    tail = audit.add_parser("tail", help="show the newest audit rows")
    tail.add_argument("-n", type=whole(1, 1_000_000), default=20, help="how many rows (default 20)")
    tail.add_argument("--json", action="store_true")
    tail.set_defaults(handler=cmd_audit_tail)
    verify = audit.add_parser("verify", help="check the audit hash chain and every entry against it")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=cmd_audit_verify)
    ack = audit.add_parser("acknowledge", help="record a break of the audit log in the log itself, so the vault "
                                               "works again (the break stays reported)")
    ack.set_defaults(handler=cmd_audit_acknowledge)
    return p


async def _run(args: argparse.Namespace) -> int:
    check_text_arguments(args)
    if args.group == "demo":
        from mailgent_mcp.demo.run import (
            run_demo,  # imports the MCP SDK: only for the demo
        )

        return await run_demo(sys.stdout, home=args.home, keep=args.keep, totp_period=args.totp_period)
    if args.group == "serve":
        from mailgent_mcp.mcp.server import (  # imports the MCP SDK: only when serving
            HttpOptions,
            serve,
        )

        opts = HttpOptions(host=args.host, port=args.port, allow_remote=args.allow_remote,
                           allowed_hosts=tuple(args.allowed_host))
        if await serve(args.transport, home=args.home, tool_names=args.tool_names, http=opts,
                       environ=args.environ, smtp_listen=args.smtp_listen):
            # Stopped by a signal with the vault closed; stdin's reader thread would block a normal exit.
            logging.shutdown()
            sys.stdout.flush()
            os._exit(0)
        return 0
    if args.group == "token":
        return cmd_token(args, sys.stdout, sys.stderr)
    if args.group == "inbox":
        reader = SecretReader(sys.stdin)
        return int(await args.handler(args, sys.stdout, reader.read))
    vault = await Vault.open(args.home, environ=args.environ)
    try:
        handler: Handler = args.handler
        return await handler(vault, args, sys.stdout, SecretReader(sys.stdin))
    finally:
        await vault.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `mailgent-mcp` command."""
    args = build_parser().parse_args(argv)
    args.environ = take_environment()
    logs.configure(logging.INFO if args.verbose else logging.WARNING)
    try:
        return asyncio.run(_run(args))
    except MailgentError as exc:
        print(f"mailgent-mcp: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mailgent-mcp: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        hint = "" if args.verbose else "; rerun with -v for the traceback"
        print(f"mailgent-mcp: internal error ({type(exc).__name__}){hint}", file=sys.stderr)
        if args.verbose:
            log.error("internal error", exc_info=True)
        return 1


def take_environment() -> dict[str, str]:
    """A snapshot of the environment, the secret variables then removed from the process's own.

    Everything that reads settings or keys is handed the snapshot; child processes (the
    parser workers, multiprocessing's resource tracker) start without the secrets.
    """
    snapshot = dict(os.environ)
    for name in SECRET_VARIABLES:
        os.environ.pop(name, None)  # unsetenv: gone for every process started from now on
    return snapshot
