"""The one-time-password engine: read TOTP/HOTP seeds and otpauth URIs, and make codes.

A seed arrives in one of three shapes: a bare base32 key, an ``otpauth://`` Key URI
(Google's Key-Uri-Format) or a Google Authenticator ``otpauth-migration://`` export. Each
becomes an :class:`OtpSeed` (the raw key plus non-secret :class:`OtpParams`), and
:func:`totp_at` / :func:`hotp_at` turn it into a code (RFC 6238 / RFC 4226). pyotp, through
its public API, is used here and nowhere else.

No message, exception or repr from this module carries a seed or any piece of one:
errors are fixed text plus parameter names, and a library's own error (whose text may
echo the input) is dropped, never chained.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from typing import Any, Literal
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

import pyotp
from pyotp.contrib import Steam

from mailgent_mcp.errors import InvalidInput, InvalidSecret

Algorithm = Literal["SHA1", "SHA256", "SHA512"]
Kind = Literal["totp", "hotp"]
Encoder = Literal["numeric", "steam"]

_ALGORITHMS: dict[str, Algorithm] = {"SHA1": "SHA1", "SHA256": "SHA256", "SHA512": "SHA512"}
_KINDS: dict[str, Kind] = {"totp": "totp", "hotp": "hotp"}
_ENCODERS: dict[str, Encoder] = {"numeric": "numeric", "steam": "steam"}
_DIGESTS: dict[str, Callable[..., Any]] = {
    "SHA1": hashlib.sha1,
    "SHA256": hashlib.sha256,
    "SHA512": hashlib.sha512,
}

_BASE32_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")  # RFC 4648 §6
_MAX_SEED_TEXT = 1024  # characters of base32 text: far beyond any real seed
_MAX_SEED_BYTES = 640  # what 1024 base32 characters decode to
_MIN_SEED_BYTES = 10  # 80 bits: the Key-Uri-Format's own example key is this short
_STRONG_SEED_BITS = 128  # RFC 4226 §4 R6: the shared secret MUST be at least 128 bits
_MAX_COUNTER = 2**64 - 1  # RFC 4226 §5.1: C is an 8-byte counter
_MAX_PERIOD = 120  # pyotp's limit; NIST SP 800-63B-4 §3.1.4.1: a new nonce every 2 minutes
_MAX_URI = 4096
_MAX_MIGRATION_URI = 65536  # one QR code holds < 3 KB; leave room for pasted text
_MAX_LABEL = 256
_MAX_QUERY_FIELDS = 64
_STEAM_DIGITS = 5  # Steam Guard: 5 characters from 23456789BCDFGHJKMNPQRTVWXY
_KNOWN_PARAMETERS = frozenset(
    {"secret", "issuer", "algorithm", "digits", "period", "counter", "encoder", "image"}
)
# Line breaks and C0/C1 controls, plus the bidi overrides that can make a label display
# as a different issuer (Trojan Source, CVE-2021-42574).
_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

_NOT_BASE32 = (
    "The TOTP seed has characters that are not base32 (A-Z and 2-7): 0, 1, 8 and 9 are not "
    "base32; check for O/0 and I/1 mix-ups."
)
_MIGRATION_DAMAGED = (
    "The otpauth-migration data is damaged or is not a Google Authenticator export; "
    "export the accounts again and copy the whole QR code text."
)


@dataclass(frozen=True)
class OtpParams:
    """Non-secret parameters of a one-time-password seed; safe to show and to store."""

    kind: Kind = "totp"
    algorithm: Algorithm = "SHA1"
    digits: int = 6  # 6..10 for numeric; 5 for steam
    period: int = 30  # seconds, 1..120; totp only
    counter: int | None = None  # hotp only, >= 0, required for hotp
    encoder: Encoder = "numeric"
    issuer: str | None = None
    account: str | None = None
    seed_bits: int = 0  # 0 = not known yet; OtpSeed fills it in
    weak: bool = False  # seed_bits < 128 (RFC 4226 §4 R6)

    def __post_init__(self) -> None:
        _check_code_shape(self)
        _check_text(self.issuer, "issuer")
        _check_text(self.account, "account")
        _check_int(self.seed_bits, "seed_bits", 0, _MAX_SEED_BYTES * 8)
        if not isinstance(self.weak, bool):
            raise InvalidSecret("The weak flag must be true or false.")
        if self.seed_bits:
            # Derived, never trusted from the caller: RFC 4226 §4 R6 asks for >= 128 bits.
            object.__setattr__(self, "weak", self.seed_bits < _STRONG_SEED_BITS)

    def to_dict(self) -> dict[str, object]:
        """These parameters as a JSON-safe dict, for storage and display."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> OtpParams:
        """Rebuild parameters stored by :meth:`to_dict`, checking every field."""
        if not isinstance(d, Mapping):
            raise InvalidSecret("Stored OTP parameters must be a JSON object.")
        known = {f.name for f in fields(cls)}
        if any(key not in known for key in d):
            # The unknown names are not echoed: a damaged record could hold anything.
            raise InvalidSecret(f"Stored OTP parameters have unknown fields; expected only {sorted(known)}.")
        values: dict[str, Any] = dict(d)
        return cls(**values)


