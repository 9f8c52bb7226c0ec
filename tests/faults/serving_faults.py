"""Helpers of the serving fault tests: one trained project, Bentos built from it, services
started on them, and the processes of a running service (found under /proc)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from support import MODEL_SPEC, SPEC, compile_spec, free_port, run_flow

from shipyard.compiler import FeatureRepoStep, Plan, ServiceStep

FEATURES = """
features:
  entities: {customer: {join_key: customer_id}}
  views:
    profile: {entity: customer, source: customers, ttl: 3000d,
              features: [region, plan, tenure_months]}
    usage: {entity: customer, source: customers, ttl: 3000d,
            features: [monthly_charges, support_calls, data_usage_gb]}
  services:
    churn_v2: [profile, usage]
"""
SERVICES = """
services:
  churn-faults:
    model: churn
    port: {port}
    workers: 2
    auth:
      api_keys:
        ops: {{key: "${{secret:faults-ops-key}}", roles: [predict, feedback, admin]}}
        app: {{key: "${{secret:faults-app-key}}", roles: [predict, feedback]}}
        gone: {{key: "${{secret:faults-gone-key}}", roles: [predict, feedback]}}
  churn-limits:
    model: churn
    port: {limits_port}
    workers: 2
    rate_limit: {{per_key: 100/second}}
"""
SECRETS = {
    "SHIPYARD_SECRET_FAULTS_OPS_KEY": "faults-ops-key-0123456789",
    "SHIPYARD_SECRET_FAULTS_APP_KEY": "faults-app-key-0123456789",
    "SHIPYARD_SECRET_FAULTS_GONE_KEY": "faults-gone-key-0123456789",
}
OPS = {"Authorization": "Bearer faults-ops-key-0123456789"}
APP = {"Authorization": "Bearer faults-app-key-0123456789"}
GONE = {"Authorization": "Bearer faults-gone-key-0123456789"}
CUSTOMER = 10_042  # in the demo data (ids 10001 on), so it has online features


@dataclass
class Trained:
    """A project whose churn model is registered twice (v1, v2) and whose features are online."""

    project: Path
    spec: Path
    plan: Plan

    def step(self, name: str = "churn-faults", **update: Any) -> ServiceStep:
        return self.plan.named(ServiceStep, name).model_copy(update=update)

    def build(self, step: ServiceStep, version: int) -> Any:
        """The Bento of `step` serving registry version `version` as its stable variant."""
        from shipyard.compiler.services import VariantRef
        from shipyard.serving.build import build_service

        pinned = step.model_copy(update={"variants": [VariantRef(name="stable", version=version)]})
        repo = self.plan.steps.get("features.repo")
        return build_service(
            pinned,
            repo if isinstance(repo, FeatureRepoStep) else None,
            self.plan.blocks.mlflow.tracking_uri,
            say=lambda _: None,
        )


def train_project(project: Path) -> Trained:
    """Write the spec and data, train the model twice, materialize both feature views."""
    from flows.materialize_features import materialize_features
    from flows.train_model import train_model
    from shipyard.demo_data import write_customers

    model = MODEL_SPEC.format(threshold=">= 0.5").replace(
        "    features: [region, plan, tenure_months, monthly_charges, support_calls, "
        "data_usage_gb]",
        "    features: churn_v2",
    )
    text = SPEC.format(port=free_port()) + FEATURES + model
    text += SERVICES.format(port=free_port(), limits_port=free_port())
    spec = project / "pipelines.yaml"
    spec.write_text(text)
    write_customers(project / "data" / "customers.parquet", rows=800)
    plan = compile_spec(spec)
    for force in (False, True):  # versions 1 and 2
        state = run_flow(plan, train_model, model="churn", force=force)
        assert state.is_completed(), state.result(raise_on_failure=False)
    for view in ("profile", "usage"):
        state = run_flow(plan, materialize_features, view=view)
        assert state.is_completed(), state.result(raise_on_failure=False)
    return Trained(project, spec, plan)


@contextmanager
def running(step: ServiceStep, built: Any) -> Iterator[str]:
    """The service started on `built`; stopped (its whole process group) at exit."""
    from shipyard.serving import deploy

    try:
        yield deploy.start(step, built, say=lambda _: None)
    finally:
        deploy.stop(step)


def group(pgid: int) -> list[int]:
    """The live processes of process group `pgid`."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry))
    return sorted(found)


def workers(step: ServiceStep) -> list[int]:
    """The BentoML worker processes of the running service: the serve process's children
    that run the service (not its helpers)."""
    from shipyard.processes import children
    from shipyard.serving import deploy

    pid = deploy.process(step).pid()
    assert pid is not None, f"service {step.service} is not running"
    out = []
    for child in children(pid):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"_bentoml_impl.worker" in part or b"worker.service" in part for part in argv):
            out.append(child)
    return out


def wait_for(check: Callable[[], Any], timeout: float = 60.0, every: float = 0.1) -> Any:
    """Poll `check` until it returns something true, or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def predict(url: str, headers: dict[str, str], body: Any, **extra: str) -> httpx.Response:
    """One request on a new connection (`Connection: close`), so successive calls spread
    over the workers instead of riding one keep-alive connection to one of them."""
    return httpx.post(
        url + "/predict",
        json=body,
        headers={**headers, "Connection": "close", **extra},
        timeout=30,
    )
