"""What is raised (Alert) and what was sent (Delivery): the values the alerts engine trades in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from shipyard.spec.alerts import SEVERITIES, Severity

Status = Literal["firing", "resolved"]


def rank(severity: Severity) -> int:
    """0 for info, 1 for warning, 2 for critical: a route takes alerts at or above its own."""
    return SEVERITIES.index(severity)


@dataclass(frozen=True)
class Alert:
    """A condition someone should hear about, raised again for as long as it holds.

    Attributes:
        key: De-duplication key, e.g. "monitor.churn-api/drift": raising the same key again
            while it fires is one alert, sent again only after the route's cooldown.
        severity: info, warning or critical.
        title: One line, the subject of the message.
        body: The details.
        source: Resource id that raised it, e.g. "monitor.churn-api" or "alertmanager".
        labels: Extra context, shown under the body.
    """

    key: str
    severity: Severity
    title: str
    body: str
    source: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    """One attempt to send one message to one channel of a route.

    Attributes:
        route: The route's name, as under `alerts:`.
        channel: The channel's URL with its password hidden; secrets stay `${secret:NAME}`.
        key: The alert's key.
        status: Whether the message said the alert fires or has resolved.
        ok: Whether the channel took the message (after retries).
        error: Why it did not, naming the channel (redacted); None when ok.
        at: When, epoch seconds.
    """

    route: str
    channel: str
    key: str
    status: Status
    ok: bool
    error: str | None
    at: float
