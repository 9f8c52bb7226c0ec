"""`shipyard observability up|status|down` on free ports: a real Prometheus scraping a real
service, flow metrics pushed to the real Pushgateway and written for node-exporter's textfile
collector, a real monitor-service run judging logged traffic (its gauges read by the collector),
and every rule expression and dashboard query evaluated by Prometheus' query API."""

from __future__ import annotations

import json
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import MODEL_SPEC, SPEC, compile_spec, free_port, run_flow, run_shipyard

from shipyard.compiler import Plan, ServiceStep
from shipyard.errors import ShipyardError
from shipyard.metrics import FlowRunMetrics, MetricsSink, publish
from shipyard.observability import dashboards, rules, stack
from shipyard.processes import running
from shipyard.spec.profiles import ObservabilitySettings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]

NOT_YET_FED = {
    "shipyard_monitor_feature_age_seconds": "churn-api has no feature service: no freshness",
    '{resource!~"service.churn-api"}': "monitors no longer in the plan; churn-api is its only one",
}
"""Parts of queries that cannot have data in this setup (the monitor feeds every other
`shipyard_monitor_*` family): their queries must evaluate, and return nothing."""
MONITORED = 200
"""Predictions of drifted customers, with feedback, that the monitor judges."""

BINARIES = (
    "prometheus",
    "prometheus-pushgateway",
    "prometheus-alertmanager",
    "prometheus-node-exporter",
)
SERVICE_SPEC = """
services:
  churn-api:
    model: churn
    port: {port}
alerts:
  ops:
    channels: ["json://127.0.0.1:{hook}/alerts"]
    min_severity: warning
monitoring:
  churn-api:
    window: 1h
    min_rows: 100
    performance: {{metric: roc_auc, min: 0.6, min_labels: 50}}
    on_drift: [alert]
"""
ROW = {
    "region": "north",
    "plan": "pro",
    "tenure_months": 12,
    "monthly_charges": 123.45,
    "support_calls": 2,
    "data_usage_gb": 10.5,
}
FEATURES = list(ROW)


@dataclass
class Stack:
    spec: Path
    plan: Plan
    settings: ObservabilitySettings
    service_url: str

    @property
    def prometheus(self) -> str:
        return f"http://127.0.0.1:{self.settings.prometheus_port}"


def _wait_for(check: Callable[[], Any], timeout: float = 90.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except httpx.HTTPError:
            found = None
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what or check}")


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    """The result of an instant query; an error of Prometheus fails the test, naming it."""
    answer = httpx.get(url + "/api/v1/query", params={"query": expr}, timeout=30)
    document = answer.json()
    assert answer.status_code == 200 and document["status"] == "success", (expr, document)
    result: list[dict[str, Any]] = document["data"]["result"]
    return result


def _publish_flow_metrics(plan: Plan, pushgateway: str) -> None:
    """What the flows publish at their end, through shipyard.metrics.publish."""
    gateway = MetricsSink(plan.blocks.metrics.textfile_dir, pushgateway_url=pushgateway)
    runs: list[tuple[str, str, dict[str, float]]] = [
        (
            "validate-dataset",
            "dataset.customers",
            {"dataset_rows_validated": 600, "dataset_expectations_failed": 1},
        ),
        ("train-model", "model.churn", {"model_trials": 2}),
        (
            "roll-out",
            "rollout.churn-api",
            {"rollout_stage": 1, "rollout_outcome": -1, "rollout_failed_measurements": 2},
        ),
        (
            "analyze-ab-test",
            "ab_test.churn-v2",
            {"ab_test_running": 1, "ab_test_srm_p_value": 0.0004},
        ),
    ]
    for flow, resource, values in runs:
        metrics = FlowRunMetrics(flow, resource, plan.project)
        for name, value in values.items():
            metrics.observe(name, value, name)
        for name, value in (
            ("flow_run_success", 1.0 if flow != "roll-out" else 0.0),
            ("flow_run_duration_seconds", 3.5),
            ("flow_run_last_timestamp_seconds", time.time()),
        ):
            metrics.observe(name, value, name)
        publish(metrics, gateway)
    # without a gateway (the embedded profile): a *.prom file node-exporter's collector reads
    textfile = FlowRunMetrics("build-service", "service.churn-api", plan.project)
    textfile.observe("flow_run_success", 1.0, "1 if the last flow run completed.")
    publish(textfile, MetricsSink(plan.blocks.metrics.textfile_dir))


