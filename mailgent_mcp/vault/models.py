"""Result shapes shared by the vault, the CLI and the MCP tools. None of them holds a seed."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class EntryType(StrEnum):
    """What an entry is for; it steers display, not what fields it may hold."""

    LOGIN = "LOGIN"
    API_KEY = "API_KEY"
    TOTP = "TOTP"
    NOTE = "NOTE"


class TotpInfo(BaseModel):
    """A stored seed's parameters; the seed itself never leaves the vault."""

    issuer: str | None = Field(default=None, description="Service named by the otpauth URI")
    account: str | None = Field(default=None, description="Account named by the otpauth URI")
    algorithm: str = Field(description="HMAC hash: SHA1, SHA256 or SHA512")
    digits: int = Field(description="Code length")
    period: int = Field(description="Seconds each code is valid")
    encoder: str = Field(default="numeric", description="numeric, or steam for Steam Guard codes")
    seed_bits: int = Field(description="Length of the stored seed in bits")
    weak: bool = Field(description="True when the seed is shorter than RFC 4226's 128-bit minimum")


class EntryInfo(BaseModel):
    """An entry as stored, without any field value."""

    name: str = Field(description="Entry name")
    type: EntryType = Field(description="LOGIN, API_KEY, TOTP or NOTE")
    has_totp: bool = Field(description="Whether a TOTP seed is stored")
    totp: TotpInfo | None = Field(default=None, description="The seed's parameters, never the seed")
    fields: list[str] = Field(default_factory=list, description="Names of the stored fields")
    backup_codes_remaining: int | None = Field(default=None, description=(
        "Unused recovery codes (vault_backup_code hands one out); null: none stored"))
    created_at: str = Field(description="ISO 8601 UTC")
    updated_at: str = Field(description="ISO 8601 UTC")


class StoredEntry(EntryInfo):
    """What vault_put stored; a password it generated is shown here once."""

    generated_password: str | None = Field(default=None, description=(
        "The password made for generate_password: use it in the sign-up form now"))


class EntryView(EntryInfo):
    """An entry with its field values (never the TOTP seed, never the recovery codes)."""

    data: dict[str, str] = Field(default_factory=dict, description="Field values by name")


class EntrySummary(BaseModel):
    """One line of a vault listing."""

    name: str = Field(description="Entry name")
    type: EntryType = Field(description="LOGIN, API_KEY, TOTP or NOTE")
    has_totp: bool = Field(description="Whether a TOTP seed is stored")
    updated_at: str = Field(description="ISO 8601 UTC")


class BackupCode(BaseModel):
    """A recovery code, now marked used."""

    name: str = Field(description="Entry name")
    code: str = Field(description="Type it where the service asks for a recovery or backup code")
    remaining: int = Field(description="Unused recovery codes left after this one")


class TotpCode(BaseModel):
    """A one-time code and how long it stays valid."""

    name: str = Field(description="Entry name")
    code: str = Field(description="The code to type; no one else was handed it")
    remaining: int = Field(description="Whole seconds this code stays valid")
    period: int = Field(description="Seconds each code is valid")
    digits: int = Field(description="Code length")
    algorithm: str = Field(description="HMAC hash")
    expires_at: str = Field(description="When the code stops being valid (ISO 8601 UTC)")
    waited: float = Field(default=0.0, description="Seconds spent waiting for a fresh code")


class AuditRecord(BaseModel):
    """One audit row: what was done to which entry, by whom, and how it ended. Never a value."""

    seq: int
    at: str
    op: str
    entry: str | None
    actor: str
    outcome: str


class AuditReport(BaseModel):
    """The verdict of `audit verify`: the chain, its head, and every entry against its newest recorded state."""

    ok: bool
    rows: int
    problem: str | None = Field(default=None, description="The first problem found")
    entries: int = Field(default=0, description="Entries compared with their recorded state")
    entry_problems: list[str] = Field(default_factory=list, description="Entries that differ from the log")
    breaks: list[str] = Field(default_factory=list, description="Breaks recorded by `audit acknowledge`")
    unwritten: int = Field(default=0, description="Rows of this process still waiting to be written")
