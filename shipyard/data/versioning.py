"""Versioning dataset files with DVC, and a catalog of every version for point-in-time recovery.

DVC tracks the file (a `<file>.dvc` pointer beside it, content in the cache under the state
folder) and pushes it to the profile's remote. DVC without git keeps no history, so each version
is also recorded in a SQLite catalog: `shipyard data versions` lists it and `shipyard data
restore` writes an earlier pointer back and pulls those exact bytes from the remote.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import sys
import warnings
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import ServiceUnavailable, ShipyardError
from shipyard.settings import StateLayout

if TYPE_CHECKING:
    from dvc.repo import Repo

    from shipyard.compiler import DatasetStep
    from shipyard.compiler.plan import Plan

log = logging.getLogger("shipyard.data.versioning")
REMOTE_NAME = "shipyard"
# DVC 3.67 trips over its own pygtrie deprecation on every add; nothing a user can act on
warnings.filterwarnings(
    "ignore", message="_NoneStep.value will soon raise", category=DeprecationWarning
)


def _dvc_logs_through_logging() -> None:
    """DVC's records go through Python logging (Prefect's run log, Shipyard's JSON log), not the
    console handlers `import dvc` binds to whatever sys.stdout was at that moment: a stream that
    is closed later (a finished capture, a closed pipe) made every DVC log line fatal."""
    from dvc.logger import LoggerHandler

    for name in ("dvc", "dvc_objects", "dvc_data"):
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if isinstance(h, LoggerHandler)]:
            logger.removeHandler(handler)
        logger.propagate = True


@dataclass(frozen=True)
class DataVersion:
    """One recorded version of a dataset file; `md5` is DVC's content hash and the version id."""

    dataset: str
    md5: str
    size: int
    rows: int | None
    path: str
    created_at: str
    flow_run_id: str | None
    remote: str
    pointer: str

    @property
    def short(self) -> str:
        return self.md5[:10]


@dataclass(frozen=True)
class Validated:
    """A version that passed a set of expectations, with the file's stat when it was recorded:
    a file of the same size, mtime, ctime and inode is known to still be that version without
    reading it."""

    dataset: str
    md5: str
    expectations: str
    """`expectations_digest` of the rules it passed."""
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    rows: int
    evaluated: int
    """Expectations Great Expectations evaluated."""
    validated_at: str
    flow_run_id: str | None
    stat_at: str
    """When the stat was taken (at validation, or when a re-hash recognised the file)."""


@dataclass(frozen=True)
class Unchanged:
    """The answer of `validated_before`: the file is this version, which passed these rules."""

    version: DataVersion
    validated: Validated
    rehashed: bool
    """The stat differed (touched, copied back), so the file was hashed to recognise it."""

    def note(self) -> str:
        how = "same content (re-hashed), " if self.rehashed else ""
        return (
            f"unchanged, validated before as version {self.version.short} ({how}"
            f"{self.validated.rows} rows, {self.validated.evaluated} expectations, "
            f"{self.validated.validated_at}"
            + (f", flow run {self.validated.flow_run_id}" if self.validated.flow_run_id else "")
            + ")"
        )


RACY_NS = 2_000_000_000
"""A file modified this close to when its stat was recorded may change again within the same
mtime tick without its stat showing it (git's "racy" entries): such a stat is re-hashed."""


def file_md5(path: Path) -> str | None:
    """The md5 of a file's bytes (DVC's version id), or None when there is no file."""
    return _file_md5(path)


def file_stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _stat_matches(validated: Validated, stat: os.stat_result) -> bool:
    recorded_at = datetime.fromisoformat(validated.stat_at).timestamp() * 1e9
    return (validated.size, validated.mtime_ns, validated.ctime_ns, validated.inode) == (
        stat.st_size,
        stat.st_mtime_ns,
        stat.st_ctime_ns,
        stat.st_ino,
    ) and recorded_at - stat.st_mtime_ns > RACY_NS


