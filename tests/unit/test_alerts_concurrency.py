"""Senders racing on one alert (receiver threads, replicas) send it once, on SQLite and on the
local PostgreSQL (integration: the same tables and compare-and-swap in both)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import throwaway_database

from shipyard.alerts.engine import Alert, Delivery, deliveries, raise_alert, resolve_alert
from shipyard.compiler import Plan

from .specs import compile_text
from .webhook import Webhook

pytestmark = pytest.mark.usefixtures("no_state_dir_override", "quick_retries")
SENDERS = 8


def spec(webhook: Webhook, control_database: str | None = None) -> str:
    profile = (
        f"profiles:\n  local:\n    serving:\n      control_database: {control_database}\n"
        if control_database
        else ""
    )
    return (
        f"project: shop\n{profile}alerts:\n  ops:\n"
        f'    channels: ["json://127.0.0.1:{webhook.port}/ops"]\n'
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def plan(request: pytest.FixtureRequest, tmp_path: Path, webhook: Webhook) -> Iterator[Plan]:
    if request.param == "sqlite":
        yield compile_text(tmp_path, spec(webhook))
        return
    with throwaway_database("shipyard_alerts", create=True) as name:
        yield compile_text(tmp_path, spec(webhook, f"postgresql://postgres@127.0.0.1:5432/{name}"))


def test_racing_senders_send_a_new_alert_once(plan: Plan, webhook: Webhook) -> None:
    alert = Alert(
        key="monitor.churn-api/drift",
        severity="warning",
        title="churn-api: input drift",
        body="PSI of tenure is 0.31",
        source="monitor.churn-api",
    )
    start = threading.Barrier(SENDERS)
    sent: list[list[Delivery]] = []

    def sender() -> None:
        start.wait()
        sent.append(raise_alert(plan, ["ops"], alert))

    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(len(s) for s in sent) == [0] * (SENDERS - 1) + [1]
    assert len(webhook.at("/ops")) == 1
    [resolved] = resolve_alert(plan, ["ops"], alert.key)
    assert [d.status for d in deliveries(plan)] == ["resolved", "firing"]
    assert resolved.ok
