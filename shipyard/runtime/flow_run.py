"""What every flow does first: find its step in the plan, say whether the spec still compiles to
it, and set up logs, blocks and metrics.

A flow takes the name of its resource (`train_model(model="churn")`); `begin()` reads the
plan of the run (the applied one, or the one `shipyard run` hands over), finds the step and
logs, as the run's first line, whether pipelines.yaml has changed since that plan was applied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from shipyard.compiler.diff import changed_fields
from shipyard.compiler.plan import Plan, Role, StepBase
from shipyard.logs import configure_json_logs, current_flow_run_id
from shipyard.metrics import FlowRunMetrics, monitored_run
from shipyard.runtime.connections import load_block, metrics_sink
from shipyard.runtime.plans import current_plan
from shipyard.settings import StateLayout

log = logging.getLogger("shipyard.flows")
StepT = TypeVar("StepT", bound=StepBase)
MAX_FIELDS = 6


def run_name(flow: str, parameter: str) -> Callable[[], str]:
    """Prefect `flow_run_name`: `train-model/churn@1a2b3c4d` (the resource, then the run id)."""

    def name() -> str:
        from prefect.runtime import flow_run

        resource = flow_run.parameters.get(parameter, "?")
        return f"{flow}/{resource}@{str(flow_run.id)[:8]}"

    return name


@dataclass(frozen=True)
class StepRun(Generic[StepT]):
    """One flow run of one step: the plan it belongs to, and where its outputs go."""

    flow: str
    plan: Plan
    step: StepT

    def block(self, role: Role) -> Any:
        return load_block(self.plan, role)

    @contextmanager
    def monitored(self) -> Iterator[FlowRunMetrics]:
        """Duration, outcome and observed values as Prometheus gauges, even on failure."""
        with monitored_run(
            self.flow,
            self.step.id,
            self.plan.project,
            metrics_sink(self.plan),
            current_flow_run_id(),
        ) as metrics:
            yield metrics


def begin(flow: str, kind: type[StepT], name: str) -> StepRun[StepT]:
    """The step of this run; its first log line compares the plan with the spec."""
    plan = current_plan()
    configure_json_logs(StateLayout(plan.runtime.state_dir).logs)
    step = plan.named(kind, name)
    level, message = compare_with_spec(plan, step)
    log.log(level, message, extra={"resource": step.id})
    return StepRun(flow, plan, step)


def compare_with_spec(plan: Plan, step: StepBase) -> tuple[int, str]:
    """(level, message): does the spec file still compile to what this step runs?"""
    from shipyard.project import load_project

    path = plan.runtime.spec_path
    applied = plan.spec_digest[:12]
    if not path.is_file():
        return logging.INFO, (
            f"{step.id}: running the applied plan (spec {applied}); {path} is not on this "
            "machine, so it is not compared"
        )
    project = load_project(path, profile=plan.profile)
    if project.plan is None:
        return logging.WARNING, (
            f"{step.id}: {plan.runtime.spec_file} no longer validates "
            f"({len(project.errors)} errors); this run uses the plan applied from spec "
            f"{applied}: fix the spec, then `shipyard apply`"
        )
    now = project.plan
    if now.spec_digest == plan.spec_digest:
        return logging.INFO, (
            f"{step.id}: running plan {applied}, which is what {plan.runtime.spec_file} compiles to"
        )
    changed = f"spec {applied} -> {now.spec_digest[:12]}"
    current = now.steps.get(step.id)
    if current is None:
        return logging.WARNING, (
            f"{step.id} is no longer in {plan.runtime.spec_file} ({changed}): this run uses the "
            "applied plan; `shipyard apply` removes its deployment"
        )
    fields = list(changed_fields(step.model_dump(mode="json"), current.model_dump(mode="json")))
    if not fields:
        return logging.INFO, (
            f"{step.id}: {plan.runtime.spec_file} changed since the plan was applied ({changed}), "
            "but not in what this step runs"
        )
    shown = ", ".join(fields[:MAX_FIELDS]) + (
        f" and {len(fields) - MAX_FIELDS} more" if len(fields) > MAX_FIELDS else ""
    )
    return logging.WARNING, (
        f"{step.id}: this deployment is stale: {plan.runtime.spec_file} changed since it was "
        f"applied ({changed}; {step.id} differs in {shown}); this run uses the applied "
        "settings: run `shipyard apply` to run the new ones"
    )
