"""compile_plan for `ab_tests:`: arms, the experiment routing, guardrails in base units, the
analyze-ab-test deployment."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.compiler import Plan
from shipyard.compiler.ab_tests import AbTestStep, ArmPlan
from shipyard.compiler.rollouts import MetricPlan
from shipyard.compiler.services import ExperimentPlan, ServiceStep
from shipyard.spec.ab_tests import TargetRule

from .specs import compile_text, replaced

pytestmark = pytest.mark.usefixtures("no_state_dir_override")

SPEC = """\
project: shop
datasets:
  returns:
    path: data/returns.csv
    schema:
      order_id: int
      amount: float
      items: int
      region: {category: [north, east, south]}
      returned: bool
    expectations: [{not_null: order_id}]
models:
  returns:
    task: classification
    dataset: returns
    target: returned
    features: [amount, items, region]
    estimator: {class: sklearn.linear_model.LogisticRegression}
services:
  returns-api:
    model: returns
    candidates: [challenger, canary]
ab_tests:
  returns-test:
    service: returns-api
    variants: {control: champion, treatment: challenger}
    assign_by: items
    metric: {name: returned}
    mde: 0.02
"""

DECLARED = """\
  returns-test:
    description: Does the retrained model cut returns?
    service: returns-api
    variants: {treatment: challenger, control: champion, other: canary}
    allocation: {treatment: 30, control: 50, other: 20}
    assign_by: items
    target: 'region not in ["south"]'
    metric: {name: returned, type: ratio, higher_is_better: false}
    guardrails:
      - {name: error_rate, max: 1%, compare: stable, margin: 0.5%}
      - {name: latency_p99, max: 150ms}
    mde: 0.03
    alpha: 0.01
    power: 0.9
    design: bandit
    correction: bh
    cuped: {covariate: amount}
    bandit: {min_share: 0.2, cadence: 1h}
    schedule: '0 * * * *'
    max_duration: 14d
    on_winner: promote
