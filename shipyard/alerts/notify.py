"""Alerts from a run that must go on (a rollout, an A/B test): raise or resolve them on the
routes a step names, and never fail the run because of them."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from shipyard.alerts.engine import Alert, Delivery, raise_alert, resolve_alert
from shipyard.compiler.plan import Plan
from shipyard.errors import ShipyardError
from shipyard.spec.alerts import Severity

log = logging.getLogger("shipyard.alerts")


def notify(
    plan: Plan,
    route_ids: Sequence[str],
    key: str,
    severity: Severity,
    title: str,
    body: str,
    source: str,
    labels: Mapping[str, str] | None = None,
) -> list[Delivery]:
    """Raise the alert `key` on the routes `route_ids` (`alert.<name>`); the deliveries made.

    A channel that fails is a failed Delivery (and a log warning); a route or control database
    that cannot be reached is a log warning and no deliveries, never an error: the caller's
    decision is already made and recorded, and must stand.
    """
    if not route_ids:
        return []
    alert = Alert(key, severity, title, body, source, dict(labels or {}))
    try:
        sent = raise_alert(plan, _names(route_ids), alert)
    except ShipyardError as exc:
        log.warning("alert '%s' of %s was not raised: %s", key, source, exc.message)
        return []
    _warn_failed(sent)
    return sent


def resolve(
    plan: Plan, route_ids: Sequence[str], keys: Sequence[str], body: str, source: str
) -> list[Delivery]:
    """Resolve each of `keys` on the routes `route_ids` where it fires; as safe as `notify`."""
    sent: list[Delivery] = []
    if not route_ids:
        return sent
    for key in keys:
        try:
            sent += resolve_alert(plan, _names(route_ids), key, body)
        except ShipyardError as exc:
            log.warning("alert '%s' of %s was not resolved: %s", key, source, exc.message)
            return sent
    _warn_failed(sent)
    return sent


def _names(route_ids: Sequence[str]) -> list[str]:
    return [route.removeprefix("alert.") for route in route_ids]


def _warn_failed(sent: Sequence[Delivery]) -> None:
    for delivery in sent:
        if not delivery.ok:
            log.warning(
                "alert '%s' (%s) was not delivered to route %s: %s",
                delivery.key,
                delivery.status,
                delivery.route,
                delivery.error,
            )
