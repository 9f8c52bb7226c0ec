"""`shipyard k8s render`: the manifests of services and rollouts, checked without a cluster.

Core resources are validated with kubernetes-validate (its bundled schemas, no network) against
a fixed Kubernetes version, strictly (unknown fields fail). Argo Rollouts' `Rollout` and
`AnalysisTemplate` have no schema there, so every key path emitted must be on an allow-list of
the fields Argo Rollouts documents (its Rollout specification and analysis pages).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shipyard.cli import main
from shipyard.compiler import Plan, RolloutStep, ServiceStep
from shipyard.errors import ShipyardError
from shipyard.k8s.commands import render_files, resolve
from shipyard.k8s.render import NOT_IN_ARGO, NOT_IN_PROMETHEUS, RenderedFile, rollout_manifests

from .specs import compile_text, replaced

pytestmark = pytest.mark.usefixtures("no_state_dir_override")

KUBERNETES = "1.30.0"

SPEC = """\
project: churn-demo
profile: local
profiles:
  local:
    kubernetes:
      namespace: ml
      registry: registry.example.com/ml/
      image_tag: m3-abc
      replicas: 3
      min_replicas: 3
      max_replicas: 8
      target_cpu_percent: 60
    prometheus: {url: "http://prom.ml:9090"}
datasets:
  customers:
    path: data/customers.parquet
    key: [customer_id, event_time]
    timestamp: event_time
    schema:
      customer_id: int
      event_time: datetime
      tenure: int
      charges: float
      churned: bool
models:
  churn:
    task: classification
    dataset: customers
    target: churned
    features: [tenure, charges]
    estimator: {class: sklearn.linear_model.LogisticRegression}
services:
  churn-api:
    model: churn
    port: 3100
    candidates: [challenger]
  churn-blue:
    model: churn
    port: 3101
    candidates: [challenger]
  churn-roll:
    model: churn
    port: 3102
    candidates: [challenger]
rollouts:
  churn-canary:
    service: churn-api
    strategy: canary
    candidate: challenger
    steps: [{weight: 10, duration: 2m, min_requests: 100}, {weight: 50, duration: 5m}]
    analysis:
      interval: 30s
      failure_limit: 2
      inconclusive_limit: 1
      metrics:
        - {name: error_rate, max: 1%, compare: stable}
        - {name: latency_p99, max: 250ms}
        - {name: prediction_shift, max_psi: 0.2}
        - {query: 'sum(rate(my_metric{variant="{{variant}}"}[1m]))', min: 1}
  churn-bg:
    service: churn-blue
    strategy: blue_green
    candidate: challenger
    blue_green: {keep_previous: 15m}
  churn-rolling:
    service: churn-roll
    strategy: rolling
    candidate: challenger
