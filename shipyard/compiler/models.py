"""`models:` -> TrainModelStep: data, estimator, search, metrics, gate and registry name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Discriminator, Field

from shipyard.compiler.datasets import ColumnType, DatasetStep
from shipyard.compiler.features import REPO_ID, service_feature_types
from shipyard.compiler.plan import FrozenModel, StepBase, digest
from shipyard.spec import ModelSpec, PipelineSpec, ProfileSpec
from shipyard.spec.models import parse_condition
from shipyard.stats.targets import ClassificationTarget, declared_target

if TYPE_CHECKING:
    from shipyard.compiler.compile import CompileContext

SearchValue = str | int | float | bool | None


class Distribution(FrozenModel):
    """A random-search distribution over [low, high]."""

    distribution: Literal["uniform", "loguniform", "int"]
    low: float
    high: float


class SearchPlan(FrozenModel):
    """Hyper-parameter search: every grid point, or `trials` seeded random draws."""

    strategy: Literal["grid", "random"]
    trials: int
    metric: str = Field(description="The metric that ranks the trials.")
    space: dict[str, list[SearchValue] | Distribution] = Field(
        description="Parameter -> values to try, or a distribution (random search)."
    )


class ThreadTrials(FrozenModel):
    """Trials run in a thread pool of the flow's process."""

    kind: Literal["threads"] = "threads"
    max_workers: int = 2


class DaskTrials(FrozenModel):
    """Trials run on a Dask cluster through prefect-dask: an existing one, or a local one."""

    kind: Literal["dask"] = "dask"
    address: str | None = None
    n_workers: int = 2
    threads_per_worker: int = 1


TrialRunner = Annotated[ThreadTrials | DaskTrials, Discriminator("kind")]


class GateThreshold(FrozenModel):
    metric: str
    op: Literal[">=", ">", "<=", "<"]
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
    method: Literal["auto", "delong", "bootstrap"]


class TrainModelStep(StepBase):
    """train-model: train (with search), evaluate, gate and register one model."""

    kind: Literal["model"] = "model"
    registered_name: str = Field(description="Name in the MLflow model registry.")
    task: Literal["classification", "regression"]
    target: str
    target_type: ColumnType | None = Field(
        None,
        description="The target column's declared type (None in plans compiled before it was "
        "recorded: the labels in the data tell).",
    )
    positive_class: bool | int | str | None = Field(
        None, description="The model's `positive_class` as written (None: the rule's default)."
    )
    features: list[str] = Field(description="Input columns, in the order the model gets them.")
    feature_types: dict[str, ColumnType] = Field(description="Feature -> declared column type.")
    estimator_class: str | None = None
    estimator_params: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of the estimator, as written."
    )
    train_function: str | None = None
    train_params: dict[str, Any] = Field(
        default_factory=dict, description="Parameters of the custom train function, as written."
    )
    split_by: Literal["time", "random"]
    test_size: float
    seed: int
    search: SearchPlan | None = None
    metrics: list[str]
    metrics_declared: bool = Field(
        True, description="False: `metrics` are the defaults, which follow the target's kind."
    )
    thresholds: list[GateThreshold] = Field(default_factory=list)
    vs_champion: ChampionGate | None = None
    model_digest: str = Field(description="Digest of this model's spec (cache key part).")
    schema_digest: str = Field(description="Digest of features, their types and the target.")
    dataset: str = Field(description="Id of the dataset step with the labels.")
    timestamp: str | None = Field(None, description="The dataset's event-time column.")
    key: list[str] = Field(
        default_factory=list,
        description="The dataset's key columns: what identifies a row for the holdout hash.",
    )
    feature_service: str | None = Field(
        None, description="Train from this feature service (point-in-time joins)."
    )
    trial_runner: TrialRunner = Field(default_factory=ThreadTrials)

    flow: ClassVar[str | None] = "train-model"
    parameter: ClassVar[str] = "model"
    noun: ClassVar[str] = "model"

    @property
    def dataset_name(self) -> str:
        return self.dataset.split(".", 1)[1]


