"""`ab_tests:` experiments between model versions of one service, judged on a business metric.

An A/B test splits the callers its `target` admits between arms (each a registry alias or
version the service serves), by a sticky key hashed with the test's own salt, and judges the arms
on an outcome that arrives later through the service's feedback log. Guardrails (error rate,
latency) are checked on the same arms. The design says how: a fixed-horizon test, a sequential
one that may be looked at any time, a Bayesian one, or a bandit that moves traffic to the
better arm as it learns.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from shipyard.spec.base import Cron, Duration, Name, SpecModel, spec_rule
from shipyard.spec.rollouts import METRIC_NAME_PATTERN, MetricSpec

Design = Literal["fixed", "sequential", "bayesian", "bandit"]
MetricType = Literal["binary", "continuous", "ratio"]
_FIELD = r"\s*([A-Za-z_][A-Za-z0-9_]*)"
_TARGET = re.compile(
    rf"^{_FIELD}\s+(==|!=|in|not in)\s+(.+?)\s*$"  # `in` needs spaces around it
    rf"|^{_FIELD}\s*(==|!=)\s*(.+?)\s*$"
)


class TargetRule(SpecModel):
    """Who enters the test: one comparison of a request field, parsed from `target:`."""

    field: str
    op: Literal["==", "!=", "in", "not in"]
    values: tuple[str | int | float | bool, ...]


def parse_target(text: str) -> TargetRule:
    """`region in ["north", "east"]`, `plan == "pro"`, `tenure_months != 0` -> a TargetRule.

    The right side is a JSON value (strings in double quotes) or a JSON list for `in`.
    """
    import json

    match = _TARGET.match(text)
    if not match:
        raise spec_rule(
            f"target '{text}' is not a comparison of a request field",
            "write `field == value`, `field != value`, `field in [a, b]` or `field not in "
            '[a, b]`, e.g. region in ["north", "east"]',
        )
    groups = match.groups()
    field, op, right = groups[:3] if groups[0] is not None else groups[3:]
    try:
        value = json.loads(right)
    except ValueError:
        raise spec_rule(
            f"target '{text}': {right} is not a value",
            'write strings in double quotes ("north") and lists in brackets (["a", "b"])',
        ) from None
    if op in ("in", "not in"):
        if not isinstance(value, list) or not value:
            raise spec_rule(
                f"target '{text}': `{op}` needs a non-empty list", 'e.g. region in ["north"]'
            )
        values = tuple(value)
    else:
        values = (value,)
    if any(isinstance(v, dict | list) or v is None for v in values):
        raise spec_rule(
            f"target '{text}' compares with a list, object or null",
            "compare a field with strings, numbers or booleans",
        )
    return TargetRule(field=field, op=op, values=values)


class AbMetricSpec(SpecModel):
    """The metric the test decides on."""

    name: Name = Field(description="What the outcome means, e.g. retained.")
    type: MetricType = Field(
        "binary",
        description="binary: the share of users with a positive outcome; continuous: the mean "
        "outcome per user; ratio: the sum of outcomes over the number of requests per user.",
    )
    source: Literal["feedback"] = Field(
        "feedback",
        description="Where outcomes come from: the service's feedback log (POST /feedback with "
        "the prediction's request_id, or the entity).",
    )
    higher_is_better: bool = Field(True, description="False for churn, cost, time to answer.")


class GuardrailSpec(MetricSpec):
    """A metric that must not get worse in an arm: error_rate or latency_pNN, as in rollouts."""

    @model_validator(mode="after")
    def _built_in(self) -> GuardrailSpec:
        if self.name is None or not re.match(METRIC_NAME_PATTERN, self.name):
            raise spec_rule(
                "a guardrail is a built-in service metric",
                "use error_rate or latency_p50/p90/p95/p99/p999, e.g. "
                "{name: latency_p99, max: 150ms}",
            )
        if self.name == "prediction_shift":
            raise spec_rule(
                "prediction_shift is a rollout check, not a guardrail of an A/B test",
                "use error_rate or a latency quantile",
            )
        return self


class CupedSpec(SpecModel):
    """CUPED: reduce variance with a pre-exposure covariate of each user."""

    covariate: str = Field(description="A numeric request field known before exposure.")


class BanditSpec(SpecModel):
    """bandit: Thompson sampling moves traffic toward the better arm, within bounds."""

    min_share: float = Field(
        0.1, ge=0, lt=0.5, description="Each arm keeps at least this share of traffic."
    )
    cadence: Duration = Field("15m", description="How often the weights are updated.")


class AbTestSpec(SpecModel):
    """An experiment between model versions a service serves."""

    description: str | None = Field(None, description="What the test is for, for people.")
    service: Name = Field(description="The service under `services:` whose callers are split.")
    variants: dict[Name, Annotated[str, Field(min_length=1)] | int] = Field(
        description="Arm -> registry alias (champion, challenger) or version; the first arm is "
        "the control.",
        min_length=2,
    )
    allocation: dict[Name, float] = Field(
        default_factory=dict,
        description="Arm -> share of the targeted callers, in %, summing to 100 (default: even).",
    )
    assign_by: str = Field(description="Request field that keeps a caller in one arm.")
    target: str | None = Field(
        None,
        description='Who enters the test, e.g. region in ["north", "east"]; the others are '
        "served by the service's own routing and not counted.",
    )
    metric: AbMetricSpec = Field(description="The outcome the test decides on.")
    guardrails: list[GuardrailSpec] = Field(
        default_factory=list,
        description="Service metrics no treatment arm may make worse than control's, since "
        "the test began: error_rate, latency_pNN with max (and compare/margin as in rollouts).",
    )
    mde: float = Field(
        gt=0, description="Smallest effect worth detecting, absolute (0.02 = 2 points)."
    )
    alpha: float = Field(0.05, gt=0, lt=0.5, description="False-positive rate of the tests.")
    power: float = Field(0.8, gt=0.5, lt=1, description="Power at the MDE (sample sizes).")
    design: Design = Field(
        "sequential",
        description="fixed: look once at the planned sample; sequential: always-valid "
        "p-values, look any time; bayesian: chance to beat control; bandit: Thompson sampling.",
    )
    correction: Literal["holm", "bh", "none"] = Field(
        "holm", description="Across arms (and metrics): Holm or Benjamini-Hochberg."
    )
    cuped: CupedSpec | None = Field(None, description=CupedSpec.__doc__)
    bandit: BanditSpec = Field(default_factory=BanditSpec, description=BanditSpec.__doc__)
    schedule: Cron = Field("*/15 * * * *", description="When the analysis runs (cron).")
    max_duration: Duration = Field(
        "30d", description="Stop for no effect once the test ran this long without a winner."
    )
    on_winner: Literal["promote", "report"] = Field(
        "report",
        description="promote: hand the winning arm's version to the service's rollout (or "
        "make it @champion when the service has none); report: only say so.",
    )
    alerts: list[Name] = Field(
        default_factory=list,
        description="Routes under `alerts:` told of a sample-ratio mismatch, a harmed "
        "guardrail and a decision.",
    )

    @field_validator("target")
    @classmethod
    def _target_parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_target(value)
        return value

    @model_validator(mode="after")
    def _allocation(self) -> AbTestSpec:
        if not self.allocation:
            return self
        unknown = [arm for arm in self.allocation if arm not in self.variants]
        if unknown:
            raise spec_rule(
                f"allocation names arm '{unknown[0]}', which `variants` does not have",
                f"the arms are {', '.join(self.variants)}",
                ("allocation", unknown[0]),
                key=True,
            )
        missing = [arm for arm in self.variants if arm not in self.allocation]
        if missing:
            raise spec_rule(
                f"allocation gives arm '{missing[0]}' no share",
                "give every arm a share, e.g. {control: 50, treatment: 50}",
                ("allocation",),
            )
        total = sum(self.allocation.values())
        if abs(total - 100) > 1e-6 or any(share <= 0 for share in self.allocation.values()):
            raise spec_rule(
                f"allocation sums to {total:g}, not 100"
                if abs(total - 100) > 1e-6
                else "every arm needs a share above 0",
                "give each arm a share in %, summing to 100, e.g. {control: 50, treatment: 50}",
                ("allocation",),
            )
        return self

    def shares(self) -> dict[str, float]:
        """Arm -> share in %, the even split when `allocation` is left out."""
        if self.allocation:
            return dict(self.allocation)
        return {arm: 100 / len(self.variants) for arm in self.variants}
