"""Base32 seeds, parameter checks, and the property that no error or repr ever shows a seed."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailgent_mcp.errors import InvalidInput, InvalidSecret, MailgentError
from mailgent_mcp.vault.otp import (
    OtpParams,
    OtpSeed,
    decode_base32,
    hotp_at,
    parse_migration,
    parse_migration_batch,
    parse_secret,
    parse_uri,
    totp_at,
)

RFC_SEED = b"12345678901234567890"
RFC_BASE32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
SEED_80 = "JBSWY3DPEHPK3PXP"  # the Key-Uri-Format's own example: 80 bits
SEED_128 = "AAAQEAYEAUDAOCAJBIFQYDIOB4"


# --- decode_base32: what people paste -----------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        RFC_BASE32.lower(),
        "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ",
        "gezd-gnbv-gy3t-qojq-gezd-gnbv-gy3t-qojq",
        "\tGEZDGNBV\nGY3TQOJQ\r\nGEZDGNBVGY3TQOJQ  ",
        "GEZD\u00a0GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ",  # no-break space from a web page
        " - ".join([RFC_BASE32[:16], RFC_BASE32[16:]]),
    ],
    ids=["lower", "spaces", "dashes", "tabs-newlines", "nbsp", "spaced-dash"],
)
def test_decode_base32_normalises_pasted_text(text: str) -> None:
    assert decode_base32(text) == RFC_SEED


@pytest.mark.parametrize("text", [SEED_128, SEED_128 + "======", SEED_128 + "==", SEED_128.lower() + "="])
def test_decode_base32_padding_is_optional(text: str) -> None:
    assert decode_base32(text) == bytes(range(16))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("====", "empty"),
        ("- -", "empty"),
        (RFC_BASE32[:-1] + "0", "0, 1, 8 and 9 are not base32; check for O/0 and I/1 mix-ups"),
        (RFC_BASE32[:-1] + "1", "0, 1, 8 and 9 are not base32"),
        (RFC_BASE32[:-1] + "8", "0, 1, 8 and 9 are not base32"),
        (RFC_BASE32[:-1] + "9", "0, 1, 8 and 9 are not base32"),
        (RFC_BASE32[:-1] + "!", "not base32"),
        (RFC_BASE32[:-1] + "\u017f", "not base32"),  # long s: "ſ".upper() == "S"
        ("\uff27" + RFC_BASE32[1:], "not base32"),  # fullwidth G
        (RFC_BASE32[:16] + "=" + RFC_BASE32[16:], "'=' may only come last"),
        (RFC_BASE32[:17], "a length no base32 text can have"),  # 17 % 8 == 1
        (RFC_BASE32[:19], "a length no base32 text can have"),  # 19 % 8 == 3
        (RFC_BASE32[:22], "a length no base32 text can have"),  # 22 % 8 == 6
        ("A" * 1025, "too long to be a TOTP seed"),
        (" " * 1025, "too long to be a TOTP seed"),
        ("JBSWY3DP", r"only 40 bits; a real TOTP seed is at least 80 bits \(16 base32 characters\)"),
        (SEED_80[:15], "only 72 bits"),
    ],
    ids=[
        "empty", "blank", "only-padding", "only-dashes", "zero", "one", "eight", "nine", "punctuation",
        "long-s", "fullwidth", "inner-padding", "len-1-mod-8", "len-3-mod-8", "len-6-mod-8", "too-long",
        "too-long-blank", "40-bits", "72-bits",
    ],
)
def test_decode_base32_rejects_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidSecret, match=reason):
        decode_base32(text)


def test_decode_base32_takes_the_longest_allowed_text() -> None:
    assert decode_base32("A" * 1024) == bytes(640)


@pytest.mark.parametrize("value", [None, b"GEZDGNBVGY3TQOJQ", 42], ids=repr)
def test_decode_base32_rejects_non_text(value: Any) -> None:
    with pytest.raises(InvalidSecret, match="must be text"):
        decode_base32(value)


@settings(max_examples=200, deadline=None)
@given(
    raw=st.binary(min_size=10, max_size=64),
    lower=st.booleans(),
    pad=st.booleans(),
    group=st.integers(0, 8),
    sep=st.sampled_from([" ", "-", "\n", "\t"]),
)
def test_decode_base32_round_trips_any_formatting(raw: bytes, lower: bool, pad: bool, group: int, sep: str) -> None:
    text = base64.b32encode(raw).decode()
    text = text if pad else text.rstrip("=")
    if group:
        text = sep.join(text[i : i + group] for i in range(0, len(text), group))
    assert decode_base32(text.lower() if lower else text) == raw


# --- seed strength -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bits", "weak"),
    [(SEED_80, 80, True), ("A" * 24, 120, True), (SEED_128, 128, False), (RFC_BASE32, 160, False)],
    ids=["80-bit", "120-bit", "128-bit", "160-bit"],
)
def test_weak_flag_follows_rfc4226_128_bit_minimum(text: str, bits: int, weak: bool) -> None:
    seed = parse_secret(text)
    assert (seed.params.seed_bits, seed.params.weak) == (bits, weak)


def test_80_bit_seed_gives_codes_despite_pyotps_112_bit_floor() -> None:
    seed = parse_secret(SEED_80)
    assert totp_at(seed, 1234567890).code == "742275"  # oathtool agrees (see test_otp_oathtool)


# --- parameter checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keywords", "reason"),
    [
        ({"digits": 5}, "digits must be a whole number from 6 to 10"),
        ({"digits": 11}, "digits must be a whole number from 6 to 10"),
        ({"digits": True}, "digits"),
        ({"digits": "6"}, "digits"),
        ({"period": 0}, "period must be a whole number from 1 to 120"),
        ({"period": 121}, "period must be a whole number from 1 to 120"),
        ({"period": -30}, "period"),
        ({"period": "abc"}, "period"),
        ({"period": 30.0}, "period"),
        ({"algorithm": "MD5"}, "algorithm must be SHA1, SHA256 or SHA512"),
        ({"algorithm": ""}, "algorithm must be SHA1, SHA256 or SHA512"),
        ({"algorithm": "SHA3-256"}, "algorithm"),
        ({"issuer": "x" * 257}, "issuer is longer than 256 characters"),
        ({"account": "a\nb"}, "account contains control characters"),
        ({"account": "a\u202eb"}, "account contains control characters"),
        ({"issuer": 7}, "must be text"),
    ],
    ids=lambda x: "-".join(f"{k}={v!r}"[:24] for k, v in x.items()) if isinstance(x, dict) else None,
)
def test_bad_keyword_parameters_are_refused_with_a_reason(keywords: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidSecret, match=reason) as caught:
        parse_secret(RFC_BASE32, **keywords)
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("keywords", "expected"),
    [
        ({}, ("SHA1", 6, 30, None, None)),
        ({"algorithm": "sha512", "digits": 10, "period": 1}, ("SHA512", 10, 1, None, None)),
        ({"issuer": "  Acme ", "account": " bob ", "period": 120}, ("SHA1", 6, 120, "Acme", "bob")),
        ({"issuer": "", "account": "  "}, ("SHA1", 6, 30, None, None)),
    ],
    ids=["defaults", "sha512-10-1", "names-trimmed", "blank-names"],
)
def test_keyword_parameters_for_a_base32_seed(keywords: dict[str, Any], expected: tuple[object, ...]) -> None:
    p = parse_secret(RFC_BASE32, **keywords).params
    assert (p.algorithm, p.digits, p.period, p.issuer, p.account) == expected
    assert (p.kind, p.counter, p.encoder) == ("totp", None, "numeric")


# --- OtpParams and OtpSeed ----------------------------------------------------------------


def test_params_round_trip_through_json() -> None:
    for text in [RFC_BASE32, "otpauth://hotp/Ex:a?secret=" + RFC_BASE32 + "&counter=9&algorithm=SHA256&digits=8",
                 "otpauth://totp/Steam:gabe?secret=" + RFC_BASE32 + "&encoder=steam"]:
        params = parse_secret(text).params
        stored = json.loads(json.dumps(params.to_dict()))
        assert OtpParams.from_dict(stored) == params


def test_params_from_dict_fills_defaults_and_derives_weak() -> None:
    assert OtpParams.from_dict({}) == OtpParams()
    assert OtpParams.from_dict({"seed_bits": 80, "weak": False}).weak is True
    assert OtpParams.from_dict({"seed_bits": 160, "weak": True}).weak is False


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        ([("kind", "totp")], "JSON object"),
        ({"kind": "totp", "extra": 1}, "unknown fields"),
        ({"kind": "TOTP"}, "totp or hotp"),
        ({"algorithm": "sha1"}, "SHA1, SHA256 or SHA512"),
        ({"digits": "6"}, "digits"),
        ({"kind": "hotp"}, "counter"),
        ({"kind": "hotp", "counter": -1}, "counter"),
        ({"counter": 3}, "only to hotp"),
        ({"encoder": "steam"}, "steam"),
        ({"encoder": "steam", "digits": 5, "algorithm": "SHA256"}, "steam"),
        ({"encoder": "base26"}, "numeric or steam"),
        ({"period": 0}, "period"),
        ({"weak": "yes"}, "weak"),
        ({"seed_bits": -8}, "seed_bits"),
        ({"issuer": ["x"]}, "issuer must be text"),
    ],
    ids=lambda x: json.dumps(x)[:40] if not isinstance(x, str) else None,
)
def test_params_from_dict_checks_every_field(stored: Any, reason: str) -> None:
    with pytest.raises(InvalidSecret, match=reason):
        OtpParams.from_dict(stored)


def test_seed_fills_in_seed_bits_from_the_key() -> None:
    seed = OtpSeed(RFC_SEED, OtpParams())
    assert (seed.params.seed_bits, seed.params.weak) == (160, False)
    short = OtpSeed(RFC_SEED[:10], OtpParams(seed_bits=160))
    assert (short.params.seed_bits, short.params.weak) == (80, True)


@pytest.mark.parametrize(
    ("seed", "params", "reason"),
    [
        (bytearray(RFC_SEED), OtpParams(), "raw bytes"),
        (RFC_BASE32, OtpParams(), "raw bytes"),
        (RFC_SEED[:9], OtpParams(), "only 72 bits"),
        (b"k" * 641, OtpParams(), "too long"),
        (RFC_SEED, {"kind": "totp"}, "OtpParams"),
    ],
    ids=["bytearray", "str", "72-bit", "641-bytes", "dict-params"],
)
def test_seed_checks_its_fields(seed: Any, params: Any, reason: str) -> None:
    with pytest.raises(InvalidSecret, match=reason):
        OtpSeed(seed, params)


def test_seed_and_params_are_frozen() -> None:
    seed = parse_secret(RFC_BASE32)
    with pytest.raises(dataclasses.FrozenInstanceError):
        seed.seed = b"x" * 20  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        seed.params.digits = 8  # type: ignore[misc]


# --- the sentinel: no error, repr or stored form may show a seed -----------------------------

SENTINEL_RAW = hashlib.sha512(b"mailgent-mcp otp sentinel seed").digest()[:40]
SENTINEL = base64.b32encode(SENTINEL_RAW).decode()  # 64 characters, no padding


def forbidden_forms() -> list[str]:
    """The sentinel in every encoding it could leak in."""
    return [
        SENTINEL,
        SENTINEL.lower(),
        SENTINEL_RAW.hex(),
        SENTINEL_RAW.hex().upper(),
        base64.b64encode(SENTINEL_RAW).decode().rstrip("="),
        base64.urlsafe_b64encode(SENTINEL_RAW).decode().rstrip("="),
        repr(SENTINEL_RAW)[2:-1],
    ]


def assert_no_sentinel(text: str) -> None:
    for form in forbidden_forms():
        assert form not in text


def assert_no_sentinel_piece(message: str) -> None:
    """Not even 8 characters in a row of the base32 or hex form may appear in a message."""
    upper = message.upper()
    for form in (SENTINEL, SENTINEL_RAW.hex().upper()):
        for i in range(len(form) - 7):
            assert form[i : i + 8] not in upper


def pb(number: int, value: bytes | int) -> bytes:
    """A minimal protobuf field writer for the migration paths (values below 128)."""
    if isinstance(value, int):
        return bytes([number << 3, value])
    return bytes([number << 3 | 2, len(value)]) + value


def migration(entries: list[bytes]) -> str:
    payload = b"".join(pb(1, entry) for entry in entries)
    return "otpauth-migration://offline?data=" + base64.b64encode(payload).decode()


SENTINEL_ENTRY = pb(1, SENTINEL_RAW) + pb(2, b"Ex:alice")
URI = f"otpauth://totp/Ex:alice?secret={SENTINEL}"
HOTP_SEED = OtpSeed(SENTINEL_RAW, OtpParams(kind="hotp", counter=0))

LEAK_PATHS: dict[str, Callable[[], object]] = {
    "invalid-char": lambda: decode_base32(SENTINEL[:-1] + "1"),
    "invalid-char-zero": lambda: decode_base32(SENTINEL + "0"),
    "non-ascii": lambda: decode_base32(SENTINEL + "\u017f"),
    "impossible-length": lambda: decode_base32(SENTINEL[:57]),
    "too-long": lambda: decode_base32(SENTINEL * 17),
    "inner-padding": lambda: decode_base32(SENTINEL[:32] + "=" + SENTINEL[32:]),
    "too-short": lambda: decode_base32(SENTINEL[:8]),
    "uri-bad-digits": lambda: parse_uri(URI + "&digits=5"),
    "uri-bad-period": lambda: parse_uri(URI + "&period=abc"),
    "uri-duplicate-secret": lambda: parse_uri(URI + "&secret=" + SENTINEL),
    "uri-invalid-char": lambda: parse_uri(URI + "1"),
    "uri-wrong-scheme": lambda: parse_uri(URI.replace("otpauth:", "https:")),
    "uri-wrong-type": lambda: parse_uri(URI.replace("totp", "motp")),
    "uri-bad-utf8-label": lambda: parse_uri(URI.replace("alice", "%FF")),
    "uri-bad-utf8-query": lambda: parse_uri(URI + "&issuer=%FF"),  # urllib's error dropped
    "uri-bad-host": lambda: parse_uri(URI.replace("//totp", "//[totp")),  # urllib's error dropped
    "uri-too-long": lambda: parse_uri(URI + "&pad=" + "x" * 4096),
    "uri-hotp-no-counter": lambda: parse_uri(URI.replace("totp", "hotp")),
    "uri-secret-in-label": lambda: parse_uri(f"otpauth://totp/{SENTINEL}\n?secret={SENTINEL}"),
    "keyword-bad-digits": lambda: parse_secret(SENTINEL, digits=11),
    "keyword-bad-algorithm": lambda: parse_secret(SENTINEL, algorithm="MD5"),
    "keyword-disagrees": lambda: parse_secret(URI, algorithm="SHA512"),
    "migration-md5": lambda: parse_migration(migration([SENTINEL_ENTRY + pb(4, 4)])),
    "migration-truncated": lambda: parse_migration(migration([SENTINEL_ENTRY])[:-8]),
    "migration-not-base64": lambda: parse_migration(migration([SENTINEL_ENTRY]) + "%25"),  # binascii's error dropped
    "migration-base32-as-data": lambda: parse_migration("otpauth-migration://offline?data=" + SENTINEL),
    "migration-two-seeds": lambda: parse_secret(migration([SENTINEL_ENTRY, SENTINEL_ENTRY])),
    "migration-hotp": lambda: parse_secret(migration([SENTINEL_ENTRY + pb(6, 1)])),
    "totp-at-hotp-seed": lambda: totp_at(HOTP_SEED, 0),
    "hotp-at-bad-counter": lambda: hotp_at(HOTP_SEED, -1),
    "seed-too-short": lambda: OtpSeed(SENTINEL_RAW[:9], OtpParams()),
    "params-unknown-field": lambda: OtpParams.from_dict({SENTINEL: 1}),
}


@pytest.mark.parametrize("path", list(LEAK_PATHS), ids=str)
def test_errors_never_show_the_seed(path: str) -> None:
    with pytest.raises(MailgentError) as caught:
        LEAK_PATHS[path]()
    exc = caught.value
    assert isinstance(exc, InvalidInput)
    message = str(exc)
    assert message.strip()
    assert_no_sentinel_piece(message)
    assert_no_sentinel(repr(exc))
    assert_no_sentinel("".join(traceback.format_exception(exc)))
    # Nothing chained: a library's error text (which may echo input) goes nowhere.
    assert exc.__cause__ is None and exc.__context__ is None


def test_reprs_and_stored_params_never_show_the_seed() -> None:
    seed = parse_secret(SENTINEL, issuer="Ex", account="alice")
    code = totp_at(seed, 1234567890)  # also builds the cached pyotp object
    (imported,) = parse_migration(migration([SENTINEL_ENTRY]))
    batch = parse_migration_batch(migration([SENTINEL_ENTRY]))
    for text in [repr(seed), str(seed), f"{seed}", f"{seed!r}", repr(seed.params), str(seed.params),
                 json.dumps(seed.params.to_dict()), repr(code), repr(imported), repr(batch), repr([seed])]:
        assert_no_sentinel(text)
    assert seed.seed == SENTINEL_RAW == imported.seed  # the key is there, only never shown


def test_the_pyotp_generator_stays_inside_the_seed_and_out_of_its_repr() -> None:
    """pyotp (through its public API) keeps the key as base32; the seed's repr never shows it or the generator."""
    seed = parse_secret(SENTINEL)
    totp_at(seed, 0)
    generator = seed.__dict__["_otp"]
    assert generator.byte_secret() == SENTINEL_RAW and type(generator).min_secret_length_bits == 80
    assert_no_sentinel(repr(seed))
    assert "_otp" not in repr(seed)
