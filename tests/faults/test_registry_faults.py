"""A registry that cannot answer is never "no champion" and never "no versions yet": a real
`mlflow server` behind a proxy that refuses (403), fails (503) or leaves hanging the one REST
call under test; the retraining stops before anything is registered, and the registry is as
it was."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from faults import FaultyProxy
from support import MODEL_SPEC, SPEC, compile_spec, free_port, run_flow

from shipyard.compiler import Plan

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]

ALIAS = "/api/2.0/mlflow/registered-models/alias"
VERSIONS = "/api/2.0/mlflow/model-versions/search"
NAME = "test-project.churn"


@dataclass
class Registry:
    """A project trained once, directly against its MLflow server: v1 is the champion."""

    spec: Path
    plan: Plan
    url: str

    def through(self, proxy_url: str) -> Plan:
        """The same project, its MLflow block pointing at the proxy instead."""
        text = self.spec.read_text().replace(
            f"backend_store_uri: '{self.backend}', port: {self.port}",
            f"tracking_uri: '{proxy_url}'",
        )
        proxied = self.spec.with_name("proxied.yaml")
        proxied.write_text(text)
        return compile_spec(proxied)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def backend(self) -> str:
        return f"sqlite:///{self.spec.parent / 'mlflow.db'}"

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.url, registry_uri=self.url)


def _train(plan: Plan, force: bool = False) -> Any:
    from flows.train_model import train_model

    return run_flow(plan, train_model, model="churn", force=force)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[Registry]:
    from shipyard.demo_data import write_customers
    from shipyard.runtime import mlflow_server

    folder = tmp_path_factory.mktemp("registry-faults")
    port = free_port()
    profile = (
        f"    mlflow: {{backend_store_uri: 'sqlite:///{folder / 'mlflow.db'}', port: {port}}}\n"
    )
    text = SPEC.format(port=free_port()).replace("  local:\n", "  local:\n" + profile)
    spec = folder / "pipelines.yaml"
    spec.write_text(textwrap.dedent(text + MODEL_SPEC.format(threshold=">= 0.6")))
    write_customers(folder / "data" / "customers.parquet", rows=800)
    plan = compile_spec(spec)
    url = mlflow_server.start(plan, timeout=120)
    try:
        state = _train(plan)
        assert state.is_completed(), state.result(raise_on_failure=False)
        assert state.result().aliases == ["champion"]
        yield Registry(spec, plan, url)
    finally:
        mlflow_server.mlflow_process(plan).stop()


@pytest.mark.parametrize("fault", ["403", "503", "hang"])
@pytest.mark.parametrize(
    ("route", "lookup"),
    [(ALIAS, "alias @champion"), (VERSIONS, "the versions")],
    ids=["champion-alias", "latest-version"],
)
def test_an_unanswered_registry_lookup_stops_retraining_before_anything_is_registered(
    registry: Registry, monkeypatch: pytest.MonkeyPatch, route: str, lookup: str, fault: str
) -> None:
    from shipyard.audit import AuditLog
    from shipyard.registry import RegistryUnavailable
    from shipyard.settings import StateLayout

    # MLflow retries for minutes by default (tracking.py only sets defaults): fail in seconds
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    audit = AuditLog(StateLayout(registry.plan.runtime.state_dir).catalog)
    audited = audit.entries("model.churn")
    runs_before = _runs(registry)

    with FaultyProxy(registry.url, route, fault) as proxy:
        state = _train(registry.through(proxy.url), force=True)
    assert proxy.faulted >= 1, proxy.seen  # the call under test went through the proxy

    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, RegistryUnavailable), error
    assert f"could not read {lookup} of '{NAME}'" in error.message
    assert "nothing was registered" in (error.hint or "")
    client = registry.client()
    versions = client.search_model_versions(f"name = '{NAME}'")  # (without their aliases)
    assert [str(v.version) for v in versions] == ["1"]
    assert client.get_model_version(NAME, "1").aliases == ["champion"]
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    assert audit.entries("model.churn") == audited
    # the attempt's MLflow run says how it ended (it is not left RUNNING)
    [attempt] = [r for r in _runs(registry).values() if r.info.run_id not in runs_before]
    assert attempt.info.status == "FAILED"
    assert f"could not read {lookup}" in attempt.data.tags["shipyard.failure"]
    assert "shipyard.registration" not in attempt.data.tags  # no registration was begun


def _runs(registry: Registry) -> dict[str, Any]:
    client = registry.client()
    experiment = client.get_experiment_by_name("shipyard/test-project/churn")
    found = client.search_runs(
        [experiment.experiment_id], "tags.`shipyard.resource` = 'model.churn'"
    )
    return {r.info.run_id: r for r in found}
