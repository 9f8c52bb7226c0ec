"""Profiles: where flows run and where state lives (embedded default or scale-out engines)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from shipyard.spec.base import Cron, Duration, SpecModel, spec_rule


class PrefectSettings(SpecModel):
    """Prefect server and work pool used by the compiled deployments."""

    api_url: str | None = Field(
        None,
        description="URL of an existing Prefect server API (e.g. http://prefect:4200/api). "
        "Unset: Shipyard starts a local server under the state folder (`shipyard server start`).",
    )
    port: int = Field(4200, ge=1, le=65535, description="Port of the local Prefect server.")
    database_url: str | None = Field(
        None,
        description="Database of the local Prefect server, e.g. "
        "postgresql+asyncpg://<user>@<host>:5432/prefect. "
        "Unset: SQLite under the state folder.",
    )
    work_pool: str = Field(
        "shipyard-process", description="Work pool the deployments are registered on."
    )
    work_pool_type: Literal["process"] = Field(
        "process", description="Type of the work pool created by `shipyard apply`."
    )


class DvcSettings(SpecModel):
    """Where DVC pushes versioned data."""

    remote: str | None = Field(
        None,
        description="DVC remote URL (s3://bucket/path, gs://..., /abs/dir). "
        "Unset: a git-ignored local directory under the state folder.",
    )
    options: dict[str, str] = Field(
        default_factory=dict,
        description="Extra remote options passed to `dvc remote modify` (e.g. endpointurl, "
        "access_key_id: ${secret:aws-key}); secret references are resolved at run time.",
    )


class PrometheusSettings(SpecModel):
    """Where flow metrics go, and the Prometheus that analyses read."""

    url: str | None = Field(
        None,
        description="A Prometheus server (e.g. http://<host>:9090) whose query API rollout "
        "analyses read. Unset: they scrape each service's /metrics themselves.",
    )
    pushgateway: str | None = Field(
        None,
        description="Pushgateway URL (e.g. http://<host>:9091). Unset: metrics are written as "
        "*.prom files under the state folder for a node-exporter textfile collector.",
    )
    username: str | None = Field(None, description="Basic-auth user for the Pushgateway.")
    password: str | None = Field(
        None, description="Basic-auth password for the Pushgateway, e.g. ${secret:pushgateway}."
    )


class MlflowSettings(SpecModel):
    """MLflow tracking and registry."""

    tracking_uri: str | None = Field(
        None,
        description="Tracking server URI (e.g. http://mlflow:5000). Unset: SQLite under the state "
        "folder, or the local server `shipyard mlflow start` runs when `backend_store_uri` is set.",
    )
    backend_store_uri: str | None = Field(
        None,
        description="Database of the local MLflow server Shipyard starts, e.g. "
        "postgresql://<user>@<host>:5432/mlflow.",
    )
    artifact_root: str | None = Field(
        None,
        description="Artifact root of the local MLflow server (a directory or object-store URL). "
        "Default: mlflow/artifacts under the state folder.",
    )
    port: int = Field(5055, ge=1, le=65535, description="Port of the local MLflow server.")


class DaskSettings(SpecModel):
    """Run hyper-parameter trials on a Dask cluster (prefect-dask) instead of threads."""

    address: str | None = Field(
        None, description="Scheduler address of an existing cluster; unset: a local cluster."
    )
    n_workers: int = Field(2, ge=1, description="Workers of the local cluster.")
    threads_per_worker: int = Field(1, ge=1, description="Threads per local worker.")


class FeastSettings(SpecModel):
    """Feast stores: embedded SQLite by default; Redis and a SQL registry at scale."""

    online_store: str | None = Field(
        None,
        description="Online store: unset for SQLite under the state folder, or a Redis URL "
        "such as redis://<host>:6379.",
    )
    registry: str | None = Field(
        None,
        description="Registry: unset for a file under the state folder, or a database URL such "
        "as postgresql://<user>@<host>:5432/feast (a SQL registry).",
    )


class ServingSettings(SpecModel):
    """Where services keep shared state: rate limits, the prediction log, the control state."""

    rate_limit_storage: str | None = Field(
        None,
        description="Rate-limit counters: unset for in-process memory (per worker), or a Redis "
        "URL such as redis://<host>:6379/0 (shared by every worker and replica).",
    )
    log_database: str | None = Field(
        None,
        description="Prediction and feedback log: unset for SQLite under the state folder, or a "
        "PostgreSQL URL such as postgresql://<user>@<host>:5432/serving (created if missing).",
    )
    control_database: str | None = Field(
        None,
        description="Control state of every service (which Bento, routing, with their audit): "
        "unset for `log_database` when that is PostgreSQL, else SQLite under the state folder. "
        "Replicas on several machines must share one PostgreSQL database.",
    )
    port_offset: int = Field(
        0,
        ge=0,
        le=60000,
        description="Added to every service's port in this profile, so environments "
        "(e.g. staging beside production) can serve on one machine.",
    )


class KubernetesSettings(SpecModel):
    """What `shipyard k8s render` writes into the manifests of services and rollouts."""

    namespace: str = Field("default", description="Namespace of every rendered resource.")
    registry: str | None = Field(
        None,
        description="Image registry prefix (e.g. registry.example.com/ml): images are "
        "<registry>/<service>:<tag>, as `bentoml containerize` tags them. Unset: the bare "
        "<service>:<tag> of a local build.",
    )
    image_tag: str | None = Field(
        None,
        description="Tag of the service's image. Unset: the version of the Bento last built "
        "for the service (`shipyard build`), else `latest`.",
    )
    replicas: int = Field(2, ge=1, description="Replicas of each Deployment and Rollout.")
    min_replicas: int = Field(2, ge=1, description="Fewest replicas the autoscaler keeps.")
    max_replicas: int = Field(10, ge=1, description="Most replicas the autoscaler starts.")
    target_cpu_percent: int = Field(
        70, ge=1, description="Average CPU use (% of the request) the autoscaler aims at."
    )
    cpu_request: str = Field(
        "500m", description="CPU each container requests; the autoscaler's percentages are of it."
    )
    memory_request: str = Field("1Gi", description="Memory each container requests.")

    @model_validator(mode="after")
    def _replica_range(self) -> KubernetesSettings:
        if self.min_replicas > self.max_replicas:
            raise spec_rule(
                f"min_replicas {self.min_replicas} is above max_replicas {self.max_replicas}",
                "the autoscaler needs min_replicas <= max_replicas",
                ("min_replicas",),
            )
        return self


class ObservabilitySettings(SpecModel):
    """The local Prometheus stack `shipyard observability up` runs: ports and intervals."""

    prometheus_port: int = Field(9090, ge=1, le=65535, description="Port of Prometheus.")
    pushgateway_port: int = Field(
        9091, ge=1, le=65535, description="Port of the Pushgateway flows may push to."
    )
    alertmanager_port: int = Field(9093, ge=1, le=65535, description="Port of Alertmanager.")
    node_exporter_port: int = Field(
        9100, ge=1, le=65535, description="Port of node-exporter (host and textfile metrics)."
    )
    receiver_port: int = Field(
        9095,
        ge=1,
        le=65535,
        description="Port of Shipyard's alert receiver (`shipyard alerts receive`), which "
        "Alertmanager's webhooks call.",
    )
    scrape_interval: Duration = Field("15s", description="How often Prometheus scrapes.")
    evaluation_interval: Duration = Field(
        "15s", description="How often Prometheus evaluates recording and alerting rules."
    )
    retention: Duration = Field("15d", description="How long Prometheus keeps samples.")


class BackupSettings(SpecModel):
    """Scheduled backups of all the project's state (`shipyard backup create` on a schedule)."""

    schedule: Cron = Field(description="When the backup-state deployment runs (cron).")
    retention: int | Duration = Field(
        7,
        description="Backups kept: a number keeps the newest that many (e.g. 7), a duration "
        "keeps those younger than it (e.g. 14d); the newest backup is always kept.",
    )
    to: str | None = Field(
        None,
        description="Where backups go: a directory or an s3:// URL. Unset: the backups/ prefix "
        "of the profile's DVC remote, or <state folder>-backups beside the state folder when "
        "the remote is inside it (the embedded default).",
    )

    @model_validator(mode="after")
    def _positive_count(self) -> BackupSettings:
        if isinstance(self.retention, int) and self.retention < 1:
            raise spec_rule(
                f"retention {self.retention} keeps no backup",
                "keep at least 1 (a count) or give a duration such as 14d",
                ("retention",),
            )
        return self


