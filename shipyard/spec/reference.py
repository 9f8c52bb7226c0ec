"""The spec reference in docs/ (docs/spec-reference.md), generated from the JSON Schema."""

from __future__ import annotations

import json
from typing import Any

from shipyard.spec.schema import spec_json_schema


def _type(node: dict[str, Any]) -> str:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in node or "oneOf" in node:
        parts = [_type(n) for n in node.get("anyOf", node.get("oneOf", []))]
        return " or ".join(dict.fromkeys(p for p in parts if p != "null")) + (
            " (optional)" if any(n.get("type") == "null" for n in node.get("anyOf", [])) else ""
        )
    if "enum" in node:
        # YAML null and the string 'null' read the same here (on_missing: null)
        names = dict.fromkeys("null" if v is None else str(v) for v in node["enum"])
        return " \\| ".join(f"`{v}`" for v in names)
    if "const" in node:
        return f"`{node['const']}`"
    kind = node.get("type", "any")
    if kind == "array":
        return f"list of {_type(node.get('items', {}))}"
    if kind == "object":
        values = node.get("additionalProperties") or next(
            iter(node.get("patternProperties", {}).values()), None
        )
        return f"map of name to {_type(values)}" if isinstance(values, dict) else "mapping"
    return str(kind)


def _section(name: str, node: dict[str, Any], required: set[str]) -> list[str]:
    lines = [f"## {name}", "", node.get("description", "").strip(), ""]
    props: dict[str, Any] = node.get("properties", {})
    # a mapping that may also be written in a short form (a feature service as a list of views)
    forms = node.get("anyOf", [])
    mapping = next((n for n in forms if n.get("properties")), None)
    if not props and mapping is not None:
        for other in forms:
            if other is not mapping:
                lines += [f"Also written as a {_type(other)}: {other.get('description', '')}", ""]
        return _section(name, {**mapping, "description": "\n".join(lines[2:]).strip()}, required)
    if not props:
        return [*lines, f"Type: {_type(node)}", ""]
    lines += ["| key | type | default | description |", "|---|---|---|---|"]
    for key, prop in props.items():
        if key in required:
            default = "required"
        else:
            default = f"`{json.dumps(prop['default'])}`" if "default" in prop else "(computed)"
        description = prop.get("description", "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{key}` | {_type(prop)} | {default} | {description} |")
    return [*lines, ""]


def spec_reference_markdown() -> str:
    schema = spec_json_schema()
    out = [
        "# pipelines.yaml reference",
        "",
        "Generated from the JSON Schema by `shipyard schema --format markdown`; do not edit.",
        "Editors get completion from `pipelines.schema.json` through the modeline on the first",
        "line of `pipelines.yaml`.",
        "",
    ]
    out += _section("PipelineSpec (the file)", schema, set(schema.get("required", [])))
    for name, node in sorted(schema.get("$defs", {}).items()):
        out += _section(name, node, set(node.get("required", [])))
    return "\n".join(out).rstrip() + "\n"
