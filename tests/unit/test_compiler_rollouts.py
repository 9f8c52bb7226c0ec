"""compile_plan for `rollouts:`: stages per strategy, metrics in base units, routing, deployment."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.compiler import Plan, RolloutStep
from shipyard.compiler.rollouts import MetricPlan, StagePlan, candidate_variant
from shipyard.compiler.services import VariantRef
from shipyard.spec.services import RouteRule

from .specs import compile_text, replaced

pytestmark = pytest.mark.usefixtures("no_state_dir_override")

SPEC = """\
project: churn-demo
datasets:
  customers:
    path: data/customers.parquet
    timestamp: event_time
    schema:
      customer_id: int
      event_time: datetime
      plan: {category: [basic, pro]}
      tenure: int
      charges: float
      churned: bool
    expectations: [{not_null: customer_id}]
models:
  churn:
    task: classification
    dataset: customers
    target: churned
    features: [plan, tenure, charges]
    estimator: {class: sklearn.linear_model.LogisticRegression}
services:
  churn-api:
    model: churn
    candidates: [challenger]
    workers: 3
    routing: {sticky_key: tenure}
  churn-b:
    model: churn
    port: 3001
rollouts:
  churn-api: {}
"""

DECLARED = """\
  churn-api:
    description: Move to the retrained model.
    candidate: challenger
    steps:
      - {weight: 5, duration: 2m}
      - {weight: 25, min_requests: 500}
      - {weight: 60, duration: 10m, min_requests: 1000}
    sticky_key: plan
    rules:
      - {field: plan, equals: pro}
      - {header: x-tenant, in: [beta, internal]}
    analysis:
      interval: 2m
      failure_limit: 1
      inconclusive_limit: 2
      inconclusive: rollback
      alpha: 0.01
      min_requests: 200
      metrics:
        - {name: error_rate, max: 1%, compare: stable, margin: 0.5%}
        - {name: latency_p99, max: 150ms}
        - {name: latency_p999, max: 1s, compare: stable}
        - {name: latency_p50, max: 0.02, compare: stable, margin: 1.5}
        - {name: prediction_shift, max_psi: 0.2}
        - {query: 'sum(rate(x{variant="{{variant}}"}[1m]))', min: 0.5}
    smoke_requests: 20
    on_success: pause
    on_failure: pause
