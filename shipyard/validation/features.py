"""Rules for `features:`: entities, sources, columns and services all resolve; static views
(a source without `timestamp`) have no ttl."""

from __future__ import annotations

from collections.abc import Iterator

from shipyard.diagnostics import Diagnostic, Severity, did_you_mean, one_of
from shipyard.loader.source_map import Path, SourceMap
from shipyard.spec import PipelineSpec
from shipyard.spec.datasets import DatasetSpec
from shipyard.spec.features import EntitySpec, FeatureViewSpec


def written(sm: SourceMap, *path: str) -> bool:
    """The entry is in the file: when the spec lacks it, it failed to load and has its own error."""
    return path in sm.values


def check_features(spec: PipelineSpec, sm: SourceMap) -> Iterator[Diagnostic]:
    yield from _check_views(spec, sm)
    yield from _check_services(spec, sm)


def _check_views(spec: PipelineSpec, sm: SourceMap) -> Iterator[Diagnostic]:
    features = spec.features
    for name, view in features.views.items():
        base: Path = ("features", "views", name)
        entity = features.entities.get(view.entity)
        if entity is None and not written(sm, "features", "entities", view.entity):
            yield Diagnostic(
                "E601",
                f"feature view '{name}' uses entity '{view.entity}', which is not defined",
                sm.value_span((*base, "entity")),
                did_you_mean(view.entity, features.entities)
                or "define it under `features.entities` with its join_key",
            )
        source = spec.datasets.get(view.source)
        if source is None:
            if not written(sm, "datasets", view.source):
                yield Diagnostic(
                    "E602",
                    f"feature view '{name}' reads dataset '{view.source}', which is not defined",
                    sm.value_span((*base, "source")),
                    did_you_mean(view.source, spec.datasets)
                    or (
                        one_of(sorted(spec.datasets))
                        if spec.datasets
                        else "define it under `datasets:`"
                    ),
                )
            continue
        if source.sql is not None:
            yield Diagnostic(
                "E610",
                f"feature view '{name}' reads dataset '{view.source}', a SQL dataset; Feast "
                "reads feature sources from files",
                sm.value_span((*base, "source")),
                "read the features from a file dataset (export the table to parquet and "
                "declare it with `path:`)",
            )
            continue
        if source.timestamp is None:
            yield from _check_static(name, view, source, entity, sm)
        if entity is not None and entity.join_key not in source.columns:
            yield Diagnostic(
                "E605",
                f"feature view '{name}': join key '{entity.join_key}' of entity "
                f"'{view.entity}' is not a column of dataset '{view.source}'",
                sm.value_span((*base, "entity")),
                # no did-you-mean: another `*_id` column is a different key, not a typo
                f"every feature row needs the key of its entity: add '{entity.join_key}' to the "
                f"schema of dataset '{view.source}'",
            )
        for i, feature in enumerate(view.features):
            column_type = source.columns.get(feature)
            if column_type is None:
                yield Diagnostic(
                    "E604",
                    f"feature view '{name}': feature '{feature}' is not a column of dataset "
                    f"'{view.source}'",
                    sm.value_span((*base, "features", i)),
                    did_you_mean(feature, source.columns) or "add it to the dataset's `schema:`",
                )
            elif column_type in ("datetime", "date"):
                yield Diagnostic(
                    "E604",
                    f"feature view '{name}': feature '{feature}' is a {column_type} column",
                    sm.value_span((*base, "features", i)),
                    "serve a number derived from it (e.g. an age in days) instead",
                )


def _check_static(
    name: str, view: FeatureViewSpec, source: DatasetSpec, entity: EntitySpec | None, sm: SourceMap
) -> Iterator[Diagnostic]:
    """A view over a dataset without `timestamp` is static: one row per entity, valid forever."""
    base: Path = ("features", "views", name)
    if "ttl" in view.model_fields_set:
        yield Diagnostic(
            "E603",
            f"feature view '{name}' is static (dataset '{view.source}' has no `timestamp`), "
            "so it has no `ttl`",
            sm.value_span((*base, "ttl")),
            "remove `ttl:`: a static view's rows never expire; for rows that do, give dataset "
            f"'{view.source}' a `timestamp:`",
        )
    join_key = entity.join_key if entity is not None else None
    if join_key is not None and source.key is not None and source.key_columns != [join_key]:
        yield Diagnostic(
            "W602",
            f"static feature view '{name}': dataset '{view.source}' is keyed by "
            f"{', '.join(source.key_columns)}, not by '{join_key}' alone, so a {join_key} may "
            "repeat",
            sm.value_span((*base, "source")),
            f"a static view holds one row per entity (running it refuses repeats): key the "
            f"dataset by `key: {join_key}`, or give it a `timestamp:` to keep the rows as history",
            severity=Severity.WARNING,
        )


