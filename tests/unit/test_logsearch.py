"""`shipyard logs`: one search over Shipyard's, a service's and the prediction log's lines."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from support import MODEL_SPEC, SPEC, free_port

from shipyard.cli import main
from shipyard.logsearch.records import format_time
from shipyard.logsearch.redact import Redactor
from shipyard.serving.predlog import BATCH, PredictionLog

pytestmark = pytest.mark.usefixtures("no_state_dir_override")

SERVICES = """
services:
  churn-api:
    model: churn
    port: {port}
    auth:
      api_keys:
        ops: {{key: "${{secret:ops-key}}", roles: [predict, admin]}}
        app: {{key: "${{secret:app-key}}", roles: [predict, feedback]}}
    logging: {{mask: [monthly_charges]}}
  open-api:
    model: churn
    port: {other}
"""
OPS_KEY, APP_KEY = "ops-key-0123456789", "app-key-0123456789"
FLOW_RUN = "0f8e1c2a-5b7d-4e3f-9a1b-2c3d4e5f6a7b"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with two services (one with auth) and logs of every kind under .shipyard."""
    monkeypatch.setenv("SHIPYARD_SECRET_OPS_KEY", OPS_KEY)
    monkeypatch.setenv("SHIPYARD_SECRET_APP_KEY", APP_KEY)
    monkeypatch.delenv("SHIPYARD_API_KEY", raising=False)
    spec = tmp_path / "pipelines.yaml"
    spec.write_text(
        SPEC.format(port=free_port())
        + MODEL_SPEC.format(threshold=">= 0.5")
        + SERVICES.format(port=free_port(), other=free_port())
    )
    return spec


def _line(at: float, message: str, level: str = "info", **fields: Any) -> str:
    entry = {"time": format_time(at), "level": level, "logger": "shipyard.x", "message": message}
    return json.dumps({**entry, **fields}) + "\n"


