"""What a killed training leaves behind in MLflow, found and settled before the model trains
again (and by `shipyard models repair`).

A process killed mid-training leaves its MLflow run RUNNING; one killed while registering also
leaves the registration pending (see `shipyard.registry`). Every training run is tagged with
the process that runs it (`shipyard.process`, "host:pid"); the caller says whether such a
process is gone (the runtime knows processes, this module knows MLflow). Runs of processes
that may still be alive, on another machine or still running here, are left alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shipyard import registry
from shipyard.audit import AuditLog

OWNER_TAG = "shipyard.process"
"""On a training's MLflow run: "host:pid" of the process that runs it."""
FAILURE_TAG = "shipyard.failure"
"""On an MLflow run ended by recovery: why."""
NOTE_TAG = "mlflow.note.content"
"""The run's description in the MLflow UI."""
MAX_RUNS = 200

OwnerGone = Callable[[str, float | None], bool]
"""(owner "host:pid", when the run started in epoch seconds) -> True when that process is gone."""


@dataclass(frozen=True)
class Recovered:
    """What recovery did: one line per settled registration and per ended run."""

    registrations: list[registry.Settled]
    ended_runs: list[str]
    lines: list[str]


def recover(
    experiment_id: str,
    registered_name: str,
    resource: str,
    owner_gone: OwnerGone,
    audit: AuditLog,
    by: str,
) -> Recovered:
    """Settle the half-made registrations and end the RUNNING runs that killed processes left in
    `experiment_id`; `by` names who does it (in tags, messages and the audit log)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    running = client.search_runs(
        [experiment_id], "attributes.status = 'RUNNING'", max_results=MAX_RUNS
    )
    pending = client.search_runs(
        [experiment_id],
        f"tags.`{registry.TAG_REGISTRATION}` = '{registry.PENDING}'",
        max_results=MAX_RUNS,
    )
    abandoned = {r.info.run_id: r for r in running if _abandoned(r, owner_gone)}
    settled: list[registry.Settled] = []
    lines: list[str] = []
    closed: set[str] = set()
    for run in pending:
        if run.info.status == "RUNNING" and run.info.run_id not in abandoned:
            continue  # its process may still be registering
        done = registry.settle_registration(
            registered_name, run, audit, resource, reason=f"{by}: {_why(run)}"
        )
        settled.append(done)
        lines.append(f"{resource}: {done.describe(registered_name)}")
        if done.outcome == registry.REGISTERED and run.info.status != "FINISHED":
            # everything was logged before registering began: the training did finish
            abandoned.pop(run.info.run_id, None)
            with contextlib.suppress(MlflowException):  # set when it was ended as failed
                client.delete_tag(run.info.run_id, FAILURE_TAG)
            client.set_tag(run.info.run_id, NOTE_TAG, f"registration completed by {by}")
            client.set_terminated(run.info.run_id, "FINISHED")
            closed.add(run.info.run_id)
    ended = []
    for run in abandoned.values():
        if run.data.tags.get(registry.TAG_REGISTRATION) == registry.REGISTERED:
            # killed after its registration was complete, only the run's end is missing
            client.set_tag(run.info.run_id, NOTE_TAG, f"ended as FINISHED by {by}")
            client.set_terminated(run.info.run_id, "FINISHED")
            closed.add(run.info.run_id)
            continue
        message = f"ended as FAILED by {by}: {_why(run)}"
        client.set_tag(run.info.run_id, FAILURE_TAG, message)
        client.set_tag(run.info.run_id, NOTE_TAG, message)
        client.set_terminated(run.info.run_id, "FAILED")
        ended.append(run.info.run_id)
        lines.append(f"{resource}: MLflow run {run.info.run_id} was left RUNNING; {message}")
    still_running = {r.info.run_id for r in running} - closed - set(ended)
    ended += _end_orphaned_children(client, running, still_running)
    return Recovered(settled, ended, lines)


def _abandoned(run: Any, owner_gone: OwnerGone) -> bool:
    owner = run.data.tags.get(OWNER_TAG)
    started = run.info.start_time / 1000 if run.info.start_time else None
    return bool(owner) and owner_gone(owner, started)


def _why(run: Any) -> str:
    tags = run.data.tags
    flow_run = tags.get("shipyard.flow_run_id") or "none"
    owner = tags.get(OWNER_TAG) or "an unknown process"
    if run.info.status != "RUNNING":
        return (
            f"its run ended ({run.info.status}, Prefect flow run {flow_run}) before the "
            "registration was complete"
        )
    return (
        f"the process that ran it ({owner}, Prefect flow run {flow_run}) is gone: it was "
        "killed or crashed before the training ended"
    )


def _end_orphaned_children(client: Any, running: list[Any], still_running: set[str]) -> list[str]:
    """Nested runs (trials) left RUNNING under a parent that is not running any more."""
    ended = []
    for run in running:
        parent = run.data.tags.get("mlflow.parentRunId")
        if not parent or parent in still_running or run.info.run_id not in still_running:
            continue
        client.set_tag(run.info.run_id, FAILURE_TAG, f"its parent run {parent} ended")
        client.set_terminated(run.info.run_id, "FAILED")
        ended.append(run.info.run_id)
    return ended
