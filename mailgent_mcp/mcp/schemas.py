"""Tool schemas every client takes: inlined, without noise, closed, strict-mode ready.

pydantic writes `$defs` and `$ref` for nested models, a `title` on every property and
`default: null` on every optional one. Some clients (Gemini CLI and VS Code Copilot among
them) break on `$ref`; the titles and null defaults only cost the model tokens. A tidied
schema has every reference inlined, no titles, no null defaults, and, for inputs, every
object closed (`additionalProperties: false`), so that OpenAI's strict mode takes it as
it is. An output schema keeps no defaults: a result always carries its values.
"""

from __future__ import annotations

from typing import Any

# Keywords whose value is a map of names to schemas (their keys are not keywords).
_NAMED_SCHEMAS = ("properties", "patternProperties")


def tidy(schema: dict[str, Any], *, closed: bool) -> dict[str, Any]:
    """A copy of schema with references inlined and noise dropped; closed=True closes every object."""
    defs = schema.get("$defs", {})

    def walk(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [walk(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name in seen:
                raise ValueError(f"recursive schema {name} cannot be inlined")
            merged = {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
            return walk(merged, (*seen, name))
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("$defs", "title") or (key == "default" and (value is None or not closed)):
                continue
            if key in _NAMED_SCHEMAS and isinstance(value, dict):
                out[key] = {name: walk(sub, seen) for name, sub in value.items()}
            else:
                out[key] = walk(value, seen)
        if closed and out.get("type") == "object" and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out

    tidied: dict[str, Any] = walk(schema, ())
    return tidied