"""


def plan_of(tmp_path: Path, text: str = SPEC) -> Plan:
    return compile_text(tmp_path, text)


def declared(tmp_path: Path) -> AbTestStep:
    text = SPEC[: SPEC.index("  returns-test:")] + DECLARED
    return plan_of(tmp_path, text).step("ab_test.returns-test", AbTestStep)


def step_of(tmp_path: Path, text: str = SPEC) -> AbTestStep:
    return plan_of(tmp_path, text).step("ab_test.returns-test", AbTestStep)


# --- arms ---------------------------------------------------------------------------------------


def test_arms_control_first_stable_and_candidate_variants_even_shares(tmp_path: Path) -> None:
    step = step_of(tmp_path)
    assert step.arms == (
        ArmPlan(name="control", variant="stable", alias="champion", share=50.0),
        ArmPlan(name="treatment", variant="challenger", alias="challenger", share=50.0),
    )
    assert [arm.reference for arm in step.arms] == ["@champion", "@challenger"]


def test_the_first_arm_is_the_control_even_when_it_is_a_candidate(tmp_path: Path) -> None:
    step = declared(tmp_path)
    assert [(a.name, a.variant, a.share) for a in step.arms] == [
        ("treatment", "challenger", 30.0),
        ("control", "stable", 50.0),
        ("other", "canary", 20.0),
    ]


def test_three_arms_share_evenly_by_default(tmp_path: Path) -> None:
    text = replaced(SPEC, ("treatment: challenger}", "treatment: challenger, other: canary}"))
    shares = [arm.share for arm in step_of(tmp_path, text).arms]
    assert shares == pytest.approx([100 / 3] * 3)


def test_a_pinned_stable_version_is_the_stable_arm(tmp_path: Path) -> None:
    text = replaced(
        SPEC,
        (
            "    candidates: [challenger, canary]\n",
            "    version: 4\n    candidates: [challenger]\n",
        ),
        ("control: champion", "control: 4"),
    )
    step = step_of(tmp_path, text)
    assert step.arms[0] == ArmPlan(name="control", variant="stable", version=4, share=50.0)
    assert step.arms[0].reference == "version 4"
    assert step.experiment.arms == {"stable": 50.0, "challenger": 50.0}


# --- the experiment -----------------------------------------------------------------------------


def test_experiment_plan_has_its_own_salt_and_the_arms_by_variant(tmp_path: Path) -> None:
    step = step_of(tmp_path)
    assert step.experiment == ExperimentPlan(
        name="returns-test",
        salt="ab_test.returns-test",
        assign_by="items",
        target=None,
        arms={"stable": 50.0, "challenger": 50.0},
    )
    service = plan_of(tmp_path).step("service.returns-api", ServiceStep)
    assert step.experiment.salt != service.routing.salt


def test_experiment_plan_parses_the_target(tmp_path: Path) -> None:
    step = declared(tmp_path)
    assert step.experiment.target == TargetRule(field="region", op="not in", values=("south",))
    assert step.experiment.arms == {"challenger": 30.0, "stable": 50.0, "canary": 20.0}


def test_the_service_routing_has_no_experiment_until_a_test_starts(tmp_path: Path) -> None:
    service = plan_of(tmp_path).step("service.returns-api", ServiceStep)
    assert service.routing.experiment is None


# --- statistics and guardrails ------------------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    step = step_of(tmp_path)
    assert step.guardrails == ()
    assert (step.mde, step.alpha, step.power, step.design, step.correction) == (
        0.02,
        0.05,
        0.8,
        "sequential",
        "holm",
    )
    assert (step.cuped_covariate, step.bandit_min_share, step.bandit_cadence_seconds) == (
        None,
        0.1,
        900.0,
    )
    assert (step.max_duration_seconds, step.on_winner, step.srm_threshold) == (
        30 * 86400.0,
        "report",
        0.001,
    )
    assert (step.metric.name, step.metric.type, step.metric.higher_is_better) == (
        "returned",
        "binary",
        True,
    )
    assert step.service == "service.returns-api"
    assert step.needs == ("service.returns-api",)
    assert step.description.startswith(
        "Analyse A/B test 'returns-test' on service 'returns-api': control (@champion) vs "
        "treatment (@challenger) on returned, sequential design"
    )


def test_declared_values_and_guardrails_in_base_units(tmp_path: Path) -> None:
    step = declared(tmp_path)
    assert step.guardrails == (
        MetricPlan(name="error_rate", kind="error_rate", max=0.01, compare=True, margin=0.005),
        MetricPlan(name="latency_p99", kind="latency", quantile=0.99, max=0.15, margin=1.0),
    )
    assert (step.mde, step.alpha, step.power, step.design, step.correction) == (
        0.03,
        0.01,
        0.9,
        "bandit",
        "bh",
    )
    assert (step.cuped_covariate, step.bandit_min_share, step.bandit_cadence_seconds) == (
        "amount",
        0.2,
        3600.0,
    )
    assert (step.max_duration_seconds, step.on_winner) == (14 * 86400.0, "promote")
    assert step.metric.type == "ratio" and step.metric.higher_is_better is False
    assert step.description == "Does the retrained model cut returns?"


# --- the deployment -----------------------------------------------------------------------------


def test_the_analyze_ab_test_deployment_runs_on_its_schedule(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    deployment = plan.deployment("analyze-ab-test", "returns-test")
    assert deployment is not None
    assert "analyze-ab-test/returns-test" in plan.deployments
    assert deployment.step == "ab_test.returns-test"
    assert deployment.parameters == {"ab_test": "returns-test"}
    assert deployment.schedule == "*/15 * * * *"
    assert plan.deployment_of("ab_test.returns-test") == deployment


def test_a_declared_schedule_is_the_deployments(tmp_path: Path) -> None:
    text = SPEC[: SPEC.index("  returns-test:")] + DECLARED
    deployment = plan_of(tmp_path, text).deployment("analyze-ab-test", "returns-test")
    assert deployment is not None and deployment.schedule == "0 * * * *"
    assert deployment.entrypoint.endswith(":analyze_ab_test")
