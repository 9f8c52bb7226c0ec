"""The persisted state of a rollout: where it is, what it measured, what it decided.

One row per rollout in the service's control database (SQLite in the state folder, or the
PostgreSQL every replica shares), written by compare-and-swap on a revision like the control
state itself. A controller that is killed leaves its state behind: the next `shipyard rollout
start` (or a Prefect retry) finds the owner gone and resumes at the stage it was in, with the
traffic split the control state still holds, so traffic is never left half-shifted.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from shipyard.compiler.services import RoutingPlan
from shipyard.errors import ServiceUnavailable, ShipyardError
from shipyard.serving.control import backend_for

if TYPE_CHECKING:
    from shipyard.stats.analysis import MetricOutcome

Status = Literal["running", "paused", "promoted", "rolled_back", "aborted"]
Phase = Literal["load", "smoke", "stages", "promote", "done"]
Command = Literal["pause", "resume", "abort", "promote"]
ACTIVE: tuple[Status, ...] = ("running", "paused")


class Measurement(BaseModel):
    """One metric over one interval, as `shipyard.stats.analysis.MetricOutcome` gives it."""

    name: str
    outcome: Literal["successful", "failed", "inconclusive"]
    value: float | None
    baseline: float | None
    threshold: float
    p_value: float | None
    method: str | None
    evidence: str

    @classmethod
    def of(cls, outcome: MetricOutcome) -> Measurement:
        return cls(**dataclasses.asdict(outcome))

    def outcome_of(self) -> MetricOutcome:
        """As the statistics package gives it (what `judge_runs` takes)."""
        # scipy comes with it: `rollout status` reads states without it
        from shipyard.stats.analysis import MetricOutcome

        return MetricOutcome(**self.model_dump())


class Interval(BaseModel):
    """One analysis interval: the traffic it saw and every metric's measurement."""

    stage: int
    at: float = Field(description="End of the interval, epoch seconds.")
    seconds: float
    weight: float
    requests: dict[str, float] = Field(description="Variant -> predict requests.")
    errors: dict[str, float] = Field(description="Variant -> 5xx answers.")
    measurements: list[Measurement]


class Decision(BaseModel):
    """A decision of the controller, with its evidence."""

    at: float
    stage: int
    action: str = Field(description="start, load, smoke, advance, pause, rollback, promote, ...")
    outcome: str = Field(description="successful, failed, inconclusive, or what was done.")
    reason: str
    actor: str


class NamedState(BaseModel):
    """A state a StateStore keeps: named, with the revision it was read at."""

    name: str
    revision: int = 0
    updated_at: float = 0.0


StateT = TypeVar("StateT", bound=NamedState)


class RolloutState(NamedState):
    """Everything a controller needs to resume a rollout, and `status` shows."""

    service: str
    strategy: str
    status: Status = "running"
    phase: Phase = "load"
    started_at: float
    owner: str = Field(description="'host:pid' of the controller, '' when none runs.")
    owner_since: float = 0.0
    owner_token: str = Field("", description="Which controller of that process owns it.")
    candidate_variant: str
    candidate_version: str = Field(description="The registry version being rolled out.")
    stable_version: str = Field(description="The version stable served when it began.")
    champion_version: str | None = Field(None, description="@champion when it began.")
    before: RoutingPlan = Field(description="The routing before the rollout; rollback restores.")
    stage: int = 0
    stage_started_at: float | None = None
    stage_requests: float = Field(0.0, description="Candidate requests in this stage so far.")
    intervals: list[Interval] = Field(default_factory=list)
    decisions: list[Decision] = Field(default_factory=list)
    command: Command | None = Field(None, description="Asked by `shipyard rollout <command>`.")
    command_by: str | None = None
    command_reason: str | None = None
    outcome: str | None = Field(None, description="How it ended, in one line.")

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


class RolloutConflict(ShipyardError):
    """The state changed since it was read (another controller or command): not written."""


class StateStore(Generic[StateT]):
    """Named JSON states in one table of a control database, written by compare-and-swap."""

    table: ClassVar[str]
    model: ClassVar[type[BaseModel]]
    noun: ClassVar[str]

    def __init__(self, url: str) -> None:
        self.url = url
        self._backend = backend_for(url)

    def read(self, name: str) -> StateT | None:
        row = self._run(
            lambda cursor: self._select(cursor, name), f"the state of {self.noun} '{name}'"
        )
        return self.model.model_validate_json(row) if row else None  # type: ignore[return-value]

    def save(self, state: StateT) -> StateT:
        """Write `state` if the stored one is still at `state.revision`; returns it at the next
        revision.

        Raises:
            RolloutConflict: Someone else wrote it meanwhile; nothing was written.
        """
        new = state.model_copy(update={"revision": state.revision + 1, "updated_at": time.time()})
        if not self._run(
            lambda cursor: self._swap(cursor, state, new),
            f"the state of {self.noun} '{state.name}'",
            write=True,
        ):
            raise RolloutConflict(
                f"{self.noun} '{state.name}' changed while this change was being made (another "
                "controller or a `shipyard rollout` command); it was not applied",
                hint=f"see `shipyard rollout status {state.name}` and try again",
                resource=f"rollout.{state.name}",
            )
        return new

    def _swap(self, cursor: Any, state: StateT, new: StateT) -> bool:
        p = self._backend.placeholder
        if state.revision == 0:
            cursor.execute(
                f"INSERT INTO {self.table} (name, revision, state) VALUES ({p}, 1, {p})"
                " ON CONFLICT (name) DO NOTHING",
                [state.name, new.model_dump_json()],
            )
        else:
            cursor.execute(
                f"UPDATE {self.table} SET revision = revision + 1, state = {p} "
                f"WHERE name = {p} AND revision = {p}",
                [new.model_dump_json(), state.name, state.revision],
            )
        return bool(cursor.rowcount == 1)

    def replace(self, state: StateT) -> StateT:
        """Start a new rollout where an ended one was recorded (its history moves to the audit
        log first: the caller's job)."""
        fresh = state.model_copy(update={"revision": 0})
        new = fresh.model_copy(update={"revision": 1, "updated_at": time.time()})

        def delete_then_insert(cursor: Any) -> bool:  # one transaction: never neither
            cursor.execute(
                f"DELETE FROM {self.table} WHERE name = {self._backend.placeholder}",
                [state.name],
            )
            return self._swap(cursor, fresh, new)

        self._run(delete_then_insert, f"the state of {self.noun} '{state.name}'", write=True)
        return new

    def _select(self, cursor: Any, name: str) -> str | None:
        cursor.execute(
            f"SELECT state FROM {self.table} WHERE name = {self._backend.placeholder}",
            [name],
        )
        row = cursor.fetchone()
        return str(row[0]) if row else None

    def _run(self, work: Callable[[Any], Any], what: str, write: bool = False) -> Any:
        try:
            with self._backend.transaction() as cursor:
                return work(cursor)
        except self._backend.errors as exc:
            from shipyard.secrets import redact_url

            raise ServiceUnavailable(
                f"{what} cannot be {'written' if write else 'read'} in {redact_url(self.url)}: "
                f"{exc}" + ("; nothing was changed" if write else ""),
                hint="check `serving.control_database` in the profile and that it is reachable",
            ) from exc


class RolloutStore(StateStore[RolloutState]):
    """The rollouts of one control database."""

    table = "shipyard_rollouts"
    model = RolloutState
    noun = "rollout"