def _write(path: Path, *lines: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.writelines(lines)


def _logs(spec: Path) -> Path:
    return spec.parent / ".shipyard" / "logs"


def _predictions(spec: Path, service: str, rows: list[tuple[Any, ...]]) -> None:
    """Rows written by the service's real prediction log writer: (kind, request id, time, ...)."""
    url = f"sqlite:///{spec.parent / '.shipyard' / 'serving' / service / 'logs.sqlite'}"
    log = PredictionLog(url, service)
    try:
        for kind, request_id, at, *rest in rows:
            if kind == "prediction":
                log.log_prediction(request_id, "stable", "2", *rest, at=at)
            else:
                log.log_feedback(rest[0], request_id=request_id, at=at)
        log.flush()
    finally:
        log.close()


def _run(spec: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["-f", str(spec), "logs", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_request_is_found_in_every_log_merged_by_time_and_tagged(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    _write(
        _logs(project) / "service-churn-api.log",
        _line(now - 30, "started", logger="bentoml"),
        _line(now - 20, "answered", request_id="req-1", status=200),
        "Traceback (most recent call last):\n",  # a raw line: it stays with the line above
        _line(now - 15, "answered", request_id="req-2", status=200),
    )
    batch_inputs = {BATCH: 1, "columns": ["plan"], "rows": [["pro"], ["basic"]]}
    batch_output = {BATCH: 1, "row": [0, 1], "prediction": [True, False]}
    _predictions(
        project,
        "churn-api",
        [
            ("prediction", "req-1", now - 21, batch_inputs, batch_output),
            ("prediction", "req-2", now - 14, {"plan": "pro"}, {"prediction": True}),
            ("feedback", "req-1/1", now - 5, 1),
        ],
    )
    _write(_logs(project) / "shipyard.jsonl", _line(now - 25, "routing read", request_id="req-1"))

    code, out, err = _run(project, capsys, "--request-id", "req-1", "--api-key", OPS_KEY)

    assert code == 0, err
    lines = out.splitlines()
    sources = [line.split()[1] for line in lines if not line.startswith(" ")]
    assert sources == ["shipyard", "prediction", "service", "feedback"]
    assert "answered" in lines[2] and "status=200" in lines[2]
    assert lines[3].strip() == "Traceback (most recent call last):"
    assert "req-2" not in out
    assert '"prediction":[true,false]' in out  # the batch record, as the service wrote it


def test_one_row_of_a_batch_finds_the_batch_and_its_own_feedback_only(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    _write(_logs(project) / "service-open-api.log", _line(now - 9, "answered", request_id="b-7"))
    inputs = {BATCH: 1, "columns": ["plan"], "rows": [["pro"], ["basic"]]}
    output = {BATCH: 1, "row": [0, 1], "p": [0.1, 0.9]}
    _predictions(
        project,
        "open-api",
        [
            ("prediction", "b-7", now - 10, inputs, output),
            ("feedback", "b-7/0", now - 5, 0),
            ("feedback", "b-7/1", now - 4, 1),
            ("prediction", "b-70", now - 3, {"plan": "pro"}, {"p": 0.5}),
        ],
    )

    code, out, err = _run(project, capsys, "--request-id", "b-7/1", "--format", "json")

    assert code == 0, err
    found = [(f["source"], f["request_id"]) for f in map(json.loads, out.splitlines())]
    assert found == [("prediction", "b-7"), ("service", "b-7"), ("feedback", "b-7/1")]


def test_json_format_is_one_object_per_line_with_source_and_time(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    _predictions(project, "open-api", [("prediction", "r-9", now, {"plan": "pro"}, {"p": 0.7})])
    _write(_logs(project) / "service-open-api.log", _line(now + 1, "answered", request_id="r-9"))

    code, out, _ = _run(project, capsys, "--request-id", "r-9", "--format", "json")

    assert code == 0
    found = [json.loads(line) for line in out.splitlines()]
    assert [(f["source"], f["request_id"]) for f in found] == [
        ("prediction", "r-9"),
        ("service", "r-9"),
    ]
    assert found[0]["inputs"] == {"plan": "pro"} and found[0]["output"] == {"p": 0.7}
    assert found[0]["time"].endswith("Z") and found[0]["logger"] == "service.open-api"


def test_a_flow_run_is_found_in_shipyards_log_and_a_down_prefect_is_named(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    _write(
        _logs(project) / "shipyard.jsonl",
        _line(now - 3, "trained", correlation_id=FLOW_RUN, resource="model.churn"),
        _line(now - 2, "other run", correlation_id="11111111-2222-3333-4444-555555555555"),
    )

    code, out, err = _run(project, capsys, "--flow-run", FLOW_RUN)

    assert code == 0, err
    assert "trained" in out and "resource=model.churn" in out and "other run" not in out
    assert "not searched: flow logs on Prefect" in err and "does not answer" in err
    assert "shipyard server start" in err


def test_a_service_with_auth_shows_its_logs_to_the_admin_role_only(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    _write(_logs(project) / "service-churn-api.log", _line(now, "answered", request_id="a-1"))
    _write(_logs(project) / "service-open-api.log", _line(now, "answered", request_id="a-1"))

    code, out, err = _run(project, capsys, "--service", "churn-api")
    assert code == 1 and out == ""
    assert "need the role 'admin'" in err and "no API key" in err
    assert "ops" in err and "--api-key" in err and "SHIPYARD_API_KEY" in err

    code, out, err = _run(project, capsys, "--service", "churn-api", "--api-key", APP_KEY)
    assert code == 1 and out == ""
    assert "key 'app' lacks the role 'admin'" in err

    code, out, err = _run(project, capsys, "--service", "churn-api", "--api-key", "wrong-key")
    assert code == 1 and "not valid" in err

    monkeypatch.setenv("SHIPYARD_API_KEY", OPS_KEY)
    code, out, err = _run(project, capsys, "--service", "churn-api")
    assert code == 0, err
    assert "answered" in out

    # a search across services skips the guarded one, says so, and shows the others
    monkeypatch.delenv("SHIPYARD_API_KEY")
    code, out, err = _run(project, capsys, "--request-id", "a-1")
    assert code == 0
    assert len(out.splitlines()) == 1 and "service" in out
    assert "not searched: service.churn-api" in err and "role 'admin'" in err


def test_credentials_are_hidden_in_every_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    _write(
        _logs(project) / "service-open-api.log",
        _line(
            now,
            f"called with {APP_KEY} via postgresql://svc:hunter2pass@db:5432/log",
            request_id="s-1",
            headers={"Authorization": "Bearer abc.def.ghi", "x-api-key": "k-0123456789"},
            detail="Authorization: Basic dXNlcjpwYXNzd29yZA== X-API-Key=k-0123456789",
        ),
    )

    code, out, err = _run(project, capsys, "--request-id", "s-1", "--format", "json")

    assert code == 0, err
    assert APP_KEY not in out and "hunter2pass" not in out
    assert "dXNlcjpwYXNzd29yZA" not in out and "k-0123456789" not in out
    assert "abc.def.ghi" not in out
    [found] = [json.loads(line) for line in out.splitlines()]
    assert "postgresql://svc:***@db:5432/log" in found["message"]
    assert found["headers"] == {"Authorization": "***", "x-api-key": "***"}


def test_since_level_grep_and_limit_narrow_the_lines(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    _write(
        _logs(project) / "service-open-api.log",
        _line(now - 7200, "old warning", level="warning"),
        _line(now - 60, "recent info"),
        _line(now - 50, "disk almost full", level="warning"),
        _line(now - 40, "model failed", level="error"),
        _line(now - 30, "model reloaded", level="warning"),
    )
    service = ("--service", "open-api")

    _, out, _ = _run(project, capsys, *service, "--since", "1h")
    assert "old warning" not in out and len(out.splitlines()) == 4
    _, out, _ = _run(project, capsys, *service, "--since", "1h", "--level", "warning")
    assert [line.split(": ", 1)[1] for line in out.splitlines()] == [
        "disk almost full",
        "model failed",
        "model reloaded",
    ]
    _, out, _ = _run(project, capsys, *service, "--grep", "MODEL")
    assert len(out.splitlines()) == 2
    code, out, err = _run(project, capsys, *service, "--limit", "2")
    assert code == 0 and "model failed" in out and "model reloaded" in out
    assert len(out.splitlines()) == 2 and "showing the last 2 of 5 lines" in err


def test_bad_input_is_named_with_the_fix(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(project, capsys, "--service", "churn-apx")
    assert code == 1 and "service 'churn-apx' is not defined" in err
    assert "churn-api, open-api" in err

    code, _, err = _run(project, capsys, "--service", "open-api", "--since", "90 minutes")
    assert code == 1 and "'90 minutes' is not a duration" in err and "30m, 2h, 1d" in err

    code, _, err = _run(project, capsys, "--flow-run", "run-7")
    assert code == 1 and "'run-7' is not a flow run id" in err

    code, out, err = _run(project, capsys, "--request-id", "nobody")
    assert code == 1 and out == ""
    assert "no lines match request nobody" in err
    assert "service log of open-api" in err and "prediction log of open-api" in err
    assert "Shipyard's log" in err


def test_an_unreadable_prediction_log_is_noted_and_the_other_sources_still_shown(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = project.parent / ".shipyard" / "serving" / "open-api" / "logs.sqlite"
    database.parent.mkdir(parents=True)
    database.write_bytes(b"this is not a database" * 100)
    _write(_logs(project) / "service-open-api.log", _line(time.time(), "up", request_id="u-1"))

    code, out, err = _run(project, capsys, "--request-id", "u-1")

    assert code == 0 and "up" in out
    assert "not searched: prediction log of open-api" in err and "cannot be read" in err


def test_redactor_hides_secret_values_urls_and_headers_but_keeps_the_rest() -> None:
    redactor = Redactor(["s3cret-value", "1"])  # too short to search for: left alone
    text = (
        "token s3cret-value at redis://:pw-123@cache:6379/0 and mysql://u:p@h/db; "
        "Authorization: Bearer eyJhbGciOi.x.y; count 1"
    )
    shown = redactor.text(text)
    assert shown == (
        "token *** at redis://:***@cache:6379/0 and mysql://u:***@h/db; "
        "Authorization: Bearer ***; count 1"
    )
    nested = {"rows": [{"password": "p", "plan": "pro"}], "x-api-key": "", "note": "s3cret-value"}
    assert redactor.value(nested) == {
        "rows": [{"password": "***", "plan": "pro"}],
        "x-api-key": "",
        "note": "***",
    }


def test_prefect_copies_of_shipyard_lines_are_dropped_and_its_own_lines_kept() -> None:
    from shipyard.logsearch.records import Entry
    from shipyard.logsearch.search import _new_lines, _shipyard_lines

    ours = [Entry(100.0, "shipyard", "info", "shipyard.training", "registered v3")]
    prefect = [
        Entry(100.4, "flow", "info", "shipyard.training", "registered v3"),  # the copy
        Entry(100.5, "flow", "info", "prefect.flow_runs", "Finished in state Completed()"),
        Entry(160.0, "flow", "info", "shipyard.training", "registered v3"),  # a later line
    ]
    kept = list(_new_lines(prefect, _shipyard_lines(ours)))
    assert [(e.logger, e.time) for e in kept] == [
        ("prefect.flow_runs", 100.5),
        ("shipyard.training", 160.0),
    ]
