"""validate-dataset: check a dataset with Great Expectations, then version it with DVC."""

from __future__ import annotations

import logging
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from shipyard.compiler import DatasetStep
from shipyard.data.files import dataset_file, read_dataset
from shipyard.data.quality import QualityReport, check_expectations
from shipyard.data.versioning import DataVersion, DvcStore, VersionCatalog, version_file
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


def _artifact_key(step: DatasetStep, suffix: str) -> str:
    return f"{step.id.replace('.', '-').replace('_', '-')}-{suffix}"


@task(name="validate", cache_policy=NO_CACHE, persist_result=False)
def validate(step: DatasetStep, path: Path) -> QualityReport:
    """Every expectation of the dataset on its file, in one Great Expectations batch."""
    report = check_expectations(read_dataset(step, path), step.expectations, step.name)
    # one report per run: the outcome, then every rule (failed first) with sample bad values
    create_markdown_artifact(
        key=_artifact_key(step, "quality"),
        markdown=report.markdown(),
        description=f"Great Expectations result for {step.id}",
    )
    return report


@task(name="version", cache_policy=NO_CACHE, persist_result=False)
def version(run: StepRun[DatasetStep], path: Path, rows: int) -> tuple[DataVersion, bool]:
    """`dvc add` and push the file, and record the version in the catalog."""
    remote = run.block("dvc_remote")
    options = {k: resolve(v) or "" for k, v in remote.options.items()}
    layout = StateLayout(run.plan.runtime.state_dir)
    store = DvcStore(Path(run.plan.runtime.project_dir), layout.root, remote.url, options)
    return version_file(
        store,
        VersionCatalog(layout.catalog),
        run.step.name,
        path,
        rows,
        current_flow_run_id(),
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
    path = dataset_file(run.plan.runtime, step)
    with run.monitored() as metrics:
        report = validate(step, path)
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
        if missing := report.missing_text(f"'{step.path}'"):
            raise DataValidationFailed(
                f"{missing}\n{report.failure_text()}",
                hint="add the column to the file, or remove it from the dataset's `schema:` "
                "(and the rules that use it) in pipelines.yaml; the data was not versioned",
                resource=step.id,
            )
        if not report.success:
            raise DataValidationFailed(
                f"{len(report.failed)} of {len(report.outcomes)} expectations failed on "
                f"'{step.path}' ({report.rows} rows):\n{report.failure_text()}",
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
        recorded, is_new = version(run, path, report.rows)
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
