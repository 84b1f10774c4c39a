"""Mail parsing for the inbox cache: mail-parser behind size caps and a time limit.

`mailparser` is used here and nowhere else. A message is untrusted input: mail-parser
and the stdlib email package it builds on have quadratic and recursive paths (a subject
of 60k encoded-words takes over 20 s; 2,000 nested parts raise a recursion error). So a
message larger than the size cap is kept as headers plus a marker, an oversized header
block is cut at a line boundary before parsing, and `Parser` runs each parse in a worker
process that is replaced when a parse overruns its time limit. `Parser.parse_many`
parses a batch as one chunk per worker; a chunk that overruns or kills its worker is
parsed again one message at a time, so the culprit alone is kept as headers. Whatever
happens, a message yields a ParsedMessage: the inbox never stops on one mail.

The worker also runs `extract.extract` (text, codes, links, sender trust) on the parsed
message, inside the same time limit, so hostile HTML cannot stall the server either;
`Parser.extract` does the same for `inbox reindex`, from the cached fields. Where none of
the account's trusted receiving servers vouched for the sender, the worker verifies the
message's DKIM signatures itself (dkim_check.py), while it has the raw message, and the
results are kept with it for later extractions. A worker ends with the process that
started it, even one killed outright, and logs names only, never the header text
mail-parser puts in its messages (worker.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.header
import email.parser
import email.policy
import email.utils
import itertools
import logging
import multiprocessing
import os
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from mailgent_mcp.inbox import worker
from mailgent_mcp.inbox.dkim import DkimResults, KeyLookup
from mailgent_mcp.inbox.extract import Extraction, extract, sender_auth

log = logging.getLogger(__name__)
_Item = TypeVar("_Item")
_Result = TypeVar("_Result")

MAX_MESSAGE_BYTES = 25 * 1024 * 1024  # larger ones are cached as headers plus a marker
MAX_HEADER_BYTES = 128 * 1024  # the header block is cut (at a line) beyond this before parsing
PARSE_TIME_LIMIT_S = 5.0
PARSE_WORKERS = 2  # worker processes of a Parser
DKIM_BUDGET_S = PARSE_TIME_LIMIT_S / 2  # key lookups of one worker call, so that parsing keeps the rest


@dataclass(frozen=True)
class Attachment:
    """An attachment's name, type and decoded size; never its content."""

    name: str
    content_type: str
    size: int


@dataclass(frozen=True)
class ParsedMessage:
    """What the cache keeps of one message."""

    raw_size: int
    message_id: str | None = None
    from_addr: str | None = None
    from_name: str | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    subject: str = ""
    date: float | None = None  # unix time from the Date header, when it parses
    text: str = ""
    html: str = ""
    attachments: tuple[Attachment, ...] = ()
    auth_results: tuple[str, ...] = ()  # Authentication-Results headers, for sender trust
    problem: str | None = None  # why only headers (or nothing) could be kept
    extraction: Extraction | None = None  # None: not extracted (headers only)
    dkim_local: DkimResults | None = None  # DKIM verified here: (d= domain, result) each; None: not checked


@dataclass(frozen=True)
class ExtractInput:
    """The cached fields extraction works from (what `inbox reindex` has: the raw mail is not kept)."""

    subject: str
    text: str
    html: str
    from_addr: str | None
    auth_results: tuple[str, ...]
    trusted_authserv_ids: tuple[str, ...]  # of the message's account
    dkim_local: DkimResults | None = None  # as verified when the message was cached


def extract_input(inp: ExtractInput) -> Extraction:
    """Run extraction on cached fields (in a worker: see Parser.extract)."""
    return extract(subject=inp.subject, text=inp.text, html=inp.html, from_addr=inp.from_addr,
                   auth_results=inp.auth_results, trusted_authserv_ids=inp.trusted_authserv_ids,
                   local_dkim=inp.dkim_local)


def extract_chunk(inps: Sequence[ExtractInput]) -> list[Extraction | None]:
    """extract_input of each, in order; None for one that raised (a Parser worker's unit of reindex work)."""
    out: list[Extraction | None] = []
    for inp in inps:
        try:
            out.append(extract_input(inp))
        except Exception as exc:
            log.warning("extraction failed on a message (%s)", type(exc).__name__)
            out.append(None)
    return out


