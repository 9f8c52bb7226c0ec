"""The Plan: the typed, versioned artifact a spec compiles to; the contract with the runtime.

A plan is written by `shipyard plan -o FILE`, applied by `shipyard apply [--plan FILE]` (which
also saves it on the Prefect server as the `shipyard-plan` block the flows read), and diffed
against what is applied by `shipyard plan`. Steps are keyed by resource id (`model.churn`);
each kind of step is one class (`StepBase` subclasses register themselves by `kind`), and a
deployment names its step by id, so a deployment's parameters stay a few ids and options.

Everything in a plan is resolved: defaults filled in, paths absolute, settings typed. Secrets
stay `${secret:NAME}` references and are resolved only where they are used, at run time.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Discriminator, Field, SerializeAsAny, field_validator

SCHEMA_VERSION: Literal[2] = 2
"""Bumped whenever a plan written by an older Shipyard could be read wrongly by this one."""

ResourceId = Annotated[
    str, Field(pattern=r"^[a-z_]+\.[a-z][a-z0-9_-]*$", description="e.g. model.churn")
]


class FrozenModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def digest(value: Any) -> str:
    """sha256 of a JSON value with sorted keys: the same value always gives the same digest."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


class RuntimeContext(FrozenModel):
    """What every flow and service needs to find the project, its state and its connections."""

    project: str
    profile: str
    profile_kind: str
    project_dir: str = Field(description="Absolute folder of the spec; flows run from here.")
    spec_file: str = Field(description="The spec's file name inside project_dir.")
    state_dir: str = Field(description="Absolute folder for all runtime state.")
    spec_digest: str

    @property
    def spec_path(self) -> Path:
        return Path(self.project_dir) / self.spec_file


# -- steps ----------------------------------------------------------------------------------


_STEP_KINDS: dict[str, type[StepBase]] = {}


