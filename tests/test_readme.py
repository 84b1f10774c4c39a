"""Every command in README.md's shell blocks is run (or, where it needs the network or runs
forever, parsed by the real CLI and run elsewhere in the suite), so the README cannot go stale.

A README line this file does not know fails the test: add it to RUN or ELSEWHERE below.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from mailgent_mcp.cli.main import build_parser
from mailgent_mcp.inbox.accounts import save_account
from mailgent_mcp.inbox.imap import ImapAccount

from .conftest import SEED_RFC, clean_env
from .qr_images import encode, enrolment_page, qr_image

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
URI = f"otpauth://totp/Example:alice@example.com?secret={SEED_RFC}&issuer=Example"


def shell_lines() -> list[str]:
    """The commands of every ```sh block (indented ones too), without trailing comments."""
    lines: list[str] = []
    inside = False
    for raw in README.read_text().splitlines():
        stripped = raw.strip()
        if stripped.startswith("```"):
            inside = stripped == "```sh"
            continue
        if inside and stripped:
            lines.append(re.split(r"\s+#\s", stripped, maxsplit=1)[0].strip())
    return lines


def mailgent_argv(line: str) -> list[str] | None:
    """The arguments after `mailgent-mcp` in a line, up to a redirection or pipe; None if it has none."""
    words = shlex.split(line)
    if "mailgent-mcp" not in words:
        return None
    argv = words[words.index("mailgent-mcp") + 1:]
    for stop in ("<", "|", ">"):
        if stop in argv:
            argv = argv[:argv.index(stop)]
    return argv


# Run in this order, in one data folder, by test_the_readme_commands_run: line -> (stdin, expected in stdout).
RUN: dict[str, tuple[str, str]] = {
    "mailgent-mcp vault put github --type login --username bot@example.com --url https://github.com --password":
        ("pw-from-stdin\n", "github"),
    "mailgent-mcp vault put github --secret": (SEED_RFC + "\n", "github"),
    "mailgent-mcp vault put github --qr enrol.png": ("", "github"),
    "mailgent-mcp vault totp github": ("", " s left"),
    "mailgent-mcp vault get github": ("", "bot@example.com"),
    "mailgent-mcp vault get github --field password": ("", "pw-from-stdin"),
    "mailgent-mcp vault put github --password --backup-codes": ("pw-from-stdin\nc1-x c2-y, c3-z\n", "3 unused"),
    "mailgent-mcp vault backup-codes github": ("", "c2-y"),
    "mailgent-mcp vault put signup --username bot@example.com --generate-password 20": ("", "Generated password"),
    "mailgent-mcp vault list": ("", "github"),
    "mailgent-mcp vault import < export.txt": (URI + "\n", "Example"),
    "printf '%s\\n%s\\n' \"$PASSWORD\" \"$OTPAUTH_URI\" | mailgent-mcp vault put svc --type login --password --secret":
        ("", "svc"),
    "mailgent-mcp vault rm github": ("", "github"),
    "mailgent-mcp audit tail": ("", "put"),
    "mailgent-mcp audit verify": ("", "intact"),
    "mailgent-mcp token": ("", ""),
    "mailgent-mcp token --rotate": ("", ""),
    "mailgent-mcp inbox list": ("", "work"),
    "mailgent-mcp inbox status": ("", "work"),
    "mailgent-mcp inbox read --from github.com --unread --since 10m --json": ("", "[]"),
    "mailgent-mcp inbox read --subject verify --mark-read": ("", "No cached messages match"),
    "mailgent-mcp inbox reindex": ("", "Re-extracted 0"),
    "mailgent-mcp inbox purge": ("", "Purged 0"),
    "mailgent-mcp inbox purge --older-than 7d": ("", "Purged 0"),
    "mailgent-mcp inbox trust work": ("", "trusts: no authserv-id"),
    "mailgent-mcp inbox trust work --add mx.example.net": ("", "trusts: mx.example.net"),
    "mailgent-mcp inbox remove work": ("", "removed"),
    "printf '%s\\n%s\\n' \"$NEW_PASSPHRASE\" \"$NEW_PASSPHRASE\" | mailgent-mcp vault passwd --to passphrase --yes":
        ("", "MAILGENT_PASSPHRASE"),
}

