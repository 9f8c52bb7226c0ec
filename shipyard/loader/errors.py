"""pydantic validation errors -> diagnostics positioned in the YAML source."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from shipyard.diagnostics import Diagnostic, did_you_mean, one_of
from shipyard.loader.source_map import Path, SourceMap


def diagnostics_from_validation(
    error: ValidationError, source_map: SourceMap, root: type[Any], prefix: Path = ()
) -> list[Diagnostic]:
    """One diagnostic per pydantic error, with the code, position and hint a person needs."""
    out: list[Diagnostic] = []
    for detail in error.errors(include_url=False):
        loc = tuple(p for p in (*prefix, *detail["loc"]))
        out.append(_to_diagnostic(detail, loc, source_map, root))
    return out


def _dotted(loc: Path) -> str:
    return ".".join(str(p) for p in loc) or "(root)"


def _clean_loc(loc: Path, source_map: SourceMap) -> Path:
    """Drop union tags and other loc parts that are not in the YAML file."""
    return source_map._resolve(loc) if loc else loc


def _to_diagnostic(detail: ErrorDetails, loc: Path, sm: SourceMap, root: type[Any]) -> Diagnostic:
    kind = detail["type"]
    where = _clean_loc(loc, sm)
    ctx: dict[str, Any] = dict(detail.get("ctx") or {})
    if loc and loc[-1] == "[key]":
        # an invalid dict key: point at the key itself
        bad_key = loc[-2]
        parent = _clean_loc(loc[:-2], sm)
        return Diagnostic(
            "E104",
            f"{_dotted(parent)}: invalid name '{bad_key}'",
            sm.key_span((*parent, bad_key)),
            "names use lowercase letters, digits, '-' and '_', and start with a letter",
        )
    if kind == "extra_forbidden":
        key = loc[-1]
        allowed = _allowed_keys(root, tuple(p for p in loc[:-1] if p != "[key]"))
        hint = did_you_mean(str(key), allowed) or (one_of(sorted(allowed)) if allowed else None)
        return Diagnostic(
            "E101",
            f"{_dotted(where[:-1])}: unknown key '{key}'",
            sm.key_span(where),
            hint,
        )
    if kind == "missing":
        parent = _clean_loc(loc[:-1], sm)
        return Diagnostic(
            "E102",
            f"{_dotted(parent)}: missing required key '{loc[-1]}'",
            sm.key_span(parent) or sm.nearest_span(parent),
            f"add `{loc[-1]}: ...` here",
        )
    if kind == "expectation":
        value = detail["input"]
        span = sm.value_span(where)
        if isinstance(value, dict) and len(value) == 1:
            from shipyard.spec.datasets import EXPECTATION_KINDS

            name = str(next(iter(value)))
            return Diagnostic(
                "E105",
                f"{_dotted(where)}: unknown expectation '{name}'",
                sm.key_span((*where, name)) or span,
                did_you_mean(name, EXPECTATION_KINDS) or one_of(sorted(EXPECTATION_KINDS)),
            )
        return Diagnostic(
            "E105",
            f"{_dotted(where)}: {detail['msg']}",
            span,
            "write one rule per list item, e.g. `- between: {column: age, min: 0}`",
        )
    if kind in {"literal_error", "enum"}:
        expected = str(ctx.get("expected", ""))
        options = [o.strip().strip("'") for o in expected.replace(" or ", ", ").split(",")]
        value = detail["input"]
        hint = did_you_mean(str(value), options) or f"expected {expected}"
        return Diagnostic(
            "E103", f"{_dotted(where)}: invalid value '{value}'", sm.value_span(where), hint
        )
    message = detail["msg"].removeprefix("Value error, ")
    return Diagnostic(
        "E103",
        f"{_dotted(where)}: {message}",
        sm.value_span(where) or sm.nearest_span(where),
        _type_hint(kind, detail["input"]),
    )


def _type_hint(kind: str, value: Any) -> str | None:
    if kind.endswith("_type") or kind.endswith("_parsing"):
        shown = repr(value) if not isinstance(value, dict | list) else type(value).__name__
        return f"got {shown}"
    return None


def _allowed_keys(root: type[Any], loc: Path) -> list[str]:
    schema = _json_schema(root)
    defs = schema.get("$defs", {})
    nodes = [schema]
    for part in loc:
        nxt: list[dict[str, Any]] = []
        for node in nodes:
            for n in _expand(node, defs):
                props = n.get("properties", {})
                if isinstance(part, str) and part in props:
                    nxt.append(props[part])
                elif isinstance(part, str) and isinstance(n.get("additionalProperties"), dict):
                    nxt.append(n["additionalProperties"])
                elif isinstance(part, str) and n.get("patternProperties"):
                    nxt.extend(n["patternProperties"].values())
                elif isinstance(part, int) and isinstance(n.get("items"), dict):
                    nxt.append(n["items"])
        nodes = nxt or nodes  # skip loc parts (union tags) the schema does not have
    keys: set[str] = set()
    for node in nodes:
        for n in _expand(node, defs):
            keys.update(n.get("properties", {}))
    return sorted(keys)


def _expand(node: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    if "$ref" in node:
        return _expand(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    out = [node]
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in node.get(key, []):
            out.extend(_expand(sub, defs))
    return out


@cache
def _json_schema(root: type[Any]) -> dict[str, Any]:
    schema: dict[str, Any] = root.model_json_schema(by_alias=True)
    return schema
