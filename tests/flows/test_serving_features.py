"""A service reading its features online, served for real: rows whose entity the online store
does not know are answered with the features that were missing named, and counted; its
errors and hints name its own entity key (`account_id`), not the demo's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from support import compile_spec, free_port, run_flow

from shipyard.compiler import ServiceStep

pytestmark = pytest.mark.usefixtures("prefect_harness")

SPEC = """\
project: online-test
profiles:
  local:
    prefect: {{port: {prefect}}}
datasets:
  accounts:
    path: data/accounts.parquet
    key: [account_id, event_time]
    timestamp: event_time
    schema:
      account_id: int
      event_time: datetime
      plan: {{category: [basic, plus, pro]}}
      tenure_months: int
      monthly_charges: float
      support_calls: int
      churned: bool
    expectations: [{{not_null: [account_id, churned]}}]
features:
  entities:
    account: {{join_key: account_id}}
  views:
    profile: {{entity: account, source: accounts, features: [plan, tenure_months]}}
    usage: {{entity: account, source: accounts, features: [monthly_charges, support_calls]}}
  services:
    churn_v1: [profile, usage]
models:
  churn:
    task: classification
    dataset: accounts
    target: churned
    features: churn_v1
    estimator:
      class: sklearn.ensemble.HistGradientBoostingClassifier
      params: {{max_iter: 40}}
services:
  account-api:
    model: churn
    port: {port}
    auth:
      api_keys:
        app: {{key: "${{secret:online-app-key}}", roles: [predict, feedback]}}
"""
APP = {"X-API-Key": "online-app-key-0123456789"}
FEATURES = ["plan", "tenure_months", "monthly_charges", "support_calls"]


@dataclass
class Online:
    url: str
    step: ServiceStep
    known: int
    """An account_id the online store has (in both views)."""

    def post(self, path: str, body: Any) -> httpx.Response:
        return httpx.post(self.url + path, json=body, headers=APP, timeout=30)


@pytest.fixture(scope="module")
def online(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[Online]:
    from flows.build_service import build_service
    from flows.materialize_features import materialize_features
    from flows.train_model import train_model
    from shipyard.demo_data import customers_frame
    from shipyard.serving import deploy

    project = tmp_path_factory.mktemp("online")
    (project / "pipelines.yaml").write_text(SPEC.format(prefect=free_port(), port=free_port()))
    frame = customers_frame(rows=1200).rename(columns={"customer_id": "account_id"})
    columns = ["account_id", "event_time", "plan", "tenure_months", "monthly_charges"]
    (project / "data").mkdir()
    frame[[*columns, "support_calls", "churned"]].to_parquet(
        project / "data" / "accounts.parquet", index=False
    )
    patch = pytest.MonkeyPatch()
    patch.setenv("SHIPYARD_SECRET_ONLINE_APP_KEY", APP["X-API-Key"])
    plan = compile_spec(project / "pipelines.yaml")
    step = plan.named(ServiceStep, "account-api")
    try:
        assert run_flow(plan, train_model, model="churn").is_completed()
        for view in ("profile", "usage"):
            state = run_flow(plan, materialize_features, view=view)
            assert state.is_completed(), state.result(raise_on_failure=False)
        state = run_flow(plan, build_service, service="account-api")
        assert state.is_completed(), state.result(raise_on_failure=False)
        yield Online(deploy.base_url(step), step, int(frame["account_id"].iloc[0]))
    finally:
        deploy.stop(step)
        patch.undo()


def _value(text: str, sample: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample and labels.items() <= s.labels.items()
    )


def test_rows_of_unknown_entities_name_their_missing_features_and_are_counted(
    online: Online,
) -> None:
    """Before: an unknown account was scored from all-null features and answered 200 with
    nothing said."""
    before = httpx.get(online.url + "/metrics", timeout=30).text
    rows = [{"account_id": online.known}, {"account_id": 99_999_999}]
    response = online.post("/predict", {"rows": rows})
    assert response.status_code == 200, response.text
    known, unknown = response.json()["predictions"]
    assert "missing_features" not in known  # a known account says nothing
    assert unknown["missing_features"] == FEATURES  # the model was given nulls for them
    assert isinstance(unknown["prediction"], bool)  # on_missing: null still answers
    one = online.post("/predict", {"account_id": 99_999_998})
    assert one.json()["predictions"][0]["missing_features"] == FEATURES
    after = httpx.get(online.url + "/metrics", timeout=30).text
    sample = "shipyard_service_missing_features_total"
    for feature in FEATURES:
        labels = {"resource": "service.account-api", "feature": feature}
        assert _value(after, sample, **labels) - _value(before, sample, **labels) == 2


def test_feedback_hints_name_the_services_own_entity_key(online: Online) -> None:
    """Before: the hint said `{"customer_id": 42}`, the demo's key, to every service."""
    unkeyed = online.post("/feedback", {"outcome": 1})
    assert unkeyed.status_code == 400
    assert '`entity` ({"account_id": ...})' in unkeyed.json()["message"]
    assert "customer_id" not in unkeyed.text
    unknown = online.post("/feedback", {"request_id": "not-a-prediction", "outcome": 1})
    assert unknown.status_code == 404, unknown.text
    assert unknown.json()["error"] == "unknown_request_id"
    assert '{"account_id": ...}' in unknown.json()["message"]
    by_entity = online.post("/feedback", {"entity": {"account_id": online.known}, "outcome": 1})
    assert by_entity.status_code == 200, by_entity.text


def test_the_openapi_document_lists_the_lookup_errors(online: Online) -> None:
    document = httpx.get(online.url + "/docs.json", timeout=30).json()
    predict = document["paths"]["/predict"]["post"]["responses"]
    examples = predict["503"]["content"]["application/json"]["examples"]
    assert list(examples) == ["starting", "feature_store_unavailable"]
    prediction = document["components"]["schemas"]["Prediction"]["properties"]
    assert prediction["missing_features"]["type"] == "array"
    assert json.dumps(document).count("customer_id") == 0  # nothing of the demo's
