"""`features:` -> the Feast repository step and one materialize step per online feature view."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Discriminator, Field, model_validator

from shipyard.compiler.datasets import ColumnType, column_type
from shipyard.compiler.plan import FrozenModel, StepBase, digest
from shipyard.databases import tls_parameters, with_tls
from shipyard.spec import PipelineSpec, parse_duration
from shipyard.spec.datasets import CategoryType
from shipyard.spec.features import service_features, service_references, service_version

if TYPE_CHECKING:
    from shipyard.compiler.compile import CompileContext

REPO_ID = "features.repo"
STATIC_EVENT_TIME = "_shipyard_event_time"
"""The event-time column of a static view's source copy: one constant instant for every row."""
SOURCES_DIR = "sources"
"""Folder of the Feast repository holding the parquet copies Shipyard makes of view sources."""


class SqliteOnlineStore(FrozenModel):
    type: Literal["sqlite"] = "sqlite"
    path: str


class RedisOnlineStore(FrozenModel):
    type: Literal["redis"] = "redis"
    connection_string: str = Field(description="host:port[,options] as Feast takes it.")


OnlineStore = Annotated[SqliteOnlineStore | RedisOnlineStore, Discriminator("type")]


class FileRegistry(FrozenModel):
    registry_type: Literal["file"] = "file"
    path: str


class SqlRegistry(FrozenModel):
    registry_type: Literal["sql"] = "sql"
    path: str = Field(description="SQLAlchemy URL of the registry database.")
    cache_ttl_seconds: int = 60


Registry = Annotated[FileRegistry | SqlRegistry, Discriminator("registry_type")]


class EntityPlan(FrozenModel):
    join_key: str
    value_type: Literal["STRING", "INT64"]


class FeatureViewPlan(FrozenModel):
    """A Feast feature view over a dataset file.

    Feast reads parquet only: a view over another format, or a static one (its dataset has no
    timestamp), reads a parquet copy of the dataset that Shipyard writes at run time.
    """

    name: str
    entity: str
    join_key: str
    join_key_type: Literal["STRING", "INT64"]
    source_dataset: str
    source_path: str = Field(description="Absolute path of the dataset file.")
    # the defaults read a plan applied by an earlier Shipyard as what it was: a view over the
    # parquet file itself (`shipyard run` then sees the plan changed and applies it again)
    source_format: str = Field(
        "parquet", description="Format of the dataset file: parquet, csv, json, jsonl."
    )
    source_columns: dict[str, ColumnType] = Field(
        default_factory=dict,
        description="Declared types of the columns Feast reads: join key, timestamp, features.",
    )
    offline_path: str = Field(
        description="Absolute path of the parquet file Feast reads: the dataset file itself, "
        "or its copy under the state folder."
    )
    static: bool = Field(
        False, description="No timestamp: one row per entity, valid forever (ttl 0, no limit)."
    )
    timestamp: str = Field(
        description=f"Event-time column Feast reads; {STATIC_EVENT_TIME} in a static view's copy."
    )
    features: dict[str, ColumnType] = Field(description="Feature -> declared column type.")
    ttl_seconds: int = Field(description="0: no limit.")
    online: bool

    @model_validator(mode="before")
    @classmethod
    def _read_in_place(cls, data: Any) -> Any:
        if isinstance(data, dict) and "offline_path" not in data and "source_path" in data:
            return {**data, "offline_path": data["source_path"]}
        return data

    @property
    def copied(self) -> bool:
        """Feast reads a copy of the dataset, not the dataset file itself."""
        return self.offline_path != self.source_path


class FeatureServicePlan(FrozenModel):
    """A Feast feature service: the exact, versioned feature set a model pins."""

    name: str
    base: str
    version: int | None
    references: list[str] = Field(description="`view:feature` references, in order.")
    features: list[str]
    on_missing: Literal["null", "error"]
    digest: str


