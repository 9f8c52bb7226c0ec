"""Validation rules: check_<thing>(spec, source_map) -> Iterator[Diagnostic], all in one pass."""

from __future__ import annotations

from shipyard.diagnostics import Diagnostic, sort_diagnostics, without_consequences
from shipyard.loader import LoadedSpec
from shipyard.validation.datasets import check_datasets
from shipyard.validation.features import check_features
from shipyard.validation.models import check_models
from shipyard.validation.profiles import check_profiles
from shipyard.validation.services import check_services

RULES = (check_profiles, check_datasets, check_features, check_models, check_services)


def validate(loaded: LoadedSpec) -> list[Diagnostic]:
    """Every problem in the spec: load errors plus rule violations, sorted by position."""
    diagnostics = list(loaded.diagnostics)
    spec = loaded.spec or loaded.partial
    if spec is not None:
        for rule in RULES:
            diagnostics += without_consequences(rule(spec, loaded.source_map), loaded.diagnostics)
    return sort_diagnostics(diagnostics)


__all__ = ["validate"]
