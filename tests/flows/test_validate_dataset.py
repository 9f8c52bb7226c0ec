"""The validate-dataset flow on the embedded profile: GX validation, DVC versions, metrics, logs."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from support import compile_spec, run_flow, task_names

from shipyard.compiler import DatasetStep, Plan
from shipyard.data.versioning import DvcStore, VersionCatalog, restore_version
from shipyard.errors import DataValidationFailed, ShipyardError
from shipyard.settings import StateLayout

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _plan(spec: Path) -> Plan:
    return compile_spec(spec)


def _run(plan: Plan, name: str = "customers"):  # type: ignore[no-untyped-def]
    from flows.validate_dataset import validate_dataset

    return plan.named(DatasetStep, name), run_flow(plan, validate_dataset, dataset=name)


def _metrics(plan: Plan) -> str:
    files = list(StateLayout(plan.runtime.state_dir).metrics.glob("*.prom"))
    assert len(files) == 1
    return files[0].read_text()


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_good_data_is_validated_versioned_and_measured(make_project: Callable[..., Path]) -> None:
    spec = make_project(rows=200)
    plan = _plan(spec)
    _, state = _run(plan)

    assert state.is_completed()
    summary = state.result()
    data = spec.parent / "data" / "customers.parquet"
    assert summary.rows == 200
    assert summary.md5 == _md5(data)
    assert summary.new_version is True
    # DVC: pointer beside the file, content pushed to the local remote under the state folder
    assert (spec.parent / "data" / "customers.parquet.dvc").exists()
    remote = StateLayout(plan.runtime.state_dir).dvc_remote
    assert any(p.name == summary.md5[2:] for p in remote.rglob("*"))
    versions = VersionCatalog(StateLayout(plan.runtime.state_dir).catalog).versions("customers")
    assert [v.md5 for v in versions] == [summary.md5]
    assert versions[0].flow_run_id == str(state.state_details.flow_run_id)
    # Prometheus textfile
    text = _metrics(plan)
    assert 'shipyard_flow_run_success{flow="validate-dataset",project="test-project",' in text
    assert "shipyard_dataset_rows_validated" in text and "} 200.0" in text
    assert "shipyard_dataset_expectations_failed" in text
    # JSON logs carry the flow run id as correlation id
    lines = (StateLayout(plan.runtime.state_dir).logs / "shipyard.jsonl").read_text().splitlines()
    ids = {json.loads(line).get("correlation_id") for line in lines}
    assert str(state.state_details.flow_run_id) in ids


def test_unchanged_data_keeps_its_version(make_project: Callable[..., Path]) -> None:
    plan = _plan(make_project(rows=120))
    _, first = _run(plan)
    _, second = _run(plan)
    assert first.result().md5 == second.result().md5
    assert second.result().new_version is False


def test_failed_expectations_stop_the_flow_with_a_readable_table(
    make_project: Callable[..., Path],
) -> None:
    spec = make_project(rows=200)
    data = spec.parent / "data" / "customers.parquet"
    frame = pd.read_parquet(data)
    frame.loc[3, "monthly_charges"] = -12.5
    frame.loc[5, "plan"] = "gold"
    frame.loc[7, "email"] = "not-an-email"
    frame.to_parquet(data, index=False)
    plan = _plan(spec)

    _, state = _run(plan)

    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, DataValidationFailed)
    text = error.message
    assert "3 of" in text and "expectations failed" in text
    assert "between(monthly_charges, 0.0..500.0)" in text and "-12.5" in text
    assert "schema(plan: category)" in text and "'gold'" in text
    assert "regex(email" in text and "'not-an-email'" in text
    assert "not versioned" in (error.hint or "")
    # nothing versioned, failure measured
    assert VersionCatalog(StateLayout(plan.runtime.state_dir).catalog).versions("customers") == []
    metrics = _metrics(plan)
    assert 'shipyard_flow_run_success{flow="validate-dataset"' in metrics
    assert "shipyard_flow_run_success" in metrics and "} 0.0" in metrics
    failed = [
        line
        for line in metrics.splitlines()
        if line.startswith("shipyard_dataset_expectations_failed{")
    ]
    assert failed and failed[0].endswith(" 3.0")


def test_a_schema_column_the_file_lacks_is_named_with_the_columns_it_has(
    make_project: Callable[..., Path],
) -> None:
    spec = make_project(rows=50)
    data = spec.parent / "data" / "customers.parquet"
    frame = pd.read_parquet(data).drop(columns=["plan"])
    frame.to_parquet(data, index=False)

    _, state = _run(_plan(spec))

    error = state.result(raise_on_failure=False)
    assert isinstance(error, DataValidationFailed)
    first = error.message.splitlines()[0]
    has = ", ".join(frame.columns)
    assert first == f"column 'plan' is not in 'data/customers.parquet'; the file has: {has}"
    assert "list index out of range" not in error.message
    assert "schema(plan: category)" in error.message  # the rules on it fail, saying why
    assert "its column is not in the file" in error.message
    assert "remove it from the dataset's `schema:`" in (error.hint or "")


def test_missing_file_names_the_file_and_the_fix(make_project: Callable[..., Path]) -> None:
    plan = _plan(make_project(rows=0))
    _, state = _run(plan)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, ShipyardError)
    assert "data/customers.parquet" in error.message and "not found" in error.message
    assert "shipyard data restore customers" in (error.hint or "")


def test_earlier_version_is_restored_from_the_remote(make_project: Callable[..., Path]) -> None:
    from shipyard.demo_data import write_customers

    spec = make_project(rows=100)
    data = spec.parent / "data" / "customers.parquet"
    plan = _plan(spec)
    _, first = _run(plan)
    first_md5 = first.result().md5
    write_customers(data, rows=300, seed=99)
    _, second = _run(plan)
    second_md5 = second.result().md5
    assert first_md5 != second_md5

    layout = StateLayout(plan.runtime.state_dir)
    shutil.rmtree(layout.dvc_cache)  # the bytes must come back from the remote
    store = DvcStore(spec.parent, layout.root, plan.blocks.dvc_remote.url)
    catalog = VersionCatalog(layout.catalog)
    restored, saved = restore_version(store, catalog, "customers", data, first_md5[:8])

    assert restored.md5 == first_md5
    assert _md5(data) == first_md5
    assert saved is not None and saved.md5 == second_md5
    assert len(pd.read_parquet(data)) == 100
    # and back again: nothing was lost
    restore_version(store, catalog, "customers", data, second_md5[:8])
    assert _md5(data) == second_md5


def test_artifacts_are_published(make_project: Callable[..., Path]) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    plan = _plan(make_project(rows=50))
    _, state = _run(plan)
    assert state.is_completed()
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_="dataset-customers"))
        )
    mine = [a for a in artifacts if a.flow_run_id == state.state_details.flow_run_id]
    assert sorted(a.key for a in mine) == ["dataset-customers-quality", "dataset-customers-version"]
    (quality,) = [a for a in mine if a.key == "dataset-customers-quality"]
    assert "| `not_null(customer_id)` | customer_id | passed |" in str(quality.data)


def test_the_run_is_named_after_the_resource_and_runs_the_steps_tasks(
    make_project: Callable[..., Path],
) -> None:
    from prefect import get_client

    plan = _plan(make_project(rows=50))
    step, state = _run(plan)
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        name = client.read_flow_run(flow_run_id).name
    assert name == f"validate-dataset/customers@{str(flow_run_id)[:8]}"
    assert task_names(flow_run_id) == list(step.tasks) == ["validate", "version"]


def _first_flow_line(plan: Plan, flow_run_id: object) -> dict[str, object]:
    lines = (StateLayout(plan.runtime.state_dir).logs / "shipyard.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    return next(e for e in entries if e.get("correlation_id") == str(flow_run_id))


def test_the_first_line_says_the_plan_is_what_the_spec_compiles_to(
    make_project: Callable[..., Path],
) -> None:
    plan = _plan(make_project(rows=50))
    _, state = _run(plan)
    first = _first_flow_line(plan, state.state_details.flow_run_id)
    assert first["level"] == "info"
    assert f"running plan {plan.spec_digest[:12]}, which is what pipelines.yaml" in str(
        first["message"]
    )


def test_a_run_of_a_stale_plan_says_so_first_and_runs_what_was_applied(
    make_project: Callable[..., Path],
) -> None:
    spec = make_project(rows=50)
    plan = _plan(spec)
    # the spec changes after the plan was applied: the run keeps the applied rules
    spec.write_text(spec.read_text().replace("row_count: {min: 10}", "row_count: {min: 5000}"))
    _, state = _run(plan)
    assert state.is_completed()  # 50 rows: the applied min of 10 holds, not the new 5000
    first = _first_flow_line(plan, state.state_details.flow_run_id)
    assert first["level"] == "warning"
    message = str(first["message"])
    assert "this deployment is stale" in message
    assert f"spec {plan.spec_digest[:12]} -> " in message
    assert "differs in expectations" in message and "shipyard apply" in message
