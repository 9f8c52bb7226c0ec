"""`models:` estimators trained on a dataset, tracked in MLflow, gated and registered."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from shipyard.diagnostics import did_you_mean, one_of
from shipyard.spec.base import Cron, SpecModel, spec_rule

_CONDITION = re.compile(r"^\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")
CLASS_PATTERN = r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$"
TRAIN_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"
DISTRIBUTIONS = ("uniform", "loguniform", "int")


def parse_condition(text: str) -> tuple[str, float]:
    """'>= 0.80' -> ('>=', 0.8)."""
    match = _CONDITION.match(text)
    if not match:
        raise ValueError(f"'{text}' is not a condition: write e.g. '>= 0.80' or '< 0.35'")
    return match.group(1), float(match.group(2))


def _is_number(value: Any) -> bool:
    """A finite int or float (YAML's .inf and .nan are not bounds, and booleans are not numbers)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _condition_not_number(value: Any) -> Any:
    """`roc_auc: 0.8` (a bare number) is the usual slip: say what is missing."""
    if _is_number(value):
        raise spec_rule(
            f"{value} is not a condition",
            f"add the comparison and quote it: '>= {value}' (or '<= {value}' for a loss)",
        )
    if isinstance(value, dict | list):
        shape = "list" if isinstance(value, list) else "mapping"
        raise spec_rule(
            f"must be a condition such as '>= 0.80', not a {shape}",
            "a gate holds `metric: condition` entries and `vs_champion: {...}`",
        )
    return value


def _check_condition(text: str) -> str:
    if not _CONDITION.match(text):
        raise spec_rule(
            f"'{text}' is not a condition",
            "write a comparison and a number, e.g. '>= 0.80' or '< 0.35'",
        )
    return text


Condition = Annotated[
    str,
    BeforeValidator(_condition_not_number),
    AfterValidator(_check_condition),
    WithJsonSchema({"type": "string", "pattern": _CONDITION.pattern}),
]

_EXAMPLE_BOUNDS = {"uniform": "[0.0, 1.0]", "loguniform": "[0.001, 1.0]", "int": "[1, 10]"}


def _check_space(space: Any, info: ValidationInfo) -> Any:
    """One entry of `search.space`: a non-empty list, or (random search) one distribution."""
    if isinstance(space, list):
        if not space:
            raise spec_rule("empty list of values", "list the values to try, e.g. [0.1, 1.0]")
        return space
    if info.data.get("strategy") == "grid":
        raise spec_rule(
            "grid search needs a list of values, not a distribution",
            "list the values to try, or use `strategy: random` to sample a distribution",
        )
    if not (isinstance(space, dict) and len(space) == 1):
        raise spec_rule(
            "must be a list of values or one distribution",
            "e.g. [1, 2, 3], {uniform: [0.0, 1.0]}, {loguniform: [0.001, 1.0]} or {int: [1, 10]}",
        )
    kind, bounds = next(iter(space.items()))
    if kind not in DISTRIBUTIONS:
        raise spec_rule(
            f"unknown distribution '{kind}'",
            did_you_mean(str(kind), DISTRIBUTIONS) or one_of(DISTRIBUTIONS),
            (str(kind),),
            key=True,
        )
    example = f"e.g. {{{kind}: {_EXAMPLE_BOUNDS[kind]}}}"
    if not (isinstance(bounds, list) and len(bounds) == 2 and all(map(_is_number, bounds))):
        raise spec_rule(f"{kind} bounds must be two finite numbers [lo, hi]", example, (kind,))
    if kind == "int" and not all(float(b).is_integer() for b in bounds):
        raise spec_rule(f"int bounds {bounds} must be whole numbers", example, (kind,))
    lo, hi = bounds
    if lo >= hi:
        raise spec_rule(
            f"{kind} bounds [{lo}, {hi}] are not increasing",
            f"write [lo, hi] with lo < hi, e.g. [{hi}, {lo}]"
            if lo > hi
            else "write [lo, hi] with lo < hi",
            (kind,),
        )
    if kind == "loguniform" and lo <= 0:
        raise spec_rule(
            f"loguniform bounds [{lo}, {hi}] must be positive",
            "a log scale starts above 0, e.g. {loguniform: [0.001, 1.0]}",
            (kind,),
        )
    return space


def _features_kind(value: Any) -> str | None:
    if isinstance(value, list):
        return "columns"
    if isinstance(value, str):
        return "service"
    return None


Features = Annotated[
    Annotated[list[str], Tag("columns"), Field(min_length=1)]
    | Annotated[str, Tag("service"), Field(min_length=1)],
    Discriminator(
        _features_kind,
        custom_error_type="features_type",
        custom_error_message="must be a list of columns or the name of a feature service",
    ),
]
"""`features:` of a model: dataset columns, or a feature service by name (one error, not two)."""


class EstimatorSpec(SpecModel):
    """The estimator: a class by import path with its constructor parameters."""

    class_: str = Field(
        alias="class",
        pattern=CLASS_PATTERN,
        description="Import path of any estimator with fit/predict, e.g. "
        "sklearn.ensemble.HistGradientBoostingClassifier.",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Constructor parameters.")


class SplitSpec(SpecModel):
    """How the holdout is cut: by time when the dataset has a timestamp, else at random (by a
    stable hash of each row's key, so a row keeps its side when other rows come and go)."""

    test_size: float = Field(0.2, gt=0, lt=1, description="Fraction of rows held out.")
    by: Literal["auto", "time", "random"] = Field(
        "auto",
        description="auto: time when the dataset declares `timestamp`, else random. time: the "
        "newest rows are held out. random: the rows whose hash of the dataset's key (or, "
        "without a key, of the row's values) falls below test_size.",
    )
    seed: int = Field(42, description="Salts the random split's hash (and seeds everything else).")


class SearchSpec(SpecModel):
    """Hyper-parameter search; trials run in parallel on the flow's task runner."""

    strategy: Literal["grid", "random"] = Field(description="grid: every combination; random.")
    trials: int = Field(10, ge=1, le=1000, description="Trials for random search.")
    metric: str | None = Field(
        None, description="Metric that ranks the trials (default: the first of `metrics`)."
    )
    space: dict[str, Annotated[Any, AfterValidator(_check_space)]] = Field(
        min_length=1,
        description="Parameter -> a list of values, or {uniform: [lo, hi]}, "
        "{loguniform: [lo, hi]}, {int: [lo, hi]} for random search.",
    )


class ChampionComparison(SpecModel):
    """Compare with the current champion on the same holdout, with a paired statistical test."""

    metric: str = Field(description="Metric compared, e.g. roc_auc.")
    min_delta: float = Field(
        0.0,
        description="Non-inferiority margin: the lower confidence bound of (candidate - champion) "
        "must be at least this (negative allows a small loss, e.g. -0.005).",
    )
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Confidence level of the interval.")
    method: Literal["auto", "delong", "bootstrap"] = Field(
        "auto", description="auto: DeLong for roc_auc, paired bootstrap otherwise."
    )


def _inline_thresholds_schema(schema: dict[str, Any]) -> None:
    schema["additionalProperties"] = {
        "type": "string",
        "pattern": _CONDITION.pattern,
        "description": "Metric -> condition written inline, e.g. roc_auc: '>= 0.80'.",
    }


class GateSpec(SpecModel):
    """Promotion gate: `metric: '>= value'` thresholds plus an optional champion comparison."""

    model_config = ConfigDict(json_schema_extra=_inline_thresholds_schema)

    thresholds: dict[str, Condition] = Field(
        default_factory=dict, description="Metric -> condition, e.g. roc_auc: '>= 0.80'."
    )
    vs_champion: ChampionComparison | None = Field(None, description=ChampionComparison.__doc__)

    @model_validator(mode="before")
    @classmethod
    def _thresholds_inline(cls, value: Any) -> Any:
        """Accept `gate: {roc_auc: '>= 0.8', vs_champion: {...}}` as written in the spec."""
        if isinstance(value, dict) and "thresholds" not in value:
            inline = {k: v for k, v in value.items() if k != "vs_champion"}
            for key, item in inline.items():
                typo = did_you_mean(str(key), ("vs_champion",))
                if isinstance(item, dict) and typo:
                    raise spec_rule(
                        f"unknown key '{key}'", typo, (str(key),), key=True, code="E101"
                    )
            rest = {k: v for k, v in value.items() if k == "vs_champion"}
            return {**rest, "thresholds": inline}
        return value


class ModelSpec(SpecModel):
    """A model trained on a dataset, tracked in MLflow and registered when its gate passes."""

    description: str | None = Field(None, description="What the model predicts, for people.")
    task: Literal["classification", "regression"] = Field(description="What is predicted.")
    dataset: str = Field(description="The dataset (under `datasets:`) the model trains on.")
    target: str = Field(
        description="Label column: a number for regression; for classification bool, int, str "
        "or a category, with two classes (binary) or more (multiclass)."
    )
    positive_class: bool | int | str | None = Field(
        None,
        description="The class a binary classifier detects, as the data writes it (e.g. "
        "churned): its probability is the score, and roc_auc, f1, precision and recall are "
        "about it. Default true for a bool target and 1 for 0/1 labels; required for other "
        "two-class targets, e.g. yes/no.",
    )
    features: Features = Field(
        description="Input columns of the dataset, in the order the model receives them; or the "
        "name of a feature service (e.g. churn_v2): the training set is then built from the "
        "feature store with point-in-time joins on the dataset's entity keys and timestamps.",
    )
    estimator: EstimatorSpec | None = Field(None, description=EstimatorSpec.__doc__)
    train: str | None = Field(
        None,
        pattern=TRAIN_PATTERN,
        description="A custom training function `module:function` instead of `estimator`; "
        "called as fn(X_train, y_train, params, seed) and returning a fitted model with predict.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Parameters passed to the custom `train` function."
    )
    split: SplitSpec = Field(default_factory=SplitSpec, description=SplitSpec.__doc__)
    search: SearchSpec | None = Field(None, description=SearchSpec.__doc__)
    metrics: list[str] | None = Field(
        None, description="Metrics computed on the holdout (default depends on the task)."
    )
    gate: GateSpec = Field(default_factory=GateSpec, description=GateSpec.__doc__)
    schedule: Cron | None = Field(
        None, description="Retrain schedule of the train-model deployment."
    )

    @model_validator(mode="after")
    def _one_trainer(self) -> ModelSpec:
        if self.estimator is not None and self.train is not None:
            raise spec_rule(
                "give `estimator` or `train`, not both",
                "`estimator` fits a class by import path; `train` calls your own function",
                ("train",),
                key=True,
            )
        if self.estimator is None and self.train is None:
            kind = "Classifier" if self.task == "classification" else "Regressor"
            raise spec_rule(
                "missing required key 'estimator' (or 'train')",
                f"add `estimator: {{class: sklearn.ensemble.HistGradientBoosting{kind}}}`, "
                "or `train: module:function`",
                key=True,
                code="E102",
            )
        if self.estimator is not None and self.params:
            raise spec_rule(
                "`params` is for a custom `train` function",
                "put estimator parameters under `estimator.params`",
                ("params",),
                key=True,
            )
        return self

    @property
    def feature_service(self) -> str | None:
        return self.features if isinstance(self.features, str) else None

    def computed_metrics(self, multiclass: bool = False) -> list[str]:
        """The metrics computed on the holdout: declared, or the task's defaults (those of a
        multiclass target when it has more than two classes)."""
        from shipyard.stats.metrics import default_metrics

        return list(self.metrics or default_metrics(self.task, multiclass))
