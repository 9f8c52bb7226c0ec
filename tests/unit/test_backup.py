"""Backups on a made-up state folder: the archive and its manifest, verification before anything
is touched (a flipped byte, another project, a missing part), restore with the state before
kept aside and rolled back on error, retention, and the compiled backup-state deployment."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import threading
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import SPEC, compile_spec, free_port

from shipyard.audit import AuditLog
from shipyard.backup import archive, parts, restore
from shipyard.backup.archive import create_backup, list_backups, prune_backups, verify_archive
from shipyard.backup.retention import new_id, to_prune
from shipyard.backup.store import LocalStore, open_store
from shipyard.compiler import Plan
from shipyard.compiler.backup import BackupStep
from shipyard.errors import ShipyardError
from shipyard.settings import StateLayout

MD5 = "0123456789abcdef0123456789abcdef"
POINTER = f"outs:\n- md5: {MD5}\n  size: 10\n  hash: md5\n  path: customers.parquet\n"


def _tree(folder: Path) -> dict[str, str]:
    """Every file under a folder with the sha256 of its bytes; of a SQLite database, of its
    SQL dump (a copy through the backup API holds the same rows in other bytes)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.endswith(("-wal", "-shm")):
            continue
        if parts.is_sqlite(path):
            with closing(sqlite3.connect(path)) as db:
                data = "\n".join(db.iterdump()).encode()
        else:
            data = path.read_bytes()
        found[path.relative_to(folder).as_posix()] = hashlib.sha256(data).hexdigest()
    return found


def _state(plan: Plan) -> Path:
    """A state folder as runs leave it: SQLite databases, folders, pid files, DVC objects."""
    layout = StateLayout(plan.runtime.state_dir)
    AuditLog(layout.catalog).record("models.promote", "model.churn", reason="unit test")
    with closing(sqlite3.connect(layout.catalog)) as db, db:
        db.execute("CREATE TABLE dataset_versions (dataset TEXT, md5 TEXT)")
        db.execute("INSERT INTO dataset_versions VALUES ('customers', ?)", (MD5,))
    (layout.mlflow / "artifacts" / "1").mkdir(parents=True)
    (layout.mlflow / "artifacts" / "1" / "model.pkl").write_bytes(os.urandom(4096))
    with closing(sqlite3.connect(layout.mlflow / "mlflow.db")) as db, db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO runs (name) VALUES (?)", [(f"run {i}",) for i in range(50)])
    (layout.bentoml_home / "bentos" / "churn-api").mkdir(parents=True)
    (layout.bentoml_home / "bentos" / "churn-api" / "bento.yaml").write_text("service: x\n")
    layout.run.mkdir()
    (layout.run / "gone.pid").write_text("999999999")
    layout.dvc_cache.mkdir()
    (layout.dvc_cache / "object").write_text("cached")
    remote_object = layout.dvc_remote / parts.object_key(MD5)
    remote_object.parent.mkdir(parents=True)
    remote_object.write_text("0123456789")
    project = Path(plan.runtime.project_dir)
    (project / "data" / "customers.parquet.dvc").write_text(POINTER)
    return layout.root


@pytest.fixture
def plan(make_project: Callable[..., Path], no_state_dir_override: None) -> Plan:
    spec = make_project(rows=0)
    plan = compile_spec(spec)
    (spec.parent / "data").mkdir(exist_ok=True)
    _state(plan)
    return plan


@pytest.fixture
def store(tmp_path_factory: pytest.TempPathFactory) -> LocalStore:
    return LocalStore(tmp_path_factory.mktemp("backups"))


def _archive(store: LocalStore, plan: Plan, backup_id: str) -> Path:
    return store.folder / archive.archive_name(plan.project, backup_id)


def test_a_backup_holds_every_part_with_its_checksum(plan: Plan, store: LocalStore) -> None:
    created = create_backup(plan, store, note="first")
    m = created.manifest
    assert (m.project, m.profile, m.note, m.format) == ("test-project", "local", "first", 1)
    names = {p.name for p in m.parts}
    assert names == {
        "state/bentoml",
        "state/catalog.sqlite",
        "state/dvc-remote",
        "state/mlflow",
        "dvc-pointers",
    }  # not run/ (pid files) nor dvc-cache/ (the objects are on the remote)
    assert m.dvc == {
        "remote": str(StateLayout(plan.runtime.state_dir).dvc_remote),
        "objects": 1,
        "missing": [],
        "checked": True,
    }
    mlflow = next(p for p in m.parts if p.name == "state/mlflow")
    assert mlflow.detail["sqlite"] == ["mlflow/mlflow.db"]
    path = _archive(store, plan, m.id)
    with tarfile.open(path) as tar:
        assert tar.getnames()[0] == "manifest.json"
        for part in m.parts:
            data = tar.extractfile(part.member).read()  # type: ignore[union-attr]
            assert hashlib.sha256(data).hexdigest() == part.sha256 and len(data) == part.size
    assert verify_archive(path, plan.project) == m
    [(backup_id, listed)] = list_backups(store, plan.project)
    assert backup_id == m.id and listed is not None and listed.archive_size == path.stat().st_size


