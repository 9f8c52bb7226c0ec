"""The backup-state flow, run as its deployment runs it: a backup to the profile's location,
then the backups past retention pruned."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support import SPEC, compile_spec, free_port, run_flow, task_names

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]


def test_scheduled_backups_keep_the_newest_the_profile_asks_for(
    make_project: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    from flows.backup_state import backup_state
    from shipyard.audit import AuditLog
    from shipyard.backup.archive import list_backups
    from shipyard.backup.store import LocalStore
    from shipyard.compiler.backup import BackupStep
    from shipyard.settings import StateLayout

    backups = tmp_path_factory.mktemp("scheduled")
    text = SPEC.format(port=free_port()).replace(
        "    prefect: {port:",
        f'    backup: {{schedule: "0 2 * * *", retention: 2, to: "{backups}"}}\n'
        "    prefect: {port:",
    )
    plan = compile_spec(make_project(rows=50, spec=text))
    AuditLog(StateLayout(plan.runtime.state_dir).catalog).record("test", "model.churn")
    made = []
    for _ in range(3):
        state = run_flow(plan, backup_state, backup="state")
        assert state.is_completed(), state
        made.append(state.result())
    assert [r.pruned for r in made[:2]] == [[], []]
    kept = [backup_id for backup_id, _ in list_backups(LocalStore(backups), plan.project)]
    assert made[2].pruned == [made[0].backup]
    assert kept == [made[1].backup, made[2].backup]
    assert all(r.parts >= 2 and r.location == str(backups) for r in made)
    step = plan.named(BackupStep, "state")
    assert task_names(state.state_details.flow_run_id) == list(step.tasks) == ["snapshot", "prune"]
    [(_, listed)] = list_backups(LocalStore(backups), plan.project)[-1:]
    assert listed is not None and listed.manifest.note == "scheduled"
