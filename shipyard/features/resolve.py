"""Pure helpers: which features a service or view resolves to. Imports no Feast."""

from __future__ import annotations

from shipyard.spec import PipelineSpec
from shipyard.spec.features import FeatureViewSpec


def service_features(spec: PipelineSpec, service: str) -> list[tuple[FeatureViewSpec, str]]:
    """(view, feature) pairs of a service, in declaration order; unknown references skipped."""
    declared = spec.features.services[service]
    out: list[tuple[FeatureViewSpec, str]] = []
    for view_name in declared.views:
        view = spec.features.views.get(view_name)
        if view is not None:
            out += [(view, f) for f in view.features]
    for reference in declared.features:
        view_name, _, feature = reference.partition(":")
        view = spec.features.views.get(view_name)
        if view is not None and feature in view.features:
            out.append((view, feature))
    seen: set[str] = set()
    unique = []
    for view, feature in out:
        if feature not in seen:
            seen.add(feature)
            unique.append((view, feature))
    return unique


def service_references(spec: PipelineSpec, service: str) -> list[str]:
    """`view:feature` references of a service (what Feast asks for)."""
    names = {id(v): n for n, v in spec.features.views.items()}
    return [f"{names[id(view)]}:{feature}" for view, feature in service_features(spec, service)]
