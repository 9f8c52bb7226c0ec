"""A real `bentoml serve` process built from pipelines.yaml, answering real HTTP calls.

One module-scoped service: the churn model trained twice (champion v2, challenger v1),
built and started by the build-service flow. Tests cover auth and roles, bad requests,
rate limits, masking, correlation ids, the prediction and feedback logs, metrics,
routing through the admin API, hot reload under load and an OpenAPI fuzz run.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import MODEL_SPEC, SPEC, compile_spec, free_port, run_flow

from shipyard.compiler import FeatureRepoStep, Plan, ServiceStep

pytestmark = pytest.mark.usefixtures("prefect_harness")

SERVICE_SPEC = """
services:
  churn-api:
    model: churn
    candidates: [challenger]
    port: {port}
    auth:
      api_keys:
        ops: {{key: "${{secret:test-ops-key}}", roles: [predict, feedback, admin]}}
        app: {{key: "${{secret:test-app-key}}", roles: [predict, feedback]}}
        burst: {{key: "${{secret:test-burst-key}}", roles: [predict], rate_limit: 5/second}}
        reader: {{key: "${{secret:test-reader-key}}", roles: [feedback]}}
      jwt: {{algorithm: HS256, secret: "${{secret:test-jwt-secret}}", audience: churn-api}}
    rate_limit: {{per_key: 1000/second}}
    batching: {{max_batch_size: 50, max_request_mb: 0.05}}
    logging: {{mask: [monthly_charges, "email*", "*_token"]}}
