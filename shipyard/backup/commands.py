"""`shipyard backup create | list | restore <id>`, and the scheduled backup the backup-state
flow runs."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    from shipyard.backup.archive import Created, Listed
    from shipyard.backup.store import BackupStore
    from shipyard.compiler import Plan
    from shipyard.compiler.backup import BackupStep

EXIT_OK = 0


def add_backup_parser(
    add: Callable[..., argparse.ArgumentParser], command: Callable[[argparse.Namespace], int]
) -> None:
    """`backup` with its actions; `command(args)` runs them (with a plan)."""
    backup = add("backup", lambda a: EXIT_OK, "back up all the project's state, list, restore")
    actions = backup.add_subparsers(dest="backup_command", required=True, metavar="ACTION")
    where = "a directory or s3:// URL (default: the profile's backup.to, else the DVC remote's "
    where += "backups/ prefix, or <state folder>-backups beside an embedded state folder)"
    text = "snapshot every piece of state into one verified archive"
    p = actions.add_parser("create", help=text, description=text)
    p.add_argument("--to", metavar="URL", help=where)
    p.add_argument("--note", help="a note kept in the manifest and shown by `backup list`")
    text = "this project's backups, oldest first: id, time, size, parts, note"
    p = actions.add_parser("list", help=text, description=text)
    p.add_argument("--from", dest="location", metavar="URL", help=where)
    p.add_argument("--json", action="store_true", help="as JSON")
    text = (
        "verify a backup, move the current state aside (kept) and restore it; refused while "
        "the project's server, worker or services run (audited)"
    )
    p = actions.add_parser("restore", help=text, description=text)
    p.add_argument("backup", help="a backup id from `backup list`, or the path of an archive")
    p.add_argument("--from", dest="location", metavar="URL", help=where)
    p.add_argument("--yes", action="store_true", help="do not ask before replacing the state")
    for action in actions.choices.values():
        action.set_defaults(func=command)


def backup_command(plan: Plan, args: argparse.Namespace) -> int:
    if args.backup_command == "create":
        created = create(plan, args.to, args.note)
        print(created_text(created))
        for warning in created.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        return EXIT_OK
    if args.backup_command == "list":
        return _list(plan, args.location, args.json)
    return restore(plan, args.backup, args.location, args.yes)


# -- where backups go -----------------------------------------------------------------------------


def default_location(plan: Plan) -> str:
    """The profile's backup.to, else the backups/ prefix of its DVC remote (beside the state
    folder when that remote is inside it)."""
    from shipyard.compiler.backup import BACKUP_STEP, BackupStep, default_location

    step = plan.steps.get(BACKUP_STEP)
    if isinstance(step, BackupStep):
        return step.to
    return default_location(plan.blocks.dvc_remote.url, Path(plan.runtime.state_dir))


def _dvc_options(plan: Plan) -> dict[str, str]:
    from shipyard.secrets import resolve

    return {k: resolve(v) or "" for k, v in plan.blocks.dvc_remote.options.items()}


def store_for(plan: Plan, location: str | None = None) -> BackupStore:
    """The store at `location` (default: default_location); an s3:// store takes the DVC
    remote's options (endpoint, keys) when the DVC remote is in S3 too."""
    from shipyard.backup.store import open_store
    from shipyard.compiler.backup import BACKUP_STEP, BackupStep
    from shipyard.secrets import resolve

    url = location or default_location(plan)
    step = plan.steps.get(BACKUP_STEP)
    options: dict[str, str] = {}
    if isinstance(step, BackupStep) and url == step.to and step.options:
        options = {k: resolve(v) or "" for k, v in step.options.items()}
    elif url.startswith("s3://") and plan.blocks.dvc_remote.url.startswith("s3://"):
        options = _dvc_options(plan)
    return open_store(url, options)


# -- create ---------------------------------------------------------------------------------------


def create(plan: Plan, location: str | None = None, note: str | None = None) -> Created:
    """A backup of the plan's state, audited in the (live) catalog."""
    from shipyard.audit import AuditLog
    from shipyard.backup.archive import create_backup
    from shipyard.settings import StateLayout

    store = store_for(plan, location)
    created = create_backup(plan, store, note, _dvc_options(plan))
    AuditLog(StateLayout(plan.runtime.state_dir).catalog).record(
        "backup.create",
        "backup.state",
        backup=created.manifest.id,
        location=created.location,
        size=created.archive_size,
        note=note,
    )
    return created


def created_text(created: Created) -> str:
    m = created.manifest
    dvc = m.dvc
    missing = dvc.get("missing") or []
    lines = [
        f"backup {m.id} of {m.project} ({m.profile}): {len(m.parts)} parts, "
        f"{human_size(created.archive_size)}",
        f"  at {created.location.rstrip('/')}/{created.archive}",
        f"  DVC remote {dvc['remote']}: {dvc['objects']} dataset versions"
        + (f", {len(missing)} missing" if missing else ", all present" if dvc["checked"] else ""),
    ]
    lines += [f"  not in the backup: {s}" for s in m.skipped]
    return "\n".join(lines)


