"""Scale-out training on real engines: an MLflow server on PostgreSQL, trials on a Dask cluster,
and a train-model deployment executed by a Prefect worker."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import MODEL_SPEC, SPEC, free_port

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def shipyard(spec: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "shipyard"), "-f", str(spec), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
        cwd=spec.parent,
        check=False,
    )


def mlflow_api(base: str, path: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{base}/api/2.0/mlflow/{path}", timeout=30) as response:
        result: dict[str, object] = json.loads(response.read())
        return result


@pytest.fixture
def scale_out_project(make_project: Callable[..., Path]) -> Iterator[tuple[Path, str]]:
    database = f"shipyard_mlflow_{uuid.uuid4().hex[:8]}"
    mlflow_port, prefect_port = free_port(), free_port()
    profile = (
        "    kind: scale-out\n"
        f"    mlflow: {{backend_store_uri: 'postgresql://postgres@127.0.0.1:5432/{database}', "
        f"port: {mlflow_port}}}\n"
        "    dask: {n_workers: 2}\n"
    )
    text = SPEC.format(port=prefect_port).replace("  local:\n", "  local:\n" + profile)
    spec = make_project(rows=1000, spec=text + MODEL_SPEC.format(threshold=">= 0.6"))
    started = shipyard(spec, "mlflow", "start")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield spec, f"http://127.0.0.1:{mlflow_port}"
    finally:
        shipyard(spec, "mlflow", "stop")
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)',
            ],
            capture_output=True,
            check=False,
        )


def test_training_on_mlflow_server_with_postgresql_and_dask_trials(
    scale_out_project: tuple[Path, str],
) -> None:
    spec, mlflow_url = scale_out_project
    done = shipyard(spec, "run", "train-model", "churn")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 grid-search trials on a Dask cluster" in done.stdout + done.stderr
    registered = mlflow_api(mlflow_url, "registered-models/get?name=test-project.churn")
    model = registered["registered_model"]
    assert {"alias": "champion", "version": "1"} in model["aliases"]  # type: ignore[index]
    listed = shipyard(spec, "models", "list", "--json")
    assert json.loads(listed.stdout)[0]["champion"] == "1"

    again = shipyard(spec, "run", "train-model", "churn")
    assert again.returncode == 0
    assert '"skipped": true' in again.stdout


def test_train_model_deployment_through_a_worker(make_project: Callable[..., Path]) -> None:
    port = free_port()
    spec = make_project(
        rows=800, spec=SPEC.format(port=port) + MODEL_SPEC.format(threshold=">= 0.6")
    )
    assert shipyard(spec, "server", "start").returncode == 0
    try:
        applied = shipyard(spec, "apply")
        assert applied.returncode == 0, applied.stderr
        assert "deployment train-model/churn" in applied.stdout
        env = os.environ.copy()
        for line in shipyard(spec, "env").stdout.splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value.strip("'")
        run = subprocess.run(
            [str(BIN / "prefect"), "deployment", "run", "train-model/churn"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", run.stdout)
        assert flow_run_id
        worker = shipyard(spec, "worker", "start", "--once")
        assert worker.returncode == 0, worker.stdout[-2000:] + worker.stderr[-2000:]
        api = f"http://127.0.0.1:{port}/api/flow_runs/{flow_run_id.group(1)}"
        with urllib.request.urlopen(api, timeout=30) as response:
            assert json.loads(response.read())["state_type"] == "COMPLETED"
        shown = json.loads(shipyard(spec, "models", "show", "churn", "--json").stdout)
        assert shown[0]["aliases"] == ["champion"] and shown[0]["semver"] == "1.0.0"
    finally:
        shipyard(spec, "worker", "stop")
        shipyard(spec, "server", "stop")
