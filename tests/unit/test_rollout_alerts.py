"""Rollouts tell their `alerts:` routes: a rollback (critical, with the failed check), a pause
for a person (warning, with the commands) and a promotion (info, resolving the others), posted
by apprise to a local webhook; an alert that cannot be sent never stops the rollout.

The rollback and the pause are driven through the real controller (`run()`) on a real control
database, with no service running: the readiness check of a rolling step finds nothing at the
service's port and the rollout rolls back, as it would with a dead candidate. A promotion
rebuilds the Bento, so it is driven at the decision boundary (`rollout_decided`, called by the
controller where it records a decision) with the real engine and a compiled plan.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from support import free_port

from shipyard.compiler import Plan, RolloutStep, ServiceStep
from shipyard.compiler.alerts import AlertStep
from shipyard.compiler.services import RoutingPlan
from shipyard.rollouts.controller import Controller
from shipyard.rollouts.notify import rollout_decided
from shipyard.rollouts.state import Interval, Measurement, RolloutState
from shipyard.serving.control import ControlStore

from .specs import compile_text
from .webhook import Webhook

pytestmark = pytest.mark.usefixtures("no_state_dir_override", "quick_retries")

SPEC = """\
project: shop
datasets:
  customers:
    path: data/customers.csv
    schema: {{customer_id: int, tenure: int, churned: bool}}
models:
  churn:
    task: classification
    dataset: customers
    target: churned
    features: [customer_id, tenure]
    estimator: {{class: sklearn.linear_model.LogisticRegression}}
services:
  churn-api:
    model: churn
    port: {port}
    candidates: [challenger]
alerts:
  ops:
    channels: ["json://127.0.0.1:{hook}/ops"]
    min_severity: info
rollouts:
  churn-api:
    strategy: rolling
    rolling: {{replicas: 2}}
    candidate: challenger
    alerts: [ops]
