"""`shipyard logs` on a real run: a trained model's flow run and a served request, found again.

One `bentoml serve` process built by the build-service flow; the project's Prefect server is the
session's test harness (the spec's port is the harness's), so `--flow-run` reads real flow logs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import MODEL_SPEC, SPEC, compile_spec, run_flow

from shipyard.cli import main
from shipyard.compiler import ServiceStep

pytestmark = pytest.mark.usefixtures("prefect_harness")

SERVICE = """
services:
  churn-api:
    model: churn
    port: {port}
    auth:
      api_keys:
        ops: {{key: "${{secret:logs-ops-key}}", roles: [predict, feedback, admin]}}
        app: {{key: "${{secret:logs-app-key}}", roles: [predict, feedback]}}
    logging: {{mask: [monthly_charges]}}
"""
OPS_KEY, APP_KEY = "logs-ops-key-0123456789", "logs-app-key-0123456789"
ROW = {"region": "north", "plan": "pro", "tenure_months": 12}
ROW |= {"monthly_charges": 123.4567, "support_calls": 2, "data_usage_gb": 10.5}


def _found(
    spec: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, list[dict[str, Any]], str]:
    code = main(["-f", str(spec), "logs", *args, "--format", "json"])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def _until(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def test_logs_finds_a_served_request_and_a_flow_run(
    make_project: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from prefect.settings import PREFECT_API_URL
    from support import free_port

    from flows.build_service import build_service
    from flows.train_model import train_model
    from shipyard.serving import deploy

    api = str(PREFECT_API_URL.value())
    monkeypatch.setenv("PREFECT_API_URL", api)
    monkeypatch.setenv("SHIPYARD_SECRET_LOGS_OPS_KEY", OPS_KEY)
    monkeypatch.setenv("SHIPYARD_SECRET_LOGS_APP_KEY", APP_KEY)
    monkeypatch.delenv("SHIPYARD_API_KEY", raising=False)
    harness_port = int(api.rstrip("/").removesuffix("/api").rsplit(":", 1)[1])
    text = SPEC.format(port=harness_port) + MODEL_SPEC.format(threshold=">= 0.5")
    spec = make_project(rows=800, spec=text + SERVICE.format(port=free_port()))
    plan = compile_spec(spec)
    assert plan.prefect.api_url.rstrip("/") == api.rstrip("/")

    trained = run_flow(plan, train_model, model="churn")
    assert trained.is_completed(), trained
    flow_run = str(trained.state_details.flow_run_id)
    step = plan.named(ServiceStep, "churn-api")
    built = run_flow(plan, build_service, service="churn-api")
    assert built.is_completed(), built.result(raise_on_failure=False)
    try:
        url = deploy.base_url(step)
        headers = {"Authorization": f"Bearer {APP_KEY}", "X-Request-ID": "logs-e2e-1"}
        answer = httpx.post(url + "/predict", json=ROW, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        outcome = {"request_id": "logs-e2e-1", "outcome": 1}
        headers = {"Authorization": f"Bearer {APP_KEY}"}
        assert httpx.post(url + "/feedback", json=outcome, headers=headers, timeout=30).is_success

        def request_lines() -> list[dict[str, Any]] | None:
            code, found, _ = _found(
                spec, capsys, "--request-id", "logs-e2e-1", "--api-key", OPS_KEY
            )
            sources = {line["source"] for line in found}
            return found if code == 0 and {"service", "prediction", "feedback"} <= sources else None

        found = _until(request_lines)
        assert found, "the request's service line, prediction and feedback were not all found"
        assert all(line["request_id"] == "logs-e2e-1" for line in found)
        [prediction] = [line for line in found if line["source"] == "prediction"]
        assert prediction["inputs"]["monthly_charges"] == "***"  # masked where it was logged
        assert any(line.get("status") == 200 for line in found if line["source"] == "service")
        assert [line["time"] for line in found] == sorted(line["time"] for line in found)
        text_found = json.dumps(found)
        assert "123.4567" not in text_found and APP_KEY not in text_found

        code, refused, err = _found(spec, capsys, "--request-id", "logs-e2e-1")
        assert code == 1 and refused == []
        assert "role 'admin'" in err and "--api-key" in err
    finally:
        deploy.stop(step)

    def flow_lines() -> list[dict[str, Any]] | None:
        code, found, _ = _found(spec, capsys, "--flow-run", flow_run)
        return found if code == 0 and {"flow", "shipyard"} <= {f["source"] for f in found} else None

    found = _until(flow_lines)
    assert found, "the training run's lines were not found on Prefect and in Shipyard's log"
    assert all(f.get("correlation_id", f.get("flow_run_id")) == flow_run for f in found)
    messages = [f["message"] for f in found if f["source"] == "flow"]
    assert any("train-model" in m or "Finished" in m or "Beginning" in m for m in messages), (
        messages
    )
    shipyard_messages = {f["message"] for f in found if f["source"] == "shipyard"}
    assert not shipyard_messages & set(messages)  # Prefect's copies of Shipyard's lines dropped
