"""Key changes under concurrency and crashes: the vault always opens with a key on disk or in the environment.

Two `vault passwd` runs at once, many times over, through the real CLI; and a key change
killed with SIGKILL at each of its steps (tests/helpers/vault_worker.py pauses there and
the test kills it). After every round the vault must open with the key the outcome says,
master.key must be that key when the vault is sealed with the file, and no run may claim
"nothing was changed" when it changed the key.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mailgent_mcp.vault.entries import Vault

from .conftest import clean_env, db_rows, run_cli
from .helpers.processes import Spawn, spawn  # noqa: F401 - spawn: a fixture

pytestmark = pytest.mark.slow

PASSPHRASE = "amber quiet river stone"
OTHER_PASSPHRASE = "plum velvet harbor cactus"


def _start(home: Path, *args: str, stdin: str = "", **env: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "mailgent_mcp", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(home, **env))
    assert proc.stdin is not None
    proc.stdin.write(stdin)
    proc.stdin.close()
    return proc


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    assert proc.stdout is not None and proc.stderr is not None
    proc.wait(timeout=120)
    return proc.returncode, proc.stdout.read() + proc.stderr.read()


def _kind(home: Path) -> str:
    [(kind,)] = db_rows(home, "SELECT kek_kind FROM keyring")
    return str(kind)


def _opens(home: Path, **env: str) -> bool:
    result = run_cli(home, "vault", "get", "x", "--field", "password", env=clean_env(home, **env))
    return result.returncode == 0 and result.stdout == "p\n"


def _assert_refusal_is_truthful(rc: int, text: str) -> None:
    if rc != 0:
        assert "Nothing was changed" in text or "nothing was changed" in text, text
        assert "internal error" not in text, text


def test_two_key_file_changes_at_once_never_lose_the_vault(home: Path) -> None:
    assert run_cli(home, "vault", "put", "x", "--password", stdin="p\n").returncode == 0
    for round_ in range(15):
        procs = [_start(home, "vault", "passwd", "--to", "keyfile") for _ in range(2)]
        results = [_finish(p) for p in procs]
        assert any(rc == 0 for rc, _ in results), results
        for rc, text in results:
            _assert_refusal_is_truthful(rc, text)
        assert _opens(home), f"round {round_}: master.key does not open the vault ({results})"
        assert not list(home.glob("master.key.new*")), f"round {round_}: a new key file was left behind"


def test_key_file_and_passphrase_changes_at_once_leave_the_vault_under_the_winner(home: Path) -> None:
    assert run_cli(home, "vault", "put", "x", "--password", stdin="p\n").returncode == 0
    for round_ in range(8):
        if _kind(home) == "passphrase":  # back to the key file for the next round
            assert run_cli(home, "vault", "passwd", "--to", "keyfile",
                           env=clean_env(home, MAILGENT_PASSPHRASE=PASSPHRASE)).returncode == 0
        to_file = _start(home, "vault", "passwd", "--to", "keyfile")
        to_phrase = _start(home, "vault", "passwd", "--to", "passphrase", "--yes", stdin=f"{PASSPHRASE}\n" * 2)
        results = {"keyfile": _finish(to_file), "passphrase": _finish(to_phrase)}
        for rc, text in results.values():
            _assert_refusal_is_truthful(rc, text)
        kind = _kind(home)
        assert results[kind][0] == 0, f"round {round_}: sealed with {kind}, whose change reported failure"
        if kind == "keyfile":
            assert _opens(home), f"round {round_}"
        else:
            assert _opens(home, MAILGENT_PASSPHRASE=PASSPHRASE), f"round {round_}"
            assert not (home / "master.key").exists()


@pytest.mark.parametrize("step", ["written", "committed", "renamed"])
def test_a_key_change_killed_at_each_step_leaves_a_vault_that_opens(home: Path, spawn: Spawn, step: str) -> None:
    assert run_cli(home, "vault", "put", "x", "--password", stdin="p\n").returncode == 0
    old_key = (home / "master.key").read_bytes()
    worker = spawn(home, "passwd", "keyfile", "--pause-at", step)
    worker.expect("at")
    worker.proc.send_signal(signal.SIGKILL)
    worker.finish()
    assert _opens(home), run_cli(home, "vault", "list").stderr
    new_key = (home / "master.key").read_bytes()
    assert (new_key == old_key) == (step == "written")  # before the commit the old key stays; after, the new
    assert not list(home.glob("master.key.new*")) or step == "written"  # a change cut before its commit: inert
    # ... and the next change clears what a killed one left.
    assert run_cli(home, "vault", "passwd", "--to", "keyfile").returncode == 0
    assert not list(home.glob("master.key.new*")) and _opens(home)


async def test_a_change_by_another_process_since_unlock_is_refused_and_changes_nothing(home: Path) -> None:
    async with await Vault.open(home, environ={}) as stale:
        await stale.put("x", {"password": "p"})
        assert run_cli(home, "vault", "passwd", "--to", "keyfile").returncode == 0
        current = (home / "master.key").read_bytes()
        with pytest.raises(Exception, match="Another process changed the vault key"):
            await stale.change_key("keyfile")
        assert (home / "master.key").read_bytes() == current
    assert _opens(home)
