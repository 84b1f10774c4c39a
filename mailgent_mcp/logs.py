"""Log lines carry names, never values: the filter for records of other libraries.

The MCP SDK, uvicorn, mail-parser, asyncio and the rest log what they were handed: a
client's prompt name or Host header, a session id, a mail's raw header, an exception's
text. Many format it into the message themselves (f-strings), so dropping a record's
arguments is not enough. A record from outside this package keeps its logger name, its
level, the part of its message that is written out in the library's source at the call
site (text there is code, never a value), and the type names of its exception; its
arguments, any text formatted into it and its traceback are dropped. The package's own
loggers (mailgent_mcp.*) log names only already and pass unchanged.
"""

from __future__ import annotations

import functools
import linecache
import logging
import sys
from typing import TextIO

OWN_LOGGER = "mailgent_mcp"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
WITHHELD = "[withheld]"
DONE = "mailgent_names_only"  # the attribute marking a record already reduced
# Loggers uvicorn gives handlers of their own (not the root's): the filter goes on them too.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
MAX_CHECKED_CHARS = 500  # a message is compared with its source this far; a longer one is cut here anyway
CALL_SITE_LINES = (3, 8)  # source lines read before and after a record's line (a call may span several)


class NamesOnly(logging.Filter):
    """Reduce records of other libraries to names: logger, level, source text, exception types."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite a foreign record in place (once) and let it through."""
        if record.name == OWN_LOGGER or record.name.startswith(OWN_LOGGER + ".") or hasattr(record, DONE):
            return True
        text = record.msg if isinstance(record.msg, str) else WITHHELD  # an object logged as the message: its str
        shown = source_prefix(text, record.pathname, record.lineno)
        if text[len(shown):].strip():
            shown = f"{shown.rstrip()} {WITHHELD}".lstrip()
        if record.exc_info and record.exc_info[1] is not None:
            shown += f" ({exception_names(record.exc_info[1])})"
        record.msg, record.args = shown, ()
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        setattr(record, DONE, True)  # a record passing a second filtered handler is not cut again
        return True


def source_prefix(text: str, path: str, lineno: int) -> str:
    """The longest start of text that is written out in the source around path:lineno."""
    site = _call_site(path, lineno)
    text = text[:MAX_CHECKED_CHARS]
    # Each shorter start of a start found in the source is found there too: a binary search.
    low, high = 0, min(len(text), len(site))
    while low < high:
        middle = (low + high + 1) // 2
        if text[:middle] in site:
            low = middle
        else:
            high = middle - 1
    return text[:low]


@functools.lru_cache(maxsize=1024)
def _call_site(path: str, lineno: int) -> str:
    before, after = CALL_SITE_LINES
    lines = linecache.getlines(path)
    return "".join(lines[max(lineno - 1 - before, 0):lineno + after])


def exception_names(exc: BaseException) -> str:
    """'ValueError from KeyError': the type names of an exception and what it came from, never their text."""
    names: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(names) < 5:
        seen.add(id(current))
        names.append(type(current).__name__)
        current = current.__cause__ or current.__context__
    return " from ".join(names)


def configure(level: int, stream: TextIO = sys.stderr) -> None:
    """Send logging to stream at level, every handler and uvicorn's own loggers filtered by NamesOnly."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(NamesOnly())
    root.addHandler(handler)
    root.setLevel(level)
    for name in UVICORN_LOGGERS:
        logging.getLogger(name).addFilter(NamesOnly())
