"""Real servers: a local Prefect server (SQLite, then PostgreSQL), `shipyard apply`, and a
`prefect deployment run` executed by a process worker."""

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
from support import SPEC, free_port

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def shipyard(
    spec: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "shipyard"), "-f", str(spec), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or os.environ.copy(),
        cwd=spec.parent,
        check=False,
    )


def api(url: str, body: dict[str, object] | None = None) -> dict[str, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method="POST" if data else "GET",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        result: dict[str, object] = json.loads(response.read())
        return result


@pytest.fixture
def running_server(make_project: Callable[..., Path]) -> Iterator[tuple[Path, str]]:
    port = free_port()
    spec = make_project(rows=150, port=port)
    started = shipyard(spec, "server", "start")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield spec, f"http://127.0.0.1:{port}/api"
    finally:
        shipyard(spec, "worker", "stop")
        stopped = shipyard(spec, "server", "stop")
        assert "stopped" in stopped.stdout


def test_apply_then_prefect_deployment_run_through_a_worker(
    running_server: tuple[Path, str],
) -> None:
    spec, api_url = running_server
    applied = shipyard(spec, "apply")
    assert applied.returncode == 0, applied.stderr
    assert "deployment validate-dataset/customers" in applied.stdout
    assert "work pool  shipyard-process (created)" in applied.stdout

    deployment = api(f"{api_url}/deployments/name/validate-dataset/customers")
    assert "dataset.customers" in deployment["tags"]  # type: ignore[operator]
    assert deployment["work_pool_name"] == "shipyard-process"
    assert deployment["parameters"]["step"]["id"] == "dataset.customers"  # type: ignore[index]
    blocks = api(f"{api_url}/block_documents/filter", {})
    names = {b["name"] for b in blocks}  # type: ignore[union-attr, index, attr-defined]
    assert {"test-project-local-dvc", "test-project-local-metrics"} <= names

    env_lines = shipyard(spec, "env").stdout.splitlines()
    env = os.environ.copy()
    for line in env_lines:
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip("'")
    assert env["PREFECT_API_URL"] == api_url
    run = subprocess.run(
        [str(BIN / "prefect"), "deployment", "run", "validate-dataset/customers"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", run.stdout)
    assert flow_run_id, run.stdout

    worker = shipyard(spec, "worker", "start", "--once", timeout=600)
    assert worker.returncode == 0, worker.stdout + worker.stderr
    flow_run = api(f"{api_url}/flow_runs/{flow_run_id.group(1)}")
    assert flow_run["state_type"] == "COMPLETED", flow_run
    versions = json.loads(shipyard(spec, "data", "versions", "customers", "--json").stdout)
    assert len(versions) == 1 and versions[0]["flow_run_id"] == flow_run_id.group(1)


def test_apply_keeps_schedules_in_step_with_the_spec(running_server: tuple[Path, str]) -> None:
    spec, api_url = running_server
    text = spec.read_text()
    spec.write_text(
        text.replace(
            "    path: data/customers.parquet",
            "    path: data/customers.parquet\n    schedule: '0 3 * * *'",
        )
    )
    assert shipyard(spec, "apply").returncode == 0
    schedules = api(f"{api_url}/deployments/name/validate-dataset/customers")["schedules"]
    assert [s["schedule"]["cron"] for s in schedules] == ["0 3 * * *"]  # type: ignore[union-attr, index]
    spec.write_text(text)
    assert shipyard(spec, "apply").returncode == 0
    assert api(f"{api_url}/deployments/name/validate-dataset/customers")["schedules"] == []


def test_apply_without_a_server_says_how_to_start_one(make_project: Callable[..., Path]) -> None:
    spec = make_project(rows=0, port=free_port())
    done = shipyard(spec, "apply")
    assert done.returncode == 1
    assert "is not reachable" in done.stderr and "shipyard server start" in done.stderr
    assert "Traceback" not in done.stderr


def test_scale_out_prefect_server_on_postgresql(make_project: Callable[..., Path]) -> None:
    database = f"shipyard_test_{uuid.uuid4().hex[:8]}"
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
        started = shipyard(spec, "server", "start")
        assert started.returncode == 0, started.stdout + started.stderr
        assert shipyard(spec, "apply").returncode == 0
        deployment = api(f"http://127.0.0.1:{port}/api/deployments/name/validate-dataset/customers")
        assert deployment["name"] == "customers"
        tables = subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                database,
                "-tAc",
                "select count(*) from deployment",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert tables.stdout.strip() == "1"
    finally:
        shipyard(spec, "server", "stop")
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
