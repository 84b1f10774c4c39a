"""One code per login: vault_totp never hands out a time step's code twice, and never one about to expire.

Services refuse a TOTP code that was already used, and a code typed with two seconds left
often arrives expired. The expected codes come from the RFC 6238 engine (otp.totp_at)
for the time step the answer says, not from the vault. Waits are driven by an injected
clock where a test is about the arithmetic, and by real time (short periods) where real
processes race.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from mailgent_mcp.mcp.server import build_server
from mailgent_mcp.mcp.vault_tools import VaultProvider
from mailgent_mcp.settings import Settings
from mailgent_mcp.vault import otp
from mailgent_mcp.vault.entries import Vault

from .conftest import SEED_RFC, clean_env, db_rows, ok

SEED = otp.parse_secret(SEED_RFC)


def step_of(expires_at: str, period: int) -> int:
    """The time step a code belongs to, from its expires_at (ISO 8601 UTC)."""
    end = datetime.strptime(expires_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    return int(end) // period - 1


class FakeTime:
    """A clock and a sleep that advances it, so waits cost no real time."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_the_default_never_hands_out_a_code_about_to_expire(home: Path) -> None:
    t = FakeTime(1_000_000_018.0)  # 2 s left in step 33,333,333
    async with await Vault.open(home, environ={}, clock=t.clock, sleep=t.sleep) as v:
        await v.put("svc", {"secret": SEED_RFC})
        code = await v.totp("svc")  # no min_remaining: the default
    assert code.remaining >= 5 and code.waited == pytest.approx(2.0)
    assert code.code == otp.totp_at(SEED, 1_000_000_020).code  # the next step's code


async def test_a_second_login_gets_the_next_code_not_the_same_one(home: Path) -> None:
    t = FakeTime(1_000_000_005.0)  # 25 s left
    async with await Vault.open(home, environ={}, clock=t.clock, sleep=t.sleep) as v:
        await v.put("svc", {"secret": SEED_RFC})
        first = await v.totp("svc")
        assert first.waited == 0 and first.code == otp.totp_at(SEED, 1_000_000_005).code
        second = await v.totp("svc")  # moments later: the current step was handed out
    assert second.code == otp.totp_at(SEED, 1_000_000_020).code != first.code
    assert second.waited == pytest.approx(15.0) and second.remaining == 30


async def test_unused_only_false_peeks_without_recording(home: Path) -> None:
    t = FakeTime(1_000_000_005.0)
    async with await Vault.open(home, environ={}, clock=t.clock, sleep=t.sleep) as v:
        await v.put("svc", {"secret": SEED_RFC})
        peeked = await v.totp("svc", unused_only=False)
        peeked_again = await v.totp("svc", unused_only=False)
        claimed = await v.totp("svc")  # the peeks recorded nothing: the current step is still free
        reused = await v.totp("svc", unused_only=False)  # and a peek shows a handed-out code all the same
    assert peeked.code == peeked_again.code == claimed.code == reused.code
    assert claimed.waited == 0 and t.slept == []


async def test_a_new_seed_is_not_held_back_by_the_old_seeds_ledger(home: Path) -> None:
    t = FakeTime(1_000_000_005.0)
    async with await Vault.open(home, environ={}, clock=t.clock, sleep=t.sleep) as v:
        await v.put("svc", {"secret": SEED_RFC})
        await v.totp("svc")
        await v.put("svc", {"secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"})  # re-enrolled
        fresh = await v.totp("svc")
    assert fresh.waited == 0
    assert fresh.code == otp.totp_at(otp.parse_secret("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"), 1_000_000_005).code


async def test_a_deleted_entry_takes_its_ledger_with_it(home: Path) -> None:
    async with await Vault.open(home, environ={}) as v:
        await v.put("svc", {"secret": SEED_RFC})
        await v.totp("svc")
        assert db_rows(home, "SELECT count(*) FROM totp_steps") == [(1,)]
        await v.delete("svc")
    assert db_rows(home, "SELECT count(*) FROM totp_steps") == [(0,)]


