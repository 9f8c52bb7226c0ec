"""Training and registration survive a killed process: `shipyard run train-model` in a
subprocess, SIGKILLed mid-training or mid-registration (or its Prefect server killed right after
the registration), then what the next run (or `shipyard models repair`) finds and leaves."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from faults import MARKER_ENV, killed_at_exit, wait_for
from support import BIN, MODEL_SPEC, SPEC, compile_spec, free_port, run_flow, run_shipyard

from shipyard.compiler import Plan

pytestmark = pytest.mark.integration

FAULTS = Path(__file__).with_name("faults.py")
NAME = "test-project.churn"
BLOCKING_MODEL = """
models:
  churn:
    task: classification
    dataset: customers
    target: churned
    features: [tenure_months, monthly_charges, support_calls, data_usage_gb]
    train: faults:blocking_train
    search:
      strategy: grid
      space: {C: [0.5, 1.0]}
    metrics: [roc_auc, accuracy]
    gate:
      roc_auc: ">= 0.5"
"""
# subprocesses import `faults` (the blocking training function) like the spec names it
SUBPROCESS_ENV = {
    "PYTHONPATH": os.pathsep.join(
        p for p in (str(FAULTS.parent), os.environ.get("PYTHONPATH")) if p
    )
}


@pytest.fixture
def harness_url(prefect_harness: None) -> str:
    """The API of the session's Prefect test server, for `shipyard run` in subprocesses."""
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


def _project(make_project: Callable[..., Path], api_url: str, model: str = "") -> Plan:
    port = free_port()
    text = SPEC.format(port=port).replace(f"{{port: {port}}}", f"{{api_url: '{api_url}'}}")
    return compile_spec(
        make_project(rows=600, spec=text + (model or MODEL_SPEC.format(threshold=">= 0.6")))
    )


def _spec(plan: Plan) -> Path:
    return Path(plan.runtime.spec_path)


def _client(plan: Plan) -> Any:
    from mlflow import MlflowClient

    uri = plan.blocks.mlflow.tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _versions(plan: Plan) -> list[tuple[str, list[str], str, dict[str, str]]]:
    client = _client(plan)
    found = [  # a search leaves out the aliases: read each version
        client.get_model_version(NAME, v.version)
        for v in client.search_model_versions(f"name = '{NAME}'")
    ]
    return sorted(
        (str(v.version), sorted(v.aliases), v.tags.get("shipyard.semver", ""), dict(v.tags))
        for v in found
    )


def _mlflow_runs_of(plan: Plan, pid: int) -> list[Any]:
    client = _client(plan)
    experiment = client.get_experiment_by_name("shipyard/test-project/churn")
    owner = f"{socket.gethostname()}:{pid}"
    return list(
        client.search_runs([experiment.experiment_id], f"tags.`shipyard.process` = '{owner}'")
    )


