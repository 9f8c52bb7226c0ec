"""The partial spec: what still validates in a spec that does not, so every rule can run.

When the spec as a whole fails validation, its shape errors are already diagnostics; the
entries that validate on their own (after setting aside their broken parts) are kept, so the
cross-reference rules of every section still check them in the same pass. The same rules
apply to every section of the root spec: nothing here names one.

For one entry (a dataset, a model, a service, ...): unknown keys and invalid optional fields
are dropped; an invalid value or list item is replaced by the stand-in the model declares for
it, if any (`salvage_stand_ins`; `salvage_item_stand_ins` for one item of a list, keeping the
positions of the items after it; `salvage_entry_stand_ins` for one value of a mapping, keeping
its key, so a column with a misspelt type is still a column);
an entry missing a required field, or whose required field is invalid, is given up on (the
rules would only report noise about it).
"""

from __future__ import annotations

import copy
import typing
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from shipyard.spec import PipelineSpec, ProfileSpec, SpecModel
from shipyard.spec.root import CORE_FIELDS

MAX_REPAIRS = 100
"""Errors set aside per entry before it is given up on (bounded time on hostile input)."""


def partial_spec(data: dict[str, Any]) -> PipelineSpec:
    """The parts of `data` that validate, as a PipelineSpec built without validation."""
    fields: dict[str, Any] = {}
    for key in CORE_FIELDS:
        if key in data:
            value = _salvage_core(key, data[key])
            if value is not None:
                fields[key] = value
    for section in PipelineSpec.sections():
        field = PipelineSpec.model_fields[section]
        raw = data.get(section)
        if raw is None:
            continue
        fields[section] = _salvage_value(field.annotation, raw)
    return PipelineSpec.model_construct(**fields)


def _salvage_core(key: str, raw: Any) -> Any:
    if key == "profiles" and isinstance(raw, dict):
        # an invalid profile keeps its name (as the defaults), so `profile: <it>` is not reported
        # as undefined on top of the profile's own errors
        return {
            str(name): salvage(ProfileSpec, entry) or ProfileSpec() for name, entry in raw.items()
        }
    try:
        base = PipelineSpec.model_validate({"project": "partial", key: raw})
    except ValidationError:
        return None
    return getattr(base, key)


def _salvage_value(annotation: Any, raw: Any) -> Any:
    """A section's value: a mapping of entries, a model of such mappings, or a plain value."""
    origin = typing.get_origin(annotation)
    if origin is dict:
        _, entry_type = typing.get_args(annotation)
        if not isinstance(raw, dict):
            return {}
        if isinstance(entry_type, type) and issubclass(entry_type, SpecModel):
            salvaged = {str(name): salvage(entry_type, entry) for name, entry in raw.items()}
            return {name: entry for name, entry in salvaged.items() if entry is not None}
        return _validated_or_default(annotation, raw, {})
    if isinstance(annotation, type) and issubclass(annotation, SpecModel):
        if not isinstance(raw, dict):
            return annotation.model_construct()
        parts = {
            name: _salvage_value(field.annotation, raw[name])
            for name, field in annotation.model_fields.items()
            if name in raw
        }
        return annotation.model_construct(**parts)
    return _validated_or_default(annotation, raw, None)


def _validated_or_default(annotation: Any, raw: Any, default: Any) -> Any:
    try:
        return TypeAdapter(annotation).validate_python(raw)
    except ValidationError:
        return default


def salvage(model: type[SpecModel], entry: object) -> SpecModel | None:
    """`model` from `entry` with its broken parts set aside, or None if that cannot work."""
    if not isinstance(entry, dict):  # a shorthand (e.g. a list of views) may still validate
        try:
            return model.model_validate(entry)
        except ValidationError:
            return None
    data = copy.deepcopy(entry)
    stand_ins: dict[str, Any] = getattr(model, "salvage_stand_ins", {})
    item_stand_ins: dict[str, Any] = getattr(model, "salvage_item_stand_ins", {})
    entry_stand_ins: dict[str, Any] = getattr(model, "salvage_entry_stand_ins", {})
    for _ in range(MAX_REPAIRS):
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            loc = exc.errors()[0]["loc"]
            if not loc or loc[0] not in data:
                return None  # an error of the whole entry, or a required key is missing
            key = loc[0]
            field = _field(model, str(key))
            if field is None:
                data.pop(key)  # unknown key
            elif key in item_stand_ins and len(loc) > 1 and isinstance(loc[1], int):
                data[key][loc[1]] = copy.deepcopy(item_stand_ins[key])
            elif (
                key in entry_stand_ins
                and len(loc) > 1
                and isinstance(data[key], dict)
                and loc[1] in data[key]
                and data[key][loc[1]] != entry_stand_ins[key]
            ):
                data[key][loc[1]] = copy.deepcopy(entry_stand_ins[key])
            elif key in stand_ins and data[key] != stand_ins[key]:
                data[key] = copy.deepcopy(stand_ins[key])
            elif not field.is_required():
                data.pop(key)
            else:
                return None
    return None


def _field(model: type[BaseModel], key: str) -> Any:
    """The field written as `key` (its name or its alias), or None for an unknown key."""
    fields = model.model_fields
    return fields.get(key) or next((f for f in fields.values() if f.alias == key), None)