def compile_models(ctx: CompileContext) -> Iterator[TrainModelStep]:
    for name, model in ctx.spec.models.items():
        data = ctx.step(f"dataset.{model.dataset}", DatasetStep)
        yield train_step(ctx.spec, name, model, data)


def train_step(
    spec: PipelineSpec, name: str, model: ModelSpec, data: DatasetStep
) -> TrainModelStep:
    dataset = spec.datasets[model.dataset]
    split_by = model.split.by
    if split_by == "auto":
        split_by = "time" if dataset.timestamp else "random"
    if model.feature_service is not None:
        feature_types = service_feature_types(spec, model.feature_service)
    else:
        feature_types = {f: data.columns[f] for f in model.features}
    features = list(feature_types)
    # a list of pairs, not a dict: the digest must change when the feature order changes
    schema = {
        "features": [[f, feature_types[f]] for f in features],
        "target": [model.target, data.columns[model.target]],
        "feature_service": model.feature_service,
    }
    if model.positive_class is not None:  # what the score means: a new major version
        schema["positive_class"] = model.positive_class
    target_type = data.columns[model.target]
    metrics = model.computed_metrics(_multiclass(model, target_type))
    tasks = ("train", "evaluate", "gate", "register")
    return TrainModelStep(
        id=f"model.{name}",
        name=name,
        description=model.description
        or f"Train model '{name}' on dataset '{model.dataset}', gate it and register it.",
        needs=(data.id, REPO_ID) if model.feature_service else (data.id,),
        tasks=("training-set", *tasks) if model.feature_service else tasks,
        schedule=model.schedule,
        registered_name=f"{spec.project}.{name}",
        task=model.task,
        target=model.target,
        target_type=target_type,
        positive_class=model.positive_class,
        features=features,
        feature_types=feature_types,
        feature_service=model.feature_service,
        estimator_class=model.estimator.class_ if model.estimator else None,
        estimator_params=dict(model.estimator.params) if model.estimator else {},
        train_function=model.train,
        train_params=dict(model.params),
        split_by=split_by,
        test_size=model.split.test_size,
        seed=model.split.seed,
        search=_search(model, metrics),
        metrics=metrics,
        metrics_declared=model.metrics is not None,
        thresholds=[
            GateThreshold.model_validate({"metric": metric, "op": op, "value": value})
            for metric, (op, value) in (
                (m, parse_condition(c)) for m, c in model.gate.thresholds.items()
            )
        ],
        vs_champion=ChampionGate(**model.gate.vs_champion.model_dump())
        if model.gate.vs_champion
        else None,
        model_digest=digest(
            {
                "model": model.model_dump(mode="json", by_alias=True),
                "dataset": dataset.model_dump(mode="json", by_alias=True),
            }
        ),
        schema_digest=digest(schema),
        dataset=data.id,
        timestamp=data.timestamp,
        key=list(data.key),
        trial_runner=_trial_runner(spec.active_profile),
    )


def _multiclass(model: ModelSpec, target_type: ColumnType) -> bool:
    """Whether the declared target has more than two classes (unknown until the data: no)."""
    if model.task != "classification":
        return False
    found = declared_target(model.target, target_type, model.positive_class)
    return isinstance(found, ClassificationTarget) and found.kind == "multiclass"


def _search(model: ModelSpec, metrics: list[str]) -> SearchPlan | None:
    search = model.search
    if search is None:
        return None
    space: dict[str, list[SearchValue] | Distribution] = {}
    for parameter, declared in search.space.items():
        if isinstance(declared, list):
            space[parameter] = list(declared)
        else:
            (kind, (low, high)) = next(iter(declared.items()))
            space[parameter] = Distribution(distribution=kind, low=low, high=high)
    return SearchPlan(
        strategy=search.strategy,
        trials=search.trials,
        metric=search.metric or metrics[0],
        space=space,
    )


def _trial_runner(profile: ProfileSpec) -> ThreadTrials | DaskTrials:
    if profile.dask is None:
        return ThreadTrials()
    return DaskTrials(**profile.dask.model_dump())
