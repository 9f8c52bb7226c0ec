"""The target of a training: its labels as the rule reads them, and what its kind allows.

`shipyard.stats.targets` is the rule (shared with spec validation); this module applies it to
the data of a run: labels read from a file become plain Python values of the declared type, the
classes found are checked against the model's `positive_class`, and the metrics, gate and
search the model names are checked against the kind (binary or multiclass) the data has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.compiler import TrainModelStep
from shipyard.errors import ShipyardError
from shipyard.stats.metrics import binary_only_metrics, default_metrics
from shipyard.stats.targets import (
    ClassificationTarget,
    DeclaredType,
    TargetProblem,
    observed_target,
    same_label,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

INSTEAD = {
    "f1": "f1_macro or f1_weighted",
    "precision": "f1_macro or f1_weighted",
    "recall": "f1_macro or f1_weighted",
    "pr_auc": "roc_auc",
    "brier": "log_loss",
}


def normalise_labels(labels: pd.Series, step: TrainModelStep) -> pd.Series:
    """Labels (none missing) as values of their declared type: a file's 0/1 column read as
    floats becomes ints, a parquet category column its plain values, bools stay bools."""
    import pandas as pd

    declared = _declared(step, labels)
    if isinstance(labels.dtype, pd.CategoricalDtype):
        labels = labels.astype(object)
    if declared == "bool" and labels.dtype != bool:
        return labels.astype(bool) if set(labels.unique()) <= {True, False} else labels
    if declared == "int" or (not isinstance(declared, str) and _all_ints(declared)):
        try:
            as_int = labels.astype("int64")
        except (TypeError, ValueError):
            return labels
        return as_int if (as_int == labels).all() else labels
    if declared == "str" or not isinstance(declared, str):
        return labels.map(lambda v: v if isinstance(v, str) else str(v))
    return labels


def target_of(step: TrainModelStep, labels: pd.Series) -> ClassificationTarget:
    """The rule applied to the labels of the data; a ShipyardError naming the fix when the
    target cannot be trained on, or when the metrics, gate or search need another kind."""
    found = observed_target(
        step.target,
        _declared(step, labels),
        step.positive_class,
        (_python(v) for v in labels.unique()),
    )
    if isinstance(found, TargetProblem):
        where = "the model's `positive_class`" if found.at == "positive_class" else "the model"
        raise ShipyardError(
            found.message,
            hint=f"{found.hint} (in pipelines.yaml: {where})",
            resource=step.id,
        )
    if found.kind == "multiclass":
        _ensure_multiclass_fits(step, found)
    return found


def holdout_metrics(step: TrainModelStep, target: ClassificationTarget | None) -> list[str]:
    """The metrics computed on the holdout: as the spec declares them, or the defaults of the
    target's kind (a model with a plain `int` or `str` target learns it only from the data)."""
    if step.metrics_declared or target is None or target.kind != "multiclass":
        return list(step.metrics)
    return list(default_metrics(step.task, multiclass=True))


def metric_names(step: TrainModelStep) -> list[str]:
    """Every metric a training of the step may have computed (either kind's defaults)."""
    if step.metrics_declared:
        return list(step.metrics)
    return list(dict.fromkeys([*step.metrics, *default_metrics(step.task, multiclass=True)]))


CLASSES_KEY = "shipyard"
"""The MLmodel metadata key under which a classifier's classes and positive class are kept."""


def class_metadata(target: ClassificationTarget | None) -> dict[str, Any] | None:
    """A classifier's classes and positive class, for its MLmodel file: serving reads them to
    give the positive class's probability (which need not be predict_proba's last column)."""
    if target is None or target.classes is None:
        return None
    return {
        CLASSES_KEY: {
            "classes": list(target.classes),
            "positive_class": target.positive,
            "kind": target.kind,
        }
    }