"""

# Field paths of the Argo Rollouts resources, from its documentation: the Rollout
# specification (docs/features/specification.md), the canary, blue-green and analysis pages.
# `[]` is a list item; `template.*` is a core PodTemplateSpec, validated by kubernetes-validate.
ARGO_FIELDS = {
    "Rollout": {
        "apiVersion",
        "kind",
        "metadata",
        "spec",
        "spec.replicas",
        "spec.revisionHistoryLimit",
        "spec.selector",
        "spec.selector.matchLabels",
        "spec.template",
        "spec.strategy",
        "spec.strategy.canary",
        "spec.strategy.canary.maxSurge",
        "spec.strategy.canary.maxUnavailable",
        "spec.strategy.canary.steps",
        "spec.strategy.canary.steps[]",
        "spec.strategy.canary.steps[].setWeight",
        "spec.strategy.canary.steps[].pause",
        "spec.strategy.canary.steps[].pause.duration",
        "spec.strategy.canary.analysis",
        "spec.strategy.canary.analysis.templates",
        "spec.strategy.canary.analysis.templates[]",
        "spec.strategy.canary.analysis.templates[].templateName",
        "spec.strategy.canary.analysis.args",
        "spec.strategy.canary.analysis.args[]",
        "spec.strategy.canary.analysis.args[].name",
        "spec.strategy.canary.analysis.args[].value",
        "spec.strategy.blueGreen",
        "spec.strategy.blueGreen.activeService",
        "spec.strategy.blueGreen.previewService",
        "spec.strategy.blueGreen.autoPromotionEnabled",
        "spec.strategy.blueGreen.scaleDownDelaySeconds",
        "spec.strategy.blueGreen.postPromotionAnalysis",
        "spec.strategy.blueGreen.postPromotionAnalysis.templates",
        "spec.strategy.blueGreen.postPromotionAnalysis.templates[]",
        "spec.strategy.blueGreen.postPromotionAnalysis.templates[].templateName",
        "spec.strategy.blueGreen.postPromotionAnalysis.args",
        "spec.strategy.blueGreen.postPromotionAnalysis.args[]",
        "spec.strategy.blueGreen.postPromotionAnalysis.args[].name",
        "spec.strategy.blueGreen.postPromotionAnalysis.args[].value",
    },
    "AnalysisTemplate": {
        "apiVersion",
        "kind",
        "metadata",
        "spec",
        "spec.args",
        "spec.args[]",
        "spec.args[].name",
        "spec.args[].value",
        "spec.metrics",
        "spec.metrics[]",
        "spec.metrics[].name",
        "spec.metrics[].interval",
        "spec.metrics[].failureLimit",
        "spec.metrics[].inconclusiveLimit",
        "spec.metrics[].successCondition",
        "spec.metrics[].failureCondition",
        "spec.metrics[].provider",
        "spec.metrics[].provider.prometheus",
        "spec.metrics[].provider.prometheus.address",
        "spec.metrics[].provider.prometheus.query",
    },
}
METADATA = {"name", "namespace", "labels", "annotations"}
"""ObjectMeta keys the renderer writes (labels and annotations are free maps)."""


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    return compile_text(tmp_path, SPEC)


def files_of(plan: Plan, name: str) -> list[RenderedFile]:
    files, _ = render_files(plan, name)
    return files


def by_path(files: list[RenderedFile]) -> dict[str, dict[str, Any]]:
    return {f.path: f.manifest for f in files}


def key_paths(value: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path
            if path in ("metadata", "spec.template") or path.endswith(
                (".labels", ".annotations", ".matchLabels")
            ):
                continue
            yield from key_paths(inner, path)
    elif isinstance(value, list):
        for item in value:
            yield f"{prefix}[]"
            yield from key_paths(item, f"{prefix}[]")


def assert_argo_fields(manifest: dict[str, Any]) -> None:
    allowed = ARGO_FIELDS[manifest["kind"]]
    emitted = set(key_paths(manifest))
    assert sorted(emitted - allowed) == [], f"not documented Argo {manifest['kind']} fields"
    assert set(manifest["metadata"]) <= METADATA


def validate_core(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, KUBERNETES, strict=True)


def as_deployment(rollout: dict[str, Any]) -> dict[str, Any]:
    """A Rollout's pod template and selector in a Deployment, for the core schema to check."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": rollout["metadata"]["name"]},
        "spec": {"selector": rollout["spec"]["selector"], "template": rollout["spec"]["template"]},
    }


# -- every resource is valid ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["churn-api", "churn-canary", "churn-bg", "churn-rolling"])
def test_core_resources_validate_and_argo_ones_use_documented_fields(plan: Plan, name: str) -> None:
    files = files_of(plan, name)
    kinds = {f.kind for f in files}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler"} <= kinds
    for file in files:
        manifest = file.manifest
        if manifest["apiVersion"].startswith("argoproj.io/"):
            assert_argo_fields(manifest)
            if manifest["kind"] == "Rollout":
                validate_core(as_deployment(manifest))
        else:
            validate_core(manifest)
        assert manifest["metadata"]["namespace"] == "ml"


def test_a_strict_validation_would_catch_an_unknown_field(plan: Plan) -> None:
    deployment = by_path(files_of(plan, "churn-api"))["deployment.yaml"]
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_core(broken)


def test_a_service_renders_its_stable_deployment_service_and_autoscaler(plan: Plan) -> None:
    files = by_path(files_of(plan, "churn-api"))
    assert sorted(files) == ["deployment.yaml", "hpa.yaml", "service.yaml"]
    deployment = files["deployment.yaml"]
    assert deployment["metadata"]["name"] == "churn-api-stable"
    assert deployment["spec"]["replicas"] == 3
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/ml/churn-api:m3-abc"
    assert container["ports"] == [{"name": "http", "containerPort": 3100}]
    assert {"name": "SHIPYARD_VARIANT", "value": "stable"} in container["env"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    hpa = files["hpa.yaml"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "churn-api-stable",
    }
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 8)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    service = files["service.yaml"]["spec"]
    assert service["selector"] == deployment["spec"]["selector"]["matchLabels"]