class FeatureRepoStep(StepBase):
    """The Feast repository the spec compiles to, with the profile's stores."""

    kind: Literal["feature_repo"] = "feature_repo"
    project: str = Field(description="Feast project name.")
    repo_dir: str
    online_store: OnlineStore
    registry: Registry
    entities: dict[str, EntityPlan]
    views: list[FeatureViewPlan]
    services: list[FeatureServicePlan]

    noun: ClassVar[str] = "feature repository"

    def view(self, name: str) -> FeatureViewPlan:
        return next(v for v in self.views if v.name == name)

    def service(self, name: str) -> FeatureServicePlan:
        return next(s for s in self.services if s.name == name)

    def service_keys(self, name: str) -> dict[str, Literal["STRING", "INT64"]]:
        """The entity join keys a feature service is looked up by, with their types."""
        service = self.service(name)
        views = {r.partition(":")[0] for r in service.references}
        return {
            self.entities[v.entity].join_key: self.entities[v.entity].value_type
            for v in self.views
            if v.name in views
        }

    def service_sources(self, name: str) -> list[str]:
        """The files of the views a feature service reads, sorted."""
        service = self.service(name)
        return sorted(
            {
                v.source_path
                for v in self.views
                if any(r.startswith(f"{v.name}:") for r in service.references)
            }
        )


class MaterializeStep(StepBase):
    """materialize-features: one view's new rows into the online store, incrementally."""

    kind: Literal["feature_view"] = "feature_view"
    repo: str = Field(REPO_ID, description="Id of the feature repository step.")

    flow: ClassVar[str | None] = "materialize-features"
    parameter: ClassVar[str] = "view"
    noun: ClassVar[str] = "feature view"


def compile_features(ctx: CompileContext) -> Iterator[StepBase]:
    spec = ctx.spec
    if not spec.features.views:
        return
    repo = feature_repo(spec, ctx.project_dir, ctx.state_dir)
    sources = {v.source_dataset for v in repo.views}
    yield repo.model_copy(
        update={"needs": tuple(f"dataset.{name}" for name in spec.datasets if name in sources)}
    )
    for view in repo.views:
        if not view.online:
            continue
        declared = spec.features.views[view.name]
        yield MaterializeStep(
            id=f"feature_view.{view.name}",
            name=view.name,
            description=declared.description
            or f"Materialize feature view '{view.name}' incrementally into the online store.",
            needs=(REPO_ID, f"dataset.{view.source_dataset}"),
            tasks=("materialize",),
            schedule=declared.schedule,
        )


def service_feature_types(spec: PipelineSpec, service: str) -> dict[str, ColumnType]:
    """Feature -> declared type of a feature service's features, in order."""
    return {
        f: column_type(spec.datasets[view.source].columns[f])
        for view, f in service_features(spec.features, service)
    }


JOIN_KEY_TYPES: dict[str, str] = {"STRING": "str", "INT64": "int"}
"""Feast value type of an entity key -> the request field type a service declares."""


def feature_repo(spec: PipelineSpec, project_dir: Path, state_dir: Path) -> FeatureRepoStep:
    """The Feast repository of the spec (also what a service reading features online needs)."""
    profile = spec.active_profile
    repo_dir = state_dir / "feast"
    online: SqliteOnlineStore | RedisOnlineStore = SqliteOnlineStore(
        path=str(repo_dir / "online.db")
    )
    if profile.feast.online_store:
        address = profile.feast.online_store.removeprefix("redis://").rstrip("/")
        online = RedisOnlineStore(connection_string=address)
    registry: FileRegistry | SqlRegistry = FileRegistry(path=str(repo_dir / "registry.db"))
    if profile.feast.registry:
        url = profile.feast.registry
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg2://" + url.removeprefix("postgresql://")
        registry = SqlRegistry(path=with_tls(url, tls_parameters(profile.postgres, project_dir)))
    entities = {
        name: EntityPlan(join_key=entity.join_key, value_type=_key_type(spec, name))
        for name, entity in spec.features.entities.items()
    }
    views = [
        _view_plan(spec, name, entities[view.entity], project_dir, repo_dir)
        for name, view in spec.features.views.items()
    ]
    services = []
    for name, service in spec.features.services.items():
        base, version = service_version(name)
        references = service_references(spec.features, name)
        services.append(
            FeatureServicePlan(
                name=name,
                base=base,
                version=version,
                references=references,
                features=[f for _, f in service_features(spec.features, name)],
                on_missing=service.on_missing,
                digest=_service_digest(spec, references),
            )
        )
    return FeatureRepoStep(
        id=REPO_ID,
        name="repo",
        description="The Feast repository: entities, feature views and feature services.",
        tasks=("apply",),
        project="".join(c if c.isalnum() else "_" for c in spec.project),
        repo_dir=str(repo_dir),
        online_store=online,
        registry=registry,
        entities=entities,
        views=views,
        services=services,
    )