@dataclass(frozen=True)
class OtpSeed:
    """A one-time-password key with its parameters; repr and str never show the key."""

    seed: bytes = field(repr=False)
    params: OtpParams
    name: str | None = None  # only set by migration import ("Issuer:account" label)

    def __post_init__(self) -> None:
        if not isinstance(self.seed, bytes):
            raise InvalidSecret("The TOTP seed must be raw bytes.")
        _check_seed_length(len(self.seed))
        if not isinstance(self.params, OtpParams):
            raise InvalidSecret("The OTP parameters must be an OtpParams.")
        _check_text(self.name, "name")
        bits = len(self.seed) * 8
        if self.params.seed_bits != bits:
            object.__setattr__(self, "params", replace(self.params, seed_bits=bits))

    @cached_property
    def _otp(self) -> pyotp.OTP:
        """The pyotp generator for this seed, built once (cached_property skips __setattr__)."""
        return _make_generator(self)


@dataclass(frozen=True)
class OtpCode:
    """A TOTP code with the time step it belongs to and the time it has left."""

    code: str
    remaining: int  # whole seconds left in this step, 1..period (rounded up)
    period: int
    digits: int
    algorithm: str
    expires_at: float  # Unix time when this code's step ends
    step: int  # the time-step counter T (RFC 6238 §4.2)


@dataclass(frozen=True)
class MigrationBatch:
    """One Google Authenticator export QR code: its seeds and which batch of the export it is."""

    seeds: tuple[OtpSeed, ...]
    version: int = 0
    batch_size: int = 0
    batch_index: int = 0
    batch_id: int = 0


# --- pyotp ---------------------------------------------------------------------------------
#
# pyotp refuses keys under 112 bits (NIST SP 800-63B-4) unless a subclass lowers
# `min_secret_length_bits`, the knob pyotp documents for this. We accept 80..127-bit keys on
# purpose (common in the wild; the Key-Uri-Format example JBSWY3DPEHPK3PXP is 80 bits) and
# flag them weak instead; the 80-bit floor itself is checked by decode_base32.


class _TOTP(pyotp.TOTP):
    min_secret_length_bits = _MIN_SEED_BYTES * 8


class _HOTP(pyotp.HOTP):
    min_secret_length_bits = _MIN_SEED_BYTES * 8


class _Steam(Steam):
    min_secret_length_bits = _MIN_SEED_BYTES * 8


def _make_generator(seed: OtpSeed) -> pyotp.OTP:
    """Build the pyotp object that computes codes for this seed."""
    params = seed.params
    secret = base64.b32encode(seed.seed).decode("ascii")
    if params.encoder == "steam":
        return _Steam(secret, interval=params.period)
    digest = _DIGESTS[params.algorithm]
    if params.kind == "hotp":
        return _HOTP(secret, digits=params.digits, digest=digest)
    return _TOTP(secret, digits=params.digits, digest=digest, interval=params.period)