class StepBase(FrozenModel):
    """One resource's work in the plan. Subclasses set `kind` and register themselves.

    `tasks` are the stages the step's flow runs as Prefect tasks, in order, exactly as
    `shipyard plan` prints them; `needs` are the steps whose output this one reads.
    """

    kind: str
    id: ResourceId
    name: str = Field(description="The resource's name in the spec, e.g. churn.")
    description: str
    needs: tuple[str, ...] = Field(default=(), description="Ids of the steps this one reads.")
    tasks: tuple[str, ...] = Field(description="Stages run as Prefect tasks, in order.")
    schedule: str | None = Field(None, description="Cron schedule of the step's deployment.")

    flow: ClassVar[str | None] = None
    """The Prefect flow that runs this step (None: the step is run by the flows that need it)."""
    parameter: ClassVar[str] = "name"
    """The flow parameter that names the resource, e.g. `model` for train-model."""
    noun: ClassVar[str] = "step"
    """What `shipyard validate` counts, e.g. '2 models'."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        kind = cls.model_fields["kind"].default
        if isinstance(kind, str):  # `kind: Literal["model"] = "model"` names the kind
            _STEP_KINDS[kind] = cls

    def digest(self) -> str:
        return digest(self.model_dump(mode="json"))


StepT = TypeVar("StepT", bound=StepBase)


def step_from_json(data: Any) -> StepBase:
    """The step class its `kind` names, validated; an unknown kind is a clear error."""
    if isinstance(data, StepBase):
        return data
    if not isinstance(data, dict) or data.get("kind") not in _STEP_KINDS:
        kind = data.get("kind") if isinstance(data, dict) else type(data).__name__
        raise ValueError(
            f"unknown step kind {kind!r}; this Shipyard knows {', '.join(sorted(_STEP_KINDS))}"
        )
    return _STEP_KINDS[data["kind"]].model_validate(data)


# -- connections ----------------------------------------------------------------------------


class DvcRemoteBlock(FrozenModel):
    """Fields of the shipyard-dvc-remote block."""

    type: Literal["shipyard-dvc-remote"] = "shipyard-dvc-remote"
    name: str
    url: str
    options: dict[str, str] = Field(default_factory=dict)


class MlflowTrackingBlock(FrozenModel):
    """Fields of the shipyard-mlflow-tracking block."""

    type: Literal["shipyard-mlflow-tracking"] = "shipyard-mlflow-tracking"
    name: str
    tracking_uri: str
    artifact_root: str | None = None


class MetricsSinkBlock(FrozenModel):
    """Fields of the shipyard-metrics-sink block."""

    type: Literal["shipyard-metrics-sink"] = "shipyard-metrics-sink"
    name: str
    textfile_dir: str
    pushgateway_url: str | None = None
    username: str | None = None
    password: str | None = None


BlockPlan = Annotated[
    DvcRemoteBlock | MlflowTrackingBlock | MetricsSinkBlock, Discriminator("type")
]
Role = Literal["dvc_remote", "mlflow", "metrics"]


class Blocks(FrozenModel):
    """The connection block documents `shipyard apply` saves, one per role."""

    dvc_remote: DvcRemoteBlock
    mlflow: MlflowTrackingBlock
    metrics: MetricsSinkBlock

    def all(self) -> tuple[BlockPlan, ...]:
        return (self.dvc_remote, self.mlflow, self.metrics)

    def of(self, role: Role) -> BlockPlan:
        block: BlockPlan = getattr(self, role)
        return block


class PrefectTarget(FrozenModel):
    """The Prefect server the plan is applied to."""

    api_url: str
    local: bool = Field(description="True when Shipyard runs the Prefect server itself.")
    database_url: str | None = Field(
        None, description="Database of the local server (unset: SQLite in the state folder)."
    )
    work_pool: str
    work_pool_type: str = "process"


class MlflowServer(FrozenModel):
    """The local MLflow server Shipyard runs, when the profile asks for one."""

    port: int
    backend_store_uri: str
    artifact_root: str


class JobVariables(FrozenModel):
    """The work pool job variables of every deployment: where and with what environment."""

    working_dir: str
    env: dict[str, str]


class DeploymentPlan(FrozenModel):
    """A Prefect deployment `shipyard apply` registers: a flow, the step it runs, a schedule."""

    flow_name: str
    name: str
    step: str = Field(description="Id of the step the deployment runs.")
    source: str = Field(description="Folder holding the flow code (Shipyard's flows/).")
    entrypoint: str = Field(description="path/to/file.py:function, relative to `source`.")
    description: str
    parameters: dict[str, str | bool | int] = Field(
        description="The flow's parameters: the resource's name (and options left at default)."
    )
    schedule: str | None = None
    tags: tuple[str, ...]
    version: str = Field(
        description="Digest of this deployment and its step: changes exactly when what the "
        "deployment runs changes (Prefect shows it as the deployment's version)."
    )

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"


class KubernetesPlan(FrozenModel):
    """What `shipyard k8s render` writes: the profile's `kubernetes:` settings, defaults filled."""

    namespace: str = "default"
    registry: str | None = Field(None, description="Image prefix; unset: bare <service>:<tag>.")
    image_tag: str | None = Field(None, description="Unset: the last built Bento's version.")
    replicas: int = 2
    min_replicas: int = 2
    max_replicas: int = 10
    target_cpu_percent: int = 70
    cpu_request: str = "500m"
    memory_request: str = "1Gi"


class EnvironmentPlan(FrozenModel):
    """One environment of `environments:`, in promotion order, with its rollouts resolved."""

    profile: str
    position: int = Field(ge=0, description="0 for the first environment a release enters.")
    state_dir: str = Field(description="Its state folder (registry, Bento store, services).")
    approval: bool = False
    rollouts: dict[str, str] = Field(
        default_factory=dict,
        description="Service -> the rollout a promotion into this environment runs; a service "
        "without one: the promoted version becomes the champion and the service is rebuilt.",
    )


# -- the plan -------------------------------------------------------------------------------


