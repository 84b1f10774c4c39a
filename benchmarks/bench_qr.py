"""Reading the enrolment QR code in a 1920x1080 page screenshot, beside zxing-cpp's own read_barcodes.

    .venv/bin/python benchmarks/bench_qr.py            # 9 rounds of 25 reads per image
    .venv/bin/python benchmarks/bench_qr.py --quick    # 3 rounds of 10

The screenshot is the tests' enrolment page (tests/qr_images.py: a 2FA settings page with
navigation, menus, text, form boxes and a logo, the QR code in its card at 4 pixels a
module), made here in memory, saved as PNG and as JPEG (quality 80). Each read is timed
on its own with perf_counter, from the file's bytes to the answer:

- ours: `qr.secret_from_image(data)`: format and size checks, decode to grey, QR codes
  only, the otpauth URI parsed and checked;
- the baseline: `zxingcpp.read_barcodes(Image.open(io.BytesIO(data)))`, the library's
  default call on the same bytes (Pillow decodes, every barcode format is searched);
- for scale, `read_barcodes` alone on the image already decoded (no file decoding).

The three are interleaved read by read, after one untimed round, so noise on this shared
2-core machine falls on all alike; p50 and p99 are nearest-rank over every timed read. It
prints a verdict against the target (ours under 100 ms at the median, per image) and
asserts only that every read found the code.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import zxingcpp
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests.qr_images

from mailgent_mcp.vault import qr
from tests.qr_images import encode, enrolment_page, qr_image

SEED = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # RFC 6238 Appendix B, SHA-1: "12345678901234567890"
URI = f"otpauth://totp/Example:alice@example.com?secret={SEED}&issuer=Example"
TARGET_MS = 100.0


@dataclass
class Timings:
    """Every timed read of one way of reading, in seconds."""

    label: str
    seconds: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ours(data: bytes) -> bool:
    return qr.secret_from_image(data) == URI


def baseline(data: bytes) -> bool:
    return any(code.text == URI for code in zxingcpp.read_barcodes(Image.open(io.BytesIO(data))))


def measure(data: bytes, rounds: int, reads: int) -> list[Timings]:
    """Ours, the baseline and read_barcodes on decoded pixels, interleaved read by read."""
    decoded = Image.open(io.BytesIO(data))
    decoded.load()
    ways: list[tuple[Timings, Callable[[], bool]]] = [
        (Timings("qr.secret_from_image(bytes)"), lambda: ours(data)),
        (Timings("read_barcodes(Image.open(bytes)) (baseline)"), lambda: baseline(data)),
        (Timings("read_barcodes(decoded image)"), lambda: bool(zxingcpp.read_barcodes(decoded))),
    ]
    for round_ in range(rounds + 1):
        gc.collect()
        for _ in range(reads):
            for timings, read in ways:
                start = time.perf_counter()
                found = read()
                elapsed = time.perf_counter() - start
                if not found:
                    raise SystemExit(f"{timings.label} did not find the code: the timing would mean nothing")
                if round_:  # round 0 warms up
                    timings.seconds.append(elapsed)
    return [timings for timings, _ in ways]


def report(name: str, data: bytes, rounds: int, reads: int) -> str:
    """Print one image's table; return its verdict line."""
    results = measure(data, rounds, reads)
    print(f"\n{name}: {len(data):,} bytes, {rounds * reads} timed reads each")
    print(f"{'':46} {'p50':>9} {'p99':>9}")
    for t in results:
        print(f"{t.label:46} {t.percentile(0.5) * 1000:6.1f} ms {t.percentile(0.99) * 1000:6.1f} ms")
    mine, base = results[0], results[1]
    print(f"{'ratio ours/baseline':46} {mine.percentile(0.5) / base.percentile(0.5):8.2f}x "
          f"{mine.percentile(0.99) / base.percentile(0.99):8.2f}x")
    p50 = mine.percentile(0.5) * 1000
    return f"verdict {name}: p50 {p50:.1f} ms (target under {TARGET_MS:.0f} ms): {'met' if p50 < TARGET_MS else 'MISSED'}"


def run(rounds: int, reads: int) -> None:
    page = enrolment_page(qr_image(URI, 4))
    images = {"PNG screenshot": encode(page, "PNG"), "JPEG screenshot (q80)": encode(page, "JPEG", quality=80)}
    print(f"mailgent-mcp QR enrolment benchmark: Python {platform.python_version()}, zxing-cpp {version('zxing-cpp')}, "
          f"Pillow {version('pillow')}, {os.cpu_count()} CPUs")
    print(f"a {page.width}x{page.height} enrolment page, QR code at 4 px a module; p50 and p99 by nearest rank over "
          f"{rounds} rounds of {reads} reads, interleaved, after 1 untimed round")
    verdicts = [report(name, data, rounds, reads) for name, data in images.items()]
    print()
    for line in verdicts:
        print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 10 reads per image")
    args = parser.parse_args()
    if args.quick:
        run(rounds=3, reads=10)
    else:
        run(rounds=9, reads=25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
