"""Keep tests/slow_tests.txt, the tests the fast lane leaves out because each takes over half a second.

    .venv/bin/python -m pytest --durations=0 -q ... > durations.txt
    .venv/bin/python scripts/slow_tests.py durations.txt

Reads pytest's --durations report, adds a test's setup, call and teardown, and writes the
file: a test measured over the threshold is added, one measured under it is removed, and a
test the report does not cover (deselected, or not run) keeps its place. tests/conftest.py
marks the tests listed as `slow`.
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIST = ROOT / "tests" / "slow_tests.txt"
THRESHOLD_S = 0.5
LINE = re.compile(r"^(\d+(?:\.\d+)?)s (?:setup|call|teardown)\s+(\S.*)$")
HEADER = (f"# Tests over {THRESHOLD_S} s each on the 2-core development VM: tests/conftest.py marks them slow,\n"
          "# so that the fast lane (bash scripts/test.sh --fast) leaves them out. Written by\n"
          "# scripts/slow_tests.py from a pytest --durations=0 report.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("report", type=Path, help="the output of a pytest run with --durations=0")
    measured: dict[str, float] = defaultdict(float)
    for line in parser.parse_args().report.read_text(encoding="utf-8").splitlines():
        if match := LINE.match(line.strip()):
            measured[match.group(2)] += float(match.group(1))
    kept = [t for t in LIST.read_text(encoding="utf-8").splitlines() if t and not t.startswith("#")] \
        if LIST.exists() else []
    slow = {t for t in kept if t not in measured} | {t for t, s in measured.items() if s > THRESHOLD_S}
    LIST.write_text(HEADER + "".join(f"{t}\n" for t in sorted(slow)), encoding="utf-8")
    print(f"{len(slow)} slow tests in {LIST.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