class Plan(FrozenModel):
    """Everything a spec compiles to. Pure data: building or reading it imports no Prefect."""

    schema_version: Literal[2] = SCHEMA_VERSION
    project: str
    profile: str
    spec_digest: str
    runtime: RuntimeContext
    prefect: PrefectTarget
    mlflow_server: MlflowServer | None = None
    blocks: Blocks
    job_variables: JobVariables
    secrets: tuple[str, ...] = Field(description="Names of the secrets the spec references.")
    steps: dict[str, SerializeAsAny[StepBase]] = Field(
        description="Resource id -> step, in dependency order."
    )
    deployments: dict[str, DeploymentPlan] = Field(description="flow/name -> deployment.")
    kubernetes: KubernetesPlan = Field(
        default_factory=KubernetesPlan,
        description="Manifest settings of `shipyard k8s render` (a default: older plans load).",
    )
    environments: tuple[EnvironmentPlan, ...] = Field(
        default=(), description="`environments:` in promotion order (empty: none declared)."
    )

    def environment(self, profile: str) -> EnvironmentPlan | None:
        """The environment a profile is, if it is one."""
        return next((e for e in self.environments if e.profile == profile), None)

    @field_validator("steps", mode="before")
    @classmethod
    def _typed_steps(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: step_from_json(step) for key, step in value.items()}
        return value

    @property
    def digest(self) -> str:
        """Digest of the whole plan (what `shipyard apply` records as applied)."""
        return digest(self.model_dump(mode="json"))

    def step(self, step_id: str, kind: type[StepT]) -> StepT:
        """The step with this id, which must be of this kind (KeyError/TypeError otherwise)."""
        step = self.steps[step_id]
        if not isinstance(step, kind):
            raise TypeError(f"step '{step_id}' is a {step.kind} step, not a {kind.__name__}")
        return step

    def named(self, kind: type[StepT], name: str) -> StepT:
        """The step of the resource `name` (e.g. the service 'churn-api'), or a ShipyardError
        naming the resources of that kind there are."""
        from shipyard.diagnostics import did_you_mean
        from shipyard.errors import ShipyardError

        prefix = kind.model_fields["kind"].default
        step = self.steps.get(f"{prefix}.{name}")
        if isinstance(step, kind):
            return step
        names = [s.name for s in self.steps_of(kind)]
        noun = kind.noun
        raise ShipyardError(
            f"{noun} '{name}' is not defined in {self.runtime.spec_file}",
            hint=did_you_mean(name, names)
            or (f"defined: {', '.join(names)}" if names else f"no {noun} is defined"),
        )

    def steps_of(self, kind: type[StepT]) -> list[StepT]:
        return [s for s in self.steps.values() if isinstance(s, kind)]

    def deployment(self, flow_name: str, name: str) -> DeploymentPlan | None:
        return self.deployments.get(f"{flow_name}/{name}")

    def deployment_of(self, step_id: str) -> DeploymentPlan | None:
        return next((d for d in self.deployments.values() if d.step == step_id), None)


def write_plan(plan: Plan, path: Path) -> None:
    """Write a plan file (`shipyard plan -o FILE`)."""
    path.write_text(plan.model_dump_json(indent=2) + "\n", encoding="utf-8")


def read_plan(path: Path) -> Plan:
    """Read a plan file; a missing, malformed or other-version file is a ShipyardError."""
    from pydantic import ValidationError

    from shipyard.errors import ShipyardError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ShipyardError(
            f"plan file '{path}' not found", hint=f"write one with `shipyard plan -o {path}`"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShipyardError(
            f"'{path}' is not a plan file: {exc}",
            hint=f"write it again with `shipyard plan -o {path}`",
        ) from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise ShipyardError(
            f"'{path}' is a plan of schema version {version}; this Shipyard reads plans of "
            f"schema version {SCHEMA_VERSION}",
            hint=f"write it again with this Shipyard: `shipyard plan -o {path}`",
        )
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ShipyardError(
            f"'{path}' is not a valid plan ({exc.error_count()} problems; first at {where}: "
            f"{first['msg']})",
            hint=f"plans are written by Shipyard, not by hand: `shipyard plan -o {path}`",
        ) from None


__all__ = [
    "SCHEMA_VERSION",
    "BlockPlan",
    "Blocks",
    "DeploymentPlan",
    "DvcRemoteBlock",
    "FrozenModel",
    "JobVariables",
    "KubernetesPlan",
    "MetricsSinkBlock",
    "MlflowServer",
    "MlflowTrackingBlock",
    "Plan",
    "PrefectTarget",
    "ResourceId",
    "Role",
    "RuntimeContext",
    "StepBase",
    "digest",
    "read_plan",
    "step_from_json",
    "write_plan",
]
