"""`monitoring:` watching a service in production: drift, data quality, performance, freshness.

An entry is keyed by the service it watches. On its schedule the monitor reads the last
`window` of the service's prediction log and compares it with the reference profile stored with
the served model version when it was trained: input drift per feature and prediction drift, the
dataset's expectations on live inputs, the model metric once feedback labels arrive, and the age
of the online features. What it finds is exported to Prometheus, published as a report, and
acted on: `alert` tells the entry's alert routes, `retrain` runs the model's training
deployment (at most once per `cooldown`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from shipyard.spec.alerts import Severity
from shipyard.spec.base import Cron, Duration, Name, SpecModel, spec_rule

DriftStatistic = Literal["psi", "ks", "chi2", "js", "wasserstein"]
Action = Literal["alert", "retrain"]
PERFORMANCE_METRICS = {
    "roc_auc": "higher",
    "accuracy": "higher",
    "f1": "higher",
    "precision": "higher",
    "recall": "higher",
    "log_loss": "lower",
    "rmse": "lower",
    "mae": "lower",
    "r2": "higher",
}
"""Metrics the monitor computes from feedback labels, and which way is better."""


class FeatureDriftSpec(SpecModel):
    """A statistic and threshold for one feature, instead of the entry's."""

    statistic: DriftStatistic = Field(description="psi, ks, chi2, js or wasserstein.")
    threshold: float | None = Field(
        None,
        gt=0,
        description="Drifted at or above it (psi, js, wasserstein) or with a p-value below it "
        "(ks, chi2); unset: the statistic's default (psi 0.2, ks/chi2 0.05, js/wasserstein 0.1).",
    )


class DriftSpec(SpecModel):
    """Which statistic judges the inputs and the predictions, and from what value on."""

    inputs: DriftStatistic = Field("psi", description="Statistic of every input feature.")
    predictions: DriftStatistic | None = Field(
        "ks", description="Statistic of the model's output (null: not judged)."
    )
    threshold: float | None = Field(
        None, gt=0, description="Threshold of the `inputs` statistic; unset: its default."
    )
    per_feature: dict[str, FeatureDriftSpec] = Field(
        default_factory=dict, description="Feature -> its own statistic and threshold."
    )
    share: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="The service drifts when more than this share of its features drift "
        "(0: any one feature), or when its predictions drift.",
    )


class PerformanceSpec(SpecModel):
    """The model metric on live traffic, once feedback labels arrive."""

    metric: str = Field(description=f"One of {', '.join(PERFORMANCE_METRICS)}.")
    min: float | None = Field(None, description="Alert below this value (higher-is-better).")
    max: float | None = Field(None, description="Alert above this value (lower-is-better).")
    labels: Literal["feedback"] = Field(
        "feedback", description="Where labels come from: the service's feedback log."
    )
    min_labels: int = Field(
        50, ge=1, description="Labelled predictions needed before the metric is judged."
    )

    @model_validator(mode="after")
    def _known(self) -> PerformanceSpec:
        if self.metric not in PERFORMANCE_METRICS:
            raise spec_rule(
                f"'{self.metric}' is not a metric the monitor computes",
                f"use one of {', '.join(PERFORMANCE_METRICS)}",
                ("metric",),
            )
        if self.min is None and self.max is None:
            better = PERFORMANCE_METRICS[self.metric]
            raise spec_rule(
                f"performance on {self.metric} has no limit",
                f"give {'min' if better == 'higher' else 'max'}, e.g. "
                f"{{metric: {self.metric}, {'min: 0.7' if better == 'higher' else 'max: 0.5'}}}",
            )
        return self


class MonitorSpec(SpecModel):
    """What to watch on one service, how often, and what to do when it drifts."""

    description: str | None = Field(None, description="What is watched, for people.")
    window: Duration = Field("1h", description="How much of the prediction log one run reads.")
    schedule: Cron = Field("*/15 * * * *", description="When the monitor runs (cron).")
    min_rows: int = Field(
        100, ge=1, description="Fewer predictions in the window: not judged, and said so."
    )
    drift: DriftSpec = Field(default_factory=DriftSpec, description=DriftSpec.__doc__)
    quality: Literal["expectations", "none"] = Field(
        "expectations",
        description="expectations: the training dataset's expectations, on the live inputs.",
    )
    performance: PerformanceSpec | None = Field(None, description=PerformanceSpec.__doc__)
    freshness: Duration | None = Field(
        None,
        description="Oldest acceptable online features (services with `features:`); unset: "
        "each feature view's ttl.",
    )
    on_drift: list[Action] = Field(
        default_factory=lambda: list[Action](["alert"]),
        description="alert: tell `alerts`; retrain: run the model's training deployment.",
    )
    cooldown: Duration = Field(
        "24h", description="Least time between two retrainings the monitor starts."
    )
    severity: Severity = Field("warning", description="Severity of drift and quality alerts.")
    alerts: list[Name] = Field(
        default_factory=list, description="Routes under `alerts:` this monitor tells."
    )
