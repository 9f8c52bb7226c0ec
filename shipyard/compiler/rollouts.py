"""`rollouts:` -> RolloutStep: the stages, routing and analysis the roll-out flow walks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from shipyard.compiler.plan import FrozenModel, StepBase
from shipyard.compiler.services import ServiceStep, VariantRef
from shipyard.spec import parse_duration
from shipyard.spec.rollouts import (
    CanaryStepSpec,
    MetricSpec,
    RolloutSpec,
    Strategy,
    latency_quantile,
)
from shipyard.spec.services import RouteRule

if TYPE_CHECKING:
    from shipyard.compiler.compile import CompileContext

DEFAULT_CANARY = (
    CanaryStepSpec(weight=10, duration="5m"),
    CanaryStepSpec(weight=50, duration="5m"),
)

MetricKind = Literal["error_rate", "latency", "prediction_shift", "query"]


class StagePlan(FrozenModel):
    """One stage of a rollout: the candidate's share, held until both conditions are met."""

    weight: float = Field(description="The candidate's share of unmatched traffic, in %.")
    duration_seconds: float | None = Field(None, description="The stage lasts at least this.")
    min_requests: int | None = Field(None, description="Candidate requests the stage needs.")
    label: str = Field(description="How status and plots name the stage, e.g. 'canary 25%'.")


class MetricPlan(FrozenModel):
    """One analysis metric, in base units (error rates as fractions, latency in seconds)."""

    name: str = Field(description="Unique within the rollout: error_rate, latency_p99, query_2.")
    kind: MetricKind
    quantile: float | None = Field(None, description="latency: the quantile, e.g. 0.99.")
    max: float | None = None
    min: float | None = None
    compare: bool = Field(False, description="Also test candidate against stable.")
    margin: float = 0.0
    query: str | None = None


class RolloutStep(StepBase):
    """roll-out: load the candidate, smoke-test it, walk the stages under analysis, decide."""

    kind: Literal["rollout"] = "rollout"
    service: str = Field(description="Id of the service step, e.g. service.churn-api.")
    strategy: Strategy
    candidate: VariantRef = Field(description="The candidate, as a variant of the service.")
    stages: tuple[StagePlan, ...]
    sticky_key: str | None
    rules: tuple[RouteRule, ...] = Field(description="Requests these match go to the candidate.")
    salt: str = Field(description="Sticky hashes of this rollout: independent of others'.")
    interval_seconds: float
    metrics: tuple[MetricPlan, ...]
    failure_limit: int
    inconclusive_limit: int
    inconclusive: Literal["pause", "rollback"]
    alpha: float
    min_requests: int = Field(description="Fewest requests per variant and interval judged.")
    smoke_requests: int
    on_success: Literal["promote", "pause"]
    on_failure: Literal["rollback", "pause"]
    prometheus_url: str | None = Field(None, description="Query API for PromQL metrics.")
    alerts: tuple[str, ...] = Field(
        (), description="Ids of the alert routes told of a rollback, a pause and a promotion."
    )

    flow: ClassVar[str | None] = "roll-out"
    parameter: ClassVar[str] = "rollout"
    noun: ClassVar[str] = "rollout"


def compile_rollouts(ctx: CompileContext) -> Iterator[RolloutStep]:
    for name, rollout in ctx.spec.rollouts.items():
        service = ctx.step(f"service.{rollout.service or name}", ServiceStep)
        yield rollout_step(ctx, name, rollout, service)


def candidate_variant(candidate: str | int) -> VariantRef:
    """An alias is a variant of its own name; a pinned version is variant `v<N>`."""
    if isinstance(candidate, int):
        return VariantRef(name=f"v{candidate}", version=candidate)
    return VariantRef(name=candidate, alias=candidate)


def rollout_step(
    ctx: CompileContext, name: str, rollout: RolloutSpec, service: ServiceStep
) -> RolloutStep:
    candidate = candidate_variant(rollout.candidate)
    return RolloutStep(
        id=f"rollout.{name}",
        name=name,
        description=rollout.description
        or f"Roll {candidate.reference} of model '{service.model}' out to service "
        f"'{service.service}' ({rollout.strategy.replace('_', '-')}), under analysis.",
        needs=(service.id,),
        tasks=("load", "smoke-test", "walk", "decide"),
        service=service.id,
        strategy=rollout.strategy,
        candidate=candidate,
        stages=_stages(rollout, service),
        sticky_key=rollout.sticky_key or service.routing.sticky_key,
        rules=tuple(
            RouteRule.model_validate(
                {
                    **rule.model_dump(by_alias=True, exclude_unset=True),
                    "variant": candidate.name,
                }
            )
            for rule in rollout.rules
        ),
        salt=f"rollout.{name}",
        interval_seconds=parse_duration(rollout.analysis.interval),
        metrics=metric_plans(rollout.analysis.metrics),
        failure_limit=rollout.analysis.failure_limit,
        inconclusive_limit=rollout.analysis.inconclusive_limit,
        inconclusive=rollout.analysis.inconclusive,
        alpha=rollout.analysis.alpha,
        min_requests=rollout.analysis.min_requests,
        smoke_requests=rollout.smoke_requests,
        on_success=rollout.on_success,
        on_failure=rollout.on_failure,
        prometheus_url=ctx.profile.prometheus.url,
        alerts=tuple(f"alert.{route}" for route in rollout.alerts),
    )


def _stages(rollout: RolloutSpec, service: ServiceStep) -> tuple[StagePlan, ...]:
    if rollout.strategy == "blue_green":
        window = parse_duration(rollout.blue_green.keep_previous)
        return (StagePlan(weight=100, duration_seconds=window, label="switched"),)
    if rollout.strategy == "rolling":
        replicas = rollout.rolling.replicas or service.workers
        hold = parse_duration(rollout.rolling.step_duration)
        return tuple(
            StagePlan(
                weight=round(100 * k / replicas, 2),
                duration_seconds=hold,
                label=f"replica {k}/{replicas}",
            )
            for k in range(1, replicas + 1)
        )
    return tuple(
        StagePlan(
            weight=step.weight,
            duration_seconds=parse_duration(step.duration) if step.duration else None,
            min_requests=step.min_requests,
            label=f"canary {step.weight:g}%",
        )
        for step in (rollout.steps or DEFAULT_CANARY)
    )


def metric_plans(metrics: list[MetricSpec]) -> tuple[MetricPlan, ...]:
    """Metrics in base units (error rates as fractions, latency in seconds), named uniquely."""
    plans = []
    for index, metric in enumerate(metrics, 1):
        high, low = metric.limit()
        if metric.name is None:
            kind: MetricKind = "query"
            name = f"query_{index}"
        elif metric.name.startswith("latency"):
            kind, name = "latency", metric.name
        else:
            kind = "error_rate" if metric.name == "error_rate" else "prediction_shift"
            name = metric.name
        plans.append(
            MetricPlan(
                name=name,
                kind=kind,
                quantile=latency_quantile(name) if kind == "latency" else None,
                max=metric.max_psi if kind == "prediction_shift" else high,
                min=low,
                compare=metric.compare == "stable",
                margin=metric.margin_value(),
                query=metric.query,
            )
        )
    return tuple(plans)
