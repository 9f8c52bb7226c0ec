"""Blocks indented too little: found, reported once, and put back where they belong.

A block written one level too shallow parses as valid YAML that means something else:

    datasets:            models:
      orders:              churn:
      path: orders.csv       task: classification
                           target: churned     <- a key of `churn`, read as a model named
                                                  `target`

Validating that as written gives a dozen errors (an empty dataset, a model missing every key,
every reference to them undefined) with the cause nowhere among them. Here the misplaced keys
are recognised by name (they are fields of the entry above them, and do not form a valid entry
themselves), moved under that entry together with their positions, and one E106 says which lines
to indent. Validation then runs on the spec as the user meant it, so any error left is real.
"""

from __future__ import annotations

import functools
import typing
from types import UnionType
from typing import Any

from pydantic import BaseModel, ValidationError

from shipyard.diagnostics import Diagnostic
from shipyard.loader.source_map import Path, SourceMap
from shipyard.spec import SpecModel

INDENT = 2
"""Indentation assumed for a block that has no correctly indented line to copy."""


def reindent(
    data: dict[str, Any], root: type[BaseModel], source_map: SourceMap
) -> list[Diagnostic]:
    """Move keys indented too little under the key they belong to (in `data` and `source_map`,
    in place); one diagnostic per moved block."""
    moves: list[Diagnostic] = []
    _walk_model(root, data, (), source_map, moves)
    return moves


@functools.cache
def _shape(
    model: type[BaseModel],
) -> tuple[dict[str, Any], list[tuple[str, type[BaseModel] | None, type[BaseModel] | None]]]:
    """A model's fields by the key written, and those holding spec models: (key, entry model
    of a mapping of entries, nested model)."""
    fields = {field.alias or name: field.annotation for name, field in model.model_fields.items()}
    nested = [(key, _entry_model(a), _model(a)) for key, a in fields.items()]
    return fields, [(key, e, m) for key, e, m in nested if e is not None or m is not None]


def _walk_model(
    model: type[BaseModel], raw: dict[str, Any], path: Path, sm: SourceMap, moves: list[Diagnostic]
) -> None:
    fields, nested_fields = _shape(model)
    if None in raw.values() or not fields.keys() >= raw.keys():
        _adopt_unknown_keys(raw, fields, path, sm, moves)
    for key, entries, nested in nested_fields:
        value = raw.get(key)
        if not isinstance(value, dict):
            continue
        if entries is not None:
            _adopt_entry_fields(entries, value, (*path, key), sm, moves)
            for name, entry in value.items():
                if isinstance(entry, dict):
                    _walk_model(entries, entry, (*path, key, name), sm, moves)
        elif nested is not None:
            _walk_model(nested, value, (*path, key), sm, moves)


def _adopt_unknown_keys(
    raw: dict[str, Any],
    fields: dict[str, Any],
    path: Path,
    sm: SourceMap,
    moves: list[Diagnostic],
) -> None:
    """`models:` left empty and followed by unknown keys: they are its entries (or, for a
    nested model such as `batching:`, its fields)."""
    keys = list(raw)
    for i, owner in enumerate(keys):
        if owner not in raw or raw[owner] is not None or owner not in fields:
            continue
        entries, nested = _entry_model(fields[owner]), _model(fields[owner])
        run: list[str] = []
        for key in keys[i + 1 :]:
            if key in fields:
                break
            if (entries is not None and isinstance(raw[key], dict)) or (
                nested is not None and key in _field_names(nested)
            ):
                run.append(key)
            else:
                break
        if run:
            raw[owner] = {key: raw.pop(key) for key in run}
            what = "entr" + ("ies" if len(run) > 1 else "y") if entries is not None else "key"
            moves.append(_move(path, owner, run, sm, f"{what}{_plural(run, what)} of `{owner}:`"))


def _adopt_entry_fields(
    entries: type[BaseModel],
    raw: dict[str, Any],
    path: Path,
    sm: SourceMap,
    moves: list[Diagnostic],
) -> None:
    """Under `datasets:`, keys such as `path:` and `schema:` that do not make a dataset of their
    own: fields of the entry above them."""
    names = _field_names(entries)
    if names.isdisjoint(raw):
        return
    keys = list(raw)
    owner: str | None = None
    run: list[str] = []

    def flush() -> None:
        nonlocal run
        target = raw.get(owner) if owner is not None else None
        if owner is not None and run and (target is None or isinstance(target, dict)):
            block = target if isinstance(target, dict) else {}
            if not any(key in block for key in run):
                block.update({key: raw.pop(key) for key in run})
                raw[owner] = block
                kind = path[-1] if path else "entry"
                what = f"key{_plural(run, 'key')} of {_singular(str(kind))} '{owner}'"
                moves.append(_move(path, owner, run, sm, what))
        run = []

    for key in keys:
        if key in names and not _valid_entry(entries, raw[key]):
            run.append(key)
            continue
        flush()
        owner = key
    flush()


