"""Real state, lost and brought back: a project with a Prefect server, applied deployments, a
versioned dataset, two trained model versions with aliases, a prediction log and audit
entries is backed up, its state folder deleted, and restored from the backup; everything reads
back as it was. And a PostgreSQL database through pg_dump and pg_restore."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from support import (
    MODEL_SPEC,
    SPEC,
    compile_spec,
    fetch_json,
    free_port,
    psql,
    run_shipyard,
    throwaway_database,
)

pytestmark = pytest.mark.integration

SERVICE = """
services:
  churn-api:
    model: churn
    port: {port}
"""


def _ok(result: Any) -> str:
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    return str(result.stdout)


def _registry(spec: Path) -> dict[str, Any]:
    import mlflow

    plan = compile_spec(spec)
    client = mlflow.MlflowClient(plan.blocks.mlflow.tracking_uri)
    found: dict[str, Any] = {}
    for model in client.search_registered_models():
        found[model.name] = {
            "aliases": dict(model.aliases),
            "versions": sorted(
                (v.version, v.run_id, v.source)
                for v in client.search_model_versions(f"name='{model.name}'")
            ),
        }
    return found


def _deployments(api_url: str) -> list[tuple[str, str, Any]]:
    rows = fetch_json(f"{api_url}/deployments/filter", {})
    return sorted(
        (d["name"], d["version"], d["parameters"])  # type: ignore[index]
        for d in rows  # type: ignore[union-attr]
    )


def _predictions(spec: Path) -> list[tuple[Any, ...]]:
    from shipyard.compiler import ServiceStep

    step = compile_spec(spec).named(ServiceStep, "churn-api")
    path = step.log_database.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT * FROM predictions ORDER BY rowid").fetchall()


def _audit(spec: Path) -> list[Any]:
    from shipyard.audit import AuditLog
    from shipyard.settings import StateLayout

    return AuditLog(StateLayout(compile_spec(spec).runtime.state_dir).catalog).entries()


def _log_predictions(spec: Path, count: int) -> None:
    from shipyard.compiler import ServiceStep
    from shipyard.serving.predlog import PredictionLog

    step = compile_spec(spec).named(ServiceStep, "churn-api")
    log = PredictionLog(step.log_database, "churn-api")
    for i in range(count):
        log.log_prediction(f"req-{i}", "stable", "2", {"tenure_months": i}, {"prediction": i % 2})
    log.flush()
    log.close()


def test_state_folder_lost_and_restored_from_a_backup(
    make_project: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    port = free_port()
    text = SPEC.format(port=port) + MODEL_SPEC.format(threshold=">= 0.5")
    text += SERVICE.format(port=free_port())
    spec = make_project(rows=400, spec=text)
    api_url = f"http://127.0.0.1:{port}/api"
    backups = tmp_path_factory.mktemp("backups")
    state = spec.parent / ".shipyard"
    _ok(run_shipyard(spec, "server", "start"))
    try:
        _ok(run_shipyard(spec, "apply"))
        _ok(run_shipyard(spec, "run", "validate-dataset", "customers"))
        _ok(run_shipyard(spec, "run", "train-model", "churn"))
        _ok(run_shipyard(spec, "run", "train-model", "churn", "--force"))
        champion = str(_registry(spec)["test-project.churn"]["aliases"]["champion"])
        other = "1" if champion == "2" else "2"
        _ok(run_shipyard(spec, "models", "promote", "churn", other, "--reason", "the other"))
        _log_predictions(spec, 25)
        before = {
            "registry": _registry(spec),
            "deployments": _deployments(api_url),
            "versions": json.loads(
                _ok(run_shipyard(spec, "data", "versions", "customers", "--json"))
            ),
            "predictions": _predictions(spec),
            "audit": _audit(spec),
        }
        assert str(before["registry"]["test-project.churn"]["aliases"]["champion"]) == other
        assert len(before["predictions"]) == 25 and before["audit"]
        assert len(before["deployments"]) == 3

        # the server runs and writes while the backup is made: SQLite's online backup is
        # consistent all the same
        created = _ok(
            run_shipyard(spec, "backup", "create", "--to", str(backups), "--note", "before")
        )
        backup_id = created.split()[1]
        assert "of test-project (local)" in created and "1 dataset versions, all present" in created

        refused = run_shipyard(
            spec, "backup", "restore", backup_id, "--from", str(backups), "--yes"
        )
        assert refused.returncode == 1 and "prefect-server" in refused.stderr
        assert "nothing" not in refused.stdout  # refused before asking or touching
    finally:
        _ok(run_shipyard(spec, "server", "stop"))

    listed = json.loads(_ok(run_shipyard(spec, "backup", "list", "--from", str(backups), "--json")))
    assert [(b["id"], b["note"]) for b in listed] == [(backup_id, "before")]
    assert {"state/prefect", "state/mlflow", "state/catalog.sqlite", "state/serving"} <= set(
        listed[0]["parts"]
    )

    shutil.rmtree(state)
    restored = _ok(
        run_shipyard(spec, "backup", "restore", backup_id, "--from", str(backups), "--yes")
    )
    assert f"restored backup {backup_id}" in restored
    assert not list(spec.parent.glob(".shipyard.before-restore-*"))  # nothing was there

    _ok(run_shipyard(spec, "server", "start"))
    try:
        assert _deployments(api_url) == before["deployments"]
        assert _registry(spec) == before["registry"]
        after_versions = json.loads(
            _ok(run_shipyard(spec, "data", "versions", "customers", "--json"))
        )
        assert after_versions == before["versions"]
        assert _predictions(spec) == before["predictions"]
        audit = _audit(spec)
        assert audit[: len(before["audit"])] == before["audit"]
        [restore] = audit[len(before["audit"]) :]  # the backup's own creation came after it
        assert (restore.action, restore.detail["backup"]) == ("backup.restore", backup_id)
        shown = _ok(run_shipyard(spec, "models", "show", "churn"))
        assert "@champion" in shown

        # a restore over a live state keeps that state aside
        _ok(run_shipyard(spec, "server", "stop"))
        again = _ok(
            run_shipyard(spec, "backup", "restore", backup_id, "--from", str(backups), "--yes")
        )
        [aside] = spec.parent.glob(".shipyard.before-restore-*")
        assert str(aside) in again and (aside / "catalog.sqlite").is_file()
        _ok(run_shipyard(spec, "server", "start"))
        assert _deployments(api_url) == before["deployments"]
    finally:
        _ok(run_shipyard(spec, "server", "stop"))


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="no pg_dump")
def test_a_postgresql_database_round_trips_through_pg_dump(tmp_path: Path) -> None:
    from shipyard.backup import parts

    if psql("SELECT 1", check=False).returncode != 0:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    with throwaway_database("backup", create=True) as name:
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        psql("CREATE TABLE predictions (id int primary key, body text)", name)
        psql("INSERT INTO predictions SELECT g, 'row ' || g FROM generate_series(1, 50) g", name)
        part = parts.postgres_part(url, ["serving.log.churn-api"], tmp_path)
        assert part.detail == {"roles": ["serving.log.churn-api"], "database": url}
        psql("DROP TABLE predictions", name)
        psql("CREATE TABLE stray (x int)", name)
        parts.restore_postgres(url, part.path)
        assert psql("SELECT count(*), max(body) FROM predictions", name).stdout.strip() == (
            "50|row 9"
        )
        # --clean drops what the dump holds; what was made since is left as it is
        assert psql("SELECT count(*) FROM stray", name).stdout.strip() == "0"
        psql(f'DROP DATABASE "{name}" WITH (FORCE)')
        psql(f'CREATE DATABASE "{name}"')
        parts.restore_postgres(url, part.path)  # into a database made anew
        assert psql("SELECT count(*) FROM predictions", name).stdout.strip() == "50"


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="no pg_dump")
def test_a_profiles_postgresql_log_is_backed_up_and_restored(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from shipyard.backup.archive import create_backup, verify_archive
    from shipyard.backup.restore import restore_backup
    from shipyard.backup.store import LocalStore

    if psql("SELECT 1", check=False).returncode != 0:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    with throwaway_database("backup_log", create=True) as name:
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        text = SPEC.format(port=free_port()).replace(
            "    prefect: {port:",
            f"    kind: scale-out\n    serving: {{log_database: '{url}'}}\n    prefect: {{port:",
        )
        text += MODEL_SPEC.format(threshold=">= 0.5") + SERVICE.format(port=free_port())
        (tmp_path / "pipelines.yaml").write_text(text)
        plan = compile_spec(tmp_path / "pipelines.yaml")
        psql("CREATE TABLE predictions (id int primary key, body text)", name)
        psql("INSERT INTO predictions SELECT g, 'row ' || g FROM generate_series(1, 30) g", name)
        store = LocalStore(tmp_path_factory.mktemp("pg-backups"))
        created = create_backup(plan, store)
        [part] = [p for p in created.manifest.parts if p.kind == "postgres"]
        assert part.detail["roles"] == ["serving.log.churn-api", "serving.control"]
        psql("DROP TABLE predictions", name)
        archive = store.folder / created.archive
        restore_backup(plan, archive, verify_archive(archive, plan.project))
        assert psql("SELECT count(*) FROM predictions", name).stdout.strip() == "30"
        # a restore failing after its pg_restore puts the database back as it was before
        psql("INSERT INTO predictions VALUES (31, 'made after the backup')", name)
        from shipyard.backup import parts

        calls: list[int] = []
        real = parts.restore_pointers

        def fail_once(project_dir: Path, pointers: dict[str, str]) -> None:
            calls.append(1)
            if len(calls) == 1:
                raise OSError("disk full")
            real(project_dir, pointers)

        patch = pytest.MonkeyPatch()
        patch.setattr(parts, "restore_pointers", fail_once)
        try:
            with pytest.raises(OSError, match="disk full"):
                restore_backup(plan, archive, verify_archive(archive, plan.project))
        finally:
            patch.undo()
        assert psql("SELECT count(*) FROM predictions", name).stdout.strip() == "31"
