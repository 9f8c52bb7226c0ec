"""Faults of state and of the command line: a data file that changed behind DVC's back, a closed
pipe, hints that name somebody's server, and two projects asking for one port (issue 12: 8, 10,
11, 12)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support import MODEL_SPEC, SPEC, compile_spec, free_port, run_flow, run_shipyard

SHIPYARD = str(Path(sys.executable).with_name("shipyard"))


@pytest.mark.usefixtures("prefect_harness")
def test_versions_say_when_the_file_on_disk_matches_no_recorded_version(
    make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.validate_dataset import validate_dataset
    from shipyard.data.versioning import print_versions
    from shipyard.demo_data import write_customers

    spec = make_project(rows=60)
    plan = compile_spec(spec)
    first = run_flow(plan, validate_dataset, dataset="customers").result()
    capsys.readouterr()
    print_versions(plan, "customers")
    shown = capsys.readouterr().out
    assert f"*{first.md5[:10]}" in shown and "* = the file on disk" in shown

    # the file changes without being versioned: the DVC pointer still names the old bytes
    write_customers(spec.parent / "data" / "customers.parquet", rows=80, seed=8)
    print_versions(plan, "customers")
    shown = capsys.readouterr().out
    assert "*" not in shown.split("\n", 1)[1].split("\n\n")[0]  # no version marked current
    assert "matches no recorded version" in shown and "shipyard run validate-dataset" in shown
    print_versions(plan, "customers", as_json=True)
    assert [v["current"] for v in json.loads(capsys.readouterr().out)] == [False]

    (spec.parent / "data" / "customers.parquet").unlink()
    print_versions(plan, "customers")
    assert "is missing; restore a version" in capsys.readouterr().out


def test_a_closed_pipe_is_a_normal_exit(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from validate_speed import generate_spec  # a spec whose plan outgrows a pipe's buffer

    (tmp_path / "pipelines.yaml").write_text(generate_spec(200))
    reader = subprocess.Popen(
        [SHIPYARD, "plan", "--json", "--offline"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reader.stdout is not None and reader.stderr is not None
    assert reader.stdout.readline().strip() == b"{"  # like `| head -1`, then close
    reader.stdout.close()
    code = reader.wait(timeout=120)
    errors = reader.stderr.read().decode()
    assert code == 0, errors
    assert "Traceback" not in errors and "BrokenPipe" not in errors


def test_hints_name_no_particular_server() -> None:
    from shipyard.loader import load_text
    from shipyard.validation import validate

    text = SPEC.format(port=free_port()) + (
        "models:\n  churn:\n    task: classification\n    dataset: customers\n"
        "    target: churned\n    features: [tenure_months]\n"
        "    estimator: {class: sklearn.linear_model.LogisticRegression}\n"
        "services:\n  api:\n    model: churn\n    workers: 2\n    rate_limit: 10/second\n"
        "    auth: {api_keys: {app: {key: '${secret:k}'}}}\n"
    )
    [warning] = [d for d in validate(load_text(text, "p.yaml", env={})) if d.code == "W702"]
    assert "redis://<host>:6379/0" in (warning.hint or "")
    assert "127.0.0.1" not in (warning.hint or "") and "localhost" not in (warning.hint or "")


@pytest.mark.integration
def test_a_second_project_on_the_same_port_is_refused_and_named(
    tmp_path: Path,
) -> None:
    from shipyard.demo_data import write_customers

    port = free_port()
    projects = []
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "pipelines.yaml").write_text(SPEC.format(port=port))
        write_customers(folder / "data" / "customers.parquet", rows=20)
        projects.append(folder / "pipelines.yaml")
    first, second = projects
    started = run_shipyard(first, "server", "start")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        for args in (("server", "start"), ("apply",), ("run", "validate-dataset", "customers")):
            refused = run_shipyard(second, *args)
            assert refused.returncode == 1, (args, refused.stdout, refused.stderr)
            assert f"a Prefect server answers on port {port}, but it is not this project's" in (
                refused.stderr
            ), args
            assert str(first.parent) in refused.stderr  # names whose server it is
            assert f"prefect.port: {port + 1}" in refused.stderr
            assert "Traceback" not in refused.stderr
        stopped = run_shipyard(second, "server", "stop")
        assert "no Prefect server of this project was running" in stopped.stdout
        assert str(first.parent) in stopped.stdout
        assert run_shipyard(first, "server", "status").returncode == 0  # still up: not stopped
        assert run_shipyard(first, "apply").returncode == 0  # and its own project may use it
    finally:
        run_shipyard(first, "server", "stop")


@pytest.mark.integration
def test_a_second_project_does_not_take_the_first_ones_mlflow_server(tmp_path: Path) -> None:
    port = free_port()
    projects = []
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        store = f"sqlite:///{folder / 'mlflow.db'}"
        profile = f"    mlflow: {{backend_store_uri: '{store}', port: {port}}}\n"
        text = SPEC.format(port=free_port()).replace("  local:\n", "  local:\n" + profile)
        (folder / "pipelines.yaml").write_text(text)
        projects.append(folder / "pipelines.yaml")
    first, second = projects
    started = run_shipyard(first, "mlflow", "start")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        refused = run_shipyard(second, "mlflow", "start")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"an MLflow server answers on port {port}, but it is not this project's" in (
            refused.stderr
        )
        assert str(first.parent) in refused.stderr and f"mlflow.port: {port + 1}" in refused.stderr
    finally:
        run_shipyard(first, "mlflow", "stop")


def test_a_service_port_held_by_another_program_is_refused_and_named(
    make_project: Callable[..., Path], tmp_path: Path
) -> None:
    """Anything listening on the service's port, HTTP or not, is named, and nothing starts."""
    from shipyard.compiler import ServiceStep
    from shipyard.errors import ShipyardError
    from shipyard.serving import deploy

    port = free_port()
    service = f"services:\n  churn-api:\n    model: churn\n    port: {port}\n"
    spec = make_project(
        rows=0, spec=SPEC.format(port=free_port()) + MODEL_SPEC.format(threshold=">= 0.5") + service
    )
    step = compile_spec(spec).named(ServiceStep, "churn-api")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    holder = subprocess.Popen(  # a plain TCP listener: it answers no HTTP at all
        [
            sys.executable,
            "-c",
            f"import socket,time; s=socket.socket(); "
            f"s.bind(('127.0.0.1', {port})); s.listen(); print('up', flush=True); time.sleep(300)",
        ],
        cwd=elsewhere,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "up"
        with pytest.raises(ShipyardError) as refused:
            deploy.start(step, built=None)  # type: ignore[arg-type]  # refused before it is read
        message = refused.value.message
        assert f"port {port} is taken by another program (pid {holder.pid}, " in message
        assert str(elsewhere) in message and "not service 'churn-api'" in message
        assert "services.churn-api.port" in (refused.value.hint or "")
        assert deploy.process(step).pid() is None  # nothing was started
    finally:
        holder.kill()
        holder.wait()
