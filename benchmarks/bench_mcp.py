"""vault_totp over stdio and the server's cold start, each beside a trivial one-tool MCPServer.

Also vault_totp with its ledger of handed-out codes beside the same call without it.

    .venv/bin/python benchmarks/bench_mcp.py            # 7 rounds of 300 calls, 9 starts each
    .venv/bin/python benchmarks/bench_mcp.py --quick    # 3 rounds of 100 calls, 3 starts each

Both servers run as real subprocesses (`python -m mailgent_mcp serve` on a vault in a
temporary folder, and benchmarks/trivial_server.py), driven by the SDK's own Client over
stdio in the handshake era (mode="legacy": an initialize handshake, what clients use
today). Every measurement is made on both servers in the same run, their rounds or starts
interleaved so that noise on this shared 2-core machine falls on both alike, and printed
as a ratio ours/trivial against the issue's target (within 1.2x on both).

- Round trip: one connection per server, warm-up calls, then rounds of calls, each call
  timed with perf_counter. p50, p99 and calls/s are computed per round; the figure shown
  is the median over rounds. A call is what a client sees: the request, the tool, the
  response, and the client's check of structuredContent against the tool's outputSchema.
- The ledger: vault_totp as agents call it (each code recorded, so no one gets it twice)
  beside `unused_only=false` (the current code, not recorded), on two server processes on
  one vault, rounds interleaved. Every call asks for a different entry, so no call waits for
  a next time step (min_remaining=0 for the same reason); both sides open a seed per call.
- Cold start: from spawning the process to the first tools/list response (the handshake
  included), a new process each start; the median over starts. Also our server's start to
  its first vault_totp result (the client lists tools before a first call, as it must
  to check the structured result against the outputSchema).

It prints figures and asserts nothing; a tool call that fails stops it, as its timing
would mean nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult

SEED = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # RFC 6238 Appendix B, SHA-1: "12345678901234567890"
ENTRY = "rfc"
TARGET = 1.2
TRIVIAL_SERVER = Path(__file__).with_name("trivial_server.py")


@dataclass(frozen=True)
class Target:
    """A server to start and the one call to time on it."""

    label: str
    params: StdioServerParameters
    tool: str
    arguments: Callable[[], dict[str, Any]]  # the next call's arguments


@dataclass
class RoundTrips:
    """Per-round p50, p99 (seconds) and calls/s of one server's timed calls."""

    label: str
    p50s: list[float] = field(default_factory=list)
    p99s: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return statistics.median(self.p50s)

    @property
    def p99(self) -> float:
        return statistics.median(self.p99s)

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)


@dataclass
class Starts:
    """Seconds from spawn to a first response, one per new process."""

    label: str
    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank q-quantile of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def base_env() -> dict[str, str]:
    """What both servers get: PATH and HOME only (plus what the SDK passes on by itself)."""
    return {"PATH": os.environ.get("PATH", os.defpath), "HOME": os.environ.get("HOME", "/")}


def our_params(home: Path) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "mailgent_mcp", "serve"],
                                 env=base_env() | {"MAILGENT_HOME": str(home)})


def targets(home: Path) -> tuple[Target, Target]:
    """The trivial baseline and our server on a vault in home (the read path: no code recorded)."""
    trivial = Target(
        "trivial: code",
        StdioServerParameters(command=sys.executable, args=[str(TRIVIAL_SERVER)], env=base_env()),
        "code", lambda: {"name": ENTRY},
    )
    ours = Target("mailgent: vault_totp", our_params(home), "vault_totp",
                  lambda: {"name": ENTRY, "unused_only": False})
    return trivial, ours


def ledger_targets(home: Path, entries: int) -> tuple[Target, Target]:
    """vault_totp without and with its ledger, each call on an entry no call used before."""
    names = iter(f"ledger-{i:05d}" for i in range(entries))
    without = Target("vault_totp unused_only=false", our_params(home), "vault_totp",
                     lambda: {"name": next(names), "min_remaining": 0, "unused_only": False})
    with_ledger = Target("vault_totp (ledger)", our_params(home), "vault_totp",
                         lambda: {"name": next(names), "min_remaining": 0})
    return without, with_ledger


