"""Every file in examples/ works as documented.

Each file parses; the client configs name only what exists (the venv's console script by
absolute path, `serve` flags the CLI takes, environment variables the server reads, variable
references in the syntax of the client the file is for); and each starts a working server on a
vault made the default way (by the CLI with no key set: master.key), started as that client
would start it, or, for the HTTP config, reached with the token `mailgent-mcp token` printed,
taken from the environment. The scripts run.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from mailgent_mcp.cli.main import build_parser
from mailgent_mcp.settings import ENV_TOKEN, ENVIRONMENT_VARIABLES

from .conftest import ALL_TOOLS, SEED_RFC, clean_env, run_cli
from .helpers.http_server import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CHECKOUT = "/ABSOLUTE/PATH/TO/mailgent-mcp"  # what a config's reader replaces with their checkout's path
VENV_SCRIPT = ".venv/bin/mailgent-mcp"  # made by scripts/setup.sh in the checkout
EXPECTED_TOOLS = set(ALL_TOOLS)
ENTRY = "github"  # the entry the vault is made with, and the examples' default entry

# The environment variables the server reads: the one registry of settings.
KNOWN_VARIABLES = set(ENVIRONMENT_VARIABLES)


@dataclass(frozen=True)
class ClientSyntax:
    """How a client's config file names its servers and which ${...} references it expands."""

    client: str
    servers_key: str
    references: tuple[str, ...]  # regexes of the references it expands; group "env" names a variable

    def expand(self, text: str, environ: dict[str, str]) -> str:
        """text with every reference expanded as the client would; fails on one it does not expand."""
        for pattern in self.references:
            text = re.sub(pattern, lambda m: expand_one(m, environ), text)
        assert "${" not in text, f"{self.client} does not expand the reference in {text!r}"
        return text

    def variables(self, text: str) -> set[str]:
        """The environment variables text refers to."""
        return {m.group("env") for pattern in self.references for m in re.finditer(pattern, text)
                if "env" in m.groupdict() and m.group("env")}


def expand_one(match: re.Match[str], environ: dict[str, str]) -> str:
    name = match.groupdict().get("env")
    assert name is not None, f"the test cannot answer {match.group(0)}: a default vault needs no input"
    assert name in environ, f"{name} is not set in the client's environment"
    return environ[name]


# VS Code: predefined variables and ${input:id} in mcp.json (its MCP configuration reference),
# ${env:NAME} among them; Cursor: ${env:NAME}, ${userHome}, ${workspaceFolder}; Claude Code's
# .mcp.json: ${VAR} and ${VAR:-default} in command, args, env, url and headers; Claude Desktop
# expands nothing.
VSCODE = ClientSyntax("VS Code", "servers", (r"\$\{env:(?P<env>\w+)\}", r"\$\{input:[\w-]+\}"))
CURSOR = ClientSyntax("Cursor", "mcpServers", (r"\$\{env:(?P<env>\w+)\}",))
CLAUDE_CODE = ClientSyntax("Claude Code", "mcpServers", (r"\$\{(?P<env>[A-Za-z_]\w*)(?::-[^}]*)?\}",))
CLAUDE_DESKTOP = ClientSyntax("Claude Desktop", "mcpServers", ())

CONFIGS = {
    "claude_desktop_config.json": CLAUDE_DESKTOP,
    ".cursor/mcp.json": CURSOR,
    ".vscode/mcp.json": VSCODE,
    ".mcp.json": CLAUDE_CODE,
}
SCRIPTS = ["agent_login.py", "vault_api.py", "claude_code.sh"]


def server_entry(path: str) -> dict[str, Any]:
    """The one server a config defines, named mailgent."""
    syntax = CONFIGS[path]
    parsed = json.loads((EXAMPLES / path).read_text())
    servers = parsed[syntax.servers_key]
    assert isinstance(servers, dict) and list(servers) == ["mailgent"], parsed
    entry: dict[str, Any] = servers["mailgent"]
    return entry


def is_http(entry: dict[str, Any]) -> bool:
    return entry.get("type") == "http" or "url" in entry


STDIO_CONFIGS = [path for path in CONFIGS if not is_http(server_entry(path))]
HTTP_CONFIGS = [path for path in CONFIGS if is_http(server_entry(path))]