"""
# Rules on request fields besides the shared spec's between(monthly_charges, 0..500): one the
# data holds without exception and one it lets 1% of rows fail (`mostly`: flagged, never refused)
EXPECTATIONS = (
    "      - between: {{column: tenure_months, min: 0, max: 240}}\n"
    "      - between: {{column: support_calls, min: 0, max: 20, mostly: 0.99}}\n"
)
SECRETS = {
    "SHIPYARD_SECRET_TEST_OPS_KEY": "ops-key-0123456789",
    "SHIPYARD_SECRET_TEST_APP_KEY": "app-key-0123456789",
    "SHIPYARD_SECRET_TEST_BURST_KEY": "burst-key-0123456789",
    "SHIPYARD_SECRET_TEST_READER_KEY": "reader-key-0123456789",
    "SHIPYARD_SECRET_TEST_JWT_SECRET": "jwt-secret-0123456789-0123456789-0123456789",
}
# Python hides deprecation warnings outside __main__; show those of BentoML's request dispatch
# every time, so a warning per request would show in the service log (and fail the log test).
WARNINGS = "always::DeprecationWarning:_bentoml_impl.server.app"
OPS = {"Authorization": "Bearer ops-key-0123456789"}
APP = {"Authorization": "Bearer app-key-0123456789"}
ROW = {
    "region": "north",
    "plan": "pro",
    "tenure_months": 12,
    "monthly_charges": 123.4567,
    "support_calls": 2,
    "data_usage_gb": 10.5,
}


@dataclass
class Served:
    url: str
    plan: Plan
    step: ServiceStep
    project: Path

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        content = body if isinstance(body, str | bytes) else json.dumps(body)
        return httpx.post(self.url + path, content=content, headers=headers or {}, timeout=30)


def _train(plan: Plan, force: bool = False) -> None:
    from flows.train_model import train_model

    state = run_flow(plan, train_model, model="churn", force=force)
    assert state.is_completed(), state


def _client(plan: Plan) -> Any:
    import mlflow

    mlflow.set_tracking_uri(plan.blocks.mlflow.tracking_uri)
    return mlflow.MlflowClient()


def _deploy(plan: Plan, service: str = "churn-api") -> Any:
    from flows.build_service import build_service

    state = run_flow(plan, build_service, service=service)
    assert state.is_completed(), state.result(raise_on_failure=False)
    return state.result()


def _build(plan: Plan, step: ServiceStep) -> Any:
    from shipyard.serving.build import build_service

    repo = plan.steps.get("features.repo")
    repo = repo if isinstance(repo, FeatureRepoStep) else None
    return build_service(step, repo, plan.blocks.mlflow.tracking_uri)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[Served]:
    from shipyard.demo_data import write_customers
    from shipyard.serving import deploy

    project = tmp_path_factory.mktemp("serving")
    spec = SPEC.replace("      - row_count:", EXPECTATIONS + "      - row_count:")
    text = spec.format(port=free_port()) + MODEL_SPEC.format(threshold=">= 0.5")
    text += SERVICE_SPEC.format(port=free_port())
    (project / "pipelines.yaml").write_text(text)
    write_customers(project / "data" / "customers.parquet", rows=1200)
    patch = pytest.MonkeyPatch()
    for key, value in SECRETS.items():
        patch.setenv(key, value)
    patch.setenv("PYTHONWARNINGS", WARNINGS)
    plan = compile_spec(project / "pipelines.yaml")
    _train(plan)
    _train(plan, force=True)  # version 2
    client = _client(plan)
    client.set_registered_model_alias("test-project.churn", "champion", "2")
    client.set_registered_model_alias("test-project.churn", "challenger", "1")
    step = plan.named(ServiceStep, "churn-api")
    try:
        result = _deploy(plan)
        assert "serves" in result.outcome, result
        yield Served(deploy.base_url(step), plan, step, project)
    finally:
        deploy.stop(step)
        patch.undo()


def test_one_row_and_a_batch_with_correlation_ids(served: Served) -> None:
    one = served.post("/predict", ROW, {**APP, "X-Request-ID": "req-abc-1"})
    assert one.status_code == 200, one.text
    assert one.headers["x-request-id"] == "req-abc-1"
    body = one.json()
    assert body["request_id"] == "req-abc-1"
    [prediction] = body["predictions"]
    assert prediction["variant"] == "stable"
    assert prediction["model_version"] == "2"
    assert isinstance(prediction["prediction"], bool)
    assert 0.0 <= prediction["probability"] <= 1.0

    batch = served.post("/predict", {"rows": [ROW, {**ROW, "plan": "basic"}] * 5}, APP)
    assert batch.status_code == 200, batch.text
    assert len(batch.json()["predictions"]) == 10
    generated = batch.headers["x-request-id"]
    assert len(generated) == 32 and batch.json()["request_id"] == generated


def test_auth_says_why(served: Served) -> None:
    import jwt

    missing = served.post("/predict", ROW)
    assert missing.status_code == 401
    assert missing.json()["error"] == "missing_credentials"
    assert "Bearer" in missing.headers["www-authenticate"]
    wrong = served.post("/predict", ROW, {"X-API-Key": "nope"})
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_key")
    forbidden = served.post("/predict", ROW, {"X-API-Key": "reader-key-0123456789"})
    assert forbidden.status_code == 403
    assert "reader" in forbidden.json()["message"] and "predict" in forbidden.json()["message"]
    not_admin = served.post("/admin/routing", {"weights": {"stable": 1}, "reason": "x"}, APP)
    assert not_admin.status_code == 403

    secret = SECRETS["SHIPYARD_SECRET_TEST_JWT_SECRET"]

    def token(**claims: Any) -> dict[str, str]:
        payload = {"sub": "alice", "aud": "churn-api", "exp": int(time.time()) + 60, **claims}
        return {"Authorization": "Bearer " + jwt.encode(payload, secret, algorithm="HS256")}

    ok = served.post("/predict", ROW, token(roles=["predict"]))
    assert ok.status_code == 200, ok.text
    expired = served.post("/predict", ROW, token(roles=["predict"], exp=int(time.time()) - 5))
    assert (expired.status_code, expired.json()["error"]) == (401, "token_expired")
    audience = served.post("/predict", ROW, token(roles=["predict"], aud="other"))
    assert (audience.status_code, audience.json()["error"]) == (401, "invalid_token")
    no_role = served.post("/predict", ROW, token(roles=["feedback"]))
    assert no_role.status_code == 403


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("{not json", 400),
        ({k: v for k, v in ROW.items() if k != "plan"}, 400),
        ({**ROW, "surprise": 1}, 400),
        ({**ROW, "tenure_months": "twelve"}, 400),
        ({**ROW, "plan": "platinum"}, 400),
        ({"rows": []}, 400),
        ({"rows": [ROW] * 51}, 413),
        ([1, 2, 3], 400),
        ("", 400),
    ],
    ids=["malformed", "missing", "extra", "type", "category", "empty", "oversize", "list", "empty"],
)
def test_bad_requests_are_4xx_with_a_message(served: Served, body: Any, status: int) -> None:
    response = served.post("/predict", body, APP)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["error"] and answer["message"]
    assert answer["request_id"] == response.headers["x-request-id"]
    assert "errors.pydantic.dev" not in response.text


def test_a_body_over_the_size_limit_is_413_whether_or_not_it_says_its_length(
    served: Served,
) -> None:
    big = json.dumps({"rows": [{**ROW, "region": "x" * 60_000}]}).encode()  # over 0.05 MiB
    said = served.post("/predict", big, APP)
    assert said.status_code == 413, said.text
    assert said.json()["error"] == "request_too_large"
    assert "services.churn-api.batching.max_request_mb" in said.json()["message"]

    def chunks(body: bytes) -> Iterator[bytes]:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    unsaid = httpx.post(served.url + "/predict", content=chunks(big), headers=APP, timeout=30)
    assert unsaid.status_code == 413, unsaid.text
    small = httpx.post(
        served.url + "/predict", content=chunks(json.dumps(ROW).encode()), headers=APP, timeout=30
    )
    assert small.status_code == 200, small.text  # a chunked body under the limit is read whole


def test_unknown_variant_is_400(served: Served) -> None:
    response = served.post("/predict", ROW, {**APP, "X-Shipyard-Variant": "nope"})
    assert response.status_code == 400
    assert "stable" in response.json()["message"]


def test_rate_limit_answers_429_with_retry_after(served: Served) -> None:
    headers = {"X-API-Key": "burst-key-0123456789"}
    with httpx.Client(timeout=30) as client:
        statuses = []
        for _ in range(60):
            response = client.post(served.url + "/predict", json=ROW, headers=headers)
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert int(response.headers["retry-after"]) >= 1
                assert "burst" in response.json()["message"]
                break
    assert 429 in statuses, statuses
    assert set(statuses) <= {200, 429}


def _rows(database: Path, table: str) -> list[dict[str, Any]]:
    with sqlite3.connect(database) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(f"SELECT * FROM {table}")]


def _wait_for(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_prediction_and_feedback_logs_mask_fields(served: Served) -> None:
    predicted = served.post("/predict", ROW, {**APP, "X-Request-ID": "masked-1"})
    assert predicted.status_code == 200
    feedback = served.post("/feedback", {"request_id": "masked-1", "outcome": 1}, APP)
    assert feedback.status_code == 200, feedback.text
    by_entity = served.post("/feedback", {"entity": {"customer_id": 7}, "outcome": True}, APP)
    assert by_entity.status_code == 200
    unkeyed = served.post("/feedback", {"outcome": 1}, APP)
    assert unkeyed.status_code == 400 and "request_id" in unkeyed.text
    bad = served.post("/predict", {**ROW, "monthly_charges": 987.6543, "email_address": "x"}, APP)
    assert bad.status_code == 400

    database = Path(served.step.log_database.removeprefix("sqlite:///"))
    logged = _wait_for(
        lambda: [r for r in _rows(database, "predictions") if r["request_id"] == "masked-1"]
    )
    assert logged, "the prediction was not logged"
    inputs = json.loads(logged[0]["inputs"])
    assert inputs["monthly_charges"] == "***" and inputs["plan"] == "pro"
    assert logged[0]["variant"] == "stable" and logged[0]["model_version"] == "2"
    batch = served.post(
        "/predict", {"rows": [ROW, {**ROW, "plan": "basic"}]}, {**APP, "X-Request-ID": "b-7"}
    )
    assert batch.status_code == 200
    from shipyard.serving.predlog import PredictionLog

    reader = PredictionLog(served.step.log_database, "churn-api")
    try:
        exploded = _wait_for(
            lambda: [r for r in reader.predictions() if r["request_id"].startswith("b-7/")]
        )
    finally:
        reader.close()
    assert [r["request_id"] for r in exploded] == ["b-7/0", "b-7/1"]
    assert [r["inputs"]["plan"] for r in exploded] == ["pro", "basic"]
    assert all(r["inputs"]["monthly_charges"] == "***" for r in exploded)
    assert list(exploded[0]["inputs"]) == list(ROW)  # the columns keep their order
    [raw] = [r for r in _rows(database, "predictions") if r["request_id"] == "b-7"]
    assert "123.4567" not in raw["inputs"]  # a masked value never reaches the table
    assert json.loads(raw["inputs"])["masked"] == ["monthly_charges"]
    outcomes = _wait_for(lambda: _rows(database, "feedback"))
    assert {r["request_id"] for r in outcomes} >= {"masked-1"}
    assert any(r["entity"] and json.loads(r["entity"]) == {"customer_id": 7} for r in outcomes)

    from shipyard.serving.deploy import process

    log_text = process(served.step).log_file.read_text()
    assert "masked-1" in log_text  # the JSON request log carries the correlation id
    assert "123.4567" not in log_text and "987.6543" not in log_text
    request_lines = [
        json.loads(line)
        for line in log_text.splitlines()
        if line.startswith("{") and '"request_id"' in line
    ]
    assert any(r["request_id"] == "masked-1" and r.get("status") == 200 for r in request_lines)


def _value(text: str, sample: str, **labels: str) -> float:
    """The sum of the samples named `sample` whose labels include `labels`."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample and labels.items() <= s.labels.items()
    )


