"""The project's exceptions: one tree, every message safe to show a person or a model.

    MailgentError                 str() is always safe: built from identifiers, never values
    ├── InvalidInput              bad name, field, type, size, option          (exit 2)
    │   ├── InvalidSecret         bad base32 seed or otpauth URI                (exit 2)
    │   └── EntryExists           create-only put on a name already taken       (exit 2)
    ├── VaultLocked               no key, or the key does not open this vault   (exit 3)
    ├── EntryNotFound             no entry by that name                         (exit 4)
    ├── NoTotpSeed                the entry holds no TOTP seed                  (exit 4)
    ├── NoBackupCodes             the entry holds no unused recovery code       (exit 4)
    ├── VaultCorrupt              a sealed value failed to open with the right key (exit 5)
    ├── AuditChainBroken          `audit verify` found an edited or missing row (exit 6)
    ├── ConfigError               the data folder or environment is unusable    (exit 7)
    └── NoMailSource              no IMAP account nor SMTP inbox: no mail comes (exit 8)

Every message says what went wrong and what to do next. None carries a password, a seed,
a key or a library's raw error text: callers translate lower-level errors at one
boundary with ``raise ... from exc``.
"""

from __future__ import annotations


class MailgentError(Exception):
    """Base class; ``str(exc)`` is safe to print, log and return to a model."""

    exit_code = 1


class InvalidInput(MailgentError):
    """A caller-supplied name, field, type, size or option is not acceptable."""

    exit_code = 2


class InvalidSecret(InvalidInput):
    """A TOTP seed or otpauth URI could not be understood; the reason names no secret."""


class EntryExists(InvalidInput):
    """A create-only put found the name already taken."""

    def __init__(self, name: str) -> None:
        super().__init__(f"A vault entry named {name!r} already exists; choose another name or allow overwriting.")
        self.name = name


class VaultLocked(MailgentError):
    """The master key is missing or does not open this vault."""

    exit_code = 3


class EntryNotFound(MailgentError):
    """No vault entry has the requested name."""

    exit_code = 4

    def __init__(self, name: str) -> None:
        super().__init__(f"No vault entry named {name!r}; store one with vault_put (CLI: mailgent-mcp vault put {name!r}).")
        self.name = name


class NoTotpSeed(MailgentError):
    """The entry exists but holds no TOTP seed."""

    exit_code = 4

    def __init__(self, name: str) -> None:
        super().__init__(
            f"Vault entry {name!r} has no TOTP seed; store one with vault_put and data.secret "
            "set to the base32 seed or the otpauth:// URI."
        )
        self.name = name


class NoBackupCodes(MailgentError):
    """The entry has no recovery codes, or all of them were used."""

    exit_code = 4

    def __init__(self, name: str, *, all_used: bool) -> None:
        what = "has no unused recovery code left" if all_used else "has no recovery codes"
        super().__init__(
            f"Vault entry {name!r} {what}; store the codes the service shows (its security settings can make new "
            "ones) with vault_put as data.backupCodes."
        )
        self.name = name


class VaultCorrupt(MailgentError):
    """A stored value failed authentication although the key is right: it was altered."""

    exit_code = 5


class AuditChainBroken(MailgentError):
    """The audit log's hash chain does not verify: a row was edited, inserted or removed."""

    exit_code = 6


class ConfigError(MailgentError):
    """The data folder or the environment's settings cannot be used."""

    exit_code = 7


class NoMailSource(MailgentError):
    """No mail can reach the cache: no IMAP account, no MAILGENT_IMAP_URL and no SMTP inbox."""

    exit_code = 8

    def __init__(self) -> None:
        super().__init__(
            "No mail source is set up, so no mail can arrive. Add an IMAP account with `mailgent-mcp inbox add "
            "NAME --host HOST --username ADDRESS` (it asks for the password), or run the SMTP inbox for local "
            "services with `mailgent-mcp serve --smtp-listen 127.0.0.1:2525` (MAILGENT_SMTP_LISTEN in an MCP "
            "client's config); a running MCP server takes either when it is restarted."
        )
