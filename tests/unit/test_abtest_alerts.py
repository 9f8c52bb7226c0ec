"""A/B tests tell their `alerts:` routes what a look decided: a sample-ratio mismatch stops the
test with one critical alert, and a later clean look (the test started again) resolves it;
winners and stops for no effect are info. Driven through the real runner (`AbTest.look`) on a
prediction log and a control database in a temporary project, with apprise posting to a local
webhook; no service runs (the test has no guardrails, which are read from the service)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from shipyard.abtests.analysis import AbTestReport
from shipyard.abtests.notify import look_decided
from shipyard.abtests.runner import AbTest
from shipyard.abtests.state import AbTestState
from shipyard.compiler import Plan, ServiceStep
from shipyard.compiler.ab_tests import AbTestStep
from shipyard.serving.control import ControlStore
from shipyard.serving.predlog import PredictionLog
from shipyard.serving.router import unit_id
from shipyard.stats.abtest import SrmResult

from .specs import compile_text
from .webhook import Webhook

pytestmark = pytest.mark.usefixtures("no_state_dir_override", "quick_retries")

SPEC = """\
project: shop
datasets:
  customers:
    path: data/customers.parquet
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
    candidates: [challenger]
alerts:
  ops:
    channels: ["json://127.0.0.1:{hook}/ops"]
    min_severity: info
ab_tests:
  churn-v2:
    service: churn-api
    variants: {{control: champion, treatment: challenger}}
    assign_by: customer_id
    metric: {{name: retained, type: binary}}
    mde: 0.05
    alerts: [ops]
"""


@pytest.fixture
def plan(tmp_path: Path, webhook: Webhook) -> Plan:
    return compile_text(tmp_path, SPEC.format(hook=webhook.port))


def started(plan: Plan, at: float) -> AbTest:
    """The test as `shipyard abtest start` leaves it: its split in the service's control
    state (seeded here, as a deploy would), its state running since `at`."""
    test = AbTest(plan, "churn-v2")
    control = ControlStore(test.service.control_database)
    routing = test.service.routing.model_copy(update={"experiment": test.step.experiment})
    revision = control.revision(test.service.service)
    control.change(
        test.service.service, expected_revision=revision, actor="test", action="ab-test",
        reason="start", bento="churn-api:test", bundle="/nowhere", routing=routing,
    )  # fmt: skip
    state = AbTestState(name="churn-v2", service="churn-api", started_at=at, started_by="me")
    test.store.replace(state) if test.state() else test.store.save(state)
    return test


def callers(plan: Plan, stable: int, challenger: int, at: float) -> None:
    """Predictions the test assigned: `stable` callers in control, `challenger` in treatment."""
    test = plan.step("ab_test.churn-v2", AbTestStep)
    service = plan.step(test.service, ServiceStep)
    log = PredictionLog(service.log_database, "churn-api")
    for n in range(stable + challenger):
        variant = "stable" if n < stable else "challenger"
        unit = unit_id(test.experiment.salt, f"{at}-{n}")
        output = {"prediction": 1, "experiment": "churn-v2", "unit": unit}
        log.log_prediction(f"r-{at}-{n}", variant, "1", {"customer_id": n}, output, at=at + 1)
    log.close()


def test_the_plan_names_the_routes_by_id(plan: Plan) -> None:
    assert plan.step("ab_test.churn-v2", AbTestStep).alerts == ("alert.ops",)


def test_a_sample_ratio_mismatch_stops_the_test_with_one_critical_alert(
    plan: Plan, webhook: Webhook
) -> None:
    now = time.time()
    test = started(plan, now - 100)
    callers(plan, stable=500, challenger=100, at=now - 90)

    state, report = test.look()

    assert state.status == "stopped" and report.decision == "sample_ratio_mismatch"
    control = ControlStore(test.service.control_database).read("churn-api")
    assert control is not None and control.routing.experiment is None  # the split is gone
    [post] = webhook.at("/ops")
    assert post["type"] == "failure"
    assert post["title"].startswith(
        "A/B test churn-v2 stopped for sample ratio mismatch: sample ratio mismatch: callers "
        "control 500, treatment 100 against an expected 300, 300"
    )
    assert "key: ab_test.churn-v2/sample_ratio_mismatch" in post["message"]
    assert "labels: decision=sample_ratio_mismatch, service=churn-api" in post["message"]

    test.look()  # a stopped test keeps how it ended: nothing more is sent
    assert len(webhook.at("/ops")) == 1

    test = started(plan, now - 50)  # fixed, and started again
    callers(plan, stable=300, challenger=300, at=now - 40)
    state, report = test.look()

    assert state.status == "running" and report.decision == "keep_running"
    resolved = webhook.at("/ops")[1:]
    assert [p["title"] for p in resolved] == [f"[RESOLVED] {post['title']}"]
    assert resolved[0]["message"].startswith("A/B test churn-v2: a later look found keep_running: ")


@pytest.mark.parametrize(
    ("decision", "winner", "title"),
    [
        ("winner", "treatment", "A/B test churn-v2 stopped: arm 'treatment' won on retained"),
        ("no_effect", None, "A/B test churn-v2 stopped for no effect on retained"),
    ],
)
def test_a_winner_or_no_effect_is_info(
    plan: Plan, webhook: Webhook, decision: str, winner: str | None, title: str
) -> None:
    report = AbTestReport(
        test="churn-v2", design="sequential", metric="retained", arms=[],
        srm=SrmResult("ok", 0.1, 1, 0.75, False, (300.0, 300.0), 0.001), guardrails=[],
        decision=decision, reason="treatment +4.1 pts (p=0.002)", winner=winner,  # type: ignore[arg-type]
        needed_per_arm=None, elapsed_seconds=3600.0,
    )  # fmt: skip
    look_decided(plan, plan.step("ab_test.churn-v2", AbTestStep), report)
    [post] = webhook.at("/ops")
    assert post["type"] == "info"
    assert post["title"] == title
    assert post["message"].startswith("treatment +4.1 pts (p=0.002)\n")
    assert f"key: ab_test.churn-v2/{decision}" in post["message"]
