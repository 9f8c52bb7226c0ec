"""Load pipelines.yaml: read, parse with positions, interpolate, validate into PipelineSpec."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from shipyard.diagnostics import Diagnostic, Span, without_consequences
from shipyard.loader.errors import diagnostics_from_validation
from shipyard.loader.indentation import reindent
from shipyard.loader.interpolate import interpolate
from shipyard.loader.salvage import partial_spec
from shipyard.loader.source_map import SourceMap, parse_yaml
from shipyard.spec import PipelineSpec

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
    if parsed.data is None and parsed.diagnostics:
        return loaded
    if not isinstance(parsed.data, dict):  # `null`, `~`, `---` alone, a list, a word
        span = parsed.source_map.value_span(())
        if span is None or (span.line, span.col) == (span.end_line, span.end_col):
            span = Span(name, 1, 1, 1, 2)  # nothing written (`---` alone): the file's start
        loaded.diagnostics.append(
            Diagnostic(
                "E103",
                "the spec must be a mapping with `project:` and sections",
                span,
                "start the file with `project: <name>`",
            )
        )
        return loaded
    data, problems, secrets = interpolate(
        parsed.data, env if env is not None else os.environ, parsed.source_map
    )
    loaded.diagnostics.extend(problems)
    loaded.diagnostics.extend(reindent(data, PipelineSpec, parsed.source_map))
    loaded.secrets = secrets
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        problems = diagnostics_from_validation(exc, parsed.source_map, PipelineSpec)
        loaded.diagnostics += without_consequences(problems, loaded.diagnostics)
        loaded.partial = partial_spec(data)
        return loaded
    if any(d.is_error for d in loaded.diagnostics):
        loaded.partial = spec
    else:
        loaded.spec = spec
    return loaded


def _failed(path: Path, name: str, code: str, message: str, hint: str) -> LoadedSpec:
    return LoadedSpec(path, "", SourceMap(name), None, [Diagnostic(code, message, None, hint)])


__all__ = ["DEFAULT_SPEC", "LoadedSpec", "Span", "load_spec", "load_text"]
