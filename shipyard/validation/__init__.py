"""Validation rules: check_<section>(spec, source_map) -> Iterator[Diagnostic], all in one pass.

`shipyard/validation/<section>.py` holds the rules of each section of the root spec
(`PipelineSpec.sections()`); `profiles.py` checks the profiles, which every section uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator

from shipyard.diagnostics import Diagnostic, sort_diagnostics, without_consequences
from shipyard.loader import LoadedSpec
from shipyard.loader.source_map import SourceMap
from shipyard.spec import PipelineSpec
from shipyard.validation.profiles import check_environments, check_profiles

Rule = Callable[[PipelineSpec, SourceMap], Iterator[Diagnostic]]


def section_rule(section: str) -> Rule:
    """`check_<section>` of `shipyard.validation.<section>`."""
    module = importlib.import_module(f"{__name__}.{section}")
    rule: Rule = getattr(module, f"check_{section}")
    return rule


def rules() -> tuple[Rule, ...]:
    return (check_profiles, check_environments, *(section_rule(s) for s in PipelineSpec.sections()))


def validate(loaded: LoadedSpec) -> list[Diagnostic]:
    """Every problem in the spec: load errors plus rule violations, sorted by position."""
    diagnostics = list(loaded.diagnostics)
    spec = loaded.spec or loaded.partial
    if spec is not None:
        for rule in rules():
            diagnostics += without_consequences(rule(spec, loaded.source_map), loaded.diagnostics)
    return sort_diagnostics(diagnostics)


__all__ = ["Rule", "rules", "section_rule", "validate"]
