"""Rules for `monitoring:`: the watched service exists, per-feature settings name model inputs
with statistics that suit them, the performance metric suits the task, freshness has online
features to be about."""

from __future__ import annotations

from collections.abc import Iterator

from shipyard.diagnostics import Diagnostic, did_you_mean, one_of
from shipyard.loader.source_map import SourceMap
from shipyard.spec import PipelineSpec
from shipyard.spec.datasets import CategoryType
from shipyard.spec.features import service_features
from shipyard.spec.monitoring import MonitorSpec

_CLASSIFICATION = {"roc_auc", "accuracy", "f1", "precision", "recall", "log_loss"}


def check_monitoring(spec: PipelineSpec, sm: SourceMap) -> Iterator[Diagnostic]:
    for name, monitor in spec.monitoring.items():
        yield from check_monitor(name, monitor, spec, sm)


def _feature_types(spec: PipelineSpec, service_name: str) -> dict[str, str] | None:
    """Model input -> 'categorical' or 'numeric' (None when the model is unknown)."""
    service = spec.services[service_name]
    model = spec.models.get(service.model)
    if model is None:
        return None
    if model.feature_service is not None:
        if model.feature_service not in spec.features.services:
            return None
        pairs = [
            (f, spec.datasets[view.source].columns.get(f))
            for view, f in service_features(spec.features, model.feature_service)
            if view.source in spec.datasets
        ]
    else:
        dataset = spec.datasets.get(model.dataset)
        if dataset is None or not isinstance(model.features, list):
            return None
        pairs = [(f, dataset.columns.get(f)) for f in model.features]
    return {
        f: "categorical" if isinstance(t, CategoryType) or t in ("str", "bool") else "numeric"
        for f, t in pairs
    }


def check_monitor(
    name: str, monitor: MonitorSpec, spec: PipelineSpec, sm: SourceMap
) -> Iterator[Diagnostic]:
    base = ("monitoring", name)
    if name not in spec.services:
        yield Diagnostic(
            "E1101",
            f"monitor '{name}' watches service '{name}', which is not defined",
            sm.key_span(base),
            did_you_mean(name, spec.services)
            or (one_of(sorted(spec.services)) if spec.services else "define it under `services:`")
            + "; a monitor is keyed by the service it watches",
        )
        return
    service = spec.services[name]
    types = _feature_types(spec, name)
    if types is not None:
        for feature, setting in monitor.drift.per_feature.items():
            at = (*base, "drift", "per_feature", feature)
            if feature not in types:
                yield Diagnostic(
                    "E1102",
                    f"monitor '{name}': per_feature names '{feature}', which is not an input of "
                    f"model '{service.model}'",
                    sm.key_span(at),
                    did_you_mean(feature, types) or one_of(sorted(types)),
                )
            elif types[feature] == "categorical" and setting.statistic in ("ks", "wasserstein"):
                yield Diagnostic(
                    "E1103",
                    f"monitor '{name}': feature '{feature}' is categorical, and "
                    f"{setting.statistic} compares numbers",
                    sm.value_span((*at, "statistic")),
                    "use psi, chi2 or js for a categorical feature",
                )
    model = spec.models.get(service.model)
    performance = monitor.performance
    if model is not None and performance is not None:
        suits = (performance.metric in _CLASSIFICATION) == (model.task == "classification")
        if not suits:
            yield Diagnostic(
                "E1104",
                f"monitor '{name}': {performance.metric} does not suit model "
                f"'{service.model}', a {model.task} model",
                sm.value_span((*base, "performance", "metric")),
                "use roc_auc, accuracy, f1, precision, recall or log_loss for classification; "
                "rmse, mae or r2 for regression",
            )
    reads_online = model is not None and (service.features or model.feature_service)
    if monitor.freshness is not None and not reads_online:
        yield Diagnostic(
            "E1105",
            f"monitor '{name}': freshness is about online features, and service '{name}' "
            "reads none",
            sm.key_span((*base, "freshness")),
            "remove `freshness`, or serve the model from a feature service "
            "(`services.<name>.features`)",
        )
