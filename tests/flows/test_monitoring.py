"""The monitor on a real project: a trained model's reference profile, predictions in the
service's log, the monitor-service flow judging them, alerting a local webhook and retraining.

Predictions are written through the service's own PredictionLog (what a serving worker does),
with the outputs of the registered model itself: the window is what production would log.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support import SPEC, compile_spec, free_port, run_flow

from shipyard.compiler import Plan
from shipyard.compiler.monitoring import MonitorStep

pytestmark = pytest.mark.usefixtures("prefect_harness")

MODEL = "test-project.churn"
FEATURES = ["region", "plan", "tenure_months", "monthly_charges", "support_calls", "data_usage_gb"]
REST = """
models:
  churn:
    task: classification
    dataset: customers
    target: churned
    features: [region, plan, tenure_months, monthly_charges, support_calls, data_usage_gb]
    estimator:
      class: sklearn.ensemble.HistGradientBoostingClassifier
      params: {{max_iter: 40}}
    gate:
      roc_auc: ">= 0.5"
services:
  churn-api:
    model: churn
    port: {port}
alerts:
  oncall:
    channels: ["json://127.0.0.1:{hook}/alerts"]
    cooldown: 1h
monitoring:
  churn-api:
    window: 1h
    min_rows: 100
    drift:
      inputs: psi
      predictions: ks
      per_feature: {{monthly_charges: {{statistic: wasserstein, threshold: 0.3}}}}
    performance: {{metric: roc_auc, min: 0.6, min_labels: 50}}
    on_drift: [alert, retrain]
    cooldown: 1h
    alerts: [oncall]
"""


@dataclass
class Hook:
    """A local webhook that keeps what apprise posts to it."""

    port: int
    received: list[dict[str, Any]] = field(default_factory=list)

    def titles(self) -> list[str]:
        return [str(m.get("title")) for m in self.received]


@pytest.fixture(scope="module")
def hook() -> Iterator[Hook]:
    found = Hook(free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            found.received.append(json.loads(body or b"{}"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", found.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Project:
    folder: Path
    plan: Plan

    @property
    def step(self) -> MonitorStep:
        return self.plan.named(MonitorStep, "churn-api")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None, hook: Hook) -> Project:
    from flows.train_model import train_model
    from shipyard.demo_data import write_customers

    folder = tmp_path_factory.mktemp("monitoring")
    (folder / "pipelines.yaml").write_text(
        SPEC.format(port=free_port()) + REST.format(port=free_port(), hook=hook.port)
    )
    write_customers(folder / "data" / "customers.parquet", rows=2000, seed=3)
    plan = compile_spec(folder / "pipelines.yaml")
    assert run_flow(plan, train_model, model="churn").is_completed()
    return Project(folder, plan)


def _log(project: Project, drift: float, rows: int, seed: int, labels: bool = True) -> None:
    """`rows` predictions of the champion on customers drawn with `drift`, with feedback."""
    import mlflow

    from shipyard.demo_data import customers_frame
    from shipyard.serving.predlog import PredictionLog

    mlflow.set_tracking_uri(project.plan.blocks.mlflow.tracking_uri)
    model = mlflow.sklearn.load_model(f"models:/{MODEL}@champion")
    frame = customers_frame(rows * 4, seed=seed, drift=drift).sample(rows, random_state=seed)
    probabilities = model.predict_proba(frame[FEATURES])[:, 1]
    log = PredictionLog(project.step.log_database, "churn-api", flush_interval=0.05)
    try:
        for i, (row, p) in enumerate(
            zip(frame[[*FEATURES, "churned"]].to_dict("records"), probabilities, strict=True)
        ):
            request_id = f"r{seed}-{i}"
            inputs = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            label = inputs.pop("churned")
            output = {"prediction": bool(p >= 0.5), "probability": float(p)}
            log.log_prediction(request_id, "stable", "1", inputs, output)
            if labels:
                log.log_feedback(bool(label), request_id=request_id)
        log.flush(timeout=30)
    finally:
        log.close()


def _wait_for(hook: Hook, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while len(hook.received) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_an_empty_window_is_not_a_pass_and_alerts_about_the_monitor(
    project: Project, hook: Hook
) -> None:
    from flows.monitor_service import monitor_service

    state = run_flow(project.plan, monitor_service, service="churn-api")
    result = state.result()
    assert result.status == "not_judged"
    assert any("no predictions" in p for p in result.problems)
    _wait_for(hook, 1)
    assert any("cannot judge" in t for t in hook.titles()), hook.received


def test_undrifted_traffic_passes_then_drift_alerts_retrains_and_cools_down(
    project: Project, hook: Hook
) -> None:
    from flows.monitor_service import monitor_service
    from shipyard import registry
    from shipyard.demo_data import write_customers

    _log(project, drift=0.0, rows=400, seed=11)
    result = run_flow(project.plan, monitor_service, service="churn-api").result()
    assert result.status == "ok", result
    assert result.drifted == [] and result.problems == []
    assert any("resolved" in a for a in result.actions)  # the empty-window alert cleared
    textfile = Path(project.plan.blocks.metrics.textfile_dir)
    gauges = "".join(p.read_text() for p in textfile.glob("monitor-service__service.churn-api*"))
    assert "shipyard_monitor_feature_drift{" in gauges and "monthly_charges" in gauges
    assert "shipyard_monitor_performance{" in gauges

    # new data arrives (so a retraining has something new to learn), and traffic drifts
    write_customers(project.folder / "data" / "customers.parquet", rows=2000, seed=5)
    _log(project, drift=1.0, rows=600, seed=12)
    before = len(hook.received)
    result = run_flow(project.plan, monitor_service, service="churn-api").result()
    assert result.status == "drift", result
    assert {"support_calls", "data_usage_gb"} <= set(result.drifted)
    assert any("registered" in a for a in result.actions), result.actions
    _wait_for(hook, before + 1)
    drift_alerts = [m for m in hook.received[before:] if "drift in" in str(m.get("title"))]
    assert len(drift_alerts) == 1
    assert registry.alias_version(MODEL, "challenger") is not None

    # at once again: the same alert is not sent twice, and the cooldown holds the retraining
    result = run_flow(project.plan, monitor_service, service="churn-api").result()
    assert result.status == "drift"
    assert any("cooldown" in a for a in result.actions), result.actions
    time.sleep(0.5)
    assert len([m for m in hook.received if "drift in" in str(m.get("title"))]) == 1
    report = Path(project.step.report_dir)
    assert (report / "report.html").stat().st_size > 10_000  # the page carries the plot
    assert "DRIFT" in (report / "report.txt").read_text()
