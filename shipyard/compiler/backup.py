"""The profile's `backup:` -> BackupStep: when the backup-state flow snapshots all the project's
state, where the archives go and how many it keeps.

Not a section of the spec (backups belong to a profile, like its engines): compile_plan adds
the step after the sections, so every profile can back up on its own schedule.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from shipyard.compiler.plan import StepBase
from shipyard.spec import parse_duration

if TYPE_CHECKING:
    from shipyard.compiler.compile import CompileContext

BACKUP_STEP = "backup.state"


class BackupStep(StepBase):
    """backup-state: snapshot every part of the state into one archive, then prune."""

    kind: Literal["backup"] = "backup"
    to: str = Field(description="Where archives go: a directory or an s3:// URL.")
    options: dict[str, str] = Field(
        default_factory=dict,
        description="Object-store options (the DVC remote's, e.g. endpointurl) when `to` is "
        "the DVC remote's backups/ prefix; secret references resolve at run time.",
    )
    keep_last: int | None = Field(None, description="Keep the newest this many (a count).")
    keep_seconds: float | None = Field(None, description="Keep those younger than this.")

    flow: ClassVar[str | None] = "backup-state"
    parameter: ClassVar[str] = "backup"
    noun: ClassVar[str] = "backup"


def default_location(dvc_url: str, state_dir: Path) -> str:
    """The backups/ prefix of a DVC remote (a directory or an object-store URL); for a remote
    inside the state folder (the embedded default), a folder beside the state folder instead,
    `<state folder>-backups`, so that losing the state folder does not lose its backups."""
    if "://" not in dvc_url and state_dir in Path(dvc_url).resolve().parents:
        return str(state_dir.parent / f"{state_dir.name}-backups")
    return dvc_url.rstrip("/") + "/backups"


def compile_backup(ctx: CompileContext) -> Iterator[BackupStep]:
    backup = ctx.profile.backup
    if backup is None:
        return
    dvc = ctx.profile.dvc
    dvc_url = dvc.remote or str(ctx.state_dir / "dvc-remote")
    retention = backup.retention
    count = retention if isinstance(retention, int) else None
    seconds = parse_duration(retention) if isinstance(retention, str) else None
    kept = f"the newest {count}" if count is not None else f"those younger than {retention}"
    yield BackupStep(
        id=BACKUP_STEP,
        name="state",
        description=f"Back up all of project '{ctx.spec.project}''s state, keep {kept}.",
        tasks=("snapshot", "prune"),
        schedule=backup.schedule,
        to=backup.to or default_location(dvc_url, ctx.state_dir),
        options={} if backup.to else dict(dvc.options),
        keep_last=count,
        keep_seconds=seconds,
    )
