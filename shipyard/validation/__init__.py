"""Validation rules: check_<thing>(spec, source_map) -> Iterator[Diagnostic], all in one pass."""

from __future__ import annotations

from shipyard.diagnostics import Diagnostic, sort_diagnostics
from shipyard.loader import LoadedSpec
from shipyard.validation.datasets import check_datasets
from shipyard.validation.profiles import check_profiles

RULES = (check_profiles, check_datasets)


def validate(loaded: LoadedSpec) -> list[Diagnostic]:
    """Every problem in the spec: load errors plus rule violations, sorted by position."""
    diagnostics = list(loaded.diagnostics)
    # a rule firing exactly where loading already failed (e.g. `profile: ${UNSET}` read as '')
    # is a consequence of that error, not a second problem to fix
    failed_at = {
        (d.span.file, d.span.line, d.span.col) for d in diagnostics if d.span and d.is_error
    }
    spec = loaded.spec or loaded.partial
    if spec is not None:
        for rule in RULES:
            diagnostics.extend(
                d
                for d in rule(spec, loaded.source_map)
                if d.span is None or (d.span.file, d.span.line, d.span.col) not in failed_at
            )
    return sort_diagnostics(diagnostics)


__all__ = ["validate"]
