"""`rollouts:` moving a service from its stable model version to a candidate, under analysis.

A rollout names a service and a candidate (a registry alias or version). Its strategy says how
traffic moves: `canary` in weight steps, `blue_green` in one switch with the old version kept
loaded for a window, `rolling` one replica's share at a time. Every interval the analysis
compares the candidate with stable and decides: go on, roll back, or pause for a person.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from shipyard.spec.base import (
    Duration,
    DurationError,
    Name,
    SpecModel,
    parse_duration,
    spec_rule,
)
from shipyard.spec.services import RequestMatch

Strategy = Literal["canary", "blue_green", "rolling"]
METRIC_NAME_PATTERN = r"^(error_rate|prediction_shift|latency_p(50|90|95|99|999))$"
_PERCENT = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*%\s*$")


def parse_rate(value: str | float) -> float:
    """'1%' -> 0.01; a bare number is a fraction (0.01)."""
    if isinstance(value, int | float):
        return float(value)
    match = _PERCENT.match(value)
    if match:
        return float(str(match.group(1))) / 100
    try:
        return float(value)
    except ValueError:
        raise spec_rule(
            f"'{value}' is not a rate",
            "write a percentage ('1%') or a fraction (0.01)",
        ) from None


def latency_quantile(name: str) -> float:
    """'latency_p99' -> 0.99, 'latency_p999' -> 0.999."""
    digits = name.removeprefix("latency_p")
    return int(digits) / float(10 ** len(digits))


Threshold = Annotated[
    float | str,
    Field(description="A limit: a rate ('1%', 0.01), a latency ('150ms', '1s') or a number."),
]


class CanaryStepSpec(SpecModel):
    """One canary step: the candidate's share of traffic and how long it holds."""

    weight: float = Field(gt=0, le=100, description="The candidate's share of traffic, in %.")
    duration: Duration | None = Field(None, description="How long the step lasts, e.g. 10m.")
    min_requests: int | None = Field(
        None, ge=1, description="Candidate requests the step needs before it may end."
    )

    @model_validator(mode="after")
    def _ends_somehow(self) -> CanaryStepSpec:
        if self.duration is None and self.min_requests is None:
            raise spec_rule(
                f"the step at weight {self.weight:g} never ends",
                "give it a `duration` (e.g. 10m), a `min_requests` (e.g. 500), or both",
            )
        return self


