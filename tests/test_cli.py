"""The command line, run as a real subprocess on a real data folder: output and exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mailgent_mcp.cli.main import build_parser

from .conftest import SEED_80, SEED_RFC, clean_env, db_exec, run_cli


def _ok(home: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None) -> str:
    result = run_cli(home, *args, stdin=stdin, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_put_reads_password_and_seed_from_stdin_not_argv(home: Path) -> None:
    out = _ok(home, "vault", "put", "github", "--type", "login", "--username", "bot@example.com",
              "--url", "https://github.com", "--password", "--secret", stdin=f"s3cret pass\n{SEED_80}\n")
    assert "Stored 'github' (LOGIN" in out and "WEAK: 80-bit seed" in out
    shown = _ok(home, "vault", "get", "github")
    assert "username: bot@example.com" in shown and "password: ********" in shown and "s3cret" not in shown
    assert _ok(home, "vault", "get", "github", "--field", "password") == "s3cret pass\n"
    assert "s3cret pass" in _ok(home, "vault", "get", "github", "--reveal")


def test_no_option_takes_a_secret_value_on_the_command_line() -> None:
    put = build_parser().parse_args(["vault", "put", "x", "--password", "--secret"])
    assert put.password is True and put.secret is True  # flags that ask, not options that take the value
    with pytest.raises(SystemExit):
        build_parser().parse_args(["vault", "put", "x", "--password", "hunter2"])


def test_set_refuses_password_on_the_command_line(home: Path) -> None:
    result = run_cli(home, "vault", "put", "x", "--set", "password=hunter2")
    assert result.returncode == 2 and "never taken from the command line" in result.stderr


def test_totp_prints_code_and_seconds_left(home: Path) -> None:
    _ok(home, "vault", "put", "svc", "--secret", stdin=SEED_RFC + "\n")
    out = _ok(home, "vault", "totp", "svc")
    assert re.fullmatch(r"\d{6}  \(\d{1,2} s left\)\n", out), out
    data = json.loads(_ok(home, "vault", "totp", "svc", "--json"))
    assert set(data) >= {"code", "remaining", "period", "digits", "algorithm", "expires_at"}
    assert 1 <= data["remaining"] <= 30


def test_totp_with_base32_options(home: Path) -> None:
    _ok(home, "vault", "put", "svc", "--secret", "--algorithm", "sha256", "--digits", "8", "--period", "60",
        stdin=SEED_RFC + "\n")
    data = json.loads(_ok(home, "vault", "get", "svc", "--json"))
    assert data["totp"]["algorithm"] == "SHA256" and data["totp"]["digits"] == 8 and data["totp"]["period"] == 60


def test_watch_on_a_pipe_prints_one_line_per_code(home: Path) -> None:
    import subprocess
    import sys

    _ok(home, "vault", "put", "svc", "--secret", stdin=SEED_RFC + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "mailgent_mcp", "vault", "totp", "svc", "--watch"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(home))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert re.fullmatch(r"\d{6}  \(\d{1,2} s left\)\n", line), line
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_list_and_rm(home: Path) -> None:
    _ok(home, "vault", "put", "b", "--notes", "x")
    _ok(home, "vault", "put", "a", "--secret", stdin=SEED_RFC + "\n")
    listing = _ok(home, "vault", "list")
    assert [line.split()[0] for line in listing.splitlines()] == ["a", "b"]
    assert "totp" in listing.splitlines()[0]
    assert json.loads(_ok(home, "vault", "list", "a", "--json"))[0]["name"] == "a"
    assert "Deleted 'a'" in _ok(home, "vault", "rm", "a", "--yes")
    assert "No entries starting with 'a'" in _ok(home, "vault", "list", "a")


@pytest.mark.parametrize(
    ("args", "stdin", "code", "words"),
    [
        (["vault", "get", "missing"], "", 4, "No vault entry named 'missing'"),
        (["vault", "totp", "missing"], "", 4, "vault put"),
        (["vault", "rm", "missing", "--yes"], "", 4, "No vault entry"),
        (["vault", "put", "x", "--secret"], "0000\n", 2, "not base32"),
        (["vault", "put", "x", "--secret"], "", 2, "standard input"),
        (["vault", "get", "x", "--field", "secret"], "", 2, "never leaves the vault"),
    ],
    ids=["get-missing", "totp-missing", "rm-missing", "bad-seed", "stdin-ended", "seed-field"],
)
def test_errors_have_reliable_exit_codes(home: Path, args: list[str], stdin: str, code: int, words: str) -> None:
    result = run_cli(home, *args, stdin=stdin)
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith("mailgent-mcp: ") and words in result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_passphrase_exits_3(home: Path) -> None:
    env = clean_env(home, MAILGENT_PASSPHRASE="amber quiet river stone")
    _ok(home, "vault", "put", "x", "--notes", "n", env=env)
    result = run_cli(home, "vault", "list", env=clean_env(home, MAILGENT_PASSPHRASE="wrong"))
    assert result.returncode == 3 and "Vault locked" in result.stderr


def test_passwd_switches_to_a_passphrase_read_from_stdin(home: Path) -> None:
    _ok(home, "vault", "put", "x", "--password", stdin="p\n")
    out = _ok(home, "vault", "passwd", "--to", "passphrase", "--yes", stdin="plum velvet harbor cactus\n" * 2)
    assert "MAILGENT_PASSPHRASE" in out
    env = clean_env(home, MAILGENT_PASSPHRASE="plum velvet harbor cactus")
    assert _ok(home, "vault", "get", "x", "--field", "password", env=env) == "p\n"
    assert run_cli(home, "vault", "list").returncode == 3


TOKEN_LINE = re.compile(r"mgt_[A-Za-z0-9_-]{40,}\n")


@pytest.mark.parametrize("rotate", [False, True], ids=["token", "token-rotate"])
def test_token_prints_only_the_token_on_stdout_and_explains_on_stderr(home: Path, rotate: bool) -> None:
    # So that `TOKEN=$(mailgent-mcp token)` captures the token and nothing else.
    if rotate:
        _ok(home, "token")
    made = run_cli(home, "token", *(["--rotate"] if rotate else []))
    assert made.returncode == 0, made.stderr
    assert TOKEN_LINE.fullmatch(made.stdout), made.stdout
    token = made.stdout.strip()
    assert "Authorization: Bearer <token>" in made.stderr and "shown only now" in made.stderr
    assert ("stops working" in made.stderr) is rotate
    assert token not in made.stderr
    script = f'TOKEN=$({sys.executable} -m mailgent_mcp token --rotate) && printf "%s" "$TOKEN"'
    captured = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=clean_env(home),
                              timeout=60)
    assert captured.returncode == 0, captured.stderr
    assert TOKEN_LINE.fullmatch(captured.stdout + "\n") and captured.stdout != token


def test_token_refuses_to_replace_a_token_without_rotate_and_prints_nothing_on_stdout(home: Path) -> None:
    first = _ok(home, "token").strip()
    again = run_cli(home, "token")
    assert again.returncode == 2 and again.stdout == ""
    assert "--rotate" in again.stderr and first not in again.stderr


def test_audit_tail_and_verify_detect_an_edited_row(home: Path) -> None:
    _ok(home, "vault", "put", "x", "--password", stdin="p\n")
    _ok(home, "vault", "get", "x")
    tail = _ok(home, "audit", "tail")
    assert re.search(r"put\s+x\s+cli\s+ok", tail) and re.search(r"get\s+x\s+cli\s+ok", tail)
    assert "intact" in _ok(home, "audit", "verify")
    db_exec(home, "UPDATE audit SET outcome = 'not_found' WHERE op = 'get'")
    result = run_cli(home, "audit", "verify")
    assert result.returncode == 6 and "altered" in result.stdout


@pytest.mark.parametrize("which", ["first", "middle", "last"])
def test_audit_verify_detects_a_deleted_row(home: Path, which: str) -> None:
    for i in range(4):
        _ok(home, "vault", "put", f"e{i}", "--notes", "n")
    seq = {"first": "(SELECT MIN(seq) FROM audit)", "middle": "3", "last": "(SELECT MAX(seq) FROM audit)"}[which]
    db_exec(home, f"DELETE FROM audit WHERE seq = {seq}")
    result = run_cli(home, "audit", "verify")
    assert result.returncode == 6 and "BROKEN" in result.stdout


def test_import_google_authenticator_export(home: Path) -> None:
    cases = json.loads((Path(__file__).parent / "data" / "otpauth_uri_cases.json").read_text())
    migration = next(c["uri"] for c in cases if c["id"] == 35)
    out = _ok(home, "vault", "import", "--prefix", "ga/", stdin=migration + "\n")
    assert "Imported 2 seed(s); skipped 0." in out
    names = [e["name"] for e in json.loads(_ok(home, "vault", "list", "--json"))]
    assert names == ["ga/Example:alice@example.com", "ga/bob@example.org"]
    again = run_cli(home, "vault", "import", "--prefix", "ga/", stdin=migration + "\n")
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.mark.demo
def test_demo_logs_in_through_mcp(home: Path) -> None:
    # A 5-second TOTP period: the second login waits for a fresh code, seconds instead of up to 30.
    out = _ok(home, "demo", "--totp-period", "5")
    assert re.search(r"MCP server up over stdio, SMTP inbox on 127\.0\.0\.1:\d+; tools: vault_put, .*inbox_wait", out)
    assert re.search(r"inbox_address gave agent\+[0-9a-f]{8}@mailgent\.localhost; vault_put made a 20-character", out)
    assert re.search(r"inbox_wait returned the mail that was already there after [\d.]+ s: code \d{6} "
                     r"\(from the body", out)
    assert "address verified" in out and "vault_put read the seed from the QR code" in out
    assert "(SHA1, 6 digits, 5 s)" in out  # the service's period, as the QR code's URI gave it
    assert "2FA on: confirmed with code" in out and "the service gave 8 recovery codes" in out
    assert re.search(r"logged in with password and TOTP \d{6} \(\d+ s left\)", out)
    assert "the same code again is refused (HTTP 401)" in out
    assert re.search(r"logged in with recovery code [0-9a-f]{4}-[0-9a-f]{4} \(7 left\)", out)
    assert "by mcp:mailgent-demo; chain intact" in out
    folder = Path(re.search(r"data folder: (\S+)", out).group(1))  # type: ignore[union-attr]
    assert not folder.exists() and "data folder kept" not in out  # the throw-away folder is removed


@pytest.mark.demo
def test_demo_keep_leaves_the_folder_and_the_service_up_until_ctrl_c(tmp_path: Path) -> None:
    import json
    import signal
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    folder = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-m", "mailgent_mcp", "--home", str(folder), "demo", "--keep",
                             "--totp-period", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env(tmp_path / "unused"))
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        out = "".join(lines)
        assert "logged in with password and TOTP" in out, out + (proc.stderr.read() if proc.poll() else "")
        url = re.search(r"sample service stays up at (http://\S+);", out).group(1)  # type: ignore[union-attr]
        assert f"MAILGENT_HOME={folder} MAILGENT_SMTP_LISTEN=127.0.0.1:" in out
        request = urllib.request.Request(f"{url}/login", data=json.dumps({"email": "x@y.z"}).encode(), method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 401  # up and answering
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and f"data folder kept: {folder}" in rest
    assert (folder / "vault.db").exists() and (folder / "master.key").exists()


def test_module_and_console_script_agree(home: Path) -> None:
    import shutil
    import subprocess

    script = shutil.which("mailgent-mcp", path=str(Path(__import__("sys").executable).parent))
    assert script is not None, "the mailgent-mcp console script is not installed in this environment"
    out = subprocess.run([script, "--version"], capture_output=True, text=True, env=clean_env(home), timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("mailgent-mcp ")

