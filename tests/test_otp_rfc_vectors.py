"""The OTP engine against the RFCs' own test vectors: RFC 6238 Appendix B, RFC 4226 Appendix D.

The expected codes are transcribed twice: once from the RFCs into this file, once in
tests/data/rfc6238_vectors.json. The data file is checked against the transcription, so
a vector file with a wrong code or a wrong seed fails here before it can mislead.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailgent_mcp.errors import InvalidInput
from mailgent_mcp.vault.otp import (
    OtpCode,
    OtpParams,
    OtpSeed,
    hotp_at,
    parse_secret,
    parse_uri,
    totp_at,
)

DATA: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "rfc6238_vectors.json").read_text())
VECTORS: list[dict[str, Any]] = DATA["vectors"]

# RFC 6238 Appendix B, as printed (with the per-algorithm seeds of Errata 2866): time -> codes.
RFC6238_TABLE: dict[int, dict[str, str]] = {
    59: {"SHA1": "94287082", "SHA256": "46119246", "SHA512": "90693936"},
    1111111109: {"SHA1": "07081804", "SHA256": "68084774", "SHA512": "25091201"},
    1111111111: {"SHA1": "14050471", "SHA256": "67062674", "SHA512": "99943326"},
    1234567890: {"SHA1": "89005924", "SHA256": "91819424", "SHA512": "93441116"},
    2000000000: {"SHA1": "69279037", "SHA256": "90698825", "SHA512": "38618901"},
    20000000000: {"SHA1": "65353130", "SHA256": "77737706", "SHA512": "47863826"},
}
# RFC 6238 Appendix A reference code: the seed is "12345678901234567890" repeated to the
# digest's block-friendly size: 20 bytes for SHA-1, 32 for SHA-256, 64 for SHA-512.
RFC6238_SEED_BYTES = {"SHA1": 20, "SHA256": 32, "SHA512": 64}
RFC_ASCII_SEED = b"1234567890" * 7

# RFC 4226 Appendix D: HOTP codes for counters 0..9 with the 20-byte SHA-1 seed.
RFC4226_CODES = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]
SHA1_BASE32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"


def vector_id(vector: dict[str, Any]) -> str:
    return f"{vector['algorithm']}-t{vector['time']}"


def test_vector_file_matches_rfc6238_appendix_b() -> None:
    assert len(VECTORS) == 18
    table = {(v["time"], v["algorithm"]): v["expected"] for v in VECTORS}
    assert table == {(t, a): code for t, codes in RFC6238_TABLE.items() for a, code in codes.items()}


@pytest.mark.parametrize("algorithm", ["SHA1", "SHA256", "SHA512"])
def test_vector_file_seeds_have_the_rfc_lengths(algorithm: str) -> None:
    size = RFC6238_SEED_BYTES[algorithm]
    seed = DATA["seeds"][algorithm]
    assert bytes.fromhex(seed["hex"]) == RFC_ASCII_SEED[:size]
    assert seed["ascii"].encode() == RFC_ASCII_SEED[:size]
    for vector in (v for v in VECTORS if v["algorithm"] == algorithm):
        assert len(bytes.fromhex(vector["secret_hex"])) == size
        assert vector["secret_base32"] == seed["base32"]


@pytest.mark.parametrize("vector", VECTORS, ids=vector_id)
def test_rfc6238_appendix_b(vector: dict[str, Any]) -> None:
    seed = parse_secret(vector["secret_base32"], algorithm=vector["algorithm"], digits=8)
    assert seed.seed.hex() == vector["secret_hex"]
    code = totp_at(seed, vector["time"])
    assert code.code == vector["expected"] == RFC6238_TABLE[vector["time"]][vector["algorithm"]]
    assert code.step == int(vector["T_hex"], 16)  # the T column of the RFC's table
    assert (code.digits, code.period, code.algorithm) == (8, 30, vector["algorithm"])


@pytest.mark.parametrize(("counter", "expected"), list(enumerate(RFC4226_CODES)), ids=lambda x: str(x))
def test_rfc4226_appendix_d(counter: int, expected: str) -> None:
    seed = parse_uri(f"otpauth://hotp/RFC4226:appendix-d?secret={SHA1_BASE32}&counter=0")
    assert hotp_at(seed, counter) == expected
    assert DATA["hotp_rfc4226_appendix_d"][str(counter)]["expected"] == expected


@pytest.mark.parametrize("algorithm", ["SHA256", "SHA512"])
def test_the_20_byte_seed_for_sha256_mistake_is_caught(algorithm: str) -> None:
    """Errata 2866: the RFC's prose says the 20-byte seed for every algorithm, its code uses longer ones.

    An engine or a vector file that feeds the 20-byte SHA-1 seed to SHA-256/SHA-512 gets
    codes that match none of the RFC's rows, so the vector test above would fail on it.
    """
    wrong = parse_secret(SHA1_BASE32, algorithm=algorithm, digits=8)
    right = parse_secret(DATA["seeds"][algorithm]["base32"], algorithm=algorithm, digits=8)
    assert len(wrong.seed) == 20
    assert len(right.seed) == RFC6238_SEED_BYTES[algorithm]
    for time, codes in RFC6238_TABLE.items():
        assert totp_at(wrong, time).code != codes[algorithm]
        assert totp_at(right, time).code == codes[algorithm]


# --- time-step arithmetic (RFC 6238 §4.2: T = floor((t - T0) / X), T0 = 0) ---------------


def rfc_seed(period: int = 30) -> OtpSeed:
    return parse_secret(SHA1_BASE32, period=period)


@pytest.mark.parametrize(
    ("at", "step", "remaining", "expires_at"),
    [
        (0, 0, 30, 30.0),
        (29, 0, 1, 30.0),
        (29.999, 0, 1, 30.0),
        (30, 1, 30, 60.0),  # at an exact boundary the new code has the whole period
        (59.5, 1, 1, 60.0),  # remaining is rounded up: 0.5 s left shows as 1
        (1234567890, 41152263, 30, 1234567920.0),
        (1234567890.25, 41152263, 30, 1234567920.0),
        (1234567891, 41152263, 29, 1234567920.0),
    ],
    ids=["epoch", "last-second", "last-instant", "boundary", "half-second", "rfc-1234567890", "fraction", "plus-one"],
)
def test_totp_at_step_and_remaining(at: float, step: int, remaining: int, expires_at: float) -> None:
    code = totp_at(rfc_seed(), at)
    assert (code.step, code.remaining, code.expires_at) == (step, remaining, expires_at)


def test_totp_at_fraction_of_a_second_gives_the_same_code() -> None:
    seed = rfc_seed()
    assert totp_at(seed, 1234567890.999).code == totp_at(seed, 1234567890).code


@settings(max_examples=200, deadline=None)
@given(at=st.floats(min_value=0, max_value=2.0**40, allow_nan=False), period=st.integers(1, 120))
def test_totp_at_window_contains_the_time(at: float, period: int) -> None:
    code: OtpCode = totp_at(rfc_seed(period), at)
    assert code.step == math.floor(at) // period
    assert 1 <= code.remaining <= period
    assert code.expires_at - period <= at < code.expires_at
    assert code.remaining == math.ceil(code.expires_at - at)


@pytest.mark.parametrize(
    "at", [-1, -0.5, float("nan"), float("inf"), True, "1234567890", None], ids=repr
)
def test_totp_at_rejects_bad_times(at: Any) -> None:
    with pytest.raises(InvalidInput, match="Unix timestamp"):
        totp_at(rfc_seed(), at)


def test_totp_at_refuses_an_hotp_seed() -> None:
    seed = parse_uri(f"otpauth://hotp/Ex:a?secret={SHA1_BASE32}&counter=3")
    with pytest.raises(InvalidInput, match="hotp_at"):
        totp_at(seed, 59)


def test_hotp_at_refuses_a_totp_seed() -> None:
    with pytest.raises(InvalidInput, match="totp_at"):
        hotp_at(rfc_seed(), 0)


@pytest.mark.parametrize("counter", [-1, 2**64, True, 1.0, "1"], ids=repr)
def test_hotp_at_rejects_bad_counters(counter: Any) -> None:
    seed = OtpSeed(RFC_ASCII_SEED[:20], OtpParams(kind="hotp", counter=0))
    with pytest.raises(InvalidInput, match="counter"):
        hotp_at(seed, counter)


def test_hotp_at_accepts_the_largest_8_byte_counter() -> None:
    seed = OtpSeed(RFC_ASCII_SEED[:20], OtpParams(kind="hotp", counter=0))
    assert len(hotp_at(seed, 2**64 - 1)) == 6