def test_metrics_are_labelled_by_project_resource_and_variant(served: Served) -> None:
    assert served.post("/predict", ROW).status_code == 401
    before = httpx.get(served.url + "/metrics", timeout=30).text
    for _ in range(3):
        assert served.post("/predict", ROW, APP).status_code == 200
    text = httpx.get(served.url + "/metrics", timeout=30).text

    def grew(sample: str, **labels: str) -> float:
        return _value(text, sample, **labels) - _value(before, sample, **labels)

    stable = {"project": "test-project", "resource": "service.churn-api", "variant": "stable"}
    # input and prediction histograms are buffered in the worker and written before a scrape
    assert grew("shipyard_service_input_count", feature="tenure_months", **stable) == 3
    assert grew("shipyard_service_input_sum", feature="tenure_months", **stable) == 36
    assert grew("shipyard_service_prediction_count", model_version="2", **stable) == 3
    predict = {"endpoint": "/predict", "model_version": "2", **stable}
    assert grew("shipyard_service_requests_total", status="200", **predict) == 3
    assert grew("shipyard_service_request_duration_seconds_count", **predict) == 3
    assert grew("shipyard_service_batch_size_count", model_version="2", **stable) == 3
    assert _value(text, "shipyard_service_requests_total", status="401", variant="none") >= 1
    from prometheus_client.parser import text_string_to_metric_families

    ours = [
        s
        for family in text_string_to_metric_families(text)
        if family.name.startswith("shipyard_service_")
        for s in family.samples
    ]
    assert ours and all(
        s.labels["project"] == "test-project"
        and s.labels["resource"] == "service.churn-api"
        and "service" not in s.labels
        for s in ours
    )
    # one input family, each feature with its training-data deciles as buckets
    assert text.count("# TYPE shipyard_service_input histogram") == 1
    assert text.count("# HELP shipyard_service_input ") == 1
    features = {s.labels["feature"] for s in ours if s.name == "shipyard_service_input_count"}
    assert {"tenure_months", "monthly_charges", "support_calls"} <= features
    bounds = {
        s.labels["le"]
        for s in ours
        if s.name == "shipyard_service_input_bucket" and s.labels["feature"] == "monthly_charges"
    }
    assert len(bounds) > 3 and "+Inf" in bounds
    assert all(len(bound) <= 7 for bound in bounds), bounds  # 29.85, never 29.850000000000001


