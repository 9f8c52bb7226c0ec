"""Judge a window: drift of inputs and predictions, data quality, performance, freshness.

Every part that cannot be judged says why (`problems`): no reference profile, a window with
too few rows, a feature missing from live data, a feature store that cannot be read. A monitor
with problems is unhealthy, and says so in its report, its metrics and an alert: never a
silent pass.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shipyard.compiler import Plan, ServiceStep
from shipyard.compiler.features import FeatureRepoStep
from shipyard.compiler.monitoring import PREDICTION, MonitorStep, PerformancePlan
from shipyard.errors import ShipyardError
from shipyard.monitoring.reference import load_reference
from shipyard.monitoring.window import Window, read_window
from shipyard.serving.crypto import reader_cipher
from shipyard.stats.drift import ColumnDrift, DriftProfile, DriftReport, drift_report

Status = Literal["ok", "drift", "degraded", "not_judged"]
TYPE_RULE = "expect_column_values_to_be_in_type_list"


@dataclass
class PerformanceOutcome:
    variant: str
    metric: str
    value: float | None
    labels: int
    ok: bool | None
    """None: too few labels to judge."""


@dataclass
class FreshnessOutcome:
    view: str
    age_seconds: float | None
    max_age_seconds: float
    ok: bool | None
    note: str | None = None


@dataclass
class Judgement:
    """One monitor run's findings, what the metrics, the report and the actions are made of."""

    service: str
    start: float
    end: float
    rows: int = 0
    reference_version: int | None = None
    problems: list[str] = field(default_factory=list)
    """Why parts could not be judged: the monitoring's own health."""
    drift: DriftReport | None = None
    drift_share: float = 0.0
    prediction_drift: dict[str, ColumnDrift] = field(default_factory=dict)
    quality: Any = None
    """A QualityReport (shipyard/data/quality.py) on the live inputs, or None."""
    performance: list[PerformanceOutcome] = field(default_factory=list)
    freshness: list[FreshnessOutcome] = field(default_factory=list)
    window: Window | None = None
    profile: DriftProfile | None = None

    @property
    def drifted(self) -> list[str]:
        if self.drift is None:
            return []
        return [name for name, column in self.drift.columns.items() if column.drifted]

    @property
    def predictions_drifted(self) -> list[str]:
        return [variant for variant, d in self.prediction_drift.items() if d.drifted]

    def drift_detected(self, share: float) -> bool:
        if self.predictions_drifted:
            return True
        return bool(self.drifted) and self.drift_share > share

    @property
    def quality_failed(self) -> list[str]:
        return [o.rule for o in self.quality.failed] if self.quality is not None else []

    @property
    def performance_failed(self) -> list[PerformanceOutcome]:
        return [p for p in self.performance if p.ok is False]

    @property
    def stale(self) -> list[FreshnessOutcome]:
        return [f for f in self.freshness if f.ok is False]

    @property
    def healthy(self) -> bool:
        return not self.problems

    def status(self, share: float) -> Status:
        if self.drift is None and not self.prediction_drift:
            return "not_judged"
        if self.drift_detected(share):
            return "drift"
        if self.quality_failed or self.performance_failed or self.stale:
            return "degraded"
        return "ok"


def judge(plan: Plan, step: MonitorStep, now: float | None = None) -> Judgement:
    """Read the window and judge it (the flow's read-window and judge tasks in one)."""
    from shipyard import registry
    from shipyard.training.tracking import use_tracking

    use_tracking(plan.blocks.mlflow.tracking_uri, step.id)
    cache = Path(plan.runtime.state_dir) / "monitoring" / "profiles"
    profiles: dict[str, DriftProfile] = {}
    result = Judgement(service=step.name, start=0.0, end=0.0)
    for variant in step.variants:
        found = (
            registry.model_version(step.registered_name, variant.version)
            if variant.version is not None
            else registry.alias_version(step.registered_name, variant.alias or "")
        )
        if found is None:
            if variant is step.variants[0]:
                result.problems.append(
                    f"the service's stable variant ({_ref(variant)}) holds no model version: "
                    "nothing to compare with"
                )
            continue
        try:
            profiles[variant.name] = load_reference(
                step.registered_name, int(found.version), found.run_id, cache
            )
        except ShipyardError as exc:
            result.problems.append(f"{exc} ({exc.hint})" if exc.hint else str(exc))
            continue
        if variant is step.variants[0]:
            result.reference_version = int(found.version)
    stable = profiles.get(step.variants[0].name)
    numeric_output = (
        stable is None
        or stable.columns.get(PREDICTION, None) is None
        or (stable.columns[PREDICTION].kind == "numeric")
    )
    service = plan.steps.get(f"service.{step.name}")
    window = read_window(
        step.log_database,
        step.name,
        [f.name for f in step.features],
        step.window_seconds,
        numeric_output,
        now,
        reader_cipher(service.log_encryption, step.name)
        if isinstance(service, ServiceStep)
        else None,
    )
    judge_window(step, profiles, window, result)
    _judge_freshness(plan, step, result)
    return result


