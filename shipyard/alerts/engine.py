"""Raising and resolving alerts on routes: severity floors, de-duplication, cooldown, and
telling a route's other channels when one of its channels cannot be reached.

A route (an `AlertStep` of the plan) takes an alert at or above its `min_severity`. An alert
that is already firing on a route is sent again only when its severity went up or the
route's cooldown passed since it was last sent; every occurrence is counted. Each channel is
sent to separately, with retries, and every attempt is recorded (`deliveries`). A delivery
failure never raises: the caller is a monitor or a rollout, which must go on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from shipyard.alerts import channels as channel_io
from shipyard.alerts.alert import Alert, Delivery, Status, rank
from shipyard.alerts.channels import Message
from shipyard.alerts.store import AlertState, AlertStore
from shipyard.compiler.alerts import AlertStep
from shipyard.compiler.plan import Plan
from shipyard.secrets import redact_url
from shipyard.spec.alerts import Severity

__all__ = ["Alert", "AlertEngine", "Delivery", "deliveries", "raise_alert", "resolve_alert"]

Send = Callable[[str, Message], str | None]


def raise_alert(plan: Plan, routes: Sequence[str], alert: Alert) -> list[Delivery]:
    """Raise `alert` on each of `routes` (names under `alerts:`); the deliveries it made.

    Raises:
        ShipyardError: A route is not defined or has a channel apprise cannot read, or the
            control database cannot be reached. A channel that fails is a failed Delivery.
    """
    return AlertEngine(plan).raise_alert(routes, alert)


def resolve_alert(plan: Plan, routes: Sequence[str], key: str, body: str = "") -> list[Delivery]:
    """Resolve the alert `key` on each route where it fires; "[RESOLVED] <title>" is sent on
    routes with `send_resolved`. Nothing happens on a route where it does not fire.

    Raises:
        ShipyardError: As for `raise_alert`.
    """
    return AlertEngine(plan).resolve_alert(routes, key, body)


def deliveries(
    plan: Plan, route: str | None = None, key: str | None = None, limit: int = 50
) -> list[Delivery]:
    """The delivery record, newest first: of one route and/or one key, or all of them."""
    return AlertEngine(plan).deliveries(route, key, limit)


class AlertEngine:
    """The routes of one plan, with a clock (tests pass their own) and a sender."""

    def __init__(
        self, plan: Plan, clock: Callable[[], float] = time.time, send: Send = channel_io.send
    ) -> None:
        self.plan = plan
        self.clock = clock
        self._send = send
        self._stores: dict[str, AlertStore] = {}

    def route(self, name: str) -> AlertStep:
        """The route named `name`, its channels checked; a ShipyardError naming the fix."""
        step = self.plan.named(AlertStep, name)
        for channel in step.channels:
            channel_io.ensure_readable(channel, step.name)
        return step

    def raise_alert(self, routes: Sequence[str], alert: Alert) -> list[Delivery]:
        steps = [self.route(name) for name in routes]
        sent: list[Delivery] = []
        for step in steps:
            if rank(alert.severity) >= rank(step.min_severity):
                sent += self._fire(step, alert, step.channels, tell_unreachable=True)
        return sent

    def resolve_alert(self, routes: Sequence[str], key: str, body: str = "") -> list[Delivery]:
        steps = [self.route(name) for name in routes]
        sent: list[Delivery] = []
        for step in steps:
            sent += self._resolve(step, key, body, tell_unreachable=True)
        return sent

    def deliveries(
        self, route: str | None = None, key: str | None = None, limit: int = 50
    ) -> list[Delivery]:
        if route is not None:
            step = self.plan.named(AlertStep, route)
            return self._store(step).deliveries(step.name, key, limit)
        urls = {step.state_database for step in self.plan.steps_of(AlertStep)}
        found = [
            d for url in sorted(urls) for d in self._store_at(url).deliveries(None, key, limit)
        ]
        return sorted(found, key=lambda d: d.at, reverse=True)[:limit]

    # -- one route ----------------------------------------------------------------------------

    def _fire(
        self, step: AlertStep, alert: Alert, channels: Sequence[str], tell_unreachable: bool
    ) -> list[Delivery]:
        store = self._store(step)
        claim = store.fire(step.name, alert, self.clock(), step.cooldown_seconds)
        if claim is None:
            return []
        message = Message(alert.title, _body(alert, claim.state), alert.severity)
        sent = self._deliver(step, alert.key, "firing", message, channels)
        if not any(d.ok for d in sent):
            store.give_back(claim)
        if tell_unreachable:
            sent += self._tell_unreachable(step, alert.severity, channels, sent)
        return sent

    def _resolve(
        self, step: AlertStep, key: str, body: str, tell_unreachable: bool
    ) -> list[Delivery]:
        was = self._store(step).resolve(step.name, key, self.clock())
        if was is None or not step.send_resolved:
            return []
        message = Message(
            f"[RESOLVED] {was.title}",
            (body or f"{was.title}: no longer firing.") + _footer(key, was.source, {}),
            "resolved",
        )
        sent = self._deliver(step, key, "resolved", message, step.channels)
        if tell_unreachable:
            sent += self._tell_unreachable(step, was.severity, step.channels, sent)
        return sent

    def _deliver(
        self, step: AlertStep, key: str, status: Status, message: Message, channels: Sequence[str]
    ) -> list[Delivery]:
        sent = []
        for channel in channels:
            error = self._send(channel, message)
            sent.append(
                Delivery(
                    step.name, redact_url(channel), key, status, error is None, error, self.clock()
                )
            )
        self._store(step).record(sent)
        return sent

    def _tell_unreachable(
        self, step: AlertStep, severity: Severity, channels: Sequence[str], sent: Sequence[Delivery]
    ) -> list[Delivery]:
        """Tell the channels that took a message about those that did not (an alert of its
        own, de-duplicated like any other), and resolve that once every channel works again."""
        key = f"{step.id}/channel-unreachable"
        failed = [d for d in sent if not d.ok]
        working = [c for c, d in zip(channels, sent, strict=True) if d.ok]
        if not failed:
            if len(sent) == len(step.channels):
                return self._resolve(
                    step, key, "Every channel of the route takes alerts again.", False
                )
            return []
        if not working:
            return []
        lines = [
            f"alert channel {d.channel} of route {step.name} is unreachable: "
            + (d.error or "").removeprefix(f"{d.channel}: ")
            for d in failed
        ]
        notice = Alert(
            key=key,
            severity=severity,
            title=lines[0]
            if len(lines) == 1
            else f"{len(lines)} alert channels of route {step.name} are unreachable",
            body="\n".join(lines),
            source=step.id,
        )
        return self._fire(step, notice, working, tell_unreachable=False)

    def _store(self, step: AlertStep) -> AlertStore:
        return self._store_at(step.state_database)

    def _store_at(self, url: str) -> AlertStore:
        if url not in self._stores:
            self._stores[url] = AlertStore(url)
        return self._stores[url]


def _body(alert: Alert, state: AlertState) -> str:
    repeated = ""
    if state.occurrences > 1:
        since = datetime.fromtimestamp(state.first_at, UTC).isoformat(timespec="seconds")
        repeated = f"\nFiring since {since} ({state.occurrences} times)."
    return alert.body + repeated + _footer(alert.key, alert.source, alert.labels)


def _footer(key: str, source: str, labels: Mapping[str, str]) -> str:
    pairs = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return f"\n\nsource: {source}; key: {key}" + (f"\nlabels: {pairs}" if pairs else "")
