"""`monitoring:` -> MonitorStep: what the monitor-service flow reads, compares, exports and does.

Everything the flow needs is resolved here: the features it profiles (the model's inputs, typed),
the statistic and threshold of each, the expectations that apply to live inputs (those whose
columns are all model inputs: table-level rules such as a row count describe a file, not a
window), the feature views whose freshness matters, and the deployments it may start.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from shipyard.compiler.datasets import ColumnType, DatasetStep
from shipyard.compiler.expectations import CompiledExpectation
from shipyard.compiler.features import FeatureRepoStep
from shipyard.compiler.models import TrainModelStep
from shipyard.compiler.plan import FrozenModel, StepBase
from shipyard.compiler.services import ServiceStep, VariantRef, control_database
from shipyard.spec import parse_duration
from shipyard.spec.alerts import Severity
from shipyard.spec.monitoring import PERFORMANCE_METRICS, Action, DriftStatistic, MonitorSpec

if TYPE_CHECKING:
    from shipyard.compiler.compile import CompileContext

PREDICTION = "__prediction__"
"""The profile column of the model's output: a binary classifier's positive-class probability,
a regressor's prediction, a multiclass classifier's predicted label."""
PROFILE_ARTIFACT = "monitoring/reference_profile.json"
"""Where the training run stores the reference profile (MLflow artifact path)."""


class FeatureDriftPlan(FrozenModel):
    """One monitored column: its declared type and how its drift is judged."""

    name: str
    type: ColumnType
    categorical: bool
    statistic: DriftStatistic
    threshold: float | None = Field(None, description="None: the statistic's default.")


class PerformancePlan(FrozenModel):
    metric: str
    higher_is_better: bool
    min: float | None
    max: float | None
    min_labels: int


class FreshnessPlan(FrozenModel):
    """A feature view the service reads online, and the oldest its data may be."""

    view: str
    max_age_seconds: float = Field(description="0: no limit (a view without ttl).")


class MonitorStep(StepBase):
    """monitor-service: read the window, judge drift, quality, performance and freshness,
    export the metrics, publish the report, act."""

    kind: Literal["monitor"] = "monitor"
    service: str = Field(description="Id of the watched service step.")
    model: str = Field(description="Id of the model step whose versions the service serves.")
    registered_name: str
    task: Literal["classification", "regression"]
    variants: list[VariantRef] = Field(description="The service's variants, stable first.")
    window_seconds: float
    min_rows: int
    features: tuple[FeatureDriftPlan, ...]
    prediction_statistic: DriftStatistic | None
    drift_share: float
    expectations: tuple[CompiledExpectation, ...] = Field(
        description="The training dataset's expectations that apply to live inputs."
    )
    dataset: str = Field(description="Id of the training dataset step.")
    performance: PerformancePlan | None
    freshness: tuple[FreshnessPlan, ...]
    feature_repo: str | None
    on_drift: tuple[Action, ...]
    cooldown_seconds: float
    severity: Severity
    alerts: tuple[str, ...] = Field(description="Ids of the alert routes it tells.")
    training_deployment: str = Field(description="flow/name of the model's training deployment.")
    rollout: str | None = Field(
        None, description="Id of the service's rollout: a retrained challenger is rolled out."
    )
    log_database: str
    control_database: str
    report_dir: str = Field(description="Where the HTML reports are written.")

    flow: ClassVar[str | None] = "monitor-service"
    parameter: ClassVar[str] = "service"
    noun: ClassVar[str] = "monitor"


def compile_monitoring(ctx: CompileContext) -> Iterator[MonitorStep]:
    for name, monitor in ctx.spec.monitoring.items():
        yield monitor_step(ctx, name, monitor)


def is_categorical(column_type: ColumnType) -> bool:
    """Categories, strings and booleans are profiled by their values' frequencies."""
    return isinstance(column_type, list) or column_type in ("str", "bool")


def monitor_step(ctx: CompileContext, name: str, monitor: MonitorSpec) -> MonitorStep:
    service = ctx.step(f"service.{name}", ServiceStep)
    model = ctx.step(f"model.{service.model}", TrainModelStep)
    data = ctx.step(model.dataset, DatasetStep)
    drift = monitor.drift
    features = tuple(
        FeatureDriftPlan(
            name=feature,
            type=column_type,
            categorical=is_categorical(column_type),
            statistic=drift.per_feature[feature].statistic
            if feature in drift.per_feature
            else _fitting(drift.inputs, column_type),
            threshold=drift.per_feature[feature].threshold
            if feature in drift.per_feature
            else drift.threshold,
        )
        for feature, column_type in model.feature_types.items()
        if column_type not in ("datetime", "date")
    )
    inputs = set(model.features)
    expectations = tuple(
        e
        for e in data.expectations
        if monitor.quality == "expectations"
        and e.columns()
        and set(e.columns()) <= inputs
        and e.type != "expect_column_to_exist"
    )
    performance = None
    if monitor.performance is not None:
        p = monitor.performance
        performance = PerformancePlan(
            metric=p.metric,
            higher_is_better=PERFORMANCE_METRICS[p.metric] == "higher",
            min=p.min,
            max=p.max,
            min_labels=p.min_labels,
        )
    freshness: tuple[FreshnessPlan, ...] = ()
    repo_id = service.feature_repo
    if service.feature_service is not None and repo_id is not None:
        repo = ctx.step(repo_id, FeatureRepoStep)
        served = repo.service(service.feature_service)
        views = sorted({reference.split(":", 1)[0] for reference in served.references})
        limit = parse_duration(monitor.freshness) if monitor.freshness else None
        freshness = tuple(
            FreshnessPlan(
                view=view,
                max_age_seconds=limit if limit is not None else repo.view(view).ttl_seconds,
            )
            for view in views
        )
    rollout = next(
        (
            step_id
            for step_id, step in ctx.steps.items()
            if step.kind == "rollout" and getattr(step, "service", None) == service.id
        ),
        None,
    )
    return MonitorStep(
        id=f"monitor.{name}",
        name=name,
        description=monitor.description
        or f"Watch service '{name}': drift, data quality"
        + (", performance" if performance else "")
        + (", feature freshness" if freshness else "")
        + f" over the last {monitor.window}.",
        needs=(service.id, model.id),
        tasks=("judge", "act", "report"),
        schedule=monitor.schedule,
        service=service.id,
        model=model.id,
        registered_name=model.registered_name,
        task=model.task,
        variants=list(service.variants),
        window_seconds=parse_duration(monitor.window),
        min_rows=monitor.min_rows,
        features=features,
        prediction_statistic=drift.predictions,
        drift_share=drift.share,
        expectations=expectations,
        dataset=data.id,
        performance=performance,
        freshness=freshness,
        feature_repo=repo_id if freshness else None,
        on_drift=tuple(dict.fromkeys(monitor.on_drift)),
        cooldown_seconds=parse_duration(monitor.cooldown),
        severity=monitor.severity,
        alerts=tuple(f"alert.{route}" for route in monitor.alerts),
        training_deployment=f"train-model/{model.name}",
        rollout=rollout,
        log_database=service.log_database,
        control_database=control_database(ctx, service.log_database),
        report_dir=str(ctx.state_dir / "monitoring" / name),
    )


def _fitting(statistic: DriftStatistic, column_type: ColumnType) -> DriftStatistic:
    """KS and Wasserstein need numbers: a categorical feature is judged by chi-square then."""
    if is_categorical(column_type) and statistic in ("ks", "wasserstein"):
        return "chi2"
    return statistic
