"""The error boundary every tool runs in, and what the tools share: names, hints, progress, the caller.

Our errors (whose text is safe) become isError results naming the next step; anything
else is logged without its message (a library's text may carry a value) and answered
"internal error". Validation errors are rewritten so that they
quote neither the rejected values nor the caller's own field names.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

from mailgent_mcp.errors import MailgentError
from mailgent_mcp.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Underscore names by default: Claude Desktop, Cursor and the OpenAI API reject dots.
TOOL_NAMES: dict[str, str] = {
    "vault_put": "vault.put",
    "vault_get": "vault.get",
    "vault_totp": "vault.totp",
    "vault_backup_code": "vault.backup_code",
    "vault_list": "vault.list",
    "vault_delete": "vault.delete",
    "inbox_read": "inbox.read",
    "inbox_wait": "inbox.wait",
    "inbox_mark": "inbox.mark",
    "inbox_accounts": "inbox.accounts",
    "inbox_address": "inbox.address",
}

INTERNAL_ERROR = "internal error; the server's log (stderr) has the details. Try again, or report it."


def client_name(ctx: Context | None) -> str:
    """The connected MCP client's name (from initialize or the request envelope), for the audit log."""
    try:
        params = ctx.session.client_params if ctx is not None else None
    except (AttributeError, LookupError, ValueError, RuntimeError):
        params = None
    info = getattr(params, "client_info", None)
    name = getattr(info, "name", None)
    return f"mcp:{name}" if isinstance(name, str) and name else "mcp:unknown-client"


async def report_progress(ctx: Context | None, done: float, total: float, message: str) -> None:
    """A progress notification, when the client asked for them; a client that cannot take one still gets its answer."""
    if ctx is None:
        return
    try:
        await ctx.report_progress(round(done, 1), round(total, 1), message)
    except Exception:
        log.debug("progress notification not sent", exc_info=True)


async def guarded(tool: str, call: Callable[[], Awaitable[T]]) -> T:
    """Run a tool body: our errors become ToolError, anything else an opaque internal error."""
    try:
        return await call()
    except MailgentError as exc:
        raise ToolError(str(exc)) from None
    except Exception as exc:
        # The frames, not the message: a library's exception text may carry a value.
        log.error("internal error in %s: %s\n%s", tool, type(exc).__name__,
                  "".join(traceback.format_tb(exc.__traceback__)))
        raise ToolError(INTERNAL_ERROR) from None


def hints(*, read_only: bool, destructive: bool, idempotent: bool) -> ToolAnnotations:
    # open_world_hint=False: every tool acts on this machine's vault only.
    return ToolAnnotations(read_only_hint=read_only, destructive_hint=destructive, idempotent_hint=idempotent,
                           open_world_hint=False)


def tool_aliases(settings: Settings) -> dict[str, str]:
    """Other spellings accepted in tools/call: dotted for underscore names and back."""
    if settings.tool_names == "dotted":
        return {under: dotted for under, dotted in TOOL_NAMES.items()}
    return {dotted: under for under, dotted in TOOL_NAMES.items()}


# Arguments whose keys are the caller's own (a field name may be a secret given in the wrong place).
CALLER_KEYED_ARGUMENTS = frozenset({"data"})


def _where(loc: Sequence[object]) -> str:
    """An error location as a path of argument names and positions; the caller's own keys are not quoted."""
    parts: list[str] = []
    for depth, part in enumerate(loc):
        if depth == 1 and isinstance(part, str) and str(loc[0]) in CALLER_KEYED_ARGUMENTS:
            parts.append("<a field>")
        else:
            parts.append(str(part))
    return ".".join(parts) or "arguments"


def sanitized_validation_message(tool: str, errors: list[Any]) -> str:
    """A pydantic error list as text with field paths and reasons but never the rejected values or caller keys."""
    parts = []
    for err in errors[:5]:
        parts.append(f"{_where(err.get('loc', ()))}: {err.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return f"Invalid arguments for {tool}: {'; '.join(parts)}{more}. Check the tool's input schema and call again."