# --- codes -------------------------------------------------------------------------------


def totp_at(seed: OtpSeed, at: float) -> OtpCode:
    """The TOTP code for Unix time ``at`` (RFC 6238 §4), with its step and the time left."""
    params = seed.params
    if params.kind != "totp":
        raise InvalidInput("This seed is HOTP, which counts uses rather than time; use hotp_at with its counter.")
    step = _time_step(at, params.period)
    end = (step + 1) * params.period
    # Rounded up, so a code read at the very start of its step shows the full period.
    remaining = min(params.period, max(1, math.ceil(end - at)))
    return OtpCode(
        code=seed._otp.generate_otp(step),
        remaining=remaining,
        period=params.period,
        digits=params.digits,
        algorithm=params.algorithm,
        expires_at=float(end),
        step=step,
    )


def hotp_at(seed: OtpSeed, counter: int) -> str:
    """The HOTP code for ``counter`` (RFC 4226 §5.3)."""
    if seed.params.kind != "hotp":
        raise InvalidInput("This seed is TOTP, which counts time rather than uses; use totp_at with a time.")
    if isinstance(counter, bool) or not isinstance(counter, int) or not 0 <= counter <= _MAX_COUNTER:
        raise InvalidInput("The HOTP counter must be a whole number from 0 to 2**64 - 1 (RFC 4226 §5.1).")
    return seed._otp.generate_otp(counter)


def _time_step(at: float, period: int) -> int:
    """RFC 6238 §4.2: T = floor((time - T0) / X) with T0 = 0, computed without float division."""
    bad = isinstance(at, bool) or not isinstance(at, (int, float))
    if bad or (isinstance(at, float) and not math.isfinite(at)) or at < 0:
        raise InvalidInput("The time must be a Unix timestamp at or after 1970-01-01 (RFC 6238: T0 = 0).")
    step = math.floor(at) // period
    if step > _MAX_COUNTER:
        raise InvalidInput("The time is too far in the future for an 8-byte TOTP counter (RFC 6238 §4.2).")
    return step


# --- base32 seeds ------------------------------------------------------------------------


def decode_base32(text: str) -> bytes:
    """Decode a base32 seed as people paste it: any case, spaced or dashed, padded or not."""
    if not isinstance(text, str):
        raise InvalidSecret("The TOTP seed must be text: the base32 seed or an otpauth:// URI.")
    if len(text) > _MAX_SEED_TEXT:
        raise InvalidSecret(f"The text is too long to be a TOTP seed (over {_MAX_SEED_TEXT} characters).")
    compact = "".join(text.split()).replace("-", "")
    if not compact.isascii():  # before upper(): "ſ".upper() is "S"
        raise InvalidSecret(_NOT_BASE32)
    compact = compact.upper().rstrip("=")
    if not compact:
        raise InvalidSecret("The TOTP seed is empty; paste the base32 seed or the otpauth:// URI.")
    if "=" in compact:
        raise InvalidSecret("The TOTP seed has '=' padding before its end; '=' may only come last.")
    if not _BASE32_ALPHABET.issuperset(compact):
        raise InvalidSecret(_NOT_BASE32)
    # RFC 4648 §6: a final quantum is 2, 4, 5, 7 or 8 characters, never 1, 3 or 6.
    if len(compact) % 8 in (1, 3, 6):
        raise InvalidSecret(
            "The TOTP seed has a length no base32 text can have: a character is missing or extra; "
            "check it was copied whole."
        )
    raw = _b32decode(compact + "=" * (-len(compact) % 8))
    _check_seed_length(len(raw))
    return raw


