"""roll-out: load a candidate beside stable, smoke-test it, walk the stages under analysis, then
promote it or roll back. Started again, it resumes where the rollout was."""

from __future__ import annotations

import logging

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from shipyard.compiler import RolloutStep
from shipyard.logs import quiet_expected_errors
from shipyard.rollouts.controller import Controller
from shipyard.rollouts.report import markdown, plot
from shipyard.rollouts.state import RolloutState
from shipyard.runtime.flow_run import StepRun, begin, run_name
from shipyard.settings import StateLayout

log = logging.getLogger("shipyard.flows.roll_out")
quiet_expected_errors()

OUTCOMES = {"promoted": 1.0, "running": 0.0, "paused": 0.0, "rolled_back": -1.0, "aborted": -1.0}


class RollOutResult(BaseModel):
    """Where the rollout stands when this run ends."""

    status: str
    stage: int
    candidate_version: str
    outcome: str | None
    intervals: int


@task(name="walk", cache_policy=NO_CACHE, persist_result=False)
def walk(run: StepRun[RolloutStep]) -> RolloutState:
    """Load, smoke-test, walk the stages, decide: until the rollout ends or pauses."""
    return Controller(run.plan, run.step.name, say=log.info).run()


@task(name="report", cache_policy=NO_CACHE, persist_result=False)
def report(run: StepRun[RolloutStep], state: RolloutState) -> None:
    """The decision with its evidence as an artifact: a table per interval and a plot."""
    folder = StateLayout(run.plan.runtime.state_dir).root / "rollouts" / run.step.name
    png = plot(run.step, state, folder / f"{int(state.started_at)}.png")
    create_markdown_artifact(
        key=f"rollout-{run.step.name}",
        markdown=markdown(run.step, state, png),
        description=f"rollout {run.step.name}: {state.status}",
    )


@flow(name="roll-out", flow_run_name=run_name("roll-out", "rollout"), description=__doc__)
def roll_out(rollout: str) -> RollOutResult:
    """Start the rollout, or resume it; returns when it is promoted, rolled back or paused."""
    run = begin("roll-out", RolloutStep, rollout)
    with run.monitored() as metrics:
        state = walk(run)
        stage = run.step.stages[min(state.stage, len(run.step.stages) - 1)]
        metrics.observe("rollout_outcome", OUTCOMES[state.status], "1 promoted, -1 rolled back.")
        metrics.observe("rollout_stage", float(state.stage), "Stage index reached.")
        metrics.observe(
            "rollout_candidate_weight",
            stage.weight if state.status in ("running", "paused") else 0.0,
            "The candidate's share of traffic when the run ended, in %.",
        )
        failed = sum(
            m.outcome == "failed" for interval in state.intervals for m in interval.measurements
        )
        metrics.observe("rollout_failed_measurements", float(failed), "Failed measurements.")
        run.settle(state.outcome or state.status)
        report(run, state)
        log.info("rollout %s: %s", rollout, state.outcome or state.status)
        return RollOutResult(
            status=state.status,
            stage=state.stage,
            candidate_version=state.candidate_version,
            outcome=state.outcome,
            intervals=len(state.intervals),
        )
