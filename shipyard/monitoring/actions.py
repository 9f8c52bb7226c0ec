"""What a monitor does with its findings: alerts (raised while a condition holds, resolved when
it clears) and retraining on drift, at most once per cooldown, with a canary of the result when
the service has a rollout.

The cooldown is claimed in the control database by compare-and-swap before the training starts,
so two monitor runs at once (a schedule and `shipyard monitor`) retrain once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import Field

from shipyard.alerts.engine import Alert, Delivery, raise_alert, resolve_alert
from shipyard.compiler import Plan
from shipyard.compiler.monitoring import MonitorStep
from shipyard.errors import ShipyardError
from shipyard.monitoring.judge import Judgement
from shipyard.rollouts.state import NamedState, RolloutConflict, StateStore
from shipyard.spec.alerts import Severity


class MonitorState(NamedState):
    """A monitor's memory between runs."""

    last_status: str | None = None
    last_run_at: float | None = None
    retrained_at: float | None = None
    retrain_outcome: str | None = None
    runs: int = 0
    recent: list[dict[str, object]] = Field(
        default_factory=list, description="The last runs: time, status, rows, drifted features."
    )


class MonitorStore(StateStore[MonitorState]):
    table = "shipyard_monitors"
    model = MonitorState
    noun = "monitor"


@dataclass(frozen=True)
class Condition:
    """One alert the monitor keeps raised while `firing`, and resolves when it clears."""

    key: str
    firing: bool
    severity: Severity
    title: str
    body: str


def conditions(step: MonitorStep, j: Judgement) -> list[Condition]:
    drift = j.drift_detected(step.drift_share)
    share = step.drift_share
    what = ", ".join(j.drifted) + (
        f"; predictions of {', '.join(j.predictions_drifted)}" if j.predictions_drifted else ""
    )
    base = f"monitor.{step.name}"
    return [
        Condition(
            f"{base}/drift",
            drift and "alert" in step.on_drift,
            step.severity,
            f"{step.name}: drift in {what or 'nothing'}",
            f"{len(j.drifted)} of {len(j.drift.columns) if j.drift else 0} features drifted "
            f"({j.drift_share:.0%}, limit {share:.0%}) over {j.rows} predictions. "
            f"See `shipyard monitor {step.name}`.",
        ),
        Condition(
            f"{base}/quality",
            bool(j.quality_failed),
            step.severity,
            f"{step.name}: live inputs fail {len(j.quality_failed)} expectation(s)",
            "; ".join(j.quality_failed),
        ),
        Condition(
            f"{base}/performance",
            bool(j.performance_failed),
            "critical",
            f"{step.name}: model performance below its limit",
            "; ".join(
                f"{p.variant}: {p.metric} {p.value:.4g} on {p.labels} labels"
                for p in j.performance_failed
                if p.value is not None
            ),
        ),
        Condition(
            f"{base}/freshness",
            bool(j.stale),
            "warning",
            f"{step.name}: stale online features",
            "; ".join(f.view for f in j.stale) + ": run `shipyard run materialize-features <view>`",
        ),
        Condition(
            f"{base}/monitoring",
            bool(j.problems),
            "warning",
            f"{step.name}: the monitor cannot judge everything",
            "; ".join(j.problems),
        ),
    ]


def alert(plan: Plan, step: MonitorStep, j: Judgement) -> list[str]:
    """Raise what fires, resolve what cleared; what was sent, for the report."""
    if not step.alerts:
        return []
    routes = [route.split(".", 1)[1] for route in step.alerts]
    done: list[str] = []
    for c in conditions(step, j):
        try:
            sent = _send(plan, step, routes, c)
        except ShipyardError as exc:  # the control database is down: the report says so
            done.append(f"alert '{c.key}' not {'raised' if c.firing else 'resolved'}: {exc}")
            continue
        for delivery in sent:
            done.append(
                f"alert {delivery.status} '{c.key}' to {delivery.route} ({delivery.channel}): "
                + ("delivered" if delivery.ok else f"FAILED: {delivery.error}")
            )
    return done


def _send(plan: Plan, step: MonitorStep, routes: list[str], c: Condition) -> list[Delivery]:
    if c.firing:
        return raise_alert(
            plan,
            routes,
            Alert(
                key=c.key,
                severity=c.severity,
                title=c.title,
                body=c.body,
                source=step.id,
                labels={"service": step.name},
            ),
        )
    return resolve_alert(plan, routes, c.key, f"{c.key} cleared")


def remember(step: MonitorStep, j: Judgement) -> MonitorState:
    """Record the run (a few last runs are kept for `shipyard monitor --history`)."""
    store = MonitorStore(step.control_database)
    for _ in range(5):
        state = store.read(step.name) or MonitorState(name=step.name)
        status = j.status(step.drift_share)
        entry: dict[str, object] = {
            "at": j.end,
            "status": status,
            "rows": j.rows,
            "drifted": j.drifted,
            "problems": len(j.problems),
        }
        update = state.model_copy(
            update={
                "last_status": status,
                "last_run_at": j.end,
                "runs": state.runs + 1,
                "recent": [*state.recent[-19:], entry],
            }
        )
        try:
            return store.save(update)
        except RolloutConflict:
            continue
    return state


Retrain = Callable[[], tuple[str, bool]]
"""Runs the training; (what happened, whether it trained: a run skipped because its data is
unchanged does not use up the cooldown, so new data arriving later is trained on at once)."""


def retrain(step: MonitorStep, j: Judgement, run: Retrain, now: float | None = None) -> str | None:
    """Start the model's training when the service drifted and the cooldown has passed; the
    outcome, or why not (None: no retraining was due)."""
    if "retrain" not in step.on_drift or not j.drift_detected(step.drift_share):
        return None
    store = MonitorStore(step.control_database)
    now = time.time() if now is None else now
    state = store.read(step.name) or MonitorState(name=step.name)
    if state.retrained_at is not None and now - state.retrained_at < step.cooldown_seconds:
        left = step.cooldown_seconds - (now - state.retrained_at)
        return (
            f"retraining not started: the last one began {(now - state.retrained_at) / 3600:.1f} "
            f"h ago, within the cooldown ({left / 3600:.1f} h left)"
        )
    try:
        claimed = store.save(state.model_copy(update={"retrained_at": now}))
    except RolloutConflict:
        return "retraining not started: another monitor run started it just now"
    outcome, trained = run()
    update: dict[str, object] = {"retrain_outcome": outcome}
    for _ in range(5):
        try:
            if not trained and claimed.retrained_at == now:  # give the cooldown back
                store.save(
                    claimed.model_copy(update={**update, "retrained_at": state.retrained_at})
                )
            else:
                store.save(claimed.model_copy(update=update))
            break
        except RolloutConflict:
            claimed = store.read(step.name) or claimed
    return outcome
