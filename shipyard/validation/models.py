"""Rules for `models:`: the dataset, target and features exist and suit the task and metrics."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from shipyard.diagnostics import Diagnostic, Span, did_you_mean, one_of
from shipyard.loader.source_map import Path, SourceMap
from shipyard.spec import ModelSpec, PipelineSpec
from shipyard.spec.datasets import CategoryType, ColumnType
from shipyard.stats.metrics import (
    METRICS,
    binary_only_metrics,
    multiclass_metrics,
    suitable_metrics,
    unsuitable_metrics,
)
from shipyard.stats.targets import (
    ClassificationTarget,
    DeclaredType,
    TargetProblem,
    declared_target,
)

NUMERIC = {"int", "float"}
MULTICLASS_INSTEAD = {
    "f1": "f1_macro or f1_weighted (the f1 of every class, averaged)",
    "precision": "f1_macro or f1_weighted",
    "recall": "f1_macro or f1_weighted",
    "pr_auc": "roc_auc (one-vs-rest, averaged over the classes)",
    "brier": "log_loss",
}
"""What a multiclass model computes instead of each metric about a positive class."""


def check_models(spec: PipelineSpec, sm: SourceMap) -> Iterator[Diagnostic]:
    for name, model in spec.models.items():
        yield from check_model(name, model, spec, sm)


def check_model(
    name: str, model: ModelSpec, spec: PipelineSpec, sm: SourceMap
) -> Iterator[Diagnostic]:
    base: Path = ("models", name)
    dataset = spec.datasets.get(model.dataset)
    target: ClassificationTarget | None = None
    if dataset is None:
        yield Diagnostic(
            "E501",
            f"model '{name}' uses dataset '{model.dataset}', which is not defined",
            sm.value_span((*base, "dataset")),
            did_you_mean(model.dataset, spec.datasets)
            or (one_of(sorted(spec.datasets)) if spec.datasets else "define it under `datasets:`"),
        )
    else:
        columns = dataset.columns
        target_type = columns.get(model.target)
        if target_type is None:
            yield Diagnostic(
                "E502",
                f"model '{name}': target '{model.target}' is not a column of dataset "
                f"'{model.dataset}'",
                sm.value_span((*base, "target")),
                did_you_mean(model.target, columns) or "add it to the dataset's `schema:`",
            )
        elif model.task == "classification":
            found = declared_target(model.target, declared_type(target_type), model.positive_class)
            if isinstance(found, TargetProblem):
                yield Diagnostic(
                    found.code,
                    f"model '{name}': {found.message}",
                    sm.value_span((*base, found.at)),
                    found.hint,
                )
            else:
                target = found
        elif model.task == "regression" and (
            isinstance(target_type, CategoryType) or target_type not in NUMERIC
        ):
            yield Diagnostic(
                "E506",
                f"model '{name}': regression target '{model.target}' is not numeric",
                sm.value_span((*base, "target")),
                "a regression target is int or float; use `task: classification` for labels",
            )
        if model.feature_service is not None:
            yield from check_model_feature_service(name, model, spec, sm)
        for i, feature in enumerate(model.features if model.feature_service is None else []):
            at = (*base, "features", i)
            if feature not in columns:
                yield Diagnostic(
                    "E503",
                    f"model '{name}': feature '{feature}' is not a column of dataset "
                    f"'{model.dataset}'",
                    sm.value_span(at),
                    did_you_mean(feature, columns) or "add it to the dataset's `schema:`",
                )
            elif feature == model.target:
                yield Diagnostic(
                    "E504",
                    f"model '{name}': the target '{feature}' is also listed as a feature",
                    sm.value_span(at),
                    "remove it from `features:`; the model would otherwise see the answer",
                )
            elif columns[feature] in ("datetime", "date"):
                yield Diagnostic(
                    "E507",
                    f"model '{name}': feature '{feature}' is a {columns[feature]} column",
                    sm.value_span(at),
                    "add a column derived from it (e.g. an age in days, a weekday) and use that",
                )
    if model.task == "regression" and model.positive_class is not None:
        yield Diagnostic(
            "E510",
            f"model '{name}': positive_class is for a classification model, and '{name}' is "
            "a regression",
            sm.value_span((*base, "positive_class")),
            "remove `positive_class`, or use `task: classification`",
        )
    yield from _check_metrics(name, model, sm, target)


def declared_type(column_type: ColumnType) -> DeclaredType:
    """A dataset column's type as the target rule reads it: a name, or the category's values."""
    return list(column_type.category) if isinstance(column_type, CategoryType) else column_type


def check_model_feature_service(
    name: str, model: ModelSpec, spec: PipelineSpec, sm: SourceMap
) -> Iterator[Diagnostic]:
    """A model trained from a feature service: it exists, and the label dataset can be joined."""
    from shipyard.spec.features import service_features

    at: Path = ("models", name, "features")
    service_name = model.feature_service or ""
    services = spec.features.services
    dataset = spec.datasets.get(model.dataset)
    if service_name not in services:
        if ("features", "services", service_name) in sm.values:
            return  # written but invalid: the service has its own error
        yield Diagnostic(
            "E607",
            f"model '{name}' uses feature service '{service_name}', which is not defined",
            sm.value_span(at),
            _service_hint(service_name, services, dataset.columns if dataset else {}),
        )
        return
    if dataset is None:
        return
    features = service_features(spec.features, service_name)
    keys = sorted(
        {
            spec.features.entities[v.entity].join_key
            for v, _ in features
            if v.entity in spec.features.entities
        }
    )
    lacks = [f"column '{k}'" for k in keys if k not in dataset.columns]
    # static views (their source has no timestamp) hold at any time: labels need none for them
    timed = any(
        spec.datasets[v.source].timestamp is not None
        for v, _ in features
        if v.source in spec.datasets
    )
    if dataset.timestamp is None and timed:
        lacks.append("`timestamp`")
    if lacks:
        yield Diagnostic(
            "E608",
            f"model '{name}': dataset '{model.dataset}' has no {' and no '.join(lacks)} to join "
            f"feature service '{service_name}' on",
            sm.value_span(("models", name, "dataset")),
            "point-in-time joins match each label row to features by the entities' join keys "
            "and the dataset's `timestamp:`",
        )
    names = [f for _, f in features]
    if model.target in names:
        yield Diagnostic(
            "E504",
            f"model '{name}': the target '{model.target}' is a feature of '{service_name}'",
            sm.value_span(at),
            "serve the label from the dataset, not from the feature service",
        )


def _service_hint(service: str, services: Iterable[str], columns: Iterable[str]) -> str:
    """What an undefined feature service name was probably meant to be."""
    from shipyard.spec.features import service_version

    if service in columns:
        return f"a single column is still a list: [{service}]"
    base, version = service_version(service)
    versions = [s for s in services if version is not None and service_version(s)[0] == base]
    if versions:
        if len(versions) == 1:
            return f"the defined version of '{base}' is {versions[0]}"
        return f"the defined versions of '{base}' are {', '.join(versions)}"
    return did_you_mean(service, services) or (
        "define it under `features.services`, or list dataset columns instead"
    )


def _check_metrics(
    name: str, model: ModelSpec, sm: SourceMap, target: ClassificationTarget | None
) -> Iterator[Diagnostic]:
    base: Path = ("models", name)
    multiclass = target is not None and target.kind == "multiclass"
    declared = model.computed_metrics(multiclass)
    for i, metric in enumerate(model.metrics or []):
        if unsuitable_metrics(model.task, [metric]):
            yield Diagnostic(
                "E505",
                _unsuitable(name, model, metric),
                sm.value_span((*base, "metrics", i)),
                _metric_hint(model, metric),
            )
        elif multiclass and binary_only_metrics([metric]):
            yield _needs_binary(name, model, metric, target, sm.value_span((*base, "metrics", i)))
    kind = "a multiclass model" if multiclass else f"a {model.task} model"
    computed = (
        f"now {', '.join(declared)}"
        if model.metrics
        else f"without it, {kind} computes {', '.join(declared)}"
    )
    # (metric, where it is written); `thresholds:` is usually left out (gate: {roc_auc: ...})
    used: list[tuple[str, Path]] = [
        (metric, (*base, "gate", "thresholds", metric)) for metric in model.gate.thresholds
    ]
    if model.gate.vs_champion is not None:
        used.append((model.gate.vs_champion.metric, (*base, "gate", "vs_champion", "metric")))
    if model.search is not None and model.search.metric is not None:
        used.append((model.search.metric, (*base, "search", "metric")))
    for metric, at in used:
        span = sm.key_span(at) if at[-1] == metric else sm.value_span(at)
        if unsuitable_metrics(model.task, [metric]):
            yield Diagnostic(
                "E505", _unsuitable(name, model, metric), span, _metric_hint(model, metric)
            )
        elif multiclass and binary_only_metrics([metric]):
            if model.metrics is None or metric not in model.metrics:  # else reported there
                yield _needs_binary(name, model, metric, target, span)
        elif metric not in declared:
            yield Diagnostic(
                "E508",
                f"model '{name}': metric '{metric}' is used but not computed",
                span,
                f"add it to `metrics:` ({computed})",
            )
    champion = model.gate.vs_champion
    if multiclass and champion is not None and champion.method == "delong":
        yield Diagnostic(
            "E511",
            f"model '{name}': DeLong's test compares the ROC AUCs of binary models, and target "
            f"'{model.target}' has {_classes(target)}",
            sm.value_span((*base, "gate", "vs_champion", "method")),
            "use `method: bootstrap` (or leave `method` out: auto picks the bootstrap)",
        )


def _classes(target: ClassificationTarget | None) -> str:
    classes = target.classes if target is not None else None
    return f"{len(classes)} classes" if classes else "more than two classes"


def _needs_binary(
    name: str, model: ModelSpec, metric: str, target: ClassificationTarget | None, span: Span | None
) -> Diagnostic:
    return Diagnostic(
        "E511",
        f"model '{name}': metric '{metric}' is about a positive class, and target "
        f"'{model.target}' has {_classes(target)}",
        span,
        f"use {MULTICLASS_INSTEAD.get(metric, ', '.join(multiclass_metrics()))}",
    )


def _unsuitable(name: str, model: ModelSpec, metric: str) -> str:
    if metric in METRICS:
        return f"model '{name}': metric '{metric}' does not suit a {model.task} model"
    return f"model '{name}': unknown metric '{metric}'"


def _metric_hint(model: ModelSpec, metric: str) -> str:
    allowed = suitable_metrics(model.task)
    return did_you_mean(metric, allowed) or one_of(allowed)