def class_tags(target: ClassificationTarget | None) -> dict[str, str]:
    """The same as registry version tags, for people and `shipyard models show`."""
    if target is None or target.classes is None:
        return {}
    import json

    tags = {"shipyard.classes": json.dumps(list(target.classes))}
    if target.positive is not None:
        tags["shipyard.positive_class"] = json.dumps(target.positive)
    return tags


def _ensure_multiclass_fits(step: TrainModelStep, target: ClassificationTarget) -> None:
    named = [t.metric for t in step.thresholds]
    if step.metrics_declared:
        named += step.metrics
    if step.vs_champion is not None:
        named.append(step.vs_champion.metric)
    if step.search is not None:
        named.append(step.search.metric)
    classes = len(target.classes or ())
    if binary := binary_only_metrics(named):
        instead = "; ".join(f"{m} -> {INSTEAD.get(m, 'f1_macro')}" for m in binary)
        raise ShipyardError(
            f"target '{step.target}' has {classes} classes in the data, and the model names "
            f"{', '.join(repr(m) for m in binary)}, which need a binary target (a positive class)",
            hint=f"in pipelines.yaml use {instead}",
            resource=step.id,
        )
    if step.vs_champion is not None and step.vs_champion.method == "delong":
        raise ShipyardError(
            f"target '{step.target}' has {classes} classes in the data, and DeLong's test "
            "compares binary ROC AUCs",
            hint="in pipelines.yaml use `method: bootstrap` under gate.vs_champion (or leave "
            "it out)",
            resource=step.id,
        )


def class_probabilities(
    model: Any, x: pd.DataFrame, target: ClassificationTarget
) -> npt.NDArray[np.float64] | None:
    """predict_proba's columns in the order of the target's classes (a class the model never
    saw in training gets probability 0), or None for a model without predict_proba."""
    import numpy as np

    if not hasattr(model, "predict_proba"):
        return None
    proba = np.asarray(model.predict_proba(x), dtype=np.float64)
    classes = target.classes or ()
    known = [_python(c) for c in getattr(model, "classes_", classes)]
    out = np.zeros((proba.shape[0], len(classes)))
    for column, label in enumerate(known):
        at = next((i for i, c in enumerate(classes) if same_label(c, label)), None)
        if at is not None and column < proba.shape[1]:
            out[:, at] = proba[:, column]
    return out


def encode(target: ClassificationTarget, labels: Any) -> npt.NDArray[np.int64]:
    """Labels as the paired comparison reads them: 1 for the positive class, else 0 (binary);
    the class's index in `target.classes` (multiclass), and a label that is none of them one
    index past the last (which the comparison refuses)."""
    import numpy as np

    classes = target.classes or ()
    values = [_python(v) for v in np.asarray(labels).tolist()]
    if target.kind == "binary":
        return np.fromiter(
            (same_label(v, target.positive) for v in values), dtype=np.int64, count=len(values)
        )
    index = {(type(c), c): i for i, c in enumerate(classes)}
    unknown = len(classes)
    return np.fromiter(
        (index.get((type(v), v), unknown) for v in values), dtype=np.int64, count=len(values)
    )


def positive_index(target: ClassificationTarget) -> int:
    """The positive class's column among the target's classes."""
    classes = target.classes or ()
    return next(i for i, c in enumerate(classes) if same_label(c, target.positive))


def describe(target: ClassificationTarget | None) -> str:
    """For logs: "binary, positive class 'yes'" or "3 classes: ..."."""
    return target.describe() if target is not None else "regression"


def _declared(step: TrainModelStep, labels: pd.Series) -> DeclaredType:
    """The declared type; plans compiled before it was recorded take the data's."""
    if step.target_type is not None:
        return step.target_type
    import pandas as pd

    if pd.api.types.is_bool_dtype(labels):
        return "bool"
    if pd.api.types.is_integer_dtype(labels):
        return "int"
    return "str"


def _all_ints(values: DeclaredType) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _python(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