def _move(parent: Path, owner: str, keys: list[str], sm: SourceMap, what: str) -> Diagnostic:
    """The diagnostic for keys moved under `owner`; their positions move with them."""
    diagnostic = _moved(parent, owner, keys, sm, what)
    _remap(sm, parent, owner, keys)
    return diagnostic


def _moved(parent: Path, owner: str, keys: list[str], sm: SourceMap, what: str) -> Diagnostic:
    owner_span = sm.key_span((*parent, owner))
    first = sm.key_span((*parent, keys[0]))
    last = sm.value_span((*parent, keys[-1])) or sm.key_span((*parent, keys[-1]))
    named = [f"`{key}`" for key in keys[:4]] + ([f"{len(keys) - 4} more"] if len(keys) > 4 else [])
    listed = named[0] if len(named) == 1 else f"{', '.join(named[:-1])} and {named[-1]}"
    one = len(keys) == 1
    if owner_span is None or first is None or last is None:
        return Diagnostic("E106", f"{listed} {'is' if one else 'are'} indented too little", first)
    indent = _child_indent(sm, (*parent, owner), keys) - first.col
    lines = (
        f"line {first.line}"
        if last.end_line == first.line
        else f"lines {first.line}-{_last_line(last)}"
    )
    return Diagnostic(
        "E106",
        f"{listed} {'is' if one else 'are'} indented too little: "
        f"{('it is an' if what[0] in 'aeiou' else 'it is a') if one else 'they are'} {what} "
        f"on line {owner_span.line}",
        first,
        f"indent {lines} by {indent} more space{'s' if indent != 1 else ''}",
    )


def _last_line(span: Any) -> int:
    """A block value's span ends at the start of the next line: the last line it fills."""
    return int(
        span.end_line - 1 if span.end_col == 1 and span.end_line > span.line else span.end_line
    )


def _child_indent(sm: SourceMap, owner: Path, moved: list[str]) -> int:
    """The column of the owner's correctly indented keys, else one step deeper than it."""
    depth = len(owner) + 1
    for path, span in sm.keys.items():
        if len(path) == depth and path[:-1] == owner and path[-1] not in moved:
            return span.col
    owner_span = sm.key_span(owner)
    return (owner_span.col if owner_span else 1) + INDENT


def _remap(sm: SourceMap, parent: Path, owner: str, keys: list[str]) -> None:
    """Positions of the moved keys now live under the owner's path."""
    depth = len(parent)
    for table in (sm.values, sm.keys):
        for old in [p for p in table if len(p) > depth]:
            if old[:depth] == parent and old[depth] in keys:
                table[(*parent, owner, *old[depth:])] = table.pop(old)


def _valid_entry(model: type[BaseModel], value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    try:
        model.model_validate(value)
    except ValidationError:
        return False
    return True


def _entry_model(annotation: Any) -> type[BaseModel] | None:
    """E for a `dict[str, E]` field (optional or not) of spec entries."""
    for option in _options(annotation):
        if typing.get_origin(option) is dict:
            entry = typing.get_args(option)[1]
            entry = (
                typing.get_args(entry)[0] if typing.get_origin(entry) is typing.Annotated else entry
            )
            if isinstance(entry, type) and issubclass(entry, SpecModel):
                return entry
    return None


def _model(annotation: Any) -> type[BaseModel] | None:
    for option in _options(annotation):
        if isinstance(option, type) and issubclass(option, SpecModel):
            return option
    return None


def _options(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, UnionType):
        return [_options(a)[0] for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _field_names(model: type[BaseModel]) -> set[str]:
    return set(_shape(model)[0])


def _plural(keys: list[str], word: str) -> str:
    """'s' for keys, nothing for entries (already 'entries')."""
    return "s" if len(keys) > 1 and word == "key" else ""


def _singular(section: str) -> str:
    return {"entities": "entity"}.get(section, section.removesuffix("s"))