def _view_plan(
    spec: PipelineSpec, name: str, entity: EntityPlan, project_dir: Path, repo_dir: Path
) -> FeatureViewPlan:
    """The view as Feast runs it: the parquet file it reads, its event time and ttl."""
    view = spec.features.views[name]
    source = spec.datasets[view.source]
    assert source.path is not None, "validation: a feature source is a file dataset (E610)"
    source_path = str(project_dir / source.path)
    source_format = source.resolved_format or "parquet"
    timestamp = source.timestamp
    static = timestamp is None
    kept = [entity.join_key, *([timestamp] if timestamp else []), *view.features]
    return FeatureViewPlan(
        name=name,
        entity=view.entity,
        join_key=entity.join_key,
        join_key_type=entity.value_type,
        source_dataset=view.source,
        source_path=source_path,
        source_format=source_format,
        source_columns={c: column_type(source.columns[c]) for c in dict.fromkeys(kept)},
        offline_path=source_path
        if source_format == "parquet" and not static
        else str(repo_dir / SOURCES_DIR / f"{name}.parquet"),
        static=static,
        timestamp=timestamp or STATIC_EVENT_TIME,
        features={f: column_type(source.columns[f]) for f in view.features},
        ttl_seconds=0 if static else int(parse_duration(view.ttl)),
        online=view.online,
    )


def _key_type(spec: PipelineSpec, entity: str) -> Literal["STRING", "INT64"]:
    """An entity key is a string when any source declares it so; a category key is a string
    unless all its categories are numbers."""
    join_key = spec.features.entities[entity].join_key
    key_types = set()
    for view in spec.features.views.values():
        if view.entity != entity or view.source not in spec.datasets:
            continue
        declared: Any = spec.datasets[view.source].columns.get(join_key, "int")
        if isinstance(declared, CategoryType):
            declared = "str" if any(isinstance(c, str) for c in declared.category) else "int"
        key_types.add(declared)
    return "STRING" if "str" in key_types else "INT64"


def _service_digest(spec: PipelineSpec, references: list[str]) -> str:
    """Changes when what the service serves changes: not a view's description or schedule."""
    views = spec.features.views
    in_service = {r.split(":")[0] for r in references}
    static = sorted(v for v in in_service if spec.datasets[views[v].source].timestamp is None)
    return digest(
        {
            # only when there are any, so the digests of services without them stay as they were
            **({"static": static} if static else {}),
            "references": references,
            "views": {
                r.split(":")[0]: views[r.split(":")[0]].model_dump(
                    mode="json", exclude={"description", "schedule"}
                )
                for r in references
            },
            # a column whose type changes changes what the service serves
            "types": {
                r: column_type(spec.datasets[views[v].source].columns[f])
                for r in references
                for v, f in [r.split(":", 1)]
            },
        }
    )[:16]


def repo_step(steps: Mapping[str, StepBase]) -> FeatureRepoStep | None:
    """The plan's feature repository step, or None when the spec declares no features."""
    repo = steps.get(REPO_ID)
    return repo if isinstance(repo, FeatureRepoStep) else None