def _b32decode(padded: str) -> bytes:
    """base64.b32decode, with the library's error (which may echo input) dropped."""
    try:
        return base64.b32decode(padded)
    except (binascii.Error, ValueError):
        pass
    raise InvalidSecret(_NOT_BASE32) from None  # raised outside `except`: nothing chained


def _check_seed_length(size: int) -> None:
    """Reject keys shorter than 80 bits (a copy error) or longer than any real seed."""
    if size < _MIN_SEED_BYTES:
        raise InvalidSecret(
            f"The TOTP seed is only {size * 8} bits; a real TOTP seed is at least 80 bits "
            "(16 base32 characters): check it was copied whole."
        )
    if size > _MAX_SEED_BYTES:
        raise InvalidSecret(f"The key is too long to be a TOTP seed (over {_MAX_SEED_BYTES} bytes).")


# --- parameter checks (shared by every input shape) ---------------------------------------


def _check_int(value: object, name: str, low: int, high: int) -> int:
    """Return ``value`` if it is a whole number in [low, high], else reject it by name."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidSecret(f"The {name} must be a whole number from {low} to {high}.")
    return value


def _check_algorithm(value: object) -> Algorithm:
    """Accept SHA1, SHA256 or SHA512 in any case (RFC 6238 §1.2)."""
    algorithm = _ALGORITHMS.get(value.strip().upper()) if isinstance(value, str) else None
    if algorithm is None:
        raise InvalidSecret("The algorithm must be SHA1, SHA256 or SHA512.")
    return algorithm


def _check_code_shape(params: OtpParams) -> None:
    """Check kind, algorithm, encoder, digits, period and counter together."""
    if params.kind not in _KINDS:
        raise InvalidSecret("The OTP kind must be totp or hotp.")
    if params.algorithm not in _ALGORITHMS:
        raise InvalidSecret("The algorithm must be SHA1, SHA256 or SHA512.")
    if params.encoder not in _ENCODERS:
        raise InvalidSecret("The encoder must be numeric or steam.")
    _check_int(params.period, "period", 1, _MAX_PERIOD)
    if params.encoder == "steam":
        if params.kind != "totp" or params.algorithm != "SHA1" or params.digits != _STEAM_DIGITS:
            raise InvalidSecret("The steam encoder works only with totp, SHA1 and 5-character codes.")
    else:
        _check_int(params.digits, "digits", 6, 10)  # pyotp's range; RFC 4226 §5.3 asks >= 6
    if params.kind == "hotp":
        _check_int(params.counter, "counter", 0, _MAX_COUNTER)
    elif params.counter is not None:
        raise InvalidSecret("A counter applies only to hotp seeds; leave it out for totp.")


def _check_text(value: object, what: str) -> None:
    """Accept None or a display string of at most 256 characters with no control characters."""
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidSecret(f"The {what} must be text.")
    if len(value) > _MAX_LABEL:
        raise InvalidSecret(f"The {what} is longer than {_MAX_LABEL} characters.")
    if _has_control(value):
        raise InvalidSecret(f"The {what} contains control characters.")


def _has_control(text: str) -> bool:
    """True if ``text`` holds control, line-break or bidi-override characters."""
    return any(ch in _BIDI_CONTROLS or unicodedata.category(ch) in _CONTROL_CATEGORIES for ch in text)


def _clean_name(value: str | None) -> str | None:
    """Strip surrounding whitespace; an empty name becomes None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidSecret("The issuer and account must be text.")
    return value.strip() or None


# --- parse_secret ------------------------------------------------------------------------


