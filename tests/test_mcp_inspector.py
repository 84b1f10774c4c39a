"""A real third-party MCP client: the MCP Inspector CLI (npm) drives the server over stdio.

scripts/setup.sh --test installs it into tests/node/node_modules from the pinned package.json
and package-lock.json (tests/helpers/node.py). In the Inspector 2.x the CLI is part of the
@modelcontextprotocol/inspector package (the separate @modelcontextprotocol/inspector-cli
stopped at 1.0): `mcp-inspector --cli [options] -- COMMAND ARGS`, the mode flag first. With
`--format json` it prints one JSON object on stdout, {"result": ...}; a tool's isError result
also sets exit status 5, with an error envelope on stderr.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mailgent_mcp.mcp.boundary import TOOL_NAMES
from mailgent_mcp.vault import otp

from .conftest import ALL_TOOLS, SEED_RFC, clean_env, run_cli
from .helpers.node import INSPECTOR, NODE_DIR, needs, runtime

pytestmark = needs(INSPECTOR)

TOOL_IS_ERROR_EXIT = 5  # the Inspector CLI's exit status for a tools/call answered with isError


def inspector(home: Path, *args: str, env_extra: dict[str, str] | None = None,
              expect_exit: int = 0, server_args: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run `mcp-inspector --cli --format json ARGS -- <our server>` and return its result object."""
    env = clean_env(home, **(env_extra or {}))
    env["HOME"] = str(home.parent)  # the Inspector keeps a catalog and client config under ~/.mcp-inspector
    # The Inspector passes only -e variables to the server it spawns.
    passed = [arg for key in ("MAILGENT_HOME", *(env_extra or {})) for arg in ("-e", f"{key}={env[key]}")]
    command = [runtime(INSPECTOR), str(INSPECTOR), "--cli", "--format", "json", *passed, *args,
               "--", sys.executable, "-m", "mailgent_mcp", "serve", *server_args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=90, cwd=NODE_DIR)
    assert result.returncode == expect_exit, f"exit {result.returncode}; stderr:\n{result.stderr[-3000:]}"
    try:
        parsed: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"the Inspector's stdout is not one JSON object: {result.stdout[:2000]!r}\n"
                    f"stderr:\n{result.stderr[-3000:]}")
    assert "result" in parsed, parsed
    return dict(parsed["result"])


def test_inspector_is_the_pinned_2x_cli() -> None:
    done = subprocess.run([runtime(INSPECTOR), str(INSPECTOR), "--version"], capture_output=True, text=True,
                          timeout=60, cwd=NODE_DIR)
    pinned = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["@modelcontextprotocol/inspector"]
    assert done.returncode == 0 and pinned in done.stdout, done.stdout + done.stderr
    assert pinned.startswith("2."), pinned


def test_inspector_lists_the_vault_tools(home: Path) -> None:
    listing = inspector(home, "--method", "tools/list")
    tools = {t["name"]: t for t in listing["tools"]}
    assert set(tools) == set(ALL_TOOLS)
    assert tools["vault_get"]["annotations"]["readOnlyHint"] is True
    assert tools["vault_delete"]["annotations"]["destructiveHint"] is True
    assert "outputSchema" in tools["vault_totp"]


def test_inspector_calls_vault_totp(home: Path) -> None:
    assert run_cli(home, "vault", "put", "github", "--secret", stdin=SEED_RFC + "\n").returncode == 0
    answer = inspector(home, "--method", "tools/call", "--tool-name", "vault_totp", "--tool-arg", "name=github")
    assert answer.get("isError") in (None, False), answer
    code = answer["structuredContent"]
    assert re.fullmatch(r"\d{6}", code["code"]) and 1 <= code["remaining"] <= 30
    seed = otp.parse_secret(SEED_RFC)
    expires = datetime.strptime(code["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    at = expires.timestamp() - 1  # a moment inside the step the code belongs to
    assert code["code"] == otp.totp_at(seed, at).code


def test_inspector_sees_a_clear_error_for_a_missing_entry(home: Path) -> None:
    answer = inspector(home, "--method", "tools/call", "--tool-name", "vault_totp", "--tool-arg", "name=nope",
                       expect_exit=TOOL_IS_ERROR_EXIT)
    assert answer["isError"] is True
    assert "No vault entry named 'nope'" in answer["content"][0]["text"]


@pytest.mark.parametrize("how", ["env", "flag"])
def test_inspector_with_dotted_tool_names(home: Path, how: str) -> None:
    if how == "env":
        listing = inspector(home, "--method", "tools/list", env_extra={"MAILGENT_TOOL_NAMES": "dotted"})
    else:  # the server's own options after `--`, not taken for the Inspector's
        listing = inspector(home, "--method", "tools/list", server_args=("--tool-names", "dotted"))
    assert {t["name"] for t in listing["tools"]} == {TOOL_NAMES[n] for n in ALL_TOOLS}
