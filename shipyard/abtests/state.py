"""The persisted state of an A/B test: when it started, every analysis, and how it ended."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from shipyard.rollouts.state import NamedState, StateStore

Status = Literal["running", "stopped"]
Decision = Literal["keep_running", "winner", "no_effect", "harm", "sample_ratio_mismatch"]


class Look(BaseModel):
    """One analysis: what it saw and decided (the report's history, the plots' points)."""

    at: float
    units: dict[str, int] = Field(description="Arm -> callers assigned.")
    measured: dict[str, int] = Field(description="Arm -> callers with an outcome.")
    means: dict[str, float | None]
    effect: dict[str, float | None] = Field(description="Treatment arm -> estimate vs control.")
    ci: dict[str, tuple[float | None, float | None]]
    p_value: dict[str, float | None]
    chance_to_win: dict[str, float | None] = Field(default_factory=dict)
    decision: Decision
    reason: str


class AbTestState(NamedState):
    """An A/B test as it stands."""

    service: str
    status: Status = "running"
    started_at: float
    started_by: str
    stopped_at: float | None = None
    decision: Decision = "keep_running"
    reason: str = ""
    winner: str | None = None
    guardrail_baseline: dict[str, Any] = Field(
        default_factory=dict,
        description="The service's counters per variant when the test began (guardrails count "
        "from there).",
    )
    previous_p: dict[str, float] = Field(
        default_factory=dict, description="Arm -> always-valid p-value so far (sequential)."
    )
    bandit_updated_at: float | None = None
    looks: list[Look] = Field(default_factory=list)


class AbTestStore(StateStore[AbTestState]):
    """The A/B tests of one control database."""

    table = "shipyard_ab_tests"
    model = AbTestState
    noun = "A/B test"