# -- rollouts -------------------------------------------------------------------------------


def test_a_rollout_renders_both_sets_with_a_deployment_per_variant(plan: Plan) -> None:
    files = by_path(files_of(plan, "churn-canary"))
    assert sorted(files) == [
        "argo/analysistemplate.yaml",
        "argo/hpa.yaml",
        "argo/rollout.yaml",
        "argo/service.yaml",
        "plain/deployment-challenger.yaml",
        "plain/deployment-stable.yaml",
        "plain/hpa.yaml",
        "plain/service-preview.yaml",
        "plain/service.yaml",
    ]
    env = {
        path: files[path]["spec"]["template"]["spec"]["containers"][0]["env"]
        for path in ("plain/deployment-stable.yaml", "plain/deployment-challenger.yaml")
    }
    assert {"name": "SHIPYARD_VARIANT", "value": "stable"} in env["plain/deployment-stable.yaml"]
    assert {"name": "SHIPYARD_VARIANT", "value": "challenger"} in env[
        "plain/deployment-challenger.yaml"
    ]
    rollout = files["argo/rollout.yaml"]
    assert rollout["spec"]["template"]["metadata"]["labels"]["shipyard.io/variant"] == "challenger"
    assert files["argo/hpa.yaml"]["spec"]["scaleTargetRef"] == {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "name": "churn-api",
    }
    # the two sets never select each other's pods
    argo_pods = rollout["spec"]["selector"]["matchLabels"]
    plain_pods = files["plain/deployment-stable.yaml"]["spec"]["selector"]["matchLabels"]
    assert argo_pods["shipyard.io/workload"] != plain_pods["shipyard.io/workload"]


def test_canary_steps_follow_the_stages(plan: Plan) -> None:
    rollout = by_path(files_of(plan, "churn-canary"))["argo/rollout.yaml"]
    canary = rollout["spec"]["strategy"]["canary"]
    assert canary["steps"] == [
        {"setWeight": 10},
        {"pause": {"duration": "120s"}},
        {"setWeight": 50},
        {"pause": {"duration": "300s"}},
    ]
    assert canary["analysis"]["templates"] == [{"templateName": "churn-canary"}]
    assert canary["analysis"]["args"] == [
        {"name": "prometheus-address", "value": "http://prom.ml:9090"}
    ]
    # what Argo cannot hold a step for is named, not dropped
    assert rollout["metadata"]["annotations"][NOT_IN_ARGO] == "canary 10%: min_requests 100"


def test_a_rollout_that_pauses_on_success_waits_at_the_last_weight(tmp_path: Path) -> None:
    text = replaced(
        SPEC,
        (
            "    candidate: challenger\n    steps:",
            "    on_success: pause\n    candidate: challenger\n    steps:",
        ),
    )
    rollout = by_path(files_of(compile_text(tmp_path, text), "churn-canary"))["argo/rollout.yaml"]
    assert rollout["spec"]["strategy"]["canary"]["steps"][-1] == {"pause": {}}


def test_blue_green_switches_services_and_keeps_the_old_version_for_the_window(
    plan: Plan,
) -> None:
    files = by_path(files_of(plan, "churn-bg"))
    blue_green = files["argo/rollout.yaml"]["spec"]["strategy"]["blueGreen"]
    assert blue_green["activeService"] == files["argo/service.yaml"]["metadata"]["name"]
    assert blue_green["previewService"] == files["argo/service-preview.yaml"]["metadata"]["name"]
    assert blue_green["autoPromotionEnabled"] is True
    assert blue_green["scaleDownDelaySeconds"] == 15 * 60
    assert blue_green["postPromotionAnalysis"]["templates"] == [{"templateName": "churn-bg"}]
    # without Argo: the plain Service selects stable; its variant selector is the cutover
    service = files["plain/service.yaml"]
    assert service["spec"]["selector"]["shipyard.io/variant"] == "stable"
    preview = files["plain/service-preview.yaml"]
    assert preview["spec"]["selector"]["shipyard.io/variant"] == "challenger"
    candidate = files["plain/deployment-challenger.yaml"]["spec"]["template"]["metadata"]
    assert preview["spec"]["selector"].items() <= candidate["labels"].items()


