"""Real servers: a local Prefect server (SQLite, then PostgreSQL), `shipyard apply`, and a
`prefect deployment run` executed by a process worker."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import (
    SPEC,
    fetch_json,
    free_port,
    prefect_deployment_run,
    psql,
    run_shipyard,
    shipyard_env,
    throwaway_database,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def running_server(make_project: Callable[..., Path]) -> Iterator[tuple[Path, str]]:
    port = free_port()
    spec = make_project(rows=150, port=port)
    started = run_shipyard(spec, "server", "start")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield spec, f"http://127.0.0.1:{port}/api"
    finally:
        run_shipyard(spec, "worker", "stop")
        stopped = run_shipyard(spec, "server", "stop")
        assert "stopped" in stopped.stdout


def test_apply_then_prefect_deployment_run_through_a_worker(
    running_server: tuple[Path, str],
) -> None:
    spec, api_url = running_server
    applied = run_shipyard(spec, "apply")
    assert applied.returncode == 0, applied.stderr
    assert "deployment validate-dataset/customers" in applied.stdout
    assert "work pool  shipyard-process (created)" in applied.stdout

    deployment = fetch_json(f"{api_url}/deployments/name/validate-dataset/customers")
    assert "dataset.customers" in deployment["tags"]  # type: ignore[operator]
    assert deployment["work_pool_name"] == "shipyard-process"
    assert deployment["parameters"] == {"dataset": "customers"}  # ids, not the step
    plan = fetch_json(
        f"{api_url}/block_types/slug/shipyard-plan/block_documents/name/test-project-local-plan"
    )
    steps = plan["data"]["plan"]["steps"]  # type: ignore[index]
    assert steps["dataset.customers"]["kind"] == "dataset"  # the step, in the applied plan
    blocks = fetch_json(f"{api_url}/block_documents/filter", {})
    names = {b["name"] for b in blocks}  # type: ignore[union-attr, index, attr-defined]
    assert {"test-project-local-dvc", "test-project-local-metrics"} <= names

    env = shipyard_env(spec)
    assert env["PREFECT_API_URL"] == api_url
    flow_run_id = prefect_deployment_run("validate-dataset/customers", env)

    worker = run_shipyard(spec, "worker", "start", "--once")
    assert worker.returncode == 0, worker.stdout + worker.stderr
    flow_run = fetch_json(f"{api_url}/flow_runs/{flow_run_id}")
    assert flow_run["state_type"] == "COMPLETED", flow_run
    versions = json.loads(run_shipyard(spec, "data", "versions", "customers", "--json").stdout)
    assert len(versions) == 1 and versions[0]["flow_run_id"] == flow_run_id


def test_shipyard_run_creates_the_run_from_the_deployment_here_or_on_a_worker(
    running_server: tuple[Path, str],
) -> None:
    spec, api_url = running_server
    here = run_shipyard(spec, "run", "validate-dataset", "customers")
    assert here.returncode == 0, here.stdout + here.stderr
    assert "applying the plan first (nothing applied yet)" in here.stderr
    assert run_shipyard(spec, "worker", "start").returncode == 0
    on_worker = run_shipyard(spec, "run", "validate-dataset", "customers", "--worker")
    assert on_worker.returncode == 0, on_worker.stdout + on_worker.stderr
    assert "waits for a worker on pool 'shipyard-process'" in on_worker.stdout
    assert "Completed" in on_worker.stdout
    assert "applying the plan" not in on_worker.stderr  # nothing changed since
    deployment = fetch_json(f"{api_url}/deployments/name/validate-dataset/customers")
    runs = fetch_json(
        f"{api_url}/flow_runs/filter",
        {"flow_runs": {"deployment_id": {"any_": [deployment["id"]]}}},
    )
    names = sorted(r["name"] for r in runs)  # type: ignore[union-attr, index]
    assert len(names) == 2 and all(n.startswith("validate-dataset/customers@") for n in names)
    assert all(  # both runs are the deployment's, with its tags
        {"shipyard", "project:test-project", "dataset.customers"} <= set(r["tags"])  # type: ignore[index]
        for r in runs  # type: ignore[union-attr]
    )


def test_plan_shows_what_apply_would_change_on_the_server(
    running_server: tuple[Path, str],
) -> None:
    spec, api_url = running_server
    before = run_shipyard(spec, "plan")
    assert before.returncode == 0, before.stderr
    assert "(1 added):" in before.stdout and "+ validate-dataset/customers  (new)" in before.stdout
    assert run_shipyard(spec, "apply").returncode == 0
    applied = run_shipyard(spec, "plan")
    assert f"no changes: the plan is what is applied on {api_url}" in applied.stdout
    text = spec.read_text()
    spec.write_text(
        text.replace("row_count: {min: 10}", "row_count: {min: 20}").replace(
            "    path: data/customers.parquet",
            "    path: data/customers.parquet\n    schedule: '0 3 * * *'",
        )
    )
    changed = run_shipyard(spec, "plan", "--json")
    [change] = json.loads(changed.stdout)["changes"]
    assert change == {
        "deployment": "validate-dataset/customers",
        "change": "changed",
        "fields": ["schedule", "expectations"],  # of the step, against the applied plan
        "schedule": [None, "0 3 * * *"],
    }
    text_out = run_shipyard(spec, "plan").stdout
    assert "~ validate-dataset/customers  changed: schedule, expectations" in text_out
    assert "schedule 'none' -> '0 3 * * *'" in text_out


def test_apply_keeps_schedules_in_step_with_the_spec(running_server: tuple[Path, str]) -> None:
    spec, api_url = running_server
    text = spec.read_text()
    spec.write_text(
        text.replace(
            "    path: data/customers.parquet",
            "    path: data/customers.parquet\n    schedule: '0 3 * * *'",
        )
    )
    assert run_shipyard(spec, "apply").returncode == 0
    schedules = fetch_json(f"{api_url}/deployments/name/validate-dataset/customers")["schedules"]
    assert [s["schedule"]["cron"] for s in schedules] == ["0 3 * * *"]  # type: ignore[union-attr, index]
    spec.write_text(text)
    assert run_shipyard(spec, "apply").returncode == 0
    assert fetch_json(f"{api_url}/deployments/name/validate-dataset/customers")["schedules"] == []


def test_apply_without_a_server_says_how_to_start_one(make_project: Callable[..., Path]) -> None:
    spec = make_project(rows=0, port=free_port())
    done = run_shipyard(spec, "apply")
    assert done.returncode == 1
    assert "is not reachable" in done.stderr and "shipyard server start" in done.stderr
    assert "Traceback" not in done.stderr


def test_scale_out_prefect_server_on_postgresql(make_project: Callable[..., Path]) -> None:
    with throwaway_database("shipyard_test") as database:  # `server start` creates it
        port = free_port()
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
        spec = make_project(
            rows=0,
            spec=SPEC.format(port=port).replace(
                f"    prefect: {{port: {port}}}",
                f"    kind: scale-out\n    prefect: {{port: {port}, database_url: '{url}'}}",
            ),
        )
        try:
            started = run_shipyard(spec, "server", "start")
            assert started.returncode == 0, started.stdout + started.stderr
            assert run_shipyard(spec, "apply").returncode == 0
            deployment = fetch_json(
                f"http://127.0.0.1:{port}/api/deployments/name/validate-dataset/customers"
            )
            assert deployment["name"] == "customers"
            tables = psql("select count(*) from deployment", database=database)
            assert tables.stdout.strip() == "1"
        finally:
            run_shipyard(spec, "server", "stop")
