"""An exclusive lock between processes on one data folder: flock(2) on a lock file.

The kernel drops the lock when its holder exits, SIGKILL included, so a crash never leaves
the folder locked.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailgent_mcp.errors import MailgentError


def try_lock(fd: int) -> bool:
    """Take an exclusive flock on fd now if no other open file holds one; True when taken."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def exclusive(path: Path, *, timeout: float, busy: str) -> Iterator[None]:
    """Hold an exclusive lock on path (created 0600) for the block; MailgentError(busy) after timeout seconds."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.005
        while not try_lock(fd):
            if time.monotonic() >= deadline:
                raise MailgentError(busy)
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        yield
    finally:
        os.close(fd)  # releases the lock