def test_the_service_log_is_json_lines_with_request_ids(served: Served) -> None:
    from shipyard.serving.deploy import process

    body = {**ROW, "tenure_months": "twelve"}
    assert served.post("/predict", body, {**APP, "X-Request-ID": "bad-1"}).status_code == 400
    assert served.post("/predict", ROW, {**APP, "X-Request-ID": "good-1"}).status_code == 200
    feedback = {"request_id": "good-1", "outcome": 1}
    assert served.post("/feedback", feedback, {**APP, "X-Request-ID": "fb-1"}).status_code == 200
    log_file = process(served.step).log_file
    # a request's line is written once it is answered: wait for the last one
    assert _wait_for(lambda: '"request_id":"fb-1"' in log_file.read_text())
    lines = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)  # all JSON
    # BentoML's own lines: the `bentoml serve` process's and the workers'
    messages = [line["message"] for line in lines if line["logger"].startswith("bentoml")]
    assert any(m.startswith("Starting production HTTP BentoServer") for m in messages)
    assert any(m.startswith("Service loaded from Bento directory") for m in messages)
    # a line BentoML logs while answering a request carries that request's id
    [rejected] = [
        line
        for line in lines
        if line["logger"] == "bentoml._internal.server.http_app"
        and line.get("request_id") == "bad-1"
    ]
    assert "rows.0.tenure_months" in rejected["message"] and "twelve" not in rejected["message"]
    answered = {
        line["request_id"]: line["status"]
        for line in lines
        if line["logger"] == "shipyard.serving.requests"
    }
    assert (answered["bad-1"], answered["good-1"], answered["fb-1"]) == (400, 200, 200)
    # no warning is logged per request (BentoML's dispatch warnings are shown, see WARNINGS)
    warned = [line for line in lines if line["logger"] == "py.warnings" and "request_id" in line]
    assert not warned, warned[:3]


def test_routing_changes_at_run_time_sticky_forced_and_audited(served: Served) -> None:
    from shipyard.serving.control import ControlStore

    body = {
        "weights": {"stable": 50, "challenger": 50},
        "sticky_key": "tenure_months",
        "reason": "test split",
    }
    changed = served.post("/admin/routing", body, OPS)
    assert changed.status_code == 200, changed.text
    revision = changed.json()["revision"]
    assert revision >= 2  # the deploy was the first change
    try:
        seen: dict[int, set[str]] = {}
        for tenure in range(1, 30):
            for _ in range(2):
                response = served.post("/predict", {**ROW, "tenure_months": tenure}, OPS)
                assert response.status_code == 200, response.text
                seen.setdefault(tenure, set()).add(response.json()["predictions"][0]["variant"])
        assert all(len(variants) == 1 for variants in seen.values()), seen
        assert set().union(*seen.values()) == {"stable", "challenger"}
        forced = served.post("/predict", ROW, {**OPS, "X-Shipyard-Variant": "challenger"})
        assert forced.json()["predictions"][0]["model_version"] == "1"
        current = httpx.get(served.url + "/admin/routing", headers=OPS, timeout=30).json()
        assert current["weights"]["challenger"] == 50 and current["revision"] == revision
        assert current["salt"] == "service.churn-api"
        unknown = served.post("/admin/routing", {"weights": {"canary": 1}, "reason": "x"}, OPS)
        assert unknown.status_code == 400 and "canary" in unknown.json()["message"]
        # a writer that read an older revision loses: 409 naming the revision, nothing applied
        stale = {**body, "weights": {"stable": 1}, "expected_revision": revision - 1}
        conflict = served.post("/admin/routing", stale, OPS)
        assert conflict.status_code == 409, conflict.text
        assert conflict.json()["error"] == "revision_conflict"
        assert f"revision {revision}, not {revision - 1}" in conflict.json()["message"]
        after = httpx.get(served.url + "/admin/routing", headers=OPS, timeout=30).json()
        assert after["weights"]["challenger"] == 50 and after["revision"] == revision
    finally:
        reset = {"weights": {"stable": 100}, "reason": "test done"}
        assert served.post("/admin/routing", reset, OPS).status_code == 200
    history = ControlStore(served.step.control_database).history("churn-api")
    split = next(r for r in history if r.reason == "test split")
    assert (split.action, split.actor, split.revision) == ("routing", "ops", revision)
    assert split.before is not None and split.before["routing"]["weights"]["stable"] == 100.0
    assert split.after["routing"]["weights"] == {"stable": 50.0, "challenger": 50.0}
    assert history[0].reason == "test done"  # newest first


def test_build_names_a_version_missing_from_the_registry(served: Served) -> None:
    from shipyard.compiler.services import VariantRef
    from shipyard.errors import ShipyardError

    pinned = served.step.model_copy(update={"variants": [VariantRef(name="stable", version=99)]})
    with pytest.raises(ShipyardError) as caught:
        _build(served.plan, pinned)
    assert "test-project.churn" in str(caught.value) and "version 99" in str(caught.value)
    assert "shipyard run train-model churn" in (caught.value.hint or "")


