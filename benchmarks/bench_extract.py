"""Extraction on the labelled verification corpus: accuracy, and what it adds to parsing.

    .venv/bin/python benchmarks/bench_extract.py            # 9 rounds
    .venv/bin/python benchmarks/bench_extract.py --quick    # 3 rounds

(a) Accuracy: each mail of tests/data/verification goes through `parse_message` (mail-parser,
    then `extract`); a mail's codes are exact when the whole ranked list equals its label,
    its link is right when the first link's kind and URL equal the label; a false code is
    any code returned that its label does not list.
(b) Speed: in each round, every corpus mail (and, on a line of its own, a 300 KB marketing
    mail) is parsed by `mailparser.parse_from_bytes` alone; then parsed and extracted as the
    parser workers do it, by `parse_chunk` in chunks of 25 (an IMAP fetch batch of 50
    split over the 2 workers: mail-parser reads a chunk, then extraction runs on it);
    then one message at a time by `parse_message` (a mail pushed alone). Both trust the
    corpus's receiving server (mx.mailgent.test) and are given a DKIM key lookup with no
    keys, so that a signed mail would be checked without DNS (the corpus carries none). All
    in this process, after an untimed warm-up. Medians of the rounds; the ratio is that time over
    mail-parser's. Extraction is pure Python; the target is on one message at a time.
It prints a verdict on the target and asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import mailparser

from mailgent_mcp.inbox.dkim import StaticKeyLookup
from mailgent_mcp.inbox.imap import FETCH_BATCH
from mailgent_mcp.inbox.parse import PARSE_WORKERS, parse_chunk, parse_message

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "verification"
sys.path.insert(0, str(ROOT))
RECEIVER = ("mx.mailgent.test",)  # the authserv-id of the corpus's receiving server
NO_DNS = StaticKeyLookup({})  # DKIM keys: none, and never a DNS query


def accuracy() -> None:
    entries = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))
    exact = links = false_codes = with_code = 0
    misses = []
    for entry in entries:
        found = parse_message((CORPUS / entry["file"]).read_bytes(), RECEIVER, key_lookup=NO_DNS).extraction
        assert found is not None
        codes = [c.code for c in found.codes]
        first = {"kind": found.links[0].kind, "url": found.links[0].url} if found.links else None
        exact += codes == entry["codes"]
        links += first == entry["first_link"]
        false_codes += sum(1 for c in codes if c not in entry["codes"])
        with_code += bool(entry["codes"])
        if codes != entry["codes"] or first != entry["first_link"]:
            misses.append(entry["file"])
    n = len(entries)
    print(f"corpus: {n} mails ({with_code} with a code, {n - with_code} without)")
    print(f"exact codes   {exact}/{n} = {100 * exact / n:.1f}%")
    print(f"first link    {links}/{n} = {100 * links / n:.1f}%")
    print(f"false codes   {false_codes}")
    if misses:
        print("misses: " + ", ".join(misses))


def timed(fn: Callable[[bytes], object], mails: Sequence[bytes]) -> float:
    start = time.perf_counter()
    for raw in mails:
        fn(raw)
    return time.perf_counter() - start


TARGET = 1.7  # parse + extract, one message at a time, at most 1.7x the parse alone
CHUNK = -(-FETCH_BATCH // PARSE_WORKERS)  # what a parser worker gets of a fetch batch


def in_chunks(mails: Sequence[bytes]) -> None:
    for at in range(0, len(mails), CHUNK):
        parse_chunk(mails[at:at + CHUNK], RECEIVER, True, NO_DNS)


def one_at_a_time(mails: Sequence[bytes]) -> None:
    for raw in mails:
        parse_message(raw, RECEIVER, key_lookup=NO_DNS)


def rounds_of(fn: Callable[[Sequence[bytes]], object], mails: Sequence[bytes], rounds: int) -> list[float]:
    return [timed_all(fn, mails) for _ in range(rounds)]


def timed_all(fn: Callable[[Sequence[bytes]], object], mails: Sequence[bytes]) -> float:
    start = time.perf_counter()
    fn(mails)
    return time.perf_counter() - start


def speed(rounds: int) -> None:
    from tests.test_extract import marketing_html

    corpus = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))]
    big = [("From: shop@esp.test\r\nSubject: Deals\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            + marketing_html("583920")).encode()]
    print(f"\nspeed: median of {rounds} rounds, in one process")
    print(f"{'mails':<24}{'mail-parser alone':>20}{'parse + extract':>20}{'ratio':>8}")
    ratios: dict[str, float] = {}
    ways: list[tuple[str, Callable[[Sequence[bytes]], object]]] = [
        (f"in chunks of {CHUNK}", in_chunks), ("one at a time", one_at_a_time)]
    for label, mails in ((f"corpus ({len(corpus)})", corpus), ("300 KB marketing (1)", big)):
        for _, way in ways:  # warm-up: imports, the Public Suffix List, regex compilation
            way(mails)
        timed(mailparser.parse_from_bytes, mails)
        times: dict[str, list[float]] = {"mail-parser": []} | {name: [] for name, _ in ways}
        for _ in range(rounds):  # interleaved, so that a slow moment of the machine hits all three
            times["mail-parser"].append(timed(mailparser.parse_from_bytes, mails))
            for name, way in ways:
                times[name].append(timed_all(way, mails))
        b = statistics.median(times["mail-parser"])
        for name, _ in ways if len(mails) > 1 else ways[1:]:
            o = statistics.median(times[name])
            print(f"{label:<24}{len(mails) / b:>14,.0f} msg/s{len(mails) / o:>14,.0f} msg/s{o / b:>7.2f}x   {name}")
            if len(mails) > 1:
                ratios[name] = o / b
    chunked, alone = ratios[ways[0][0]], ratios[ways[1][0]]
    print(f"\nparse + extract on the corpus, one message at a time: {alone:.2f}x mail-parser alone (target "
          f"{TARGET}x): {'met' if alone <= TARGET else 'MISSED'}; as the parser workers run it ({ways[0][0]}): "
          f"{chunked:.2f}x")


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--quick", action="store_true")
    rounds = 3 if args.parse_args().quick else 9
    print(f"mailgent-mcp extraction benchmark; Python {platform.python_version()}, "
          f"mail-parser {importlib.metadata.version('mail-parser')}, selectolax {importlib.metadata.version('selectolax')}")
    accuracy()
    speed(rounds)


if __name__ == "__main__":
    main()
