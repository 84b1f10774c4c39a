"""Answers to what a server cannot serve, quoting nothing the client sent.

The MCP SDK answers an unknown prompt, resource or method, and any exception of a
handler, with text built from the request ("Unknown prompt: <name>", the method as error
data, the exception's message) and logs a traceback with it; over stdio it drops a line
that is no JSON-RPC message unanswered; over HTTP it quotes the JSON parser's or
pydantic's error text, and so the body. These answer each case with a fixed text.
"""

from __future__ import annotations

import contextvars
import json
import logging
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    ErrorData,
    JSONRPCError,
)
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailgent_mcp.logs import exception_names

if TYPE_CHECKING:
    from mcp.shared._stream_protocols import (  # the SDK's stream types have no public name
        ReadStream,
        WriteStream,
    )

log = logging.getLogger(__name__)

# Fixed answers to requests the server cannot serve: none of them quotes what the client sent.
UNKNOWN_TOOL = "Unknown tool; tools/list names the tools of this server."
UNKNOWN_PROMPT = "Unknown prompt; prompts/list names the prompts of this server."
UNKNOWN_RESOURCE = "Unknown resource; resources/list names the resources of this server."
UNREADABLE_RESOURCE = "The resource could not be read."
INTERNAL = "Internal error; the server's log names the exception type."
NOT_JSON = "Parse error: the message is not JSON."
NOT_A_REQUEST = "Invalid Request: the message is not a JSON-RPC 2.0 request, notification or response."


async def answer_without_values(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Server middleware: an unknown method's answer without its name, any unexpected exception an internal error.

    The SDK answers an unknown method with the method as error data, and any other exception
    with its text (code 0) after logging its traceback; both may carry the client's values.
    """
    try:
        return await call_next(ctx)
    except MCPError as exc:
        if exc.error.code == METHOD_NOT_FOUND:
            raise MCPError(code=METHOD_NOT_FOUND, message="Method not found") from None
        raise
    except ValidationError:
        raise  # the SDK answers "Invalid request parameters", without the values
    except Exception as exc:
        log.error("a request failed (%s); answered as an internal error", exception_names(exc))
        raise MCPError(code=INTERNAL_ERROR, message=INTERNAL) from None


def invalid_message_answer(exc: Exception) -> JSONRPCError | None:
    """The answer to an inbound line that is not a JSON-RPC message; None for a blank line.

    -32700 when it is not JSON, -32600 when it is JSON but no request; with the request's
    id when one can be read from it, else null (JSON-RPC 2.0 §5.1). Never the line itself.
    """
    errors = exc.errors() if isinstance(exc, ValidationError) else []
    if any(e["type"] == "json_invalid" for e in errors):
        raw = errors[0].get("input")
        if isinstance(raw, str | bytes) and not raw.strip():
            return None
        return JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=PARSE_ERROR, message=NOT_JSON))
    ids = [e["input"]["id"] for e in errors if isinstance(e.get("input"), dict) and "id" in e["input"]]
    request_id = ids[0] if ids and isinstance(ids[0], int | str) and not isinstance(ids[0], bool) else None
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=INVALID_REQUEST, message=NOT_A_REQUEST))


class AnsweringReadStream:
    """stdio's inbound stream with each undecodable line answered on the way, not passed on."""

    def __init__(self, inner: ReadStream[SessionMessage | Exception], out: WriteStream[SessionMessage]) -> None:
        self._inner = inner
        self._out = out

    @property
    def last_context(self) -> contextvars.Context | None:
        """The sender context of the last message (the SDK reads it from a context-aware stream)."""
        context: contextvars.Context | None = getattr(self._inner, "last_context", None)
        return context

    async def receive(self) -> SessionMessage | Exception:
        """The next decoded message; lines that did not decode are answered meanwhile."""
        while True:
            item = await self._inner.receive()
            if not isinstance(item, Exception):
                return item
            answer = invalid_message_answer(item)
            if answer is not None:
                log.info("answered an inbound line that is not a JSON-RPC message (%s)", answer.error.code)
                await self._out.send(SessionMessage(answer))

    async def aclose(self) -> None:
        """Close the inbound stream."""
        await self._inner.aclose()

    def __aiter__(self) -> AnsweringReadStream:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> AnsweringReadStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class FixedBadRequestAnswers:
    """ASGI middleware: the streamable HTTP transport's 400 answers to a body that is no JSON-RPC message, fixed.

    The SDK puts the JSON parser's or pydantic's error text in them, which quotes the body.
    Other answers pass through untouched, and nothing is held but a 400's small body.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def send_fixed(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 400:
                held.append(message)
                return
            if not held or message["type"] != "http.response.body":
                await send(message)
                return
            held.append(message)
            if not message.get("more_body", False):
                start, *parts = held
                held.clear()
                body = fixed_error_body(b"".join(part.get("body", b"") for part in parts))
                headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, send_fixed)


def fixed_error_body(body: bytes) -> bytes:
    """A 400 body of the transport with its parse or validation text replaced by a fixed one."""
    try:
        answer = json.loads(body)
        message = str(answer["error"]["message"])
    except (ValueError, TypeError, KeyError):
        return body
    if message.startswith("Parse error"):
        error = ErrorData(code=PARSE_ERROR, message=NOT_JSON)
    elif message.startswith("Validation error"):
        error = ErrorData(code=INVALID_REQUEST, message=NOT_A_REQUEST)
    else:
        return body
    return JSONRPCError(jsonrpc="2.0", id=None, error=error).model_dump_json(by_alias=True).encode()
