"""The pieces of a project's state and how each is snapshot and put back.

- the state folder, one part per top-level entry (prefect/, mlflow/, bentoml/, feast/,
  serving/, catalog.sqlite, logs/, ...): files as they are, except SQLite databases, which are
  copied through SQLite's online backup API (a consistent copy while services and flows write);
  `run/` (pid files) and `dvc-cache/` (its objects are on the remote) are left out;
- every PostgreSQL database of the profile (Prefect, MLflow, the prediction log and control
  state, the Feast registry), dumped with `pg_dump` in custom format;
- the DVC pointers of the datasets (`<file>.dvc` beside each file); the objects they point to
  live on the DVC remote, which is recorded, and every object is checked to be there.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from contextlib import closing, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import ShipyardError
from shipyard.secrets import redact_url, resolve
from shipyard.settings import StateLayout

if TYPE_CHECKING:
    from shipyard.compiler import Plan

SQLITE_MAGIC = b"SQLite format 3\x00"
SKIPPED_ENTRIES = ("run", "dvc-cache")
"""Top-level entries of the state folder never backed up: pid files of processes that will
not be running after a restore, and DVC's cache (its objects are on the remote)."""
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


@dataclass
class Part:
    """One member of the archive: what it holds and the file written for it."""

    name: str
    kind: str  # files | postgres | pointers
    member: str
    path: Path
    detail: dict[str, Any] = field(default_factory=dict)


# -- the state folder ---------------------------------------------------------------------------


