"""Two replicas of one service (two `bentoml serve` processes) share one control state in
PostgreSQL: a routing change made through one reaches the other, both split the same callers
alike, and two writers racing on one revision get one success and one conflict."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import (
    MODEL_SPEC,
    SPEC,
    compile_spec,
    free_port,
    run_flow,
    throwaway_database,
)

from shipyard.compiler import FeatureRepoStep, Plan, ServiceStep

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.integration]

SERVICE = """
services:
  churn-api:
    model: churn
    candidates: [challenger]
    port: {port}
    auth:
      api_keys:
        ops: {{key: "${{secret:replica-ops-key}}", roles: [predict, admin]}}
    routing: {{sticky_key: tenure_months}}
"""
OPS = {"Authorization": "Bearer replica-ops-key-0123456789"}
ROW = {"region": "north", "plan": "pro", "tenure_months": 12}  # the model's six inputs
ROW |= {"monthly_charges": 50.0, "support_calls": 2, "data_usage_gb": 10.5}


def _train_twice(plan: Plan) -> None:
    import mlflow

    from flows.train_model import train_model

    assert run_flow(plan, train_model, model="churn").is_completed()
    assert run_flow(plan, train_model, model="churn", force=True).is_completed()  # challenger v2
    mlflow.set_tracking_uri(plan.blocks.mlflow.tracking_uri)
    assert mlflow.MlflowClient().get_model_version_by_alias("test-project.churn", "challenger")


def _wait(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_two_replicas_share_routing_through_the_control_store(
    make_project: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.processes import ManagedProcess
    from shipyard.serving import deploy
    from shipyard.serving.build import build_service
    from shipyard.settings import StateLayout

    monkeypatch.setenv("SHIPYARD_SECRET_REPLICA_OPS_KEY", "replica-ops-key-0123456789")
    with throwaway_database("shipyard_replicas") as database:
        text = SPEC.format(port=free_port()) + MODEL_SPEC.format(threshold=">= 0.5")
        text += SERVICE.format(port=free_port())
        text = text.replace(
            "  local:\n",
            "  local:\n    serving:\n"
            f"      control_database: postgresql://postgres@127.0.0.1:5432/{database}\n",
        )
        plan = compile_spec(make_project(rows=800, spec=text))
        _train_twice(plan)
        first = plan.named(ServiceStep, "churn-api")
        repo = plan.steps.get("features.repo")
        built = build_service(
            first,
            repo if isinstance(repo, FeatureRepoStep) else None,
            plan.blocks.mlflow.tracking_uri,
        )
        second = first.model_copy(update={"port": free_port()})
        layout = StateLayout(first.state_dir)
        replica = ManagedProcess("service-churn-api-replica", layout.run, layout.logs)
        try:
            url_a = deploy.start(first, built)
            replica.start(deploy._argv(second, built), deploy.serve_env(second), Path("/tmp"))
            url_b = deploy.base_url(second)
            replica.wait_until(url_b + "/readyz", timeout=240)
            revision = httpx.get(url_b + "/info", timeout=10).json()["revision"]
            assert revision == httpx.get(url_a + "/info", timeout=10).json()["revision"] >= 1

            # a change through replica A ...
            split = {"weights": {"stable": 50, "challenger": 50}, "reason": "replica test"}
            changed = httpx.post(url_a + "/admin/routing", json=split, headers=OPS, timeout=30)
            assert changed.status_code == 200, changed.text
            new = changed.json()["revision"]
            started = time.monotonic()
            # ... is what replica B serves a moment later, without being told
            reached = _wait(
                lambda: httpx.get(url_b + "/info", timeout=10).json()["revision"] == new
            )
            elapsed = time.monotonic() - started
            assert reached, "replica B never took the change"
            print(f"replica B took revision {new} after {elapsed:.2f} s")

            # the same callers get the same variant from either replica
            def variants(url: str) -> list[str]:
                return [
                    httpx.post(
                        url + "/predict", json={**ROW, "tenure_months": t}, headers=OPS, timeout=30
                    ).json()["predictions"][0]["variant"]
                    for t in range(1, 40)
                ]

            on_a, on_b = variants(url_a), variants(url_b)
            assert on_a == on_b and set(on_a) == {"stable", "challenger"}

            # two writers racing on the revision both read: one wins, one gets 409
            racing = [
                {"weights": {"stable": 100}, "reason": "writer a", "expected_revision": new},
                {"weights": {"challenger": 100}, "reason": "writer b", "expected_revision": new},
            ]
            answers = [
                httpx.post(url + "/admin/routing", json=body, headers=OPS, timeout=30)
                for url, body in zip((url_a, url_b), racing, strict=True)
            ]
            assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
            conflict = next(a for a in answers if a.status_code == 409).json()
            assert f"revision {new + 1}, not {new}" in conflict["message"]
            winner = next(a for a in answers if a.status_code == 200).json()
            for url in (url_a, url_b):  # both replicas serve what won, nothing of the loser

                def serves_winner(url: str = url) -> bool:
                    now = httpx.get(url + "/admin/routing", headers=OPS, timeout=10).json()
                    return bool(
                        now["revision"] == winner["revision"] == new + 1
                        and now["weights"] == winner["routing"]["weights"]
                    )

                assert _wait(serves_winner), url
        finally:
            replica.stop()
            deploy.stop(first)
