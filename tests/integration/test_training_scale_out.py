"""Scale-out training on real engines: an MLflow server on PostgreSQL, trials on a Dask cluster,
and a train-model deployment executed by a Prefect worker."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import (
    MODEL_SPEC,
    SPEC,
    fetch_json,
    free_port,
    prefect_deployment_run,
    run_shipyard,
    shipyard_env,
    throwaway_database,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def scale_out_project(make_project: Callable[..., Path]) -> Iterator[tuple[Path, str]]:
    with throwaway_database("shipyard_mlflow") as database:  # `mlflow start` creates it
        mlflow_port, prefect_port = free_port(), free_port()
        profile = (
            "    kind: scale-out\n"
            f"    mlflow: {{backend_store_uri: 'postgresql://postgres@127.0.0.1:5432/{database}', "
            f"port: {mlflow_port}}}\n"
            "    dask: {n_workers: 2}\n"
        )
        text = SPEC.format(port=prefect_port).replace("  local:\n", "  local:\n" + profile)
        spec = make_project(rows=1000, spec=text + MODEL_SPEC.format(threshold=">= 0.6"))
        started = run_shipyard(spec, "mlflow", "start")
        assert started.returncode == 0, started.stdout + started.stderr
        try:
            yield spec, f"http://127.0.0.1:{mlflow_port}"
        finally:
            run_shipyard(spec, "mlflow", "stop")


def test_training_on_mlflow_server_with_postgresql_and_dask_trials(
    scale_out_project: tuple[Path, str],
) -> None:
    spec, mlflow_url = scale_out_project
    done = run_shipyard(spec, "run", "train-model", "churn")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 grid-search trials on a Dask cluster" in done.stdout + done.stderr
    registered = fetch_json(
        f"{mlflow_url}/api/2.0/mlflow/registered-models/get?name=test-project.churn"
    )
    model = registered["registered_model"]
    assert {"alias": "champion", "version": "1"} in model["aliases"]  # type: ignore[index]
    listed = run_shipyard(spec, "models", "list", "--json")
    assert json.loads(listed.stdout)[0]["champion"] == "1"

    again = run_shipyard(spec, "run", "train-model", "churn")
    assert again.returncode == 0
    assert '"skipped": true' in again.stdout


def test_train_model_deployment_through_a_worker(make_project: Callable[..., Path]) -> None:
    port = free_port()
    spec = make_project(
        rows=800, spec=SPEC.format(port=port) + MODEL_SPEC.format(threshold=">= 0.6")
    )
    assert run_shipyard(spec, "server", "start").returncode == 0
    try:
        applied = run_shipyard(spec, "apply")
        assert applied.returncode == 0, applied.stderr
        assert "deployment train-model/churn" in applied.stdout
        flow_run_id = prefect_deployment_run("train-model/churn", shipyard_env(spec))
        worker = run_shipyard(spec, "worker", "start", "--once")
        assert worker.returncode == 0, worker.stdout[-2000:] + worker.stderr[-2000:]
        flow_run = fetch_json(f"http://127.0.0.1:{port}/api/flow_runs/{flow_run_id}")
        assert flow_run["state_type"] == "COMPLETED"
        shown = json.loads(run_shipyard(spec, "models", "show", "churn", "--json").stdout)
        assert shown[0]["aliases"] == ["champion"] and shown[0]["semver"] == "1.0.0"
    finally:
        run_shipyard(spec, "worker", "stop")
        run_shipyard(spec, "server", "stop")
