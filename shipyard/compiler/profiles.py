"""The active profile -> where the plan runs: Prefect target, connection blocks, job variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shipyard.compiler.plan import (
    Blocks,
    DvcRemoteBlock,
    EnvironmentPlan,
    FrozenModel,
    JobVariables,
    KubernetesPlan,
    MetricsSinkBlock,
    MlflowServer,
    MlflowTrackingBlock,
    PrefectTarget,
    RuntimeContext,
)
from shipyard.databases import tls_parameters, with_tls
from shipyard.settings import TELEMETRY_OFF, StateLayout, state_dir_for
from shipyard.spec import PipelineSpec
from shipyard.spec.profiles import ProfileSpec, parse_size

PLAN_ENV = "SHIPYARD_PLAN"
"""Names the plan block a deployment's flow run reads its step from (set in job variables)."""


def plan_block_name(project: str, profile: str) -> str:
    """The `shipyard-plan` block holding the applied plan of a project and profile."""
    return f"{project}-{profile}-plan".replace("_", "-")


def block_name(spec: PipelineSpec, role: str) -> str:
    return f"{spec.project}-{spec.profile}-{role}".replace("_", "-")


def compile_blocks(spec: PipelineSpec, state_dir: Path) -> Blocks:
    profile = spec.active_profile
    layout = StateLayout(state_dir)
    mlflow = profile.mlflow
    if mlflow.tracking_uri:
        tracking_uri = mlflow.tracking_uri
    elif mlflow.backend_store_uri:
        tracking_uri = f"http://127.0.0.1:{mlflow.port}"
    else:
        tracking_uri = f"sqlite:///{layout.mlflow / 'mlflow.db'}"
    return Blocks(
        dvc_remote=DvcRemoteBlock(
            name=block_name(spec, "dvc"),
            url=profile.dvc.remote or str(layout.dvc_remote),
            options=dict(profile.dvc.options),
        ),
        mlflow=MlflowTrackingBlock(
            name=block_name(spec, "mlflow"),
            tracking_uri=tracking_uri,
            artifact_root=mlflow.artifact_root or str(layout.mlflow / "artifacts"),
        ),
        metrics=MetricsSinkBlock(
            name=block_name(spec, "metrics"),
            pushgateway_url=profile.prometheus.pushgateway,
            username=profile.prometheus.username,
            password=profile.prometheus.password,
            textfile_dir=str(layout.metrics),
        ),
    )


def compile_runtime(
    spec: PipelineSpec, project_dir: Path, spec_file: str, state_dir: Path, spec_digest: str
) -> RuntimeContext:
    return RuntimeContext(
        project=spec.project,
        profile=spec.profile,
        profile_kind=spec.active_profile.kind,
        project_dir=str(project_dir),
        spec_file=spec_file,
        state_dir=str(state_dir),
        spec_digest=spec_digest,
    )


def postgres_url(spec: PipelineSpec, project_dir: Path, url: str) -> str:
    """A database URL with the profile's `postgres:` TLS parameters (PostgreSQL URLs only)."""
    return with_tls(url, tls_parameters(spec.active_profile.postgres, project_dir))


def compile_prefect(spec: PipelineSpec, project_dir: Path) -> PrefectTarget:
    prefect = spec.active_profile.prefect
    database_url = prefect.database_url
    return PrefectTarget(
        api_url=prefect.api_url or f"http://127.0.0.1:{prefect.port}/api",
        local=prefect.api_url is None,
        database_url=postgres_url(spec, project_dir, database_url) if database_url else None,
        work_pool=prefect.work_pool,
        work_pool_type=prefect.work_pool_type,
    )


def compile_mlflow_server(
    spec: PipelineSpec, state_dir: Path, project_dir: Path
) -> MlflowServer | None:
    """The MLflow server Shipyard runs itself: when the profile names a backend store only."""
    mlflow = spec.active_profile.mlflow
    if not mlflow.backend_store_uri or mlflow.tracking_uri:
        return None
    return MlflowServer(
        port=mlflow.port,
        backend_store_uri=postgres_url(spec, project_dir, mlflow.backend_store_uri),
        artifact_root=mlflow.artifact_root or str(StateLayout(state_dir).mlflow / "artifacts"),
    )


def compile_job_variables(spec: PipelineSpec, project_dir: Path, state_dir: Path) -> JobVariables:
    """Every deployment's job variables: run in the project folder, with the state folder,
    telemetry off, Shipyard's logs in the Prefect UI, and the plan block to read steps from."""
    return JobVariables(
        working_dir=str(project_dir),
        env={
            **TELEMETRY_OFF,
            "SHIPYARD_STATE_DIR": str(state_dir),
            "PREFECT_LOGGING_EXTRA_LOGGERS": "shipyard",
            PLAN_ENV: plan_block_name(spec.project, spec.profile),
        },
    )


class SparkPlan(FrozenModel):
    """The profile's Spark, for file datasets validated and read on it."""

    master: str = Field("local[*]", description="Spark master URL.")
    min_size: int | None = Field(
        None, description="Bytes from which `engine: auto` picks Spark (None: never)."
    )
    config: dict[str, str] = Field(default_factory=dict, description="Spark settings.")


def compile_spark(profile: ProfileSpec) -> SparkPlan | None:
    """The profile's `spark:` settings (None when it has none)."""
    spark = profile.spark
    if spark is None:
        return None
    return SparkPlan(
        master=spark.master,
        min_size=None if spark.min_size is None else parse_size(spark.min_size),
        config={
            k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in spark.config.items()
        },
    )


def compile_kubernetes(spec: PipelineSpec) -> KubernetesPlan:
    """The profile's manifest settings, for `shipyard k8s render` (which needs no cluster)."""
    k8s = spec.active_profile.kubernetes
    return KubernetesPlan(
        namespace=k8s.namespace,
        registry=k8s.registry.rstrip("/") if k8s.registry else None,
        image_tag=k8s.image_tag,
        replicas=k8s.replicas,
        min_replicas=k8s.min_replicas,
        max_replicas=k8s.max_replicas,
        target_cpu_percent=k8s.target_cpu_percent,
        cpu_request=k8s.cpu_request,
        memory_request=k8s.memory_request,
    )


def compile_environments(spec: PipelineSpec, project_dir: Path) -> tuple[EnvironmentPlan, ...]:
    """`environments:` in order, each with its state folder and the rollout of every service
    that has one (declared under the environment, else the service's own rollout)."""
    chosen = {name for env in spec.environments for name in env.rollouts.values()}
    own: dict[str, str] = {}
    for name, rollout in spec.rollouts.items():
        if name not in chosen:
            own.setdefault(rollout.service or name, name)
    return tuple(
        EnvironmentPlan(
            profile=env.profile,
            position=i,
            state_dir=str(state_dir_for(project_dir, spec.profiles[env.profile].state_dir)),
            approval=env.approval,
            rollouts={
                service: env.rollouts.get(service) or own[service]
                for service in spec.services
                if service in env.rollouts or service in own
            },
        )
        for i, env in enumerate(spec.environments)
    )
