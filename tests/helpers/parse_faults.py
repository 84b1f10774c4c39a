"""Parser worker functions that fail on cue, for tests: a spawned worker imports them from here.

A message with the header `X-Test-Fault: exit` ends its worker process at once (as a crash in a
C extension would); `X-Test-Fault: hang` never finishes parsing. Any other message is parsed
as the package parses it. Extraction (from cached fields) does the same for a subject of
`X-Test-Fault: exit` or `X-Test-Fault: hang`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from mailgent_mcp.inbox.dkim import KeyLookup
from mailgent_mcp.inbox.extract import Extraction
from mailgent_mcp.inbox.parse import (
    ExtractInput,
    ParsedMessage,
    Parser,
    extract_input,
    parse_message,
)


def parse_one(raw: bytes, trusted_authserv_ids: Sequence[str] = (), extracting: bool = True,
              key_lookup: KeyLookup | None = None) -> ParsedMessage:
    """parse_message, or the fault the message asks for."""
    if b"X-Test-Fault: exit" in raw:
        os._exit(3)
    if b"X-Test-Fault: hang" in raw:
        time.sleep(3600)
    return parse_message(raw, trusted_authserv_ids, extracting, key_lookup)


def parse_chunk(raws: Sequence[bytes], trusted_authserv_ids: Sequence[str] = (), extracting: bool = True,
                key_lookup: KeyLookup | None = None) -> list[ParsedMessage]:
    """parse_one of each, in order."""
    return [parse_one(raw, trusted_authserv_ids, extracting, key_lookup) for raw in raws]


def extract_one(inp: ExtractInput) -> Extraction:
    """extract_input, or the fault the subject asks for."""
    if inp.subject == "X-Test-Fault: exit":
        os._exit(3)
    if inp.subject == "X-Test-Fault: hang":
        time.sleep(3600)
    return extract_input(inp)


def extract_chunk(inps: Sequence[ExtractInput]) -> list[Extraction | None]:
    """extract_one of each, in order."""
    return [extract_one(inp) for inp in inps]


class FaultyParser(Parser):
    """The real Parser, its workers running the functions above."""

    run_one = staticmethod(parse_one)
    run_chunk = staticmethod(parse_chunk)
    run_extract = staticmethod(extract_one)
    run_extract_chunk = staticmethod(extract_chunk)