def parse_secret(
    text: str,
    *,
    algorithm: str | None = None,
    digits: int | None = None,
    period: int | None = None,
    issuer: str | None = None,
    account: str | None = None,
) -> OtpSeed:
    """Read a base32 seed, an otpauth:// URI or a one-seed otpauth-migration:// export."""
    if not isinstance(text, str):
        raise InvalidSecret("The TOTP seed must be text: the base32 seed or an otpauth:// URI.")
    stripped = text.strip()
    head = stripped[:20].lower()  # ':' is not base32, so no seed starts like these
    if head.startswith("otpauth-migration:"):
        seed = _single_totp(parse_migration(stripped))
    elif head.startswith("otpauth:"):
        seed = parse_uri(stripped)
    elif "://" in head:
        # Some other URI (a web page's https:// link, say): say so, instead of "not base32".
        raise InvalidSecret(
            "The TOTP secret is a URI but not an otpauth:// one; give the base32 seed or the "
            "otpauth://totp/... URI that the service shows (often behind 'can't scan the QR code?')."
        )
    else:
        params = OtpParams(
            algorithm="SHA1" if algorithm is None else _check_algorithm(algorithm),
            digits=6 if digits is None else digits,
            period=30 if period is None else period,
            issuer=_clean_name(issuer),
            account=_clean_name(account),
        )
        return OtpSeed(decode_base32(stripped), params)
    return _apply_overrides(seed, algorithm, digits, period, issuer, account)


def _single_totp(seeds: list[OtpSeed]) -> OtpSeed:
    """The one TOTP seed of a migration export, or a pointer to the bulk import."""
    if len(seeds) != 1:
        raise InvalidSecret(
            f"This otpauth-migration export holds {len(seeds)} seeds; "
            "import it with `mailgent-mcp vault import`."
        )
    if seeds[0].params.kind != "totp":
        raise InvalidSecret(
            "This otpauth-migration export holds 1 HOTP seed, not a TOTP seed; "
            "import it with `mailgent-mcp vault import`."
        )
    return seeds[0]


def _apply_overrides(
    seed: OtpSeed,
    algorithm: str | None,
    digits: int | None,
    period: int | None,
    issuer: str | None,
    account: str | None,
) -> OtpSeed:
    """Check keyword arguments against a URI: they may fill gaps but never contradict it."""
    params = seed.params
    wanted: dict[str, object] = {
        "algorithm": None if algorithm is None else _check_algorithm(algorithm),
        "digits": digits,
        "period": period,
        "issuer": _clean_name(issuer),
        "account": _clean_name(account),
    }
    filled: dict[str, Any] = {}
    for name, value in wanted.items():
        current = getattr(params, name)
        if value is None or value == current:
            continue
        if name in ("issuer", "account") and current is None:
            filled[name] = value
            continue
        raise InvalidSecret(f"The {name} argument disagrees with the URI; leave it out or make them match.")
    return replace(seed, params=replace(params, **filled)) if filled else seed


# --- otpauth:// Key URIs -----------------------------------------------------------------


def parse_uri(uri: str) -> OtpSeed:
    """Read an otpauth:// Key URI (Google Key-Uri-Format) into a seed and its parameters."""
    kind, label, query = _split_uri(uri)
    label_issuer, account = _split_label(label)
    values = _query_values(query)
    secret = values.get("secret")
    if secret is None:
        raise InvalidSecret("The otpauth URI has no secret parameter; it is required.")
    if not secret.strip():
        raise InvalidSecret("The otpauth URI's secret parameter is empty; copy the URI again.")
    raw = decode_base32(secret)
    return OtpSeed(raw, _uri_params(kind, values, label_issuer, account))


def _split_uri(uri: str) -> tuple[Kind, str, str]:
    """Check the scheme and type; return the type, the percent-decoded label and the query."""
    if not isinstance(uri, str):
        raise InvalidSecret("The otpauth URI must be text.")
    text = uri.strip()
    if len(text) > _MAX_URI:
        raise InvalidSecret(f"The otpauth URI is longer than {_MAX_URI} characters.")
    if _has_control(text):
        raise InvalidSecret("The otpauth URI contains control characters.")
    if "#" in text:
        raise InvalidSecret("The otpauth URI contains '#'; a '#' in a name must be written %23.")
    parts = _urlsplit(text)
    if parts is None or text[:10].lower() != "otpauth://":
        raise InvalidSecret("Not an otpauth URI: it must start with otpauth://totp/ or otpauth://hotp/.")
    kind = _KINDS.get(parts.netloc.lower())  # RFC 3986 §3.2.2: the host is case-insensitive
    if kind is None:
        raise InvalidSecret("The otpauth URI type must be totp or hotp.")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    # Key-Uri-Format: the label is percent-encoded; '+' in a path is a literal '+'.
    label = _unquote(path)
    if label is None:
        raise InvalidSecret("The otpauth URI label is not valid UTF-8 once percent-decoded.")
    return kind, label, parts.query


