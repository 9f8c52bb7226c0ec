"""validate-dataset: check a dataset with Great Expectations, then version it with DVC."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from shipyard.compiler.plan import DatasetStep
from shipyard.data.files import dataset_file, read_dataset
from shipyard.data.quality import QualityReport, check_expectations
from shipyard.data.versioning import DataVersion, DvcStore, VersionCatalog, version_file
from shipyard.errors import DataValidationFailed
from shipyard.logs import configure_json_logs, current_flow_run_id, quiet_expected_errors
from shipyard.metrics import monitored_run
from shipyard.runtime.connections import load_block, metrics_sink
from shipyard.secrets import resolve
from shipyard.settings import StateLayout

log = logging.getLogger("shipyard.flows.validate_dataset")
quiet_expected_errors()


def _artifact_key(step: DatasetStep, suffix: str) -> str:
    return f"{step.id.replace('.', '-').replace('_', '-')}-{suffix}"


@task(name="check-expectations", cache_policy=NO_CACHE, persist_result=False)
def check_quality(step: DatasetStep) -> QualityReport:
    frame = read_dataset(step)
    report = check_expectations(frame, step.expectations, step.dataset)
    create_markdown_artifact(
        key=_artifact_key(step, "quality"),
        markdown=report.markdown(),
        description=f"Great Expectations result for {step.id}",
    )
    create_table_artifact(
        key=_artifact_key(step, "quality-table"),
        table=report.table_rows(),
        description=f"Every expectation of {step.id} and its outcome",
    )
    return report


@task(name="version-with-dvc", cache_policy=NO_CACHE, persist_result=False)
def version_data(step: DatasetStep, rows: int) -> tuple[DataVersion, bool]:
    remote = load_block(step.runtime, "dvc_remote")
    options = {k: resolve(v) or "" for k, v in remote.options.items()}
    layout = StateLayout(step.runtime.state_dir)
    store = DvcStore(Path(step.runtime.project_dir), layout.root, remote.url, options)
    return version_file(
        store,
        VersionCatalog(layout.catalog),
        step.dataset,
        dataset_file(step),
        rows,
        current_flow_run_id(),
    )


@flow(name="validate-dataset", description=__doc__)
def validate_dataset(step: DatasetStep) -> dict[str, Any]:
    """Validate the dataset's file against its expectations; on success version it with DVC."""
    configure_json_logs(StateLayout(step.runtime.state_dir).logs)
    with monitored_run(
        "validate-dataset",
        step.id,
        step.runtime.project,
        metrics_sink(step.runtime),
        current_flow_run_id(),
    ) as metrics:
        report = check_quality(step)
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
        summary: dict[str, Any] = {
            "dataset": step.dataset,
            "rows": report.rows,
            "expectations": len(report.outcomes),
        }
        if step.version:
            version, is_new = version_data(step, report.rows)
            metrics.observe("dataset_version_size_bytes", version.size, "Size of the version.")
            summary.update(md5=version.md5, size=version.size, new_version=is_new)
            create_markdown_artifact(
                key=_artifact_key(step, "version"),
                markdown=f"## Data version of `{step.id}`\n\n| md5 | bytes | rows | new |\n"
                f"|---|---|---|---|\n| `{version.md5}` | {version.size} | {report.rows} "
                f"| {'yes' if is_new else 'no, unchanged'} |\n\nRemote: `{version.remote}`",
                description=f"DVC version of {step.id}",
            )
            log.info("%s: version %s (%s)", step.id, version.md5, "new" if is_new else "unchanged")
        return summary