class MetricSpec(SpecModel):
    """One analysis metric: a built-in one by `name`, or any PromQL `query`."""

    name: Annotated[str, Field(pattern=METRIC_NAME_PATTERN)] | None = Field(
        None,
        description="error_rate, latency_p50/p90/p95/p99/p999 or prediction_shift.",
    )
    query: str | None = Field(
        None,
        description="A PromQL expression giving one number, checked against `max`/`min`; "
        "needs `profiles.<profile>.prometheus.url`. `{{variant}}` is replaced by the "
        "candidate's variant name.",
    )
    max: Threshold | None = Field(None, description="The candidate's value must stay at or below.")
    min: Threshold | None = Field(None, description="A query's value must stay at or above.")
    max_psi: float | None = Field(
        None, ge=0, description="prediction_shift: highest PSI against stable's predictions."
    )
    compare: Literal["stable"] | None = Field(
        None,
        description="Also test the candidate against stable on the same interval (one-sided): "
        "a two-proportion test for error_rate, Mann-Whitney on the duration histograms for "
        "latency.",
    )
    margin: Threshold = Field(
        0.0,
        description="error_rate with compare: how much worse than stable is tolerated ('0.5%'); "
        "latency with compare: the ratio to stable's quantile below which a significant "
        "difference is tolerated (default 1.0).",
    )

    @model_validator(mode="after")
    def _one_metric(self) -> MetricSpec:
        if (self.name is None) == (self.query is None):
            raise spec_rule(
                "a metric needs exactly one of `name` or `query`",
                "use a built-in one (`name: error_rate`) or your own PromQL (`query: ...`)",
            )
        if self.name == "prediction_shift":
            if self.max_psi is None:
                raise spec_rule(
                    "prediction_shift needs `max_psi`",
                    "e.g. `max_psi: 0.2` (0.1 to 0.25 is a moderate shift)",
                )
        elif self.query is not None:
            if self.max is None and self.min is None:
                raise spec_rule(
                    "a query metric needs `max` or `min`",
                    "e.g. `max: 0.05`: the limit on its value",
                )
        elif self.max is None:
            raise spec_rule(
                f"{self.name} needs `max`",
                "e.g. `max: 1%` for error_rate, `max: 150ms` for latency",
            )
        if self.compare is not None and self.name in (None, "prediction_shift"):
            raise spec_rule(
                f"`compare: stable` applies to error_rate and latency, not "
                f"{self.name or 'a query'}",
                "prediction_shift always compares with stable; a query compares itself",
            )
        self._check_ranges()
        return self

    def _check_ranges(self) -> None:
        """Limits the statistics can take: an error rate is a share, a latency is >= 0."""
        high, _ = self.limit()
        margin = self.margin_value()
        if self.name == "error_rate":
            if high is not None and not 0 <= high <= 1:
                raise spec_rule(
                    f"error_rate max {self.max!r} is not a share of requests",
                    "write a percentage ('1%') or a fraction between 0 and 1 (0.01)",
                    ("max",),
                )
            if not 0 <= margin < 1:
                raise spec_rule(
                    f"error_rate margin {self.margin!r} is not a share below 100%",
                    "write how much worse than stable is tolerated, e.g. '0.5%' or 0.005",
                    ("margin",),
                )
        elif self.name is not None and self.name.startswith("latency"):
            if high is not None and high < 0:
                raise spec_rule(
                    f"{self.name} max {self.max!r} is below zero",
                    "write a latency such as 150ms or 1s",
                    ("max",),
                )
            if margin < 1:
                raise spec_rule(
                    f"{self.name} margin {self.margin!r} would fail a candidate faster than stable",
                    "write the ratio to stable's quantile that is tolerated, 1 or more (1.1)",
                    ("margin",),
                )

    @property
    def label(self) -> str:
        """How the metric is named in analyses: its name, or `query` and its position."""
        return self.name or "query"

    def limit(self) -> tuple[float | None, float | None]:
        """(max, min) in base units: error rates as fractions, latencies in seconds."""
        return self._value(self.max), self._value(self.min)

    def margin_value(self) -> float:
        """error_rate: a share (like max); latency: a plain ratio to stable's quantile."""
        if self.name is not None and self.name.startswith("latency"):
            if "margin" not in self.model_fields_set:
                return 1.0
            try:
                return float(self.margin)
            except ValueError:
                raise spec_rule(
                    f"latency margin {self.margin!r} is not a ratio",
                    "write the ratio to stable's quantile that is tolerated, e.g. 1.1",
                    ("margin",),
                ) from None
        value = self._value(self.margin)
        assert value is not None
        return value

    def _value(self, value: float | str | None) -> float | None:
        if value is None or isinstance(value, int | float):
            return None if value is None else float(value)
        if self.name is not None and self.name.startswith("latency"):
            try:
                return parse_duration(value)
            except DurationError as exc:
                raise spec_rule(exc.problem, "write a latency such as 150ms or 1s") from None
        return parse_rate(value)


def _default_metrics() -> list[MetricSpec]:
    return [
        MetricSpec(name="error_rate", max="1%", compare="stable"),
        MetricSpec(name="latency_p99", max="500ms", compare="stable"),
    ]


