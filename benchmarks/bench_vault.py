"""What a TOTP code costs through the vault, against pyotp alone, and what an unlock costs.

    .venv/bin/python benchmarks/bench_vault.py            # 7 rounds
    .venv/bin/python benchmarks/bench_vault.py --quick    # 3 short rounds

All paths use one seed, the RFC 6238 SHA-1 seed. Each measurement runs several rounds
(after one untimed warm-up round) and reports the median of the rounds, because a
shared 2-core machine is noisy. The vault runs on a real vault.db in a temporary folder
with the package's own settings (WAL; FULL sync for puts, NORMAL for a read's audit row
and for the ledger of handed-out codes). vault.totp is timed without the ledger
(unused_only=False: a read) and with it (each code's time step recorded in a write
transaction, as agents call it). It prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import pyotp

from mailgent_mcp.vault import otp
from mailgent_mcp.vault.entries import Vault

SEED = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # RFC 6238 Appendix B, SHA-1: "12345678901234567890"
T0 = 1_234_567_890.0  # a fixed start time; each call moves one second on


@dataclass
class Result:
    """Per-round rates (calls per second) and, for timed calls, every call's latency in seconds."""

    label: str
    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def loop_rate(label: str, call: Callable[[float], object], calls: int, rounds: int) -> Result:
    """A tight loop of `calls` calls per round; the per-call latency is too short to time singly."""
    result = Result(label)
    for round_ in range(rounds + 1):
        gc.collect()
        start = time.perf_counter()
        for i in range(calls):
            call(T0 + i)
        elapsed = time.perf_counter() - start
        if round_:  # round 0 warms up
            result.rates.append(calls / elapsed)
    return result


async def timed_calls(label: str, call: Callable[[int], Awaitable[object]], calls: int, rounds: int) -> Result:
    """Each call timed on its own, so p50 and p99 come from real per-call latencies."""
    result = Result(label)
    serial = 0
    for round_ in range(rounds + 1):
        gc.collect()
        latencies = []
        start = time.perf_counter()
        for _ in range(calls):
            before = time.perf_counter()
            await call(serial)
            latencies.append(time.perf_counter() - before)
            serial += 1
        elapsed = time.perf_counter() - start
        if round_:
            result.rates.append(calls / elapsed)
            result.latencies += latencies
    return result


async def unlock_ms(home: Path, environ: Mapping[str, str], opens: int) -> float:
    """Median time of Vault.open on an existing vault, in ms (close is not timed)."""
    await (await Vault.open(home, environ=environ)).close()  # creates it, and warms up
    times = []
    for _ in range(opens):
        gc.collect()
        start = time.perf_counter()
        vault = await Vault.open(home, environ=environ)
        times.append(time.perf_counter() - start)
        await vault.close()
    return statistics.median(times) * 1000


async def run(rounds: int, code_calls: int, vault_calls: int, opens: int) -> None:
    parsed = otp.parse_secret(SEED)
    reference = pyotp.TOTP(SEED)
    baseline = loop_rate("pyotp.TOTP(seed).at(t)", reference.at, code_calls, rounds)
    engine = loop_rate("otp.totp_at(seed, t)", lambda t: otp.totp_at(parsed, t), code_calls, rounds)

    with tempfile.TemporaryDirectory(prefix="mailgent-bench-") as tmp:
        root = Path(tmp)
        async with await Vault.open(root / "codes", environ={}, actor="bench") as vault:
            await vault.put("rfc", {"username": "bench", "password": "bench-password", "secret": SEED}, "LOGIN")
            agree = (await vault.totp("rfc", at=T0)).code == otp.totp_at(parsed, T0).code == reference.at(T0)
            vault_totp = await timed_calls("vault.totp(name), no ledger",
                                           lambda _: vault.totp("rfc", unused_only=False), vault_calls, rounds)
            # Each call a time step of its own (computed for `at`, never waited for), each recorded.
            ledger = await timed_calls("vault.totp(name), ledger",
                                       lambda i: vault.totp("rfc", at=T0 + 30 * i, min_remaining=0),
                                       vault_calls, rounds)
            vault_put = await timed_calls(
                "vault.put(name, login+seed)",
                lambda i: vault.put(f"put-{i}", {"username": "u", "password": f"p{i}", "secret": SEED}, "LOGIN"),
                vault_calls, rounds,
            )
        key = base64.b64encode(os.urandom(32)).decode()
        unlocks = [
            ("master.key file (default)", await unlock_ms(root / "keyfile", {}, opens)),
            ("MAILGENT_MASTER_KEY", await unlock_ms(root / "envkey", {"MAILGENT_MASTER_KEY": key}, opens)),
            ("MAILGENT_PASSPHRASE (Argon2id)",
             await unlock_ms(root / "passphrase", {"MAILGENT_PASSPHRASE": "correct horse battery staple"}, opens)),
        ]

    print_report(rounds, [baseline, engine, vault_totp, ledger, vault_put], unlocks, agree, opens)


def print_report(rounds: int, results: list[Result], unlocks: list[tuple[str, float]], agree: bool,
                 opens: int) -> None:
    baseline = results[0].rate
    print(
        f"mailgent-mcp vault benchmark: median of {rounds} rounds; Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, pyotp {version('pyotp')}, {os.cpu_count()} CPUs"
    )
    print(f"seed: RFC 6238 SHA-1 {SEED}, 6 digits, 30 s; same code from all three paths: {'yes' if agree else 'NO'}")
    print()
    print(f"{'per call':<30} {'calls/s':>9} {'mean':>10} {'p50':>10} {'p99':>10} {'vs pyotp':>9}")
    for result in results:
        mean = _duration(1 / result.rate)
        p50, p99 = (_duration(result.percentile(q)) for q in (0.50, 0.99)) if result.latencies else ("-", "-")
        print(f"{result.label:<30} {result.rate:>9,.0f} {mean:>10} {p50:>10} {p99:>10} {baseline / result.rate:>8.1f}x")
    print("(vs pyotp: time per call relative to pyotp alone; p50/p99 only where each call is timed)")
    print()
    print(f"{'unlock: Vault.open with':<34} {'median':>10}   (of {opens} opens)")
    for label, ms in unlocks:
        print(f"{label:<34} {ms:>7.1f} ms")
    print()
    for result in results[1:]:
        ratio = baseline / result.rate
        word = "slower" if ratio >= 1 else "faster"
        factor = ratio if ratio >= 1 else 1 / ratio
        print(f"{result.label}: {result.rate:,.0f} calls/s = {factor:.1f}x {word} than pyotp alone")


def _duration(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 short rounds instead of 7 full ones")
    args = parser.parse_args()
    if args.quick:
        asyncio.run(run(rounds=3, code_calls=5_000, vault_calls=100, opens=3))
    else:
        asyncio.run(run(rounds=7, code_calls=50_000, vault_calls=500, opens=7))
    return 0


if __name__ == "__main__":
    sys.exit(main())