async def store_ledger_entries(home: Path, entries: int) -> None:
    """The entries the ledger rounds use, put through the vault directly (faster than over MCP)."""
    from mailgent_mcp.vault.entries import Vault

    async with await Vault.open(home, environ={}) as vault:
        for i in range(entries):
            await vault.put(f"ledger-{i:05d}", {"secret": SEED})


def connect(target: Target) -> Client:
    """A client that starts target's process and speaks the handshake era to it."""
    return Client(target.params, mode="legacy")


def checked(label: str, result: CallToolResult) -> CallToolResult:
    """The result, or stop the run: a failed call's timing is meaningless."""
    if result.is_error:
        text = " ".join(getattr(c, "text", "") for c in result.content)
        raise SystemExit(f"bench_mcp: {label} failed: {text}")
    return result


async def store_entry(ours: Target) -> str:
    """Put the RFC 6238 seed in the vault through the server itself; return a first code."""
    async with connect(ours) as client:
        checked("vault_put", await client.call_tool(
            "vault_put", {"name": ENTRY, "type": "LOGIN",
                          "data": {"username": "bench", "password": "bench-password", "secret": SEED}}))
        result = checked("vault_totp", await client.call_tool("vault_totp", {"name": ENTRY, "unused_only": False}))
        return str((result.structured_content or {}).get("code"))


async def round_trips(pair: tuple[Target, ...], calls: int, rounds: int, warmup: int) -> list[RoundTrips]:
    """Rounds of timed calls on one open connection per server, the servers' rounds interleaved."""
    results = [RoundTrips(t.label) for t in pair]
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(connect(t)) for t in pair]
        for target, client in zip(pair, clients, strict=True):
            await client.list_tools()
            for _ in range(warmup):
                checked(target.tool, await client.call_tool(target.tool, target.arguments()))
        for _ in range(rounds):
            for target, client, result in zip(pair, clients, results, strict=True):
                gc.collect()
                latencies = []
                start = time.perf_counter()
                for _ in range(calls):
                    arguments = target.arguments()
                    before = time.perf_counter()
                    outcome = await client.call_tool(target.tool, arguments)
                    latencies.append(time.perf_counter() - before)
                    checked(target.tool, outcome)
                elapsed = time.perf_counter() - start
                result.p50s.append(percentile(latencies, 0.50))
                result.p99s.append(percentile(latencies, 0.99))
                result.rates.append(calls / elapsed)
    return results


async def time_to_list(target: Target) -> float:
    """Seconds from spawn to the first tools/list response (handshake included)."""
    start = time.perf_counter()
    async with connect(target) as client:
        await client.list_tools(cache_mode="bypass")
        elapsed = time.perf_counter() - start
    return elapsed


async def time_to_call(target: Target) -> float:
    """Seconds from spawn to the first result of target's tool (the client lists tools first)."""
    start = time.perf_counter()
    async with connect(target) as client:
        checked(target.tool, await client.call_tool(target.tool, target.arguments()))
        elapsed = time.perf_counter() - start
    return elapsed


async def cold_starts(trivial: Target, ours: Target, starts: int) -> list[Starts]:
    """New processes, interleaved: trivial to tools/list, ours to tools/list, ours to vault_totp."""
    plan: list[tuple[Starts, Callable[[], Any]]] = [
        (Starts("trivial: tools/list"), lambda: time_to_list(trivial)),
        (Starts("mailgent: tools/list"), lambda: time_to_list(ours)),
        (Starts("mailgent: first vault_totp"), lambda: time_to_call(ours)),
    ]
    for _, measure in plan:  # untimed: bytecode caches and the page cache warm
        await measure()
    for _ in range(starts):
        for result, measure in plan:
            gc.collect()
            result.times.append(await measure())
    return [result for result, _ in plan]