def console_script(command: str) -> str:
    """The venv's console script a config's command names, in this checkout."""
    assert command == f"{CHECKOUT}/{VENV_SCRIPT}", (
        f"{command!r}: a GUI client does not see the shell's PATH; name the venv's console script by absolute path")
    script = ROOT / VENV_SCRIPT
    assert script.exists(), f"{script} is missing: bash scripts/setup.sh makes it"
    return str(script)


def check_serve_args(args: list[str]) -> None:
    """args are `serve` and flags the CLI takes."""
    assert args[:1] == ["serve"], args
    try:
        build_parser().parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"the CLI rejects the example's arguments {args} (exit {exc.code})")


def default_vault(home: Path) -> dict[str, str]:
    """Make the vault as a user would with nothing set (master.key), with a TOTP entry; its env."""
    env = clean_env(home)
    stored = run_cli(home, "vault", "put", ENTRY, "--secret", stdin=SEED_RFC + "\n", env=env)
    assert stored.returncode == 0, stored.stderr
    assert (home / "master.key").exists()
    return env


async def check_tools_and_a_code(client: Client, default_entry: str | None) -> None:
    assert {t.name for t in (await client.list_tools()).tools} == EXPECTED_TOOLS
    result = await client.call_tool("vault_totp", {} if default_entry else {"name": ENTRY})
    assert not result.is_error, result.content
    assert re.fullmatch(r"\d{6}", (result.structured_content or {})["code"]), result.structured_content


# -- every file ---------------------------------------------------------------------------------