"""


@pytest.fixture
def plan(tmp_path: Path, webhook: Webhook) -> Plan:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "customers.csv").write_text(
        "customer_id,tenure,churned\n1,3,true\n2,40,false\n"
    )
    return compile_text(tmp_path, SPEC.format(port=free_port(), hook=webhook.port))


STEP_SPLIT = RoutingPlan(weights={"stable": 50.0, "challenger": 50.0}, salt="rollout.churn-api")
"""The routing at the first rolling step, where the stored rollout stands."""


def stored_rollout(plan: Plan, command: str | None = None) -> Controller:
    """A controller over a rollout stored at its first rolling step (as an interrupted one is),
    the service's control state at that step's split; `command` as `shipyard rollout` asks."""
    controller = Controller(plan, "churn-api", say=lambda _: None)
    service = controller.service
    ControlStore(service.control_database).change(
        service.service, expected_revision=0, actor="test", action="deploy", reason="test",
        bento="churn-api:test", bundle="/nowhere", routing=STEP_SPLIT,
    )  # fmt: skip
    now = time.time()
    controller.store.replace(
        RolloutState(
            name="churn-api", service="churn-api", strategy="rolling", started_at=now,
            updated_at=now, owner="", candidate_variant="challenger", candidate_version="7",
            stable_version="6", champion_version="6", before=service.routing, phase="stages",
            command=command, command_by="ann" if command else None,
        )
    )  # fmt: skip
    return controller


def test_the_plan_names_the_routes_by_id(plan: Plan) -> None:
    assert plan.step("rollout.churn-api", RolloutStep).alerts == ("alert.ops",)
    assert isinstance(plan.steps["alert.ops"], AlertStep)
    bare = RolloutStep.model_validate(
        {k: v for k, v in plan.steps["rollout.churn-api"].model_dump().items() if k != "alerts"}
    )
    assert bare.alerts == ()  # a plan written before the field still loads


def test_a_rollback_sends_one_critical_alert_naming_the_failed_check(
    plan: Plan, webhook: Webhook
) -> None:
    controller = stored_rollout(plan)
    ended = controller.run()

    assert ended.status == "rolled_back"
    control = ControlStore(controller.service.control_database).read("churn-api")
    assert control is not None and control.routing == controller.service.routing
    [post] = webhook.at("/ops")
    assert post["type"] == "failure"  # apprise's word for critical
    assert post["title"].startswith(
        "rollout churn-api rolled back candidate v7 at replica 1/2: all traffic back on stable "
        "v6: analysis failed: replica 1/2 not taken: readiness check answered HTTP 0"
    )
    assert "source: rollout.churn-api; key: rollout.churn-api/rollback" in post["message"]
    assert "candidate=v7" in post["message"] and "service=churn-api" in post["message"]


def test_a_pause_warns_with_the_commands_and_a_resume_resolves_it(
    plan: Plan, webhook: Webhook
) -> None:
    controller = stored_rollout(plan, command="pause")
    paused = controller.run()

    assert paused.status == "paused"
    [post] = webhook.at("/ops")
    assert post["type"] == "warning"
    assert post["title"] == "rollout churn-api of v7 paused at replica 1/2, waiting for a person"
    assert post["message"].startswith("paused, asked by ann; traffic stays as it is")
    assert "`shipyard rollout resume churn-api` goes on" in post["message"]
    assert "`shipyard rollout abort churn-api` rolls back" in post["message"]
    assert "key: rollout.churn-api/pause" in post["message"]

    Controller(plan, "churn-api", say=lambda _: None).run()  # resumed: then rolls back
    resolved, rollback = webhook.at("/ops")[1:]
    assert resolved["type"] == "success"
    assert resolved["title"].startswith("[RESOLVED] rollout churn-api of v7 paused")
    assert "resuming a paused rollout at replica 1/2" in resolved["message"]
    assert rollback["type"] == "failure"


def test_a_promotion_is_info_and_resolves_the_rollback_of_an_earlier_rollout(
    plan: Plan, webhook: Webhook
) -> None:
    step = plan.step("rollout.churn-api", RolloutStep)
    failed = Measurement(
        name="error_rate", outcome="failed", value=0.31, baseline=0.004, threshold=0.05,
        p_value=1e-9, method="fisher", evidence="error rate 31.0% (93/300) vs stable 0.4%",
    )  # fmt: skip
    earlier = RolloutState(
        name="churn-api", service="churn-api", strategy="rolling", started_at=0.0,
        owner="", candidate_variant="challenger", candidate_version="7", stable_version="6",
        before=plan.step("service.churn-api", ServiceStep).routing, phase="done",
        intervals=[Interval(stage=0, at=1.0, seconds=60, weight=50, requests={}, errors={},
                            measurements=[failed])],
    )  # fmt: skip
    rollout_decided(plan, step, earlier, "rollback", "rolled_back", "analysis failed: ...")
    [rollback] = webhook.at("/ops")
    assert rollback["title"] == (
        "rollout churn-api rolled back candidate v7 at replica 1/2: "
        "error_rate failed: error rate 31.0% (93/300) vs stable 0.4%"
    )

    later = earlier.model_copy(update={"candidate_version": "8", "intervals": []})
    rollout_decided(plan, step, later, "promote", "promoted", "the last stage passed")
    promoted, resolved = webhook.at("/ops")[1:]
    assert promoted["type"] == "info"
    assert promoted["title"] == "rollout churn-api promoted v8 to @champion"
    assert "key: rollout.churn-api/promote" in promoted["message"]
    assert resolved["title"] == f"[RESOLVED] {rollback['title']}"
    assert resolved["message"].startswith("rollout churn-api promoted v8: the last stage passed")


def test_an_unreachable_control_database_is_a_warning_and_the_rollout_goes_on(
    plan: Plan, webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    route = plan.step("alert.ops", AlertStep)
    unreachable = route.model_copy(
        update={"state_database": f"postgresql://nobody@127.0.0.1:{free_port()}/control"}
    )
    plan = plan.model_copy(update={"steps": {**plan.steps, "alert.ops": unreachable}})
    controller = stored_rollout(plan)

    with caplog.at_level(logging.WARNING, "shipyard.alerts"):
        ended = controller.run()

    assert ended.status == "rolled_back"
    assert webhook.at("/ops") == []
    warnings = [r.getMessage() for r in caplog.records if r.name == "shipyard.alerts"]
    assert [w.split(": ")[0] for w in warnings] == [
        "alert 'rollout.churn-api/pause' of rollout.churn-api was not resolved",  # the resume
        "alert 'rollout.churn-api/rollback' of rollout.churn-api was not raised",
    ]
    assert "Connection refused" in warnings[1]