async def test_a_cancelled_wait_hands_nothing_out(home: Path) -> None:
    now = [1_000_000_005.0]
    blocked = asyncio.Event()

    async def never(seconds: float) -> None:
        blocked.set()
        await asyncio.Event().wait()  # until cancelled

    async with await Vault.open(home, environ={}, clock=lambda: now[0], sleep=never) as v:
        await v.put("svc", {"secret": SEED_RFC})
        await v.totp("svc")
        waiting = asyncio.create_task(v.totp("svc"))  # waits for the next step
        await blocked.wait()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        now[0] = 1_000_000_020.0  # the next step came; no one holds it
        nxt = await v.totp("svc")
    assert nxt.waited == 0 and nxt.code == otp.totp_at(SEED, 1_000_000_020).code
    assert db_rows(home, "SELECT count(*) FROM totp_steps") == [(2,)]


async def test_the_tool_reports_progress_while_it_waits_for_the_next_code(home: Path) -> None:
    """Over MCP with its defaults: a second call waits (a 2 s period keeps it short) and says so."""
    provider = VaultProvider(home, {})
    server = build_server(Settings(home=home), provider)
    updates: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append(progress)

    try:
        async with Client(server) as c:
            ok(await c.call_tool("vault_put", {"name": "fast", "data": {"secret": SEED_RFC}, "totp": {"period": 2}}))
            first = ok(await c.call_tool("vault_totp", {"name": "fast"}))
            second = ok(await c.call_tool("vault_totp", {"name": "fast"}, progress_callback=on_progress))
    finally:
        await provider.close()
    assert step_of(str(second["expires_at"]), 2) > step_of(str(first["expires_at"]), 2)
    assert float(str(second["waited"])) > 0 and updates


@pytest.mark.slow
async def test_two_server_processes_asking_at_once_get_different_time_steps(home: Path) -> None:
    """Two real `serve` processes on one data folder, one call each at the same moment (a 4 s period)."""
    async with await Vault.open(home, environ={}) as v:
        await v.put("shared", {"secret": SEED_RFC}, totp={"period": 4})

    def params() -> StdioServerParameters:
        return StdioServerParameters(command=sys.executable, args=["-m", "mailgent_mcp", "serve"],
                                     env=clean_env(home))

    async with Client(params(), read_timeout_seconds=60) as a, Client(params(), read_timeout_seconds=60) as b:
        for _ in range(3):
            got = await asyncio.gather(a.call_tool("vault_totp", {"name": "shared"}),
                                       b.call_tool("vault_totp", {"name": "shared"}))
            codes = [ok(r) for r in got]
            steps = [step_of(str(c["expires_at"]), 4) for c in codes]
            assert steps[0] != steps[1], codes
            seed = otp.parse_secret(SEED_RFC, period=4)
            for c, step in zip(codes, steps, strict=True):
                assert c["code"] == otp.totp_at(seed, step * 4).code  # the code of the step it claims
    rows = db_rows(home, "SELECT step FROM totp_steps")
    assert len(rows) == len({r[0] for r in rows}) >= 6


@pytest.mark.slow
def test_a_code_that_cannot_be_recorded_is_not_handed_out(home: Path) -> None:
    """Under another process's write lock the claim waits its busy timeout, then fails clearly: no code."""
    from .conftest import run_cli
    from .test_vault_audit_rows import write_lock_held

    assert run_cli(home, "vault", "put", "svc", "--secret", stdin=SEED_RFC + "\n").returncode == 0
    with write_lock_held(home):
        result = run_cli(home, "vault", "totp", "svc")
    assert result.returncode != 0 and "stayed locked" in result.stderr
    assert result.stdout == ""
    assert db_rows(home, "SELECT count(*) FROM totp_steps") == [(0,)]
