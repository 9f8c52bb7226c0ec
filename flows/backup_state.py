"""backup-state: snapshot all the project's state into one archive (SQLite through the online
backup API, PostgreSQL through pg_dump, the MLflow artifacts, the Bento store, Feast, the DVC
pointers, the prediction and audit logs), then prune the backups past the profile's retention."""

from __future__ import annotations

import logging

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from shipyard.backup import commands as backups
from shipyard.backup.archive import Created
from shipyard.compiler.backup import BackupStep
from shipyard.metrics import monitored_run
from shipyard.runtime.connections import metrics_sink
from shipyard.runtime.flow_run import StepRun, begin, run_name

log = logging.getLogger("shipyard.flows.backup_state")


class BackupStateResult(BaseModel):
    backup: str
    location: str
    size: int
    parts: int
    pruned: list[str]
    warnings: list[str]


@task(name="snapshot", cache_policy=NO_CACHE, persist_result=False)
def snapshot(run: StepRun[BackupStep]) -> Created:
    """Every piece of state into one archive at the step's location (audited)."""
    return backups.create(run.plan, run.step.to, note="scheduled")


@task(name="prune", cache_policy=NO_CACHE, persist_result=False)
def prune(run: StepRun[BackupStep]) -> list[str]:
    """The project's backups past retention deleted; never the one just made."""
    return backups.prune(run.plan, run.step)


@flow(name="backup-state", flow_run_name=run_name("backup-state", "backup"), description=__doc__)
def backup_state(backup: str) -> BackupStateResult:
    """One scheduled backup of the project's state."""
    run = begin("backup-state", BackupStep, backup)
    with monitored_run(
        "backup-state", run.step.id, run.plan.project, metrics_sink(run.plan), run.flow_run_id
    ) as metrics:
        created = snapshot(run)
        pruned = prune(run)  # after a backup that succeeded only
        for line in backups.created_text(created).splitlines():
            log.info("%s", line)
        for warning in created.warnings:
            log.warning("%s", warning)
        if pruned:
            log.info("pruned %d backups past retention: %s", len(pruned), ", ".join(pruned))
        metrics.observe("backup_size_bytes", created.archive_size, "Size of the last backup.")
        run.settle(f"backup {created.manifest.id}, {len(pruned)} pruned")
        return BackupStateResult(
            backup=created.manifest.id,
            location=created.location,
            size=created.archive_size,
            parts=len(created.manifest.parts),
            pruned=pruned,
            warnings=list(created.warnings),
        )