def test_every_example_file_is_checked_here() -> None:
    found = {str(p.relative_to(EXAMPLES)) for p in EXAMPLES.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert found == set(CONFIGS) | set(SCRIPTS), "add a new example to CONFIGS or SCRIPTS (and check it)"


@pytest.mark.parametrize("path", [*CONFIGS, *SCRIPTS])
def test_example_parses(path: str) -> None:
    text = (EXAMPLES / path).read_text()
    if path.endswith(".json"):
        json.loads(text)
    elif path.endswith(".py"):
        ast.parse(text, filename=path)
    else:
        done = subprocess.run(["sh", "-n", str(EXAMPLES / path)], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr


def test_readme_links_only_to_examples_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    linked = set(re.findall(r"\]\((examples/[^)#]+)\)", readme))
    assert linked, "README links to no example"
    assert all((ROOT / link).is_file() or (ROOT / link).is_dir() for link in linked), linked
    assert {f"examples/{path}" for path in CONFIGS} <= linked, "README should point to every client config"


# -- the client configs ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", STDIO_CONFIGS)
def test_stdio_config_names_the_console_script_real_flags_and_known_variables(path: str) -> None:
    entry = server_entry(path)
    console_script(entry["command"])
    check_serve_args(entry["args"])
    env = entry.get("env", {})
    assert set(env) <= KNOWN_VARIABLES, set(env) - KNOWN_VARIABLES
    assert "MAILGENT_PASSPHRASE" not in env and "MAILGENT_MASTER_KEY" not in env, (
        "a key in the config would seal a new vault with it and lock one made the default way")
    if path == ".vscode/mcp.json":
        assert entry["type"] == "stdio"
    for value in env.values():
        CONFIGS[path].expand(value, {})  # nothing it cannot expand without asking


@pytest.mark.parametrize("path", STDIO_CONFIGS)
async def test_stdio_config_starts_a_working_server_on_a_default_vault(home: Path, path: str) -> None:
    entry = server_entry(path)
    env = default_vault(home)
    server_env = {**env, **{k: CONFIGS[path].expand(v, {}) for k, v in entry.get("env", {}).items()}}
    params = StdioServerParameters(command=console_script(entry["command"]), args=entry["args"], env=server_env)
    async with Client(params, mode="legacy") as client:
        await check_tools_and_a_code(client, server_env.get("MAILGENT_DEFAULT_ENTRY"))
    assert run_cli(home, "vault", "list", env=env).returncode == 0  # still the default vault, open without a key


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    """`serve --transport http` on a default vault, and the token `mailgent-mcp token` printed for it."""
    home = tmp_path / "home"
    env = default_vault(home)
    made = run_cli(home, "token", env=env)
    assert made.returncode == 0, made.stderr
    server = ServerProcess.start("http", env, tmp_path / "logs")
    try:
        yield server, made.stdout.strip()
    finally:
        server.stop()


@pytest.mark.parametrize("path", HTTP_CONFIGS)
def test_http_config_takes_the_token_from_the_environment(path: str) -> None:
    entry = server_entry(path)
    syntax = CONFIGS[path]
    url = urlsplit(entry["url"])
    assert (url.scheme, url.hostname, url.path) == ("http", "127.0.0.1", "/mcp"), entry["url"]
    assert url.port == build_parser().parse_args(["serve"]).port, "the example should use serve's default port"
    header = entry["headers"]["Authorization"]
    assert header.startswith("Bearer ") and syntax.variables(header) == {ENV_TOKEN}, header
    assert syntax.expand(header, {ENV_TOKEN: "t" * 24}) == "Bearer " + "t" * 24


@pytest.mark.parametrize("path", HTTP_CONFIGS)
async def test_http_config_reaches_the_server_with_the_token_command_output(
        path: str, http_server: tuple[ServerProcess, str]) -> None:
    server, token = http_server
    entry = server_entry(path)
    client_env = {ENV_TOKEN: token}  # export MAILGENT_TOKEN=$(mailgent-mcp token)
    url = CONFIGS[path].expand(entry["url"], client_env).replace(f":{urlsplit(entry['url']).port}/",
                                                                  f":{server.port}/")
    headers = {k: CONFIGS[path].expand(v, client_env) for k, v in entry["headers"].items()}
    async with (httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(10, read=60)) as http,
                Client(streamable_http_client(url, http_client=http), mode="legacy",
                       read_timeout_seconds=10) as client):
        await check_tools_and_a_code(client, None)


# -- Claude Code's command lines ------------------------------------------------------------------


def claude_mcp_add_lines() -> list[tuple[bool, list[str]]]:
    """Each `claude mcp add` line of claude_code.sh, run or commented, as words after `claude mcp add`."""
    lines = []
    for raw in (EXAMPLES / "claude_code.sh").read_text().splitlines():
        commented = raw.lstrip().startswith("#")
        text = raw.lstrip("# ").strip()
        if text.startswith("claude mcp add "):
            lines.append((not commented, shlex.split(text)[3:]))
    return lines


def split_add(words: list[str]) -> tuple[dict[str, list[str]], str, list[str]]:
    """`[options] NAME -- COMMAND ARGS` or `[options] NAME URL [options]`: (options, name, rest)."""
    options: dict[str, list[str]] = {}
    positional: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            return options, positional[0], words[i + 1:]
        if word.startswith("--"):
            options.setdefault(word, []).append(words[i + 1])
            i += 2
            continue
        positional.append(word)
        i += 1
    return options, positional[0], positional[1:]


def test_claude_code_lines_name_the_console_script_real_flags_and_known_variables() -> None:
    lines = claude_mcp_add_lines()
    assert [run for run, _ in lines].count(True) == 1 and len(lines) >= 3, lines
    for _, words in lines:
        options, name, rest = split_add(words)
        assert name == "mailgent" and set(options) <= {"--scope", "--env", "--transport", "--header"}, words
        assert options.get("--scope") == ["user"], "run from the checkout, a local scope would serve that project only"
        if options.get("--transport") == ["http"]:
            url = urlsplit(rest[0])
            assert (url.hostname, url.port, url.path) == ("127.0.0.1", build_parser().parse_args(["serve"]).port,
                                                         "/mcp"), rest
            assert options["--header"] == ["Authorization: Bearer $MAILGENT_TOKEN"], options
            continue
        console_script(rest[0].replace("$PWD", CHECKOUT))
        check_serve_args(rest[1:])
        names = {assignment.split("=", 1)[0] for assignment in options.get("--env", [])}
        assert names <= KNOWN_VARIABLES, names - KNOWN_VARIABLES


async def test_claude_code_line_starts_a_working_server_on_a_default_vault(home: Path) -> None:
    [words] = [words for run, words in claude_mcp_add_lines() if run]
    _, _, rest = split_add(words)
    env = default_vault(home)
    params = StdioServerParameters(command=console_script(rest[0].replace("$PWD", CHECKOUT)), args=rest[1:], env=env)
    async with Client(params, mode="legacy") as client:
        await check_tools_and_a_code(client, None)


# -- the scripts ----------------------------------------------------------------------------------


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
    assert re.search(r"inbox_wait returned the mail that was already there after [\d.]+ s: code \d{6}", result.stdout)
    assert re.search(r"logged in with password and TOTP \d{6} \((\d+) s left\)", result.stdout)
    assert re.search(r"logged in with recovery code \S+ \(7 left\)", result.stdout)
