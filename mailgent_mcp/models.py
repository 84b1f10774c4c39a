"""Result shapes shared by the vault, the CLI and the MCP tools. None of them holds a seed."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class EntryType(StrEnum):
    """What an entry is for; it steers display, not what fields it may hold."""

    LOGIN = "LOGIN"
    API_KEY = "API_KEY"
    TOTP = "TOTP"
    NOTE = "NOTE"


def iso(ts: float) -> str:
    """Unix time as ISO 8601 UTC with a Z, to the second."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TotpInfo(BaseModel):
    """A stored seed's parameters; the seed itself never leaves the vault."""

    issuer: str | None = None
    account: str | None = None
    algorithm: str = Field(description="HMAC hash: SHA1, SHA256 or SHA512")
    digits: int = Field(description="Code length")
    period: int = Field(description="Seconds each code is valid")
    encoder: str = Field(default="numeric", description="numeric, or steam for Steam Guard codes")
    seed_bits: int = Field(description="Length of the stored seed in bits")
    weak: bool = Field(description="True when the seed is shorter than RFC 4226's 128-bit minimum")


class EntryInfo(BaseModel):
    """An entry as stored, without any field value."""

    name: str
    type: EntryType
    has_totp: bool
    totp: TotpInfo | None = None
    fields: list[str] = Field(default_factory=list, description="Names of the stored fields")
    created_at: str
    updated_at: str


class EntryView(EntryInfo):
    """An entry with its field values (never the TOTP seed)."""

    data: dict[str, str] = Field(default_factory=dict)


class EntrySummary(BaseModel):
    """One line of a vault listing."""

    name: str
    type: EntryType
    has_totp: bool
    updated_at: str


class TotpCode(BaseModel):
    """A one-time code and how long it stays valid."""

    name: str
    code: str
    remaining: int = Field(description="Whole seconds this code stays valid")
    period: int
    digits: int
    algorithm: str
    expires_at: str = Field(description="When the code stops being valid (ISO 8601 UTC)")
    waited: float = Field(default=0.0, description="Seconds spent waiting for a fresh code (min_remaining)")


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
