"""pydantic validation errors -> diagnostics positioned in the YAML source."""

from __future__ import annotations

import difflib
import re
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from shipyard.diagnostics import Diagnostic, did_you_mean, one_of
from shipyard.loader.source_map import Path, SourceMap
from shipyard.spec.base import NAME_PATTERN, SPEC_RULE
from shipyard.spec.datasets import EXPECTATION_KINDS, GX_TYPE_PATTERN
from shipyard.spec.models import CLASS_PATTERN, TRAIN_PATTERN


def diagnostics_from_validation(
    error: ValidationError, source_map: SourceMap, root: type[Any], prefix: Path = ()
) -> list[Diagnostic]:
    """One diagnostic per pydantic error, with the code, position and hint a person needs."""
    out: list[Diagnostic] = []
    details = error.errors(include_url=False)
    typos = _typo_keys(details, prefix, source_map)
    for detail in details:
        loc = tuple(p for p in (*prefix, *detail["loc"]))
        if detail["type"] == "missing" and (_clean_loc(loc[:-1], source_map), loc[-1]) in typos:
            continue  # reported once, as the misspelt unknown key that names it
        out.append(_to_diagnostic(detail, loc, source_map, root))
    return out


def _typo_keys(
    details: list[ErrorDetails], prefix: Path, source_map: SourceMap
) -> set[tuple[Path, str | int]]:
    """(mapping, missing key) pairs where an unknown key in the same mapping is its misspelling."""
    missing: dict[Path, list[str]] = {}
    unknown: list[tuple[Path, str]] = []
    for detail in details:
        loc = (*prefix, *detail["loc"])
        if not loc or not isinstance(loc[-1], str):
            continue
        parent = _clean_loc(loc[:-1], source_map)
        if detail["type"] == "missing":
            missing.setdefault(parent, []).append(loc[-1])
        elif detail["type"] == "extra_forbidden":
            unknown.append((parent, loc[-1]))
    typos: set[tuple[Path, str | int]] = set()
    for parent, key in unknown:
        match = difflib.get_close_matches(key, missing.get(parent, []), n=1, cutoff=0.6)
        if match:
            typos.add((parent, match[0]))
    return typos


def _dotted(loc: Path) -> str:
    return ".".join(str(p) for p in loc) or "top level"


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
            f"{_dotted(parent)}: invalid name '{_shown(bad_key)}'",
            sm.key_span((*parent, bad_key)),
            NAME_HINT,
        )
    if kind == "extra_forbidden":
        key = loc[-1]
        allowed = _allowed_keys(root, where[:-1])
        hint = did_you_mean(str(key), allowed) or (
            one_of(sorted(allowed), limit=12) if allowed else None
        )
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
    if kind == SPEC_RULE:
        # a check of the spec models that says itself where it points (see spec.models.spec_rule)
        at = _clean_loc((*loc, *ctx["at"]), sm)
        return Diagnostic(
            ctx["code"],
            f"{_dotted(where)}: {ctx['message']}",
            (sm.key_span(at) if ctx["key"] else sm.value_span(at)) or sm.nearest_span(at),
            ctx["hint"],
        )
    if kind == "expectation":
        value = detail["input"]
        span = sm.value_span(where)
        if isinstance(value, dict) and len(value) == 1:
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
        hint = (
            _synonym(str(value), options)
            or did_you_mean(str(value), options)
            or f"expected {expected}"
        )
        return Diagnostic(
            "E103", f"{_dotted(where)}: invalid value '{_shown(value)}'", sm.value_span(where), hint
        )
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == NAME_PATTERN:
        return Diagnostic(
            "E104",
            f"{_dotted(where)}: invalid name '{_shown(detail['input'])}'",
            sm.value_span(where),
            NAME_HINT,
        )
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == GX_TYPE_PATTERN:
        return Diagnostic(
            "E103",
            f"{_dotted(where)}: '{detail['input']}' is not a Great Expectations expectation type",
            sm.value_span(where),
            "expectation types start with 'expect_', e.g. expect_column_mean_to_be_between",
        )
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == CLASS_PATTERN:
        return Diagnostic(
            "E103",
            f"{_dotted(where)}: '{detail['input']}' is not an import path",
            sm.value_span(where),
            "name the class with its module, e.g. sklearn.linear_model.LogisticRegression",
        )
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == TRAIN_PATTERN:
        value = str(detail["input"])
        module, dot, function = value.rpartition(".")
        return Diagnostic(
            "E103",
            f"{_dotted(where)}: '{value}' is not a `module:function` reference",
            sm.value_span(where),
            f"did you mean '{module}:{function}'?"
            if dot and ":" not in value and re.match(TRAIN_PATTERN, f"{module}:{function}")
            else "separate the module and the function with ':', e.g. my_project.training:train",
        )
    if kind == "too_short" and ctx.get("min_length") == 1:
        kind = "string_too_short"  # "must not be empty" reads better than "at least 1 entries"
    message = _MESSAGES[kind].format(**ctx) if kind in _MESSAGES else detail["msg"]
    return Diagnostic(
        "E103",
        f"{_dotted(where)}: {message.removeprefix('Value error, ')}",
        sm.value_span(where) or sm.nearest_span(where),
        _got(kind, detail["input"]),
    )


# other systems' names for the spec's column types (pandas, SQL, JSON Schema, Arrow)
_SYNONYMS = {
    "float": ("double", "float64", "float32", "number", "real", "decimal", "numeric"),
    "int": ("integer", "int64", "int32", "long", "bigint", "smallint"),
    "str": ("string", "text", "varchar", "object", "utf8"),
    "bool": ("boolean",),
    "datetime": ("timestamp", "datetime64", "datetime64[ns]"),
}


def _synonym(value: str, options: list[str]) -> str | None:
    for name, others in _SYNONYMS.items():
        if value.lower() in others and name in options:
            return f"write '{name}' (Shipyard's name for {value})"
    return None


def _shown(value: Any) -> str:
    """A value as text with its invisible characters spelled out (a stray U+FEFF reads \\ufeff)."""
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in str(value))


NAME_HINT = "names use lowercase letters, digits, '-' and '_', and start with a letter"

# pydantic's wording ("Input should be ...") rephrased for people editing YAML
_MESSAGES: dict[str, str] = {
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number, not .inf or .nan",
    "string_type": "must be text",
    "dict_type": "must be a mapping of `key: value` entries",
    "model_type": "must be a mapping of `key: value` entries",
    "model_attributes_type": "must be a mapping of `key: value` entries",
    "list_type": "must be a list",
    "string_too_short": "must not be empty",
    "too_short": "needs at least {min_length} entries, has {actual_length}",
    "string_pattern_mismatch": "does not match the pattern {pattern}",
}


def _got(kind: str, value: Any) -> str | None:
    """For a wrong type: what the YAML parsed as (e.g. `yes` is a boolean, `1.0` a number)."""
    if not (kind.endswith(("_type", "_parsing")) or kind == "column_type"):
        return None
    if isinstance(value, dict | list):
        return f"got a {'mapping' if isinstance(value, dict) else 'list'}"
    return f"got {value!r}" if value is not None else "got nothing (null)"


def _allowed_keys(root: type[BaseModel], loc: Path) -> list[str]:
    schema = _json_schema(root)  # root is a pydantic model class
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
def _json_schema(root: type[BaseModel]) -> dict[str, Any]:
    schema: dict[str, Any] = root.model_json_schema(by_alias=True)
    return schema