def _urlsplit(text: str) -> SplitResult | None:
    """urllib's urlsplit, or None where it refuses (for example a malformed IPv6 host)."""
    try:
        return urlsplit(text)
    except ValueError:
        return None


def _unquote(text: str) -> str | None:
    """Percent-decode strictly as UTF-8 (no '+' to space), or None if that fails."""
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        return None


def _split_label(label: str) -> tuple[str | None, str]:
    """Split ``Issuer:account`` on its first ':' (Key-Uri-Format "Label"); both trimmed."""
    _check_text(label, "label")
    prefix, colon, account = label.partition(":")
    issuer = (prefix.strip() or None) if colon else None
    account = (account if colon else label).strip()
    if not account:
        raise InvalidSecret("The label has no account name; write it as Issuer:account (Key-Uri-Format).")
    return issuer, account


def _query_values(query: str) -> dict[str, str]:
    """Form-decode the query ('+' is a space); any repeated parameter is ambiguous and refused."""
    pairs = _parse_qsl(query)
    if pairs is None:
        raise InvalidSecret("The otpauth URI query cannot be read (bad UTF-8 or too many parameters).")
    values: dict[str, str] = {}
    for key, value in pairs:
        name = key.strip().lower()
        if name in values:
            if name in _KNOWN_PARAMETERS:
                raise InvalidSecret(f"The otpauth URI has a duplicate {name} parameter; keep one.")
            raise InvalidSecret("The otpauth URI repeats a parameter; keep one of each.")
        values[name] = value
    return values


def _parse_qsl(query: str) -> list[tuple[str, str]] | None:
    """urllib's parse_qsl keeping blank values, or None where it refuses."""
    try:
        return parse_qsl(query, keep_blank_values=True, errors="strict", max_num_fields=_MAX_QUERY_FIELDS)
    except ValueError:  # UnicodeDecodeError is a ValueError too
        return None


def _uri_params(kind: Kind, values: dict[str, str], label_issuer: str | None, account: str) -> OtpParams:
    """Build OtpParams from the URI's parameters; unknown parameters are ignored."""
    # Project decision (ISSUE: "issuer parameter wins"): the Key-Uri-Format says a label
    # prefix and an issuer parameter should be equal; where they differ we keep the
    # parameter, which is what Google Authenticator shows, rather than refuse the URI.
    issuer = _clean_name(values.get("issuer")) or label_issuer
    encoder = _uri_encoder(values.get("encoder"))
    digits = _uri_digits(values.get("digits"), encoder)
    period = 30
    if kind == "totp" and "period" in values:
        period = _uri_int(values["period"], "period", 1, _MAX_PERIOD)
    counter = None
    if kind == "hotp":
        if "counter" not in values:
            raise InvalidSecret("An hotp otpauth URI needs a counter parameter (Key-Uri-Format: REQUIRED).")
        counter = _uri_int(values["counter"], "counter", 0, _MAX_COUNTER)
    return OtpParams(
        kind=kind,
        algorithm=_check_algorithm(values.get("algorithm", "SHA1")),
        digits=digits,
        period=period,
        counter=counter,
        encoder=encoder,
        issuer=issuer,
        account=account,
    )


def _uri_encoder(value: str | None) -> Encoder:
    """The ``encoder`` extension: absent for numeric codes, ``steam`` for Steam Guard."""
    if value is None:
        return "numeric"
    if value.strip().lower() != "steam":
        raise InvalidSecret("The encoder parameter must be steam, or left out for numeric codes.")
    return "steam"


