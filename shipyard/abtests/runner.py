"""An A/B test against its service: start it, look at it, act on the decision, stop it.

Starting puts the test's split (`ExperimentPlan`) into the service's control state: one
compare-and-swap, applied by every worker within a second, audited like every routing change.
Each look reads the logs (`exposure.py`), checks guardrails on the service's own counters since
the start, decides (`analysis.py`), records the look, and acts: a bandit's new shares go
through the control state too (within `min_share`, at most once per `cadence`); a stop removes
the split, so every caller is served by the service's routing again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from shipyard.abtests.analysis import AbTestReport, analyse
from shipyard.abtests.exposure import read_exposures
from shipyard.abtests.notify import look_decided
from shipyard.abtests.state import AbTestState, AbTestStore
from shipyard.audit import AuditLog, current_actor
from shipyard.compiler import Plan, ServiceStep
from shipyard.compiler.ab_tests import AbTestStep
from shipyard.compiler.services import RoutingPlan
from shipyard.errors import ServiceUnavailable, ShipyardError
from shipyard.rollouts.observe import Traffic, VariantTraffic, scrape
from shipyard.serving import deploy
from shipyard.serving.control import change_routing
from shipyard.serving.crypto import reader_cipher
from shipyard.settings import StateLayout
from shipyard.stats.analysis import MetricOutcome, error_rate_test, latency_test

log = logging.getLogger("shipyard.abtests")

STOPPING = ("winner", "no_effect", "harm", "sample_ratio_mismatch")


class AbTest:
    """One A/B test of a plan, with its service."""

    def __init__(self, plan: Plan, name: str, clock: Callable[[], float] = time.time) -> None:
        self.plan = plan
        self.step = plan.named(AbTestStep, name)
        service = plan.steps[self.step.service]
        assert isinstance(service, ServiceStep)
        self.service = service
        self.store = AbTestStore(service.control_database)
        self.audit = AuditLog(StateLayout(plan.runtime.state_dir).catalog)
        self.clock = clock

    # -- life cycle -----------------------------------------------------------------------------

    def state(self) -> AbTestState | None:
        return self.store.read(self.step.name)

    def start(self) -> AbTestState:
        """Put the split in force (a no-op when the test already runs)."""
        current = self.state()
        if current is not None and current.status == "running":
            return current
        info = deploy.info(self.service)
        if info is None:
            raise ServiceUnavailable(
                f"service '{self.service.service}' is not running, so A/B test "
                f"'{self.step.name}' cannot split its callers; nothing was changed",
                hint=f"start it: `shipyard serve {self.service.service}`",
                resource=self.step.id,
            )
        served = {v["name"]: str(v["version"]) for v in info["variants"]}
        missing = [arm for arm in self.step.arms if arm.variant not in served]
        if missing:
            raise ShipyardError(
                f"service '{self.service.service}' does not serve arm '{missing[0].name}' "
                f"({missing[0].reference}): no registry version holds it, or the service was "
                "built before; nothing was changed",
                hint=f"train or alias that version, then `shipyard serve {self.service.service}` "
                "to rebuild, and start the test again",
                resource=self.step.id,
            )
        baseline = scrape(
            deploy.base_url(self.service), self.service.id, deploy.client_context(self.service)
        )
        now = self.clock()
        state = AbTestState(
            name=self.step.name,
            service=self.service.service,
            started_at=now,
            started_by=current_actor(),
            guardrail_baseline=_traffic_json(baseline),
        )
        self._route(
            lambda routing: routing.model_copy(update={"experiment": self.step.experiment}), "start"
        )
        state = self.store.replace(state) if current is not None else self.store.save(state)
        arms = ", ".join(
            f"{a.name} {a.reference} v{served[a.variant]} {a.share:g}%" for a in self.step.arms
        )
        self.audit.record("ab-test-start", self.step.id, arms=arms)
        log.info("A/B test %s started: %s", self.step.name, arms)
        return state

    def stop(self, decision: str, reason: str, winner: str | None = None) -> AbTestState:
        """Remove the split; the state keeps the decision, the reason and every look."""
        state = self.state()
        if state is None or state.status == "stopped":
            raise ShipyardError(
                f"A/B test '{self.step.name}' is not running",
                hint=f"`shipyard abtest report {self.step.name}` shows how it ended",
                resource=self.step.id,
            )
        self._route(
            lambda routing: routing.model_copy(update={"experiment": None}), f"stop: {reason}"
        )
        stopped = state.model_copy(
            update={
                "status": "stopped",
                "stopped_at": self.clock(),
                "decision": decision,
                "reason": reason,
                "winner": winner,
            }
        )
        stopped = self.store.save(stopped)
        self.audit.record(
            "ab-test-stop", self.step.id, decision=decision, reason=reason, winner=winner
        )
        log.info("A/B test %s stopped (%s): %s", self.step.name, decision, reason)
        return stopped

    # -- looking --------------------------------------------------------------------------------

    def look(self, record: bool = True) -> tuple[AbTestState, AbTestReport]:
        """Analyse now; with `record`, save the look and act on its decision."""
        state = self.state()
        if state is None:
            raise ShipyardError(
                f"A/B test '{self.step.name}' was never started",
                hint=f"`shipyard abtest start {self.step.name}` (the scheduled analysis starts it "
                "too)",
                resource=self.step.id,
            )
        now = self.clock() if state.status == "running" else (state.stopped_at or self.clock())
        exposures = read_exposures(
            self.service.log_database,
            self.service.service,
            self.step.name,
            self.step.experiment.salt,
            self.step.experiment.assign_by,
            state.started_at,
            self.step.metric.type,
            self.step.cuped_covariate,
            reader_cipher(self.service.log_encryption, self.service.service),
        )
        report = analyse(self.step, exposures, state, now, self._guardrails(state))
        if state.status == "stopped":  # how it ended stays how it ended
            report.decision, report.reason, report.winner = (
                state.decision,
                state.reason,
                state.winner,
            )
        if not record or state.status != "running":
            return state, report
        state = state.model_copy(
            update={"looks": [*state.looks, report.look(now)], "previous_p": report.previous_p}
        )
        state = self.store.save(state)
        if report.decision in STOPPING:
            state = self.stop(report.decision, report.reason, report.winner)
        elif report.shares:
            state = self._rebalance(state, report.shares)
        look_decided(self.plan, self.step, report)
        return state, report

    def _guardrails(self, state: AbTestState) -> list[MetricOutcome]:
        """Each guardrail of each treatment arm against control, since the test began."""
        if not self.step.guardrails or state.status != "running":
            return []
        try:
            now = scrape(
                deploy.base_url(self.service), self.service.id, deploy.client_context(self.service)
            )
        except ServiceUnavailable as exc:
            log.warning("guardrails of %s not measured: %s", self.step.name, exc.message)
            return []
        since = now.since(_traffic_from(state.guardrail_baseline))
        control = since.of(self.step.arms[0].variant)
        outcomes = []
        for arm in self.step.arms[1:]:
            treated = since.of(arm.variant)
            for metric in self.step.guardrails:
                name = f"{metric.name} of {arm.name}"
                if metric.kind == "error_rate" and metric.max is not None:
                    outcomes.append(
                        error_rate_test(
                            round(control.errors), round(control.requests), round(treated.errors),
                            round(treated.requests), max_rate=metric.max, margin=metric.margin,
                            alpha=self.step.alpha, name=name,
                        )
                    )  # fmt: skip
                elif metric.kind == "latency" and metric.max is not None and treated.latency:
                    outcomes.append(
                        latency_test(
                            control.latency_buckets() or None, treated.latency_buckets(),
                            max_quantile_seconds=metric.max, quantile=metric.quantile or 0.99,
                            alpha=self.step.alpha, min_ratio=metric.margin, name=name,
                        )
                    )  # fmt: skip
        return [_against_control(o, self.step) for o in outcomes]

    def _rebalance(self, state: AbTestState, shares: dict[str, float]) -> AbTestState:
        """A bandit's new shares, through the control state, at most once per cadence."""
        last = state.bandit_updated_at
        if last is not None and self.clock() - last < self.step.bandit_cadence_seconds:
            return state
        experiment = self.step.experiment.model_copy(update={"arms": shares})
        self._route(
            lambda routing: routing.model_copy(update={"experiment": experiment}),
            "bandit: " + ", ".join(f"{v} {s:g}%" for v, s in shares.items()),
        )
        return self.store.save(state.model_copy(update={"bandit_updated_at": self.clock()}))

    def _route(self, change: Callable[[RoutingPlan], RoutingPlan], why: str) -> None:
        change_routing(
            self.service.control_database,
            self.service.service,
            change,
            actor=current_actor(),
            action="ab-test",
            reason=f"A/B test {self.step.name}: {why}",
            resource=self.step.id,
        )


