"""Every client takes the tools as they are: schemas without $ref, noise or open objects, compact answers.

Checked with the clients' own code where it can run here: the OpenAI Agents SDK's MCP
adapter (the real package, over real stdio) decides per tool whether its schema can run in
OpenAI's strict mode, and falls back to non-strict when it cannot. The other rules come
from the clients' documented limits: Gemini CLI and VS Code Copilot break on `$ref`/`$defs`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from agents.mcp import MCPServerStdio, MCPUtil
from mcp import Client

from mailgent_mcp.mcp.server import build_server
from mailgent_mcp.mcp.vault_tools import VaultProvider
from mailgent_mcp.settings import Settings

from .conftest import ALL_TOOLS, SEED_RFC, clean_env, error_text, ok

# tools/list of the ten tools of release 6b178e5 (before this change), as compact JSON of
# Tool.model_dump(mode="json", by_alias=True, exclude_none=True): 29,614 characters.
TEN_TOOLS_BEFORE_CHARS = 29_614
TEN_TOOLS = [t for t in ALL_TOOLS if t != "vault_backup_code"]


async def listed(home: Path) -> list[dict[str, Any]]:
    provider = VaultProvider(home, {})
    try:
        async with Client(build_server(Settings(home=home), provider)) as c:
            tools = (await c.list_tools()).tools
    finally:
        await provider.close()
    return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]


def schemas(tool: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{tool['name']}.{k}", tool[k]) for k in ("inputSchema", "outputSchema") if k in tool]


def walk(node: Any, path: str = "") -> Any:
    """Every (path, schema object) in a schema."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            if key in ("properties", "patternProperties") and isinstance(value, dict):
                for name, sub in value.items():
                    yield from walk(sub, f"{path}.{name}")
            elif isinstance(value, dict | list):
                yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from walk(item, f"{path}[{i}]")


async def test_every_tool_runs_in_openai_strict_mode() -> None:
    """The Agents SDK's own conversion, on the tools as our server lists them over stdio."""
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"strict-{os.getpid()}"
    params = {"command": sys.executable, "args": ["-m", "mailgent_mcp", "serve"], "env": clean_env(home)}
    async with MCPServerStdio(params=params, client_session_timeout_seconds=30) as server:  # type: ignore[arg-type]
        tools = await server.list_tools()
        strict = {t.name: MCPUtil.to_function_tool(t, server, convert_schemas_to_strict=True).strict_json_schema
                  for t in tools}
    assert strict == {name: True for name in ALL_TOOLS}


async def test_schemas_are_inlined_and_free_of_noise(home: Path) -> None:
    for tool in await listed(home):
        for where, schema in schemas(tool):
            text = json.dumps(schema)
            assert "$ref" not in text and "$defs" not in text, where
            for path, node in walk(schema):
                assert "title" not in node, f"{where}{path}"
                assert node.get("default", 0) is not None, f"{where}{path}: a null default"
                if node.get("type") == "object" and where.endswith("inputSchema"):
                    assert node.get("additionalProperties") is False, f"{where}{path}: an open input object"


async def test_every_nested_field_is_described(home: Path) -> None:
    missing = []
    for tool in await listed(home):
        for where, schema in schemas(tool):
            for _path, node in walk(schema):
                for name, sub in node.get("properties", {}).items():
                    if "description" not in sub:
                        missing.append(f"{where}.{name}")
    assert missing == []


async def test_the_tool_list_stays_within_a_tenth_of_its_size_before(home: Path) -> None:
    tools = await listed(home)
    assert [t["name"] for t in tools] == ALL_TOOLS
    ten = [t for t in tools if t["name"] in TEN_TOOLS]
    size = len(json.dumps(ten, separators=(",", ":")))
    assert size <= TEN_TOOLS_BEFORE_CHARS * 1.10, size


async def test_text_content_is_the_structured_result_as_compact_json(home: Path) -> None:
    provider = VaultProvider(home, {})
    try:
        async with Client(build_server(Settings(home=home), provider)) as c:
            result = await c.call_tool("vault_put", {"name": "svc", "data": {"username": "u", "secret": SEED_RFC}})
    finally:
        await provider.close()
    text = result.content[0].text  # type: ignore[union-attr]
    assert json.loads(text) == result.structured_content
    assert text == json.dumps(result.structured_content, ensure_ascii=False, separators=(",", ":"))
    assert "\n" not in text


async def test_vault_put_data_semantics_for_strict_clients(home: Path) -> None:
    """A strict-mode client sends every property, null for those it does not set: null keeps a field."""
    provider = VaultProvider(home, {})
    every_null = {"username": None, "password": None, "secret": None, "url": None, "notes": None,
                  "backupCodes": None, "other": None}
    try:
        async with Client(build_server(Settings(home=home), provider)) as c:
            ok(await c.call_tool("vault_put", {"name": "svc", "data": {
                **every_null, "username": "u", "password": "pw-1", "other": [{"name": "api_key", "value": "k1"}]}}))
            ok(await c.call_tool("vault_put", {"name": "svc", "data": {**every_null, "notes": "n"},
                                               "type": None, "totp": None, "generate_password": None,
                                               "remove": ["api_key"], "if_absent": False}))
            view = ok(await c.call_tool("vault_get", {"name": "svc"}))
            legacy = ok(await c.call_tool("vault_put", {"name": "old", "data": {"api_key": "k2"}}))
            twice = error_text(await c.call_tool("vault_put", {"name": "svc", "data": {"notes": "x"},
                                                               "remove": ["notes"]}))
            nothing = error_text(await c.call_tool("vault_put", {"name": "svc", "data": every_null}))
    finally:
        await provider.close()
    assert view["data"] == {"username": "u", "password": "pw-1", "notes": "n"}
    assert legacy["fields"] == ["api_key"]  # a field name outside the schema, as callers sent before
    assert "also given a value" in twice
    assert "Nothing to store" in nothing