def _addresses(pairs: Any) -> list[tuple[str, str]]:
    out = []
    for pair in pairs or []:
        if isinstance(pair, (tuple, list)) and len(pair) == 2:
            out.append((str(pair[0] or ""), str(pair[1] or "").strip().lower()))
    return out


def _header_block(raw: bytes) -> tuple[bytes, bytes]:
    """Split raw into (headers, rest) at the first empty line."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        at = raw.find(sep)
        if at >= 0:
            return raw[: at + len(sep)], raw[at + len(sep):]
    return raw, b""


def _cap_headers(raw: bytes) -> tuple[bytes, bool]:
    """Cut an oversized header block at a line boundary; True when something was cut.

    The MIME headers of the part cut away are kept: without its Content-Type, an HTML body
    would be read as plain text, its hidden parts and all.
    """
    if len(raw) <= MAX_HEADER_BYTES:
        return raw, False  # its header block is no larger (and need not be found, nor the message copied)
    head, rest = _header_block(raw)
    if len(head) <= MAX_HEADER_BYTES:
        return raw, False
    cut = head.rfind(b"\n", 0, MAX_HEADER_BYTES)
    kept = b"".join(match.group()[:MAX_MIME_HEADER_BYTES] + b"\r\n"
                    for match in itertools.islice(_MIME_HEADER.finditer(head, cut + 1), 3))
    return head[: cut + 1] + kept + b"\r\n" + rest, True


MAX_MIME_HEADER_BYTES = 2000
# A MIME header (with its continuation lines) at the start of a line.
_MIME_HEADER = re.compile(rb"^(?:content-type|content-transfer-encoding|mime-version)[ \t]*:[^\r\n]*"
                          rb"(?:\r?\n[ \t][^\r\n]*)*", re.I | re.M)


def unfold(value: str) -> str:
    """A header value on one line: RFC 5322 §2.2.3 unfolding (a line break before a space or tab)."""
    if "\n" not in value and "\r" not in value:
        return value
    return _FOLD.sub("", value).replace("\r", "").replace("\n", " ")


_FOLD = re.compile(r"\r?\n(?=[ \t])")


def headers_only(raw: bytes, problem: str, raw_size: int | None = None) -> ParsedMessage:
    """A cheap header-only record (stdlib, capped input) with a marker saying why."""
    head, _ = _header_block(raw[: MAX_HEADER_BYTES])
    try:
        msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)

        def get(key: str) -> str:
            return str(msg.get(key, "") or "")

        from_name, from_addr = email.utils.parseaddr(get("From"))
        to = tuple(a.lower() for _, a in email.utils.getaddresses([get("To")]) if a)
        date = email.utils.parsedate_to_datetime(get("Date")).timestamp() if get("Date") else None
        subject = unfold(str(email.header.make_header(email.header.decode_header(get("Subject")[:2000]))))
        message_id = get("Message-ID").strip() or None
    except Exception:
        return ParsedMessage(raw_size=raw_size if raw_size is not None else len(raw), problem=problem)
    return ParsedMessage(raw_size=raw_size if raw_size is not None else len(raw), message_id=message_id,
                         from_addr=from_addr.lower() or None, from_name=from_name or None, to=to,
                         subject=subject, date=date, problem=problem)


def parse_message(raw: bytes, trusted_authserv_ids: Sequence[str] = (), extracting: bool = True,
                  key_lookup: KeyLookup | None = None) -> ParsedMessage:
    """Parse and extract one message in this process (no time limit: see Parser for that).

    trusted_authserv_ids: the Authentication-Results headers that count, those of the account's
    own receiving server (none for the embedded SMTP inbox: any such header came from the
    sender). key_lookup: DKIM keys, for mail no trusted header vouched for (None: no check).
    extracting=False leaves extraction to later (`Inbox.reindex`): the bulk of a first sync.
    """
    return _finish(raw, _read(raw), tuple(trusted_authserv_ids) if extracting else None, key_lookup,
                   time.monotonic() + DKIM_BUDGET_S)


def _extract(fields: dict[str, Any], trusted: tuple[str, ...]) -> Extraction | None:
    try:
        return extract(subject=fields["subject"], text=fields["text"], html=fields["html"],
                       from_addr=fields["from_addr"], auth_results=fields["auth_results"],
                       trusted_authserv_ids=trusted, local_dkim=fields["dkim_local"])
    except Exception as exc:
        log.warning("extraction failed on a message (%s); cached without it", type(exc).__name__)
        return None


def _finish(raw: bytes, read: dict[str, Any] | ParsedMessage, trusted: tuple[str, ...] | None,
            key_lookup: KeyLookup | None, deadline: float) -> ParsedMessage:
    """The message _read read, extracted unless trusted is None (or only headers were kept)."""
    if isinstance(read, ParsedMessage):
        return read
    signed = read.pop("signed")
    if trusted is not None:
        read["dkim_local"] = _local_dkim(raw, read, trusted, key_lookup, deadline) if signed else None
        read["extraction"] = _extract(read, trusted)
    return ParsedMessage(**read)


def _local_dkim(raw: bytes, fields: dict[str, Any], trusted: tuple[str, ...], key_lookup: KeyLookup | None,
                deadline: float) -> DkimResults | None:
    """The signed message's DKIM verified here, unless a trusted receiver vouched already."""
    if key_lookup is None:
        return None
    try:
        if sender_auth(fields["auth_results"], fields["from_addr"], trusted).aligned:
            return None
        from mailgent_mcp.inbox.dkim import check

        return check(raw, key_lookup, deadline)
    except Exception as exc:
        log.warning("DKIM verification failed on a message (%s)", type(exc).__name__)
        return None


