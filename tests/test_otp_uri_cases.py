"""otpauth:// and otpauth-migration:// parsing against tests/data/otpauth_uri_cases.json (38 cases).

Every case is run by its id. Four cases are decided differently from the file, on purpose;
OUR_DECISIONS says why for each and pins the result we give instead.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from mailgent_mcp.errors import InvalidSecret
from mailgent_mcp.vault.otp import (
    OtpSeed,
    hotp_at,
    parse_migration,
    parse_migration_batch,
    parse_secret,
    parse_uri,
    totp_at,
)

CASES: list[dict[str, Any]] = json.loads((Path(__file__).parent / "data" / "otpauth_uri_cases.json").read_text())
BY_ID = {case["id"]: case for case in CASES}
SHA1_BASE32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"

CASE_1 = BY_ID[1]["expected"]
OUR_DECISIONS: dict[int, dict[str, Any]] = {
    # The file says reject: label prefix "Foo" and issuer parameter "Bar" differ. Our ISSUE
    # says "issuer parameter wins": accept, issuer = the parameter, account = the label's.
    # (The file's own note allows this: "alternatively accept with issuer=parameter".)
    8: {**CASE_1, "issuer": "Bar", "account": "alice"},
    # The file says reject: the Key-Uri-Format allows 6 or 8 digits. Our ISSUE says digits
    # 6..10 (pyotp's range; RFC 4226 §5.3 only asks for at least 6), so 7 is accepted and
    # the code is pyotp's 7-digit value the file lists under pyotp_2_12.
    25: {**CASE_1, "issuer": "Ex", "account": "alice", "digits": 7, "code_at_1234567890": "9005924"},
    # The file says reject: '+' is literal in the path ("ACME+Co") but a space in the query
    # ("ACME Co"), so prefix and parameter differ. Same policy as case 8: the parameter wins.
    31: {**CASE_1, "issuer": "ACME Co", "account": "bob+tag@example.com"},
    # The file accepts Steam Guard but lists no expected fields: these are ours, with the
    # code pyotp's contrib.Steam gives (listed under pyotp_2_12).
    34: {
        **CASE_1, "issuer": "Steam", "account": "gabe", "digits": 5, "encoder": "steam",
        "code_at_1234567890": "VHHQY",
    },
}

MIGRATION_IDS = [c["id"] for c in CASES if c["uri"].startswith("otpauth-migration:") and c["expected"]]
ACCEPT_IDS = [
    c["id"]
    for c in CASES
    if c["id"] not in MIGRATION_IDS
    and (c["id"] in OUR_DECISIONS or c["expected_behaviour"] in ("accept", "accept_with_normalization"))
]
REJECT_IDS = [c["id"] for c in CASES if c["id"] not in ACCEPT_IDS and c["id"] not in MIGRATION_IDS]


def case_id(case_id_: int) -> str:
    case = BY_ID[case_id_]
    words = "".join(ch if ch.isalnum() else "-" for ch in case["reason"].lower())
    behaviour = case["expected_behaviour"]
    if case_id_ in OUR_DECISIONS and behaviour == "reject":
        behaviour = "file-rejects-we-accept"
    return f"case{case_id_:02d}-{behaviour}-{'-'.join(w for w in words.split('-') if w)[:40]}"


def b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=")


def test_every_case_is_tested_exactly_once() -> None:
    assert len(CASES) == 38
    assert sorted(ACCEPT_IDS + REJECT_IDS + MIGRATION_IDS) == list(range(1, 39))
    assert set(OUR_DECISIONS) <= set(ACCEPT_IDS)
    # The deliberate differences are exactly these; anything else follows the file.
    differs = [i for i in ACCEPT_IDS if BY_ID[i]["expected_behaviour"] == "reject"]
    assert differs == [8, 25, 31]


@pytest.mark.parametrize("cid", ACCEPT_IDS, ids=case_id)
def test_accepted_uri_case(cid: int) -> None:
    case = BY_ID[cid]
    expected = OUR_DECISIONS.get(cid, case["expected"])
    seed = parse_uri(case["uri"])
    params = seed.params
    assert params.kind == expected["type"]
    assert params.issuer == expected["issuer"]
    assert params.account == expected["account"]
    assert b32(seed.seed) == expected["secret_base32"]
    assert seed.seed.hex() == expected["secret_hex"]
    assert params.seed_bits == expected["secret_bits"]
    assert params.weak is (expected["secret_bits"] < 128)
    assert params.algorithm == expected["algorithm"]
    assert params.digits == expected["digits"]
    assert params.encoder == expected.get("encoder", "numeric")
    assert seed.name is None
    if params.kind == "totp":
        assert params.period == expected["period"]
        assert params.counter is None
        assert totp_at(seed, 1234567890).code == expected["code_at_1234567890"]
    else:
        assert params.counter == expected["counter"]
        assert hotp_at(seed, expected["counter"]) == expected["code_at_counter"]
    assert parse_secret(case["uri"]) == seed  # parse_secret routes otpauth:// to parse_uri


def test_case_25_code_is_pyotps_seven_digit_value() -> None:
    assert OUR_DECISIONS[25]["code_at_1234567890"] == BY_ID[25]["pyotp_2_12"]["code_at_1234567890"]
    assert OUR_DECISIONS[34]["code_at_1234567890"] == BY_ID[34]["pyotp_2_12"]["code_at_1234567890"]


def secrets_in(uri: str) -> list[str]:
    """Every secret-bearing value in a URI, raw and decoded, to look for in error text."""
    query = urlsplit(uri).query
    found = [v for k, v in parse_qsl(query, keep_blank_values=True) if k.lower() in ("secret", "data") and v]
    found += [piece.partition("=")[2] for piece in query.split("&") if piece.lower().startswith(("secret=", "data="))]
    return [s for s in found if s]


@pytest.mark.parametrize("cid", REJECT_IDS, ids=case_id)
def test_rejected_uri_case(cid: int) -> None:
    uri = BY_ID[cid]["uri"]
    parse = parse_migration if uri.startswith("otpauth-migration:") else parse_uri
    with pytest.raises(InvalidSecret) as caught:
        parse(uri)
    message = str(caught.value)
    assert message.strip()
    for secret in secrets_in(uri):
        assert secret.upper() not in message.upper()
        assert secret.upper() not in repr(caught.value).upper()
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def migration_algorithm(value: str) -> str:
    return "SHA1" if value == "unspecified" else value  # enum 0 (unspecified) means SHA1


def migration_digits(value: int | str) -> int:
    return 6 if value == "unspecified(6)" else int(value)  # enum 0 (unspecified) means 6


@pytest.mark.parametrize("cid", MIGRATION_IDS, ids=case_id)
def test_migration_case(cid: int) -> None:
    case = BY_ID[cid]
    expected = case["expected"]
    batch = parse_migration_batch(case["uri"])
    assert len(batch.seeds) == len(expected["entries"])
    for seed, entry in zip(batch.seeds, expected["entries"], strict=True):
        params = seed.params
        assert b32(seed.seed) == entry["secret_base32"]
        assert seed.name == entry["name"]
        assert params.issuer == entry["issuer"]
        assert params.account == entry["name"].rpartition(":")[2]  # name after any "Issuer:" prefix
        assert params.algorithm == migration_algorithm(entry["algorithm"])
        assert params.digits == migration_digits(entry["digits"])
        assert params.kind == entry["type"]
        assert params.counter == entry["counter"]
        assert params.seed_bits == len(seed.seed) * 8
    for key in ("version", "batch_size", "batch_index", "batch_id"):
        if key in expected:
            assert getattr(batch, key) == expected[key]
    assert parse_migration(case["uri"]) == list(batch.seeds)


def test_migration_seeds_give_codes() -> None:
    first, second = parse_migration(BY_ID[35]["uri"])
    assert totp_at(first, 1234567890).code == "005924"  # same seed and settings as case 1
    assert second.params.weak is False and len(second.seed) == 32
    (hotp,) = parse_migration(BY_ID[36]["uri"])
    assert hotp_at(hotp, 5) == "254676"  # RFC 4226 Appendix D, counter 5


# --- parse_secret: routing and keyword arguments -------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [("otpauth:totp/Ex:a?secret=" + SHA1_BASE32, "Not an otpauth URI"),
     ("otpauth-migration:offline?data=CgA", "Not an otpauth-migration export")],
    ids=["otpauth-without-slashes", "migration-without-slashes"],
)
def test_parse_secret_routes_near_miss_uris_to_the_uri_parsers(text: str, reason: str) -> None:
    with pytest.raises(InvalidSecret, match=reason):
        parse_secret(text)


def test_parse_secret_takes_a_one_seed_migration_export() -> None:
    seed = parse_secret(BY_ID[37]["uri"])
    assert b32(seed.seed) == "JBSWY3DPEHPK3PXP"
    assert (seed.params.issuer, seed.params.account, seed.params.weak) == ("Example", "alice@google.com", True)


def test_parse_secret_sends_a_multi_seed_export_to_vault_import() -> None:
    with pytest.raises(InvalidSecret, match=r"holds 2 seeds; import it with `mailgent-mcp vault import`"):
        parse_secret(BY_ID[35]["uri"])


def test_parse_secret_refuses_a_single_hotp_export() -> None:
    with pytest.raises(InvalidSecret, match=r"HOTP.*mailgent-mcp vault import"):
        parse_secret(BY_ID[36]["uri"])


@pytest.mark.parametrize(
    "text",
    ["  OTPAUTH://totp/Ex:a?secret=" + SHA1_BASE32 + "\n", "Otpauth://TOTP/Ex:a?secret=" + SHA1_BASE32],
    ids=["upper-scheme-padded", "mixed-case"],
)
def test_parse_secret_recognises_uris_in_any_case_with_whitespace(text: str) -> None:
    assert parse_secret(text).params.account == "a"


def test_parse_secret_keywords_that_agree_with_the_uri_are_fine() -> None:
    uri = BY_ID[9]["uri"]
    seed = parse_secret(uri, algorithm="sha256", digits=8, period=60, issuer="Ex", account="alice")
    assert seed == parse_uri(uri)


def test_parse_secret_keywords_fill_what_the_uri_leaves_out() -> None:
    seed = parse_secret(BY_ID[5]["uri"], issuer="Example")
    assert (seed.params.issuer, seed.params.account) == ("Example", "alice@example.com")


@pytest.mark.parametrize(
    "keywords",
    [{"algorithm": "SHA1"}, {"digits": 6}, {"period": 30}, {"issuer": "Other"}, {"account": "bob"}],
    ids=lambda kw: next(iter(kw)),
)
def test_parse_secret_keywords_that_disagree_with_the_uri_are_refused(keywords: dict[str, Any]) -> None:
    name = next(iter(keywords))
    with pytest.raises(InvalidSecret, match=f"The {name} argument disagrees with the URI"):
        parse_secret(BY_ID[9]["uri"], **keywords)


# --- more URI edge cases ---------------------------------------------------------------------


def uri(**params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"secret": SHA1_BASE32, **params}.items())
    return f"otpauth://totp/Ex:alice?{query}"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("digits", "5"), ("digits", "11"), ("digits", "+6"), ("digits", "-6"), ("digits", "6.0"),
        ("digits", ""), ("digits", "six"), ("digits", "%D9%A6"),  # Arabic-Indic six: int() takes it, we don't
        ("digits", "1_0"), ("digits", "9" * 400),
        ("period", "0"), ("period", "121"), ("period", "abc"), ("period", "+30"), ("period", "-30"),
        ("period", "3e1"), ("period", "%2030"), ("period", "9" * 30),
        ("algorithm", "MD5"), ("algorithm", "SHA-1"), ("algorithm", ""),
        ("encoder", "base26"), ("encoder", ""),
    ],
    ids=lambda x: x if len(x) < 12 else f"{x[:3]}...x{len(x)}",
)
def test_bad_parameter_values_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(InvalidSecret, match=name) as caught:
        parse_uri(uri(**{name: value}))
    assert SHA1_BASE32 not in str(caught.value)


@pytest.mark.parametrize("value", ["-1", "abc", str(2**64), "", "1.5"], ids=repr)
def test_bad_hotp_counters_are_refused(value: str) -> None:
    with pytest.raises(InvalidSecret, match="counter"):
        parse_uri(f"otpauth://hotp/Ex:a?secret={SHA1_BASE32}&counter={value}")


@pytest.mark.parametrize("counter", [0, 2**64 - 1])
def test_hotp_counter_limits_are_accepted(counter: int) -> None:
    seed = parse_uri(f"otpauth://hotp/Ex:a?secret={SHA1_BASE32}&counter={counter}")
    assert seed.params.counter == counter


@pytest.mark.parametrize(("value", "digits"), [("6", 6), ("06", 6), ("8", 8), ("10", 10)])
def test_digits_in_range_are_accepted(value: str, digits: int) -> None:
    seed = parse_uri(uri(digits=value))
    assert len(totp_at(seed, 1234567890).code) == digits


@pytest.mark.parametrize(("value", "period"), [("1", 1), ("60", 60), ("120", 120)])
def test_periods_in_range_are_accepted(value: str, period: int) -> None:
    assert parse_uri(uri(period=value)).params.period == period


@pytest.mark.parametrize(
    "steam_uri",
    [
        uri(encoder="steam", digits="6"),
        uri(encoder="steam", algorithm="SHA256"),
        f"otpauth://hotp/Steam:gabe?secret={SHA1_BASE32}&counter=1&encoder=steam",
    ],
    ids=["digits-6", "sha256", "hotp"],
)
def test_steam_encoder_only_with_its_own_shape(steam_uri: str) -> None:
    with pytest.raises(InvalidSecret, match=r"(?i)steam"):
        parse_uri(steam_uri)


def test_steam_encoder_accepts_explicit_5_digits_and_any_case() -> None:
    seed = parse_uri(uri(encoder="STEAM", digits="5"))
    assert seed.params.encoder == "steam"
    assert totp_at(seed, 1234567890).code == "VHHQY"


@pytest.mark.parametrize(
    ("bad_uri", "reason"),
    [
        ("otpauth://totp/Ex:alice?secret=JBSWY3DPEHPK3PXP&issuer=Ex&Secret=" + SHA1_BASE32, "duplicate secret"),
        (uri(issuer="Ex") + "&issuer=Ex", "duplicate issuer parameter"),
        (uri(digits="6") + "&DIGITS=6", "duplicate digits parameter"),
        (uri(color="red") + "&color=blue", "repeats a parameter"),
        ("otpauth://totp/" + "a" * 257 + "?secret=" + SHA1_BASE32, "label is longer than 256"),
        (uri(issuer="x" * 257), "issuer is longer than 256"),
        ("otpauth://totp/Ex:al%0Aice?secret=" + SHA1_BASE32, "label contains control characters"),
        ("otpauth://totp/Ex:%E2%80%AEalice?secret=" + SHA1_BASE32, "label contains control characters"),
        (uri(issuer="E%07x"), "issuer contains control characters"),
        ("otpauth://totp/Ex:al\x00ice?secret=" + SHA1_BASE32, "control characters"),
        ("otpauth://totp/Ex:%FFalice?secret=" + SHA1_BASE32, "not valid UTF-8"),
        (uri(issuer="%FF"), "query cannot be read"),
        (uri() + "&pad=" + "x" * 4096, "longer than 4096"),
        ("otpauth://totp/Ex:a#b?secret=" + SHA1_BASE32, "'#'"),
        ("otpauth://totp/Ex:?secret=" + SHA1_BASE32, "no account name"),
        ("otpauth://totp/Ex:%20?secret=" + SHA1_BASE32, "no account name"),
        ("otpauth://totp?secret=" + SHA1_BASE32, "no account name"),
        ("otpauth://user@totp/Ex:a?secret=" + SHA1_BASE32, "type must be totp or hotp"),
        ("otpauth://[totp/Ex:a?secret=" + SHA1_BASE32, "Not an otpauth URI"),
        ("otpauth:totp/Ex:a?secret=" + SHA1_BASE32, "Not an otpauth URI"),
        ("otpauth://totp/Ex:a?secret=JBSWY3DP", "only 40 bits"),
        (uri() + "&" + "&".join(f"p{i}=1" for i in range(70)), "query cannot be read"),
    ],
    ids=lambda x: x if len(x) < 30 else None,
)
def test_malformed_uris_are_refused_with_a_reason(bad_uri: str, reason: str) -> None:
    with pytest.raises(InvalidSecret, match=reason.replace("(", r"\(")):
        parse_uri(bad_uri)


def test_issuer_parameter_wins_over_a_different_label_prefix() -> None:
    seed = parse_uri(f"otpauth://totp/Old%20Name:alice?secret={SHA1_BASE32}&issuer=New+Name")
    assert (seed.params.issuer, seed.params.account) == ("New Name", "alice")


def test_label_account_keeps_later_colons_and_plus_signs() -> None:
    seed = parse_uri(f"otpauth://totp/Ex:a+b:c%2Bd?secret={SHA1_BASE32}")
    assert (seed.params.issuer, seed.params.account) == ("Ex", "a+b:c+d")


def test_blank_issuer_parameter_falls_back_to_the_label_prefix() -> None:
    assert parse_uri(uri(issuer="")).params.issuer == "Ex"
    assert parse_uri(f"otpauth://totp/alice?secret={SHA1_BASE32}&issuer=+").params.issuer is None


def test_period_and_counter_apply_to_their_own_type_only() -> None:
    assert parse_uri(uri(counter="oops")).params.counter is None  # ignored for totp
    hotp = parse_uri(f"otpauth://hotp/Ex:a?secret={SHA1_BASE32}&counter=1&period=oops")
    assert hotp.params.period == 30  # ignored for hotp


def test_uri_of_exactly_4096_characters_is_accepted() -> None:
    base = uri() + "&pad="
    text = base + "x" * (4096 - len(base))
    assert len(text) == 4096
    assert parse_uri(text).params.account == "alice"


# --- the migration reader on hand-built protobuf ---------------------------------------------
# A tiny protobuf writer, independent of the reader under test.


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def pb_int(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value % 2**64)


def pb_bytes(number: int, value: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(value)) + value


def otp_entry(secret: bytes = b"12345678901234567890", name: bytes = b"Ex:alice", **enums: int) -> bytes:
    numbers = {"algorithm": 4, "digits": 5, "type": 6, "counter": 7}
    body = pb_bytes(1, secret) + pb_bytes(2, name)
    return body + b"".join(pb_int(numbers[k], v) for k, v in enums.items())


def migration_uri(payload: bytes, *, urlsafe: bool = False, pad: bool = True) -> str:
    data = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(payload).decode()
    return "otpauth-migration://offline?data=" + quote(data if pad else data.rstrip("="), safe="")


def test_migration_reader_skips_unknown_fields_of_every_wire_type() -> None:
    fixed64, fixed32 = varint(16 << 3 | 1) + b"\x00" * 8, varint(17 << 3 | 5) + b"\x00" * 4
    unknown = pb_int(15, 99) + fixed64 + fixed32 + pb_bytes(18, b"x")
    payload = pb_bytes(1, otp_entry(algorithm=2, digits=2, type=2) + unknown) + unknown + pb_int(2, 1)
    (seed,) = parse_migration(migration_uri(payload))
    assert (seed.params.algorithm, seed.params.digits, seed.params.kind) == ("SHA256", 8, "totp")


@pytest.mark.parametrize(("urlsafe", "pad"), [(True, True), (True, False), (False, False)])
def test_migration_data_tolerates_urlsafe_base64_and_missing_padding(urlsafe: bool, pad: bool) -> None:
    payload = pb_bytes(1, otp_entry(secret=bytes(range(250, 256)) * 4))  # bytes that encode to + and /
    (seed,) = parse_migration(migration_uri(payload, urlsafe=urlsafe, pad=pad))
    assert seed.seed == bytes(range(250, 256)) * 4


def test_migration_raw_plus_in_data_is_base64_not_a_space() -> None:
    payload = pb_bytes(1, otp_entry(secret=bytes(range(250, 256)) * 4))
    data = base64.b64encode(payload).decode()
    assert "+" in data
    (seed,) = parse_migration("otpauth-migration://offline?data=" + data)
    assert seed.seed == bytes(range(250, 256)) * 4


def test_migration_hotp_without_counter_field_starts_at_zero() -> None:
    (seed,) = parse_migration(migration_uri(pb_bytes(1, otp_entry(type=1))))
    assert (seed.params.kind, seed.params.counter) == ("hotp", 0)


def test_migration_issuer_from_name_prefix_when_issuer_field_is_empty() -> None:
    (seed,) = parse_migration(migration_uri(pb_bytes(1, otp_entry(name=b"Acme: bob"))))
    assert (seed.name, seed.params.issuer, seed.params.account) == ("Acme: bob", "Acme", "bob")


def test_migration_signed_batch_id() -> None:
    batch = parse_migration_batch(migration_uri(pb_bytes(1, otp_entry()) + pb_int(5, -7)))
    assert batch.batch_id == -7


GOOD_ENTRY = pb_bytes(1, otp_entry())


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (pb_bytes(1, otp_entry(algorithm=4)), "MD5"),
        (pb_bytes(1, otp_entry(algorithm=9)), "unknown algorithm"),
        (pb_bytes(1, otp_entry(digits=3)), "unknown algorithm, digit count"),
        (pb_bytes(1, otp_entry(type=7)), "or type"),
        (pb_bytes(1, otp_entry(type=1, counter=-1)), "counter"),
        (pb_bytes(1, otp_entry(secret=b"short")), "only 40 bits"),
        (pb_bytes(1, otp_entry(secret=b"")), "only 0 bits"),
        (pb_bytes(1, otp_entry(name=b"")), "no account name"),
        (pb_bytes(1, otp_entry(name=b"\xff\xfe")), "not valid UTF-8"),
        (pb_bytes(1, otp_entry(name=b"Ex:a\nb")), "control characters"),
        (pb_int(2, 1), "holds no accounts"),
        (pb_int(3, 1) + pb_int(4, 0), "holds no accounts"),
        (GOOD_ENTRY[:-3], "damaged"),  # truncated inside the entry
        (GOOD_ENTRY + b"\x80", "damaged"),  # truncated varint key
        (GOOD_ENTRY + varint(9 << 3 | 1) + b"\x00" * 3, "damaged"),  # truncated fixed64
        (GOOD_ENTRY + varint(9 << 3 | 3), "damaged"),  # group start: not in this schema
        (GOOD_ENTRY + varint(9 << 3 | 6), "damaged"),  # undefined wire type
        (GOOD_ENTRY + varint(0 << 3 | 0) + b"\x01", "damaged"),  # field number 0
        (GOOD_ENTRY + pb_int(1, 5), "damaged"),  # otp_parameters sent as a varint
        (GOOD_ENTRY + varint(3 << 3) + b"\xff" * 10 + b"\x01", "damaged"),  # varint over 64 bits
    ],
    ids=lambda x: x if isinstance(x, str) else None,
)
def test_bad_migration_payloads_are_refused(payload: bytes, reason: str) -> None:
    with pytest.raises(InvalidSecret, match=reason):
        parse_migration(migration_uri(payload))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("otpauth-migration://online?data=AAAA", "Not an otpauth-migration export"),
        ("otpauth://offline?data=AAAA", "Not an otpauth-migration export"),
        ("otpauth-migration://offline?x=1", "no data parameter"),
        ("otpauth-migration://offline?data=", "no data parameter"),
        ("otpauth-migration://offline?data=CgA&data=CgA", "duplicate data"),
        ("otpauth-migration://offline?data=Cg%3D%3DA", "not base64"),
        ("otpauth-migration://offline?data=C", "not base64"),
        ("otpauth-migration://offline?data=" + "A" * 70000, "longer than"),
    ],
    ids=lambda x: x if len(x) < 40 else None,
)
def test_bad_migration_uris_are_refused(text: str, reason: str) -> None:
    with pytest.raises(InvalidSecret, match=reason):
        parse_migration(text)


def test_migration_accepts_a_maximum_length_seed() -> None:
    (seed,) = parse_migration(migration_uri(pb_bytes(1, otp_entry(secret=b"k" * 640))))
    assert seed.params.seed_bits == 640 * 8
    with pytest.raises(InvalidSecret, match="too long"):
        parse_migration(migration_uri(pb_bytes(1, otp_entry(secret=b"k" * 641))))


def test_seed_equality_ignores_the_cached_generator() -> None:
    a, b = parse_uri(BY_ID[1]["uri"]), parse_uri(BY_ID[1]["uri"])
    totp_at(a, 0)  # builds and caches a's pyotp object
    assert a == b and hash(a) == hash(b)
    assert isinstance(a, OtpSeed)
