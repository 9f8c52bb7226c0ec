"""The feature store on the embedded profile: point-in-time training sets, materialization,
online lookups."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from support import FEATURE_SPEC, compile_spec, free_port, run_flow, task_names

from shipyard.compiler import FeatureRepoStep, Plan, TrainModelStep
from shipyard.errors import ShipyardError

pytestmark = pytest.mark.usefixtures("prefect_harness")
T = pd.Timestamp


def _project(make_project: Callable[..., Path], profile: str = "", model: str = "") -> Plan:
    spec = make_project(rows=0, spec=FEATURE_SPEC.format(port=free_port(), profile=profile) + model)
    data = spec.parent / "data"
    data.mkdir()
    # customer 1 changes plan over time; customer 2 appears only later
    pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2],
            "event_time": [
                T("2025-01-01", tz="UTC"),
                T("2025-02-01", tz="UTC"),
                T("2025-03-01", tz="UTC"),
                T("2025-02-15", tz="UTC"),
            ],
            "tenure": [1, 2, 3, 10],
            "plan": ["basic", "plus", "pro", "basic"],
        }
    ).to_parquet(data / "profiles.parquet", index=False)
    pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2, 2],
            "event_time": [
                T("2025-01-15", tz="UTC"),
                T("2025-02-01", tz="UTC"),
                T("2025-04-01", tz="UTC"),
                T("2025-02-01", tz="UTC"),
                T("2025-03-01", tz="UTC"),
            ],
            "churned": [False, False, True, False, True],
        }
    ).to_parquet(data / "labels.parquet", index=False)
    return compile_spec(spec)


def _repo(plan: Plan) -> FeatureRepoStep:
    return plan.step("features.repo", FeatureRepoStep)


MODEL = """
models:
  churn:
    task: classification
    dataset: labels
    target: churned
    features: profile_v1
    estimator: {class: sklearn.linear_model.LogisticRegression}
"""


def test_training_set_joins_features_as_of_each_label_time(
    make_project: Callable[..., Path],
) -> None:
    from shipyard.features.training import training_frame

    plan = _project(make_project, model=MODEL)
    step = plan.named(TrainModelStep, "churn")
    assert step.features == ["tenure", "plan"] and step.feature_service == "profile_v1"
    labels = pd.read_parquet(Path(plan.runtime.project_dir) / "data" / "labels.parquet")
    frame = training_frame(step, _repo(plan), labels)
    got = {
        (int(r.customer_id), r.event_time.strftime("%Y-%m-%d")): (
            None if pd.isna(r.tenure) else int(r.tenure),
            None if pd.isna(r.plan) else r.plan,
        )
        for r in frame.itertuples()
    }
    assert got == {
        (1, "2025-01-15"): (1, "basic"),  # only the January row existed then
        (1, "2025-02-01"): (2, "plus"),  # a row at exactly the label time counts
        (1, "2025-04-01"): (3, "pro"),
        (2, "2025-02-01"): (None, None),  # customer 2's first row is two weeks later
        (2, "2025-03-01"): (10, "basic"),
    }


def test_materialize_then_look_up_online(make_project: Callable[..., Path]) -> None:
    from flows.materialize_features import materialize_features
    from shipyard.features.online import MissingEntity, get_online_features
    from shipyard.settings import StateLayout

    plan = _project(make_project)
    state = run_flow(plan, materialize_features, view="profile")
    assert state.is_completed(), state.result(raise_on_failure=False)
    result = state.result()
    assert result.newest_event == "2025-03-01T00:00:00+00:00"
    expected_age = (datetime.now(UTC) - datetime(2025, 3, 1, tzinfo=UTC)).total_seconds()
    assert abs(result.freshness_seconds - expected_age) < 600
    assert task_names(state.state_details.flow_run_id) == ["materialize"]
    prom = StateLayout(plan.runtime.state_dir).metrics / (
        "materialize-features__feature_view.profile.prom"
    )
    assert "shipyard_feature_freshness_seconds{" in prom.read_text()

    repo = _repo(plan)
    rows = get_online_features("profile_v1", [{"customer_id": 1}, {"customer_id": 77}], repo)
    assert rows[0]["tenure"] == 3 and rows[0]["plan"] == "pro"  # the latest row
    assert rows[1]["tenure"] is None and rows[1]["plan"] is None  # on_missing: null
    with pytest.raises(
        MissingEntity, match=re.escape("no online features for {'customer_id': 77}")
    ):
        get_online_features("strict_v1", [{"customer_id": 77}], repo)
    with pytest.raises(ShipyardError, match="feature service 'profile_v2' is not defined") as info:
        get_online_features("profile_v2", [{"customer_id": 1}], repo)
    assert info.value.hint == "did you mean 'profile_v1'?"

    again = run_flow(plan, materialize_features, view="profile")  # incremental: nothing new
    assert again.is_completed()


def test_model_trains_from_the_feature_service(make_project: Callable[..., Path]) -> None:
    import mlflow
    from support import MODEL_SPEC, SPEC

    from flows.train_model import train_model

    features = """
features:
  entities: {customer: {join_key: customer_id}}
  views:
    profile: {entity: customer, source: customers, features: [region, plan, tenure_months]}
    usage: {entity: customer, source: customers, features: [monthly_charges, support_calls]}
  services:
    churn_v1: [profile]
    churn_v2: [profile, usage]
"""
    model = MODEL_SPEC.format(threshold=">= 0.6").replace(
        "    features: [region, plan, tenure_months, monthly_charges, support_calls, "
        "data_usage_gb]",
        "    features: churn_v2",
    )
    spec = make_project(rows=1200, spec=SPEC.format(port=free_port()) + features + model)
    plan = compile_spec(spec)
    step = plan.named(TrainModelStep, "churn")
    assert step.features == ["region", "plan", "tenure_months", "monthly_charges", "support_calls"]
    state = run_flow(plan, train_model, model="churn")
    assert state.is_completed(), state.result(raise_on_failure=False)
    summary = state.result()
    names = [n for n in task_names(state.state_details.flow_run_id) if n != "trial"]
    assert names == ["validate-dataset", "training-set", "train", "evaluate", "gate", "register"]
    mlflow.set_tracking_uri(plan.blocks.mlflow.tracking_uri)
    run = mlflow.MlflowClient().get_run(summary.run_id)
    assert run.data.tags["shipyard.feature_service"] == "churn_v2"
    assert run.data.tags["shipyard.feature_service_version"] == "2"
    version = mlflow.MlflowClient().get_model_version("test-project.churn", "1")
    assert version.tags["shipyard.feature_service"] == "churn_v2"
    assert summary.metrics["roc_auc"] > 0.6