def judge_window(
    step: MonitorStep,
    profiles: dict[str, DriftProfile],
    window: Window,
    result: Judgement | None = None,
) -> Judgement:
    """Judge a window against the variants' reference profiles (variant name -> profile; the
    stable variant's judges the inputs): everything but freshness, without I/O."""
    if result is None:
        result = Judgement(service=step.name, start=window.start, end=window.end)
    stable = profiles.get(step.variants[0].name)
    result.start, result.end, result.rows, result.window = (
        window.start,
        window.end,
        window.rows,
        window,
    )
    result.profile = stable
    if window.rows == 0:
        result.problems.append(
            f"the window holds no predictions (the last {_duration(step.window_seconds)}): is "
            "the service serving, and logging predictions?"
        )
    elif window.rows < step.min_rows:
        result.problems.append(
            f"the window holds {window.rows} predictions, fewer than min_rows ({step.min_rows}):"
            " not judged"
        )
    else:
        if stable is not None:
            _judge_drift(step, stable, window, result)
            for name, profile in profiles.items():
                _judge_predictions(step, name, profile, window, result)
        _judge_quality(step, window, result)
    _judge_performance(step, window, result)
    return result


def _ref(variant: Any) -> str:
    return f"version {variant.version}" if variant.version is not None else f"@{variant.alias}"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _judge_drift(
    step: MonitorStep, profile: DriftProfile, window: Window, result: Judgement
) -> None:
    judged = [f for f in step.features if f.name in profile.columns]
    unprofiled = [f.name for f in step.features if f.name not in profile.columns]
    if unprofiled:
        result.problems.append(
            f"the reference profile lacks {', '.join(unprofiled)} (trained before they were "
            "features?): retrain to monitor them"
        )
    missing = [f.name for f in judged if f.name not in window.seen]
    if missing:
        masked = [name for name in missing if name in window.masked]
        result.problems.append(
            f"{', '.join(missing)} missing from live data"
            + (
                f" ({', '.join(masked)} masked by `logging.mask`, or encrypted by "
                "`logging.encrypt` without the key here)"
                if masked
                else ""
            )
            + ": their drift is not judged"
        )
    present = [f for f in judged if f.name in window.seen]
    if not present:
        return
    sub = DriftProfile(
        columns={f.name: profile.columns[f.name] for f in present},
        n_bins=profile.n_bins,
        sample_size=profile.sample_size,
        top_k=profile.top_k,
    )
    columns = {f.name: _typed(window.columns[f.name], f.categorical) for f in present}
    report = drift_report(
        sub,
        columns,
        statistics={f.name: _suited(f.statistic, sub.columns[f.name].kind) for f in present},
        thresholds={f.name: f.threshold for f in present if f.threshold is not None},
    )
    result.drift = report
    result.drift_share = len(result.drifted) / len(report.columns)


def _suited(statistic: str, kind: str) -> str:
    """A profile may hold a column as categorical that the spec types as a number (an int with
    few values never is, but a bool stored as 0/1 can be): judge it by chi-square then."""
    if kind == "categorical" and statistic in ("ks", "wasserstein"):
        return "chi2"
    return statistic


def _typed(values: list[Any], categorical: bool) -> Any:
    import numpy as np

    if categorical:
        return values
    return np.array(
        [
            float(v)
            if isinstance(v, int | float) and not isinstance(v, bool)
            else (float(v) if isinstance(v, bool) else math.nan)
            for v in values
        ],
        dtype=float,
    )


def _judge_predictions(
    step: MonitorStep, variant: str, profile: DriftProfile, window: Window, result: Judgement
) -> None:
    outputs = window.outputs.get(variant)
    if step.prediction_statistic is None or not outputs or PREDICTION not in profile.columns:
        return
    kind = profile.columns[PREDICTION].kind
    sub = DriftProfile(
        columns={PREDICTION: profile.columns[PREDICTION]},
        n_bins=profile.n_bins,
        sample_size=profile.sample_size,
        top_k=profile.top_k,
    )
    report = drift_report(
        sub,
        {PREDICTION: _typed(outputs, kind == "categorical")},
        statistics={PREDICTION: _suited(step.prediction_statistic, kind)},
    )
    result.prediction_drift[variant] = report.columns[PREDICTION]


