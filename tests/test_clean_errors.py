"""Every bad setting, option, argument or mail server answers a clear message and its documented exit code.

One table per interface: the CLI as a real subprocess (config.toml keys of the wrong type, the
MAILGENT_* variables, numeric options at their edges, IMAP servers that cannot be used, against
a real Dovecot), and the inbox tools over real stdio. For each case: the exit code the README
documents, never "internal error", and a message that names the fix.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from mcp import Client, StdioServerParameters

from mailgent_mcp.inbox.cache import Inbox
from mailgent_mcp.inbox.imap import ImapAccount, ImapSync
from mailgent_mcp.inbox.parse import Parser

from .conftest import clean_env, ok, run_cli
from .dovecot import Dovecot, dovecot_installed, free_ports
from .test_imap_sync import FAST, mail
from .test_mcp_inbox import smtp_server

# Text that only a library's raw error or an unhandled exception would put in a message.
RAW = ("internal error", "Traceback", "invalid literal", "_ssl.c", "Errno", "object has no attribute")
UNHANDLED = ("internal error", "Traceback")  # anywhere in the output (uvicorn logs its own "[Errno 98]" line)
NOT_UTF8 = os.fsdecode(b"caf\xe9")  # a Latin-1 byte in argv, as a shell in a non-UTF-8 locale passes it


@dataclass(frozen=True)
class Case:
    """A CLI run: arguments, what config.toml and the environment hold, and what it must answer."""

    id: str
    args: tuple[str, ...]
    exit: int
    says: tuple[str, ...]
    config: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    stdin: str = ""


def account_toml(**keys: str) -> str:
    """[accounts.w] with host and username, then `keys` (TOML values as written)."""
    table = {"host": '"imap.example.test"', "username": '"agent@example.test"', **keys}
    return "[accounts.w]\n" + "".join(f"{k} = {v}\n" for k, v in table.items() if v)


SMTP_ANY = {"MAILGENT_SMTP_LISTEN": "127.0.0.1:0"}  # a server with a mail source, so that it reads the inbox settings
ENV_URL = {"MAILGENT_IMAP_URL": "imaps://agent@imap.example.test/INBOX", "MAILGENT_IMAP_PASSWORD": "pw"}
ADD = ("inbox", "add", "w", "--host", "imap.example.test", "--username", "agent@example.test")
NO_SOURCE_FIX = ("No mail source is set up", "mailgent-mcp inbox add NAME --host HOST --username ADDRESS",
                 "mailgent-mcp serve --smtp-listen 127.0.0.1:2525")

CLI_CASES = [
    # config.toml: every table and key, of the wrong type or out of range (exit 7)
    Case("accounts-not-a-table", ("inbox", "list"), 7, ("accounts", "table"), config="accounts = 5\n"),
    Case("account-not-a-table", ("inbox", "list"), 7, ("accounts.w", "table"), config="[accounts]\nw = 5\n"),
    Case("mailboxes-a-string", ("inbox", "list"), 7, ("mailboxes", "[accounts.w]", "array"),
         config=account_toml(mailboxes='"INBOX"')),
    Case("mailboxes-empty", ("inbox", "list"), 7, ("mailboxes", "[accounts.w]"), config=account_toml(mailboxes="[]")),
    Case("port-a-string", ("inbox", "list"), 7, ("port", "[accounts.w]", "integer"),
         config=account_toml(port='"abc"')),
    Case("port-a-boolean", ("inbox", "list"), 7, ("port", "[accounts.w]", "integer"), config=account_toml(port="true")),
    Case("port-out-of-range", ("inbox", "list"), 7, ("port", "[accounts.w]", "65535"),
         config=account_toml(port="70000")),
    Case("host-a-number", ("inbox", "list"), 7, ("host", "[accounts.w]", "string"), config=account_toml(host="5")),
    Case("username-missing", ("inbox", "list"), 7, ("username", "[accounts.w]"), config=account_toml(username="")),
    Case("security-unknown", ("inbox", "list"), 7, ("security", "[accounts.w]", "starttls"),
         config=account_toml(security='"ssl"')),
    Case("skip-verify-a-string", ("inbox", "list"), 7, ("insecure_skip_verify", "[accounts.w]", "true or false"),
         config=account_toml(insecure_skip_verify='"no"')),
    Case("first-sync-a-float", ("inbox", "list"), 7, ("first_sync_count", "[accounts.w]", "integer"),
         config=account_toml(first_sync_count="1.5")),
    Case("first-sync-days-zero", ("inbox", "list"), 7, ("first_sync_days", "[accounts.w]"),
         config=account_toml(first_sync_days="0")),
    Case("ca-file-a-number", ("inbox", "list"), 7, ("ca_file", "[accounts.w]", "string"),
         config=account_toml(ca_file="5")),
    Case("account-named-local", ("inbox", "list"), 7, ("'local'", "SMTP inbox"),
         config=account_toml().replace("accounts.w", "accounts.local")),
    Case("vault-not-a-table", ("serve",), 7, ("[vault]", "table"), config="vault = 5\n"),
    Case("default-entry-a-number", ("serve",), 7, ("default_entry", "[vault]", "string"),
         config="[vault]\ndefault_entry = 5\n"),
    Case("server-not-a-table", ("serve",), 7, ("[server]", "table"), config='server = "x"\n'),
    Case("tool-names-a-number", ("serve",), 7, ("tool_names", "[server]", "dotted"),
         config="[server]\ntool_names = 5\n"),
    Case("inbox-not-a-table", ("inbox", "purge"), 7, ("[inbox]", "table"), config="inbox = 5\n"),
    Case("retention-not-an-age", ("inbox", "purge"), 7, ("retention", "30d"), config='[inbox]\nretention = "nand"\n'),
    # the environment (exit 7)
    Case("imap-url-port-out-of-range", ("inbox", "list"), 7, ("MAILGENT_IMAP_URL", "port"),
         env={"MAILGENT_IMAP_URL": "imaps://agent@imap.example.test:99999/"}),
    Case("imap-url-port-not-a-number", ("inbox", "list"), 7, ("MAILGENT_IMAP_URL", "port"),
         env={"MAILGENT_IMAP_URL": "imaps://agent@imap.example.test:abc/"}),
    Case("imap-url-bad-host", ("inbox", "list"), 7, ("MAILGENT_IMAP_URL", "imaps://"),
         env={"MAILGENT_IMAP_URL": "imaps://agent@[imap.example.test/"}),
    Case("imap-url-without-password", ("inbox", "sync"), 7, ("MAILGENT_IMAP_PASSWORD",),
         env={"MAILGENT_IMAP_URL": ENV_URL["MAILGENT_IMAP_URL"]}),
    Case("imap-ca-missing", ("inbox", "sync"), 7, ("MAILGENT_IMAP_CA",),
         env={**ENV_URL, "MAILGENT_IMAP_CA": "/nonexistent/ca.pem"}),
    Case("lease-ttl-not-a-number", ("serve",), 7, ("MAILGENT_LEASE_TTL", "seconds"),
         env={**SMTP_ANY, "MAILGENT_LEASE_TTL": "abc"}),
    Case("lease-ttl-zero", ("serve",), 7, ("MAILGENT_LEASE_TTL", "seconds"),
         env={**SMTP_ANY, "MAILGENT_LEASE_TTL": "0"}),
    Case("lease-ttl-nan", ("serve",), 7, ("MAILGENT_LEASE_TTL", "seconds"),
         env={**SMTP_ANY, "MAILGENT_LEASE_TTL": "nan"}),
    Case("retention-nan", ("serve",), 7, ("MAILGENT_RETENTION", "30d"), env={**SMTP_ANY, "MAILGENT_RETENTION": "nand"}),
    Case("smtp-listen-a-name-under-127", ("serve",), 7, ("loopback", "MAILGENT_SMTP_LISTEN"),
         env={"MAILGENT_SMTP_LISTEN": "127.evil.example:2525"}),
    Case("smtp-listen-option-a-name-under-127", ("serve", "--smtp-listen", "127.0.0.1.nip.io:2525"), 7,
         ("loopback",)),
    Case("smtp-listen-port-out-of-range", ("serve",), 7, ("MAILGENT_SMTP_LISTEN", "65535"),
         env={"MAILGENT_SMTP_LISTEN": "127.0.0.1:99999"}),
    Case("token-not-utf8", ("serve", "--transport", "http"), 7, ("MAILGENT_TOKEN", "UTF-8"),
         env={"MAILGENT_TOKEN": NOT_UTF8 * 8}),
    Case("tool-names-unknown", ("serve",), 7, ("MAILGENT_TOOL_NAMES", "dotted"), env={"MAILGENT_TOOL_NAMES": "x"}),
    # no mail source: no IMAP account, no MAILGENT_IMAP_URL, no SMTP inbox (exit 8)
    Case("read-no-mail-source", ("inbox", "read"), 8, NO_SOURCE_FIX),
    Case("sync-no-mail-source", ("inbox", "sync"), 8, NO_SOURCE_FIX),
    # numeric options: negative, zero, huge (exit 2)
    Case("serve-port-huge", ("serve", "--transport", "http", "--port", "70000"), 2, ("--port", "65535")),
    Case("serve-port-negative", ("serve", "--transport", "http", "--port", "-1"), 2, ("--port", "65535")),
    Case("serve-port-zero", ("serve", "--transport", "http", "--port", "0"), 2, ("--port", "65535")),
    Case("add-port-huge", (*ADD, "--port", "70000", "--no-check"), 2, ("--port", "65535"), stdin="pw\n"),
    Case("add-first-sync-zero", (*ADD, "--first-sync", "0", "--no-check"), 2, ("--first-sync",), stdin="pw\n"),
    Case("add-first-sync-days-negative", (*ADD, "--first-sync-days=-3", "--no-check"), 2, ("--first-sync-days",),
         stdin="pw\n"),
    Case("reindex-batch-huge", ("inbox", "reindex", "--batch", str(2**70)), 2, ("--batch",)),
    Case("audit-tail-negative", ("audit", "tail", "-n", "-1"), 2, ("-n",)),
    Case("audit-tail-huge", ("audit", "tail", "-n", str(2**70)), 2, ("-n",)),
    Case("read-limit-zero", ("inbox", "read", "--limit", "0"), 2, ("limit", "100")),
    Case("purge-negative-age", ("inbox", "purge", "--older-than=-5d"), 2, ("age", "7d")),
    Case("purge-nan-age", ("inbox", "purge", "--older-than", "nan"), 2, ("age", "7d")),
    Case("purge-infinite-age", ("inbox", "purge", "--older-than", "1e400d"), 2, ("age", "7d")),
    Case("read-since-nan", ("inbox", "read", "--since", "nan"), 2, ("age", "ISO")),
    Case("read-since-infinite", ("inbox", "read", "--since", "1e400d"), 2, ("age", "ISO")),
    # text options that are not UTF-8, and other bad values (exit 2)
    Case("read-subject-not-utf8", ("inbox", "read", "--subject", NOT_UTF8), 2, ("--subject", "UTF-8")),
    Case("add-host-not-utf8", ("inbox", "add", "w", "--host", NOT_UTF8, "--username", "u"), 2, ("--host", "UTF-8"),
         stdin="pw\n"),
    Case("add-username-not-utf8", ("inbox", "add", "w", "--host", "h", "--username", NOT_UTF8, "--no-check"), 2,
         ("--username", "UTF-8"), stdin="pw\n"),
    Case("add-named-local", ("inbox", "add", "local", "--host", "h", "--username", "u", "--no-check"), 2,
         ("'local'", "SMTP inbox"), stdin="pw\n"),
    Case("add-ca-missing", (*ADD, "--ca", "/nonexistent/ca.pem", "--no-check"), 2, ("--ca",), stdin="pw\n"),
    Case("add-host-unknown", ("inbox", "add", "w", "--host", "no-such-host.invalid", "--username", "u"), 2,
         ("no-such-host.invalid", "--host"), stdin="pw\n"),
]


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    """The message the command ended with (stderr's last line)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def assert_clean(result: subprocess.CompletedProcess[str], exit_code: int, says: tuple[str, ...]) -> None:
    """The documented exit code, no raw or internal error, and a message that names the fix."""
    message = last_line(result)
    assert result.returncode == exit_code, (result.returncode, result.stderr[-2000:])
    assert not any(raw in result.stderr + result.stdout for raw in UNHANDLED), result.stderr
    assert not any(raw in message for raw in RAW), message
    for words in says:
        assert words in message, (words, message)


def run_case(home: Path, case: Case) -> subprocess.CompletedProcess[str]:
    home.mkdir(mode=0o700, exist_ok=True)
    if case.config is not None:
        (home / "config.toml").write_text(case.config)
    return run_cli(home, *case.args, stdin=case.stdin, env=clean_env(home, **case.env))


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.id)
def test_bad_input_exits_with_its_code_and_names_the_fix(home: Path, case: Case) -> None:
    assert_clean(run_case(home, case), case.exit, case.says)


