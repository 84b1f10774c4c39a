"""config.toml edited by several processes at once: every change is kept.

`inbox add`, `inbox remove` and `inbox trust --add` each read config.toml, change one
account and write it back. Run at the same moment (two operators, or a script adding
accounts in parallel), each must see the others' changes: none may be lost. The processes
here are real, released together by a barrier into the same function the commands call.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import tomllib
from pathlib import Path

import pytest

from mailgent_mcp.inbox.accounts import remove_account, save_account
from mailgent_mcp.inbox.imap import ImapAccount

pytestmark = pytest.mark.slow


def _save(home: str, name: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    barrier.wait()
    for round_ in range(5):
        save_account(Path(home), ImapAccount(name=f"{name}-{round_}", host=f"imap.{name}.test", port=993,
                                             username=f"agent@{name}.test"))


def _remove(home: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    barrier.wait()
    for round_ in range(5):
        remove_account(Path(home), f"old-{round_}")


def test_accounts_written_at_once_by_several_processes_are_all_kept(home: Path) -> None:
    for round_ in range(5):
        save_account(home, ImapAccount(name=f"old-{round_}", host="imap.old.test", port=993, username="a@old.test"))
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(6)
    procs = [ctx.Process(target=_save, args=(str(home), f"p{i}", barrier)) for i in range(5)]
    procs.append(ctx.Process(target=_remove, args=(str(home), barrier)))
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    accounts = tomllib.loads((home / "config.toml").read_text())["accounts"]
    expected = {f"p{i}-{r}" for i in range(5) for r in range(5)}
    assert expected <= set(accounts), f"lost by concurrent writes: {sorted(expected - set(accounts))}"
    assert not [name for name in accounts if name.startswith("old-")], "a removal was undone by a concurrent write"
    assert not [p.name for p in home.iterdir() if p.name.startswith(".config.toml")]