def prune(plan: Plan, step: BackupStep) -> list[str]:
    """The backups past the step's retention deleted, oldest first (never the newest)."""
    from shipyard.backup.archive import prune_backups

    return prune_backups(store_for(plan, step.to), plan.project, step.keep_last, step.keep_seconds)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


# -- list -----------------------------------------------------------------------------------------


def _list(plan: Plan, location: str | None, as_json: bool) -> int:
    from shipyard.backup.archive import list_backups

    store = store_for(plan, location)
    found = list_backups(store, plan.project)
    if as_json:
        print(json.dumps([_json_row(i, listed) for i, listed in found], indent=2))
        return EXIT_OK
    if not found:
        print(f"no backups of {plan.project} in {store.url}")
        return EXIT_OK
    print(backups_table(found))
    print(f"({len(found)} in {store.url})")
    return EXIT_OK


def _json_row(backup_id: str, listed: Listed | None) -> dict[str, object]:
    if listed is None:
        return {"id": backup_id, "readable": False}
    m = listed.manifest
    return {
        "id": backup_id,
        "readable": True,
        "created_at": m.created_at,
        "size": listed.archive_size,
        "parts": [p.name for p in m.parts],
        "note": m.note,
        "profile": m.profile,
    }


def backups_table(found: list[tuple[str, Listed | None]]) -> str:
    rows = [("ID", "CREATED", "SIZE", "PARTS", "NOTE")]
    for backup_id, listed in found:
        if listed is None:
            rows.append((backup_id, "?", "?", "?", "(its listing cannot be read)"))
            continue
        m = listed.manifest
        created = datetime.fromisoformat(m.created_at).strftime("%Y-%m-%d %H:%M:%S UTC")
        rows.append(
            (backup_id, created, human_size(listed.archive_size), str(len(m.parts)), m.note or "")
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
        for r in rows
    ).rstrip()


# -- restore --------------------------------------------------------------------------------------


def restore(plan: Plan, backup: str, location: str | None, yes: bool) -> int:
    from shipyard.backup.archive import Listed, archive_name, listing_name, verify_archive
    from shipyard.backup.restore import ensure_stopped, restore_backup
    from shipyard.backup.store import LocalStore

    store = store_for(plan, location)
    state_dir = Path(plan.runtime.state_dir)
    ensure_stopped(state_dir)  # said before a long download; checked again before restoring
    with tempfile.TemporaryDirectory(prefix=".shipyard-restore-", dir=state_dir.parent) as tmp:
        given = Path(backup)
        from_file = backup.endswith(".tar") and given.is_file()
        # named as the archive is: a refusal names the file the user gave or listed
        local = Path(tmp) / (given.name if from_file else archive_name(plan.project, backup))
        listed: Listed | None = None
        if from_file:
            shutil.copyfile(given, local)
        else:
            names = store.names()
            if archive_name(plan.project, backup) not in names:
                raise ShipyardError(
                    f"no backup '{backup}' of {plan.project} in {store.url}",
                    hint="`shipyard backup list` shows the backups there (--from another place)",
                )
            store.get(archive_name(plan.project, backup), local)
            if listing_name(plan.project, backup) in names:
                try:
                    listed = Listed.model_validate_json(
                        store.read_text(listing_name(plan.project, backup))
                    )
                except ValueError:
                    listed = None  # the archive's own manifest and checksums still decide
        from shipyard import progress

        with progress.step("verifying the backup") as bar:
            manifest = verify_archive(local, plan.project, listed, bar.note)
        if not yes and not _confirm(manifest.id, state_dir):
            print("nothing was restored")
            return 1
        keep = store.folder if isinstance(store, LocalStore) else None
        restored = restore_backup(plan, local, manifest, keep)
    print(f"restored backup {manifest.id} of {manifest.project} (made {manifest.created_at})")
    if restored.aside is not None:
        print(f"  the state before is kept in {restored.aside}")
    for note in manifest.skipped:
        print(f"  not in the backup: {note}")
    print("  start the server, worker and services again (`shipyard server start`, ...)")
    return EXIT_OK


def _confirm(backup_id: str, state_dir: Path) -> bool:
    if not sys.stdin.isatty():
        raise ShipyardError(
            f"restoring backup {backup_id} replaces the state in {state_dir}",
            hint="pass --yes to restore without a question (the state before is kept aside)",
        )
    answer = input(f"replace the state in {state_dir} with backup {backup_id}? [y/N] ")
    return answer.strip().lower() in ("y", "yes")
