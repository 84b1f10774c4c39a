"""Every file in examples/ works as written: scripts run, client configs start a working server."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from .conftest import ALL_TOOLS, SEED_RFC, clean_env, run_cli

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CONSOLE_SCRIPT = shutil.which("mailgent-mcp", path=str(Path(sys.executable).parent))
EXPECTED_TOOLS = set(ALL_TOOLS)


def run_example(home: Path, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True,
                          env=clean_env(home), timeout=120)


def test_vault_api_example_runs(home: Path) -> None:
    result = run_example(home, "vault_api.py")
    assert result.returncode == 0, result.stderr
    assert re.search(r"code \d{6}, valid for \d+ s more", result.stdout)
    assert "weak=True" in result.stdout and "'secret'" not in result.stdout.split("data keys")[1]


def test_agent_login_example_signs_up_verifies_and_logs_in_through_mcp(home: Path) -> None:
    result = run_example(home, "agent_login.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "logged in"
    assert re.search(r"inbox_wait returned the mail after [\d.]+ s: code \d{6}", result.stdout)
    assert re.search(r"logged in with password and TOTP \d{6} \((\d+) s left\)", result.stdout)


def server_entry(config: dict[str, Any]) -> dict[str, Any]:
    servers = config.get("mcpServers") or config.get("servers")
    assert isinstance(servers, dict) and list(servers) == ["mailgent"], config
    entry = servers["mailgent"]
    assert isinstance(entry, dict)
    return entry


CONFIGS = ["claude_desktop_config.json", ".cursor/mcp.json", ".vscode/mcp.json"]


@pytest.mark.parametrize("path", CONFIGS)
async def test_client_config_starts_a_working_server(home: Path, path: str) -> None:
    config = json.loads((EXAMPLES / path).read_text())
    entry = server_entry(config)
    assert entry["command"] == "mailgent-mcp" and CONSOLE_SCRIPT is not None
    env = dict(entry.get("env", {}))
    for value in env.values():  # VS Code fills ${input:...} from its prompt; answer it here
        for ref in re.findall(r"\$\{input:([\w-]+)\}", value):
            assert any(i["id"] == ref and i.get("password") for i in config["inputs"]), ref
    env = {k: re.sub(r"\$\{input:[\w-]+\}", "example passphrase", v) for k, v in env.items()}
    full_env = clean_env(home, **env)
    if "MAILGENT_DEFAULT_ENTRY" in env:
        stored = run_cli(home, "vault", "put", env["MAILGENT_DEFAULT_ENTRY"], "--secret",
                         stdin=SEED_RFC + "\n", env=full_env)
        assert stored.returncode == 0, stored.stderr
    params = StdioServerParameters(command=CONSOLE_SCRIPT, args=entry["args"], env=full_env)
    async with Client(params, mode="legacy") as client:
        assert {t.name for t in (await client.list_tools()).tools} == EXPECTED_TOOLS
        if "MAILGENT_DEFAULT_ENTRY" in env:
            result = await client.call_tool("vault_totp", {})
            assert not result.is_error, result.content
        result = await client.call_tool("vault_put", {"name": "from-config", "data": {"notes": "n"}})
        assert not result.is_error, result.content
    if "MAILGENT_PASSPHRASE" in env:  # the vault was made with the prompted passphrase
        locked = run_cli(home, "vault", "list", env=clean_env(home))
        assert locked.returncode == 3


async def test_claude_code_line_starts_a_working_server(home: Path) -> None:
    lines = [line for line in (EXAMPLES / "claude_code.sh").read_text().splitlines()
             if line.startswith("claude mcp add")]
    assert len(lines) == 1
    words = shlex.split(lines[0])
    command = words[words.index("--") + 1:]
    assert command[0] == "mailgent-mcp" and CONSOLE_SCRIPT is not None
    params = StdioServerParameters(command=CONSOLE_SCRIPT, args=command[1:], env=clean_env(home))
    async with Client(params, mode="legacy") as client:
        assert {t.name for t in (await client.list_tools()).tools} == EXPECTED_TOOLS