def is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def sqlite_copy(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database: the online backup API in one step, so the
    copy is of one committed state. (In steps, the API starts again from the first page
    whenever another connection writes between two steps: under a steady writer, a database
    larger than one step was never done, while its WAL file grew.) In WAL mode writers go on
    meanwhile; with a rollback journal they wait for the copy (their busy timeout)."""
    target.unlink(missing_ok=True)
    with (
        closing(sqlite3.connect(source, timeout=60)) as src,
        closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


def _files(folder: Path, excluded: list[Path]) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not _inside(here / d, excluded))
        for name in sorted(files):
            path = here / name
            if path.is_file() and not path.is_symlink() and not _inside(path, excluded):
                yield path


def _inside(path: Path, excluded: list[Path]) -> bool:
    return any(path == e or e in path.parents for e in excluded)


def state_entries(state_dir: Path, excluded: list[Path]) -> list[Path]:
    """The top-level entries of the state folder that are backed up."""
    if not state_dir.is_dir():
        return []
    return [
        p
        for p in sorted(state_dir.iterdir())
        if p.name not in SKIPPED_ENTRIES and not _inside(p, excluded) and not p.is_symlink()
    ]


def snapshot_entry(
    state_dir: Path, entry: Path, work: Path, excluded: list[Path], tick: Callable[[str], None]
) -> Part:
    """One top-level entry of the state folder as a .tar.gz, SQLite files copied online."""
    member = f"parts/state-{entry.name.lstrip('.')}.tar.gz"
    target = work / Path(member).name
    scratch = work / "sqlite"
    scratch.mkdir(exist_ok=True)
    databases: list[str] = []
    count = 0
    paths = [entry] if entry.is_file() else list(_files(entry, excluded))
    with tarfile.open(target, "w:gz", compresslevel=6) as tar:
        for path in paths:
            relative = path.relative_to(state_dir).as_posix()
            if path.name.endswith(SQLITE_SIDE_FILES) and is_sqlite(_main_file(path)):
                continue  # the online copy of the database holds what they held
            tick(relative)
            if is_sqlite(path):
                copy = scratch / f"{len(databases)}.sqlite"
                sqlite_copy(path, copy)
                info = tar.gettarinfo(str(copy), arcname=relative)
                info.mtime, info.mode = int(path.stat().st_mtime), path.stat().st_mode & 0o777
                with copy.open("rb") as f:
                    tar.addfile(info, f)
                copy.unlink()
                databases.append(relative)
            else:
                tar.add(str(path), arcname=relative, recursive=False)
            count += 1
    return Part(
        name=f"state/{entry.name}",
        kind="files",
        member=member,
        path=target,
        detail={"files": count, "sqlite": databases},
    )


def _main_file(side: Path) -> Path:
    for suffix in SQLITE_SIDE_FILES:
        if side.name.endswith(suffix):
            return side.with_name(side.name[: -len(suffix)])
    return side


def extract_files(archive: Path, state_dir: Path) -> None:
    """Unpack a files part into the state folder (no absolute paths, no links out of it)."""
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(state_dir, filter="data")


# -- PostgreSQL -------------------------------------------------------------------------------


def postgres_url(url: str) -> str:
    """A libpq URL for pg_dump: SQLAlchemy's driver suffix dropped (postgresql+asyncpg://),
    and asyncpg's `ssl=<mode>` written as libpq's `sslmode=<mode>`."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = [("sslmode" if k == "ssl" else k, v) for k, v in parse_qsl(parts.query, True)]
    scheme = parts.scheme.split("+", 1)[0]
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def postgres_databases(plan: Plan) -> dict[str, list[str]]:
    """Every PostgreSQL database the profile keeps state in: role -> URL; one entry per
    database (roles sharing one database are listed together, the first names it)."""
    from shipyard.compiler import FeatureRepoStep, ServiceStep
    from shipyard.compiler.features import SqlRegistry

    roles: list[tuple[str, str | None]] = []
    if plan.prefect.local:
        roles.append(("prefect", plan.prefect.database_url))
    if plan.mlflow_server is not None:
        roles.append(("mlflow", plan.mlflow_server.backend_store_uri))
    for service in plan.steps_of(ServiceStep):
        roles.append((f"serving.log.{service.name}", service.log_database))
        roles.append(("serving.control", service.control_database))
    for repo in plan.steps_of(FeatureRepoStep):
        if isinstance(repo.registry, SqlRegistry):
            roles.append(("feast.registry", repo.registry.path))
    by_url: dict[str, list[str]] = {}
    for role, url in roles:
        if url and url.split("://", 1)[0].split("+", 1)[0] in ("postgresql", "postgres"):
            resolved = resolve(url) or url
            by_url.setdefault(postgres_url(resolved), []).append(role)
    return by_url


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ShipyardError(
            f"{name} is not installed, and the profile keeps state in PostgreSQL",
            hint="install the PostgreSQL client tools (Debian: apt-get install "
            "postgresql-client), in a version not older than the server",
        )
    return found


def _pg(argv: list[str], url: str, what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=3600)
    if done.returncode != 0:
        raise ShipyardError(
            f"{what} of the PostgreSQL database {redact_url(url)} failed: "
            + (done.stderr.strip().splitlines() or ["no output"])[-1],
            hint="check that the database is reachable with the profile's URL and that the "
            "client tools' version is not older than the server's",
        )


def dump_postgres(url: str, target: Path) -> None:
    """pg_dump in custom format (what pg_restore reads)."""
    _pg([_tool("pg_dump"), "-Fc", "--no-owner", "-f", str(target), "-d", url], url, "pg_dump")


def restore_postgres(url: str, dump: Path) -> None:
    """pg_restore --clean: the database's objects dropped and made again from the dump."""
    _pg(
        [
            _tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "-d",
            url,
            str(dump),
        ],
        url,
        "pg_restore",
    )


def postgres_part(url: str, roles: list[str], work: Path) -> Part:
    member = f"parts/postgres-{roles[0]}.dump"
    target = work / Path(member).name
    dump_postgres(url, target)
    return Part(
        name=f"postgres/{roles[0]}",
        kind="postgres",
        member=member,
        path=target,
        detail={"roles": roles, "database": redact_url(url)},
    )


# -- DVC ------------------------------------------------------------------------------------------


def dataset_pointers(plan: Plan) -> dict[str, str]:
    """Each dataset's `<file>.dvc` pointer that exists, by its path in the project."""
    from shipyard.compiler import DatasetStep

    project = Path(plan.runtime.project_dir)
    found: dict[str, str] = {}
    for step in plan.steps_of(DatasetStep):
        if step.path is None:  # a SQL dataset: its versions are in the catalog
            continue
        pointer = project / (step.path + ".dvc")
        if pointer.is_file():
            found[pointer.relative_to(project).as_posix()] = pointer.read_text(encoding="utf-8")
    return found


def pointers_part(plan: Plan, work: Path) -> Part:
    pointers = dataset_pointers(plan)
    target = work / "dvc-pointers.json"
    target.write_text(json.dumps(pointers, indent=2, sort_keys=True), encoding="utf-8")
    return Part(
        name="dvc-pointers",
        kind="pointers",
        member="parts/dvc-pointers.json",
        path=target,
        detail={"files": sorted(pointers)},
    )


def restore_pointers(project_dir: Path, pointers: dict[str, str]) -> None:
    for relative, text in pointers.items():
        path = (project_dir / relative).resolve()
        if project_dir.resolve() not in path.parents:
            raise ShipyardError(f"the backup's pointer '{relative}' is outside the project")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def pointed_objects(plan: Plan) -> list[str]:
    """The md5 of every dataset version the catalog records and every current pointer."""
    import yaml

    md5s: set[str] = set()
    catalog = StateLayout(plan.runtime.state_dir).catalog
    if catalog.is_file():
        with (
            closing(sqlite3.connect(catalog, timeout=30)) as db,
            suppress(sqlite3.OperationalError),  # no dataset versioned yet
        ):
            md5s |= {row[0] for row in db.execute("SELECT md5 FROM dataset_versions")}
    for text in dataset_pointers(plan).values():
        for out in (yaml.safe_load(text) or {}).get("outs", []):
            if out.get("md5"):
                md5s.add(str(out["md5"]))
    return sorted(md5s)


def object_key(md5: str) -> str:
    """Where DVC 3 keeps an object on a remote."""
    return f"files/md5/{md5[:2]}/{md5[2:]}"


def missing_objects(remote: str, options: dict[str, str], md5s: list[str]) -> list[str] | None:
    """The objects of `md5s` the DVC remote does not hold (None: a remote this cannot look
    into, such as gs:// or azure://, which need their DVC plugin)."""
    if remote.startswith("s3://"):
        from shipyard.backup.store import S3Store

        store = S3Store(remote, options)
        return [m for m in md5s if not store.exists(store._key(object_key(m)))]
    if "://" in remote and not remote.startswith("file://"):
        return None
    folder = Path(remote.removeprefix("file://"))
    return [m for m in md5s if not (folder / object_key(m)).is_file()]
