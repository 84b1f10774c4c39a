"""The OTP engine against Debian's oathtool (OATH Toolkit), an independent C implementation.

oathtool runs as a real subprocess. The module is skipped only where oathtool is not
installed (apt-get install oathtool); CI installs it. oathtool makes 6, 7 or 8 digit codes
only, so the property tests stay in that range.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailgent_mcp.vault.otp import (
    OtpParams,
    OtpSeed,
    hotp_at,
    parse_secret,
    parse_uri,
    totp_at,
)

OATHTOOL = shutil.which("oathtool")
pytestmark = [
    pytest.mark.oathtool,
    # Skipped only outside CI: under CI (which installs it) a missing oathtool must fail loudly.
    pytest.mark.skipif(OATHTOOL is None and not os.environ.get("CI"),
                       reason="oathtool is not installed: bash scripts/setup.sh --test (apt-get install oathtool)"),
]

DATA = Path(__file__).parent / "data"
VECTORS: dict[str, Any] = json.loads((DATA / "rfc6238_vectors.json").read_text())
URI_CASES: list[dict[str, Any]] = json.loads((DATA / "otpauth_uri_cases.json").read_text())
OATHTOOL_CASES = [c for c in URI_CASES if (c.get("expected") or {}).get("oathtool_agrees")]


def run(*args: str) -> str:
    """Run oathtool and return the code it prints."""
    assert OATHTOOL is not None
    done = subprocess.run([OATHTOOL, *args], capture_output=True, text=True, timeout=10, check=True)
    return done.stdout.strip()


def oathtool_totp(key: bytes, algorithm: str, digits: int, period: int, at: int) -> str:
    return run(f"--totp={algorithm.lower()}", "-d", str(digits), "-s", f"{period}s", f"--now=@{at}", key.hex())


@settings(max_examples=150, deadline=None)
@given(
    key=st.binary(min_size=10, max_size=64),
    algorithm=st.sampled_from(["SHA1", "SHA256", "SHA512"]),
    digits=st.integers(6, 8),
    period=st.integers(1, 120),
    at=st.integers(0, 2**33),
    fraction=st.floats(0, 0.99),
)
def test_totp_matches_oathtool(key: bytes, algorithm: str, digits: int, period: int, at: int, fraction: float) -> None:
    seed = parse_secret(base64.b32encode(key).decode(), algorithm=algorithm, digits=digits, period=period)
    expected = oathtool_totp(key, algorithm, digits, period, at)
    assert totp_at(seed, at).code == expected
    assert totp_at(seed, at + fraction).code == expected  # RFC 6238: the floor of the time


@settings(max_examples=50, deadline=None)
@given(key=st.binary(min_size=10, max_size=64), digits=st.integers(6, 8), counter=st.integers(0, 2**63 - 1))
def test_hotp_matches_oathtool(key: bytes, digits: int, counter: int) -> None:
    seed = OtpSeed(key, OtpParams(kind="hotp", counter=0, digits=digits))
    assert hotp_at(seed, counter) == run("--hotp", "-d", str(digits), f"--counter={counter}", key.hex())


def test_oathtool_base32_example_from_the_vectors() -> None:
    example = VECTORS["oathtool_base32_example"]
    argv = shlex.split(example["cmd"])
    assert argv[0] == "oathtool"
    printed = run(*argv[1:])
    assert printed == example["output"] == example["expected"]
    seed = parse_secret(argv[-1], algorithm="SHA512", digits=8)
    assert totp_at(seed, 1234567890).code == printed  # '2009-02-13 23:31:30 UTC'


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: f"{v['algorithm']}-t{v['time']}")
def test_oathtool_agrees_with_the_rfc_vectors(vector: dict[str, Any]) -> None:
    argv = shlex.split(vector["oathtool_cmd"])
    assert run(*argv[1:]) == vector["expected"]


def test_oathtool_agrees_on_the_80_bit_seed() -> None:
    seed = parse_secret("JBSWY3DPEHPK3PXP")
    assert seed.params.weak is True
    for at in (0, 59, 1234567890, 2**33):
        assert totp_at(seed, at).code == run("-b", "--totp", f"--now=@{at}", "JBSWY3DPEHPK3PXP")


@pytest.mark.parametrize("case", OATHTOOL_CASES, ids=lambda c: f"case{c['id']:02d}")
def test_oathtool_agrees_on_accepted_uri_cases(case: dict[str, Any]) -> None:
    seed = parse_uri(case["uri"])
    p = seed.params
    expected = oathtool_totp(seed.seed, p.algorithm, p.digits, p.period, 1234567890)
    assert totp_at(seed, 1234567890).code == expected == case["expected"]["code_at_1234567890"]
