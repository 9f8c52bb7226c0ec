"""The backup archive: a tar of `manifest.json` and the parts it lists, each with its sha256
and size; written once to a store, verified whole before anything is restored from it.

A backup `<id>` of project `<project>` is `<project>-<id>.tar` in the store, with a copy of
its manifest and the archive's own sha256 and size beside it (`<project>-<id>.json`), which
`shipyard backup list` reads without fetching the archive.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from shipyard import progress
from shipyard.backup import parts as partlib
from shipyard.backup.retention import new_id, to_prune
from shipyard.backup.store import BackupStore, LocalStore
from shipyard.errors import ShipyardError
from shipyard.secrets import redact_url

if TYPE_CHECKING:
    from shipyard.compiler import Plan

FORMAT = 1
"""Bumped when an older Shipyard could not restore what this one writes."""
MANIFEST = "manifest.json"
_ID = re.compile(r"^(\d{8}T\d{6}Z(?:-\d+)?)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PartEntry(_Strict):
    name: str
    kind: str
    member: str
    sha256: str
    size: int
    detail: dict[str, Any] = {}


class Manifest(_Strict):
    format: int
    id: str
    project: str
    profile: str
    profile_kind: str
    created_at: str
    shipyard_version: str
    note: str | None = None
    project_dir: str
    state_dir: str
    parts: tuple[PartEntry, ...]
    dvc: dict[str, Any]
    skipped: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)


class Listed(_Strict):
    """What a store's `<project>-<id>.json` says about its archive."""

    manifest: Manifest
    archive_sha256: str
    archive_size: int


def archive_name(project: str, backup_id: str) -> str:
    return f"{project}-{backup_id}.tar"


def listing_name(project: str, backup_id: str) -> str:
    return f"{project}-{backup_id}.json"


def sha256_of(stream: IO[bytes]) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(1 << 20):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("shipyard")
    except PackageNotFoundError:
        return "unknown"


# -- create ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Created:
    manifest: Manifest
    location: str
    archive: str
    archive_size: int
    warnings: tuple[str, ...]


def backup_ids(store: BackupStore, project: str) -> list[str]:
    """This project's backup ids in the store, oldest first (another project's are not)."""
    prefix = f"{project}-"
    found = []
    for name in store.names():
        if name.startswith(prefix) and name.endswith(".tar"):
            backup_id = name[len(prefix) : -len(".tar")]
            if _ID.match(backup_id):
                found.append(backup_id)
    return sorted(found)


def _unique_id(store: BackupStore, project: str, now: datetime | None) -> str:
    base = new_id(now)
    taken = set(backup_ids(store, project))
    backup_id, n = base, 1
    while backup_id in taken:
        n += 1
        backup_id = f"{base}-{n:03d}"  # sorts as made, up to 999 in one second
    return backup_id


def _excluded(store: BackupStore) -> list[Path]:
    """A store inside the state folder (the embedded DVC remote's backups/) is not backed up."""
    if isinstance(store, LocalStore):
        return [store.folder]
    return []


