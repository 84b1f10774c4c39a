"""The embedded SMTP inbox: an aiosmtpd receiver on loopback that caches every message.

The zero-setup inbox for sign-up flows against local or staging services: point their
SMTP settings at 127.0.0.1:2525 and every mail, for any address, lands in the cache as
account "local". It is a sink, not a relay: nothing is forwarded. `aiosmtpd` is used here
and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging

from aiosmtpd.smtp import SMTP, Envelope, Session

from mailgent_mcp.errors import ConfigError
from mailgent_mcp.inbox.cache import SMTP_LEASE_PREFIX, Inbox
from mailgent_mcp.inbox.parse import MAX_MESSAGE_BYTES, Parser
from mailgent_mcp.settings import ENV_SMTP_LISTEN, Listen

log = logging.getLogger(__name__)


class CacheHandler:
    """aiosmtpd handler: parse each message (time-limited) and cache it."""

    def __init__(self, inbox: Inbox, parser: Parser) -> None:
        self._inbox = inbox
        self._parser = parser

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Cache the message; a parse problem is kept as a marker, never a refusal."""
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        # No receiving server stands in front of this inbox: no Authentication-Results header is
        # its own, so none is trusted (only DKIM, verified by the parser, can vouch).
        parsed = await self._parser.parse(raw, trusted_authserv_ids=())
        recipients = [str(r) for r in envelope.rcpt_tos]
        message = await self._inbox.add_local(parsed, recipients)
        log.info("SMTP inbox cached message %d for %d recipient(s)", message, len(recipients))
        return "250 Message accepted for delivery"


def lease_name(listen: Listen) -> str:
    """The lease of an SMTP inbox address in vault.db: one server process of the folder listens there."""
    return f"{SMTP_LEASE_PREFIX}{listen.host}:{listen.port}"


class SmtpInbox:
    """The running receiver. `await SmtpInbox.start(inbox, listen)`; `await close()`."""

    def __init__(self, server: asyncio.AbstractServer, parser: Parser, listen: Listen, *, owns_parser: bool) -> None:
        self._server = server
        self._parser = parser
        self._owns_parser = owns_parser
        self.listen = listen

    @classmethod
    async def start(cls, inbox: Inbox, listen: Listen, *, parser: Parser | None = None) -> SmtpInbox:
        """Listen on listen.host:listen.port (0: any free port) and cache what arrives.

        A parser given is shared (the caller closes it); without one, the receiver has its own.
        """
        own = parser is None
        parser = parser or Parser()
        handler = CacheHandler(inbox, parser)
        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(
                lambda: SMTP(handler, data_size_limit=MAX_MESSAGE_BYTES, hostname="mailgent-mcp",
                             ident="mailgent-mcp SMTP inbox"),
                listen.host, listen.port)
        except OSError as exc:
            if own:
                parser.close()
            raise ConfigError(
                f"The SMTP inbox cannot listen on {listen.host}:{listen.port} ({exc.strerror}); "
                f"choose another port with {ENV_SMTP_LISTEN}."
            ) from None
        parser.start()  # its workers start now, not on the first mail
        port = server.sockets[0].getsockname()[1]
        log.warning("SMTP inbox listening on %s:%d", listen.host, port)
        return cls(server, parser, Listen(listen.host, port), owns_parser=own)

    async def close(self) -> None:
        """Stop listening, and stop the parser workers if they are the receiver's own."""
        self._server.close()
        await self._server.wait_closed()
        if self._owns_parser:
            self._parser.close()