def validated_before(
    catalog: VersionCatalog, dataset: str, file: Path, expectations: str
) -> Unchanged | None:
    """The recorded version the file still is, if that version passed exactly these
    expectations and its DVC pointer is the one beside the file; else None (validate it).

    The file is not read when its size, mtime, ctime and inode are those recorded; a file of
    the recorded size whose stat differs is hashed (a touched or copied-back file is still the
    version it was); a file of another size has changed.
    """
    stat = file_stat(file)
    if stat is None:
        return None
    candidates = [v for v in catalog.validations(dataset, expectations) if v.size == stat.st_size]
    if not candidates:
        return None
    rehashed = False
    match = next((v for v in candidates if _stat_matches(v, stat)), None)
    if match is None:
        md5 = _file_md5(file)
        match = next((v for v in candidates if v.md5 == md5), None)
        if match is None:
            return None
        rehashed = True
    version = next((v for v in catalog.versions(dataset) if v.md5 == match.md5), None)
    if version is None or _pointer_md5(pointer_path(file)) != match.md5:
        return None  # not (or no longer) what DVC tracks beside it: version it again
    after = file_stat(file)
    if after is None or _signature(after) != _signature(stat):
        return None  # changed while it was being recognised
    if rehashed:  # the new stat, so the next run need not hash it again
        match = replace(
            match,
            size=stat.st_size,
            mtime_ns=stat.st_mtime_ns,
            ctime_ns=stat.st_ctime_ns,
            inode=stat.st_ino,
            stat_at=_now(),
        )
        catalog.record_validation(match)
    return Unchanged(version, match, rehashed)


def record_validated(
    catalog: VersionCatalog,
    version: DataVersion,
    file: Path,
    validated_md5: str | None,
    expectations: str,
    counts: tuple[int, int],
    flow_run_id: str | None,
) -> bool:
    """Record that `version` passed `expectations` (`counts`: rows, expectations evaluated),
    with the file's stat now. Only when `validated_md5`, the file's md5 taken before it was
    validated, is the version's: a file written to while it was validated and versioned is
    recorded as nothing (the next run validates it). False when not recorded."""
    stat = file_stat(file)
    if stat is None or validated_md5 != version.md5:
        return False
    now = _now()
    catalog.record_validation(
        Validated(
            dataset=version.dataset,
            md5=version.md5,
            expectations=expectations,
            size=stat.st_size,
            mtime_ns=stat.st_mtime_ns,
            ctime_ns=stat.st_ctime_ns,
            inode=stat.st_ino,
            rows=counts[0],
            evaluated=counts[1],
            validated_at=now,
            flow_run_id=flow_run_id,
            stat_at=now,
        )
    )
    return True