class AnalysisSpec(SpecModel):
    """What is measured every interval, and how measurements decide (as Argo Rollouts does)."""

    interval: Duration = Field("1m", description="How often the metrics are measured.")
    metrics: list[MetricSpec] = Field(
        default_factory=_default_metrics,
        min_length=1,
        description="Default: error_rate at most 1% and latency_p99 at most 500ms, both "
        "compared with stable.",
    )
    failure_limit: int = Field(
        0, ge=-1, description="Failed measurements a metric may have (-1: never fail)."
    )
    inconclusive_limit: int = Field(
        0,
        ge=0,
        description="Inconclusive measurements a metric may have at the end of a step; no "
        "decided measurement at all is inconclusive whatever the limit.",
    )
    inconclusive: Literal["pause", "rollback"] = Field(
        "pause", description="What an inconclusive step does: wait for a person, or roll back."
    )
    alpha: float = Field(0.05, gt=0, lt=1, description="Level of the one-sided tests.")
    min_requests: int = Field(
        50, ge=1, description="Fewest requests per variant and interval that are judged."
    )


class RolloutRuleSpec(RequestMatch):
    """Requests whose field (or header) matches go to the candidate, whatever the weight."""

    def _subject(self) -> str:
        return "a rollout rule"


class BlueGreenSpec(SpecModel):
    """blue_green: how long the old version stays loaded after the switch."""

    keep_previous: Duration = Field(
        "10m",
        description="After the switch the old version stays loaded (and the analysis runs) "
        "this long; a failure switches back at once.",
    )


class RollingSpec(SpecModel):
    """rolling: the candidate replaces stable one replica's share at a time."""

    replicas: int | None = Field(
        None, ge=1, le=100, description="Replicas replaced one by one (default: the workers)."
    )
    step_duration: Duration = Field("1m", description="How long each replica's share holds.")


class RolloutSpec(SpecModel):
    """A progressive delivery of a candidate model version to a service."""

    description: str | None = Field(None, description="What the rollout is for, for people.")
    service: Name | None = Field(
        None, description="The service under `services:` (default: the rollout's own name)."
    )
    strategy: Strategy = Field("canary", description="canary, blue_green or rolling.")
    candidate: int | str = Field(
        "challenger",
        description="Registry alias (e.g. challenger) or version number of the candidate: "
        "`7` pins a version, an alias follows it.",
    )
    steps: list[CanaryStepSpec] = Field(
        default_factory=list,
        description="canary: weights in increasing order (default 10% then 50%, 5m each).",
    )
    sticky_key: str | None = Field(
        None,
        description="Request field that keeps a caller on one variant for the whole rollout "
        "(salted per rollout); default: the service's routing sticky key.",
    )
    rules: list[RolloutRuleSpec] = Field(
        default_factory=list,
        description="Requests matching any of these go to the candidate from the first step.",
    )
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    smoke_requests: int = Field(
        5,
        ge=0,
        le=1000,
        description="Rows of the training data sent to the candidate (forced-variant header) "
        "after it loads and before it gets traffic; any failure aborts the rollout.",
    )
    blue_green: BlueGreenSpec = Field(default_factory=BlueGreenSpec)
    rolling: RollingSpec = Field(default_factory=RollingSpec)
    on_success: Literal["promote", "pause"] = Field(
        "promote",
        description="promote: `champion` moves to the candidate (the old one keeps "
        "`previous-champion`); pause: wait at full weight for `shipyard rollout promote`.",
    )
    on_failure: Literal["rollback", "pause"] = Field(
        "rollback", description="rollback: all traffic to stable at once; pause: wait for a person."
    )
    alerts: list[Name] = Field(
        default_factory=list,
        description="Routes under `alerts:` told of a rollback, a pause and a promotion.",
    )

    @model_validator(mode="after")
    def _candidate_shape(self) -> RolloutSpec:
        if isinstance(self.candidate, int):
            if self.candidate < 1:
                raise spec_rule(
                    f"candidate version {self.candidate} does not exist",
                    "registry versions start at 1",
                    ("candidate",),
                )
        elif not re.match(r"^[a-z][a-z0-9_-]*$", self.candidate):
            raise spec_rule(
                f"candidate '{self.candidate}' is not a registry alias",
                "write an alias (lowercase, e.g. challenger) or a version number",
                ("candidate",),
            )
        return self