# Parsed here by the real CLI, and run by the test named (a live server, the network, or forever).
ELSEWHERE: dict[str, str] = {
    "bash scripts/run.sh": "test_the_readme_run_command_shows_the_login, below",
    "bash scripts/test.sh": ".ci/run, which is this suite",
    "bash scripts/setup.sh": "scripts/run.sh and scripts/test.sh, which call it",
    ". .venv/bin/activate": "scripts/setup.sh, which makes it",
    "mailgent-mcp serve": "tests/test_mcp_stdio.py",
    "mailgent-mcp serve --transport http": "tests/test_mcp_http.py",
    "mailgent-mcp serve --transport sse": "tests/test_mcp_http.py",
    "mailgent-mcp vault totp github --watch": "tests/test_cli.py (it runs until interrupted)",
    "mailgent-mcp vault passwd --to passphrase": "tests/test_vault_seed_input.py, at a real terminal (pty)",
    "mailgent-mcp audit acknowledge": "tests/test_vault_tamper.py (it needs a broken audit log)",
    "mailgent-mcp inbox sync": "tests/test_inbox_cli.py, against Dovecot",
    "mailgent-mcp inbox add gmail --host imap.gmail.com --username agent@gmail.com": "tests/test_inbox_cli.py",
    "mailgent-mcp inbox add fastmail --host imap.fastmail.com --username agent@fastmail.com": "tests/test_inbox_cli.py",
    "mailgent-mcp inbox add lab --host 127.0.0.1 --port 143 --security starttls --username bot --ca ca.pem":
        "tests/test_inbox_cli.py, against Dovecot with its test CA",
}


def test_every_readme_command_is_known_to_this_test() -> None:
    lines = shell_lines()
    assert len(lines) >= 30, "the README's shell blocks were not found"
    unknown = [line for line in lines if line not in RUN and line not in ELSEWHERE
               and not line.startswith(".venv/bin/python benchmarks/")]
    assert not unknown, f"README commands this test does not cover (add them to RUN or ELSEWHERE): {unknown}"
    stale = [line for line in [*RUN, *ELSEWHERE] if line not in lines]
    assert not stale, f"commands listed here but gone from the README: {stale}"


@pytest.mark.parametrize("line", [line for line in shell_lines() if mailgent_argv(line) is not None])
def test_every_documented_mailgent_command_parses(line: str) -> None:
    argv = mailgent_argv(line)
    assert argv is not None
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"the CLI rejects the README's `{line}` (exit {exc.code})")


def test_the_readme_commands_run(home: Path) -> None:
    save_account(home, ImapAccount(name="work", host="imap.example.test", port=993, username="agent@example.test"))
    env = clean_env(home, PASSWORD="pw-2", OTPAUTH_URI=URI, NEW_PASSPHRASE="plum velvet harbor cactus")
    (home.parent / "enrol.png").write_bytes(encode(enrolment_page(qr_image(URI)), "PNG"))
    for line, (stdin, expected) in RUN.items():
        done = subprocess.run(["bash", "-c", line.replace("mailgent-mcp", f"{sys.executable} -m mailgent_mcp")
                               .replace("< export.txt", "")], input=stdin, capture_output=True, text=True,
                              env=env, timeout=60, cwd=home.parent)
        assert done.returncode == 0, f"README command `{line}` failed: {done.stderr}"
        assert expected in done.stdout + done.stderr, f"`{line}` did not print {expected!r}: {done.stdout}"


def test_the_readme_benchmark_commands_exist_and_start() -> None:
    commands = [line for line in shell_lines() if line.startswith(".venv/bin/python benchmarks/")]
    assert len(commands) >= 4
    for line in commands:
        script = ROOT / shlex.split(line)[1]
        assert script.is_file(), line
        done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60,
                              cwd=ROOT)
        assert done.returncode == 0 and "usage" in done.stdout, f"`{line}` --help failed: {done.stderr}"
        flags = [w for w in shlex.split(line)[2:] if w.startswith("--")]
        assert all(flag in done.stdout for flag in flags), f"`{line}` uses a flag the script lacks"


def test_the_readme_run_command_shows_the_login() -> None:
    """scripts/run.sh as the README gives it; its set-up finds .venv installed and leaves it alone, and a
    5-second TOTP period keeps the second login's wait for a fresh code short."""
    assert "bash scripts/run.sh" in shell_lines()
    installed = (ROOT / ".venv" / ".mailgent-installed").stat().st_mtime_ns
    done = subprocess.run(["bash", "scripts/run.sh", "--totp-period", "5"], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert (ROOT / ".venv" / ".mailgent-installed").stat().st_mtime_ns == installed  # no reinstall mid-suite
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert re.search(r"logged in with password and TOTP \d{6}", done.stdout)
    assert "chain intact" in done.stdout