def _check_services(spec: PipelineSpec, sm: SourceMap) -> Iterator[Diagnostic]:
    features = spec.features
    for name, service in features.services.items():
        base: Path = ("features", "services", name)
        # the list shorthand `churn_v1: [customer_profile]` has the views right under the name
        views_at: Path = (*base, "views") if (*base, "views") in sm.values else base
        # (view, feature, the entry that brings it in, whether that is a `view:feature` entry)
        included: list[tuple[str, str, Path, bool]] = []
        for i, view_name in enumerate(service.views):
            view = features.views.get(view_name)
            if view is not None:
                included += [(view_name, f, (*views_at, i), False) for f in view.features]
            elif not written(sm, "features", "views", view_name):
                yield Diagnostic(
                    "E606",
                    f"feature service '{name}' includes view '{view_name}', which is not defined",
                    sm.value_span((*views_at, i)),
                    did_you_mean(view_name, features.views) or one_of(sorted(features.views)),
                )
        for i, reference in enumerate(service.features):
            at: Path = (*base, "features", i)
            view_name, sep, feature = reference.partition(":")
            if (
                sep
                and view_name not in features.views
                and written(sm, "features", "views", view_name)
            ):
                continue  # its view failed to load and has its own error
            problem = _reference_problem(spec, reference)
            if problem is None:
                included.append((view_name, feature, at, True))
            else:
                message, hint = problem
                yield Diagnostic(
                    "E606", f"feature service '{name}': {message}", sm.value_span(at), hint
                )
        yield from _check_unique(name, included, sm)


def _reference_problem(spec: PipelineSpec, reference: str) -> tuple[str, str] | None:
    """(message, hint) for a `view:feature` reference that does not resolve; None if it does."""
    views = spec.features.views
    candidates = [f"{v}:{f}" for v, fv in views.items() for f in fv.features]
    view_name, sep, feature = reference.partition(":")
    if not sep or not view_name or not feature:
        # a bare feature name: the view that has it; `view:` alone: that view's features
        owners = [f"{v}:{reference}" for v, fv in views.items() if reference in fv.features]
        own = [f"{view_name}:{f}" for f in views[view_name].features] if view_name in views else []
        return (
            f"'{reference}' is not a `view:feature` reference",
            (f"did you mean '{owners[0]}'?" if owners else None)
            or (one_of(own) if sep and not feature and own else None)
            or did_you_mean(reference, candidates)
            or "name the view and the feature, e.g. customer_profile:plan",
        )
    view = views.get(view_name)
    if view is None:
        return (
            f"'{reference}' names view '{view_name}', which is not defined",
            did_you_mean(reference, candidates)
            or did_you_mean(view_name, views)
            or one_of(sorted(views)),
        )
    if feature not in view.features:
        source = spec.datasets.get(view.source)
        in_source = source is not None and feature in source.columns
        return (
            f"'{reference}': view '{view_name}' has no feature '{feature}'",
            f"add '{feature}' to the `features:` of view '{view_name}'"
            if in_source
            else did_you_mean(reference, [f"{view_name}:{f}" for f in view.features])
            or one_of(view.features),
        )
    return None


def _check_unique(
    service: str, included: list[tuple[str, str, Path, bool]], sm: SourceMap
) -> Iterator[Diagnostic]:
    """A feature name appears once in a service: Feast and the model see columns by name."""
    first: dict[str, str] = {}
    # entry -> (view it brings in, single reference?, {view it repeats: [features]})
    repeats: dict[Path, tuple[str, bool, dict[str, list[str]]]] = {}
    for view_name, feature, at, single in included:
        origin = first.setdefault(feature, view_name)
        if origin != view_name:
            entry = repeats.setdefault(at, (view_name, single, {}))
            entry[2].setdefault(origin, []).append(feature)
    for at, (view_name, single, by_origin) in repeats.items():
        for origin, names in by_origin.items():
            quoted = ", ".join(f"'{f}'" for f in names)
            what = f"feature {quoted} comes" if len(names) == 1 else f"features {quoted} come"
            yield Diagnostic(
                "E609",
                f"feature service '{service}': {what} from both '{origin}' and '{view_name}'",
                sm.value_span(at),
                "a feature name must be unique within a service; drop this reference"
                if single
                else "a feature name must be unique within a service; include the other "
                f"features of '{view_name}' one by one under `features:` instead",
            )