def test_rolling_is_a_canary_without_steps_one_pod_at_a_time(plan: Plan) -> None:
    canary = by_path(files_of(plan, "churn-rolling"))["argo/rollout.yaml"]["spec"]["strategy"][
        "canary"
    ]
    assert "steps" not in canary
    assert (canary["maxSurge"], canary["maxUnavailable"]) == (1, 0)
    assert "analysis" in canary


# -- analysis -------------------------------------------------------------------------------


def test_the_analysis_template_queries_the_services_metrics(plan: Plan) -> None:
    template = by_path(files_of(plan, "churn-canary"))["argo/analysistemplate.yaml"]
    metrics = {m["name"]: m for m in template["spec"]["metrics"]}
    assert sorted(metrics) == ["error-rate", "latency-p99", "query-4"]
    for metric in metrics.values():
        assert metric["interval"] == "30s"
        assert (metric["failureLimit"], metric["inconclusiveLimit"]) == (2, 1)
        assert metric["provider"]["prometheus"]["address"] == "{{args.prometheus-address}}"
    error = metrics["error-rate"]["provider"]["prometheus"]["query"]
    assert 'resource="service.churn-api"' in error
    assert 'variant="challenger"' in error
    assert 'status=~"5.."' in error and "shipyard_service_requests_total" in error
    assert 'endpoint="predict"' in error
    assert metrics["error-rate"]["successCondition"] == "len(result) > 0 && result[0] <= 0.01"
    assert metrics["error-rate"]["failureCondition"] == "len(result) > 0 && (result[0] > 0.01)"
    latency = metrics["latency-p99"]["provider"]["prometheus"]["query"]
    assert latency.startswith("histogram_quantile(0.99, sum by (le) (rate(")
    assert "shipyard_service_request_duration_seconds_bucket{" in latency
    assert 'resource="service.churn-api"' in latency
    assert metrics["latency-p99"]["successCondition"].endswith("result[0] <= 0.25")
    query = metrics["query-4"]
    assert query["provider"]["prometheus"]["query"] == (
        'sum(rate(my_metric{variant="challenger"}[1m]))'
    )
    assert query["successCondition"] == "len(result) > 0 && result[0] >= 1"
    assert template["spec"]["args"] == [
        {"name": "prometheus-address", "value": "http://prom.ml:9090"}
    ]


def test_what_prometheus_cannot_judge_is_named_on_the_template(plan: Plan) -> None:
    template = by_path(files_of(plan, "churn-canary"))["argo/analysistemplate.yaml"]
    left_out = template["metadata"]["annotations"][NOT_IN_PROMETHEUS].split(",")
    assert left_out == ["error_rate:compare-stable", "prediction_shift"]
    assert all("prediction" not in m["name"] for m in template["spec"]["metrics"])


def test_promql_is_balanced_and_names_only_exported_metrics(plan: Plan) -> None:
    """promtool is not here: a bracket-balance check and the metric names the service's
    /metrics exports (shipyard/serving/telemetry.py) stand in for a parse."""
    template = by_path(files_of(plan, "churn-canary"))["argo/analysistemplate.yaml"]
    for metric in template["spec"]["metrics"][:2]:
        query = metric["provider"]["prometheus"]["query"]
        for left, right in ("()", "{}", "[]"):
            assert query.count(left) == query.count(right), query
        names = set(re.findall(r"\b(shipyard_[a-z_]+)\{", query))
        assert names <= {
            "shipyard_service_requests_total",
            "shipyard_service_request_duration_seconds_bucket",
        }


def test_an_analysis_prometheus_cannot_run_at_all_renders_no_template(tmp_path: Path) -> None:
    plan = compile_text(tmp_path, SPEC)
    rollout = plan.named(RolloutStep, "churn-canary")
    only_psi = rollout.model_copy(
        update={"metrics": tuple(m for m in rollout.metrics if m.kind == "prediction_shift")}
    )
    service = plan.named(ServiceStep, "churn-api")
    files = by_path(rollout_manifests(only_psi, service, plan.kubernetes, "v1"))
    assert "argo/analysistemplate.yaml" not in files
    assert "analysis" not in files["argo/rollout.yaml"]["spec"]["strategy"]["canary"]


