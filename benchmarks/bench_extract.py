"""Extraction on the labelled verification corpus: accuracy, and what it adds to parsing.

    .venv/bin/python benchmarks/bench_extract.py            # 9 rounds
    .venv/bin/python benchmarks/bench_extract.py --quick    # 3 rounds

(a) Accuracy: each mail of tests/data/verification goes through `parse_message` (mail-parser,
    then `extract`); a mail's codes are exact when the whole ranked list equals its label,
    its link is right when the first link's kind and URL equal the label; a false code is
    any code returned that its label does not list.
(b) Speed: in each round, every corpus mail (and, on a line of its own, a 300 KB marketing
    mail) is parsed by `mailparser.parse_from_bytes` alone, then by `parse_message` (the
    same parse plus extraction), one after the other in this process, after an untimed
    warm-up. Medians of the rounds; the ratio is parse+extract time over parse time.
It prints and asserts nothing.
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

from mailgent_mcp.parse import parse_message

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "verification"
sys.path.insert(0, str(ROOT))


def accuracy() -> None:
    entries = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))
    exact = links = false_codes = with_code = 0
    misses = []
    for entry in entries:
        found = parse_message((CORPUS / entry["file"]).read_bytes()).extraction
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


def speed(rounds: int) -> None:
    from tests.test_extract import marketing_html

    corpus = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))]
    big = [("From: shop@esp.test\r\nSubject: Deals\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            + marketing_html("583920")).encode()]
    print(f"\nspeed: median of {rounds} rounds, in one process")
    print(f"{'mails':<24}{'mail-parser alone':>20}{'parse + extract':>20}{'ratio':>8}")
    for label, mails in ((f"corpus ({len(corpus)})", corpus), ("300 KB marketing (1)", big)):
        timed(parse_message, mails)  # warm-up: imports, the Public Suffix List, regex compilation
        timed(mailparser.parse_from_bytes, mails)
        base, ours = [], []
        for _ in range(rounds):
            base.append(timed(mailparser.parse_from_bytes, mails))
            ours.append(timed(parse_message, mails))
        b, o = statistics.median(base), statistics.median(ours)
        print(f"{label:<24}{len(mails) / b:>14,.0f} msg/s{len(mails) / o:>14,.0f} msg/s{o / b:>7.2f}x")


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
