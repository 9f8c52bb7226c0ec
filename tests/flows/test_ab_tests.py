"""An A/B test on a real served service: the split is sticky and logged, outcomes arrive as
feedback, the analyze-ab-test flow finds the better arm, stops the test and reports it.

One module-scoped project: the churn model trained twice (v1 @champion, v2 @challenger), served
with the challenger beside stable. Simulated callers: each predicts once, and its outcome is
drawn with a higher rate in the treatment arm.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import ROOT, SPEC, compile_spec, free_port, run_flow

from shipyard.compiler import Plan, ServiceStep

pytestmark = pytest.mark.usefixtures("prefect_harness")

MODEL = "test-project.churn"
REST = """
models:
  churn:
    task: classification
    dataset: customers
    target: churned
    features: [customer_id, tenure_months, monthly_charges]
    train: support_models:train_logistic
    gate:
      roc_auc: ">= 0.4"
services:
  churn-api:
    model: churn
    candidates: [challenger]
    port: {port}
    auth:
      api_keys:
        app: {{key: "${{secret:ab-app-key}}", roles: [predict, feedback, admin]}}
ab_tests:
  churn-v2:
    service: churn-api
    variants: {{control: champion, treatment: challenger}}
    assign_by: customer_id
    metric: {{name: retained, type: binary}}
    mde: 0.1
    design: sequential
    guardrails: [{{name: error_rate, max: 5%}}]
