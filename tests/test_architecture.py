"""The package's layers, read from its import statements: no cycles, no upward edges, no private names.

    shared modules (mailgent_mcp/*.py)   errors, config, logs, filelock, times
    db/                                  the database layer
    vault/   inbox/                      the two domains; neither imports the other
    mcp/                                 the MCP server and its tools
    demo/                                the demo's service and agent
    cli/                                 the command line (it starts the server and the demo)

Every import counts, those inside functions and under TYPE_CHECKING included: an import
moved into a function to dodge a cycle is still a cycle in the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mailgent_mcp"
ROOT = "mailgent_mcp"

# A module may import its own layer's modules and those of lower layers only.
RANKS = {"(shared)": 0, "db": 1, "vault": 2, "inbox": 2, "mcp": 3, "demo": 4, "cli": 5, "__main__": 6}


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports_of(path: Path, name: str, known: set[str]) -> list[tuple[str, list[str]]]:
    """(module imported, the names taken from it) for each import of this package in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names if alias.name.split(".")[0] == ROOT]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] != ROOT:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub, []) if sub in known else (base, [alias.name]))
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    if parts == [ROOT, "__main__"]:
        return "__main__"
    if len(parts) == 1 or (len(parts) == 2 and f"{ROOT}.{parts[1]}" not in SUBPACKAGES):
        return "(shared)"
    return parts[1]


def graph() -> dict[str, dict[str, list[str]]]:
    names = module_names()
    return {name: {target: taken for target, taken in imports_of(path, name, set(names)) if target != name}
            for name, path in names.items()}


SUBPACKAGES = {f"{ROOT}.{p.parent.name}" for p in PACKAGE.glob("*/__init__.py")}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first walk (each reported once per back edge)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def upward_edges(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    bad = []
    for source, targets in edges.items():
        for target in targets:
            a, b = layer(source), layer(target)
            if RANKS[b] > RANKS[a] or (a != b and RANKS[a] == RANKS[b]):
                bad.append((source, target))
    return sorted(bad)


def test_the_checks_find_what_they_look_for() -> None:
    """The checks below on a made-up graph: a cycle, an upward edge and a sideways one are found."""
    made_up = {"mailgent_mcp.db.a": {"mailgent_mcp.vault.b"}, "mailgent_mcp.vault.b": {"mailgent_mcp.db.a"},
               "mailgent_mcp.inbox.c": {"mailgent_mcp.vault.b"}, "mailgent_mcp.mcp.d": {"mailgent_mcp.errors"}}
    assert cycles(made_up) == [["mailgent_mcp.db.a", "mailgent_mcp.vault.b", "mailgent_mcp.db.a"]]
    assert upward_edges(made_up) == [("mailgent_mcp.db.a", "mailgent_mcp.vault.b"),
                                     ("mailgent_mcp.inbox.c", "mailgent_mcp.vault.b")]


def test_every_module_is_in_a_known_layer() -> None:
    assert {layer(name) for name in module_names()} <= set(RANKS)


def test_the_import_graph_has_no_cycles() -> None:
    edges = {source: set(targets) for source, targets in graph().items()}
    assert cycles(edges) == []


def test_no_module_imports_from_a_higher_layer_or_a_sibling_domain() -> None:
    edges = {source: set(targets) for source, targets in graph().items()}
    assert upward_edges(edges) == []


def test_no_module_takes_another_modules_private_names() -> None:
    taken = [(source, target, name) for source, targets in graph().items() for target, names in targets.items()
             for name in names if name.startswith("_") and not name.startswith("__")]
    assert taken == []


@pytest.mark.parametrize("package", sorted(SUBPACKAGES))
def test_each_subpackage_says_what_it_owns(package: str) -> None:
    init = PACKAGE / package.split(".")[1] / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
    assert doc and len(doc.split()) >= 12, f"{init}: a docstring saying what the subpackage owns"