@contextmanager
def _sibling(served: Served, name: str, settings: str) -> Iterator[tuple[ServiceStep, str]]:
    """Another service of the served model, with `settings` (YAML lines under it) added:
    built and started for the test, stopped after it."""
    from shipyard.serving import deploy

    text = (served.project / "pipelines.yaml").read_text()
    text = text.replace("  churn-api:\n", f"  {name}:\n{settings}")
    text = text.replace(f"port: {served.step.port}", f"port: {free_port()}")
    spec = served.project / f"pipelines-{name}.yaml"
    spec.write_text(text)
    plan = compile_spec(spec)
    step = plan.named(ServiceStep, name)
    try:
        url = deploy.start(step, _build(plan, step))
        yield step, url
    finally:
        deploy.stop(step)


# --- request checks (issue 11, item 6) ----------------------------------------------------------

TENURE_RULE = "between(tenure_months, 0.0..240.0)"
CHARGES_RULE = "between(monthly_charges, 0.0..500.0)"
CALLS_RULE = "between(support_calls, 0.0..20.0)"


def test_rows_failing_the_training_datas_expectations_are_flagged_and_counted(
    served: Served,
) -> None:
    """Before: a negative tenure the data forbids was answered 200 with nothing said."""
    labels = {"project": "test-project", "resource": "service.churn-api", "action": "flagged"}
    before = httpx.get(served.url + "/metrics", timeout=30).text
    rows = [
        ROW,
        {**ROW, "tenure_months": -3, "monthly_charges": 900.0},
        {**ROW, "support_calls": 45},
    ]
    response = served.post("/predict", {"rows": rows}, APP)
    assert response.status_code == 200, response.text
    first, second, third = response.json()["predictions"]
    assert "failed_expectations" not in first  # a row within every rule says nothing
    assert second["failed_expectations"] == [CHARGES_RULE, TENURE_RULE]
    assert third["failed_expectations"] == [CALLS_RULE]
    assert isinstance(second["prediction"], bool)  # still answered
    single = served.post("/predict", {**ROW, "tenure_months": -1}, APP)
    assert single.json()["predictions"][0]["failed_expectations"] == [TENURE_RULE]
    after = httpx.get(served.url + "/metrics", timeout=30).text

    def grew(column: str, rule: str) -> float:
        sample = "shipyard_service_failed_expectations_total"
        labelled = {**labels, "column": column, "rule": rule}
        return _value(after, sample, **labelled) - _value(before, sample, **labelled)

    assert grew("tenure_months", TENURE_RULE) == 2
    assert grew("monthly_charges", CHARGES_RULE) == 1
    assert grew("support_calls", CALLS_RULE) == 1


def test_reject_refuses_rows_failing_an_expectation_naming_row_field_and_rule(
    served: Served,
) -> None:
    from shipyard.serving.predlog import PredictionLog

    with _sibling(served, "churn-strict", "    request_checks: reject\n") as (step, url):
        bad = {"rows": [ROW, {**ROW, "tenure_months": -3}]}
        refused = httpx.post(
            url + "/predict", json=bad, headers={**APP, "X-Request-ID": "strict-1"}, timeout=30
        )
        assert refused.status_code == 400, refused.text
        body = refused.json()
        assert body["error"] == "failed_expectations"
        assert body["message"].startswith(
            f"rows.1.tenure_months: below the minimum 0 ({TENURE_RULE} of dataset 'customers')"
        )
        assert "services.churn-strict.request_checks: flag" in body["message"]
        assert body["detail"] == [
            {"loc": ["rows", 1, "tenure_months"], "rule": TENURE_RULE, "msg": "below the minimum 0"}
        ]
        assert body["request_id"] == "strict-1"
        # a rule the data itself lets 1% of rows fail flags, never refuses
        tolerated = httpx.post(url + "/predict", json={**ROW, "support_calls": 45}, headers=APP)
        assert tolerated.status_code == 200, tolerated.text
        assert tolerated.json()["predictions"][0]["failed_expectations"] == [CALLS_RULE]
        metrics = httpx.get(url + "/metrics", timeout=30).text
        rejected = {"column": "tenure_months", "rule": TENURE_RULE, "action": "rejected"}
        assert _value(metrics, "shipyard_service_failed_expectations_total", **rejected) == 1
        log = PredictionLog(step.log_database, "churn-strict")
        try:
            assert _wait_for(lambda: log.predictions())  # the tolerated one
            assert not [p for p in log.predictions() if p["request_id"].startswith("strict-1")]
        finally:
            log.close()


# --- masking every stored and logged field (item 7) ---------------------------------------------

PLANTED_EMAIL = "planted.7f3a@leak.example"
PLANTED_TOKEN = "tok-planted-9c1e55d0"
PLANTED_NUMBER = 424242.4242  # in monthly_charges, a masked field
PLANTED_INTEGER = 10**30  # too large to store: refused, and never logged