def _read(raw: bytes) -> dict[str, Any] | ParsedMessage:
    """The fields of a ParsedMessage read from raw by mail-parser, or the headers-only record of a failure."""
    import mailparser

    if len(raw) > MAX_MESSAGE_BYTES:
        return headers_only(raw, f"message of {len(raw)} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")
    capped, cut = _cap_headers(raw)
    try:
        mail = mailparser.parse_from_bytes(capped)
    except Exception as exc:
        return headers_only(raw, f"unparseable ({type(exc).__name__})")
    # mail-parser decoded every header once while parsing (mail.mail, keyed in lower case);
    # mail.subject, mail.headers and the like decode them all over again.
    decoded = mail.mail
    from_pairs = _addresses(decoded.get("from"))
    date = mail.date.timestamp() if getattr(mail, "date", None) is not None else None
    attachments = tuple(
        Attachment(name=str(a.get("filename") or "unnamed"), content_type=str(a.get("mail_content_type") or ""),
                   size=_decoded_size(a))
        for a in (mail.attachments or [])
    )
    auth = mail.message.get_all("Authentication-Results") or []
    fields: dict[str, Any] = {
        "raw_size": len(raw),
        "message_id": (str(decoded["message-id"]).strip() or None) if decoded.get("message-id") else None,
        "from_addr": from_pairs[0][1] or None if from_pairs else None,
        "from_name": from_pairs[0][0] or None if from_pairs else None,
        "to": tuple(a for _, a in _addresses(decoded.get("to")) if a),
        "cc": tuple(a for _, a in _addresses(decoded.get("cc")) if a),
        "subject": unfold(str(decoded.get("subject") or "")),
        "date": date,
        "text": "\n".join(mail.text_plain or []),
        "html": "\n".join(mail.text_html or []),
        "attachments": attachments,
        "auth_results": tuple(str(a) for a in auth),
        "problem": "header block over the size limit; cut before parsing" if cut else None,
        "signed": "DKIM-Signature" in mail.message,  # whether there is DKIM to verify (not kept)
    }
    return fields