"""
KEY = "ab-key-0123456789"
APP = {"Authorization": f"Bearer {KEY}"}
RATES = {"stable": 0.3, "challenger": 0.6}


@dataclass
class Served:
    folder: Path
    plan: Plan
    url: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[Served]:
    import mlflow

    from flows.build_service import build_service
    from flows.train_model import train_model
    from shipyard.demo_data import write_customers
    from shipyard.serving import deploy

    folder = tmp_path_factory.mktemp("abtests")
    (folder / "pipelines.yaml").write_text(
        SPEC.format(port=free_port()) + REST.format(port=free_port())
    )
    write_customers(folder / "data" / "customers.parquet", rows=400)
    patch = pytest.MonkeyPatch()
    patch.setenv("SHIPYARD_SECRET_AB_APP_KEY", KEY)
    patch.setenv("PYTHONPATH", f"{ROOT / 'tests'}:{ROOT}")  # the model's class, for the workers
    plan = compile_spec(folder / "pipelines.yaml")
    for _ in range(2):
        assert run_flow(plan, train_model, model="churn", force=True).is_completed()
    mlflow.set_tracking_uri(plan.blocks.mlflow.tracking_uri)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(MODEL, "champion", "1")
    client.set_registered_model_alias(MODEL, "challenger", "2")
    step = plan.named(ServiceStep, "churn-api")
    try:
        assert run_flow(plan, build_service, service="churn-api").is_completed()
        yield Served(folder, plan, deploy.base_url(step))
    finally:
        deploy.stop(step)
        patch.undo()


def _row(customer: int) -> dict[str, Any]:
    return {"customer_id": customer, "tenure_months": customer % 60, "monthly_charges": 50.0}


def _experiment(plan: Plan) -> Any:
    from shipyard.serving.control import ControlStore

    store = ControlStore(plan.named(ServiceStep, "churn-api").control_database)
    try:
        state = store.read("churn-api")
    finally:
        store.close()
    assert state is not None
    return state.routing.experiment


def test_the_split_is_sticky_logged_and_decided_by_the_flow(served: Served) -> None:
    from flows.analyze_ab_test import analyze_ab_test
    from shipyard.abtests.exposure import read_exposures
    from shipyard.abtests.runner import AbTest
    from shipyard.cli import main

    test = AbTest(served.plan, "churn-v2")
    test.start()
    assert _experiment(served.plan) is not None
    rng = random.Random(7)
    arms: dict[int, str] = {}
    with httpx.Client(base_url=served.url, headers=APP, timeout=30) as client:
        assert _served_variants(client) == {"stable", "challenger"}
        deadline = time.monotonic() + 30
        while client.get("/info").json()["routing"].get("experiment") is None:
            assert time.monotonic() < deadline, "the workers never took the test's split"
            time.sleep(0.1)  # workers poll the control state twice a second
        for customer in range(1, 601):
            answer = client.post("/predict", json=_row(customer))
            assert answer.status_code == 200, answer.text
            [prediction] = answer.json()["predictions"]
            assert prediction["experiment"] == "churn-v2"
            arms[customer] = prediction["variant"]
            again = client.post("/predict", json=_row(customer)).json()["predictions"][0]
            assert again["variant"] == arms[customer], "a caller keeps its arm"
            outcome = rng.random() < RATES[prediction["variant"]]
            feedback = client.post(
                "/feedback", json={"request_id": answer.json()["request_id"], "outcome": outcome}
            )
            assert feedback.status_code == 200, feedback.text
    shares = sum(v == "challenger" for v in arms.values()) / len(arms)
    assert 0.4 < shares < 0.6, shares
    step = test.service

    def exposed() -> int:
        found = read_exposures(
            step.log_database, "churn-api", "churn-v2", "ab_test.churn-v2", "customer_id",
            0.0, "binary",
        )  # fmt: skip
        return sum(a.measured for a in found.arms.values())

    deadline = time.monotonic() + 60
    while exposed() < 600 and time.monotonic() < deadline:
        time.sleep(0.5)  # the log writes in batches, a second or so behind
    assert exposed() == 600

    state = run_flow(served.plan, analyze_ab_test, ab_test="churn-v2")
    assert state.is_completed(), state
    result = state.result()
    assert result.decision == "winner" and result.winner == "treatment", result
    assert result.status == "stopped"
    assert sum(result.callers.values()) == 600
    assert _experiment(served.plan) is None, "a decided test hands every caller back"
    folder = Path(served.plan.runtime.state_dir) / "abtests" / "churn-v2"
    assert (folder / "report.png").stat().st_size > 10_000
    assert "stop: a winner" in (folder / "report.html").read_text()

    # a stopped test analysed again: the same result, nothing moves
    assert main(["-f", str(served.folder / "pipelines.yaml"), "abtest", "report", "churn-v2",
                 "--format", "json"]) == 0  # fmt: skip


def _served_variants(client: httpx.Client) -> set[str]:
    info = client.get("/info").json()
    return {v["name"] for v in info["variants"]}


def test_report_json_of_a_stopped_test(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    from shipyard.cli import main

    assert main(["-f", str(served.folder / "pipelines.yaml"), "abtest", "report", "churn-v2",
                 "--format", "json"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["schema"] == "shipyard.abtest.report/1"
    assert report["decision"] == "winner" and report["winner"] == "treatment"
    [control, treatment] = report["arms"]
    assert control["units"] + treatment["units"] == 600
    assert treatment["mean"] > control["mean"]
    assert report["srm"]["mismatch"] is False


def _simulate(served: Served, customers: range, rates: dict[str, float], seed: int) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=served.url, headers=APP, timeout=30) as client:
        deadline = time.monotonic() + 30
        while client.get("/info").json()["routing"].get("experiment") is None:
            assert time.monotonic() < deadline, "the workers never took the test's split"
            time.sleep(0.1)
        for customer in customers:
            answer = client.post("/predict", json=_row(customer)).json()
            variant = answer["predictions"][0]["variant"]
            outcome = rng.random() < rates[variant]
            client.post("/feedback", json={"request_id": answer["request_id"], "outcome": outcome})
    time.sleep(2)  # the log writes in batches


def _recompiled(served: Served, old: str, new: str) -> Plan:
    spec = served.folder / "pipelines.yaml"
    spec.write_text(spec.read_text().replace(old, new))
    return compile_spec(spec)


BANDIT = "design: bandit\n    bandit: {min_share: 0.2, cadence: 1s}"


def test_a_bandit_moves_traffic_through_the_control_state_within_bounds(served: Served) -> None:
    from shipyard.abtests.runner import AbTest

    plan = _recompiled(
        served, "design: sequential", "design: bandit\n    bandit: {min_share: 0.2, cadence: 1s}"
    )
    test = AbTest(plan, "churn-v2")
    test.start()
    assert _experiment(plan).arms == {"stable": 50.0, "challenger": 50.0}
    # equal arms: no arm is ever 95% sure to be best, so the bandit only moves traffic
    _simulate(served, range(1001, 1301), {"stable": 0.5, "challenger": 0.5}, seed=3)
    state, report = test.look()
    assert state.status == "running" and report.decision == "keep_running", report.reason
    arms = _experiment(plan).arms
    assert arms == report.shares and arms != {"stable": 50.0, "challenger": 50.0}
    assert min(arms.values()) >= 20 - 1e-9 and sum(arms.values()) == pytest.approx(100, abs=0.05)
    assert state.bandit_updated_at is not None
    test.stop("no_effect", "test over")
    assert _experiment(plan) is None


def test_on_winner_promote_makes_the_winner_champion_and_serves_it(served: Served) -> None:
    import mlflow

    from flows.analyze_ab_test import analyze_ab_test
    from shipyard.abtests.runner import AbTest

    plan = _recompiled(served, BANDIT, "design: sequential\n    on_winner: promote")
    AbTest(plan, "churn-v2").start()
    _simulate(served, range(2001, 2601), {"stable": 0.2, "challenger": 0.6}, seed=4)
    state = run_flow(plan, analyze_ab_test, ab_test="churn-v2")
    assert state.is_completed(), state
    assert state.result().winner == "treatment"
    client = mlflow.MlflowClient()
    model = client.get_registered_model(MODEL)
    assert str(model.aliases["champion"]) == "2"
    assert str(model.aliases["previous-champion"]) == "1"
    info = httpx.get(served.url + "/info", headers=APP, timeout=10).json()
    stable = next(v for v in info["variants"] if v["name"] == "stable")
    assert str(stable["version"]) == "2", info
