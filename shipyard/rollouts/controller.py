"""The rollout controller: load the candidate, smoke-test it, walk the stages, decide.

A rollout moves through phases, each persisted before its effects (`state.py`):

    load     build a Bento with the candidate beside stable and hot-reload the service
    smoke    send training rows to the candidate through the forced-variant header
    stages   per stage: one atomic routing change, then an analysis every interval
    promote  all traffic to the candidate, `champion` -> candidate (the old one keeps
             `previous-champion`), rebuild on the new champion, routing back to the spec's

Every traffic change is one compare-and-swap on the service's control state, which every
worker applies as a whole: traffic is at the old split or the new one, never between. Rolling
back is one such change to the routing recorded before the rollout; aliases are not touched.

Analysis follows Argo Rollouts: after each interval the measurements so far are judged; more
failed measurements of a metric than `failure_limit` fails the rollout at once (on_failure).
A stage ends when its duration has passed and its candidate requests are reached; it is then
judged on its own intervals, and inconclusive (too little data, no decided measurement) pauses
for a person or rolls back, as declared. No data is never a pass.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from shipyard.audit import AuditLog, current_actor
from shipyard.compiler import Plan, RolloutStep, ServiceStep
from shipyard.compiler.features import repo_step
from shipyard.compiler.services import STABLE, RoutingPlan, VariantRef
from shipyard.errors import ServiceUnavailable, ShipyardError
from shipyard.processes import owner_gone, process_owner
from shipyard.rollouts.measure import measure, unmeasured
from shipyard.rollouts.notify import rollout_decided
from shipyard.rollouts.observe import Prometheus, Traffic, scrape
from shipyard.rollouts.state import (
    Decision,
    Interval,
    RolloutConflict,
    RolloutState,
    RolloutStore,
)
from shipyard.serving import deploy
from shipyard.serving.control import ControlStore, change_routing
from shipyard.settings import StateLayout
from shipyard.stats.analysis import MetricOutcome, RunDecision, judge_runs

log = logging.getLogger("shipyard.rollouts")

POLL_SECONDS = 0.5
"""How often a waiting controller looks for `shipyard rollout` commands."""
PREVIOUS_CHAMPION = "previous-champion"


class Controller:
    """Runs one rollout of a plan; `run()` goes on from wherever the stored state is."""

    def __init__(
        self,
        plan: Plan,
        rollout: str,
        say: Callable[[str], None] = log.info,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.plan = plan
        self.step = plan.named(RolloutStep, rollout)
        service = plan.steps[self.step.service]
        assert isinstance(service, ServiceStep)
        self.service = service
        self.say = say
        self.clock = clock
        self.store = RolloutStore(service.control_database)
        self.owner = process_owner()
        self.token = uuid.uuid4().hex  # two controllers in one process are still two
        self._tracking = False
        self._smoke_rows: list[dict[str, Any]] | None = None
        self.audit = AuditLog(StateLayout(plan.runtime.state_dir).catalog)
        self.prometheus = Prometheus(self.step.prometheus_url) if self.step.prometheus_url else None
        self.resource = self.step.id

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> RolloutState:
        """Start the rollout, or resume it; returns when it ended or paused."""
        state = self._acquire()
        try:
            while state.status == "running":
                state = self._phase(state)
        except BaseException:
            # an error (or SIGTERM, Ctrl-C) leaves traffic at its stage: whoever comes next
            # (`start`, `resume`, `abort`) takes over at once instead of waiting for this process
            with suppress(Exception):
                self._release()
            raise
        if state.status == "paused":  # a person decides next, through whichever command
            state = self._release() or state
        return state

    def _release(self) -> RolloutState | None:
        """Give the rollout up: the stored state, without this controller as its owner."""
        stored = self.store.read(self.step.name)
        if stored is None or stored.owner_token != self.token:
            return None
        return self.store.save(stored.model_copy(update={"owner": "", "owner_token": ""}))

    def _phase(self, state: RolloutState) -> RolloutState:
        if state.command is not None:
            return self._obey(state, state.command)
        if state.phase == "load":
            return self._load(state)
        if state.phase == "smoke":
            return self._smoke(state)
        if state.phase == "stages":
            return self._stage(state)
        if state.phase == "promote":
            return self._promote(state, "the last stage passed its analysis")
        return state.model_copy(update={"status": "promoted"})

    # -- ownership ------------------------------------------------------------------------------

    def _acquire(self) -> RolloutState:
        state = self.store.read(self.step.name)
        if state is not None and state.active:
            if (
                state.owner
                and state.owner_token != self.token
                and not owner_gone(state.owner, state.owner_since)
            ):
                raise ShipyardError(
                    f"rollout '{self.step.name}' is already being run by process {state.owner}",
                    hint=f"follow it with `shipyard rollout status {self.step.name}`, or "
                    "pause or abort it",
                    resource=self.resource,
                )
            resumed = "paused" if state.status == "paused" else "interrupted"
            state = state.model_copy(
                update={
                    "owner": self.owner,
                    "owner_since": self.clock(),
                    "owner_token": self.token,
                    "status": "running",
                    "command": None if state.command == "resume" else state.command,
                }
            )
            where = self.step.stages[state.stage].label if state.phase == "stages" else state.phase
            state = self._decide(
                state, "resume", "running", f"resuming a {resumed} rollout at {where}"
            )
            return state
        return self._begin(state)

    def _begin(self, previous: RolloutState | None) -> RolloutState:
        """A new rollout: the service runs, the candidate exists and is not stable."""
        info = deploy.info(self.service)
        if info is None:
            raise ServiceUnavailable(
                f"service '{self.service.service}' is not running at "
                f"{deploy.base_url(self.service)}, so there is nothing to roll out to; "
                "nothing was changed",
                hint=f"start it with `shipyard serve {self.service.service}`, then start "
                "the rollout again",
                resource=self.resource,
            )
        candidate = self._candidate_version()
        stable = next((v for v in info["variants"] if v["name"] == STABLE), None)
        if stable is None:
            raise ShipyardError(
                f"service '{self.service.service}' serves no stable variant",
                resource=self.resource,
            )
        if str(stable["version"]) == candidate:
            raise ShipyardError(
                f"{self.step.candidate.reference} is version {candidate}, which service "
                f"'{self.service.service}' already serves as stable: nothing to roll out",
                hint="train a new version first (it becomes @challenger when it passes its "
                "gate), or name another version in `rollouts.<name>.candidate`",
                resource=self.resource,
            )
        self._check_no_other_rollout()
        champion = self._alias("champion")
        control = self._control().read(self.service.service)
        assert control is not None, "a running service has a control state"
        now = self.clock()
        state = RolloutState(
            name=self.step.name,
            service=self.service.service,
            strategy=self.step.strategy,
            started_at=now,
            updated_at=now,
            owner=self.owner,
            owner_since=now,
            owner_token=self.token,
            candidate_variant=self.step.candidate.name,
            candidate_version=candidate,
            stable_version=str(stable["version"]),
            champion_version=champion,
            before=control.routing,
        )
        if previous is not None:
            self.audit.record(
                "rollout-archived",
                self.resource,
                status=previous.status,
                outcome=previous.outcome,
                decisions=[d.model_dump() for d in previous.decisions],
            )
        state = self.store.replace(state)
        return self._decide(
            state,
            "start",
            "running",
            f"rolling v{candidate} out to '{self.service.service}' ({self.step.strategy}) "
            f"beside stable v{state.stable_version}",
        )

    def _check_no_other_rollout(self) -> None:
        for other in self.plan.steps.values():
            if not isinstance(other, RolloutStep) or other.name == self.step.name:
                continue
            if other.service != self.step.service:
                continue
            found = self.store.read(other.name)
            if found is not None and found.active:
                raise ShipyardError(
                    f"rollout '{other.name}' of service '{self.service.service}' is "
                    f"{found.status}; a service has one rollout at a time",
                    hint=f"finish it first: `shipyard rollout abort {other.name}` or "
                    f"`shipyard rollout promote {other.name}`",
                    resource=self.resource,
                )

    # -- phases ---------------------------------------------------------------------------------

    def _load(self, state: RolloutState) -> RolloutState:
        """The candidate is served beside stable (a new Bento, hot-reloaded, when it is not)."""
        if self._serves_candidate(state):
            state = state.model_copy(update={"phase": "smoke"})
            return self._decide(state, "load", "successful", "the service already serves it")
        from shipyard.serving.build import build_service

        variants = [v for v in self.service.variants if v.name != state.candidate_variant]
        pinned = VariantRef(name=state.candidate_variant, version=int(state.candidate_version))
        with_candidate = self.service.model_copy(update={"variants": [*variants, pinned]})
        self.say(f"building {self.service.service} with v{state.candidate_version} beside stable")
        try:
            built = build_service(
                with_candidate,
                repo_step(self.plan.steps),
                self.plan.blocks.mlflow.tracking_uri,
                say=self.say,
            )
            deploy.hot_reload(with_candidate, built)
        except ShipyardError as exc:
            return self._end(
                state,
                "aborted",
                "load",
                f"the candidate did not load: {exc.message}; traffic stayed on stable",
            )
        state = state.model_copy(update={"phase": "smoke"})
        return self._decide(state, "load", "successful", f"serving {built.tag}")

    def _smoke(self, state: RolloutState) -> RolloutState:
        """Training rows through the forced-variant header: every one must be answered."""
        rows = self._rows(self.step.smoke_requests)
        failures = []
        for row in rows:
            status, body = self._predict(row, state.candidate_variant)
            if status != 200:
                failures.append(f"HTTP {status}: {body[:200]}")
        if failures:
            return self._end(
                state,
                "aborted",
                "smoke",
                f"{len(failures)} of {len(rows)} smoke requests to the candidate failed "
                f"(first: {failures[0]}); it got no traffic",
            )
        state = state.model_copy(
            update={"phase": "stages", "stage": 0, "stage_started_at": None, "stage_requests": 0}
        )
        return self._decide(
            state, "smoke", "successful", f"{len(rows)} smoke requests answered by the candidate"
        )

    def _stage(self, state: RolloutState) -> RolloutState:
        """Hold one stage: route, then measure every interval until the stage may end."""
        stage = self.step.stages[state.stage]
        if state.stage_started_at is None and self.step.strategy == "rolling":
            unready = self._not_ready(state)
            if unready:
                return self._failed(
                    state, RunDecision("failed", f"{stage.label} not taken: {unready}")
                )
        self._route(self._routing(state, stage.weight), f"{stage.label}")  # again on resume
        if state.stage_started_at is None:
            state = state.model_copy(
                update={"stage_started_at": self.clock(), "stage_requests": 0.0}
            )
            state = self._decide(
                state, "advance", "running", f"{stage.label}: {stage.weight:g}% to the candidate"
            )
        before = self._snapshot()
        reference = before
        while True:
            state, command = self._wait(state, self.step.interval_seconds)
            if command is not None:
                return self._obey(state, command)
            try:
                if self.prometheus is not None:
                    interval = self.prometheus.traffic(self.service.id, self.step.interval_seconds)
                else:
                    after = self._snapshot()
                    interval, before = after.since(before), after
            except ServiceUnavailable as exc:  # no data: inconclusive, never a pass
                state = self._unmeasured(state, exc.message)
            else:
                state = self._record(state, interval, reference)
            moved = self._aliases_moved(state)
            if moved:
                return self._pause(state, moved)
            run = judge_runs(
                [self._outcomes(i) for i in state.intervals],
                self.step.failure_limit,
                inconclusive_limit=len(state.intervals),
            )
            if run.outcome == "failed":
                return self._failed(state, run)
            if not self._stage_may_end(state):
                continue
            decided = self._judge_stage(state)
            if decided.outcome == "failed":
                return self._failed(state, decided)
            if decided.outcome == "inconclusive":
                if self.step.inconclusive == "rollback":
                    return self._rollback(state, f"inconclusive: {decided.reason}")
                return self._pause(state, f"inconclusive: {decided.reason}")
            return self._next_stage(state, decided)

    def _not_ready(self, state: RolloutState) -> str | None:
        """Before a rolling step: the candidate still answers (one training row, forced)."""
        rows = self._rows(1) or [{}]
        status, body = self._predict(rows[0], state.candidate_variant)
        return None if status == 200 else f"readiness check answered HTTP {status}: {body[:200]}"

    def _rows(self, count: int) -> list[dict[str, Any]]:
        """Training rows as requests, read from the dataset once per controller."""
        if self._smoke_rows is None:
            wanted = max(self.step.smoke_requests, 1)
            self._smoke_rows = smoke_rows(self.plan, self.service, wanted)
        return self._smoke_rows[:count]

    def _next_stage(self, state: RolloutState, decided: RunDecision) -> RolloutState:
        stage = self.step.stages[state.stage]
        state = self._decide(state, "analysis", "successful", f"{stage.label}: {decided.reason}")
        if state.stage + 1 < len(self.step.stages):
            return state.model_copy(
                update={"stage": state.stage + 1, "stage_started_at": None, "stage_requests": 0.0}
            )
        if self.step.on_success == "pause":
            return self._pause(state, "every stage passed; `shipyard rollout promote` finishes")
        return self._save(state.model_copy(update={"phase": "promote"}))

    def _promote(self, state: RolloutState, why: str) -> RolloutState:
        """All traffic to the candidate, aliases moved, the service rebuilt on the champion."""
        from shipyard.serving.build import build_service

        if state.phase != "promote":
            state = self._save(state.model_copy(update={"phase": "promote"}))
        self._route(self._routing(state, 100.0), "promote: all traffic to the candidate")
        self._registry().promote(
            self.service.registered_name, state.candidate_version, self.audit,
            f"rollout {self.step.name}: {why}", self.resource,
        )  # fmt: skip
        built = build_service(
            self.service,
            repo_step(self.plan.steps),
            self.plan.blocks.mlflow.tracking_uri,
            say=self.say,
        )
        deploy.hot_reload(self.service, built)
        served = [v.name for v in built.config.variants]
        self._route(self.service.routing.for_variants(served), "promoted: the spec's routing")
        return self._end(
            state,
            "promoted",
            "promote",
            f"v{state.candidate_version} is @champion and serves as stable ({built.tag}); "
            f"v{state.champion_version or state.stable_version} keeps @{PREVIOUS_CHAMPION}: {why}",
        )

    # -- decisions ------------------------------------------------------------------------------

    def _failed(self, state: RolloutState, run: RunDecision) -> RolloutState:
        if self.step.on_failure == "pause":
            return self._pause(state, f"analysis failed: {run.reason}")
        return self._rollback(state, f"analysis failed: {run.reason}")

    def _rollback(self, state: RolloutState, why: str, status: str = "rolled_back") -> RolloutState:
        self._route(state.before, f"rollback: {why}")
        log.error("rollout %s rolled back: %s", self.step.name, why)
        return self._end(
            state, status, "rollback", f"all traffic back on stable v{state.stable_version}: {why}"
        )

    def _pause(self, state: RolloutState, why: str) -> RolloutState:
        log.warning("rollout %s paused: %s", self.step.name, why)
        state = state.model_copy(update={"status": "paused", "command": None})
        return self._decide(
            state,
            "pause",
            "paused",
            f"{why}; traffic stays as it is: `shipyard rollout resume|promote|abort "
            f"{self.step.name}`",
        )

    def _obey(self, state: RolloutState, command: str) -> RolloutState:
        by = state.command_by or "someone"
        why = f"asked by {by}" + (f": {state.command_reason}" if state.command_reason else "")
        state = state.model_copy(update={"command": None})
        if command == "pause":
            return self._pause(state, f"paused, {why}")
        if command == "abort":
            return self._rollback(state, f"aborted, {why}", status="aborted")
        if command == "promote":
            state = self._decide(state, "promote", "asked", f"promotion {why}")
            return self._promote(state, f"promoted by hand, {why}")
        return self._save(state)  # resume while running: nothing to do

    def _end(self, state: RolloutState, status: str, action: str, why: str) -> RolloutState:
        state = state.model_copy(
            update={
                "status": status,
                "phase": "done",
                "outcome": why,
                "owner": "",
                "owner_token": "",
            }
        )
        return self._decide(state, action, status, why)

    def _decide(self, state: RolloutState, action: str, outcome: str, why: str) -> RolloutState:
        stage = state.stage
        decision = Decision(
            at=self.clock(),
            stage=stage,
            action=action,
            outcome=outcome,
            reason=why,
            actor=current_actor(),
        )
        state = state.model_copy(update={"decisions": [*state.decisions, decision]})
        state = self._save(state)
        self.audit.record(
            f"rollout-{action}",
            self.resource,
            outcome=outcome,
            reason=why,
            candidate_version=state.candidate_version,
            stage=self.step.stages[stage].label if state.phase == "stages" else state.phase,
        )
        self.say(f"rollout {self.step.name}: {action} ({outcome}): {why}")
        rollout_decided(self.plan, self.step, state, action, outcome, why)
        return state

    # -- analysis -------------------------------------------------------------------------------

    def _record(self, state: RolloutState, interval: Traffic, reference: Traffic) -> RolloutState:
        stage = self.step.stages[state.stage]
        measurements = measure(self.step, interval, reference, self.prometheus, stage.weight)
        names = (STABLE, state.candidate_variant)
        entry = Interval(
            stage=state.stage,
            at=interval.at,
            seconds=self.step.interval_seconds,
            weight=stage.weight,
            requests={name: interval.of(name).requests for name in names},
            errors={name: interval.of(name).errors for name in names},
            measurements=measurements,
        )
        for m in measurements:
            self.say(f"  {stage.label} {m.name}: {m.outcome}: {m.evidence}")
        return self._save(
            state.model_copy(
                update={
                    "intervals": [*state.intervals, entry],
                    "stage_requests": state.stage_requests
                    + interval.of(state.candidate_variant).requests,
                }
            )
        )

    def _unmeasured(self, state: RolloutState, why: str) -> RolloutState:
        """An interval whose traffic could not be read: every metric inconclusive, saying why."""
        stage = self.step.stages[state.stage]
        self.say(f"  {stage.label}: no measurement: {why}")
        entry = Interval(
            stage=state.stage,
            at=self.clock(),
            seconds=self.step.interval_seconds,
            weight=stage.weight,
            requests={},
            errors={},
            measurements=unmeasured(self.step, why),
        )
        return self._save(state.model_copy(update={"intervals": [*state.intervals, entry]}))

    @staticmethod
    def _outcomes(interval: Interval) -> list[MetricOutcome]:
        return [m.outcome_of() for m in interval.measurements]

    def _stage_may_end(self, state: RolloutState) -> bool:
        stage = self.step.stages[state.stage]
        assert state.stage_started_at is not None
        held = self.clock() - state.stage_started_at
        long_enough = stage.duration_seconds is None or held >= stage.duration_seconds - 1e-3
        enough = stage.min_requests is None or state.stage_requests >= stage.min_requests
        return long_enough and enough

    def _judge_stage(self, state: RolloutState) -> RunDecision:
        return judge_runs(
            [self._outcomes(i) for i in state.intervals if i.stage == state.stage],
            self.step.failure_limit,
            self.step.inconclusive_limit,
        )

    # -- waiting and commands -------------------------------------------------------------------

    def _wait(self, state: RolloutState, seconds: float) -> tuple[RolloutState, str | None]:
        """Sleep `seconds`, looking for a command every POLL_SECONDS."""
        deadline = self.clock() + seconds
        while True:
            stored = self.store.read(self.step.name)
            if stored is not None and stored.command is not None:
                return stored, stored.command
            left = deadline - self.clock()
            if left <= 0:
                return (stored or state), None
            time.sleep(min(POLL_SECONDS, left))

    def _save(self, state: RolloutState) -> RolloutState:
        """Write the state; a command written meanwhile is kept (and acted on next)."""
        for _ in range(5):
            try:
                return self.store.save(state)
            except RolloutConflict:
                stored = self.store.read(self.step.name)
                if stored is None:
                    raise
                if stored.owner_token != state.owner_token or stored.started_at != state.started_at:
                    raise ShipyardError(
                        f"rollout '{self.step.name}' was taken over by process "
                        f"{stored.owner or '(none)'} while this controller ran; it stops here",
                        hint=f"see `shipyard rollout status {self.step.name}`",
                        resource=self.resource,
                    ) from None
                state = state.model_copy(
                    update={
                        "revision": stored.revision,
                        "command": stored.command or state.command,
                        "command_by": stored.command_by,
                        "command_reason": stored.command_reason,
                    }
                )
        return self.store.save(state)

    # -- the service ----------------------------------------------------------------------------

    def _routing(self, state: RolloutState, weight: float) -> RoutingPlan:
        """The rollout's routing at a candidate share; other candidates keep no traffic."""
        weights = {STABLE: 100.0 - weight, state.candidate_variant: weight}
        return RoutingPlan(
            weights=weights,
            sticky_key=self.step.sticky_key,
            rules=(*self.step.rules, *state.before.rules),
            salt=self.step.salt,
        )

    def _route(self, routing: RoutingPlan, why: str) -> None:
        """One compare-and-swap of the control state; the workers apply it as a whole."""
        change_routing(
            self.service.control_database,
            self.service.service,
            lambda _: routing,
            actor=current_actor(),
            action="rollout",
            reason=f"rollout {self.step.name}: {why}",
            resource=self.resource,
        )

    def _control(self) -> ControlStore:
        return ControlStore(self.service.control_database)

    def _snapshot(self) -> Traffic:
        """The service's counters now (with Prometheus, the interval's increases are asked
        for instead, and this is only the prediction-shift reference)."""
        if self.prometheus is not None:
            return Traffic(self.clock())
        return scrape(
            deploy.base_url(self.service), self.service.id, deploy.client_context(self.service)
        )

    def _serves_candidate(self, state: RolloutState) -> bool:
        info = deploy.info(self.service) or {}
        return any(
            v["name"] == state.candidate_variant and str(v["version"]) == state.candidate_version
            for v in info.get("variants", [])
        )

    def _predict(self, row: dict[str, Any], variant: str) -> tuple[int, str]:
        headers = {"Content-Type": "application/json", "X-Shipyard-Variant": variant}
        key = predict_key(self.service)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(
            deploy.base_url(self.service) + "/predict",
            data=json.dumps(row, default=str).encode(),
            headers=headers,
        )
        try:
            with urllib.request.urlopen(  # http(s) URL of the service  # nosec B310
                request, timeout=30, context=deploy.client_context(self.service)
            ) as response:
                return int(response.status), response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode(errors="replace")
        except OSError as exc:
            return 0, str(exc)

    # -- the registry ---------------------------------------------------------------------------

    def _candidate_version(self) -> str:
        name, candidate = self.service.registered_name, self.step.candidate
        if candidate.version is not None:
            found = self._registry().model_version(name, candidate.version)
            if found is None:
                raise ShipyardError(
                    f"model '{name}' has no version {candidate.version}; nothing was changed",
                    hint=f"see `shipyard models show {self.service.model}`",
                    resource=self.resource,
                )
            return str(found.version)
        assert candidate.alias is not None
        version = self._alias(candidate.alias)
        if version is None:
            raise ShipyardError(
                f"no version of model '{name}' holds alias @{candidate.alias}, so there is no "
                "candidate to roll out; nothing was changed",
                hint=f"train one that passes its gate (`shipyard run train-model "
                f"{self.service.model}`), or name a version in `rollouts.{self.step.name}."
                "candidate`",
                resource=self.resource,
            )
        return version

    def _registry(self) -> Any:
        """The registry module, with MLflow pointed at the plan's tracking store (once)."""
        from shipyard import registry
        from shipyard.training.tracking import use_tracking

        if not self._tracking:
            use_tracking(self.plan.blocks.mlflow.tracking_uri, self.resource)
            self._tracking = True
        return registry

    def _alias(self, alias: str) -> str | None:
        found = self._registry().alias_version(self.service.registered_name, alias)
        return str(found.version) if found is not None else None

    def _aliases_moved(self, state: RolloutState) -> str | None:
        """An alias this rollout relies on moved by hand: say which, or None."""
        alias = self.step.candidate.alias
        if alias is not None:
            now = self._alias(alias)
            if now != state.candidate_version:
                return (
                    f"alias @{alias} moved from v{state.candidate_version} to "
                    f"{'v' + now if now else 'nowhere'} while the rollout ran"
                )
        champion = self._alias("champion")
        if champion != state.champion_version:
            return (
                f"alias @champion moved from v{state.champion_version} to v{champion} while "
                "the rollout ran"
            )
        return None


def predict_key(service: ServiceStep) -> str:
    """An API key of the service with the predict role (resolved), or '' without auth."""
    from shipyard.secrets import resolve

    for api_key in (service.auth.api_keys if service.auth else {}).values():
        if "predict" in api_key.roles:
            return resolve(api_key.key) or ""
    return ""


def smoke_rows(plan: Plan, service: ServiceStep, count: int) -> list[dict[str, Any]]:
    """The first `count` rows of the training data, as requests (the service's input fields)."""
    if count == 0:
        return []
    from shipyard.compiler import DatasetStep, TrainModelStep
    from shipyard.data.engines import read_frame

    train = plan.step(f"model.{service.model}", TrainModelStep)
    dataset = plan.step(train.dataset, DatasetStep)
    frame = read_frame(plan, dataset)
    missing = [c for c in service.inputs if c not in frame.columns]
    if missing:
        raise ShipyardError(
            f"dataset '{dataset.name}' has no column {', '.join(missing)} to smoke-test with",
            resource=f"rollout.{service.service}",
        )
    rows: list[dict[str, Any]] = json.loads(
        frame[service.inputs].head(count).to_json(orient="records", date_format="iso")
    )
    return rows
