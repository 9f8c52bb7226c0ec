"""Connection blocks: edit them in the Prefect UI to repoint flows without editing code."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field


class DvcRemote(Block):
    """The DVC remote where versioned dataset files are pushed."""

    _block_type_name = "Shipyard DVC Remote"
    _block_type_slug = "shipyard-dvc-remote"
    _description = "Where Shipyard pushes versioned dataset files (DVC remote URL and options)."

    url: str = Field(description="DVC remote URL: a local directory, s3://bucket/path, gs://...")
    options: dict[str, str] = Field(
        default_factory=dict,
        description="`dvc remote modify` options; values may be ${secret:NAME} references.",
    )


class MetricsSink(Block):
    """Where flow-run metrics go: a Prometheus Pushgateway, else a textfile-collector folder."""

    _block_type_name = "Shipyard Metrics Sink"
    _block_type_slug = "shipyard-metrics-sink"
    _description = "Prometheus Pushgateway (or node-exporter textfile folder) for flow metrics."

    pushgateway_url: str | None = Field(None, description="Pushgateway URL; unset: textfile.")
    username: str | None = Field(None, description="Basic-auth user for the Pushgateway.")
    password: str | None = Field(
        None, description="Basic-auth password, as a ${secret:NAME} reference."
    )
    textfile_dir: str = Field(description="Folder for *.prom files when no Pushgateway is set.")


class MlflowTracking(Block):
    """The MLflow tracking server and registry models are logged to."""

    _block_type_name = "Shipyard MLflow Tracking"
    _block_type_slug = "shipyard-mlflow-tracking"
    _description = "MLflow tracking URI (server or database) and artifact root for training."

    tracking_uri: str = Field(description="MLflow tracking URI, e.g. http://mlflow:5000.")
    artifact_root: str | None = Field(
        None, description="Artifact root for experiments Shipyard creates (local stores)."
    )


BLOCK_TYPES: dict[str, type[Block]] = {
    MlflowTracking._block_type_slug: MlflowTracking,
    DvcRemote._block_type_slug: DvcRemote,
    MetricsSink._block_type_slug: MetricsSink,
}
