"""`shipyard observability up|status|down` on free ports: a real Prometheus scraping a real
service, flow metrics pushed to the real Pushgateway and written for node-exporter's textfile
collector, and every rule expression and dashboard query evaluated by Prometheus' query API."""

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

NOT_YET_FED = (
    "shipyard_monitor_window_rows",
    "shipyard_monitor_healthy",
    "shipyard_monitor_last_run_timestamp_seconds",
    "shipyard_monitor_drift_detected",
    "shipyard_monitor_drifted_share",
    "shipyard_monitor_feature_drift",
    "shipyard_monitor_feature_drift_threshold",
    "shipyard_monitor_feature_drifted",
    "shipyard_monitor_prediction_drift",
    "shipyard_monitor_quality_expectations",
    "shipyard_monitor_quality_failed_expectations",
    "shipyard_monitor_performance",
    "shipyard_monitor_performance_labels",
    "shipyard_monitor_feature_age_seconds",
    "shipyard_monitor_feature_max_age_seconds",
)
"""Families the monitor flow will publish: their queries must evaluate, but no data is
asserted until a monitor run feeds them."""

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
"""
ROW = {
    "region": "north",
    "plan": "pro",
    "tenure_months": 12,
    "monthly_charges": 123.45,
    "support_calls": 2,
    "data_usage_gb": 10.5,
}


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
    return any(family in expr for family in NOT_YET_FED)


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
    empty = []
    for expr in dict.fromkeys(queries):
        result = _query(url, expr)  # evaluates without error
        if expr in alerts or _references_unfed(expr):
            continue  # an alert returns series only while it fires; monitor families: later
        if not result:
            empty.append(expr)
    assert not empty, "queries returning no data:\n" + "\n".join(empty)

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