def _uri_digits(value: str | None, encoder: Encoder) -> int:
    """Digits: 6 when absent; 6..10 (this project's rule, pyotp's range); 5 for steam."""
    if encoder == "steam":
        if value is not None and value.strip() != str(_STEAM_DIGITS):
            raise InvalidSecret("Steam Guard codes have 5 characters; drop the digits parameter or set it to 5.")
        return _STEAM_DIGITS
    return 6 if value is None else _uri_int(value, "digits", 6, 10)


def _uri_int(text: str, name: str, low: int, high: int) -> int:
    """A URI parameter as a plain decimal in [low, high]: no sign, spaces or exponent."""
    if not re.fullmatch(r"[0-9]{1,20}", text) or not low <= int(text) <= high:
        raise InvalidSecret(f"The {name} parameter must be a whole number from {low} to {high}.")
    return int(text)


# --- otpauth-migration:// (Google Authenticator export) ----------------------------------


def parse_migration(uri: str) -> list[OtpSeed]:
    """Read every seed from a Google Authenticator otpauth-migration:// export."""
    return list(parse_migration_batch(uri).seeds)


def parse_migration_batch(uri: str) -> MigrationBatch:
    """Read a Google Authenticator export QR code: its seeds and its place in the export."""
    found = _proto_fields(_migration_data(uri), ints={2, 3, 4, 5}, blobs={1})
    entries = [value for number, value in found if number == 1]
    if not entries:
        raise InvalidSecret("The otpauth-migration export holds no accounts.")
    seeds = tuple(_migration_entry(entry) for entry in entries if isinstance(entry, bytes))
    last = _last_ints(found)
    return MigrationBatch(
        seeds=seeds,
        version=last.get(2, 0),
        batch_size=last.get(3, 0),
        batch_index=last.get(4, 0),
        batch_id=_signed(last.get(5, 0)),  # int32 on the wire
    )


def _migration_data(uri: str) -> bytes:
    """The protobuf bytes inside ``otpauth-migration://offline?data=...``."""
    if not isinstance(uri, str):
        raise InvalidSecret("The otpauth-migration URI must be text.")
    text = uri.strip()
    if len(text) > _MAX_MIGRATION_URI:
        raise InvalidSecret(f"The otpauth-migration URI is longer than {_MAX_MIGRATION_URI} characters.")
    parts = _urlsplit(text)
    if parts is None or parts.scheme != "otpauth-migration" or parts.netloc.lower() != "offline":
        raise InvalidSecret("Not an otpauth-migration export: it must start with otpauth-migration://offline?data=.")
    data = None
    for piece in parts.query.split("&"):
        key, _, value = piece.partition("=")
        if key.strip().lower() == "data":
            if data is not None:
                raise InvalidSecret("The otpauth-migration URI has a duplicate data parameter; keep one.")
            data = value
    if not data:
        raise InvalidSecret("The otpauth-migration URI has no data parameter.")
    # The data is base64 then percent-encoded; a raw '+' is base64's '+', not a space.
    return _b64decode(unquote(data))


