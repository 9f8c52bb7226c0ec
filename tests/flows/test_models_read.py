"""`shipyard models list|show` read the registry without MLflow (REST, or the SQLite tables) and
print exactly what they print through the MLflow client, on a real registry."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import MODEL_SPEC, SPEC, compile_spec, free_port, run_flow

from shipyard.compiler import Plan

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]
NAME = "test-project.churn"


@dataclass
class Trained:
    spec: Path
    plan: Plan
    url: str
    db: Path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[Trained]:
    """A project trained twice against its own MLflow server (v1 champion, v2 challenger)."""
    from flows.train_model import train_model
    from shipyard.demo_data import write_customers
    from shipyard.runtime import mlflow_server

    folder = tmp_path_factory.mktemp("models-read")
    db = folder / "mlflow.db"
    profile = f"    mlflow: {{backend_store_uri: 'sqlite:///{db}', port: {free_port()}}}\n"
    text = SPEC.format(port=free_port()).replace("  local:\n", "  local:\n" + profile)
    spec = folder / "pipelines.yaml"
    spec.write_text(textwrap.dedent(text + MODEL_SPEC.format(threshold=">= 0.6")))
    write_customers(folder / "data" / "customers.parquet", rows=800)
    plan = compile_spec(spec)
    url = mlflow_server.start(plan, timeout=180)
    try:
        for force in (False, True):
            state = run_flow(plan, train_model, model="churn", force=force)
            assert state.is_completed(), state.result(raise_on_failure=False)
        yield Trained(spec, plan, url, db)
    finally:
        mlflow_server.mlflow_process(plan).stop()


def _printed(capsys: pytest.CaptureFixture[str], command: Any, *args: Any) -> str:
    assert command(*args) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("store", ["rest", "sqlite"])
def test_the_fast_read_is_what_the_mlflow_client_reads(
    trained: Trained, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from shipyard import registry
    from shipyard.registry_read import read_versions

    uri = trained.url if store == "rest" else f"sqlite:///{trained.db}"
    fast = read_versions(uri, NAME)
    assert fast is not None, "the fast path declined a store it should read"
    assert read_versions(uri, "no-such-model") == []
    # a registry URI of its own, as mlflow.set_registry_uri sets it (its environment variable
    # and its module global), both put back after the test: later tests train on other servers
    from mlflow.tracking._model_registry import utils as registry_utils

    monkeypatch.setenv("MLFLOW_REGISTRY_URI", trained.url)
    monkeypatch.setattr(registry_utils, "_registry_uri", trained.url)
    mlflow.set_tracking_uri(trained.url)
    assert fast == registry.versions(NAME)
    assert read_versions(uri, NAME) is None  # a registry URI of its own: the client decides
    assert [v.version for v in fast] == ["2", "1"]
    assert [v.aliases for v in fast] == [["challenger"], ["champion"]]
    assert fast[0].metrics and not any(k.startswith("gate/") for k in fast[0].metrics)


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_models_list_and_show_print_the_same_on_both_paths(
    trained: Trained,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    as_json: bool,
) -> None:
    from shipyard import registry_read
    from shipyard.training.commands import list_models, show_model

    fast = (
        _printed(capsys, list_models, trained.plan, as_json),
        _printed(capsys, show_model, trained.plan, "churn", as_json),
    )
    monkeypatch.setattr(registry_read, "read_versions", lambda uri, name: None)
    client = (
        _printed(capsys, list_models, trained.plan, as_json),
        _printed(capsys, show_model, trained.plan, "churn", as_json),
    )
    assert fast == client
    if as_json:
        assert json.loads(fast[0])[0]["champion"] == "1"
        assert [v["version"] for v in json.loads(fast[1])] == ["2", "1"]
    else:
        assert "v1 (1.0.0)" in fast[0] and "@challenger" in fast[1]


def test_models_list_imports_no_mlflow(trained: Trained) -> None:
    code = (
        "import contextlib, io, sys\n"
        "from shipyard.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    assert main(['-f', {str(trained.spec)!r}, 'models', 'list']) == 0\n"
        f"    assert main(['-f', {str(trained.spec)!r}, 'models', 'show', 'churn']) == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))\n"
        "print(out.getvalue())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    first, rest = done.stdout.split("\n", 1)
    assert first == "[]"
    assert "v2 (1.0.1)" in rest


def test_a_schema_revision_not_verified_is_left_to_the_mlflow_client(
    trained: Trained, tmp_path: Path
) -> None:
    from shipyard.registry_read import read_versions

    copy = tmp_path / "newer.db"
    shutil.copy(trained.db, copy)
    assert read_versions(f"sqlite:///{copy}", NAME) is not None
    with sqlite3.connect(copy) as db:
        db.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    assert read_versions(f"sqlite:///{copy}", NAME) is None
    assert read_versions(f"sqlite:///{tmp_path / 'none.db'}", NAME) == []
    assert read_versions("file:///somewhere/mlruns", NAME) is None


def test_a_cache_hit_reads_the_tracking_store_as_mlflow_does(trained: Trained) -> None:
    from mlflow import MlflowClient

    from flows.train_model import OUTCOME_TAG, _finished_run
    from shipyard.compiler import TrainModelStep
    from shipyard.training import store_read, tracking

    step = trained.plan.named(TrainModelStep, "churn")
    uri = f"sqlite:///{trained.db}"
    name = tracking.experiment_name(trained.plan.project, step.name)
    tags = tracking.experiment_tags(
        tracking.experiment_description(step), tracking.primary_metric(step)
    )
    client = MlflowClient(tracking_uri=trained.url)
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    assert store_read.quiet_experiment(uri, name, tags) == experiment.experiment_id
    # a tag MLflow's path would set, or a killed run to settle, is MLflow's path
    assert store_read.quiet_experiment(uri, name, {**tags, "x": "y"}) is None
    assert store_read.quiet_experiment(uri, "shipyard/none/none", tags) is None
    [latest] = client.search_runs(
        [experiment.experiment_id],
        f"tags.`{OUTCOME_TAG}` = 'registered'",
        order_by=["start_time DESC"],
        max_results=1,
    )
    key = latest.data.tags["shipyard.cache_key"]
    import mlflow

    mlflow.set_tracking_uri(trained.url)
    expected = _finished_run(experiment.experiment_id, key)
    found = store_read.finished_run(uri, experiment.experiment_id, key, OUTCOME_TAG)
    assert found and not isinstance(found, bool)
    assert found.info.run_id == expected.info.run_id
    assert found.data.tags == expected.data.tags
    assert found.data.metrics == expected.data.metrics
    assert store_read.finished_run(uri, experiment.experiment_id, "0" * 64, OUTCOME_TAG) is None
    assert store_read.finished_run(trained.url, experiment.experiment_id, key, OUTCOME_TAG) is False
