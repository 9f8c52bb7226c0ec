"""`alerts:` where people are told: named routes of apprise channels, with severity and cooldown.

An alert route is declared once and named by whatever raises alerts: `monitoring:` entries,
rollouts and A/B tests (their `alerts:` field), and Alertmanager, whose webhook receiver fans
the alerts of Prometheus rules out through the same routes. A channel is an apprise URL
(`mailto://`, `slack://`, `json://host/path`, ...); a secret part is a `${secret:NAME}`
reference, resolved from a Prefect Secret block only when the alert is sent.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from shipyard.spec.base import Duration, SpecModel

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
"""Severities, lowest first: a route takes an alert at or above its `min_severity`."""


class AlertRouteSpec(SpecModel):
    """Channels that receive alerts at or above a severity."""

    description: str | None = Field(None, description="Who is behind the route, for people.")
    channels: list[Annotated[str, Field(min_length=1)]] = Field(
        min_length=1,
        description='apprise URLs, e.g. "mailto://ops@example.com", "${secret:slack-url}", '
        '"json://127.0.0.1:9000/hook".',
    )
    min_severity: Severity = Field(
        "warning", description="Alerts below this severity are not sent to this route."
    )
    cooldown: Duration = Field(
        "1h",
        description="An alert that keeps firing is sent again at most this often "
        "(per alert key); its resolution is always sent.",
    )
    send_resolved: bool = Field(True, description="Say so when the condition clears.")
