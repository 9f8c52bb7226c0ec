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

from shipyard.compiler import DatasetStep, FeatureRepoStep, Plan, TrainModelStep
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
    from shipyard.features.online import OnlineFeatures

    # a new environment (a promotion's target): nothing applied yet, said as such
    with pytest.raises(ShipyardError, match="'profile_v1' is not in the feature registry") as new:
        OnlineFeatures(_repo(plan)).check("profile_v1")
    assert "shipyard run materialize-features" in (new.value.hint or "")
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


# --- sources in other formats, and static views --------------------------------------------------


def _as_csv(plan: Plan) -> Plan:
    """The project of `plan` with its datasets as CSV files (the same rows)."""
    project = Path(plan.runtime.project_dir)
    spec = project / plan.runtime.spec_file
    for name in ("profiles", "labels"):
        frame = pd.read_parquet(project / "data" / f"{name}.parquet")
        frame.to_csv(project / "data" / f"{name}.csv", index=False)
        (project / "data" / f"{name}.parquet").unlink()
        spec.write_text(spec.read_text().replace(f"data/{name}.parquet", f"data/{name}.csv"))
    return compile_spec(spec)


def test_a_view_over_a_csv_file_applies_materializes_trains_and_serves(
    make_project: Callable[..., Path],
) -> None:
    """Feast reads parquet only: before, materializing and training failed with "Could not read
    schema from '.../profiles.csv'. Is this a 'parquet' file?"."""
    from flows.materialize_features import materialize_features
    from shipyard.data.files import read_dataset
    from shipyard.features.online import get_online_features
    from shipyard.features.repo import apply_repo
    from shipyard.features.training import training_frame

    plan = _as_csv(_project(make_project, model=MODEL))
    repo = _repo(plan)
    step = plan.named(TrainModelStep, "churn")
    labels = plan.step("dataset.labels", DatasetStep)
    frame = training_frame(
        step, repo, read_dataset(labels, Path(plan.runtime.project_dir) / labels.path)
    )
    got = {
        (int(r.customer_id), r.event_time.strftime("%Y-%m-%d")): (
            None if pd.isna(r.tenure) else int(r.tenure),
            None if pd.isna(r.plan) else r.plan,
        )
        for r in frame.itertuples()
    }
    assert got == {  # the same point-in-time join as from the parquet files
        (1, "2025-01-15"): (1, "basic"),
        (1, "2025-02-01"): (2, "plus"),
        (1, "2025-04-01"): (3, "pro"),
        (2, "2025-02-01"): (None, None),
        (2, "2025-03-01"): (10, "basic"),
    }

    state = run_flow(plan, materialize_features, view="profile")
    assert state.is_completed(), state.result(raise_on_failure=False)
    assert state.result().newest_event == "2025-03-01T00:00:00+00:00"
    assert get_online_features("profile_v1", [{"customer_id": 1}], repo)[0]["plan"] == "pro"

    # Feast reads a parquet copy, and the generated definitions say so
    view = repo.view("profile")
    assert view.source_path.endswith("data/profiles.csv") and view.copied
    assert Path(view.offline_path).parent == Path(repo.repo_dir) / "sources"
    assert not any("parquet source" in line for line in apply_repo(repo))  # nor written again
    definitions = (Path(repo.repo_dir) / "definitions.py").read_text()
    assert f"path={view.offline_path!r}" in definitions

    # a row newer than the last run, appended to the CSV, reaches the online store: the copy
    # follows the file
    source, now = Path(view.source_path), pd.Timestamp.now(tz="UTC").floor("s")
    source.write_text(source.read_text() + f"1,{now},4,max\n")  # as pandas wrote the others
    again = run_flow(plan, materialize_features, view="profile")
    assert again.is_completed(), again.result(raise_on_failure=False)
    assert again.result().newest_event == now.isoformat()
    row = get_online_features("profile_v1", [{"customer_id": 1}], repo)[0]
    assert (row["tenure"], row["plan"]) == (4, "max")


STATIC_SPEC = """\
project: static-test
profiles:
  local:
    prefect: {{port: {port}}}
datasets:
  accounts:
    path: data/accounts.csv
    key: customer_id
    schema: {{customer_id: int, region: {{category: [north, south]}}, seats: int}}
    expectations: [{{not_null: [customer_id]}}]
  outcomes:
    path: data/outcomes.jsonl
    key: customer_id
    schema: {{customer_id: int, churned: bool}}
    expectations: [{{not_null: [customer_id]}}]
  renewals:
    path: data/renewals.parquet
    timestamp: due_at
    schema: {{customer_id: int, due_at: datetime, renewed: bool}}
    expectations: [{{not_null: [customer_id]}}]
features:
  entities:
    customer: {{join_key: customer_id}}
  views:
    account: {{entity: customer, source: accounts, features: [region, seats]}}
  services:
    account_v1: [account]
models:
  churn:
    task: classification
    dataset: outcomes
    target: churned
    features: account_v1
    estimator: {{class: sklearn.linear_model.LogisticRegression}}
    gate: {{roc_auc: ">= 0.9"}}
  renewal:
    task: classification
    dataset: renewals
    target: renewed
    features: account_v1
    estimator: {{class: sklearn.linear_model.LogisticRegression}}
"""


