"""validate-dataset: check a dataset with Great Expectations, then version it with DVC."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from shipyard.compiler import DatasetStep, Plan
from shipyard.data import engines
from shipyard.data.files import dataset_file
from shipyard.data.quality import QualityReport
from shipyard.data.versioning import (
    DataVersion,
    DvcStore,
    Unchanged,
    VersionCatalog,
    expectations_digest,
    file_md5,
    record_validated,
    validated_before,
)
from shipyard.errors import DataValidationFailed
from shipyard.logs import current_flow_run_id, quiet_expected_errors
from shipyard.runtime.flow_run import StepRun, begin, run_name
from shipyard.secrets import resolve
from shipyard.settings import StateLayout

log = logging.getLogger("shipyard.flows.validate_dataset")
quiet_expected_errors()


class DatasetResult(BaseModel):
    """What a validate-dataset run found and recorded."""

    dataset: str
    rows: int
    expectations: int
    md5: str | None = None
    size: int | None = None
    new_version: bool | None = None
    validated_before: str | None = None
    """Set when the file was not validated again: the version it still is, which passed the
    same expectations before."""


def _artifact_key(step: DatasetStep, suffix: str) -> str:
    return f"{step.id.replace('.', '-').replace('_', '-')}-{suffix}"


@task(name="validate", cache_policy=NO_CACHE, persist_result=False)
def validate(plan: Plan, step: DatasetStep) -> QualityReport:
    """Every expectation of the dataset, in one Great Expectations batch run by its engine
    (pandas or Spark on a file; the database itself for a SQL table or query)."""
    report = engines.validate_step(plan, step)
    # one report per run: the outcome, then every rule (failed first) with sample bad values
    create_markdown_artifact(
        key=_artifact_key(step, "quality"),
        markdown=report.markdown(),
        description=f"Great Expectations result for {step.id}",
    )
    return report


@task(name="version", cache_policy=NO_CACHE, persist_result=False)
def version(run: StepRun[DatasetStep], rows: int) -> tuple[DataVersion, bool]:
    """`dvc add` and push the file (a SQL dataset: its content hash, or its parquet snapshot
    pushed likewise), and record the version in the catalog."""
    remote = run.block("dvc_remote")
    options = {k: resolve(v) or "" for k, v in remote.options.items()}
    layout = StateLayout(run.plan.runtime.state_dir)
    store = DvcStore(Path(run.plan.runtime.project_dir), layout.root, remote.url, options)
    return engines.version_step(
        run.plan, run.step, store, VersionCatalog(layout.catalog), rows, current_flow_run_id()
    )


@flow(
    name="validate-dataset",
    flow_run_name=run_name("validate-dataset", "dataset"),
    description=__doc__,
)
def validate_dataset(dataset: str) -> DatasetResult:
    """Validate the dataset's file against its expectations; on success version it with DVC."""
    run = begin("validate-dataset", DatasetStep, dataset)
    step = run.step
    path = dataset_file(run.plan.runtime, step) if step.sql is None else None
    where = f"'{step.path}'" if path else engines.source_of(run.plan, step)
    with run.monitored() as metrics:
        # a version that passed these very rules and is still the file is not validated again
        catalog = VersionCatalog(StateLayout(run.plan.runtime.state_dir).catalog)
        rules = expectations_digest(step) if step.version and path else None
        if path and rules and (earlier := validated_before(catalog, step.name, path, rules)):
            return _unchanged(step, earlier, metrics)
        before = file_md5(path) if path and rules else None  # what is validated, as DVC sees it
        report = validate(run.plan, step)
        metrics.observe("dataset_validation_skipped", 0.0, SKIPPED_HELP)
        metrics.observe("dataset_rows_validated", report.rows, "Rows checked in the last run.")
        metrics.observe(
            "dataset_expectations_failed",
            len(report.failed),
            "Expectations that failed in the last run.",
        )
        metrics.observe(
            "dataset_expectations_evaluated",
            len(report.outcomes),
            "Expectations evaluated in the last run.",
        )
        holder = "the file" if path else ("the table" if step.sql and step.sql.table else "it")
        if missing := report.missing_text(where, holder):
            raise DataValidationFailed(
                f"{missing}\n{report.failure_text()}",
                hint="add the column to the file, or remove it from the dataset's `schema:` "
                "(and the rules that use it) in pipelines.yaml; the data was not versioned",
                resource=step.id,
            )
        if not report.success:
            raise DataValidationFailed(
                f"{len(report.failed)} of {len(report.outcomes)} expectations failed on "
                f"{where} ({report.rows} rows):\n{report.failure_text()}",
                hint="fix the data (or the rule in pipelines.yaml); the data was not versioned",
                resource=step.id,
            )
        log.info(
            "%s: all %d expectations passed on %d rows", step.id, len(report.outcomes), report.rows
        )
        result = DatasetResult(
            dataset=step.name, rows=report.rows, expectations=len(report.outcomes)
        )
        if not step.version:
            return result
        recorded, is_new = version(run, report.rows)
        if path and rules:
            counts = (report.rows, len(report.outcomes))
            record_validated(catalog, recorded, path, before, rules, counts, current_flow_run_id())
        metrics.observe("dataset_version_size_bytes", recorded.size, "Size of the version.")
        create_markdown_artifact(
            key=_artifact_key(step, "version"),
            markdown=f"## Data version of `{step.id}`\n\n| md5 | bytes | rows | new |\n"
            f"|---|---|---|---|\n| `{recorded.md5}` | {recorded.size} | {report.rows} "
            f"| {'yes' if is_new else 'no, unchanged'} |\n\nRemote: `{recorded.remote}`",
            description=f"DVC version of {step.id}",
        )
        log.info("%s: version %s (%s)", step.id, recorded.md5, "new" if is_new else "unchanged")
        return result.model_copy(
            update={"md5": recorded.md5, "size": recorded.size, "new_version": is_new}
        )


SKIPPED_HELP = "1 if the file was an already validated version and was not validated again."


def _unchanged(step: DatasetStep, earlier: Unchanged, metrics: Any) -> DatasetResult:
    """The result of a run whose file is a version that passed the same expectations: why it
    was not validated, in the run's log and its quality artifact (the Prefect UI shows it)."""
    note = earlier.note()
    version = earlier.version
    log.info("%s: %s; not validated again", step.id, note)
    metrics.observe("dataset_validation_skipped", 1.0, SKIPPED_HELP)
    create_markdown_artifact(
        key=_artifact_key(step, "quality"),
        markdown=f"## `{step.id}`: {note}\n\nThe file is version `{version.md5}` "
        f"({version.size} bytes), and that version passed these same expectations (digest "
        f"`{earlier.validated.expectations[:12]}`), so it was not validated again. Changing "
        "the file or the dataset's rules in pipelines.yaml validates it on the next run.",
        description=f"Great Expectations result for {step.id} (unchanged)",
    )
    return DatasetResult(
        dataset=step.name,
        rows=earlier.validated.rows,
        expectations=earlier.validated.evaluated,
        md5=version.md5,
        size=version.size,
        new_version=False,
        validated_before=note,
    )