def _against_control(outcome: MetricOutcome, step: AbTestStep) -> MetricOutcome:
    """A guardrail is about an arm being worse than control: a maximum that control breaks as
    well (the whole service is slow, or failing) does not fail the arm. The comparison with
    control still does."""
    significant = outcome.p_value is not None and outcome.p_value < step.alpha
    if outcome.outcome != "failed" or significant:
        return outcome
    if outcome.baseline is None or outcome.baseline <= outcome.threshold:
        return outcome
    return MetricOutcome(
        outcome.name, "inconclusive", outcome.value, outcome.baseline, outcome.threshold,
        outcome.p_value, outcome.method,
        f"{outcome.evidence}; control is above the max too: the service, not this arm",
    )  # fmt: skip


def _traffic_json(traffic: Traffic) -> dict[str, Any]:
    return {
        name: {
            "requests": v.requests,
            "errors": v.errors,
            "latency": [[str(b), c] for b, c in v.latency.items()],  # "inf" survives JSON
        }
        for name, v in traffic.variants.items()
    }


def _traffic_from(data: dict[str, Any]) -> Traffic:
    traffic = Traffic(0.0)
    for name, v in data.items():
        traffic.variants[name] = VariantTraffic(
            requests=float(v["requests"]),
            errors=float(v["errors"]),
            latency={float(b): float(c) for b, c in v["latency"]},
        )
    return traffic
