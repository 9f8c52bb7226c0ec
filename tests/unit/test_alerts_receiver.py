"""The Alertmanager webhook receiver and `shipyard alerts test|history|receive`, end to end:
Alertmanager's JSON in, apprise's JSON out at a local webhook."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import free_port

from shipyard.alerts.engine import deliveries
from shipyard.alerts.receiver import AlertReceiver
from shipyard.cli import main
from shipyard.compiler import Plan

from .test_alerts import SMTP_USER, SPEC, mailbox, plan
from .webhook import Webhook

__all__ = ["mailbox", "plan"]  # fixtures, used by name

pytestmark = pytest.mark.usefixtures("no_state_dir_override", "quick_retries")


@pytest.fixture
def receiver(plan: Plan) -> Iterator[str]:
    server = AlertReceiver(plan, port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server.url
    server.shutdown()
    server.server_close()
    thread.join()


def notification(status: str, severity: str = "critical") -> dict[str, Any]:
    """What Alertmanager posts (webhook version 4) for one alert of the group."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "receiver": "shipyard",
        "status": status,
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {"alertname": "HighErrorRate", "service": "churn-api"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": status,
                "labels": {
                    "alertname": "HighErrorRate",
                    "service": "churn-api",
                    "severity": severity,
                },
                "annotations": {
                    "summary": "churn-api answers 5xx to 7% of requests",
                    "description": "5xx ratio 0.07 over 5m (threshold 0.05)",
                },
                "startsAt": "2026-12-02T06:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-12-02T06:10:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=errors",
                "fingerprint": "c0ffee1234567890",
            }
        ],
    }


def test_alertmanager_firing_then_resolved_reaches_the_route(
    receiver: str, plan: Plan, webhook: Webhook
) -> None:
    fired = httpx.post(f"{receiver}/alertmanager/ops", json=notification("firing"))
    assert fired.status_code == 200, fired.text
    assert fired.json() == {"route": "ops", "alerts": 1, "deliveries": 1, "failed": []}
    [post] = webhook.at("/ops")
    assert post["title"] == "churn-api answers 5xx to 7% of requests"
    assert post["type"] == "failure"
    assert post["message"].startswith("5xx ratio 0.07 over 5m (threshold 0.05)\nhttp://prometheus")
    assert "key: alertmanager/HighErrorRate/c0ffee1234567890" in post["message"]

    # Alertmanager repeats a firing group every repeat_interval: within the cooldown, no news
    again = httpx.post(f"{receiver}/alertmanager/ops", json=notification("firing"))
    assert again.json()["deliveries"] == 0

    resolved = httpx.post(f"{receiver}/alertmanager/ops", json=notification("resolved"))
    assert resolved.json()["deliveries"] == 1
    _, post = webhook.at("/ops")
    assert post["title"] == "[RESOLVED] churn-api answers 5xx to 7% of requests"
    assert post["type"] == "success"
    key = "alertmanager/HighErrorRate/c0ffee1234567890"
    assert [d.status for d in deliveries(plan, route="ops", key=key)] == ["resolved", "firing"]


def test_an_alertmanager_severity_below_the_route_floor_is_not_sent(
    receiver: str, webhook: Webhook
) -> None:
    answer = httpx.post(f"{receiver}/alertmanager/ops", json=notification("firing", "info"))
    assert answer.json()["deliveries"] == 0
    assert webhook.posts == []


def test_the_receiver_is_healthy(receiver: str) -> None:
    answer = httpx.get(f"{receiver}/-/healthy")
    assert (answer.status_code, answer.json()) == (200, {"status": "healthy"})


def test_an_unknown_route_is_404_naming_the_defined_ones(receiver: str) -> None:
    answer = httpx.post(f"{receiver}/alertmanager/opz", json=notification("firing"))
    assert answer.status_code == 404
    assert answer.json()["error"] == "alert route 'opz' is not defined in pipelines.yaml"
    assert "ops" in answer.json()["hint"]


def test_a_body_that_is_not_alertmanager_json_is_400(receiver: str, webhook: Webhook) -> None:
    for body in (b"{not json", b'{"status": "firing"}', b'{"alerts": ["x"]}'):
        answer = httpx.post(f"{receiver}/alertmanager/ops", content=body)
        assert answer.status_code == 400, body
        assert answer.json()["error"].startswith("not an Alertmanager notification: ")
        assert "webhook JSON (version 4)" in answer.json()["hint"]
    assert webhook.posts == []


# -- the CLI ------------------------------------------------------------------------------------


def spec_file(tmp_path: Path, webhook: Webhook) -> Path:
    path = tmp_path / "pipelines.yaml"
    path.write_text(SPEC.format(hook=webhook.port, dead=free_port(), smtp=1, user=SMTP_USER))
    return path


def test_alerts_test_sends_to_every_channel_and_history_shows_it(
    tmp_path: Path, webhook: Webhook, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = spec_file(tmp_path, webhook)
    assert main(["-f", str(spec), "alerts", "test", "pager", "--severity", "critical"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"json://127.0.0.1:{webhook.port}/pager: ok"
    assert out[1].startswith("json://127.0.0.1:") and ": failed: " in out[1]
    [test_post, notice] = webhook.at("/pager")
    assert test_post["title"] == "Test alert from Shipyard (shop)"
    assert notice["title"].startswith("alert channel json://127.0.0.1:")

    assert main(["-f", str(spec), "alerts", "history", "--route", "pager", "--limit", "2"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["AT", "(UTC)", "ROUTE", "KEY", "STATUS", "CHANNEL", "RESULT"]
    assert len(table) == 3
    assert "alert.pager/channel-unreachable" in table[1]


def test_alerts_test_below_the_route_floor_says_so(
    tmp_path: Path, webhook: Webhook, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = spec_file(tmp_path, webhook)
    assert main(["-f", str(spec), "alerts", "test", "pager", "--severity", "info"]) == 1
    assert capsys.readouterr().out == (
        "nothing sent: route 'pager' takes critical and above, not info\n"
    )
    assert main(["-f", str(spec), "alerts", "history"]) == 0
    assert capsys.readouterr().out == "no deliveries recorded\n"


def test_alerts_receive_serves_until_sigterm(tmp_path: Path, webhook: Webhook) -> None:
    spec = spec_file(tmp_path, webhook)
    port = free_port()
    command = [sys.executable, "-m", "shipyard.cli", "-f", str(spec), "alerts", "receive"]
    env = {k: v for k, v in os.environ.items() if k != "SHIPYARD_STATE_DIR"}
    process = subprocess.Popen(
        [*command, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()
            try:
                if httpx.get(f"{url}/-/healthy").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the receiver did not start in 60 s"
                time.sleep(0.1)
        answer = httpx.post(f"{url}/alertmanager/ops", json=notification("firing"))
        assert answer.json()["deliveries"] == 1
        assert len(webhook.at("/ops")) == 1
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert out.decode().splitlines() == [
        f"receiving Alertmanager webhooks at {url}/alertmanager/<route> (Ctrl-C stops)",
        "alert receiver stopped",
    ]


def test_alerts_history_wants_a_positive_limit(
    tmp_path: Path, webhook: Webhook, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = spec_file(tmp_path, webhook)
    with pytest.raises(SystemExit):
        main(["-f", str(spec), "alerts", "history", "--limit", "0"])
    assert "argument --limit: '0' is not a positive whole number" in capsys.readouterr().err