def _signature(stat: os.stat_result) -> tuple[int, int, int, int]:
    return (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _pointer_md5(path: Path) -> str | None:
    """The md5 a DVC pointer records for its one output (without parsing all of its YAML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    found = re.search(r"^\s*-?\s*md5:\s*['\"]?([0-9a-f]{32})\b", text, flags=re.M)
    return found.group(1) if found else None


def expectations_digest(step: DatasetStep) -> str:
    """What a validation's outcome depends on: the dataset's compiled expectations, columns and
    read options (everything of its step but its name, description, schedule and tasks), and
    the Great Expectations version. Another digest means validating again."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        gx = version("great_expectations")
    except PackageNotFoundError:
        gx = "not installed"
    rules = step.model_dump(
        mode="json", exclude={"id", "name", "description", "schedule", "needs", "tasks", "version"}
    )
    payload = json.dumps({"step": rules, "great_expectations": gx}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class VersionCatalog:
    """SQLite table of dataset versions, one row per (dataset, md5), in order of first sight."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(
                """CREATE TABLE IF NOT EXISTS dataset_versions (
                    dataset TEXT NOT NULL, md5 TEXT NOT NULL, size INTEGER NOT NULL,
                    rows INTEGER, path TEXT NOT NULL, created_at TEXT NOT NULL,
                    flow_run_id TEXT, remote TEXT NOT NULL, pointer TEXT NOT NULL,
                    PRIMARY KEY (dataset, md5))"""
            )
            db.execute(
                """CREATE TABLE IF NOT EXISTS dataset_validations (
                    dataset TEXT NOT NULL, md5 TEXT NOT NULL, expectations TEXT NOT NULL,
                    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
                    inode INTEGER NOT NULL, rows INTEGER NOT NULL, evaluated INTEGER NOT NULL,
                    validated_at TEXT NOT NULL, flow_run_id TEXT, stat_at TEXT NOT NULL,
                    PRIMARY KEY (dataset, md5, expectations))"""
            )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as db, db:
            yield db

    def record(self, version: DataVersion) -> bool:
        """Add a version; False when this content was already recorded."""
        with self._connect() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO dataset_versions VALUES (?,?,?,?,?,?,?,?,?)",
                tuple(asdict(version).values()),
            )
            return cursor.rowcount == 1

    def versions(self, dataset: str) -> list[DataVersion]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM dataset_versions WHERE dataset = ? ORDER BY created_at, rowid",
                (dataset,),
            ).fetchall()
        return [DataVersion(*row) for row in rows]

    def record_validation(self, validated: Validated) -> None:
        """Remember that this version passed these expectations (and the file's stat then)."""
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO dataset_validations VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                tuple(asdict(validated).values()),
            )

    def validations(self, dataset: str, expectations: str) -> list[Validated]:
        """The versions of the dataset that passed exactly these expectations, newest first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM dataset_validations WHERE dataset = ? AND expectations = ? "
                "ORDER BY validated_at DESC, rowid DESC",
                (dataset, expectations),
            ).fetchall()
        return [Validated(*row) for row in rows]

    def find(self, dataset: str, prefix: str) -> DataVersion:
        versions = self.versions(dataset)
        matches = [v for v in versions if v.md5.startswith(prefix.lower())]
        if not matches:
            known = ", ".join(v.short for v in versions[-5:]) or "none recorded yet"
            raise ShipyardError(
                f"no version '{prefix}' of dataset '{dataset}' (latest: {known})",
                hint=f"list them with `shipyard data versions {dataset}`",
                resource=f"dataset.{dataset}",
            )
        if len(matches) > 1:
            raise ShipyardError(
                f"version prefix '{prefix}' matches {len(matches)} versions of '{dataset}'",
                hint="give more characters of the md5",
                resource=f"dataset.{dataset}",
            )
        return matches[0]


class DvcStore:
    """The project's DVC repository (no git needed) with its cache under the state folder."""

    def __init__(
        self,
        project_dir: Path,
        state_dir: Path,
        remote_url: str,
        remote_options: dict[str, str] | None = None,
    ) -> None:
        self.project_dir = project_dir
        self.layout = StateLayout(state_dir)
        self.remote_url = remote_url
        self.remote_options = remote_options or {}

    def _open(self) -> Repo:
        from dvc.repo import Repo

        _dvc_logs_through_logging()
        if not (self.project_dir / ".dvc").is_dir():
            Repo.init(str(self.project_dir), no_scm=True, force=True).close()
        repo = Repo(str(self.project_dir))
        with repo.config.edit("local") as conf:
            conf["cache"]["dir"] = str(self.layout.dvc_cache)
            conf["core"]["remote"] = REMOTE_NAME
            conf["remote"][REMOTE_NAME] = {"url": self._url(), **self.remote_options}
        repo.close()
        return Repo(str(self.project_dir))

    def _url(self) -> str:
        url = self.remote_url
        if "://" not in url:
            Path(url).mkdir(parents=True, exist_ok=True)
        return url

    @contextmanager
    def repo(self) -> Iterator[Repo]:
        from dvc.exceptions import DvcException

        try:
            repo = self._open()
        except DvcException as exc:
            raise ShipyardError(
                f"cannot open the DVC repository in {self.project_dir}: {exc}",
                hint="check .dvc/config and .dvc/config.local, or remove .dvc/ to start afresh",
            ) from exc
        try:
            yield repo
        finally:
            repo.close()

    def add(self, file: Path) -> dict[str, Any]:
        """Track the file; returns the pointer (md5, size, path) DVC wrote beside it."""
        with self.repo() as repo:
            repo.add([str(file)])
        return read_pointer(pointer_path(file))

    def push(self, file: Path, resource: str) -> None:
        """Upload the file's content to the remote, retrying transient failures."""

        from shipyard.retry import retrying

        def push() -> None:
            with self.repo() as repo:
                repo.push(targets=[str(pointer_path(file))], remote=REMOTE_NAME)

        try:
            retrying(push, what=f"dvc push to {self.remote_url}", retry_on=(Exception,))
        except Exception as exc:  # remote plugins raise their own types (botocore, gcsfs, ...)
            raise ServiceUnavailable(
                f"could not push to the DVC remote '{self.remote_url}': {exc}",
                hint="check the remote URL and credentials in the profile (or the DVC remote "
                "block in the Prefect UI); the file is safe in the local DVC cache and the "
                "next run pushes it",
                resource=resource,
            ) from exc

    def checkout(self, file: Path, pointer: str, resource: str) -> None:
        """Write an earlier pointer and bring its bytes back (from the cache or the remote)."""
        target = pointer_path(file)
        from shipyard.retry import retrying

        current = target.read_text(encoding="utf-8") if target.exists() else None
        target.write_text(pointer, encoding="utf-8")
        try:
            with self.repo() as repo:
                retrying(
                    lambda: repo.pull(targets=[str(target)], remote=REMOTE_NAME, force=True),
                    what=f"dvc pull from {self.remote_url}",
                    retry_on=(Exception,),
                )
        except Exception as exc:  # remote plugins raise their own types (botocore, gcsfs, ...)
            if current is not None:
                target.write_text(current, encoding="utf-8")  # the pointer matches the file again
            raise ServiceUnavailable(
                f"could not bring back the version from the DVC remote '{self.remote_url}': {exc}",
                hint="check that the remote is reachable; the current file was left in place",
                resource=resource,
            ) from exc


def pointer_path(file: Path) -> Path:
    return file.with_name(file.name + ".dvc")


def read_pointer(path: Path) -> dict[str, Any]:
    import yaml

    out = yaml.safe_load(path.read_text(encoding="utf-8"))["outs"][0]
    return {
        "md5": out["md5"],
        "size": int(out["size"]),
        "path": out["path"],
        "pointer": path.read_text(encoding="utf-8"),
    }


def version_file(
    store: DvcStore,
    catalog: VersionCatalog,
    dataset: str,
    file: Path,
    rows: int | None,
    flow_run_id: str | None = None,
) -> tuple[DataVersion, bool]:
    """Track, push and record the file; returns the version and whether it is new."""
    resource = f"dataset.{dataset}"
    pointer = store.add(file)
    store.push(file, resource)
    version = DataVersion(
        dataset=dataset,
        md5=pointer["md5"],
        size=pointer["size"],
        rows=rows,
        path=str(file.relative_to(store.project_dir)),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        flow_run_id=flow_run_id,
        remote=store.remote_url,
        pointer=pointer["pointer"],
    )
    is_new = catalog.record(version)
    if not is_new:
        version = next(v for v in catalog.versions(dataset) if v.md5 == version.md5)
    return version, is_new


def restore_version(
    store: DvcStore, catalog: VersionCatalog, dataset: str, file: Path, prefix: str
) -> tuple[DataVersion, DataVersion | None]:
    """Bring back an earlier version; the current content is versioned first so nothing is lost."""
    wanted = catalog.find(dataset, prefix)
    saved: DataVersion | None = None
    if file.exists():
        saved, _ = version_file(store, catalog, dataset, file, rows=None)
        if saved.md5 == wanted.md5:
            return wanted, None
    store.checkout(file, wanted.pointer, f"dataset.{dataset}")
    return wanted, saved


# -- CLI --------------------------------------------------------------------------------------


def _store_for(plan: Plan) -> tuple[DvcStore, VersionCatalog]:
    from shipyard.secrets import resolve

    runtime = plan.runtime
    remote = plan.blocks.dvc_remote
    options = {k: resolve(v) or "" for k, v in remote.options.items()}
    store = DvcStore(Path(runtime.project_dir), Path(runtime.state_dir), remote.url, options)
    return store, VersionCatalog(StateLayout(runtime.state_dir).catalog)


def _dataset_file(plan: Plan, dataset: str, restoring: bool = False) -> Path | None:
    """The file a dataset's versions are of: its own, a SQL dataset's snapshot, or None for a
    SQL dataset versioned by content hash (which `restoring` refuses: there is no copy)."""
    from shipyard.compiler import DatasetStep

    step = plan.named(DatasetStep, dataset)
    if step.path is not None:
        return Path(plan.runtime.project_dir) / step.path
    if step.version_mode != "snapshot":
        if not restoring:
            return None
        raise ShipyardError(
            f"dataset '{dataset}' is versioned by the content hash of its SQL result: its "
            "versions record what the database held, not a copy of it to bring back",
            hint="set `versioning: {mode: snapshot}` on the dataset to keep restorable copies",
            resource=f"dataset.{dataset}",
        )
    from shipyard.data.engines import snapshot_file

    return snapshot_file(plan, step)


def print_versions(plan: Plan, dataset: str, as_json: bool = False) -> int:
    file = _dataset_file(plan, dataset)
    catalog = VersionCatalog(StateLayout(plan.runtime.state_dir).catalog)
    versions = catalog.versions(dataset)
    # the file's own bytes decide which version is current, not the DVC pointer beside it: a
    # file edited (or replaced) since it was versioned is none of the recorded versions
    current = _file_md5(file) if file else None
    if as_json:
        print(json.dumps([{**asdict(v), "current": v.md5 == current} for v in versions], indent=2))
        return 0
    if not versions:
        print(
            f"no versions of '{dataset}' recorded yet: run `shipyard run validate-dataset "
            f"{dataset}`",
            file=sys.stderr,
        )
        return 0
    print(f"{'version':<12} {'created (UTC)':<26} {'rows':>8} {'bytes':>10}  flow run")
    for v in versions:
        mark = "*" if v.md5 == current else " "
        rows = "" if v.rows is None else str(v.rows)
        print(
            f"{mark}{v.short:<11} {v.created_at:<26} {rows:>8} {v.size:>10}  {v.flow_run_id or ''}"
        )
    if file is None:  # a SQL dataset's content hashes: no file to compare
        return 0
    shown = file.relative_to(plan.runtime.project_dir)
    if current is None:
        print(
            f"\nthe file {shown} is missing; restore a version with "
            f"`shipyard data restore {dataset} <version>`"
        )
    elif not any(v.md5 == current for v in versions):
        print(
            f"\nthe file on disk ({shown}, md5 {current[:10]}) matches no recorded version: it "
            f"changed since it was last versioned; `shipyard run validate-dataset {dataset}` "
            f"checks and versions it, `shipyard data restore {dataset} <version>` brings one back"
        )
    else:
        print(
            f"\n* = the file on disk ({shown}); restore another with "
            f"`shipyard data restore {dataset} <version>`"
        )
    return 0


def _file_md5(path: Path) -> str | None:
    """The md5 of a file's bytes (what DVC records for it), or None when there is no file."""
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    return digest.hexdigest()


def restore_command(plan: Plan, dataset: str, prefix: str) -> int:
    file = _dataset_file(plan, dataset, restoring=True)
    assert file is not None
    store, catalog = _store_for(plan)
    wanted, saved = restore_version(store, catalog, dataset, file, prefix)
    if saved is None:
        print(f"'{file.name}' already is version {wanted.short}; nothing to do")
        return 0
    print(
        f"restored {file.relative_to(plan.runtime.project_dir)} to version {wanted.short} "
        f"({wanted.size} bytes, recorded {wanted.created_at})"
    )
    print(
        f"the content it replaced is kept as version {saved.short}: "
        f"`shipyard data restore {dataset} {saved.short}` brings it back"
    )
    return 0