"""
PROMETHEUS = "profiles:\n  local: {prometheus: {url: 'http://127.0.0.1:9090'}}\n"


def plan_of(tmp_path: Path, rollouts: str = "  churn-api: {}\n", prometheus: bool = False) -> Plan:
    text = replaced(SPEC, ("  churn-api: {}\n", rollouts))
    if prometheus:
        text = replaced(text, ("project: churn-demo\n", "project: churn-demo\n" + PROMETHEUS))
    return compile_text(tmp_path, text)


def rollout(plan: Plan, name: str = "churn-api") -> RolloutStep:
    return plan.named(RolloutStep, name)


# --- the step and its deployment ---------------------------------------------------------------


def test_each_rollout_compiles_to_a_step_after_its_service(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "  churn-api: {}\n  blue: {service: churn-b, candidate: 7}\n")
    assert [s.id for s in plan.steps_of(RolloutStep)] == ["rollout.churn-api", "rollout.blue"]
    step = rollout(plan)
    assert (step.name, step.service, step.needs) == (
        "churn-api",
        "service.churn-api",
        ("service.churn-api",),
    )
    assert step.tasks == ("load", "smoke-test", "walk", "decide")
    assert rollout(plan, "blue").service == "service.churn-b"
    assert step.description == (
        "Roll alias @challenger of model 'churn' out to service 'churn-api' (canary), "
        "under analysis."
    )


def test_the_roll_out_deployment_runs_the_rollout(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    deployment = plan.deployment("roll-out", "churn-api")
    assert deployment is not None
    assert "roll-out/churn-api" in plan.deployments
    assert deployment.step == "rollout.churn-api"
    assert deployment.parameters == {"rollout": "churn-api"}
    assert deployment.entrypoint == "flows/roll_out.py:roll_out"
    assert "rollout.churn-api" in deployment.tags
    assert plan.deployment_of("rollout.churn-api") == deployment


def test_defaults(tmp_path: Path) -> None:
    step = rollout(plan_of(tmp_path))
    assert (step.strategy, step.interval_seconds, step.alpha, step.min_requests) == (
        "canary",
        60.0,
        0.05,
        50,
    )
    assert (step.failure_limit, step.inconclusive_limit, step.inconclusive) == (0, 0, "pause")
    assert (step.smoke_requests, step.on_success, step.on_failure) == (5, "promote", "rollback")
    assert step.prometheus_url is None
    assert step.rules == ()


def test_declared_settings_are_carried_over(tmp_path: Path) -> None:
    step = rollout(plan_of(tmp_path, DECLARED, prometheus=True))
    assert step.description == "Move to the retrained model."
    assert (step.interval_seconds, step.alpha, step.min_requests) == (120.0, 0.01, 200)
    assert (step.failure_limit, step.inconclusive_limit, step.inconclusive) == (1, 2, "rollback")
    assert (step.smoke_requests, step.on_success, step.on_failure) == (20, "pause", "pause")
    assert step.prometheus_url == "http://127.0.0.1:9090"


# --- stages ------------------------------------------------------------------------------------


def test_canary_default_stages_are_10_then_50_percent_for_5_minutes(tmp_path: Path) -> None:
    assert rollout(plan_of(tmp_path)).stages == (
        StagePlan(weight=10, duration_seconds=300, label="canary 10%"),
        StagePlan(weight=50, duration_seconds=300, label="canary 50%"),
    )


def test_canary_declared_stages(tmp_path: Path) -> None:
    assert rollout(plan_of(tmp_path, DECLARED, prometheus=True)).stages == (
        StagePlan(weight=5, duration_seconds=120, min_requests=None, label="canary 5%"),
        StagePlan(weight=25, duration_seconds=None, min_requests=500, label="canary 25%"),
        StagePlan(weight=60, duration_seconds=600, min_requests=1000, label="canary 60%"),
    )


def test_fractional_weights_label_without_trailing_zeros(tmp_path: Path) -> None:
    text = "  churn-api:\n    steps: [{weight: 2.5, duration: 1m}, {weight: 100, duration: 1m}]\n"
    stages = rollout(plan_of(tmp_path, text)).stages
    assert [(s.weight, s.label) for s in stages] == [(2.5, "canary 2.5%"), (100, "canary 100%")]


def test_blue_green_is_one_switch_held_for_keep_previous(tmp_path: Path) -> None:
    default = rollout(plan_of(tmp_path, "  churn-api: {strategy: blue_green}\n"))
    assert default.stages == (StagePlan(weight=100, duration_seconds=600, label="switched"),)
    text = "  churn-api:\n    strategy: blue_green\n    blue_green: {keep_previous: 30m}\n"
    held = rollout(plan_of(tmp_path, text))
    assert held.stages == (StagePlan(weight=100, duration_seconds=1800, label="switched"),)
    assert held.description is not None and "(blue-green)" in held.description


def test_rolling_moves_one_workers_share_at_a_time_by_default(tmp_path: Path) -> None:
    step = rollout(plan_of(tmp_path, "  churn-api: {strategy: rolling}\n"))
    assert step.stages == (
        StagePlan(weight=33.33, duration_seconds=60, label="replica 1/3"),
        StagePlan(weight=66.67, duration_seconds=60, label="replica 2/3"),
        StagePlan(weight=100, duration_seconds=60, label="replica 3/3"),
    )


def test_rolling_with_declared_replicas(tmp_path: Path) -> None:
    text = "  churn-api:\n    strategy: rolling\n    rolling: {replicas: 4, step_duration: 2m}\n"
    stages = rollout(plan_of(tmp_path, text)).stages
    assert [(s.weight, s.duration_seconds, s.label) for s in stages] == [
        (25, 120, "replica 1/4"),
        (50, 120, "replica 2/4"),
        (75, 120, "replica 3/4"),
        (100, 120, "replica 4/4"),
    ]
    single = rollout(plan_of(tmp_path, "  blue: {service: churn-b, strategy: rolling}\n"), "blue")
    assert [(s.weight, s.label) for s in single.stages] == [(100, "replica 1/1")]


# --- metrics -----------------------------------------------------------------------------------


def test_default_metrics_in_base_units(tmp_path: Path) -> None:
    assert rollout(plan_of(tmp_path)).metrics == (
        MetricPlan(name="error_rate", kind="error_rate", max=0.01, compare=True, margin=0.0),
        MetricPlan(
            name="latency_p99", kind="latency", quantile=0.99, max=0.5, compare=True, margin=1.0
        ),
    )


def test_declared_metrics_in_base_units(tmp_path: Path) -> None:
    metrics = rollout(plan_of(tmp_path, DECLARED, prometheus=True)).metrics
    assert metrics == (
        MetricPlan(name="error_rate", kind="error_rate", max=0.01, compare=True, margin=0.005),
        MetricPlan(name="latency_p99", kind="latency", quantile=0.99, max=0.15, margin=1.0),
        MetricPlan(
            name="latency_p999", kind="latency", quantile=0.999, max=1.0, compare=True, margin=1.0
        ),
        MetricPlan(
            name="latency_p50", kind="latency", quantile=0.5, max=0.02, compare=True, margin=1.5
        ),
        MetricPlan(name="prediction_shift", kind="prediction_shift", max=0.2),
        MetricPlan(
            name="query_6",
            kind="query",
            min=0.5,
            query='sum(rate(x{variant="{{variant}}"}[1m]))',
        ),
    )
    assert metrics[0].max == pytest.approx(0.01) and metrics[1].max == pytest.approx(0.15)


def test_a_bare_number_is_a_fraction_and_seconds(tmp_path: Path) -> None:
    text = (
        "  churn-api:\n    analysis:\n      metrics:\n"
        "        - {name: error_rate, max: 0.02}\n"
        "        - {name: latency_p90, max: 0.25}\n"
        "        - {name: latency_p95, max: 2s}\n"
    )
    metrics = rollout(plan_of(tmp_path, text)).metrics
    assert [(m.name, m.quantile, m.max, m.compare) for m in metrics] == [
        ("error_rate", None, 0.02, False),
        ("latency_p90", 0.9, 0.25, False),
        ("latency_p95", 0.95, 2.0, False),
    ]


# --- routing -----------------------------------------------------------------------------------


def test_an_alias_candidate_is_a_variant_of_its_name(tmp_path: Path) -> None:
    step = rollout(plan_of(tmp_path))
    assert step.candidate == VariantRef(name="challenger", alias="challenger")
    assert candidate_variant("shadow") == VariantRef(name="shadow", alias="shadow")


def test_a_version_candidate_is_variant_v_n(tmp_path: Path) -> None:
    step = rollout(plan_of(tmp_path, "  churn-api: {candidate: 7}\n"))
    assert step.candidate == VariantRef(name="v7", version=7)
    assert step.candidate.reference == "version 7"
    assert step.description is not None and step.description.startswith("Roll version 7 ")
    assert candidate_variant(12) == VariantRef(name="v12", alias=None, version=12)


def test_rules_send_their_requests_to_the_candidate(tmp_path: Path) -> None:
    step = rollout(plan_of(tmp_path, DECLARED, prometheus=True))
    assert step.rules == (
        RouteRule.model_validate({"field": "plan", "equals": "pro", "variant": "challenger"}),
        RouteRule.model_validate(
            {"header": "x-tenant", "in": ["beta", "internal"], "variant": "challenger"}
        ),
    )
    pinned = replaced(DECLARED, ("candidate: challenger", "candidate: 9"))
    assert {r.variant for r in rollout(plan_of(tmp_path, pinned, prometheus=True)).rules} == {"v9"}


def test_the_salt_is_the_rollouts_own(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "  churn-api: {}\n  blue: {service: churn-b}\n")
    assert rollout(plan).salt == "rollout.churn-api"
    assert rollout(plan, "blue").salt == "rollout.blue"


def test_the_sticky_key_defaults_to_the_services(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "  churn-api: {}\n  blue: {service: churn-b}\n")
    assert rollout(plan).sticky_key == "tenure"
    assert rollout(plan, "blue").sticky_key is None
    assert rollout(plan_of(tmp_path, DECLARED, prometheus=True)).sticky_key == "plan"