def create_backup(
    plan: Plan,
    store: BackupStore,
    note: str | None = None,
    dvc_options: dict[str, str] | None = None,
    now: datetime | None = None,
) -> Created:
    """Snapshot every part of the plan's state into one archive in `store`."""
    state_dir = Path(plan.runtime.state_dir)
    project_dir = Path(plan.runtime.project_dir)
    excluded = _excluded(store)
    warnings: list[str] = []
    if excluded and state_dir in excluded[0].parents:
        warnings.append(
            f"the backup is kept inside the state folder ({excluded[0]}): a lost state folder "
            "takes its backups with it; set backup.to in the profile or pass --to"
        )
    entries = partlib.state_entries(state_dir, excluded)
    databases = partlib.postgres_databases(plan)
    work = Path(tempfile.mkdtemp(prefix=".shipyard-backup-", dir=project_dir))
    try:
        made: list[partlib.Part] = []
        total = len(entries) + len(databases) + 1
        with progress.step(f"backing up {plan.project} ({plan.profile})", total=total) as bar:
            for entry in entries:
                bar.note(entry.name)
                made.append(partlib.snapshot_entry(state_dir, entry, work, excluded, bar.note))
                bar.advance()
            for url, roles in databases.items():
                bar.note(f"pg_dump {redact_url(url)}")
                made.append(partlib.postgres_part(url, roles, work))
                bar.advance()
            made.append(partlib.pointers_part(plan, work))
            bar.advance()
        remote = plan.blocks.dvc_remote.url
        md5s = partlib.pointed_objects(plan)
        missing = partlib.missing_objects(remote, dvc_options or {}, md5s)
        if missing:
            warnings.append(
                f"{len(missing)} of {len(md5s)} dataset versions are missing from the DVC "
                f"remote {redact_url(remote)} ({', '.join(m[:10] for m in missing[:5])}): a "
                "restore brings their pointers back but not their bytes"
            )
        elif missing is None:
            warnings.append(f"the DVC remote {redact_url(remote)} was not checked (no client)")
        backup_id = _unique_id(store, plan.project, now)
        manifest = Manifest(
            format=FORMAT,
            id=backup_id,
            project=plan.project,
            profile=plan.profile,
            profile_kind=plan.runtime.profile_kind,
            created_at=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
            shipyard_version=_version(),
            note=note,
            project_dir=str(project_dir),
            state_dir=str(state_dir),
            parts=tuple(_entry(p) for p in made),
            dvc={
                "remote": redact_url(remote),
                "objects": len(md5s),
                "missing": missing,
                "checked": missing is not None,
            },
            skipped=tuple(skipped_state(plan)),
        )
        archive = work / archive_name(plan.project, backup_id)
        write_archive(archive, manifest, {p.member: p.path for p in made})
        with archive.open("rb") as f:
            digest, size = sha256_of(f)
        listing = work / listing_name(plan.project, backup_id)
        listed = Listed(manifest=manifest, archive_sha256=digest, archive_size=size)
        listing.write_text(listed.model_dump_json(indent=2), encoding="utf-8")
        store.put(archive, archive.name)
        store.put(listing, listing.name)  # last: a listed backup is a whole one
        return Created(manifest, store.url, archive.name, size, tuple(warnings))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _entry(part: partlib.Part) -> PartEntry:
    with part.path.open("rb") as f:
        digest, size = sha256_of(f)
    return PartEntry(
        name=part.name,
        kind=part.kind,
        member=part.member,
        sha256=digest,
        size=size,
        detail=part.detail,
    )


def write_archive(target: Path, manifest: Manifest, members: dict[str, Path]) -> None:
    """manifest.json first, then each part."""
    with tarfile.open(target, "w") as tar:
        data = manifest.model_dump_json(indent=2).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime, info.mode = len(data), int(datetime.now(UTC).timestamp()), 0o644
        tar.addfile(info, io.BytesIO(data))
        for member, path in members.items():
            tar.add(str(path), arcname=member, recursive=False)


def skipped_state(plan: Plan) -> list[str]:
    """State the profile keeps where a backup does not reach, said in the manifest."""
    notes = []
    if not plan.prefect.local:
        notes.append(f"prefect: the external server {plan.prefect.api_url} backs itself up")
    tracking = plan.blocks.mlflow.tracking_uri
    if tracking.startswith("http") and plan.mlflow_server is None:
        notes.append(f"mlflow: the external tracking server {redact_url(tracking)}")
    root = plan.blocks.mlflow.artifact_root or ""
    if "://" in root and not root.startswith("file://"):
        notes.append(f"mlflow artifacts in {redact_url(root)} (kept by that store)")
    elif root and not _within(Path(root.removeprefix("file://")), Path(plan.runtime.state_dir)):
        notes.append(f"mlflow artifacts in {root}, outside the state folder: back it up too")
    from shipyard.compiler import FeatureRepoStep
    from shipyard.compiler.features import SqliteOnlineStore

    for repo in plan.steps_of(FeatureRepoStep):
        if not isinstance(repo.online_store, SqliteOnlineStore):
            notes.append(
                "feast online store in Redis: run `shipyard run materialize-features <view>` "
                "after a restore"
            )
    return notes


def _within(path: Path, folder: Path) -> bool:
    resolved = path.expanduser().resolve()
    return resolved == folder.resolve() or folder.resolve() in resolved.parents


# -- verify -------------------------------------------------------------------------------------


def corrupt(archive: str, problem: str) -> ShipyardError:
    return ShipyardError(
        f"backup {archive} is corrupt: {problem}; nothing was restored",
        hint="restore another backup (`shipyard backup list`); this one cannot be trusted",
    )


