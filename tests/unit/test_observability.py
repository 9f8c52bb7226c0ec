"""`shipyard observability render`: prometheus.yml, rules, alertmanager.yml and dashboards from
a compiled plan, checked by promtool and amtool, and the rules' behaviour under promtool's
rule unit tests (series in, alerts out)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard.compiler import Plan
from shipyard.errors import ShipyardError
from shipyard.observability import dashboards, rules, stack
from shipyard.observability.render import (
    Rendered,
    alertmanager_config,
    check_stack,
    render_stack,
)
from shipyard.project import load_project
from shipyard.spec.profiles import ObservabilitySettings

from .specs import compile_text

pytestmark = pytest.mark.usefixtures("no_state_dir_override")

ROOT = Path(__file__).resolve().parents[2]
SPEC = """\
project: shop
profiles:
  local:
    prometheus: {pushgateway: "http://gateway.internal:9091"}
    observability: {prometheus_port: 19090, alertmanager_port: 19093, receiver_port: 19095,
                    scrape_interval: 5s, retention: 30d}
datasets:
  returns:
    path: data/returns.csv
    schema: {order_id: int, amount: float, items: int, returned: bool}
    expectations: [{not_null: order_id}]
models:
  returns:
    task: classification
    dataset: returns
    target: returned
    features: [amount, items]
    estimator: {class: sklearn.linear_model.LogisticRegression}
services:
  returns-api:
    model: returns
    port: 3100
    host: 0.0.0.0
    candidates: [challenger]
  audit-api:
    model: returns
    port: 3200
ab_tests:
  returns-test:
    service: returns-api
    variants: {control: champion, treatment: challenger}
    assign_by: items
    metric: {name: returned}
    mde: 0.02
{alerts}"""
ROUTES = """\
alerts:
  pager:
    channels: ["json://127.0.0.1:1/pager"]
    min_severity: critical
  chat:
    channels: ["json://127.0.0.1:1/chat"]
    min_severity: info