def test_no_planted_secret_reaches_any_store_or_log(served: Served) -> None:
    """Before: the emails and tokens in a feedback's `outcome` were stored in plain text."""
    secret = {
        "label": 1,
        "email": PLANTED_EMAIL,
        "refresh_token": PLANTED_TOKEN,
        "contact": {"email_work": PLANTED_EMAIL, "devices": [{"push_token": PLANTED_TOKEN}]},
    }
    masked_row = {**ROW, "monthly_charges": PLANTED_NUMBER}
    assert (
        served.post("/predict", masked_row, {**APP, "X-Request-ID": "plant-1"}).status_code == 200
    )
    batch = {"rows": [masked_row, masked_row]}
    assert served.post("/predict", batch, {**APP, "X-Request-ID": "plant-2"}).status_code == 200
    refused: list[tuple[str, Any]] = [
        ("/predict", {**ROW, "email": PLANTED_EMAIL, "session_token": PLANTED_TOKEN}),
        ("/predict", json.dumps({"email": PLANTED_EMAIL, "session_token": PLANTED_TOKEN})[:-1]),
        ("/feedback", {"request_id": "plant-1", "outcome": {"card_token": PLANTED_INTEGER}}),
        ("/feedback", {"request_id": "plant-1", "outcome": PLANTED_EMAIL, "extra_token": 1}),
    ]
    for path, body in refused:
        assert served.post(path, body, APP).status_code == 400, body
    accepted: list[dict[str, Any]] = [
        {"request_id": "plant-1", "outcome": secret},
        {
            "entity": {"customer_id": 7, "email": PLANTED_EMAIL, "api_token": PLANTED_TOKEN},
            "outcome": secret,
        },
        {"request_id": "plant-2/1", "outcome": {"email": PLANTED_EMAIL}},
    ]
    for feedback in accepted:
        response = served.post("/feedback", feedback, {**APP, "X-Request-ID": "plant-feedback"})
        assert response.status_code == 200, response.text

    database = Path(served.step.log_database.removeprefix("sqlite:///"))

    def planted_feedback() -> list[dict[str, Any]]:
        return [
            r
            for r in _rows(database, "feedback")
            if r["request_id"] in ("plant-1", "plant-2/1") or "api_token" in (r["entity"] or "")
        ]

    assert _wait_for(lambda: len(planted_feedback()) == 3), planted_feedback()
    stored = planted_feedback()
    outcome = json.loads(next(r for r in stored if r["request_id"] == "plant-1")["outcome"])
    assert outcome == {
        "label": 1,
        "email": "***",
        "refresh_token": "***",
        "contact": {"email_work": "***", "devices": [{"push_token": "***"}]},
    }
    entity = json.loads(next(r for r in stored if r["request_id"] is None)["entity"])
    assert entity == {"customer_id": 7, "email": "***", "api_token": "***"}

    from shipyard.serving.deploy import process

    log_file = process(served.step).log_file
    assert _wait_for(lambda: "plant-feedback" in log_file.read_text())
    planted = [PLANTED_EMAIL, PLANTED_TOKEN, str(PLANTED_NUMBER), str(PLANTED_INTEGER)]
    files = [p for p in Path(served.step.state_dir).rglob("*") if p.is_file()]
    assert log_file in files and database in files

    def found_in(path: Path) -> list[str]:
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # a spool segment written and deleted meanwhile
            return []
        return [s for s in planted if s.encode() in data]

    leaks = {str(p.relative_to(served.step.state_dir)): found_in(p) for p in files}
    assert {path: found for path, found in leaks.items() if found} == {}


# --- missing entities, unknown request ids, hints (item 8) --------------------------------------


def test_feedback_for_an_unknown_request_id_is_404_and_a_just_answered_one_is_found(
    served: Served,
) -> None:
    """Before: feedback for any request id was stored with 200, known or not."""
    assert served.post("/predict", ROW, {**APP, "X-Request-ID": "fb-now-1"}).status_code == 200
    # at once: the prediction is in the worker's spool, not yet in the database
    right_after = served.post("/feedback", {"request_id": "fb-now-1", "outcome": 1}, APP)
    assert right_after.status_code == 200, right_after.text
    batch = {"rows": [ROW, ROW]}
    assert served.post("/predict", batch, {**APP, "X-Request-ID": "fb-batch"}).status_code == 200
    for request_id in ("fb-batch", "fb-batch/1"):
        row = served.post("/feedback", {"request_id": request_id, "outcome": 0}, APP)
        assert row.status_code == 200, row.text

    started = time.monotonic()
    unknown = served.post("/feedback", {"request_id": "never-predicted-1", "outcome": 1}, APP)
    assert unknown.status_code == 404, unknown.text
    assert time.monotonic() - started < 5
    body = unknown.json()
    assert body["error"] == "unknown_request_id"
    assert body["message"] == (
        "no prediction of service 'churn-api' has request id 'never-predicted-1'; send the "
        "`request_id` a /predict response returned (`<request_id>/<row>` for a row of a "
        'batch), or give the outcome by `entity` ({"customer_id": ...})'
    )
    database = Path(served.step.log_database.removeprefix("sqlite:///"))
    assert _wait_for(
        lambda: [r for r in _rows(database, "feedback") if r["request_id"] == "fb-batch/1"]
    )
    assert not [r for r in _rows(database, "feedback") if r["request_id"] == "never-predicted-1"]


# --- the OpenAPI document (item 9) --------------------------------------------------------------


