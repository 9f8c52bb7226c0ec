"""The monitor's step and its judgement of a window, without servers: a reference profile
built from demo data, windows made from it (same, drifted, with a column missing, too small),
and the compiled MonitorStep of a real spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shipyard.compiler import Plan
from shipyard.compiler.monitoring import PREDICTION, MonitorStep
from shipyard.demo_data import customers_frame
from shipyard.monitoring.actions import conditions
from shipyard.monitoring.judge import judge_window
from shipyard.monitoring.reference import build_reference
from shipyard.monitoring.report import text
from shipyard.monitoring.window import Scored, Window
from shipyard.serving.masking import MASK
from shipyard.stats.drift import DriftProfile

from .specs import compile_text

FEATURES = ["region", "plan", "tenure_months", "monthly_charges", "support_calls", "data_usage_gb"]
SPEC = """
project: mon
datasets:
  customers:
    path: data/customers.parquet
    key: [customer_id, event_time]
    timestamp: event_time
    schema:
      customer_id: int
      event_time: datetime
      region: {category: [north, south, east, west]}
      plan: {category: [basic, plus, pro]}
      tenure_months: int
      monthly_charges: float
      support_calls: int
      data_usage_gb: float
      churned: bool
    expectations:
      - between: {column: monthly_charges, min: 0, max: 500}
      - not_null: [plan]
      - row_count: {min: 100}
models:
  churn:
    task: classification
    dataset: customers
    target: churned
    features: [region, plan, tenure_months, monthly_charges, support_calls, data_usage_gb]
    estimator: {class: sklearn.linear_model.LogisticRegression}
services:
  churn-api:
    model: churn
    auth: {api_keys: {app: {key: "${secret:k}"}}}
alerts:
  oncall: {channels: ["json://127.0.0.1:9/hook"]}
monitoring:
  churn-api:
    min_rows: 100
    drift:
      per_feature:
        monthly_charges: {statistic: wasserstein, threshold: 0.3}
        plan: {statistic: js}
    performance: {metric: roc_auc, min: 0.7, min_labels: 50}
    on_drift: [alert, retrain]
    alerts: [oncall]