def parse_chunk(raws: Sequence[bytes], trusted_authserv_ids: Sequence[str] = (), extracting: bool = True,
                key_lookup: KeyLookup | None = None) -> list[ParsedMessage]:
    """Parse several messages in this process, in order (a Parser worker's unit of work).

    mail-parser reads them all first, then extraction runs on them all: each then works with
    its own code and data in the processor's caches, where one message after the other has
    each push the other's out (on the labelled corpus, parse and extract take 10% less time
    so: see benchmarks/bench_extract.py).
    """
    read = [_read(raw) for raw in raws]
    trusted = tuple(trusted_authserv_ids) if extracting else None
    deadline = time.monotonic() + DKIM_BUDGET_S  # the chunk shares one time limit
    return [_finish(raw, fields, trusted, key_lookup, deadline) for raw, fields in zip(raws, read, strict=True)]


def _ready() -> None:
    """A worker's first task: the parser's imports, which take longer than many parses."""
    import mailparser  # noqa: F401


def _decoded_size(attachment: dict[str, Any]) -> int:
    payload = attachment.get("payload") or ""
    if attachment.get("binary") and attachment.get("content_transfer_encoding") == "base64":
        return len(payload) * 3 // 4
    return len(payload)


class Parser:
    """Parses in worker processes, each parse bounded by a time limit.

    An overrunning parse cannot be interrupted inside a process, so the whole pool is
    replaced and that message kept as headers only with a marker.
    """

    # What the workers run (module-level functions, so that a spawned worker can import them).
    run_one: Callable[[bytes, Sequence[str], bool, KeyLookup | None], ParsedMessage] = staticmethod(parse_message)
    run_chunk: Callable[[Sequence[bytes], Sequence[str], bool, KeyLookup | None],
                        list[ParsedMessage]] = staticmethod(parse_chunk)
    run_extract: Callable[[ExtractInput], Extraction] = staticmethod(extract_input)
    run_extract_chunk: Callable[[Sequence[ExtractInput]], list[Extraction | None]] = staticmethod(extract_chunk)

    def __init__(self, workers: int = PARSE_WORKERS, time_limit: float = PARSE_TIME_LIMIT_S,
                 key_lookup: KeyLookup | None = None) -> None:
        from mailgent_mcp.inbox.dkim import DnsKeyLookup

        self._workers = workers
        self._time_limit = time_limit
        self._key_lookup: KeyLookup = key_lookup if key_lookup is not None else DnsKeyLookup()  # sent with each parse
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            # spawn: a fresh interpreter, not a fork of one running an event loop and threads.
            # Each worker ends with this process and logs names only (worker.initialize).
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self._workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=worker.initialize, initargs=(os.getpid(), logging.getLogger().getEffectiveLevel()))
        return self._pool

    def start(self) -> None:
        """Start the worker processes now (if not yet started), so that the first parse does not wait for them."""
        if self._pool is None:
            pool = self._executor()
            for _ in range(self._workers):
                pool.submit(_ready)

    async def parse(self, raw: bytes, *, trusted_authserv_ids: Sequence[str] = (),
                    extract: bool = True) -> ParsedMessage:
        """Parse and extract raw; never raises for bad mail, never takes much longer than the time limit."""
        if len(raw) > MAX_MESSAGE_BYTES:
            return headers_only(raw, f"message of {len(raw)} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")
        for _ in range(2):
            pool = self._executor()
            future = asyncio.get_running_loop().run_in_executor(
                pool, self.run_one, raw, tuple(trusted_authserv_ids), extract, self._key_lookup)
            try:
                return await asyncio.wait_for(future, self._time_limit)
            except TimeoutError:
                log.warning("a message took over %g s to parse; kept as headers only", self._time_limit)
                self._kill_pool(pool)
                return headers_only(raw, f"parsing took over {self._time_limit:g} s")
            except concurrent.futures.process.BrokenProcessPool:
                if self._pool is pool:
                    self._kill_pool(pool)
                    return headers_only(raw, "the parser process died on this message")
                # Another parse's overrun replaced the pool under this one: try again in the new pool.
        return headers_only(raw, "the parser process died on this message")

    async def parse_many(self, raws: Sequence[bytes], *, trusted_authserv_ids: Sequence[str] = (),
                         extract: bool = True) -> list[ParsedMessage]:
        """Parse a batch across the workers, one chunk each; the results in the order of raws.

        A chunk has the time limit of one message: mail parses in milliseconds, so a chunk
        that overruns it (or whose worker dies) holds a slow or hostile message. The pool is
        then replaced and that chunk parsed again one message at a time, each with the whole
        limit: the culprit is kept as headers with a marker, the others in full, and it costs
        at most twice the limit.
        """
        out: list[ParsedMessage | None] = [None] * len(raws)
        todo = []
        for index, raw in enumerate(raws):
            if len(raw) > MAX_MESSAGE_BYTES:
                out[index] = headers_only(
                    raw, f"message of {len(raw)} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")
            else:
                todo.append(index)
        trusted = tuple(trusted_authserv_ids)
        parsed = await self._in_chunks([raws[i] for i in todo], self.run_chunk, (trusted, extract, self._key_lookup),
                                       lambda raw: self.parse(raw, trusted_authserv_ids=trusted, extract=extract),
                                       "messages")
        for index, message in zip(todo, parsed, strict=True):
            out[index] = message
        return [m for m in out if m is not None]

    async def extract_many(self, inps: Sequence[ExtractInput]) -> list[Extraction | None]:
        """extract of each of inps, in order, as parse_many parses: a chunk per worker, a culprit alone.

        A chunk has the time limit of one message (extraction takes a fraction of a millisecond
        a message); one that overruns it, or whose worker dies, is extracted again one message
        at a time, each with the whole limit.
        """
        return await self._in_chunks(list(inps), self.run_extract_chunk, (), self.extract, "extractions")

    async def _in_chunks(self, items: list[_Item], run_chunk: Callable[..., list[_Result]], args: tuple[Any, ...],
                         one: Callable[[_Item], Awaitable[_Result]], what: str) -> list[_Result]:
        """run_chunk(chunk, *args) on a chunk of items per worker; a chunk that fails, through one(item) each."""
        size = max(1, -(-len(items) // self._workers))
        chunks = [items[at:at + size] for at in range(0, len(items), size)]
        results = await asyncio.gather(*(self._in_worker(run_chunk, chunk, args, what) for chunk in chunks))
        out: list[_Result] = []
        for chunk, done in zip(chunks, results, strict=True):
            if done is None:  # one at a time, so that nothing else shares the culprit's pool
                done = [await one(item) for item in chunk]
            out.extend(done)
        return out

    async def _in_worker(self, run_chunk: Callable[..., list[_Result]], chunk: list[_Item], args: tuple[Any, ...],
                         what: str) -> list[_Result] | None:
        """run_chunk(chunk, *args) in one worker, or None when that overran the time limit or the pool broke."""
        pool = self._executor()
        future = asyncio.get_running_loop().run_in_executor(pool, run_chunk, chunk, *args)
        try:
            return await asyncio.wait_for(future, self._time_limit)
        except TimeoutError:
            log.warning("%d %s took over %g s; running them one at a time", len(chunk), what, self._time_limit)
            self._kill_pool(pool)
        except concurrent.futures.process.BrokenProcessPool:
            self._kill_pool(pool)
        return None

    async def extract(self, inp: ExtractInput) -> Extraction | None:
        """Extract from cached fields in a worker, within the time limit; None when it failed or overran."""
        pool = self._executor()
        future = asyncio.get_running_loop().run_in_executor(pool, self.run_extract, inp)
        try:
            return await asyncio.wait_for(future, self._time_limit)
        except TimeoutError:
            log.warning("extraction took over %g s on a message; left empty", self._time_limit)
            self._kill_pool(pool)
        except concurrent.futures.process.BrokenProcessPool:
            self._kill_pool(pool)
        except Exception as exc:
            log.warning("extraction failed on a message (%s)", type(exc).__name__)
        return None

    def _kill_pool(self, pool: concurrent.futures.ProcessPoolExecutor) -> None:
        """Kill the worker processes of pool, unless another parse replaced it already.

        Whatever else was queued or running in it fails with BrokenProcessPool (not cancelled,
        which its awaiting task could not tell from being cancelled itself).
        """
        if pool is not self._pool:
            return
        self._pool = None
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False)

    def close(self) -> None:
        """Stop the worker processes."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