def _traffic(url: str, rows: list[dict[str, Any]]) -> None:
    with httpx.Client(timeout=30) as client:
        for index, row in enumerate(rows):
            answer = client.post(url + "/predict", json=row, headers={"X-Request-ID": f"r-{index}"})
            assert answer.status_code == 200, answer.text
        # a row the training data's between(monthly_charges, 0..500) refuses: flagged, counted
        flagged = client.post(url + "/predict", json={**ROW, "monthly_charges": 900.0})
        assert flagged.status_code == 200, flagged.text
        feedback = client.post(url + "/feedback", json={"request_id": "r-0", "outcome": 1})
        assert feedback.status_code == 200, feedback.text


def _log_drifted_traffic(plan: Plan, rows: int) -> None:
    """`rows` predictions of the champion on drifted customers, with their feedback labels,
    through the service's own PredictionLog (as tests/flows/test_monitoring.py does)."""
    import mlflow

    from shipyard.compiler.monitoring import MonitorStep
    from shipyard.demo_data import customers_frame
    from shipyard.serving.predlog import PredictionLog

    mlflow.set_tracking_uri(plan.blocks.mlflow.tracking_uri)
    model = mlflow.sklearn.load_model("models:/test-project.churn@champion")
    frame = customers_frame(rows * 4, seed=12, drift=1.0).sample(rows, random_state=12)
    probabilities = model.predict_proba(frame[FEATURES])[:, 1]
    log = PredictionLog(
        plan.named(MonitorStep, "churn-api").log_database, "churn-api", flush_interval=0.05
    )
    try:
        records = frame[[*FEATURES, "churned"]].to_dict("records")
        for i, (row, p) in enumerate(zip(records, probabilities, strict=True)):
            inputs = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            label = inputs.pop("churned")
            output = {"prediction": bool(p >= 0.5), "probability": float(p)}
            log.log_prediction(f"m-{i}", "stable", "1", inputs, output)
            log.log_feedback(bool(label), request_id=f"m-{i}")
        log.flush(timeout=30)
    finally:
        log.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[Stack]:
    import mlflow
    import pandas as pd

    from flows.build_service import build_service
    from flows.train_model import train_model
    from shipyard.demo_data import write_customers
    from shipyard.serving import deploy

    missing = [binary for binary in BINARIES if shutil.which(binary) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (`make test` installs them with apt-get)")
    folder = tmp_path_factory.mktemp("observability")
    settings = ObservabilitySettings(
        prometheus_port=free_port(),
        pushgateway_port=free_port(),
        alertmanager_port=free_port(),
        node_exporter_port=free_port(),
        receiver_port=free_port(),
        scrape_interval="1s",
        evaluation_interval="1s",
    )
    ports = ", ".join(
        f"{name}: {getattr(settings, name)}"
        for name in (
            "prometheus_port",
            "pushgateway_port",
            "alertmanager_port",
            "node_exporter_port",
            "receiver_port",
        )
    )
    profile = f"  local:\n    observability: {{{ports}, scrape_interval: 1s, "
    profile += "evaluation_interval: 1s}\n"
    text = SPEC.format(port=free_port()).replace("  local:\n", profile, 1)
    text += MODEL_SPEC.format(threshold=">= 0.5")
    text += SERVICE_SPEC.format(port=free_port(), hook=free_port())
    spec = folder / "pipelines.yaml"
    spec.write_text(text)
    write_customers(folder / "data" / "customers.parquet", rows=600)
    plan = compile_spec(spec)
    state = run_flow(plan, train_model, model="churn")
    assert state.is_completed(), state
    mlflow.set_tracking_uri(plan.blocks.mlflow.tracking_uri)
    mlflow.MlflowClient().set_registered_model_alias("test-project.churn", "champion", "1")
    step = plan.named(ServiceStep, "churn-api")
    columns = list(ROW)
    frame = pd.read_parquet(folder / "data" / "customers.parquet", columns=columns)
    rows = json.loads(frame.head(40).to_json(orient="records"))
    try:
        state = run_flow(plan, build_service, service="churn-api")
        assert state.is_completed(), state.result(raise_on_failure=False)
        url = deploy.base_url(step)
        _traffic(url, rows)
        yield Stack(spec, plan, settings, url)
    finally:
        run_shipyard(spec, "observability", "down")
        deploy.stop(step)


def _pids(served: Stack) -> dict[str, int]:
    found = {}
    for status in stack.status(served.plan, served.settings):
        if status.pid is not None:
            found[status.component.name] = status.pid
    return found


def _references_unfed(expr: str) -> bool:
    return any(part in expr for part in NOT_YET_FED)


def test_up_scrapes_the_service_and_every_rule_and_query_evaluates(served: Stack) -> None:
    started = run_shipyard(served.spec, "observability", "up", timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    names = ["node-exporter", "pushgateway", "alertmanager", "alert-receiver", "prometheus"]
    assert [line.split()[0] for line in started.stdout.splitlines()] == names
    again = run_shipyard(served.spec, "observability", "up", timeout=120)
    assert again.returncode == 0 and again.stdout.count("already up") == 5, again.stdout
    status = run_shipyard(served.spec, "observability", "status")
    assert status.returncode == 0 and status.stdout.count(" up (pid ") == 5, status.stdout
    pids = _pids(served)
    assert set(pids) == set(names)

    url = served.prometheus
    _publish_flow_metrics(served.plan, f"http://127.0.0.1:{served.settings.pushgateway_port}")
    # the monitor judges the window, publishing its gauges through the plan's sink (textfiles:
    # the profile has no Pushgateway) for node-exporter's textfile collector
    from flows.monitor_service import monitor_service

    _log_drifted_traffic(served.plan, MONITORED)
    judged = run_flow(served.plan, monitor_service, service="churn-api").result()
    assert judged.status == "drift" and judged.drifted and not judged.problems, judged
    assert judged.rows >= MONITORED, judged
    rows = _wait_for(
        lambda: _query(
            url, 'shipyard_monitor_window_rows{job="node",resource="service.churn-api"}'
        ),
        what="the monitor's gauges through node-exporter",
    )
    assert float(rows[0]["value"][1]) == judged.rows
    drifted = _query(url, "shipyard_monitor_feature_drifted == 1")  # the Drift dashboard's table
    assert {r["metric"]["feature"] for r in drifted} == set(judged.drifted)
    _wait_for(
        lambda: _query(url, f'up{{job="{rules.SERVICE_JOB}",resource="service.churn-api"}} == 1'),
        what="Prometheus scraping the service",
    )
    _wait_for(
        lambda: _query(url, 'shipyard_flow_run_success{job="node",flow="build-service"}'),
        what="the textfile metrics through node-exporter",
    )
    _wait_for(
        lambda: _query(url, 'shipyard_model_trials{job="shipyard-train-model"}'),
        what="the pushed metrics through the Pushgateway",
    )
    _traffic(served.service_url, [ROW] * 5)  # a second burst: rates over two scrapes
    _wait_for(lambda: _query(url, rules.LATENCY_P99), what="the recording rules")

    groups = rules.rule_groups(served.plan)
    queries = [q for group in groups for q in group.queries]
    alerts = {r.expr for g in groups for r in g.rules if isinstance(r, rules.AlertRule)}
    queries += [q for board in dashboards.dashboards(served.plan) for q in board.queries]
    empty, unexpected = [], []
    for expr in dict.fromkeys(queries):
        result = _query(url, expr)  # evaluates without error
        if expr in alerts:
            continue  # an alert returns series only while it fires
        if _references_unfed(expr):
            if result:
                unexpected.append(expr)  # fed after all: take it off NOT_YET_FED
        elif not result:
            empty.append(expr)
    assert not empty, "queries returning no data:\n" + "\n".join(empty)
    assert not unexpected, "NOT_YET_FED queries returning data:\n" + "\n".join(unexpected)

    # the rules themselves are loaded and healthy, and the flow failure fires
    loaded = httpx.get(url + "/api/v1/rules", timeout=30).json()["data"]["groups"]
    assert {g["name"] for g in loaded} == {f"shipyard-{g.name}" for g in groups}
    assert all(r["health"] == "ok" for g in loaded for r in g["rules"]), loaded
    firing = _wait_for(
        lambda: _query(url, 'ALERTS{alertname="ShipyardFlowRunFailed",alertstate="firing"}'),
        what="ShipyardFlowRunFailed firing",
    )
    assert firing[0]["metric"]["resource"] == "rollout.churn-api"
    _wait_for(
        lambda: [
            a
            for a in httpx.get(
                f"http://127.0.0.1:{served.settings.alertmanager_port}/api/v2/alerts", timeout=10
            ).json()
            if a["labels"]["alertname"] == "ShipyardFlowRunFailed"
        ],
        what="Alertmanager receiving the alert",
    )

    stopped = run_shipyard(served.spec, "observability", "down")
    assert stopped.returncode == 0 and stopped.stdout.count("stopped (pid") == 5, stopped.stdout
    assert not [name for name, pid in pids.items() if running(pid)]
    down = run_shipyard(served.spec, "observability", "status")
    assert down.returncode == 1 and down.stdout.count(" down") == 5, down.stdout


def test_a_taken_port_is_a_clear_error_and_nothing_is_left_running(served: Stack) -> None:
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT of `down`
        taken.bind(("127.0.0.1", served.settings.alertmanager_port))
        taken.listen()
        with pytest.raises(ShipyardError) as raised:
            stack.up(served.plan, served.settings, timeout=30)
    message = raised.value.render()
    assert f"port {served.settings.alertmanager_port} for alertmanager is taken" in message
    assert "observability.alertmanager_port" in message
    assert _pids(served) == {}
