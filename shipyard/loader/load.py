"""Load pipelines.yaml: read, parse with positions, interpolate, validate into PipelineSpec."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shipyard.diagnostics import Diagnostic, Span, without_consequences
from shipyard.loader.errors import diagnostics_from_validation
from shipyard.loader.interpolate import interpolate
from shipyard.loader.source_map import SourceMap, parse_yaml
from shipyard.spec import DatasetSpec, ModelSpec, PipelineSpec, ProfileSpec, SpecModel
from shipyard.spec.features import EntitySpec, FeatureServiceSpec, FeaturesSpec, FeatureViewSpec

DEFAULT_SPEC = "pipelines.yaml"


@dataclass
class LoadedSpec:
    """The outcome of loading: the spec (None if it did not validate), its source and problems."""

    path: Path
    text: str
    source_map: SourceMap
    spec: PipelineSpec | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    partial: PipelineSpec | None = None
    """When the spec as a whole is invalid: the parts that did validate, for further checks."""

    @property
    def display_name(self) -> str:
        return self.source_map.file

    @property
    def root_dir(self) -> Path:
        return self.path.resolve().parent

    @property
    def ok(self) -> bool:
        return self.spec is not None and not any(d.is_error for d in self.diagnostics)


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load_spec(path: str | Path = DEFAULT_SPEC, env: Mapping[str, str] | None = None) -> LoadedSpec:
    """Read and validate a spec file; never raises for problems in the file itself."""
    path = Path(path)
    name = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return _failed(
            path,
            name,
            "E003",
            f"spec file '{name}' not found",
            "run in the folder holding pipelines.yaml, or pass -f PATH"
            if path.name == DEFAULT_SPEC and not path.parent.parts
            else "check the path given with -f (or $SHIPYARD_SPEC)",
        )
    except (OSError, UnicodeDecodeError) as exc:
        return _failed(
            path,
            name,
            "E003",
            f"cannot read spec file '{name}': {exc}",
            "check the file's permissions and that it is UTF-8 text",
        )
    return load_text(text, name, path, env)


def load_text(
    text: str, name: str, path: Path | None = None, env: Mapping[str, str] | None = None
) -> LoadedSpec:
    parsed = parse_yaml(text, name)
    path = path or Path(name)
    loaded = LoadedSpec(path, text, parsed.source_map, None, list(parsed.diagnostics))
    if parsed.data is None:
        return loaded
    if not isinstance(parsed.data, dict):
        loaded.diagnostics.append(
            Diagnostic(
                "E103",
                "the spec must be a mapping with `project:` and sections",
                parsed.source_map.value_span(()),
                "start the file with `project: <name>`",
            )
        )
        return loaded
    data, problems, secrets = interpolate(
        parsed.data, env if env is not None else os.environ, parsed.source_map
    )
    loaded.diagnostics.extend(problems)
    loaded.secrets = secrets
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        problems = diagnostics_from_validation(exc, parsed.source_map, PipelineSpec)
        loaded.diagnostics += without_consequences(problems, loaded.diagnostics)
        loaded.partial = _partial_spec(data)
        return loaded
    if any(d.is_error for d in loaded.diagnostics):
        loaded.partial = spec
    else:
        loaded.spec = spec
    return loaded


def _partial_spec(data: dict[str, object]) -> PipelineSpec:
    """The entries that validate on their own, so semantic rules can still check them."""
    datasets: dict[str, DatasetSpec] = {}
    raw = data.get("datasets")
    if isinstance(raw, dict):
        for name, entry in raw.items():
            salvaged = _salvage_dataset(entry)
            if salvaged is not None:
                datasets[str(name)] = salvaged
    models: dict[str, ModelSpec] = {}
    raw_models = data.get("models")
    if isinstance(raw_models, dict):
        for name, entry in raw_models.items():
            try:
                models[str(name)] = ModelSpec.model_validate(entry)
            except ValidationError:
                continue  # its diagnostics are already reported; rules skip it
    fields: dict[str, object] = {}
    raw_profiles = data.get("profiles")
    if isinstance(raw_profiles, dict):
        # an invalid profile keeps its name (as the defaults), so `profile: <it>` is not reported
        # as undefined on top of the profile's own errors
        profiles: dict[str, ProfileSpec] = {}
        for name, entry in raw_profiles.items():
            try:
                profiles[str(name)] = ProfileSpec.model_validate(entry)
            except ValidationError:
                profiles[str(name)] = ProfileSpec()
        fields["profiles"] = profiles
    for key in ("project", "profile", "profiles"):
        if key in fields:
            continue
        try:
            base = PipelineSpec.model_validate({"project": "partial", key: data.get(key)})
            fields[key] = getattr(base, key)
        except ValidationError:
            continue
    partial: dict[str, Any] = {
        **fields,
        "datasets": datasets,
        "models": models,
        "features": _partial_features(data.get("features")),
    }
    return PipelineSpec.model_construct(**partial)


def _partial_features(raw: object) -> FeaturesSpec:
    """Entities, views and services one by one: one invalid view does not hide the others.

    Entries that do not validate even without their invalid optional keys are left out; the
    rules do not report references to them (their own errors are reported).
    """
    if not isinstance(raw, dict):
        return FeaturesSpec()
    sections: dict[str, dict[str, Any]] = {}
    for section, model in (
        ("entities", EntitySpec),
        ("views", FeatureViewSpec),
        ("services", FeatureServiceSpec),
    ):
        entries = raw.get(section)
        salvaged: dict[str, Any] = {}
        if isinstance(entries, dict):
            for name, entry in entries.items():
                valid = _salvage(model, entry)
                if valid is not None:
                    salvaged[str(name)] = valid
        sections[section] = salvaged
    return FeaturesSpec.model_construct(
        entities=sections["entities"], views=sections["views"], services=sections["services"]
    )


def _salvage(model: type[SpecModel], entry: object) -> SpecModel | None:
    """`model` from `entry` without its unknown keys and invalid optional keys, if that works."""
    data = copy.deepcopy(entry)
    for _ in range(20):
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            loc = exc.errors()[0]["loc"]
            field = model.model_fields.get(str(loc[0])) if loc else None
            if not isinstance(data, dict) or not loc or loc[0] not in data:
                return None
            if field is None or not field.is_required():
                data.pop(loc[0])
            else:
                return None
    return None


_NEUTRAL_EXPECTATION: dict[str, dict[str, object]] = {"row_count": {}}
"""Stands in for an invalid expectation: names no column, so rules stay quiet, and keeps the
positions of the following items."""


def _salvage_dataset(entry: object) -> DatasetSpec | None:
    """Validate an entry after setting aside the parts that already have a diagnostic.

    Unknown keys and invalid optional fields are dropped and invalid expectations neutralised,
    so the cross-reference rules still check the rest in the same pass. An entry missing a
    required key or with an invalid schema is given up on (rules would report noise).
    """
    if not isinstance(entry, dict):
        return None
    data = copy.deepcopy(entry)
    for _ in range(50):
        try:
            return DatasetSpec.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            loc = error["loc"]
            field = DatasetSpec.model_fields.get(str(loc[0])) or next(
                (f for f in DatasetSpec.model_fields.values() if f.alias == loc[0]), None
            )
            if field is None:
                data.pop(loc[0], None)  # unknown key
            elif loc[0] == "expectations" and len(loc) > 1 and isinstance(loc[1], int):
                data["expectations"][loc[1]] = _NEUTRAL_EXPECTATION
            elif loc[0] == "format":
                data["format"] = "parquet"  # already reported; stands in so E205 stays quiet
            elif not field.is_required() and loc[0] not in ("schema", "columns"):
                data.pop(loc[0], None)
            else:
                return None
    return None


def _failed(path: Path, name: str, code: str, message: str, hint: str) -> LoadedSpec:
    return LoadedSpec(path, "", SourceMap(name), None, [Diagnostic(code, message, None, hint)])


__all__ = ["DEFAULT_SPEC", "LoadedSpec", "Span", "load_spec", "load_text"]
