"""The Plan: a frozen, JSON-serializable description of everything a spec compiles to."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FrozenModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuntimeContext(FrozenModel):
    """What every compiled flow needs to find the project, its state and its connections."""

    project: str
    profile: str
    profile_kind: str
    project_dir: str = Field(description="Absolute folder of pipelines.yaml; flows run from here.")
    state_dir: str = Field(description="Absolute folder for all runtime state.")
    spec_digest: str
    blocks: dict[str, str] = Field(
        default_factory=dict, description="Role (dvc_remote, pushgateway) -> saved block name."
    )


class CompiledExpectation(FrozenModel):
    """One Great Expectations expectation, traced back to the rule written in the spec."""

    type: str
    kwargs: dict[str, Any]
    rule: str = Field(description="The rule as written in the spec, e.g. not_null(customer_id).")
    column: str | None = None


class DatasetStep(FrozenModel):
    """Parameter of the validate-dataset flow: one dataset, validated then versioned."""

    id: str = Field(description="Resource id, e.g. dataset.customers.")
    dataset: str
    path: str = Field(description="File path relative to the project folder.")
    format: str
    columns: dict[str, Any] = Field(description="Column -> type name, or list of categories.")
    key: list[str] = Field(default_factory=list)
    timestamp: str | None = None
    expectations: list[CompiledExpectation] = Field(default_factory=list)
    version: bool = True
    runtime: RuntimeContext


class FeatureViewPlan(FrozenModel):
    """A Feast feature view over a dataset file."""

    name: str
    entity: str
    join_key: str
    join_key_type: str
    source_dataset: str
    source_path: str = Field(description="Absolute path of the dataset file.")
    timestamp: str
    features: dict[str, Any] = Field(description="Feature -> declared column type.")
    ttl_seconds: int
    online: bool


class FeatureServicePlan(FrozenModel):
    """A Feast feature service: the exact, versioned feature set a model pins."""

    name: str
    base: str
    version: int | None
    references: list[str] = Field(description="`view:feature` references, in order.")
    features: list[str]
    on_missing: str
    digest: str


class FeatureRepoStep(FrozenModel):
    """The Feast repository the spec compiles to, with the profile's stores."""

    id: str = "features.repo"
    project: str = Field(description="Feast project name.")
    repo_dir: str
    online_store: dict[str, Any]
    registry: dict[str, Any]
    entities: dict[str, dict[str, str]]
    views: list[FeatureViewPlan]
    services: list[FeatureServicePlan]
    runtime: RuntimeContext

    def view(self, name: str) -> FeatureViewPlan:
        return next(v for v in self.views if v.name == name)

    def service(self, name: str) -> FeatureServicePlan:
        return next(s for s in self.services if s.name == name)


class MaterializeStep(FrozenModel):
    """Parameter of the materialize-features flow: one view, incrementally."""

    id: str = Field(description="Resource id, e.g. feature_view.customer_profile.")
    view: str
    repo: FeatureRepoStep


class GateThreshold(FrozenModel):
    metric: str
    op: str
    value: float

    def holds(self, observed: float) -> bool:
        return {
            ">=": observed >= self.value,
            ">": observed > self.value,
            "<=": observed <= self.value,
            "<": observed < self.value,
        }[self.op]

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


class ChampionGate(FrozenModel):
    metric: str
    min_delta: float
    confidence: float
    method: str


class TrainModelStep(FrozenModel):
    """Parameter of the train-model flow: data, estimator, search, metrics, gate, registry name."""

    id: str = Field(description="Resource id, e.g. model.churn.")
    model: str
    registered_name: str = Field(description="Name in the MLflow model registry.")
    task: str
    target: str
    features: list[str]
    feature_types: dict[str, Any] = Field(description="Feature -> declared column type.")
    estimator_class: str | None = None
    estimator_params: dict[str, Any] = Field(default_factory=dict)
    train_function: str | None = None
    train_params: dict[str, Any] = Field(default_factory=dict)
    split_by: str = Field(description="time or random.")
    test_size: float
    seed: int
    search: dict[str, Any] | None = None
    metrics: list[str]
    thresholds: list[GateThreshold] = Field(default_factory=list)
    vs_champion: ChampionGate | None = None
    model_digest: str = Field(description="Digest of this model's spec (cache key part).")
    schema_digest: str = Field(description="Digest of features, their types and the target.")
    dataset: DatasetStep
    feature_service: str | None = Field(
        None, description="Train from this feature service (point-in-time joins)."
    )
    feature_repo: FeatureRepoStep | None = None
    trial_runner: dict[str, Any] = Field(
        default_factory=lambda: {"kind": "threads"},
        description="Where trials run: threads, or dask (with address / local cluster size).",
    )
    runtime: RuntimeContext