"""


@pytest.fixture(scope="module")
def step(tmp_path_factory: pytest.TempPathFactory) -> MonitorStep:
    plan: Plan = compile_text(tmp_path_factory.mktemp("mon"), SPEC)
    return plan.named(MonitorStep, "churn-api")


@pytest.fixture(scope="module")
def profile() -> DriftProfile:
    frame = customers_frame(4000, seed=1)
    rng = np.random.default_rng(0)
    return build_reference(
        {f: frame[f] for f in FEATURES}, ["region", "plan"], rng.beta(2, 5, len(frame))
    )


def window_of(frame: Any, drop: tuple[str, ...] = (), mask: tuple[str, ...] = ()) -> Window:
    """A window as read_window builds it from logged rows."""
    window = Window(start=0.0, end=3600.0)
    window.columns = {f: [] for f in FEATURES}
    rng = np.random.default_rng(1)
    outputs: list[Any] = []
    for n, row in enumerate(frame[[*FEATURES, "churned"]].to_dict("records")):
        window.rows += 1
        for f in FEATURES:
            if f in drop:
                window.columns[f].append(None)
                continue
            value = MASK if f in mask else row[f]
            if value == MASK:
                window.masked.add(f)
                value = None
            window.seen.add(f) if f not in mask else None
            window.columns[f].append(value.item() if hasattr(value, "item") else value)
        p = float(rng.beta(2, 5))
        outputs.append(p)
        window.scored[f"r{n}"] = Scored("stable", bool(row["churned"]), p)
        window.labels[f"r{n}"] = bool(row["churned"])
    window.outputs = {"stable": outputs}
    return window


def test_the_step_judges_each_feature_by_a_statistic_that_suits_it(step: MonitorStep) -> None:
    by_name = {f.name: f for f in step.features}
    assert by_name["monthly_charges"].statistic == "wasserstein"
    assert by_name["monthly_charges"].threshold == 0.3
    assert by_name["plan"].statistic == "js" and by_name["plan"].categorical
    assert by_name["region"].statistic == "psi"
    # only rules on model inputs apply to a window: not the file's row count
    assert {e.rule for e in step.expectations} >= {"not_null(plan)"}
    assert not any(e.type.startswith("expect_table") for e in step.expectations)
    assert step.training_deployment == "train-model/churn"
    assert step.alerts == ("alert.oncall",)
    assert step.schedule == "*/15 * * * *"


def test_a_window_like_the_reference_does_not_drift(step: MonitorStep, profile: Any) -> None:
    window = window_of(customers_frame(2000, seed=2).sample(600, random_state=2))
    found = judge_window(step, {"stable": profile}, window)
    assert found.problems == []
    assert found.drifted == [], text(step, found)
    assert found.status(step.drift_share) in ("ok", "degraded")
    assert found.prediction_drift["stable"].drifted is False


def test_a_drifted_window_drifts_and_raises_the_drift_alert(
    step: MonitorStep, profile: Any
) -> None:
    window = window_of(customers_frame(2000, seed=3, drift=1.0).sample(600, random_state=3))
    found = judge_window(step, {"stable": profile}, window)
    assert {"support_calls", "data_usage_gb", "plan"} <= set(found.drifted)
    assert found.status(step.drift_share) == "drift"
    firing = {c.key for c in conditions(step, found) if c.firing}
    assert "monitor.churn-api/drift" in firing
    assert "monitor.churn-api/monitoring" not in firing
    assert "DRIFT" in text(step, found)


def test_a_column_missing_from_live_data_is_a_problem_not_a_pass(
    step: MonitorStep, profile: Any
) -> None:
    frame = customers_frame(2000, seed=2).sample(600, random_state=2)
    found = judge_window(step, {"stable": profile}, window_of(frame, drop=("data_usage_gb",)))
    assert any("data_usage_gb missing from live data" in p for p in found.problems)
    assert found.drift is not None and "data_usage_gb" not in found.drift.columns
    masked = judge_window(step, {"stable": profile}, window_of(frame, mask=("region",)))
    assert any("masked by `logging.mask`" in p for p in masked.problems)
    firing = {c.key for c in conditions(step, masked) if c.firing}
    assert "monitor.churn-api/monitoring" in firing


def test_an_empty_or_small_window_is_not_judged(step: MonitorStep, profile: Any) -> None:
    empty = judge_window(step, {"stable": profile}, window_of(customers_frame(400).head(0)))
    assert empty.status(step.drift_share) == "not_judged"
    assert any("no predictions" in p for p in empty.problems)
    small = judge_window(step, {"stable": profile}, window_of(customers_frame(400).head(40)))
    assert any("fewer than min_rows" in p for p in small.problems)
    assert small.drift is None


def test_no_reference_profile_means_no_drift_verdict(step: MonitorStep) -> None:
    window = window_of(customers_frame(2000, seed=3, drift=1.0).sample(600, random_state=3))
    found = judge_window(step, {}, window)
    assert found.drift is None and found.status(step.drift_share) == "not_judged"


def test_performance_is_judged_once_enough_labels_arrived(step: MonitorStep, profile: Any) -> None:
    window = window_of(customers_frame(2000, seed=2).sample(300, random_state=2))
    found = judge_window(step, {"stable": profile}, window)
    (outcome,) = found.performance
    assert outcome.labels == 300 and outcome.value is not None
    # the outputs are noise here: roc_auc near 0.5, below the 0.7 limit
    assert outcome.ok is False
    assert any(c.key.endswith("/performance") and c.firing for c in conditions(step, found))


def test_the_prediction_column_is_numeric_for_a_binary_classifier(profile: Any) -> None:
    assert profile.columns[PREDICTION].kind == "numeric"


def test_retraining_waits_for_the_cooldown_unless_it_was_skipped(
    step: MonitorStep, profile: Any
) -> None:
    from shipyard.monitoring.actions import retrain

    window = window_of(customers_frame(2000, seed=3, drift=1.0).sample(600, random_state=3))
    drifted = judge_window(step, {"stable": profile}, window)
    calls: list[str] = []

    def skipped() -> tuple[str, bool]:
        calls.append("skipped")
        return "skipped: data unchanged", False

    def trained() -> tuple[str, bool]:
        calls.append("trained")
        return "registered version 2", True

    assert retrain(step, drifted, skipped, now=1000.0) == "skipped: data unchanged"
    # nothing was trained: new data arriving a minute later is trained on at once
    assert retrain(step, drifted, trained, now=1060.0) == "registered version 2"
    held = retrain(step, drifted, trained, now=1120.0)
    assert held is not None and "cooldown" in held
    assert calls == ["skipped", "trained"]
    assert retrain(step, drifted, trained, now=1060.0 + step.cooldown_seconds) == (
        "registered version 2"
    )
    calm = judge_window(
        step, {"stable": profile}, window_of(customers_frame(2000, seed=2).sample(600))
    )
    assert retrain(step, calm, trained, now=10**9) is None  # no drift, no retraining


def test_an_unreachable_alert_store_is_reported_not_a_failed_run(
    tmp_path: Path, step: MonitorStep, profile: Any
) -> None:
    from shipyard.compiler.alerts import AlertStep
    from shipyard.monitoring.actions import alert

    plan = compile_text(tmp_path, SPEC)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    steps = dict(plan.steps)
    route = plan.named(AlertStep, "oncall")
    steps[route.id] = route.model_copy(update={"state_database": f"sqlite:///{blocked}/c.sqlite"})
    plan = plan.model_copy(update={"steps": steps})
    window = window_of(customers_frame(2000, seed=3, drift=1.0).sample(600, random_state=3))
    done = alert(plan, step, judge_window(step, {"stable": profile}, window))
    assert any("'monitor.churn-api/drift' not raised" in line for line in done), done
