"""Parser worker functions that fail on cue, for tests: a spawned worker imports them from here.

A message with the header `X-Test-Fault: exit` ends its worker process at once (as a crash in a
C extension would); `X-Test-Fault: hang` never finishes parsing. Any other message is parsed
as the package parses it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from mailgent_mcp.parse import ParsedMessage, Parser, parse_message


def parse_one(raw: bytes, trust_auth_results: bool = True, extracting: bool = True) -> ParsedMessage:
    """parse_message, or the fault the message asks for."""
    if b"X-Test-Fault: exit" in raw:
        os._exit(3)
    if b"X-Test-Fault: hang" in raw:
        time.sleep(3600)
    return parse_message(raw, trust_auth_results, extracting)


def parse_chunk(raws: Sequence[bytes], trust_auth_results: bool = True, extracting: bool = True) -> list[ParsedMessage]:
    """parse_one of each, in order."""
    return [parse_one(raw, trust_auth_results, extracting) for raw in raws]


class FaultyParser(Parser):
    """The real Parser, its workers running the functions above."""

    run_one = staticmethod(parse_one)
    run_chunk = staticmethod(parse_chunk)