class VariantRef(FrozenModel):
    """A model version a service loads: by registry alias or pinned version."""

    name: str = Field(description="Variant name: `stable`, or the candidate's alias.")
    alias: str | None = None
    version: int | None = None

    @property
    def reference(self) -> str:
        return f"version {self.version}" if self.version is not None else f"alias @{self.alias}"


class ServiceStep(FrozenModel):
    """Parameter of the build-service flow, and what `shipyard build|serve` work from."""

    id: str = Field(description="Resource id, e.g. service.churn-api.")
    service: str
    model: str
    registered_name: str = Field(description="Name of the model in the MLflow registry.")
    task: str
    variants: list[VariantRef] = Field(description="The stable variant first, then candidates.")
    inputs: list[str] = Field(
        description="Request fields: entity keys with a feature service, else model features."
    )
    input_types: dict[str, Any] = Field(description="Request field -> declared column type.")
    features: list[str] = Field(description="The model's input columns, in training order.")
    data_files: list[str] = Field(
        default_factory=list,
        description="Files holding the training data's columns (input histogram buckets).",
    )
    feature_service: str | None = None
    feature_repo: FeatureRepoStep | None = None
    host: str
    port: int
    workers: int
    timeout_seconds: float
    max_batch_size: int
    adaptive_batching: bool
    max_latency_ms: float
    max_request_bytes: int = 16 * 1024 * 1024
    auth: dict[str, Any] | None = Field(
        None, description="API keys and JWT settings; secrets stay ${secret:NAME} references."
    )
    rate_limit: dict[str, str | None] = Field(default_factory=dict)
    rate_limit_storage: str = Field(description="memory:// or a Redis URL.")
    log_database: str = Field(description="sqlite:///... or postgresql://... for the logs.")
    log_requests: bool
    log_predictions: bool
    mask: list[str] = Field(default_factory=list)
    sticky_key: str | None = None
    tls: dict[str, Any] | None = None
    runtime: RuntimeContext


class PlanStep(FrozenModel):
    """A node of the plan's dependency graph."""

    id: str
    resource: str
    action: str
    needs: tuple[str, ...] = ()
    flow: str = Field(description="The flow that performs this step.")


class DeploymentPlan(FrozenModel):
    """A Prefect deployment `shipyard apply` registers."""

    flow_name: str
    name: str
    source: str = Field(description="Folder holding the flow code (Shipyard's flows/ package).")
    entrypoint: str = Field(description="path/to/file.py:function, relative to `source`.")
    description: str
    parameters: dict[str, Any]
    schedule: str | None = None
    work_pool: str
    tags: tuple[str, ...]
    job_variables: dict[str, Any] = Field(default_factory=dict)
    resource: str

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"


BLOCK_TYPES = {
    "dvc_remote": "shipyard-dvc-remote",
    "mlflow": "shipyard-mlflow-tracking",
    "metrics": "shipyard-metrics-sink",
}
"""Connection role -> block type slug (the classes are in blocks/connections.py)."""


class BlockPlan(FrozenModel):
    """A Prefect block document `shipyard apply` saves (connections; secrets stay references)."""

    type: str = Field(description="Block type slug, e.g. shipyard-dvc-remote.")
    name: str
    fields: dict[str, Any]


class Plan(FrozenModel):
    """Everything a spec compiles to. Pure data: building it imports no Prefect."""

    project: str
    profile: str
    spec_digest: str
    prefect_api_url: str
    prefect_local: bool = Field(description="True when Shipyard runs the Prefect server itself.")
    prefect_database_url: str | None = Field(
        None, description="Database of the local Prefect server (unset: SQLite in the state)."
    )
    work_pool: str
    runtime: RuntimeContext
    steps: tuple[PlanStep, ...]
    deployments: tuple[DeploymentPlan, ...]
    blocks: tuple[BlockPlan, ...]
    secrets: tuple[str, ...] = Field(description="Names of the secrets the spec references.")
    features: FeatureRepoStep | None = Field(
        None, description="The Feast repository, when the spec declares features."
    )
    mlflow_server: dict[str, Any] | None = Field(
        None,
        description="The local MLflow server Shipyard runs (port, backend store, artifact root), "
        "when the profile asks for one.",
    )

    services: tuple[ServiceStep, ...] = Field(default=(), description="Compiled services.")

    def service(self, name: str) -> ServiceStep | None:
        return next((s for s in self.services if s.service == name), None)

    def block(self, role: str) -> BlockPlan:
        """The block document of a connection role (dvc_remote, mlflow, metrics)."""
        return next(b for b in self.blocks if b.type == BLOCK_TYPES[role])

    def deployment(self, flow_name: str, name: str) -> DeploymentPlan | None:
        for deployment in self.deployments:
            if deployment.flow_name == flow_name and deployment.name == name:
                return deployment
        return None