def _b64decode(text: str) -> bytes:
    """Standard or url-safe base64, padding optional; the library's error is dropped."""
    compact = text.strip().replace("-", "+").replace("_", "/").rstrip("=")
    if re.fullmatch(r"[A-Za-z0-9+/]+", compact) and len(compact) % 4 != 1:
        try:
            return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
        except (binascii.Error, ValueError):
            pass
    raise InvalidSecret("The otpauth-migration data is not base64; copy the whole QR code text.") from None


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Read a protobuf base-128 varint at ``pos``; return it and the next position."""
    value = 0
    for shift in range(0, 70, 7):  # at most 10 bytes for 64 bits
        if pos >= len(buf):
            raise InvalidSecret(_MIGRATION_DAMAGED)
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value > _MAX_COUNTER:
                break
            return value, pos
    raise InvalidSecret(_MIGRATION_DAMAGED)


def _iter_proto(buf: bytes) -> Iterator[tuple[int, int, int | bytes | None]]:
    """Yield (field number, wire type, value) per field; fixed-width values are skipped (None)."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise InvalidSecret(_MIGRATION_DAMAGED)
        if wire == 0:  # varint
            value, pos = _read_varint(buf, pos)
            yield number, wire, value
        elif wire == 2:  # length-delimited
            length, pos = _read_varint(buf, pos)
            if length > len(buf) - pos:
                raise InvalidSecret(_MIGRATION_DAMAGED)
            yield number, wire, buf[pos : pos + length]
            pos += length
        elif wire in (1, 5):  # fixed64, fixed32: nothing in this schema, skip
            pos += 8 if wire == 1 else 4
            if pos > len(buf):
                raise InvalidSecret(_MIGRATION_DAMAGED)
            yield number, wire, None
        else:  # 3, 4 (groups, deprecated) and 6, 7 (undefined)
            raise InvalidSecret(_MIGRATION_DAMAGED)


def _proto_fields(buf: bytes, *, ints: set[int], blobs: set[int]) -> list[tuple[int, int | bytes]]:
    """The schema's fields of one message, wire types checked; unknown fields dropped."""
    found: list[tuple[int, int | bytes]] = []
    for number, wire, value in _iter_proto(buf):
        if number in ints or number in blobs:
            if value is None or (wire == 0) != (number in ints):
                raise InvalidSecret(_MIGRATION_DAMAGED)
            found.append((number, value))
    return found


def _last_ints(found: list[tuple[int, int | bytes]]) -> dict[int, int]:
    """Singular varint fields; a repeated one keeps its last value (protobuf merge rule)."""
    return {number: value for number, value in found if isinstance(value, int)}


def _signed(value: int) -> int:
    """Two's-complement view of a 64-bit varint (protobuf int32/int64)."""
    return value - 2**64 if value >= 2**63 else value


_MIGRATION_ALGORITHMS: dict[int, Algorithm] = {0: "SHA1", 1: "SHA1", 2: "SHA256", 3: "SHA512"}
_MIGRATION_DIGITS = {0: 6, 1: 6, 2: 8}
_MIGRATION_KINDS: dict[int, Kind] = {0: "totp", 1: "hotp", 2: "totp"}


def _migration_entry(buf: bytes) -> OtpSeed:
    """One OtpParameters message: raw secret, name, issuer and the enums."""
    found = _proto_fields(buf, ints={4, 5, 6, 7}, blobs={1, 2, 3})
    blobs = {number: value for number, value in found if isinstance(value, bytes)}
    last = _last_ints(found)
    if last.get(4) == 4:
        raise InvalidSecret("An account in the export uses MD5, which is not supported; use SHA1, SHA256 or SHA512.")
    algorithm = _MIGRATION_ALGORITHMS.get(last.get(4, 0))
    digits = _MIGRATION_DIGITS.get(last.get(5, 0))
    kind = _MIGRATION_KINDS.get(last.get(6, 0))
    if algorithm is None or digits is None or kind is None:
        raise InvalidSecret("An account in the export has an unknown algorithm, digit count or type.")
    name = _utf8(blobs.get(2, b""))
    label_issuer, account = _split_label(name)
    counter = None
    if kind == "hotp":
        counter = _signed(last.get(7, 0))  # int64 on the wire; absent means 0 (proto3)
    params = OtpParams(
        kind=kind,
        algorithm=algorithm,
        digits=digits,
        counter=counter,
        issuer=_clean_name(_utf8(blobs.get(3, b""))) or label_issuer,
        account=account,
    )
    return OtpSeed(blobs.get(1, b""), params, name=name)


def _utf8(raw: bytes) -> str:
    """A protobuf string field, decoded strictly."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    raise InvalidSecret("An account name in the export is not valid UTF-8.") from None
