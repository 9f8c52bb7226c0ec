"""A cache hit of train-model without MLflow: the embedded profile's SQLite tracking store, read.

A train-model run whose inputs are unchanged only reads: its experiment (already there, tags
as the spec wants them), that no killed run is left to settle, and the finished run with the
same cache key. Importing MLflow and opening its SQLAlchemy store for that (schema check
included) is most of such a run's time, so those reads go straight to the tables here, read-only
and only for a schema revision `registry_read.VERIFIED_REVISIONS` lists. Whenever anything is
to be written or settled, or the store is not such a file, the flow takes MLflow's path as
before: `quiet_experiment` answers None.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.registry import PENDING, TAG_REGISTRATION
from shipyard.registry_read import DEFAULT_WORKSPACE, VERIFIED_REVISIONS, client_only


@dataclass(frozen=True)
class RunInfo:
    run_id: str


@dataclass(frozen=True)
class RunData:
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FinishedRun:
    """The parts of an MLflow Run a skipped training reports (`run.info`, `run.data`)."""

    info: RunInfo
    data: RunData


@contextmanager
def _store(tracking_uri: str) -> Iterator[sqlite3.Connection | None]:
    path = tracking_uri.removeprefix("sqlite:///")  # as `tracking.use_tracking` reads it
    if (
        not tracking_uri.startswith("sqlite:///")
        or client_only()
        or path in ("", ":memory:")
        or any(c in path for c in "?%")
        or not Path(path).exists()
    ):
        yield None
        return
    try:
        db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        yield None
        return
    with closing(db):
        try:
            revision = db.execute("SELECT version_num FROM alembic_version").fetchall()
        except sqlite3.Error:
            revision = []
        yield db if len(revision) == 1 and revision[0][0] in VERIFIED_REVISIONS else None


def quiet_experiment(tracking_uri: str, name: str, tags: dict[str, str]) -> str | None:
    """The id of experiment `name` when MLflow's path would change nothing in it: it exists
    (active), carries `tags`, and holds no RUNNING run and no pending registration to settle.
    None otherwise, or when the store cannot be read here."""
    with _store(tracking_uri) as db:
        if db is None:
            return None
        try:
            found = db.execute(
                "SELECT experiment_id, lifecycle_stage FROM experiments "
                "WHERE name = ? AND workspace = ?",
                (name, DEFAULT_WORKSPACE),
            ).fetchall()
            if len(found) != 1 or found[0][1] != "active":
                return None
            experiment_id = found[0][0]
            have = dict(
                db.execute(
                    "SELECT key, value FROM experiment_tags WHERE experiment_id = ?",
                    (experiment_id,),
                ).fetchall()
            )
            if any(have.get(k) != v for k, v in tags.items()):
                return None
            unsettled = db.execute(
                "SELECT 1 FROM runs r WHERE r.experiment_id = ? AND r.lifecycle_stage = 'active'"
                " AND (r.status = 'RUNNING' OR EXISTS (SELECT 1 FROM tags t WHERE"
                " t.run_uuid = r.run_uuid AND t.key = ? AND t.value = ?)) LIMIT 1",
                (experiment_id, TAG_REGISTRATION, PENDING),
            ).fetchall()
        except sqlite3.Error:
            return None
        return None if unsettled else str(experiment_id)


def finished_run(
    tracking_uri: str, experiment_id: str, cache_key: str, outcome_tag: str
) -> FinishedRun | bool | None:
    """The last active run of the experiment tagged with `cache_key` whose `outcome_tag` is set
    (as `train_model._finished_run` searches MLflow), None when there is none, False when the
    store cannot be read here."""
    with _store(tracking_uri) as db:
        if db is None:
            return False
        try:
            found = db.execute(
                "SELECT r.run_uuid FROM runs r"
                " JOIN tags k ON k.run_uuid = r.run_uuid AND k.key = 'shipyard.cache_key'"
                " JOIN tags o ON o.run_uuid = r.run_uuid AND o.key = ?"
                " WHERE r.experiment_id = ? AND r.lifecycle_stage = 'active' AND k.value = ?"
                " AND o.value != '' ORDER BY r.start_time DESC LIMIT 1",
                (outcome_tag, int(experiment_id), cache_key),
            ).fetchall()
            if not found:
                return None
            run_id = found[0][0]
            tags: dict[str, Any] = dict(
                db.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)).fetchall()
            )
            metrics = {
                key: float("nan") if is_nan else float(value)
                for key, value, is_nan in db.execute(
                    "SELECT key, value, is_nan FROM latest_metrics WHERE run_uuid = ?", (run_id,)
                ).fetchall()
            }
        except (sqlite3.Error, ValueError):
            return False
        return FinishedRun(RunInfo(run_id), RunData(tags, metrics))
