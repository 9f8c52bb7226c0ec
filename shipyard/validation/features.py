"""Rules for `features:`: entities, sources, columns and services all resolve."""

from __future__ import annotations

from collections.abc import Iterator

from shipyard.diagnostics import Diagnostic, did_you_mean, one_of
from shipyard.loader.source_map import Path, SourceMap
from shipyard.spec import PipelineSpec


def check_features(spec: PipelineSpec, sm: SourceMap) -> Iterator[Diagnostic]:
    features = spec.features
    for name, view in features.views.items():
        base: Path = ("features", "views", name)
        entity = features.entities.get(view.entity)
        if entity is None:
            yield Diagnostic(
                "E601",
                f"feature view '{name}' uses entity '{view.entity}', which is not defined",
                sm.value_span((*base, "entity")),
                did_you_mean(view.entity, features.entities)
                or "define it under `features.entities` with its join_key",
            )
        source = spec.datasets.get(view.source)
        if source is None:
            yield Diagnostic(
                "E602",
                f"feature view '{name}' reads dataset '{view.source}', which is not defined",
                sm.value_span((*base, "source")),
                did_you_mean(view.source, spec.datasets) or one_of(sorted(spec.datasets)),
            )
            continue
        if source.timestamp is None:
            yield Diagnostic(
                "E603",
                f"feature view '{name}': dataset '{view.source}' has no `timestamp`",
                sm.value_span((*base, "source")),
                "declare the event-time column of the dataset: point-in-time joins need it",
            )
        if entity is not None and entity.join_key not in source.columns:
            yield Diagnostic(
                "E605",
                f"feature view '{name}': join key '{entity.join_key}' of entity "
                f"'{view.entity}' is not a column of dataset '{view.source}'",
                sm.value_span((*base, "entity")),
                did_you_mean(entity.join_key, source.columns) or "add it to the dataset schema",
            )
        for i, feature in enumerate(view.features):
            if feature not in source.columns:
                yield Diagnostic(
                    "E604",
                    f"feature view '{name}': feature '{feature}' is not a column of dataset "
                    f"'{view.source}'",
                    sm.value_span((*base, "features", i)),
                    did_you_mean(feature, source.columns) or "add it to the dataset schema",
                )
            elif source.columns[feature] in ("datetime", "date"):
                yield Diagnostic(
                    "E604",
                    f"feature view '{name}': feature '{feature}' is a date column",
                    sm.value_span((*base, "features", i)),
                    "serve a number derived from it instead",
                )
    for name, service in features.services.items():
        base = ("features", "services", name)
        views_at: Path = (*base, "views") if (*base, "views") in sm.values else base
        for i, view_name in enumerate(service.views):
            if view_name not in features.views:
                yield Diagnostic(
                    "E606",
                    f"feature service '{name}' includes view '{view_name}', which is not defined",
                    sm.value_span((*views_at, i)),
                    did_you_mean(view_name, features.views) or one_of(sorted(features.views)),
                )
        seen: dict[str, str] = {}
        for i, reference in enumerate(service.features):
            view_name, sep, feature = reference.partition(":")
            view = features.views.get(view_name)
            if not sep or view is None or feature not in view.features:
                candidates = [f"{v}:{f}" for v, fv in features.views.items() for f in fv.features]
                yield Diagnostic(
                    "E606",
                    f"feature service '{name}': '{reference}' is not a feature of a defined view",
                    sm.value_span((*base, "features", i)),
                    did_you_mean(reference, candidates) or "write `view:feature`",
                )
        for view_name in service.views:
            for feature in (
                features.views[view_name].features if view_name in features.views else []
            ):
                if feature in seen and seen[feature] != view_name:
                    yield Diagnostic(
                        "E609",
                        f"feature service '{name}': feature '{feature}' comes from both "
                        f"'{seen[feature]}' and '{view_name}'",
                        sm.key_span(base),
                        "a feature name must be unique within a service; drop it from one view",
                    )
                seen.setdefault(feature, view_name)
