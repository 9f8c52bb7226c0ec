"""`ab_tests:` -> AbTestStep: the arms, split and statistics the analyze-ab-test flow uses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from shipyard.compiler.plan import FrozenModel, StepBase
from shipyard.compiler.rollouts import MetricPlan, metric_plans
from shipyard.compiler.services import STABLE, ExperimentPlan, ServiceStep
from shipyard.spec import parse_duration
from shipyard.spec.ab_tests import AbMetricSpec, AbTestSpec, Design, parse_target

if TYPE_CHECKING:
    from shipyard.compiler.compile import CompileContext


class ArmPlan(FrozenModel):
    """One arm: the service variant that serves it and the registry reference behind it."""

    name: str
    variant: str = Field(description="The service's variant: stable or a candidate alias.")
    alias: str | None = None
    version: int | None = None
    share: float = Field(description="Share of the test's callers, in %.")

    @property
    def reference(self) -> str:
        return f"version {self.version}" if self.version is not None else f"@{self.alias}"


class AbTestStep(StepBase):
    """analyze-ab-test: join assignments to outcomes, test, check SRM and guardrails, decide."""

    kind: Literal["ab_test"] = "ab_test"
    service: str = Field(description="Id of the service step, e.g. service.churn-api.")
    arms: tuple[ArmPlan, ...] = Field(description="The control first.")
    experiment: ExperimentPlan = Field(description="The routing the test puts in force.")
    metric: AbMetricSpec
    guardrails: tuple[MetricPlan, ...]
    mde: float
    alpha: float
    power: float
    design: Design
    correction: Literal["holm", "bh", "none"]
    cuped_covariate: str | None
    bandit_min_share: float
    bandit_cadence_seconds: float
    max_duration_seconds: float
    on_winner: Literal["promote", "report"]
    srm_threshold: float = 0.001
    alerts: tuple[str, ...] = Field(
        (),
        description="Ids of the alert routes told of a sample-ratio mismatch, harm, a winner "
        "and a stop for no effect.",
    )

    flow: ClassVar[str | None] = "analyze-ab-test"
    parameter: ClassVar[str] = "ab_test"
    noun: ClassVar[str] = "A/B test"


def compile_ab_tests(ctx: CompileContext) -> Iterator[AbTestStep]:
    for name, test in ctx.spec.ab_tests.items():
        service = ctx.step(f"service.{test.service}", ServiceStep)
        yield ab_test_step(name, test, service)


def ab_test_step(name: str, test: AbTestSpec, service: ServiceStep) -> AbTestStep:
    stable = service.variants[0]
    shares = test.shares()
    arms = []
    for arm, reference in test.variants.items():
        is_stable = reference in (stable.alias, stable.version)
        arms.append(
            ArmPlan(
                name=arm,
                variant=STABLE if is_stable else str(reference),
                alias=reference if isinstance(reference, str) else None,
                version=reference if isinstance(reference, int) else None,
                share=shares[arm],
            )
        )
    return AbTestStep(
        id=f"ab_test.{name}",
        name=name,
        description=test.description
        or f"Analyse A/B test '{name}' on service '{service.service}': "
        + " vs ".join(f"{a.name} ({a.reference})" for a in arms)
        + f" on {test.metric.name}, {test.design} design.",
        needs=(service.id,),
        tasks=("exposures", "analyse", "decide"),
        schedule=test.schedule,
        service=service.id,
        arms=tuple(arms),
        experiment=ExperimentPlan(
            name=name,
            salt=f"ab_test.{name}",
            assign_by=test.assign_by,
            target=parse_target(test.target) if test.target else None,
            arms={arm.variant: arm.share for arm in arms},
        ),
        metric=test.metric,
        guardrails=metric_plans(list(test.guardrails)),
        mde=test.mde,
        alpha=test.alpha,
        power=test.power,
        design=test.design,
        correction=test.correction,
        cuped_covariate=test.cuped.covariate if test.cuped else None,
        bandit_min_share=test.bandit.min_share,
        bandit_cadence_seconds=parse_duration(test.bandit.cadence),
        max_duration_seconds=parse_duration(test.max_duration),
        on_winner=test.on_winner,
        alerts=tuple(f"alert.{route}" for route in test.alerts),
    )