def _static_project(make_project: Callable[..., Path]) -> Plan:
    """Cross-sectional data: one row per customer, no event time anywhere but in renewals."""
    spec = make_project(rows=0, spec=STATIC_SPEC.format(port=free_port()))
    data = spec.parent / "data"
    data.mkdir()
    ids = list(range(1, 61))
    seats = [(i * 7) % 50 + 1 for i in ids]
    pd.DataFrame(
        {"customer_id": ids, "region": ["north" if i % 3 else "south" for i in ids], "seats": seats}
    ).to_csv(data / "accounts.csv", index=False)
    # small accounts churn: the features alone separate the classes
    pd.DataFrame({"customer_id": ids, "churned": [s < 20 for s in seats]}).to_json(
        data / "outcomes.jsonl", orient="records", lines=True
    )
    pd.DataFrame(
        {
            "customer_id": [1, 2, 99],
            "due_at": [
                T("2001-05-01", tz="UTC"),
                T("2030-01-01", tz="UTC"),
                T("2025-01-01", tz="UTC"),
            ],
            "renewed": [True, False, True],
        }
    ).to_parquet(data / "renewals.parquet", index=False)
    return compile_spec(spec)


def test_a_static_view_materializes_whole_and_serves_its_latest_file(
    make_project: Callable[..., Path],
) -> None:
    from flows.materialize_features import materialize_features
    from shipyard.features.online import get_online_features

    plan = _static_project(make_project)
    repo = _repo(plan)
    assert (repo.view("account").static, repo.view("account").ttl_seconds) == (True, 0)
    state = run_flow(plan, materialize_features, view="account")
    assert state.is_completed(), state.result(raise_on_failure=False)
    result = state.result()
    assert (result.rows, result.newest_event, result.freshness_seconds) == (60, None, 0.0)
    rows = get_online_features("account_v1", [{"customer_id": 1}, {"customer_id": 500}], repo)
    assert (rows[0]["region"], rows[0]["seats"]) == ("north", 8)
    assert rows[1]["seats"] is None

    # the file changes: every row has the same event time, so an incremental run would find
    # nothing new; a static view is loaded whole each time
    source = Path(repo.view("account").source_path)
    source.write_text(source.read_text().replace("\n1,north,8\n", "\n1,south,42\n"))
    again = run_flow(plan, materialize_features, view="account")
    assert again.is_completed(), again.result(raise_on_failure=False)
    row = get_online_features("account_v1", [{"customer_id": 1}], repo)[0]
    assert (row["region"], row["seats"]) == ("south", 42)


def test_static_features_hold_for_label_rows_of_any_time(
    make_project: Callable[..., Path],
) -> None:
    from shipyard.features.training import training_frame

    plan = _static_project(make_project)
    labels = pd.read_parquet(Path(plan.runtime.project_dir) / "data" / "renewals.parquet")
    frame = training_frame(plan.named(TrainModelStep, "renewal"), _repo(plan), labels)
    got = {
        int(r.customer_id): (r.due_at.year, None if pd.isna(r.seats) else int(r.seats))
        for r in frame.itertuples()
    }
    # before and long after the file was written; customer 99 has no account row
    assert got == {1: (2001, 8), 2: (2030, 15), 99: (2025, None)}


def test_a_model_trains_from_static_features_with_labels_without_time(
    make_project: Callable[..., Path],
) -> None:
    from flows.train_model import train_model
    from shipyard.features.training import training_frame

    plan = _static_project(make_project)
    step = plan.named(TrainModelStep, "churn")
    assert (step.timestamp, step.split_by) == (None, "random")
    labels = pd.read_json(
        Path(plan.runtime.project_dir) / "data" / "outcomes.jsonl", orient="records", lines=True
    )
    frame = training_frame(step, _repo(plan), labels)
    assert list(frame.columns) == ["customer_id", "churned", "region", "seats"]
    assert len(frame) == 60 and frame["seats"].notna().all()

    state = run_flow(plan, train_model, model="churn")
    assert state.is_completed(), state.result(raise_on_failure=False)
    summary = state.result()
    names = [n for n in task_names(state.state_details.flow_run_id) if n != "trial"]
    assert names == ["validate-dataset", "training-set", "train", "evaluate", "gate", "register"]
    assert summary.gate_passed and summary.metrics["roc_auc"] >= 0.9