def test_a_refused_port_at_inbox_add_names_host_and_port(home: Path) -> None:
    [closed] = free_ports(1)
    result = run_cli(home, "inbox", "add", "w", "--host", "127.0.0.1", "--port", str(closed), "--security", "plain",
                     "--username", "u", stdin="pw\n")
    assert_clean(result, 2, ("refused", f"127.0.0.1:{closed}", "--port"))
    assert not (home / "config.toml").exists()


def test_an_http_port_in_use_is_a_setting_error_not_vault_locked(home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(home, "serve", "--transport", "http", "--port", str(port),
                         env=clean_env(home, MAILGENT_TOKEN="t" * 32))
    assert_clean(result, 7, (f"127.0.0.1:{port}", "--port"))


# --- IMAP servers that cannot be used, against a real Dovecot ------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[Dovecot]:
    """One Dovecot for the module's cases (none of them changes its state)."""
    if not dovecot_installed():
        if os.environ.get("CI"):  # CI installs it: missing there is a failure, not a skip
            pytest.fail("Dovecot is not installed; scripts/setup.sh --test should have installed it")
        pytest.skip("Dovecot is not installed; scripts/setup.sh --test installs it")
    with Dovecot() as started:
        yield started


def add(server: Dovecot, *options: str) -> tuple[str, ...]:
    """`inbox add w` for the server's user, with options."""
    return ("inbox", "add", "w", "--host", server.host, "--username", server.user, *options)


@pytest.mark.parametrize(("mode", "says"), [
    ("tls-on-the-plain-port", ("plain text", "--security starttls")),
    ("starttls-on-the-tls-port", ("--security tls",)),
    ("tls-without-the-ca", ("not trusted", "--ca FILE")),
    ("wrong-password", ("refused the login", "password")),
])
def test_inbox_add_against_a_server_it_cannot_use_is_bad_input(home: Path, server: Dovecot, mode: str,
                                                               says: tuple[str, ...]) -> None:
    options = {
        "tls-on-the-plain-port": ("--port", str(server.imap_port), "--security", "tls", "--ca", str(server.ca_file)),
        "starttls-on-the-tls-port": ("--port", str(server.imaps_port), "--security", "starttls",
                                     "--ca", str(server.ca_file)),
        "tls-without-the-ca": ("--port", str(server.imaps_port), "--security", "tls"),
        "wrong-password": ("--port", str(server.imap_port), "--security", "plain"),
    }[mode]
    password = "not the password" if mode == "wrong-password" else server.password
    result = run_cli(home, *add(server, *options), stdin=password + "\n")
    assert_clean(result, 2, says)
    assert password not in result.stderr + result.stdout
    assert not (home / "config.toml").exists()  # nothing saved


def test_a_non_ascii_imap_password_logs_in(home: Path, server: Dovecot) -> None:
    user, password = "intl@example.test", "pässwört-ü-9"
    server.add_user(user, password)
    result = run_cli(home, "inbox", "add", "w", "--host", server.host, "--port", str(server.imap_port),
                     "--security", "plain", "--username", user, stdin=password + "\n")
    assert result.returncode == 0, result.stderr
    assert "Logged in to" in result.stdout and password not in result.stdout + result.stderr


def test_inbox_sync_of_a_missing_mailbox_or_a_refused_login_is_a_setting_error(home: Path, server: Dovecot) -> None:
    plain = ("--port", str(server.imap_port), "--security", "plain")
    added = run_cli(home, *add(server, *plain, "--mailbox", "INBOX", "--mailbox", "Nope"), stdin=server.password + "\n")
    assert added.returncode == 0, added.stderr
    assert_clean(run_cli(home, "inbox", "sync"), 7, ("'Nope'", "mailbox", "--mailbox"))

    env = clean_env(home, MAILGENT_IMAP_URL=f"imap://{server.user}@{server.host}:{server.imap_port}/INBOX",
                    MAILGENT_IMAP_PASSWORD=NOT_UTF8)
    assert_clean(run_cli(home, "inbox", "sync", "env", env=env), 7, ("UTF-8", "MAILGENT_IMAP_PASSWORD"))

    other = home.parent / "other"
    added = run_cli(other, *add(server, *plain, "--no-check"), stdin="not the password\n")
    assert added.returncode == 0, added.stderr
    assert_clean(run_cli(other, "inbox", "sync"), 7, ("refused the login", "inbox add"))


async def test_the_poller_records_the_clear_reason_as_last_error(home: Path, server: Dovecot) -> None:
    cases = [
        (ImapAccount(name="t", host=server.host, port=server.imap_port, username=server.user, security="tls",
                     ca_file=str(server.ca_file)), ("plain text", "starttls")),
        (ImapAccount(name="m", host=server.host, port=server.imap_port, username=server.user, security="plain",
                     mailboxes=("Nope",)), ("'Nope'", "mailbox")),
    ]
    parser = Parser(workers=1)
    try:
        async with await Inbox.open(home) as inbox:
            for acct, says in cases:
                sync = ImapSync(acct, server.password, inbox, parser, timing=FAST)
                stop = asyncio.Event()
                task = asyncio.create_task(sync.run(stop))
                try:
                    deadline = time.monotonic() + 10
                    while not sync.status.errors and time.monotonic() < deadline:
                        await asyncio.sleep(0.02)
                    error = sync.status.last_error or ""
                    assert sync.status.errors >= 1 and all(words in error for words in says), error
                    assert server.host in error and not any(raw in error for raw in RAW)
                finally:
                    stop.set()
                    await asyncio.wait_for(task, 15)
    finally:
        parser.close()


async def test_a_poller_without_its_password_shows_why_in_inbox_accounts(home: Path) -> None:
    env = clean_env(home, MAILGENT_IMAP_URL="imaps://agent@imap.example.test/INBOX")  # and no MAILGENT_IMAP_PASSWORD
    params = StdioServerParameters(command=sys.executable, args=["-m", "mailgent_mcp", "serve"], env=env)
    async with Client(params, read_timeout_seconds=60) as client:
        deadline = time.monotonic() + 20
        while True:
            answer = ok(await client.call_tool("inbox_accounts", {}))
            [state] = cast(list[dict[str, Any]], answer["accounts"])
            if state["last_error"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    assert state["name"] == "env" and state["errors"] >= 1
    assert "MAILGENT_IMAP_PASSWORD" in (state["last_error"] or ""), state


# --- the inbox tools over real stdio --------------------------------------------------------

TOOL_CASES: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("inbox_mark", {"ids": [2**70], "read": True}, ("ids",)),
    ("inbox_mark", {"ids": [1], "add_label": "x" * 65}, ("label",)),
    ("inbox_read", {"since": "nan"}, ("age", "ISO")),
    ("inbox_read", {"since": "1e400d"}, ("age", "ISO")),
    ("inbox_read", {"since": "-5m"}, ("age", "ISO")),
    ("inbox_read", {"query": "a\x00b"}, ("query",)),
    ("inbox_read", {"subject": "s" * 5000}, ("subject", "characters")),
    ("inbox_read", {"labels": ["x" * 200]}, ("label",)),
    ("inbox_read", {"labels": ["unread"] * 500}, ("labels",)),
    ("inbox_wait", {"since": "nan", "timeout": 1}, ("age", "ISO")),
    ("inbox_wait", {"contains": "\x00", "timeout": 1}, ("contains",)),
    ("inbox_address", {"tag": "t" * 65}, ("tag",)),
]


async def test_bad_tool_arguments_are_clear_errors_over_stdio(home: Path) -> None:
    async with smtp_server(home) as (client, port):
        await asyncio.to_thread(_send, port)
        for tool, arguments, says in TOOL_CASES:
            result = await client.call_tool(tool, arguments)
            text = getattr(result.content[0], "text", "")
            assert result.is_error, (tool, arguments, result.structured_content)
            assert not any(raw in text for raw in RAW), (tool, text)
            assert all(words in text for words in says), (tool, says, text)


def _send(port: int) -> None:
    import smtplib

    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail("no-reply@service.example", ["agent@mailgent.localhost"], mail("cached"))
