"""The vault tools: vault_put, vault_get, vault_totp, vault_backup_code, vault_list, vault_delete.

Each tool is a thin adapter over the Vault (vault/entries.py): typed inputs, structured
outputs, run inside the error boundary of boundary.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, ConfigDict, Field

from mailgent_mcp.errors import InvalidInput, MailgentError
from mailgent_mcp.mcp.boundary import (
    TOOL_NAMES,
    client_name,
    guarded,
    hints,
    report_progress,
)
from mailgent_mcp.settings import ENV_DEFAULT_ENTRY, Settings
from mailgent_mcp.vault.entries import Vault
from mailgent_mcp.vault.fields import SECRET_FIELD
from mailgent_mcp.vault.models import (
    BackupCode,
    EntrySummary,
    EntryView,
    StoredEntry,
    TotpCode,
)
from mailgent_mcp.vault.passgen import (
    DEFAULT_LENGTH,
    MAX_LENGTH,
    MIN_LENGTH,
    PasswordRule,
)

log = logging.getLogger(__name__)


class EntryList(BaseModel):
    """Entries in name order; names and types only, never values."""

    entries: list[EntrySummary] = Field(description="Name order")


class Deleted(BaseModel):
    """The outcome of vault_delete."""

    name: str = Field(description="Entry name")
    deleted: bool = Field(description="True: the entry and all its fields are gone")


class TotpOptions(BaseModel):
    """Parameters for a bare base32 seed (an otpauth:// URI carries its own)."""

    algorithm: Literal["SHA1", "SHA256", "SHA512"] | None = Field(default=None, description="Default SHA1")
    digits: Annotated[int, Field(ge=6, le=10)] | None = Field(default=None, description="Default 6")
    period: Annotated[int, Field(ge=1, le=120)] | None = Field(default=None, description="Seconds; default 30")
    issuer: str | None = Field(default=None, description="Service name")
    account: str | None = Field(default=None, description="Account name")


class NamedValue(BaseModel):
    """A field not named in data's properties."""

    name: str = Field(description="Field name, e.g. api_key")
    value: str = Field(description="Its value")


class PutData(BaseModel):
    """Field values to store. A field left out (or null) keeps its stored value."""

    # Other names are still accepted as fields (callers written before `other`); the schema
    # closes the object so that clients in strict mode take it.
    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": False})
    __pydantic_extra__: dict[str, str | None]  # an undeclared field holds text, as declared ones do

    username: str | None = Field(default=None, description="Login name or email")
    password: str | None = Field(default=None, description="Or let generate_password make one")
    secret: str | None = Field(default=None, description=(
        "TOTP seed: the otpauth:// URI or base32 seed; sealed, never returned"))
    url: str | None = Field(default=None, description="Sign-in page")
    notes: str | None = Field(default=None, description="Free text")
    backupCodes: list[str] | None = Field(default=None, description=(
        "Recovery codes from 2FA enrolment; replaces stored ones"))
    other: list[NamedValue] | None = Field(default=None, description="Any other fields")


class PasswordOptions(BaseModel):
    """What the service requires of a password; each class asked for appears at least once."""

    length: Annotated[int, Field(ge=MIN_LENGTH, le=MAX_LENGTH)] | None = Field(
        default=None, description=f"Default {DEFAULT_LENGTH}")
    lower: bool | None = Field(default=None, description="a-z; default true")
    upper: bool | None = Field(default=None, description="A-Z; default true")
    digits: bool | None = Field(default=None, description="0-9; default true")
    symbols: str | None = Field(default=None, description=(
        "The symbols the service allows ('' for none); default a common set"))

    def rule(self) -> PasswordRule:
        """The rule with defaults for what was not given."""
        given = self.model_dump(exclude_none=True)
        return PasswordRule(**given)


def put_fields(data: PutData | None, remove: Sequence[str]) -> dict[str, object]:
    """vault_put's data and remove as Vault.put's fields: a value sets a field, None removes it."""
    fields: dict[str, object] = {}
    if data is not None:
        fields.update({k: v for k, v in data.model_dump(exclude={"other"}).items() if v is not None})
        for position, item in enumerate(data.other or [], 1):
            if item.name in fields:
                raise InvalidInput(f"Field number {position} of data.other is given twice; give each field once.")
            fields[item.name] = item.value
    for position, field in enumerate(remove, 1):
        if field in fields:
            raise InvalidInput(f"Field number {position} of remove is also given a value; do one or the other.")
        fields[field] = None
    return fields


class VaultProvider:
    """Opens the vault on first use and keeps it for the process; a failed open is retried next call.

    The server starts even when the vault is locked, so a client sees the reason as a tool
    error ("Vault locked: set MAILGENT_PASSPHRASE...") instead of a server that died at start.
    """

    def __init__(self, home: Path, environ: Mapping[str, str]) -> None:
        self._home = home
        self._environ = dict(environ)
        self._vault: Vault | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Vault:
        """The open vault, opening it if needed."""
        if self._vault is None:
            async with self._lock:
                if self._vault is None:
                    self._vault = await Vault.open(self._home, environ=self._environ, actor="mcp")
        return self._vault

    async def warm_up(self) -> None:
        """Open now (at server start), so the first call does not pay the unlock; log a failure."""
        try:
            await self.get()
        except MailgentError as exc:
            log.warning("vault not open yet: %s", exc)

    async def close(self) -> None:
        """Close the vault if it was opened."""
        if self._vault is not None:
            await self._vault.close()
            self._vault = None


def register_vault_tools(server: MCPServer, provider: VaultProvider, settings: Settings) -> None:
    """Add the vault tools to server under underscore or dotted names."""

    def name_of(base: str) -> str:
        return TOOL_NAMES[base] if settings.tool_names == "dotted" else base

    async def vault_put(
        name: Annotated[str, Field(description="Entry name, e.g. 'github' or 'aws/prod' (1-128 characters)")],
        data: Annotated[PutData | None, Field(description=(
            "Fields to store; given ones replace stored ones, the rest are kept"))] = None,
        type: Annotated[Literal["LOGIN", "API_KEY", "TOTP", "NOTE"] | None, Field(description=(
            "Entry type; inferred for a new entry when omitted"))] = None,
        totp: Annotated[TotpOptions | None, Field(description="Only for a bare base32 seed")] = None,
        generate_password: Annotated[PasswordOptions | None, Field(description=(
            "Make a strong random password, store it and return it once"))] = None,
        qr_image: Annotated[str | None, Field(description=(
            "A screenshot of the 2FA setup page or its QR code (base64 PNG, JPEG, WebP or GIF): the seed is read "
            "from it, the image not kept"))] = None,
        remove: Annotated[list[str] | None, Field(max_length=32, description="Names of fields to delete")] = None,
        if_absent: Annotated[bool, Field(description="Fail instead of updating when the entry exists")] = False,
        ctx: Context | None = None,
    ) -> StoredEntry:
        async def call() -> StoredEntry:
            fields = put_fields(data, remove or [])
            if qr_image is not None:
                if fields.get(SECRET_FIELD) is not None:
                    raise InvalidInput("Give the TOTP seed one way: data.secret or qr_image, not both.")
                from mailgent_mcp.vault import (
                    qr,  # Pillow and zxing-cpp load on first use, not at every start
                )

                fields[SECRET_FIELD] = await asyncio.to_thread(qr.secret_from_image, qr.image_from_base64(qr_image))
            if not fields and generate_password is None and type is None:
                raise InvalidInput("Nothing to store: pass data, generate_password or remove.")
            options = totp.model_dump(exclude_none=True) if totp else None
            rule = generate_password.rule() if generate_password else None
            vault = await provider.get()
            return await vault.put(name, fields, type, totp=options, if_absent=if_absent, password=rule,
                                   actor=client_name(ctx))

        return await guarded("vault_put", call)

    async def vault_get(
        name: Annotated[str, Field(description="Entry name")],
        ctx: Context | None = None,
    ) -> EntryView:
        async def call() -> EntryView:
            return await (await provider.get()).get(name, actor=client_name(ctx))

        return await guarded("vault_get", call)

    async def vault_totp(
        name: Annotated[str, Field(description=(
            f"Entry name; omit for the default entry ({ENV_DEFAULT_ENTRY})"))] = "",
        min_remaining: Annotated[int | None, Field(ge=0, le=119, description=(
            "Seconds the code must stay valid; default 5"))] = None,
        unused_only: Annotated[bool, Field(description=(
            "Never a code already handed out; false: the current code, not recorded"))] = True,
        ctx: Context | None = None,
    ) -> TotpCode:
        async def call() -> TotpCode:
            entry = name or settings.default_entry
            if not entry:
                raise InvalidInput(
                    f"No entry name given and no default entry is set; pass name, or set {ENV_DEFAULT_ENTRY} "
                    "(or default_entry under [vault] in config.toml)."
                )

            async def progress(waited: float, total: float) -> None:
                await report_progress(ctx, waited, total, "waiting for a fresh code")

            return await (await provider.get()).totp(entry, min_remaining=min_remaining, unused_only=unused_only,
                                                     actor=client_name(ctx), progress=progress)

        return await guarded("vault_totp", call)

    async def vault_backup_code(
        name: Annotated[str, Field(description="Entry name")],
        ctx: Context | None = None,
    ) -> BackupCode:
        async def call() -> BackupCode:
            return await (await provider.get()).use_backup_code(name, actor=client_name(ctx))

        return await guarded("vault_backup_code", call)

    async def vault_list(
        prefix: Annotated[str, Field(description="Only names starting with this; empty for all")] = "",
        ctx: Context | None = None,
    ) -> EntryList:
        async def call() -> EntryList:
            return EntryList(entries=await (await provider.get()).list(prefix, actor=client_name(ctx)))

        return await guarded("vault_list", call)

    async def vault_delete(
        name: Annotated[str, Field(description="Entry name")],
        ctx: Context | None = None,
    ) -> Deleted:
        async def call() -> Deleted:
            return Deleted(name=name, deleted=await (await provider.get()).delete(name, actor=client_name(ctx)))

        return await guarded("vault_delete", call)

    server.add_tool(
        vault_put, name=name_of("vault_put"), title="Store a credential",
        description=(
            "Store or update a login, API key, note or TOTP seed in the encrypted local vault; given fields replace "
            "stored ones, the rest are kept. To enable 2FA pass the otpauth:// URI (or base32 seed) as data.secret: "
            "sealed, never returned; codes come from vault_totp. A service that shows only a QR code: pass a "
            "screenshot as qr_image. generate_password makes the password for a sign-up. The result names "
            "fields, never values (but a generated password, once)."),
        annotations=hints(read_only=False, destructive=True, idempotent=False),
    )
    server.add_tool(
        vault_get, name=name_of("vault_get"), title="Read a credential",
        description=(
            "Read an entry: username, password, url, notes and other fields, the TOTP seed's parameters (never the "
            "seed: use vault_totp) and how many recovery codes are left."),
        annotations=hints(read_only=True, destructive=False, idempotent=True),
    )
    server.add_tool(
        vault_totp, name=name_of("vault_totp"), title="Get a 2FA code",
        description=(
            "A TOTP code of the entry's stored seed, valid for `remaining` seconds (at least 5). Each code is "
            "handed out once: call again for each login; it may wait for the next code."),
        annotations=hints(read_only=False, destructive=False, idempotent=False),
    )
    server.add_tool(
        vault_backup_code, name=name_of("vault_backup_code"), title="Use a recovery code",
        description=(
            "Hand out one unused recovery (backup) code of an entry and mark it used, for a login that asks for "
            "one instead of a 2FA code."),
        annotations=hints(read_only=False, destructive=False, idempotent=False),
    )
    server.add_tool(
        vault_list, name=name_of("vault_list"), title="List credentials",
        description="List entry names, types and whether each has a TOTP seed (never values), by name prefix.",
        annotations=hints(read_only=True, destructive=False, idempotent=True),
    )
    server.add_tool(
        vault_delete, name=name_of("vault_delete"), title="Delete a credential",
        description="Delete an entry and all its fields, TOTP seed included. This cannot be undone.",
        annotations=hints(read_only=False, destructive=True, idempotent=False),
    )
