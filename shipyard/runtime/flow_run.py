"""What every flow does first: find its step in the plan, say whether the spec still compiles to
it, and set up logs, blocks and metrics.

A flow takes the name of its resource (`train_model(model="churn")`); `begin()` reads the
plan of the run (the applied one, or the one `shipyard run` hands over), finds the step and
logs, as the run's first line, whether pipelines.yaml has changed since that plan was applied.

Then it labels the run with the process that runs it (`shipyard.process`: "host:pid") and marks
Crashed the earlier runs of the same flow and resource that are still RUNNING although that
process is gone (killed, or its machine rebooted): Prefect's own zombie detection needs a
server that outlives the run, heartbeats and an automation, and takes minutes; the embedded
profile's temporary server dies with the process it serves.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

from shipyard.compiler.diff import changed_fields
from shipyard.compiler.plan import Plan, Role, StepBase
from shipyard.logs import configure_json_logs, current_flow_run_id
from shipyard.metrics import FlowRunMetrics, monitored_run
from shipyard.processes import owner_gone, process_owner
from shipyard.runtime.connections import load_block, metrics_sink
from shipyard.runtime.plans import current_plan
from shipyard.settings import StateLayout

log = logging.getLogger("shipyard.flows")
StepT = TypeVar("StepT", bound=StepBase)
MAX_FIELDS = 6
OWNER_LABEL = "shipyard.process"
"""Label of a flow run: "host:pid" of the process that runs it."""
MAX_REAPED = 50
_SETTLED: dict[str, str] = {}
_SETTLED_LOCK = threading.Lock()


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
    flow_run_id: str | None = None
    owner: str = ""
    """"host:pid" of the process running it (see `owner_gone`)."""

    def block(self, role: Role) -> Any:
        return load_block(self.plan, role)

    def settle(self, outcome: str) -> None:
        """Record that this run's outcome is decided ("registered version 3 ..."): what follows
        (artifacts, the run's final state on the Prefect server) only reports it, and when that
        fails `shipyard run` says what was done instead of an internal error."""
        if self.flow_run_id:
            with _SETTLED_LOCK:
                _SETTLED[self.flow_run_id] = outcome

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
    flow_run_id, owner = current_flow_run_id(), process_owner()
    if flow_run_id is not None:
        crash_abandoned_runs(flow, name, flow_run_id, owner, step.id)
    return StepRun(flow, plan, step, flow_run_id, owner)


def settled_outcome(flow_run_id: str) -> str | None:
    """What the flow run recorded with `StepRun.settle`, if anything."""
    with _SETTLED_LOCK:
        return _SETTLED.get(flow_run_id)


# --- processes and the runs they left behind ----------------------------------------------------


def crash_abandoned_runs(
    flow: str, name: str, flow_run_id: str, owner: str, resource: str
) -> list[str]:
    """Label this run with its process, then mark Crashed (with its task runs) every other
    RUNNING run of `flow` for resource `name` whose process is gone; returns their ids.

    Housekeeping: a server that cannot answer here is logged, not fatal (the run's own calls
    will say so if it stays away).
    """
    import httpx
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterName,
        FlowRunFilterState,
        FlowRunFilterStateType,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import PrefectException
    from prefect.states import Crashed

    prefix = f"{flow}/{name}@"
    crashed: list[str] = []
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run_labels(UUID(flow_run_id), {OWNER_LABEL: owner})
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    name=FlowRunFilterName(like_=prefix),
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])),
                ),
                limit=MAX_REAPED,
            )
            for run in runs:
                ran_by = (run.labels or {}).get(OWNER_LABEL)
                if str(run.id) == flow_run_id or not run.name.startswith(prefix):
                    continue
                since = run.start_time.timestamp() if run.start_time else None
                if not isinstance(ran_by, str) or not owner_gone(ran_by, since):
                    continue
                message = (
                    f"the process that ran it ({ran_by}) is gone: it was killed or crashed "
                    f"before the run ended; marked crashed by {prefix}{flow_run_id[:8]}"
                )
                client.set_flow_run_state(run.id, Crashed(message=message), force=True)
                tasks = client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])),
                    task_run_filter=TaskRunFilter(
                        state=TaskRunFilterState(
                            type=TaskRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])
                        )
                    ),
                )
                for task_run in tasks:
                    client.set_task_run_state(task_run.id, Crashed(message=message), force=True)
                crashed.append(str(run.id))
                log.warning(
                    "%s: flow run %s was left RUNNING; %s",
                    resource,
                    run.name,
                    message,
                    extra={"resource": resource},
                )
    except (PrefectException, httpx.HTTPError, OSError) as exc:
        log.warning(
            "%s: could not look for crashed runs on the Prefect server: %s",
            resource,
            exc,
            extra={"resource": resource},
        )
    return crashed


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