async def run(rounds: int, calls: int, warmup: int, starts: int) -> None:
    with tempfile.TemporaryDirectory(prefix="mailgent-bench-mcp-") as tmp:
        trivial, ours = targets(Path(tmp) / "home")
        first_code = await store_entry(ours)
        trips = await round_trips((trivial, ours), calls, rounds, warmup)
        entries = 2 * (warmup + rounds * calls)
        await store_ledger_entries(Path(tmp) / "home", entries)
        ledger = await round_trips(ledger_targets(Path(tmp) / "home", entries), calls, rounds, warmup)
        boots = await cold_starts(trivial, ours, starts)
    print_report(trips, boots, rounds=rounds, calls=calls, warmup=warmup, starts=starts, first_code=first_code)
    print_ledger(ledger)


def print_report(trips: list[RoundTrips], boots: list[Starts], *, rounds: int, calls: int, warmup: int,
                 starts: int, first_code: str) -> None:
    base, ours = trips
    print(
        f"mailgent-mcp MCP benchmark: Python {platform.python_version()}, mcp {version('mcp')}, "
        f"{os.cpu_count()} CPUs; stdio, handshake era (mode=\"legacy\")"
    )
    print(f"seed: RFC 6238 SHA-1 {SEED} stored with vault_put; first vault_totp code {first_code}")
    print()
    print(f"round trip: {rounds} rounds of {calls} calls per server, interleaved, after {warmup} warm-up calls;")
    print("each figure is the median over rounds of that round's p50, p99 or calls/s")
    print(f"{'one tools/call':<30} {'calls/s':>9} {'p50':>10} {'p99':>10}")
    for r in trips:
        print(f"{r.label:<30} {r.rate:>9,.0f} {_duration(r.p50):>10} {_duration(r.p99):>10}")
    print(f"{'ratio ours/trivial':<30} {ours.rate / base.rate:>8.2f}x {ours.p50 / base.p50:>9.2f}x "
          f"{ours.p99 / base.p99:>9.2f}x")
    print()
    triv_list, ours_list, ours_call = boots
    print(f"cold start: spawn to first response, a new process each time; median of {starts} starts each, "
          "interleaved")
    print(f"{'from spawn to':<30} {'median':>9} {'min':>9} {'max':>9}")
    for b in boots:
        print(f"{b.label:<30} {b.median:>7.3f} s {min(b.times):>7.3f} s {max(b.times):>7.3f} s")
    print(f"{'ratio ours/trivial (tools/list)':<30} {ours_list.median / triv_list.median:>8.2f}x")
    print(f"(our server opens the vault before it reads stdin, so both of its lines include the unlock; "
          f"the first vault_totp adds {(ours_call.median - ours_list.median) * 1e3:.0f} ms)")
    print()
    print(_verdict("round trip p50", ours.p50 / base.p50))
    print(_verdict("round trip p99", ours.p99 / base.p99))
    slowdown = base.rate / ours.rate
    print(_verdict("round trip calls/s", slowdown,
                   shown=f"{ours.rate / base.rate:.2f}x trivial's, {slowdown:.2f}x the time per call"))
    print(_verdict("cold start to tools/list", ours_list.median / triv_list.median))


def print_ledger(trips: list[RoundTrips]) -> None:
    without, ledger = trips
    print()
    print("the ledger: each call on a fresh entry, min_remaining=0; two servers on one vault, rounds interleaved")
    print(f"{'one tools/call':<30} {'calls/s':>9} {'p50':>10} {'p99':>10}")
    for r in trips:
        print(f"{r.label:<30} {r.rate:>9,.0f} {_duration(r.p50):>10} {_duration(r.p99):>10}")
    print(f"{'ratio ledger/without':<30} {ledger.rate / without.rate:>8.2f}x {ledger.p50 / without.p50:>9.2f}x "
          f"{ledger.p99 / without.p99:>9.2f}x")
    print(_verdict("ledger round trip p50", ledger.p50 / without.p50))


def _verdict(what: str, ratio: float, shown: str | None = None) -> str:
    return f"{what}: {shown or f'{ratio:.2f}x'} (target {TARGET}x): {'met' if ratio <= TARGET else 'MISSED'}"


def _duration(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 100 calls and 3 starts each")
    args = parser.parse_args()
    if args.quick:
        asyncio.run(run(rounds=3, calls=100, warmup=20, starts=3))
    else:
        asyncio.run(run(rounds=7, calls=300, warmup=100, starts=9))
    return 0


if __name__ == "__main__":
    sys.exit(main())
