"""A real third-party MCP client: the MCP Inspector CLI (npm) drives the server over stdio.

scripts/setup.sh --test installs it into tests/inspector/node_modules from the pinned
package.json and package-lock.json. Node 20 runs it with engine warnings, which are ignored.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailgent_mcp import otp

from .conftest import ALL_TOOLS, SEED_RFC, clean_env, run_cli

INSPECTOR = Path(__file__).parent / "inspector" / "node_modules" / ".bin" / "mcp-inspector"

pytestmark = pytest.mark.skipif(
    not INSPECTOR.exists() and not os.environ.get("CI"),  # under CI a missing inspector fails loudly
    reason="the MCP Inspector is not installed: bash scripts/setup.sh --test (npm install in tests/inspector)",
)


def inspector(home: Path, *args: str, env_extra: dict[str, str] | None = None) -> dict[str, object]:
    """Run `mcp-inspector --cli <our server> ARGS` and parse its JSON answer."""
    assert shutil.which("node"), "node is needed to run the MCP Inspector"
    env = clean_env(home, **(env_extra or {}))
    # The inspector passes only -e variables to the server it spawns.
    passed = [arg for key in ("MAILGENT_HOME", *(env_extra or {})) for arg in ("-e", f"{key}={env[key]}")]
    result = subprocess.run(
        [str(INSPECTOR), "--cli", *passed, sys.executable, "-m", "mailgent_mcp", "serve", *args],
        capture_output=True, text=True, env=env, timeout=90, cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stderr[-2000:]
    start = result.stdout.index("{")
    parsed: dict[str, object] = json.loads(result.stdout[start:])
    return parsed


def test_inspector_lists_the_vault_tools(home: Path) -> None:
    listing = inspector(home, "--method", "tools/list")
    tools = {t["name"]: t for t in listing["tools"]}  # type: ignore[union-attr, index]
    assert set(tools) == set(ALL_TOOLS)
    assert tools["vault_get"]["annotations"]["readOnlyHint"] is True  # type: ignore[index]
    assert tools["vault_delete"]["annotations"]["destructiveHint"] is True  # type: ignore[index]
    assert "outputSchema" in tools["vault_totp"]


def test_inspector_calls_vault_totp(home: Path) -> None:
    assert run_cli(home, "vault", "put", "github", "--secret", stdin=SEED_RFC + "\n").returncode == 0
    answer = inspector(home, "--method", "tools/call", "--tool-name", "vault_totp", "--tool-arg", "name=github")
    assert answer.get("isError") in (None, False), answer
    code = answer["structuredContent"]  # type: ignore[index]
    assert re.fullmatch(r"\d{6}", code["code"]) and 1 <= code["remaining"] <= 30  # type: ignore[index]
    seed = otp.parse_secret(SEED_RFC)
    expires = datetime.strptime(code["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)  # type: ignore[index]
    at = expires.timestamp() - 1  # a moment inside the step the code belongs to
    assert code["code"] == otp.totp_at(seed, at).code  # type: ignore[index]


def test_inspector_sees_a_clear_error_for_a_missing_entry(home: Path) -> None:
    answer = inspector(home, "--method", "tools/call", "--tool-name", "vault_totp", "--tool-arg", "name=nope")
    assert answer["isError"] is True
    assert "No vault entry named 'nope'" in answer["content"][0]["text"]  # type: ignore[index]


def test_inspector_with_dotted_tool_names(home: Path) -> None:
    listing = inspector(home, "--method", "tools/list", env_extra={"MAILGENT_TOOL_NAMES": "dotted"})
    assert {t["name"] for t in listing["tools"]} == {  # type: ignore[union-attr, index]
        n.replace("_", ".", 1) for n in ALL_TOOLS}
