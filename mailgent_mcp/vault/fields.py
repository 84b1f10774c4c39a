"""What a vault entry may hold: its name, its type, its fields, and where a TOTP seed goes.

A seed is sealed apart and never returned, so it must not slip in as an ordinary field: a
field named like a seed field (`totp_secret`, `Secret`, `otpauth`...) is taken as the seed,
and an otpauth:// URI in any other field is refused. Error texts name fields by position,
never by name: a caller that swapped a key and its value would otherwise see its secret
quoted back.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from mailgent_mcp.errors import InvalidInput
from mailgent_mcp.vault.models import EntryType

SECRET_FIELD = "secret"
MAX_NAME_CHARS = 128
MAX_VALUE_BYTES = 64 * 1024
MAX_FIELDS = 32
FIELD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
# Unicode categories refused in names: controls, format (bidi overrides, zero-width), separators.
_FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}

# Field names, lowered and without "_", "-" and ".", that mean the TOTP seed.
SEED_FIELD_NAMES = frozenset({
    "secret", "seed", "totp", "totpsecret", "totpseed", "totpkey", "totpuri", "otp", "otpsecret", "otpseed", "otpkey",
    "otpauth", "otpauthuri", "otpuri", "mfa", "mfasecret", "mfaseed", "mfakey", "2fa", "2fasecret", "2faseed",
    "2fakey", "twofactor", "twofactorsecret", "twofactorkey", "authenticator", "authenticatorkey",
    "authenticatorsecret", "authenticatorseed", "googleauthenticator", "base32", "base32secret", "base32seed",
})
_OTPAUTH = re.compile(r"otpauth(?:-migration)?:", re.I)
_SEPARATORS = re.compile(r"[_.-]")


def validate_name(name: object) -> str:
    """An entry name: 1-128 characters, no control or invisible characters, NFC-normalised."""
    if not isinstance(name, str):
        raise InvalidInput("The entry name must be a string.")
    name = unicodedata.normalize("NFC", name)
    if not name or not name.strip():
        raise InvalidInput("The entry name is empty; give a name such as 'github' or 'aws/prod'.")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidInput(f"The entry name is {len(name)} characters; the limit is {MAX_NAME_CHARS}.")
    if any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in name):
        raise InvalidInput(
            "The entry name contains a control or invisible character (newline, tab, zero-width...); "
            "use printable characters only."
        )
    if name != name.strip():
        raise InvalidInput("The entry name starts or ends with whitespace; remove it.")
    return name


def parse_type(value: object) -> EntryType:
    """An entry type from any case: LOGIN, API_KEY, TOTP or NOTE."""
    text = str(value).strip().upper().replace("-", "_")
    try:
        return EntryType(text)
    except ValueError:
        allowed = ", ".join(t.value for t in EntryType)
        raise InvalidInput(f"Unknown entry type {str(value)[:40]!r}; use one of {allowed}.") from None


def secret_shaped(field: str) -> bool:
    """Whether a field name looks like a secret value (a base32 seed, a hex or random key) rather than a name."""
    compact = _SEPARATORS.sub("", field)
    if len(compact) < 16 or "_" in field:
        return False  # names are words, often joined by "_" (AWS_SECRET_ACCESS_KEY); seeds have none
    digits = sum(ch.isdigit() for ch in compact)
    if re.fullmatch(r"[A-Z2-7]+", compact):
        return True  # base32 as services print seeds: upper case, no word breaks
    if re.fullmatch(r"[a-z2-7]+", compact, re.I) and digits >= 2:
        return True  # base32 in another case
    if re.fullmatch(r"[0-9a-f]+", compact, re.I) and digits >= 4:
        return True  # hex
    # A long random token: many digits and no run of lower-case letters a word would have.
    return digits >= 4 and len(compact) >= 20 and not re.search(r"[a-z]{4}", compact)


def validate_fields(data: Mapping[str, object]) -> dict[str, str | None]:
    """Field names and sizes; a None value means 'remove this field'. Neither names nor values are echoed."""
    if not isinstance(data, Mapping):
        raise InvalidInput("data must be an object of field names to string values.")
    if len(data) > MAX_FIELDS:
        raise InvalidInput(f"An entry holds at most {MAX_FIELDS} fields; {len(data)} were given.")
    clean: dict[str, str | None] = {}
    for position, (field, value) in enumerate(data.items(), 1):
        if not isinstance(field, str) or not FIELD_NAME.match(field):
            raise InvalidInput(
                f"Field name number {position} in data is not allowed; use 1-64 letters, digits, '_', '-' or '.', "
                "starting with a letter or digit (username, password, secret, url, notes, api_key...)."
            )
        if secret_shaped(field):
            raise InvalidInput(
                f"Field name number {position} in data looks like a secret value (a seed or a key), not a name; "
                "nothing was stored. Put values in the field values, e.g. data.secret for a TOTP seed."
            )
        if value is None:
            clean[field] = None
            continue
        if not isinstance(value, str):
            raise InvalidInput(f"The value of field number {position} in data must be a string.")
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidInput(
                f"The value of field number {position} in data is not valid text (it holds bytes that are not "
                "UTF-8, so it could never be read back). Nothing was stored; store binary data as base64."
            ) from None
        if size > MAX_VALUE_BYTES:
            raise InvalidInput(
                f"The value of field number {position} in data is {size} bytes; the limit is {MAX_VALUE_BYTES} "
                "bytes. Nothing was stored."
            )
        clean[field] = value
    return clean


def _compact(field: str) -> str:
    """A field name lowered and without "_", "-" and ".", as the name lists hold them."""
    return _SEPARATORS.sub("", field).lower()


def is_seed_field(field: str) -> bool:
    """Whether a field name means the TOTP seed (secret, totp_secret, Secret, otpauth, mfa_seed...)."""
    return _compact(field) in SEED_FIELD_NAMES


def take_seed(fields: dict[str, str | None]) -> str | None:
    """Remove and return the seed text from fields (under any seed field name); refuse a seed anywhere else.

    A field named like the seed field but holding None is removed as the seed. Two seed
    fields, or an otpauth:// URI in an ordinary field, are refused.
    """
    positions = {field: position for position, field in enumerate(fields, 1)}
    named = [f for f in fields if is_seed_field(f)]
    if len(named) > 1:
        raise InvalidInput("Give the TOTP seed once, as data.secret; fields such as totp_secret, seed or otpauth "
                           "also mean the seed.")
    for field, value in fields.items():
        if field not in named and value is not None and _OTPAUTH.search(value):
            raise InvalidInput(
                f"Field number {positions[field]} in data holds an otpauth:// URI; pass it as data.secret, so that "
                "it is sealed as the TOTP seed and never returned. Nothing was stored."
            )
    if not named:
        return None
    field = named[0]
    value = fields.pop(field)
    if value is None:
        fields[SECRET_FIELD] = None  # removing the seed
        return None
    return value


# Recovery codes: kept as two sealed fields holding JSON lists, the unused and the used ones, by
# the names the hosted Mailgent API uses. A caller gives backupCodes (or a field named like it);
# usedBackupCodes is the vault's own.
BACKUP_FIELD = "backupCodes"
USED_BACKUP_FIELD = "usedBackupCodes"
MAX_BACKUP_CODES = 64
MAX_BACKUP_CODE_CHARS = 64
BACKUP_FIELD_NAMES = frozenset({
    "backupcodes", "backupcode", "recoverycodes", "recoverycode", "scratchcodes", "emergencycodes",
    "mfabackupcodes", "2fabackupcodes",
})
_CODE_SEPARATORS = re.compile(r"[\s,;]+")
_ABSENT = object()


def take_backup_codes(data: object) -> list[str] | object | None:
    """Remove the recovery codes from data and return them as a clean list; None removes them; ABSENT if not given.

    They may come as a list of strings or as one string of codes separated by spaces, commas
    or lines (as services print them). Codes are kept as typed, duplicates once. Data that
    is not a dict holds none (validate_fields refuses it).
    """
    if not isinstance(data, dict):
        return _ABSENT
    names = {f: _compact(f) for f in data if isinstance(f, str)}
    named = [f for f, compact in names.items() if compact in BACKUP_FIELD_NAMES]
    if _compact(USED_BACKUP_FIELD) in names.values():
        raise InvalidInput(f"{USED_BACKUP_FIELD} is kept by the vault as codes are used; give {BACKUP_FIELD} only.")
    if not named:
        return _ABSENT
    if len(named) > 1:
        raise InvalidInput(f"Give the recovery codes once, as data.{BACKUP_FIELD}.")
    value = data.pop(named[0])
    if value is None:
        return None
    if isinstance(value, str):
        items: list[object] = [c for c in _CODE_SEPARATORS.split(value) if c]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise InvalidInput(f"data.{BACKUP_FIELD} must be a list of codes, or one string of codes separated by "
                           "spaces, commas or lines.")
    codes: list[str] = []
    for position, item in enumerate(items, 1):
        if not isinstance(item, str):
            raise InvalidInput(f"Recovery code number {position} must be a string.")
        code = item.strip()
        if not code or len(code) > MAX_BACKUP_CODE_CHARS or not code.isprintable() or " " in code:
            raise InvalidInput(f"Recovery code number {position} must be 1-{MAX_BACKUP_CODE_CHARS} printable "
                               "characters without spaces. Nothing was stored.")
        if code not in codes:
            codes.append(code)
    if not codes:
        raise InvalidInput(f"data.{BACKUP_FIELD} holds no code; nothing was stored. To drop an entry's recovery "
                           "codes, remove the field instead.")
    if len(codes) > MAX_BACKUP_CODES:
        raise InvalidInput(f"At most {MAX_BACKUP_CODES} recovery codes are kept per entry; {len(codes)} were given.")
    return codes


def given(value: object) -> bool:
    """Whether take_backup_codes found the field (a list, or None to remove it)."""
    return value is not _ABSENT