def _flow_runs_of(pid: int) -> list[tuple[Any, list[Any]]]:
    """The train-model runs process `pid` ran (begin() labels them), each with its task runs."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterName

    owner = f"{socket.gethostname()}:{pid}"
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_="train-model/churn@"))
        )
        return [
            (
                run,
                client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
                ),
            )
            for run in runs
            if (run.labels or {}).get("shipyard.process") == owner
        ]


def _shipyard_with_fault(plan: Plan, fault: list[str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(FAULTS), *fault, "--", "-f", str(_spec(plan)), *args],
        cwd=plan.runtime.project_dir,
        env={**os.environ, **SUBPROCESS_ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _train(plan: Plan) -> subprocess.CompletedProcess[str]:
    return run_shipyard(
        _spec(plan), "run", "train-model", "churn", timeout=300, extra_env=SUBPROCESS_ENV
    )


def _summary(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = done.stdout
    return dict(json.loads(text[text.index("{") : text.rindex("}") + 1]))


# --- 3. SIGKILL between register_model and the alias ------------------------------------------


@pytest.mark.parametrize("repaired_by", ["the next run", "shipyard models repair"])
def test_a_registration_killed_before_its_alias_is_undone_and_registered_again(
    make_project: Callable[..., Path], harness_url: str, repaired_by: str
) -> None:
    from shipyard.audit import AuditLog
    from shipyard.settings import StateLayout

    plan = _project(make_project, harness_url)
    with killed_at_exit(
        _shipyard_with_fault(plan, ["kill-at-alias"], "run", "train-model", "churn")
    ) as killed:
        _, err = killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL, err[-3000:]
    # what the kill left: a version without an alias, still marked pending; its run RUNNING
    [(version, aliases, semver, tags)] = _versions(plan)
    assert (version, aliases, semver) == ("1", [], "1.0.0")
    assert tags["shipyard.pending"] == "champion"
    [attempt] = _mlflow_runs_of(plan, killed.pid)
    assert attempt.info.status == "RUNNING"
    assert attempt.data.tags["shipyard.registration"] == "pending"

    if repaired_by == "shipyard models repair":
        repaired = run_shipyard(_spec(plan), "models", "repair", "churn")
        assert repaired.returncode == 0, repaired.stderr
        assert "stopped before any alias was set: deleted the version" in repaired.stdout
        assert _versions(plan) == []
        from flows.train_model import train_model

        state = run_flow(plan, train_model, model="churn")
        assert state.is_completed(), state.result(raise_on_failure=False)
        result = state.result().model_dump()
    else:
        done = _train(plan)
        result = _summary(done)
        assert "stopped before any alias was set: deleted the version" in done.stderr

    # registered normally, with the same semantic version: no gap, nothing unlabelled
    assert (result["semver"], result["aliases"]) == ("1.0.0", ["champion"])
    assert [(v, a, s) for v, a, s, _ in _versions(plan)] == [
        (result["registered_version"], ["champion"], "1.0.0")
    ]
    assert all("shipyard.pending" not in t for *_, t in _versions(plan))
    [attempt] = _mlflow_runs_of(plan, killed.pid)
    assert attempt.info.status == "FAILED"
    assert attempt.data.tags["shipyard.registration"] == "rolled_back"
    assert "is gone" in attempt.data.tags["shipyard.failure"]
    [entry] = AuditLog(StateLayout(plan.runtime.state_dir).catalog).entries("model.churn")
    assert (entry.action, entry.detail["outcome"], entry.detail["version"]) == (
        "repair",
        "rolled_back",
        "1",
    )
    assert entry.detail["run_id"] == attempt.info.run_id
    # the killed attempt's flow run no longer claims to be running
    [(flow_run, _)] = _flow_runs_of(killed.pid)
    assert flow_run.state.type.value == "CRASHED"


# --- 5. SIGKILL mid-training -------------------------------------------------------------------


def test_a_run_killed_mid_training_ends_crashed_in_prefect_and_failed_in_mlflow(
    make_project: Callable[..., Path], harness_url: str, tmp_path: Path
) -> None:
    plan = _project(make_project, harness_url, model=BLOCKING_MODEL)
    marker = tmp_path / "training-started"
    process = subprocess.Popen(
        [str(BIN / "shipyard"), "-f", str(_spec(plan)), "run", "train-model", "churn"],
        cwd=plan.runtime.project_dir,
        env={**os.environ, **SUBPROCESS_ENV, MARKER_ENV: str(marker)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with killed_at_exit(process):
        wait_for(marker.exists, "the trials to start", timeout=180)
        process.kill()
        process.wait(timeout=30)
    # what the kill left: both runs claim to be running
    [(flow_run, _)] = _flow_runs_of(process.pid)
    assert flow_run.state.type.value == "RUNNING"
    [attempt] = _mlflow_runs_of(plan, process.pid)
    assert attempt.info.status == "RUNNING"

    result = _summary(_train(plan))
    assert result["registered_version"] == "1" and result["skipped"] is False

    [(flow_run, task_runs)] = _flow_runs_of(process.pid)
    assert flow_run.state.type.value == "CRASHED"
    assert f"{socket.gethostname()}:{process.pid}) is gone" in flow_run.state.message
    trials = [t for t in task_runs if t.name.startswith("trial")]
    assert trials and all(t.state.type.value == "CRASHED" for t in trials)
    [attempt] = _mlflow_runs_of(plan, process.pid)
    assert attempt.info.status == "FAILED"
    failure = attempt.data.tags["shipyard.failure"]
    assert f"Prefect flow run {flow_run.id}" in failure and "killed or crashed" in failure
    assert "shipyard.outcome" not in attempt.data.tags  # never a cache hit


# --- 4. the Prefect server killed right after the registration ----------------------------------


def test_a_prefect_server_killed_after_registration_does_not_undo_or_repeat_it(
    make_project: Callable[..., Path],
) -> None:
    port = free_port()
    spec = make_project(
        rows=600, spec=SPEC.format(port=port) + MODEL_SPEC.format(threshold=">= 0.6")
    )
    plan = compile_spec(spec)
    api = f"http://127.0.0.1:{port}/api"
    pid_file = Path(plan.runtime.state_dir) / "run" / "prefect-server.pid"
    started = run_shipyard(spec, "server", "start")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        began = time.monotonic()
        with killed_at_exit(
            _shipyard_with_fault(
                plan, ["kill-server-after-register", str(pid_file)], "run", "train-model", "churn"
            )
        ) as run:
            out, err = run.communicate(timeout=300)
        took = time.monotonic() - began
        assert run.returncode == 1, out[-3000:] + err[-3000:]
        message = err[err.index("error: model.churn:") :]
        assert "registered version 1 (1.0.0) of 'test-project.churn' as @champion" in message
        assert f"the Prefect server at {api} is down (ConnectError)" in message
        assert "a rerun with the same inputs is skipped" in message
        assert "Traceback" not in err and "internal error" not in err
        assert took < 120, f"took {took:.0f}s to report the dead server"
        assert [(v, a, s) for v, a, s, _ in _versions(plan)] == [("1", ["champion"], "1.0.0")]

        restarted = run_shipyard(spec, "server", "start")
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        again = _summary(run_shipyard(spec, "run", "train-model", "churn", timeout=300))
        assert again["skipped"] is True and again["registered_version"] is None
        assert [(v, a, s) for v, a, s, _ in _versions(plan)] == [("1", ["champion"], "1.0.0")]
        runs = _prefect_runs(api)
        killed = [
            r for r in runs if r["labels"].get("shipyard.process", "").endswith(f":{run.pid}")
        ]
        assert [r["state_type"] for r in killed] == ["CRASHED"]
    finally:
        run_shipyard(spec, "server", "stop")


def _prefect_runs(api: str) -> list[dict[str, Any]]:
    from support import fetch_json

    found: Any = fetch_json(
        f"{api}/flow_runs/filter", {"flow_runs": {"name": {"like_": "train-model/churn@"}}}
    )
    return list(found)


# --- who counts as gone ------------------------------------------------------------------------


def test_only_a_process_certainly_gone_from_this_host_counts_as_gone() -> None:
    from shipyard.processes import owner_gone, process_owner

    host, me = socket.gethostname(), process_owner()
    assert owner_gone(me, since=time.time()) is False  # this one runs, and ran when it began
    assert owner_gone(me) is False
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    assert owner_gone(f"{host}:{child.pid}") is True  # exited
    assert owner_gone(f"another-{host}:{child.pid}") is False  # elsewhere: cannot tell
    # a pid that runs but started after the run began is another process (pids are reused)
    assert owner_gone(me, since=1.0) is True