"""


def _settings(text: str) -> ObservabilitySettings:
    return ObservabilitySettings.model_validate(
        yaml.safe_load(text)["profiles"]["local"].get("observability", {})
    )


@pytest.fixture
def shop(tmp_path: Path) -> tuple[Plan, ObservabilitySettings]:
    text = SPEC.replace("{alerts}", ROUTES)
    return compile_text(tmp_path, text), _settings(text)


@pytest.fixture(scope="module")
def demo() -> tuple[Plan, ObservabilitySettings]:
    project = load_project(ROOT / "pipelines.yaml")
    assert project.spec is not None
    return project.require_plan(), project.spec.active_profile.observability


def _rendered(plan: Plan, settings: ObservabilitySettings, folder: Path) -> Rendered:
    rendered = render_stack(plan, settings, folder)
    rendered.write(folder)
    return rendered


def _yaml(rendered: Rendered, name: str) -> Any:
    return yaml.safe_load(rendered.files[name])


def _require(tool: str) -> str:
    binary = shutil.which(tool)
    if binary is None:
        pytest.skip(f"{tool} is not installed (apt-get install prometheus prometheus-alertmanager)")
    return binary


# -- prometheus.yml -------------------------------------------------------------------------


def test_every_service_is_scraped_with_its_resource_labels(
    shop: tuple[Plan, ObservabilitySettings], tmp_path: Path
) -> None:
    plan, settings = shop
    config = _yaml(_rendered(plan, settings, tmp_path), "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    services = jobs[rules.SERVICE_JOB]
    assert services["metrics_path"] == "/metrics" and services["honor_labels"] is True
    assert services["static_configs"] == [
        {
            "targets": ["127.0.0.1:3100"],  # bound to 0.0.0.0: scraped locally
            "labels": {
                "project": "shop",
                "resource": "service.returns-api",
                "service": "returns-api",
            },
        },
        {
            "targets": ["127.0.0.1:3200"],
            "labels": {"project": "shop", "resource": "service.audit-api", "service": "audit-api"},
        },
    ]
    # flows push to the profile's gateway: it is scraped beside the local one, labels kept
    assert jobs["pushgateway"]["honor_labels"] is True
    assert jobs["pushgateway"]["static_configs"][0]["targets"] == [
        "127.0.0.1:9091",
        "gateway.internal:9091",
    ]
    assert jobs["prometheus"]["static_configs"][0]["targets"] == ["127.0.0.1:19090"]
    assert jobs["node"]["static_configs"][0]["targets"] == ["127.0.0.1:9100"]
    assert config["global"]["scrape_interval"] == "5s"
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:19093"
    ]
    assert sorted(config["rule_files"]) == sorted(
        f"rules/{group.name}.yml" for group in rules.rule_groups(plan)
    )


def test_rendered_files_pass_promtool_and_amtool(
    demo: tuple[Plan, ObservabilitySettings], tmp_path: Path
) -> None:
    _require("promtool"), _require("amtool")
    plan, settings = demo
    rendered = _rendered(plan, settings, tmp_path)
    assert check_stack(tmp_path, rendered, required=True) == []


def test_a_file_promtool_rejects_is_an_error_naming_it(
    demo: tuple[Plan, ObservabilitySettings], tmp_path: Path
) -> None:
    _require("promtool"), _require("amtool")
    plan, settings = demo
    rendered = _rendered(plan, settings, tmp_path)
    broken = tmp_path / "rules" / "flows.yml"
    broken.write_text(broken.read_text().replace("== 0", "== == 0"))
    with pytest.raises(ShipyardError, match=r"promtool rejects .*rules/flows\.yml"):
        check_stack(tmp_path, rendered)


def test_every_dashboard_query_is_valid_promql(
    shop: tuple[Plan, ObservabilitySettings], tmp_path: Path
) -> None:
    """promtool parses each query as the expression of a recording rule."""
    _require("promtool")
    plan, _ = shop
    queries = [q for board in dashboards.dashboards(plan) for q in board.queries]
    group = {
        "name": "queries",
        "rules": [{"record": f"q:{i}", "expr": q} for i, q in enumerate(queries)],
    }
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [group]}))
    done = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


# -- rules ----------------------------------------------------------------------------------


def test_rules_have_severity_and_annotations_naming_the_resource(
    demo: tuple[Plan, ObservabilitySettings], tmp_path: Path
) -> None:
    plan, settings = demo
    rendered = _rendered(plan, settings, tmp_path)
    alerts = [
        rule
        for name in rendered.files
        if name.startswith("rules/")
        for group in _yaml(rendered, name)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    names = {rule["alert"] for rule in alerts}
    assert {
        "ShipyardServiceErrorRate",
        "ShipyardServiceLatencyP99",
        "ShipyardDriftDetected",
        "ShipyardMonitorQualityFailures",
        "ShipyardDatasetExpectationsFailed",
        "ShipyardMonitorUnhealthy",
        "ShipyardMonitorStale",
        "ShipyardFlowRunFailed",
        "ShipyardFeaturesStale",
        "ShipyardAbTestSampleRatioMismatch",
        "ShipyardRolloutRolledBack",
        "ShipyardHostCpuHigh",
        "ShipyardHostMemoryHigh",
        "ShipyardHostDiskFull",
    } <= names
    for rule in alerts:
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), rule
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule
        text = rule["annotations"]["summary"] + rule["expr"]
        assert "resource" in text or "instance" in text or "job" in text, rule


def test_service_limits_come_from_the_rollout_and_staleness_from_the_monitor_schedule(
    demo: tuple[Plan, ObservabilitySettings],
) -> None:
    plan, _ = demo
    by_name = {
        (rule.alert, rule.signal): rule
        for group in rules.rule_groups(plan)
        for rule in group.rules
        if isinstance(rule, rules.AlertRule)
    }
    errors = by_name[
        ("ShipyardServiceErrorRate", f'{rules.ERROR_RATIO}{{resource="service.churn-api"}}')
    ]
    assert errors.condition == "> 0.01"  # the demo rollout's error_rate max: 1%
    latency = by_name[
        ("ShipyardServiceLatencyP99", f'{rules.LATENCY_P99}{{resource="service.churn-api"}}')
    ]
    assert latency.condition == "> 0.5"  # latency_p99 max: 500ms
    stale = [rule for (alert, _), rule in by_name.items() if alert == "ShipyardMonitorStale"]
    # the demo monitor runs every 15 minutes: stale after 3 missed runs; others after 2 h
    assert sorted(rule.condition for rule in stale) == ["> 2700", "> 7200"]
    performance = [
        rule for (alert, _), rule in by_name.items() if alert == "ShipyardModelPerformance"
    ]
    assert [rule.expr for rule in performance] == [
        'shipyard_monitor_performance{resource="service.churn-api",metric="roc_auc"} < 0.7'
    ]


def test_a_weekday_schedule_is_stale_only_after_three_of_its_longest_gaps() -> None:
    assert rules.stale_after("*/15 * * * *") == 3 * 15 * 60
    assert rules.stale_after("0 9 * * 1-5") == 3 * 72 * 3600  # Friday 9:00 to Monday 9:00
    assert rules.stale_after(None) == rules.MONITOR_STALE_DEFAULT


def _promtool_test(tmp_path: Path, rendered: Rendered, tests: list[dict[str, Any]]) -> None:
    _require("promtool")
    files = sorted(name for name in rendered.files if name.startswith("rules/"))
    spec = {"rule_files": files, "evaluation_interval": "1m", "tests": tests}
    path = tmp_path / "rules-test.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    done = subprocess.run(
        ["promtool", "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _firing(alert: str, at: str, *samples: str) -> dict[str, Any]:
    return {
        "expr": f'ALERTS{{alertname="{alert}",alertstate="firing"}}',
        "eval_time": at,
        "exp_samples": [{"labels": labels, "value": 1} for labels in samples],
    }


SERVICE = 'project="churn-demo",resource="service.churn-api"'


def test_the_rules_fire_on_the_series_they_watch(
    demo: tuple[Plan, ObservabilitySettings], tmp_path: Path
) -> None:
    plan, settings = demo
    rendered = _rendered(plan, settings, tmp_path)
    flow = 'flow="train-model",project="churn-demo",resource="model.churn"'
    test = {
        "interval": "1m",
        "input_series": [
            {"series": f"shipyard_flow_run_success{{{flow}}}", "values": "0x10"},
            # stable answers 100 requests a minute, 10 of them 5xx; challenger never fails
            {
                "series": 'shipyard_service_requests_total{endpoint="/predict",status="200",'
                f'variant="stable",model_version="1",{SERVICE}}}',
                "values": "0+90x20",
            },
            {
                "series": 'shipyard_service_requests_total{endpoint="/predict",status="500",'
                f'variant="stable",model_version="1",{SERVICE}}}',
                "values": "0+10x20",
            },
            {
                "series": 'shipyard_service_requests_total{endpoint="/predict",status="200",'
                f'variant="challenger",model_version="2",{SERVICE}}}',
                "values": "0+50x20",
            },
            {
                "series": "shipyard_ab_test_srm_p_value"
                '{project="churn-demo",resource="ab_test.churn-v2"}',
                "values": "0.0001x10",
            },
            {
                "series": "shipyard_monitor_feature_age_seconds"
                f'{{{SERVICE},view="customer_usage"}}',
                "values": "5000x10",
            },
            {
                "series": "shipyard_monitor_feature_max_age_seconds"
                f'{{{SERVICE},view="customer_usage"}}',
                "values": "3600x10",
            },
            {
                "series": f"shipyard_monitor_last_run_timestamp_seconds{{{SERVICE}}}",
                "values": "0x60",
            },
        ],
        "promql_expr_test": [
            {
                "expr": rules.ERROR_RATIO,
                "eval_time": "10m",
                "exp_samples": [
                    {"labels": f'{rules.ERROR_RATIO}{{variant="stable",{SERVICE}}}', "value": 0.1},
                    # no 5xx series at all: an error ratio of 0, not a missing series
                    {
                        "labels": f'{rules.ERROR_RATIO}{{variant="challenger",{SERVICE}}}',
                        "value": 0,
                    },
                ],
            },
            _firing(
                "ShipyardFlowRunFailed",
                "2m",
                f'ALERTS{{alertname="ShipyardFlowRunFailed",alertstate="firing",{flow},'
                'severity="warning"}',
            ),
            _firing(
                "ShipyardServiceErrorRate",
                "15m",
                'ALERTS{alertname="ShipyardServiceErrorRate",alertstate="firing",'
                f'variant="stable",{SERVICE},severity="critical"}}',
            ),
            _firing(
                "ShipyardAbTestSampleRatioMismatch",
                "1m",
                'ALERTS{alertname="ShipyardAbTestSampleRatioMismatch",alertstate="firing",'
                'project="churn-demo",resource="ab_test.churn-v2",severity="critical"}',
            ),
            _firing(
                "ShipyardFeaturesStale",
                "1m",
                'ALERTS{alertname="ShipyardFeaturesStale",alertstate="firing",'
                f'{SERVICE},view="customer_usage",severity="warning"}}',
            ),
            # every 15 minutes: not stale at 40 minutes, stale at 50 (3 x 15 minutes missed)
            {
                "expr": 'ALERTS{alertname="ShipyardMonitorStale"}',
                "eval_time": "40m",
                "exp_samples": [],
            },
            _firing(
                "ShipyardMonitorStale",
                "50m",
                'ALERTS{alertname="ShipyardMonitorStale",alertstate="firing",'
                f'{SERVICE},severity="warning"}}',
            ),
        ],
    }
    _promtool_test(tmp_path, rendered, [test])


# -- alertmanager.yml -----------------------------------------------------------------------


def test_each_alert_route_is_a_webhook_receiver_taking_its_severities(
    shop: tuple[Plan, ObservabilitySettings],
) -> None:
    plan, settings = shop
    config = alertmanager_config(plan, settings)
    receivers = {r["name"]: r for r in config["receivers"]}
    assert set(receivers) == {"null", "chat", "pager"}
    assert receivers["pager"]["webhook_configs"] == [
        {"url": "http://127.0.0.1:19095/alertmanager/pager", "send_resolved": True}
    ]
    assert config["route"]["routes"] == [
        {"receiver": "chat", "matchers": ['severity=~"info|warning|critical"'], "continue": True},
        {"receiver": "pager", "matchers": ['severity=~"critical"'], "continue": True},
    ]
    assert config["route"]["receiver"] == "chat"  # takes the most severities


def test_severities_below_every_route_go_to_the_null_receiver(tmp_path: Path) -> None:
    text = SPEC.replace("{alerts}", ROUTES.replace("min_severity: info", "min_severity: warning"))
    config = alertmanager_config(compile_text(tmp_path, text), _settings(text))
    assert config["route"]["routes"][-1] == {"receiver": "null", "matchers": ['severity=~"info"']}


def test_alert_routing_by_severity_as_amtool_sees_it(
    shop: tuple[Plan, ObservabilitySettings], tmp_path: Path
) -> None:
    amtool = _require("amtool")
    plan, settings = shop
    rendered = _rendered(plan, settings, tmp_path)
    config = str(tmp_path / "alertmanager.yml")

    def receivers(*labels: str) -> str:
        done = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={config}", *labels],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip()

    assert receivers("severity=critical") == "chat,pager"
    assert receivers("severity=info") == "chat"
    assert receivers("alertname=Watchdog") == "chat"  # no severity: the default route
    assert rendered.files["alertmanager.yml"]


def test_a_plan_without_alert_routes_sends_to_the_null_receiver(tmp_path: Path) -> None:
    text = SPEC.replace("{alerts}", "")
    config = alertmanager_config(compile_text(tmp_path, text), _settings(text))
    assert config["route"]["receiver"] == "null"
    assert config["receivers"] == [{"name": "null"}]


# -- Grafana --------------------------------------------------------------------------------


def test_grafana_provisioning_points_at_prometheus_and_the_dashboards(
    shop: tuple[Plan, ObservabilitySettings], tmp_path: Path
) -> None:
    plan, settings = shop
    rendered = _rendered(plan, settings, tmp_path)
    source = _yaml(rendered, "grafana/provisioning/datasources/shipyard.yml")["datasources"][0]
    assert source["url"] == "http://127.0.0.1:19090"
    assert source["uid"] == dashboards.DATASOURCE_UID
    provider = _yaml(rendered, "grafana/provisioning/dashboards/shipyard.yml")["providers"][0]
    folder = Path(provider["options"]["path"])
    assert folder.is_absolute() and sorted(p.name for p in folder.glob("*.json")) == [
        "ab-tests.json",
        "business.json",
        "drift.json",
        "infrastructure.json",
        "model-performance.json",
        "system-health.json",
    ]


def _panels(path: Path) -> list[dict[str, Any]]:
    board = json.loads(path.read_text())
    return [p for p in board["panels"] if p["type"] != "row"]


def test_dashboards_are_json_with_the_panels_and_queries_expected(
    shop: tuple[Plan, ObservabilitySettings], tmp_path: Path
) -> None:
    plan, settings = shop
    _rendered(plan, settings, tmp_path)
    boards = tmp_path / "grafana" / "dashboards"
    for path in boards.glob("*.json"):
        board = json.loads(path.read_text())
        assert board["uid"].startswith("shipyard-shop-") and "shipyard" in board["tags"]
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in _panels(path):
            assert panel["datasource"]["uid"] == dashboards.DATASOURCE_UID, panel["title"]
            assert isinstance(panel["options"], dict), panel["title"]
            assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]

    def exprs(name: str) -> dict[str, list[str]]:
        return {p["title"]: [t["expr"] for t in p["targets"]] for p in _panels(boards / name)}

    drift = exprs("drift.json")
    assert drift["Drift statistic per feature"][0] == "shipyard_monitor_feature_drift"
    performance = exprs("model-performance.json")
    assert performance["Metric on live traffic by variant"] == ["shipyard_monitor_performance"]
    health = exprs("system-health.json")
    assert health["p99 latency by variant"] == [rules.LATENCY_P99]
    assert "node_memory_MemAvailable_bytes" in exprs("infrastructure.json")["Memory used"][0]
    ab = exprs("ab-tests.json")
    arms = "returns-test: requests per arm (returned is decided from feedback)"
    assert ab[arms] == [
        f'{rules.REQUEST_RATE}{{resource="service.returns-api",variant=~"stable|challenger"}}'
    ]
    business = exprs("business.json")
    assert "Feedback outcomes per service (A/B test metrics: returned)" in business
    assert {
        "returns-api: feedback per answered prediction",
        "audit-api: feedback per answered prediction",
    } <= set(business)


# -- the stack's processes ------------------------------------------------------------------


def test_the_stack_runs_each_binary_on_its_port_with_data_under_the_state_folder(
    shop: tuple[Plan, ObservabilitySettings], tmp_path: Path
) -> None:
    plan, settings = shop
    found = {c.name: c for c in stack.components(plan, settings)}
    assert list(found) == [
        "node-exporter",
        "pushgateway",
        "alertmanager",
        "alert-receiver",  # the plan has alert routes
        "prometheus",
    ]
    state = Path(plan.runtime.state_dir) / "observability"
    assert (
        f"--collector.textfile.directory={plan.blocks.metrics.textfile_dir}"
        in found["node-exporter"].argv
    )
    assert f"--storage.tsdb.path={state / 'prometheus'}" in found["prometheus"].argv
    assert "--storage.tsdb.retention.time=30d" in found["prometheus"].argv
    assert "--web.listen-address=127.0.0.1:19090" in found["prometheus"].argv
    receiver = found["alert-receiver"]
    assert receiver.argv[1:3] == ("-m", "shipyard.cli")
    assert receiver.argv[-4:] == ("--host", "127.0.0.1", "--port", "19095")
    assert receiver.health_path == "/-/healthy"
    without = compile_text(tmp_path, SPEC.replace("{alerts}", ""))
    assert "alert-receiver" not in [c.name for c in stack.components(without, settings)]


def test_render_from_the_command_line(tmp_path: Path) -> None:
    from shipyard.cli import main

    spec = tmp_path / "pipelines.yaml"
    spec.write_text(SPEC.replace("{alerts}", ROUTES))
    assert main(["-f", str(spec), "observability", "render", "-o", str(tmp_path / "obs")]) == 0
    assert (tmp_path / "obs" / "prometheus.yml").is_file()
    assert len(list((tmp_path / "obs" / "rules").glob("*.yml"))) == len(
        rules.rule_groups(compile_text(tmp_path, spec.read_text()))
    )
