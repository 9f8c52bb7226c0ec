"""Shared test helpers: the standard test spec, the repository root, free ports, and for the
tests on real servers the `shipyard` CLI in a subprocess, JSON APIs and PostgreSQL databases."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.compiler import Plan

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

SPEC = """\
project: test-project
profiles:
  local:
    prefect: {{port: {port}}}
datasets:
  customers:
    path: data/customers.parquet
    key: [customer_id, event_time]
    timestamp: event_time
    schema:
      customer_id: int
      event_time: datetime
      signup_date: datetime
      region: {{category: [north, south, east, west]}}
      plan: {{category: [basic, plus, pro]}}
      tenure_months: int
      monthly_charges: float
      support_calls: int
      data_usage_gb: float
      email: str
      churned: bool
    expectations:
      - not_null: [customer_id, plan, churned]
      - between: {{column: monthly_charges, min: 0, max: 500}}
      - regex: {{column: email, pattern: "^[^@]+@[^@]+$"}}
      - row_count: {{min: 10}}
"""

MODEL_SPEC = """
models:
  churn:
    task: classification
    dataset: customers
    target: churned
    features: [region, plan, tenure_months, monthly_charges, support_calls, data_usage_gb]
    estimator:
      class: sklearn.ensemble.HistGradientBoostingClassifier
      params: {{max_iter: 60}}
    search:
      strategy: grid
      space: {{learning_rate: [0.05, 0.2]}}
    metrics: [roc_auc, accuracy, f1, log_loss]
    gate:
      roc_auc: "{threshold}"
      vs_champion: {{metric: roc_auc, min_delta: -0.05}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


FEATURE_SPEC = """\
project: feature-test
profiles:
  local:
    prefect: {{port: {port}}}
{profile}
datasets:
  labels:
    path: data/labels.parquet
    timestamp: event_time
    schema: {{customer_id: int, event_time: datetime, churned: bool}}
    expectations: [{{not_null: [customer_id]}}]
  profiles:
    path: data/profiles.parquet
    timestamp: event_time
    schema: {{customer_id: int, event_time: datetime, tenure: int, plan: str}}
    expectations: [{{not_null: [customer_id]}}]
features:
  entities:
    customer: {{join_key: customer_id}}
  views:
    profile: {{entity: customer, source: profiles, ttl: 400d, features: [tenure, plan]}}
  services:
    profile_v1: [profile]
    strict_v1: {{views: [profile], on_missing: error}}
"""


# --- real servers ------------------------------------------------------------------------------


def run_shipyard(
    spec: Path, *args: str, timeout: float = 600, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`shipyard -f spec ARGS...` in the spec's folder, with this environment (plus extra_env)."""
    return subprocess.run(
        [str(BIN / "shipyard"), "-f", str(spec), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(extra_env or {})},
        cwd=spec.parent,
        check=False,
    )


def shipyard_env(spec: Path) -> dict[str, str]:
    """This environment plus the variables `shipyard env` exports for the spec."""
    env = os.environ.copy()
    for line in run_shipyard(spec, "env").stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip("'")
    return env


def prefect_deployment_run(deployment: str, env: dict[str, str]) -> str:
    """`prefect deployment run DEPLOYMENT` with `env` (see shipyard_env): the flow run's id."""
    run = subprocess.run(
        [str(BIN / "prefect"), "deployment", "run", deployment],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", run.stdout)
    assert flow_run_id, run.stdout
    return flow_run_id.group(1)


def fetch_json(url: str, body: dict[str, object] | None = None) -> dict[str, object]:
    """GET `url`, or POST `body` to it, and read the JSON answer."""
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


def psql(
    sql: str, database: str = "postgres", check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run one SQL command as `postgres` on the local PostgreSQL; `-tA`: bare values."""
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-tAc", sql],
        capture_output=True,
        text=True,
        check=check,
    )


@contextmanager
def throwaway_database(prefix: str, create: bool = False) -> Iterator[str]:
    """A new database name `prefix_<8 hex>` on the local PostgreSQL, dropped WITH (FORCE) at exit.

    `create` creates it first; without it the code under test has to create it.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    if create:
        psql(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', check=False)


# --- flows ----------------------------------------------------------------------------------------


def run_flow(plan: Plan, flow: Any, **parameters: Any) -> Any:
    """The final state of a flow of `plan`, run here the way its deployment runs it: the same
    parameters (resource names), the same plan, the plan's blocks saved first."""
    from shipyard.runtime.apply import save_blocks
    from shipyard.runtime.plans import using

    save_blocks(plan)
    with using(plan):
        return flow(**parameters, return_state=True)


def compile_spec(spec: Path) -> Plan:
    """The plan of a valid spec file."""
    from shipyard.project import load_project

    project = load_project(spec)
    assert project.plan is not None, project.render()
    return project.plan


def task_names(flow_run_id: object) -> list[str]:
    """The names of a flow run's task runs (without Prefect's suffix), in the order they ran."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter
    from prefect.client.schemas.sorting import TaskRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id={"any_": [flow_run_id]}),
            sort=TaskRunSort.EXPECTED_START_TIME_ASC,
        )
    return [run.name.rsplit("-", 1)[0] for run in runs]