# -- names, tags, defaults ------------------------------------------------------------------


def test_defaults_without_kubernetes_settings(tmp_path: Path) -> None:
    text = (
        SPEC.split("datasets:")[0].split("  local:")[0]
        + "  local: {}\ndatasets:"
        + (SPEC.split("datasets:")[1])
    )
    plan = compile_text(tmp_path, text)
    files = by_path(files_of(plan, "churn-api"))
    deployment = files["deployment.yaml"]
    assert deployment["metadata"]["namespace"] == "default"
    assert deployment["spec"]["replicas"] == 2
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "churn-api:latest"  # nothing built, no registry
    hpa = files["hpa.yaml"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 70


def test_the_tag_defaults_to_the_last_built_bento(tmp_path: Path) -> None:
    text = SPEC.replace("      image_tag: m3-abc\n", "")
    plan = compile_text(tmp_path, text)
    service = plan.named(ServiceStep, "churn-api")
    store = Path(service.state_dir) / "bentoml" / "bentos" / "churn-api"
    store.mkdir(parents=True)
    (store / "latest").write_text("m4-0123456789\n")
    files, note = render_files(plan, "churn-api")
    image = files[0].manifest["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.com/ml/churn-api:m4-0123456789"
    assert note is None


def test_an_old_plan_without_kubernetes_settings_still_loads(plan: Plan) -> None:
    data = plan.model_dump(mode="json")
    del data["kubernetes"]
    assert Plan.model_validate(data).kubernetes.namespace == "default"


def test_min_replicas_above_max_is_a_spec_error(tmp_path: Path) -> None:
    from .specs import check

    text = replaced(SPEC, ("      min_replicas: 3\n", "      min_replicas: 9\n"))
    errors = [d for d in check(text) if d.is_error]
    assert [d.code for d in errors] == ["E103"], errors
    assert "min_replicas 9 is above max_replicas 8" in errors[0].message


def test_an_unknown_name_names_the_services_and_rollouts(plan: Plan) -> None:
    with pytest.raises(ShipyardError) as caught:
        resolve(plan, "churn-canry")
    assert "neither a service nor a rollout" in caught.value.message
    assert caught.value.hint is not None
    assert "did you mean 'churn-canary'?" in caught.value.hint
    assert "services: churn-api, churn-blue, churn-roll" in caught.value.hint
    assert "rollouts: churn-canary, churn-bg, churn-rolling" in caught.value.hint


# -- the command ----------------------------------------------------------------------------


def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "pipelines.yaml"
    path.write_text(SPEC, encoding="utf-8")
    return path


def test_the_cli_writes_one_file_per_resource(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "k8s"
    assert main(["-f", str(spec_file(tmp_path)), "k8s", "render", "churn-api", "-o", str(out)]) == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.yaml"))
    assert written == ["deployment.yaml", "hpa.yaml", "service.yaml"]
    text = (out / "deployment.yaml").read_text()
    assert text.startswith("# Deployment churn-api-stable:")
    validate_core(yaml.safe_load(text))
    printed = capsys.readouterr().out
    assert f"wrote {out / 'deployment.yaml'}" in printed
    assert "kubectl apply -f" in printed


def test_the_cli_writes_a_rollouts_two_sets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "k8s"
    assert main(["-f", str(spec_file(tmp_path)), "k8s", "render", "churn-bg", "-o", str(out)]) == 0
    assert {p.name for p in (out / "argo").iterdir()} >= {"rollout.yaml", "analysistemplate.yaml"}
    header = (out / "plain" / "service.yaml").read_text().split("apiVersion:")[0]
    assert "kubectl -n ml patch service churn-blue" in header and "selector" in header
    for path in out.rglob("*.yaml"):
        assert yaml.safe_load(path.read_text())["kind"]
    assert "apply one set, not both" in capsys.readouterr().out


def test_the_cli_refuses_an_unknown_name_naming_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "k8s"
    code = main(["-f", str(spec_file(tmp_path)), "k8s", "render", "nope", "-o", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert "'nope' is neither a service nor a rollout" in err
    assert "churn-api" in err and "churn-canary" in err
    assert not out.exists()
