"""What each parser worker process does first: end with its server, stay off the MCP wire, log names only.

A worker is a fresh interpreter (multiprocessing's spawn) started by a server's Parser.
Nothing else would end it when its server is killed: it waits on its task queue, whose
pipe it holds both ends of, for ever, and keeps multiprocessing's resource tracker alive
with it. It inherits the server's standard streams, and a stdio server's stdout is the
MCP wire. It logs through mail-parser and the email package, which put raw header text
into their messages.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

from mailgent_mcp import logs

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCH_PARENT_EVERY_S = 1.0  # how often the portable watcher looks for its parent


def initialize(parent: int, log_level: int) -> None:
    """The Parser's worker initializer: run once in each worker before its first task."""
    end_with_parent(parent)
    keep_off_the_wire()
    # The server stops its workers itself; Ctrl-C in a terminal reaches the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logs.configure(log_level)


def end_with_parent(parent: int) -> None:
    """Exit when the server process (pid parent) dies: at once on Linux, within a second elsewhere."""
    if sys.platform.startswith("linux"):
        _kill_on_parent_death()
    if os.getppid() != parent:  # it died before the kernel was asked to tell us
        os._exit(0)
    threading.Thread(target=_watch_parent, args=(parent,), name="parent watcher", daemon=True).start()


def _kill_on_parent_death() -> None:
    """prctl(PR_SET_PDEATHSIG, SIGKILL): the kernel kills this process when its parent ends.

    The parent, for the kernel, is the thread that started the worker: the Parser starts its
    workers from the server's event-loop thread, which lives as long as the server. SIGKILL
    ends a worker even while a hostile message holds it in C code, where no thread runs.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the watcher thread still ends the worker


def _watch_parent(parent: int) -> None:
    """The portable fallback: an orphan is adopted by another process, so its parent pid changes."""
    while os.getppid() == parent:
        time.sleep(WATCH_PARENT_EVERY_S)
    os._exit(0)


def keep_off_the_wire() -> None:
    """Point stdin at /dev/null and stdout at stderr: nothing a worker prints can reach the MCP stream."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(devnull, 0)
    finally:
        os.close(devnull)
    os.dup2(2, 1)