def _schema_validator(document: dict[str, Any], pointer: str) -> Any:
    """A JSON Schema validator for the schema at `pointer` in the OpenAPI document."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:openapi", resource)
    return Draft202012Validator({"$ref": f"urn:openapi#{pointer}"}, registry=registry)


def test_the_openapi_document_declares_auth_real_errors_and_every_endpoint(
    served: Served,
) -> None:
    """Before: no security schemes (Swagger's "Try it out" sent no credentials), BentoML's
    error bodies in place of the real ones, no /info nor GET /admin/routing."""
    from openapi_spec_validator import OpenAPIV31SpecValidator

    document = httpx.get(served.url + "/docs.json", timeout=30).json()
    assert list(OpenAPIV31SpecValidator(document).iter_errors()) == []
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKeyHeader"] | {"description": ""} == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "",
    }
    assert (schemes["BearerAuth"]["scheme"], schemes["BearerAuth"]["bearerFormat"]) == (
        "bearer",
        "JWT",
    )
    paths = document["paths"]
    served_endpoints = {
        ("post", "/predict"),
        ("post", "/feedback"),
        ("get", "/admin/routing"),
        ("post", "/admin/routing"),
        ("post", "/admin/reload"),
        ("get", "/info"),
        ("get", "/livez"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/docs.json"),
        ("get", "/docs"),
    }
    documented = {(method, path) for path, item in paths.items() for method in item}
    assert served_endpoints <= documented
    for method, path in sorted(documented):  # and every documented endpoint is served
        answer = httpx.request(method.upper(), served.url + path, headers=OPS, json={}, timeout=30)
        assert answer.status_code != 404, (method, path, answer.text)
        needs_role = path in ("/predict", "/feedback") or path.startswith("/admin")
        security = paths[path][method]["security"]
        assert security == ([{"ApiKeyHeader": []}, {"BearerAuth": []}] if needs_role else [])

    # each error, as the service really answers it, fits the declared response
    too_many = {"rows": [ROW] * 51}
    cases = [
        ("/predict", ROW, {}, 401),
        ("/predict", ROW, {"X-API-Key": "reader-key-0123456789"}, 403),
        ("/predict", {**ROW, "plan": "platinum"}, APP, 400),
        ("/predict", too_many, APP, 413),
        ("/feedback", {"request_id": "never-predicted-2", "outcome": 1}, APP, 404),
        (
            "/admin/routing",
            {"weights": {"stable": 1}, "reason": "x", "expected_revision": 0},
            OPS,
            409,
        ),
    ]
    for path, body, headers, status in cases:
        answer = served.post(path, body, headers)
        assert answer.status_code == status, (path, answer.text)
        declared = paths[path]["post"]["responses"][str(status)]
        examples = declared["content"]["application/json"]["examples"]
        assert answer.json()["error"] in examples, (path, status, answer.json())
        validator = _schema_validator(document, "/components/schemas/Error")
        assert list(validator.iter_errors(answer.json())) == [], answer.json()
        if status == 401:
            assert "WWW-Authenticate" in declared["headers"] and answer.headers["www-authenticate"]
    # a success fits its schema too, flags included
    flagged = served.post("/predict", {**ROW, "tenure_months": -1}, APP)
    pointer = "/paths/~1predict/post/responses/200/content/application~1json/schema"
    assert list(_schema_validator(document, pointer).iter_errors(flagged.json())) == []
    # "Try it out" sends what the schemes declare: the header, or a bearer
    assert served.post("/predict", ROW, {"X-API-Key": "app-key-0123456789"}).status_code == 200


def test_docs_page_contacts_no_third_party(served: Served) -> None:
    for path in ("/docs", "/"):
        page = httpx.get(served.url + path, timeout=10)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "swagger-ui" in page.text and "./static_content/swagger-ui-bundle.js" in page.text
        assert "googletagmanager" not in page.text
    assert httpx.get(served.url + "/static_content/swagger-initializer.js").status_code == 200
    assert "/predict" in httpx.get(served.url + "/docs.json").json()["paths"]


def test_openapi_fuzz_finds_no_server_error(served: Served, tmp_path: Path) -> None:
    binary = Path(sys.executable).parent / "schemathesis"
    done = subprocess.run(
        [
            str(binary),
            "run",
            served.url + "/docs.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "-H",
            "Authorization: Bearer app-key-0123456789",
            "--exclude-path-regex",
            "^/admin",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        cwd=tmp_path,  # schemathesis keeps a .schemathesis/ cache in its working directory
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_hot_reload_under_load_drops_no_request(served: Served) -> None:
    failures: list[str] = []
    versions: list[str] = []
    stop = threading.Event()

    def load(headers: dict[str, str]) -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                try:
                    response = client.post(served.url + "/predict", json=ROW, headers=headers)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]}")
                else:
                    versions.append(response.json()["predictions"][0]["model_version"])
                time.sleep(0.03)

    threads = [threading.Thread(target=load, args=(h,)) for h in (OPS, APP)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        client = _client(served.plan)
        client.set_registered_model_alias("test-project.churn", "champion", "1")
        client.set_registered_model_alias("test-project.churn", "challenger", "2")
        result = _deploy(served.plan)
        assert "hot reload" in result.outcome, result
        time.sleep(1.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not failures, failures[:5]
    assert versions[0] == "2" and versions[-1] == "1", (versions[:3], versions[-3:])
    assert len(versions) > 20


@pytest.mark.integration
def test_scale_out_limits_in_redis_and_logs_in_postgresql(served: Served) -> None:
    """The same model on the scale-out profile: limits in the real Redis, logs in PostgreSQL."""
    import redis
    from support import psql, throwaway_database

    from shipyard.serving import deploy

    with throwaway_database("shipyard_serving") as database:
        text = (served.project / "pipelines.yaml").read_text()
        text = text.replace("  churn-api:\n", "  churn-big:\n").replace(
            f"port: {served.step.port}", f"port: {free_port()}"
        )
        text = text.replace(
            "  local:\n",
            "  local:\n    kind: scale-out\n    serving:\n"
            "      rate_limit_storage: redis://127.0.0.1:6379/0\n"
            f"      log_database: postgresql://postgres@127.0.0.1:5432/{database}\n",
        )
        spec = served.project / "pipelines-scale-out.yaml"
        spec.write_text(text)
        plan = compile_spec(spec)
        step = plan.named(ServiceStep, "churn-big")
        assert step.rate_limit.storage.startswith("redis://")
        store = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        pattern = "*test-project:churn-big*"
        try:
            built = _build(plan, step)
            url = deploy.start(step, built)
            headers = {"X-API-Key": "burst-key-0123456789"}
            statuses = []
            with httpx.Client(timeout=30) as client:
                for i in range(30):
                    response = client.post(
                        url + "/predict", json=ROW, headers={**headers, "X-Request-ID": f"big-{i}"}
                    )
                    statuses.append(response.status_code)
            assert 200 in statuses and 429 in statuses, statuses
            assert list(store.scan_iter(match=pattern)), "no rate-limit counters in Redis"

            def logged() -> int:
                done = psql(
                    "SELECT count(*) FROM predictions WHERE service = 'churn-big'",
                    database=database,
                    check=False,
                )
                return int(done.stdout.strip() or 0) if done.returncode == 0 else 0

            # rows arrive in batches: wait for all of them, not for the first batch
            assert _wait_for(lambda: logged() == statuses.count(200)), logged()
        finally:
            deploy.stop(step)
            for key in store.scan_iter(match=pattern):
                store.delete(key)


def _certificate(
    path: Path, name: str, issuer: tuple[Any, Any] | None = None, ca: bool = False
) -> tuple[Any, Any]:
    """Write `<name>.pem` and `<name>.key`: self-signed, or signed by `issuer` (cert, key)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_cert, issuer_key = issuer or (None, key)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (path / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


@pytest.mark.parametrize("mutual", [False, True], ids=["self-signed", "mutual-tls"])
def test_tls_options_reach_bentoml(served: Served, mutual: bool) -> None:
    """HTTPS with a self-signed certificate, and mutual TLS with a CA: readiness, /info and
    predictions work over TLS; plain HTTP, and (with a CA) a client without a certificate,
    are refused."""
    import ssl

    from shipyard.serving import deploy

    name = "churn-mtls" if mutual else "churn-tls"
    certs = served.project / "certs" / name
    if mutual:
        authority = _certificate(certs, "ca", ca=True)
        _certificate(certs, "server", issuer=authority)
        _certificate(certs, "client", issuer=authority)
        tls = f"{{certfile: certs/{name}/server.pem, keyfile: certs/{name}/server.key, "
        tls += f"ca_certs: certs/{name}/ca.pem}}"
    else:
        _certificate(certs, "server")
        tls = f"{{certfile: certs/{name}/server.pem, keyfile: certs/{name}/server.key}}"
    port = free_port()
    text = (served.project / "pipelines.yaml").read_text()
    text = text.replace("  churn-api:\n", f"  {name}:\n    tls: {tls}\n")
    text = text.replace(f"port: {served.step.port}", f"port: {port}")
    spec = served.project / f"pipelines-{name}.yaml"
    spec.write_text(text)
    plan = compile_spec(spec)
    step = plan.named(ServiceStep, name)
    try:
        built = _build(plan, step)
        url = deploy.start(step, built)
        assert url == f"https://127.0.0.1:{port}"
        assert (deploy.info(step) or {}).get("bento") == built.tag

        authority_file = certs / ("ca.pem" if mutual else "server.pem")
        trust = ssl.create_default_context(cafile=str(authority_file))
        trust.check_hostname = False
        if mutual:
            bare = ssl.create_default_context(cafile=str(certs / "ca.pem"))
            bare.check_hostname = False
            with pytest.raises(httpx.TransportError):  # no client certificate
                httpx.post(url + "/predict", json=ROW, headers=APP, verify=bare, timeout=10)
            trust.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
        answer = httpx.post(url + "/predict", json=ROW, headers=APP, verify=trust, timeout=30)
        assert answer.status_code == 200, answer.text
        [prediction] = answer.json()["predictions"]
        assert isinstance(prediction["prediction"], bool)
        with pytest.raises(httpx.TransportError):  # plain HTTP on the TLS port
            httpx.post(f"http://127.0.0.1:{port}/predict", json=ROW, headers=APP, timeout=10)
    finally:
        deploy.stop(step)


def test_missing_tls_file_is_named_before_start(served: Served) -> None:
    from shipyard.compiler.services import TlsPlan
    from shipyard.errors import ShipyardError
    from shipyard.serving import deploy

    missing = TlsPlan(certfile=str(served.project / "nope.pem"), keyfile="nope.key")
    step = served.step.model_copy(update={"tls": missing})
    with pytest.raises(ShipyardError, match=r"TLS certfile .*nope\.pem does not exist") as raised:
        deploy.start(step, None)  # type: ignore[arg-type]
    assert "services.churn-api.tls.certfile" in str(raised.value.hint)