def _judge_quality(step: MonitorStep, window: Window, result: Judgement) -> None:
    if not step.expectations:
        return
    import pandas as pd

    from shipyard.data.quality import check_expectations

    types = {f.name: f.type for f in step.features}
    data: dict[str, Any] = {}
    for name, values in window.frame_columns().items():
        declared = types.get(name)
        if declared == "int":
            ints = [v if isinstance(v, int) and not isinstance(v, bool) else None for v in values]
            # GX checks the type of a nullable Int64 column wrongly: plain int64 when it can be
            data[name] = pd.array(ints, dtype="Int64" if None in ints else "int64")
        elif declared == "float":
            data[name] = _typed(values, categorical=False)
        else:
            data[name] = values
    frame = pd.DataFrame(data)
    runnable = [e for e in step.expectations if set(e.columns()) <= set(frame.columns)]
    if not runnable:
        return
    dataset = step.dataset.split(".", 1)[1]
    # GX judges a nullable Int64 column's type wrongly: with missing values (not_null says so),
    # an int column's type is checked on its present values, as plain int64
    nullable = {str(c) for c in frame.columns if str(frame[c].dtype) == "Int64"}
    typed = [e for e in runnable if e.type == TYPE_RULE and e.column in nullable]
    report = check_expectations(frame, [e for e in runnable if e not in typed], dataset)
    for e in typed:
        column = str(e.column)
        present = pd.DataFrame({column: frame[column].dropna().astype("int64")})
        report.outcomes += check_expectations(present, [e], dataset).outcomes
    result.quality = report


def _judge_performance(step: MonitorStep, window: Window, result: Judgement) -> None:
    plan = step.performance
    if plan is None:
        return
    by_variant: dict[str, list[tuple[Any, Any, float | None]]] = {}
    for key, label in window.labels.items():
        scored = window.scored[key]
        if scored.experiment:  # an A/B test's outcome, not the model's label
            continue
        by_variant.setdefault(scored.variant, []).append(
            (label, scored.prediction, scored.probability)
        )
    for variant in [v.name for v in step.variants]:
        rows = by_variant.get(variant, [])
        if len(rows) < plan.min_labels:
            if variant == step.variants[0].name or rows:
                result.performance.append(
                    PerformanceOutcome(variant, plan.metric, None, len(rows), None)
                )
            continue
        value = performance_value(plan, rows)
        ok = None
        if value is not None:
            ok = (plan.min is None or value >= plan.min) and (plan.max is None or value <= plan.max)
        result.performance.append(PerformanceOutcome(variant, plan.metric, value, len(rows), ok))


def performance_value(
    plan: PerformancePlan, rows: list[tuple[Any, Any, float | None]]
) -> float | None:
    """The metric of labelled predictions (label, prediction, probability), or None when it is
    undefined (one class only, for roc_auc)."""
    from sklearn import metrics

    labels = [r[0] for r in rows]
    predictions = [r[1] for r in rows]
    if plan.metric in ("rmse", "mae", "r2"):
        y = [float(v) for v in labels]
        p = [float(v) for v in predictions]
        if plan.metric == "rmse":
            return float(math.sqrt(metrics.mean_squared_error(y, p)))
        if plan.metric == "mae":
            return float(metrics.mean_absolute_error(y, p))
        return float(metrics.r2_score(y, p)) if len(set(y)) > 1 else None
    if plan.metric == "accuracy":
        return float(
            metrics.accuracy_score([str(v) for v in labels], [str(v) for v in predictions])
        )
    scored = [r for r in rows if r[2] is not None]
    positive = str(max(scored, key=lambda r: r[2] or 0.0)[1]) if scored else "True"
    y_true = [str(v) == positive for v in labels]
    if plan.metric in ("f1", "precision", "recall"):
        y_pred = [str(v) == positive for v in predictions]
        score = {"f1": metrics.f1_score, "precision": metrics.precision_score}.get(
            plan.metric, metrics.recall_score
        )
        return float(score(y_true, y_pred, zero_division=0))
    if len(set(y_true)) < 2 or len(scored) < len(rows):
        return None
    probabilities = [r[2] or 0.0 for r in rows]
    if plan.metric == "roc_auc":
        return float(metrics.roc_auc_score(y_true, probabilities))
    return float(metrics.log_loss(y_true, probabilities, labels=[False, True]))


def _judge_freshness(plan: Plan, step: MonitorStep, result: Judgement) -> None:
    if not step.freshness or step.feature_repo is None:
        return
    repo = plan.steps.get(step.feature_repo)
    if not isinstance(repo, FeatureRepoStep):
        return
    try:
        from shipyard.features.repo import open_store

        store = open_store(repo)
        now = time.time()
        for f in step.freshness:
            intervals = store.get_feature_view(f.view).materialization_intervals
            if not intervals:
                result.freshness.append(
                    FreshnessOutcome(f.view, None, f.max_age_seconds, False, "never materialized")
                )
                continue
            age = now - intervals[-1][1].timestamp()
            ok = f.max_age_seconds == 0 or age <= f.max_age_seconds
            result.freshness.append(FreshnessOutcome(f.view, age, f.max_age_seconds, ok))
    except Exception as exc:  # the registry of the feature store cannot be read
        result.problems.append(
            f"the freshness of the online features cannot be read: {str(exc).splitlines()[0]}"
        )