def test_a_sqlite_database_is_copied_consistently_while_it_is_written(tmp_path: Path) -> None:
    source = tmp_path / "live.sqlite"
    with closing(sqlite3.connect(source)) as db, db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a INT, b INT)")
    stop = threading.Event()

    def write() -> None:
        with closing(sqlite3.connect(source, timeout=30)) as db:
            i = 0
            while not stop.is_set():
                with db:  # one transaction: a and b always equal in any committed state
                    db.execute("INSERT INTO t (a, b) VALUES (?, ?)", (i, i))
                i += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for n in range(5):
            copy = tmp_path / f"copy{n}.sqlite"
            parts.sqlite_copy(source, copy)
            with closing(sqlite3.connect(copy)) as db:
                assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
                assert db.execute("SELECT count(*) FROM t WHERE a != b").fetchone() == (0,)
    finally:
        stop.set()
        writer.join()


WRITER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
db.execute("PRAGMA synchronous=OFF")  # as fast as it can: a write between every two steps
print("writing", flush=True)
while True:
    with db:
        db.execute("INSERT INTO t (body) VALUES (?)", ("y" * 200,))
"""


def test_a_database_larger_than_a_step_is_copied_under_a_steady_writer(tmp_path: Path) -> None:
    """The copy finishes while another process keeps committing (it used to start again after
    each 16 MB step that a write came between, without end, its WAL growing)."""
    source = tmp_path / "log.sqlite"
    with closing(sqlite3.connect(source)) as db, db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
        db.executemany("INSERT INTO t (body) VALUES (?)", [("x" * 200,)] * 120_000)  # ~6k pages
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(source)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None and writer.stdout.readline() == "writing\n"
    timer = threading.Timer(60, writer.kill)  # a copy that never ends: the writer is stopped
    timer.start()
    try:
        parts.sqlite_copy(source, tmp_path / "copy.sqlite")
        finished_while_written = writer.poll() is None
    finally:
        timer.cancel()
        writer.kill()
        writer.wait()
    assert finished_while_written
    with closing(sqlite3.connect(tmp_path / "copy.sqlite")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        count, top = db.execute("SELECT count(*), max(id) FROM t").fetchone()
        assert count == top >= 120_000  # rows 1..N, none missing


def test_restore_brings_a_lost_state_folder_back(plan: Plan, store: LocalStore) -> None:
    state = Path(plan.runtime.state_dir)
    pointer = Path(plan.runtime.project_dir) / "data" / "customers.parquet.dvc"
    before = _tree(state)
    created = create_backup(plan, store)
    import shutil

    shutil.rmtree(state)
    pointer.unlink()
    path = _archive(store, plan, created.manifest.id)
    restored = restore.restore_backup(plan, path, verify_archive(path, plan.project))
    assert restored.aside is None
    after = _tree(state)
    expected = {k: v for k, v in before.items() if not k.startswith(("run/", "dvc-cache/"))}
    assert {k: v for k, v in after.items() if k != "catalog.sqlite"} == {
        k: v for k, v in expected.items() if k != "catalog.sqlite"
    }
    with closing(sqlite3.connect(state / "mlflow" / "mlflow.db")) as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (50,)
    entries = AuditLog(StateLayout(state).catalog).entries()
    assert [e.action for e in entries] == ["models.promote", "backup.restore"]
    assert pointer.read_text() == POINTER


def test_restore_over_a_state_keeps_it_aside(plan: Plan, store: LocalStore) -> None:
    state = Path(plan.runtime.state_dir)
    created = create_backup(plan, store)
    AuditLog(StateLayout(state).catalog).record("models.promote", "model.churn", reason="later")
    later = _tree(state)
    path = _archive(store, plan, created.manifest.id)
    restored = restore.restore_backup(plan, path, verify_archive(path, plan.project))
    assert restored.aside is not None and restored.aside.name.startswith(
        ".shipyard.before-restore-"
    )
    kept = _tree(restored.aside)
    assert {k: v for k, v in kept.items() if not k.startswith("before-restore/")} == later
    assert "before-restore/pointers.json" in kept
    assert len(AuditLog(StateLayout(state).catalog).entries()) == 2  # promote, restore


def _flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_flipped_byte_is_refused_and_nothing_is_touched(plan: Plan, store: LocalStore) -> None:
    state = Path(plan.runtime.state_dir)
    created = create_backup(plan, store)
    path = _archive(store, plan, created.manifest.id)
    with tarfile.open(path) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("state-mlflow.tar.gz"))
    _flip_byte(path, member.offset_data + member.size // 2)
    before = _tree(state)
    with pytest.raises(ShipyardError, match=r"corrupt: part state/mlflow has sha256"):
        verify_archive(path, plan.project)
    [(_, listed)] = list_backups(store, plan.project)
    with pytest.raises(ShipyardError, match=r"is not the .* it was written with"):
        verify_archive(path, plan.project, listed)
    from shipyard.backup.commands import restore as restore_command

    # the refusal names the archive as it is listed, or as the user gave it
    with pytest.raises(ShipyardError, match=f"backup {path.name} is corrupt"):
        restore_command(plan, created.manifest.id, str(store.folder), yes=True)
    with pytest.raises(ShipyardError, match=f"backup {path.name} is corrupt"):
        restore_command(plan, str(path), None, yes=True)
    assert _tree(state) == before
    assert not list(state.parent.glob(".shipyard.before-restore-*"))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "corrupt"),
        (lambda p: p.write_bytes(b"not a tar at all"), "not a readable tar archive"),
    ],
)
def test_a_truncated_or_foreign_file_is_refused(
    plan: Plan, store: LocalStore, damage: Callable[[Path], None], message: str
) -> None:
    created = create_backup(plan, store)
    path = _archive(store, plan, created.manifest.id)
    damage(path)
    with pytest.raises(ShipyardError, match=message):
        verify_archive(path, plan.project)


def test_a_manifest_listing_a_part_the_archive_lacks_is_refused(
    plan: Plan, store: LocalStore, tmp_path: Path
) -> None:
    created = create_backup(plan, store)
    m = created.manifest
    extra = archive.PartEntry(
        name="state/extra", kind="files", member="parts/extra.tar.gz", sha256="0" * 64, size=1
    )
    forged = m.model_copy(update={"parts": (*m.parts, extra)})
    path = tmp_path / "forged.tar"
    source = _archive(store, plan, m.id)
    with tarfile.open(source) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    archive.write_archive(
        path, forged, {p.member: tmp_path / "unpacked" / p.member for p in m.parts}
    )
    with pytest.raises(ShipyardError, match=r"missing: \['parts/extra.tar.gz'\]"):
        verify_archive(path, plan.project)


def test_another_projects_backup_is_refused(plan: Plan, store: LocalStore) -> None:
    created = create_backup(plan, store)
    path = _archive(store, plan, created.manifest.id)
    with pytest.raises(ShipyardError, match="is of project 'test-project', not 'other'") as e:
        verify_archive(path, "other")
    assert e.value.hint and "backup list" in e.value.hint
    assert list_backups(store, "other") == [] and list_backups(store, "test") == []


def test_restore_is_refused_while_a_process_of_the_project_runs(
    plan: Plan, store: LocalStore
) -> None:
    state = Path(plan.runtime.state_dir)
    created = create_backup(plan, store)
    (StateLayout(state).run / "prefect-server.pid").write_text(str(os.getpid()))
    (StateLayout(state).run / "service-churn-api.pid").write_text(str(os.getpid()))
    before = _tree(state)
    path = _archive(store, plan, created.manifest.id)
    with pytest.raises(
        ShipyardError, match=rf"processes of this project run: prefect-server \(pid {os.getpid()}\)"
    ) as refused:
        restore.restore_backup(plan, path, verify_archive(path, plan.project))
    # each running process with the command that stops it; the stale gone.pid is not named
    assert refused.value.hint is not None
    assert "`shipyard server stop`, `shipyard serve churn-api --stop`" in refused.value.hint
    assert "gone" not in str(refused.value)
    assert _tree(state) == before


def test_a_failed_restore_rolls_back_to_the_state_before(
    plan: Plan, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = Path(plan.runtime.state_dir)
    pointer = Path(plan.runtime.project_dir) / "data" / "customers.parquet.dvc"
    created = create_backup(plan, store)
    pointer.write_text(POINTER.replace(MD5, "f" * 32))
    AuditLog(StateLayout(state).catalog).record("models.promote", "model.churn", reason="later")
    before = _tree(state)
    unpacked: list[Path] = []
    real = parts.extract_files

    def fail_on_third(source: Path, target: Path) -> None:
        unpacked.append(source)
        if len(unpacked) == 3:
            raise OSError("disk full")
        real(source, target)

    monkeypatch.setattr(parts, "extract_files", fail_on_third)
    path = _archive(store, plan, created.manifest.id)
    with pytest.raises(OSError, match="disk full"):
        restore.restore_backup(plan, path, verify_archive(path, plan.project))
    assert _tree(state) == before
    assert "f" * 32 in pointer.read_text()
    assert not list(state.parent.glob(".shipyard.before-restore-*"))
    assert not list(state.parent.glob(".shipyard-restore-*"))


def test_retention_keeps_the_newest_by_count_or_age() -> None:
    now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    ids = [new_id(now - timedelta(days=d)) for d in (20, 10, 3, 1, 0)]
    assert to_prune(ids, keep_last=2) == ids[:3]
    assert to_prune(ids, keep_seconds=14 * 86400, now=now) == ids[:1]
    assert to_prune(ids, keep_last=4, keep_seconds=2 * 86400, now=now) == ids[:3]
    old = [new_id(now - timedelta(days=d)) for d in (30, 20)]
    assert to_prune(old, keep_seconds=86400, now=now) == old[:1]  # the newest stays
    assert to_prune([], keep_last=1) == []
    same_second = [ids[-1], ids[-1] + "-002"]
    assert to_prune(same_second, keep_last=1) == [ids[-1]]


def test_prune_deletes_this_projects_backups_past_retention(plan: Plan, store: LocalStore) -> None:
    times = [datetime(2026, 12, d, 2, tzinfo=UTC) for d in (1, 2, 3)]
    made = [create_backup(plan, store, now=t).manifest.id for t in times]
    other = store.folder / "other-project-20261201T020000Z.tar"
    other.write_text("another project's")
    pruned = prune_backups(store, plan.project, keep_last=1, keep_seconds=None)
    assert pruned == made[:2]
    assert [i for i, _ in list_backups(store, plan.project)] == made[2:]
    assert other.exists()
    assert sorted(store.names()) == sorted(
        [other.name, f"test-project-{made[2]}.tar", f"test-project-{made[2]}.json"]
    )


def test_two_backups_in_one_second_get_distinct_sortable_ids(plan: Plan, store: LocalStore) -> None:
    now = datetime(2026, 12, 2, 2, tzinfo=UTC)
    first = create_backup(plan, store, now=now).manifest.id
    second = create_backup(plan, store, now=now).manifest.id
    assert (first, second) == ("20261202T020000Z", "20261202T020000Z-002")
    assert [i for i, _ in list_backups(store, plan.project)] == [first, second]


def test_the_default_location_is_beside_the_embedded_state_folder(plan: Plan) -> None:
    """Backups outlive the state folder: an embedded remote lives inside it, so they go beside."""
    from shipyard.backup.commands import create, default_location

    layout = StateLayout(plan.runtime.state_dir)
    beside = layout.root.parent / f"{layout.root.name}-backups"
    assert default_location(plan) == str(beside)
    created = create(plan)
    assert not any("inside the state folder" in w for w in created.warnings)
    assert (beside / created.archive).is_file()
    assert AuditLog(layout.catalog).entries()[-1].action == "backup.create"


def test_a_backup_kept_inside_the_state_folder_says_so_and_is_not_backed_up(plan: Plan) -> None:
    from shipyard.backup.commands import create, store_for

    layout = StateLayout(plan.runtime.state_dir)
    inside = str(layout.dvc_remote / "backups")
    created = create(plan, inside)
    assert any("inside the state folder" in w for w in created.warnings)
    assert (layout.dvc_remote / "backups" / created.archive).is_file()
    again = create_backup(plan, store_for(plan, inside))  # earlier backups are not backed up
    remote = next(p for p in again.manifest.parts if p.name == "state/dvc-remote")
    with tarfile.open(layout.dvc_remote / "backups" / again.archive) as tar:
        inner = tar.extractfile(remote.member)
        assert inner is not None
        with tarfile.open(fileobj=inner, mode="r:gz") as files:
            assert not [n for n in files.getnames() if "backups" in n]


def test_a_missing_dvc_object_is_a_warning_in_the_manifest(plan: Plan, store: LocalStore) -> None:
    layout = StateLayout(plan.runtime.state_dir)
    (layout.dvc_remote / parts.object_key(MD5)).unlink()
    created = create_backup(plan, store)
    assert created.manifest.dvc["missing"] == [MD5]
    assert any("1 of 1 dataset versions are missing" in w for w in created.warnings)


def test_restore_without_yes_off_a_terminal_asks_for_it(plan: Plan, store: LocalStore) -> None:
    from shipyard.backup.commands import restore as restore_command

    created = create_backup(plan, store)
    with pytest.raises(ShipyardError, match="replaces the state") as e:
        restore_command(plan, created.manifest.id, str(store.folder), yes=False)
    assert e.value.hint and "--yes" in e.value.hint
    with pytest.raises(ShipyardError, match="no backup 'nope'"):
        restore_command(plan, "nope", str(store.folder), yes=True)


def test_unsupported_locations_are_refused() -> None:
    with pytest.raises(ShipyardError, match="gs:// scheme is not supported"):
        open_store("gs://bucket/backups")
    assert isinstance(open_store("file:///tmp/x"), LocalStore)


def test_s3_backups_round_trip_through_moto(plan: Plan) -> None:
    from moto import mock_aws

    with mock_aws():
        import boto3

        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="shipyard-backups")
        s3 = open_store("s3://shipyard-backups/team/backups", {"region": "us-east-1"})
        created = create_backup(plan, s3, note="to s3")
        [(backup_id, listed)] = list_backups(s3, plan.project)
        assert backup_id == created.manifest.id and listed is not None
        assert listed.manifest.note == "to s3"
        assert prune_backups(s3, plan.project, keep_last=1, keep_seconds=None) == []


# -- the compiled deployment ------------------------------------------------------------------


def _spec_with(tmp_path: Path, backup: str) -> Path:
    text = SPEC.format(port=free_port()).replace(
        "    prefect: {port:", f"    backup: {backup}\n    prefect: {{port:"
    )
    spec = tmp_path / "pipelines.yaml"
    spec.write_text(text)
    return spec


def test_a_profile_backup_compiles_to_a_scheduled_deployment(
    tmp_path: Path, no_state_dir_override: None
) -> None:
    plan = compile_spec(_spec_with(tmp_path, '{schedule: "0 2 * * *", retention: 14d}'))
    step = plan.named(BackupStep, "state")
    assert (step.keep_last, step.keep_seconds) == (None, 14 * 86400)
    assert step.to == str(tmp_path / ".shipyard-backups")  # beside the state folder, not in it
    assert step.tasks == ("snapshot", "prune")
    deployment = plan.deployment("backup-state", "state")
    assert deployment is not None and deployment.schedule == "0 2 * * *"
    assert deployment.parameters == {"backup": "state"}
    assert deployment.entrypoint == "flows/backup_state.py:backup_state"

    counted = compile_spec(
        _spec_with(tmp_path, '{schedule: "@daily", retention: 3, to: s3://b/bk}')
    ).named(BackupStep, "state")
    assert (counted.keep_last, counted.keep_seconds, counted.to) == (3, None, "s3://b/bk")
    none = compile_spec(_spec_with(tmp_path, "null"))
    assert not none.steps_of(BackupStep)


def test_a_retention_keeping_nothing_is_a_spec_error(tmp_path: Path) -> None:
    from shipyard.project import load_project

    project = load_project(_spec_with(tmp_path, '{schedule: "0 2 * * *", retention: 0}'))
    assert not project.ok
    assert "retention 0 keeps no backup" in project.render()


def test_manifest_json_of_a_listing_is_what_list_prints(plan: Plan, store: LocalStore) -> None:
    from shipyard.backup.commands import backups_table

    created = create_backup(plan, store, note="nightly")
    found = list_backups(store, plan.project)
    (store.folder / archive.listing_name(plan.project, "20200101T000000Z")).write_text("{")
    (store.folder / archive.archive_name(plan.project, "20200101T000000Z")).write_text("x")
    table = backups_table(list_backups(store, plan.project))
    assert "(its listing cannot be read)" in table
    assert created.manifest.id in table and "nightly" in table and "5" in table
    listing = json.loads(
        (store.folder / archive.listing_name(plan.project, created.manifest.id)).read_text()
    )
    assert listing["manifest"]["id"] == created.manifest.id == found[0][0]


@pytest.mark.parametrize(
    "url, libpq",
    [
        ("postgresql+asyncpg://u@h:5432/prefect", "postgresql://u@h:5432/prefect"),
        ("postgresql+asyncpg://u@h/p?ssl=require", "postgresql://u@h/p?sslmode=require"),
        ("postgresql://u:pw@h/s?sslmode=verify-full", "postgresql://u:pw@h/s?sslmode=verify-full"),
    ],
)
def test_database_urls_are_given_to_pg_dump_as_libpq_reads_them(url: str, libpq: str) -> None:
    assert parts.postgres_url(url) == libpq


def test_every_postgresql_database_of_the_profile_is_found_once(
    tmp_path: Path, no_state_dir_override: None
) -> None:
    text = SPEC.format(port=free_port()).replace(
        "    prefect: {port:",
        "    kind: scale-out\n"
        "    serving: {log_database: 'postgresql://pg@db:5432/serving'}\n"
        "    mlflow: {backend_store_uri: 'postgresql://pg@db:5432/mlflow'}\n"
        "    prefect: {database_url: 'postgresql+asyncpg://pg@db:5432/prefect', port:",
    )
    text += """