SIZE_PATTERN = r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$"
_SIZE = re.compile(SIZE_PATTERN, re.IGNORECASE)
_SIZE_BYTES = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_SIZE_BYTES |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str) -> int:
    """'1GB', '512MB', '2GiB' -> bytes (decimal units are powers of 1000, KiB... of 1024)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"'{text}' is not a size")
    return int(float(match.group(1)) * _SIZE_BYTES[match.group(2).lower()])


def _check_size(value: str) -> str:
    try:
        parse_size(value)
    except ValueError:
        raise spec_rule(
            f"'{value}' is not a size", "use a number and a unit, e.g. 500MB, 1GB or 2GiB"
        ) from None
    return value


Size = Annotated[
    str, AfterValidator(_check_size), Field(json_schema_extra={"pattern": SIZE_PATTERN})
]
"""A file size such as 500MB, 1GB or 2GiB."""


class SparkSettings(SpecModel):
    """Spark for file datasets (`engine: spark`, or `auto` from `min_size` up)."""

    master: str = Field(
        "local[*]",
        description="Spark master URL: local[N] (Spark inside the flow's process, N cores), "
        "spark://<host>:7077 (a standalone cluster), yarn, or k8s://https://<host>:<port>.",
    )
    min_size: Size | None = Field(
        None,
        description="Datasets with `engine: auto` (the default) are validated on Spark when "
        "their file is at least this big (e.g. 1GB); unset: only `engine: spark` uses Spark.",
    )
    config: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Spark settings by name (spark.executor.memory: 4g, "
        "spark.driver.memory: 2g, ...), applied when the session starts.",
    )


SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class PostgresSettings(SpecModel):
    """TLS of every PostgreSQL connection: logs, control state, MLflow, Prefect, Feast, backups."""

    sslmode: SslMode | None = Field(
        None,
        description="libpq's sslmode: disable, allow, prefer, require, verify-ca (the server's "
        "certificate is checked against `sslrootcert`), verify-full (and its host name). "
        "Unset: libpq's default (prefer). A URL's own ?sslmode= (or other ssl* parameter) "
        "wins over these settings.",
    )
    sslrootcert: str | None = Field(
        None, description="CA certificate file the server's certificate must be signed by."
    )
    sslcert: str | None = Field(None, description="Client certificate file (with `sslkey`).")
    sslkey: str | None = Field(None, description="Client private key file (with `sslcert`).")

    @model_validator(mode="after")
    def _cert_with_key(self) -> PostgresSettings:
        if (self.sslcert is None) != (self.sslkey is None):
            raise spec_rule(
                "a client certificate needs both `sslcert` and `sslkey`",
                "give the certificate file and its private key, or neither",
                ("sslkey" if self.sslcert is None else "sslcert",),
            )
        return self


class ProfileSpec(SpecModel):
    """One deployment target: the embedded default needs nothing; scale-out names real engines."""

    kind: Literal["embedded", "scale-out"] = Field(
        "embedded",
        description="embedded: SQLite, local Prefect, local DVC remote, no servers to install. "
        "scale-out: the engines named below (PostgreSQL, object store, Pushgateway, work pools).",
    )
    state_dir: str | None = Field(
        None,
        description="Folder for all runtime state (Prefect home, DVC cache and remote, metrics, "
        "logs), relative to pipelines.yaml. Default: .shipyard",
    )
    prefect: PrefectSettings = Field(
        default_factory=PrefectSettings, description=PrefectSettings.__doc__
    )
    dvc: DvcSettings = Field(default_factory=DvcSettings, description=DvcSettings.__doc__)
    mlflow: MlflowSettings = Field(
        default_factory=MlflowSettings, description=MlflowSettings.__doc__
    )
    dask: DaskSettings | None = Field(None, description=DaskSettings.__doc__)
    feast: FeastSettings = Field(default_factory=FeastSettings, description=FeastSettings.__doc__)
    prometheus: PrometheusSettings = Field(
        default_factory=PrometheusSettings, description=PrometheusSettings.__doc__
    )
    serving: ServingSettings = Field(
        default_factory=ServingSettings, description=ServingSettings.__doc__
    )
    kubernetes: KubernetesSettings = Field(
        default_factory=KubernetesSettings, description=KubernetesSettings.__doc__
    )
    observability: ObservabilitySettings = Field(
        default_factory=ObservabilitySettings, description=ObservabilitySettings.__doc__
    )
    backup: BackupSettings | None = Field(None, description=BackupSettings.__doc__)
    postgres: PostgresSettings = Field(
        default_factory=PostgresSettings, description=PostgresSettings.__doc__
    )
    spark: SparkSettings | None = Field(None, description=SparkSettings.__doc__)
    databases: dict[str, str] = Field(
        default_factory=dict,
        description="Databases SQL datasets read, by name: name -> SQLAlchemy URL "
        "(postgresql://user@host:5432/db; ${secret:...} and ${env:...} allowed).",
    )
