"""Putting a verified backup back: the current state moved aside (kept), the archive's parts
unpacked in its place, PostgreSQL databases restored with pg_restore --clean; on any error the
moved-aside state, the pointers and the databases are put back as they were."""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard import progress
from shipyard.audit import AuditLog
from shipyard.backup import parts as partlib
from shipyard.backup.archive import Manifest, corrupt
from shipyard.backup.retention import new_id
from shipyard.errors import ShipyardError
from shipyard.processes import running
from shipyard.settings import StateLayout

if TYPE_CHECKING:
    from shipyard.compiler import Plan

ASIDE_MARK = ".before-restore-"
RESTORE_NOTES = "before-restore"
"""Inside the moved-aside folder: the pointers and database dumps from before the restore."""


@dataclass(frozen=True)
class Restored:
    manifest: Manifest
    aside: Path | None


def running_processes(state_dir: Path) -> list[str]:
    """The processes Shipyard started for this state folder that still run (server, worker,
    services, MLflow, the observability stack), by their pid files: "name (pid N)"."""
    run_dir = StateLayout(state_dir).run
    found = []
    for pid_file in sorted(run_dir.glob("*.pid")) if run_dir.is_dir() else []:
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if running(pid):  # a stale pid file is left as it is: nothing is touched before restoring
            found.append(f"{pid_file.stem} (pid {pid})")
    return found


def stop_command(process: str) -> str:
    """The command that stops a process running_processes() names."""
    name = process.split(" (pid ")[0]
    if name == "prefect-server":
        return "shipyard server stop"
    if name.startswith("prefect-worker-"):
        return "shipyard worker stop"
    if name == "mlflow-server":
        return "shipyard mlflow stop"
    if name.startswith("service-"):
        return f"shipyard serve {name.removeprefix('service-')} --stop"
    if name.startswith("observability-"):
        return "shipyard observability down"
    return f"stop {process}"


def ensure_stopped(state_dir: Path) -> None:
    running = running_processes(state_dir)
    if running:
        commands = list(dict.fromkeys(f"`{stop_command(p)}`" for p in running))
        raise ShipyardError(
            f"cannot restore while processes of this project run: {', '.join(running)}; "
            "nothing was restored",
            hint=f"stop them first ({', '.join(commands)}), then restore; start them again "
            "afterwards",
        )


def _postgres_targets(plan: Plan, manifest: Manifest) -> dict[str, str]:
    """Part name -> the database of this profile it restores into (by the roles it held)."""
    by_role = {
        role: url for url, roles in partlib.postgres_databases(plan).items() for role in roles
    }
    targets: dict[str, str] = {}
    for part in manifest.parts:
        if part.kind != "postgres":
            continue
        roles = list(part.detail.get("roles", []))
        url = next((by_role[r] for r in roles if r in by_role), None)
        if url is None:
            raise ShipyardError(
                f"backup {manifest.id} holds the PostgreSQL database of {', '.join(roles)}, "
                f"which profile '{plan.profile}' does not keep in PostgreSQL",
                hint=f"restore with the profile the backup was made with ('{manifest.profile}'), "
                "e.g. SHIPYARD_PROFILE=" + manifest.profile,
            )
        targets[part.name] = url
    return targets


def restore_backup(
    plan: Plan, archive: Path, manifest: Manifest, keep: Path | None = None
) -> Restored:
    """Restore a backup `verify_archive` accepted; the state before is kept aside. `keep`, a
    folder of backups inside the state folder, moves into the restored state."""
    state_dir = Path(plan.runtime.state_dir)
    project_dir = Path(plan.runtime.project_dir)
    ensure_stopped(state_dir)
    targets = _postgres_targets(plan, manifest)
    stamp = new_id()
    aside = state_dir.with_name(f"{state_dir.name}{ASIDE_MARK}{stamp}")
    work = Path(tempfile.mkdtemp(prefix=".shipyard-restore-", dir=state_dir.parent))
    before_pointers = partlib.dataset_pointers(plan)
    (work / "pointers.json").write_text(json.dumps(before_pointers), encoding="utf-8")
    before_dumps: dict[str, Path] = {}
    restored_dbs: list[str] = []
    moved = made = False
    written: list[str] = []  # pointers the backup wrote that were not there before
    try:
        before = work / "before"
        before.mkdir()
        for name, url in targets.items():  # the databases as they are, to roll back to
            before_dumps[name] = before / f"{name.replace('/', '-')}.dump"
            partlib.dump_postgres(url, before_dumps[name])
        if state_dir.exists():
            state_dir.rename(aside)
            moved = True
        state_dir.mkdir(parents=True)
        made = True
        with (
            progress.step(f"restoring backup {manifest.id}", total=len(manifest.parts)) as bar,
            tarfile.open(archive, "r:") as tar,
        ):
            for part in manifest.parts:
                bar.note(part.name)
                stream = tar.extractfile(part.member)
                if stream is None:
                    raise corrupt(archive.name, f"'{part.member}' is not a file")
                unpacked = work / Path(part.member).name
                with unpacked.open("wb") as out:
                    shutil.copyfileobj(stream, out)
                if part.kind == "files":
                    partlib.extract_files(unpacked, state_dir)
                elif part.kind == "postgres":
                    restored_dbs.append(part.name)
                    partlib.restore_postgres(targets[part.name], unpacked)
                elif part.kind == "pointers":
                    pointers = json.loads(unpacked.read_text(encoding="utf-8"))
                    written = [p for p in pointers if p not in before_pointers]
                    partlib.restore_pointers(project_dir, pointers)
                else:
                    raise corrupt(archive.name, f"part {part.name} is of unknown kind {part.kind}")
                unpacked.unlink()
                bar.advance()
        AuditLog(StateLayout(state_dir).catalog).record(
            "backup.restore",
            "backup.state",
            backup=manifest.id,
            created_at=manifest.created_at,
            note=manifest.note,
            before=str(aside) if moved else None,
        )
    except BaseException:
        if made:  # only a folder this restore made is removed, never the state it found
            shutil.rmtree(state_dir, ignore_errors=True)
            partlib.restore_pointers(project_dir, before_pointers)
            for relative in written:
                (project_dir / relative).unlink(missing_ok=True)
        if moved:
            aside.rename(state_dir)
        for name in restored_dbs:
            partlib.restore_postgres(targets[name], before_dumps[name])
        shutil.rmtree(work, ignore_errors=True)
        raise
    if moved and keep is not None:
        _carry_over(keep, aside, state_dir)  # after the restore: a failure here loses nothing
    if moved:
        notes = aside / RESTORE_NOTES
        notes.mkdir(exist_ok=True)
        for path in [work / "pointers.json", *before_dumps.values()]:
            shutil.move(str(path), notes / path.name)
    shutil.rmtree(work, ignore_errors=True)
    return Restored(manifest, aside if moved else None)


def _carry_over(folder: Path, aside: Path, state_dir: Path) -> None:
    """Backups kept inside the state folder (the embedded DVC remote's backups/) are not part
    of any backup: they move into the restored state, so a restore never loses one."""
    if state_dir not in folder.parents:
        return
    old = aside / folder.relative_to(state_dir)
    if old.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        if folder.exists():
            shutil.rmtree(folder)
        shutil.move(str(old), folder)