models:
  churn:
    task: classification
    dataset: customers
    target: churned
    features: [tenure_months]
    estimator: {class: sklearn.linear_model.LogisticRegression}
services:
  churn-api: {model: churn}
"""
    (tmp_path / "pipelines.yaml").write_text(text)
    found = parts.postgres_databases(compile_spec(tmp_path / "pipelines.yaml"))
    assert found == {
        "postgresql://pg@db:5432/prefect": ["prefect"],
        "postgresql://pg@db:5432/mlflow": ["mlflow"],
        "postgresql://pg@db:5432/serving": ["serving.log.churn-api", "serving.control"],
    }


def test_state_a_backup_cannot_reach_is_named_in_the_manifest(
    tmp_path: Path, no_state_dir_override: None
) -> None:
    from shipyard.backup.archive import skipped_state

    assert skipped_state(compile_spec(_spec_with(tmp_path, "null"))) == []
    text = SPEC.format(port=free_port()).replace(
        "    prefect: {port:",
        "    kind: scale-out\n"
        "    mlflow: {tracking_uri: 'http://mlflow:5000', artifact_root: /data/artifacts}\n"
        "    prefect: {api_url: 'http://prefect:4200/api', port:",
    )
    (tmp_path / "pipelines.yaml").write_text(text)
    notes = skipped_state(compile_spec(tmp_path / "pipelines.yaml"))
    assert notes == [
        "prefect: the external server http://prefect:4200/api backs itself up",
        "mlflow: the external tracking server http://mlflow:5000",
        "mlflow artifacts in /data/artifacts, outside the state folder: back it up too",
    ]


def test_a_restore_failing_before_it_moves_the_state_leaves_the_state_alone(
    plan: Plan, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = Path(plan.runtime.state_dir)
    created = create_backup(plan, store)
    path = _archive(store, plan, created.manifest.id)
    manifest = verify_archive(path, plan.project)
    before = _tree(state)

    def unreachable(url: str, target: Path) -> None:
        raise ShipyardError(f"pg_dump of the PostgreSQL database {url} failed")

    monkeypatch.setattr(
        restore, "_postgres_targets", lambda plan, manifest: {"postgres/x": "postgresql://h/x"}
    )
    monkeypatch.setattr(parts, "dump_postgres", unreachable)
    with pytest.raises(ShipyardError, match="pg_dump"):
        restore.restore_backup(plan, path, manifest)
    assert _tree(state) == before
    assert not list(state.parent.glob(".shipyard.before-restore-*"))


def test_a_failed_restore_removes_the_pointers_it_wrote(
    plan: Plan, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    pointer = Path(plan.runtime.project_dir) / "data" / "customers.parquet.dvc"
    created = create_backup(plan, store)
    pointer.unlink()
    path = _archive(store, plan, created.manifest.id)
    manifest = verify_archive(path, plan.project)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(restore.AuditLog, "record", full)  # after the pointers, the last part
    with pytest.raises(OSError, match="disk full"):
        restore.restore_backup(plan, path, manifest)
    assert not pointer.exists()
