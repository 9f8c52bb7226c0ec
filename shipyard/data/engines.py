"""The one dispatch point for datasets: which engine validates a dataset, reads it for training,
and versions it.

A dataset is a file (pandas reads it; Spark when the dataset or the profile says so) or a
database table or query (`sql:`, validated in place through Great Expectations' SQL execution).
`engine_of` decides; every other function here asks it and takes that engine's branch, so flows
and training never look at a dataset's kind themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from shipyard.compiler import DatasetStep, Plan
from shipyard.data import spark
from shipyard.data.files import dataset_file, read_dataset
from shipyard.data.quality import QualityReport, check_expectations
from shipyard.data.versioning import DataVersion, DvcStore, VersionCatalog, version_file

if TYPE_CHECKING:
    import pandas as pd

Engine = Literal["pandas", "sql", "spark"]


def engine_of(plan: Plan, step: DatasetStep) -> Engine:
    """The engine of a dataset: `sql` for a table or query; for a file, its `engine:`
    (`auto`: spark when the profile's `spark.min_size` is set and the file is that big, else
    pandas)."""
    if step.sql is not None:
        return "sql"
    if spark.uses_spark(step, dataset_file(plan.runtime, step)):
        return "spark"
    return "pandas"


def validate_step(plan: Plan, step: DatasetStep) -> QualityReport:
    """Every expectation of the dataset, run by its engine in one Great Expectations batch."""
    engine = engine_of(plan, step)
    if engine == "sql":
        from shipyard.data.sql import SqlDataset

        return SqlDataset(step, plan.runtime.profile).validate()
    if engine == "spark":
        return spark.validate_file(step, dataset_file(plan.runtime, step), plan.runtime.state_dir)
    frame = read_dataset(step, dataset_file(plan.runtime, step))
    return check_expectations(frame, step.expectations, step.name)


def read_frame(plan: Plan, step: DatasetStep) -> pd.DataFrame:
    """The dataset as a pandas frame, for training and feature reads.

    A SQL dataset versioned as a snapshot is read from its snapshot: the very rows that were
    validated and versioned, whatever the table holds by now.
    """
    engine = engine_of(plan, step)
    if engine == "sql":
        from shipyard.data.sql import SqlDataset, read_snapshot

        if _snapshotted(step):
            return read_snapshot(step, snapshot_file(plan, step))
        return SqlDataset(step, plan.runtime.profile).read()
    if engine == "spark":
        return spark.read_file(step, dataset_file(plan.runtime, step), plan.runtime.state_dir)
    return read_dataset(step, dataset_file(plan.runtime, step))


def _snapshotted(step: DatasetStep) -> bool:
    return step.sql is not None and step.version and step.version_mode == "snapshot"


def snapshot_file(plan: Plan, step: DatasetStep) -> Path:
    """Where a SQL dataset's snapshot is written, DVC-tracked like a dataset file (inside the
    project folder: DVC versions files there)."""
    return Path(plan.runtime.project_dir) / ".shipyard-snapshots" / f"{step.name}.parquet"


def data_version(plan: Plan, step: DatasetStep) -> str:
    """The version id of the dataset's current content: the md5 of a file (DVC's id for it),
    of a SQL dataset's snapshot, or the content hash the database computes of its result."""
    if step.sql is None:
        return _file_md5(dataset_file(plan.runtime, step))
    if _snapshotted(step):
        return _file_md5(snapshot_file(plan, step))
    from shipyard.data.sql import SqlDataset

    return SqlDataset(step, plan.runtime.profile).content_hash().digest


def source_of(plan: Plan, step: DatasetStep) -> str:
    """Where the dataset is read from, for people and MLflow: the file, or the database
    (without its password) and the table or query."""
    if step.sql is None:
        return str(dataset_file(plan.runtime, step))
    from shipyard.data.sql import SqlDataset

    return SqlDataset(step, plan.runtime.profile).describe()


def version_step(
    plan: Plan,
    step: DatasetStep,
    store: DvcStore,
    catalog: VersionCatalog,
    rows: int,
    flow_run_id: str | None = None,
) -> tuple[DataVersion, bool]:
    """Record the validated dataset's version: `dvc add` and push a file; for a SQL dataset a
    content hash computed in the database, or a parquet snapshot pushed like a file; `rows`
    are the rows validated (a SQL result that has other rows by now is not versioned)."""
    if step.sql is None:
        file = dataset_file(plan.runtime, step)
        return version_file(store, catalog, step.name, file, rows, flow_run_id)
    from shipyard.data.sql import version_sql

    snapshot = snapshot_file(plan, step) if step.version_mode == "snapshot" else None
    return version_sql(step, plan.runtime.profile, store, catalog, snapshot, rows, flow_run_id)


def _file_md5(path: Path) -> str:
    import hashlib

    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