def read_manifest(archive: Path) -> Manifest:
    try:
        with tarfile.open(archive, "r:") as tar:
            member = tar.getmember(MANIFEST)
            stream = tar.extractfile(member)
            if stream is None:
                raise corrupt(archive.name, "manifest.json is not a file")
            return Manifest.model_validate_json(stream.read())
    except KeyError:
        raise corrupt(archive.name, "it has no manifest.json") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise corrupt(archive.name, f"it is not a readable tar archive ({exc})") from None
    except ValidationError as exc:
        raise corrupt(
            archive.name, f"its manifest does not parse ({exc.errors()[0]['msg']})"
        ) from None


def verify_archive(
    archive: Path,
    project: str,
    listed: Listed | None = None,
    tick: Callable[[str], None] = lambda _: None,
) -> Manifest:
    """The manifest, once the archive, its format, its project and every part's checksum
    and size are as they should be; else a ShipyardError saying what is wrong."""
    if listed is not None:
        with archive.open("rb") as f:
            digest, size = sha256_of(f)
        if (digest, size) != (listed.archive_sha256, listed.archive_size):
            raise corrupt(
                archive.name,
                f"the archive's sha256 {digest[:12]} ({size} bytes) is not the "
                f"{listed.archive_sha256[:12]} ({listed.archive_size} bytes) it was written with",
            )
    manifest = read_manifest(archive)
    if manifest.format > FORMAT:
        raise ShipyardError(
            f"backup {manifest.id} was written in format {manifest.format}, newer than this "
            f"Shipyard's {FORMAT}",
            hint=f"restore it with Shipyard {manifest.shipyard_version} or newer",
        )
    if manifest.project != project:
        raise ShipyardError(
            f"backup {manifest.id} is of project '{manifest.project}', not '{project}'",
            hint="restore a backup of this project (`shipyard backup list`), or run the restore "
            f"from the folder of '{manifest.project}'",
        )
    expected = {p.member: p for p in manifest.parts}
    seen: set[str] = set()
    try:
        with tarfile.open(archive, "r:") as tar:
            for member in tar:
                if member.name == MANIFEST:
                    continue
                part = expected.get(member.name)
                if part is None:
                    raise corrupt(archive.name, f"'{member.name}' is not in its manifest")
                stream = tar.extractfile(member)
                if stream is None:
                    raise corrupt(archive.name, f"'{member.name}' is not a file")
                tick(part.name)
                digest, size = sha256_of(stream)
                if (digest, size) != (part.sha256, part.size):
                    raise corrupt(
                        archive.name,
                        f"part {part.name} has sha256 {digest[:12]} ({size} bytes), its manifest "
                        f"says {part.sha256[:12]} ({part.size} bytes)",
                    )
                seen.add(member.name)
    except (tarfile.TarError, OSError, EOFError, zlib_error()) as exc:
        raise corrupt(archive.name, f"it cannot be read to the end ({exc})") from None
    absent = sorted(set(expected) - seen)
    if absent:
        raise corrupt(archive.name, f"parts listed in its manifest are missing: {absent}")
    return manifest


def zlib_error() -> type[Exception]:
    import zlib

    return zlib.error


# -- list and prune -----------------------------------------------------------------------------


def list_backups(store: BackupStore, project: str) -> list[tuple[str, Listed | None]]:
    """This project's backups, oldest first, with what their listing says (None: unreadable)."""
    found: list[tuple[str, Listed | None]] = []
    names = set(store.names())
    for backup_id in backup_ids(store, project):
        listed = None
        if listing_name(project, backup_id) in names:
            try:
                listed = Listed.model_validate_json(
                    store.read_text(listing_name(project, backup_id))
                )
            except (ValidationError, json.JSONDecodeError, UnicodeDecodeError):
                listed = None
        found.append((backup_id, listed))
    return found


def prune_backups(
    store: BackupStore,
    project: str,
    keep_last: int | None,
    keep_seconds: float | None,
    now: datetime | None = None,
) -> list[str]:
    """Delete this project's backups past retention; returns their ids."""
    pruned = to_prune(backup_ids(store, project), keep_last, keep_seconds, now)
    for backup_id in pruned:
        store.delete(listing_name(project, backup_id))  # unlisted first, then gone
        store.delete(archive_name(project, backup_id))
    return pruned
