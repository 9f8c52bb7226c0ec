"""Holdout evaluation of a trained model: metrics, a small evaluation table and PNG plots.

Which metrics exist, suit a task and need y_score is `shipyard.stats.metrics`; this module
computes them, for regression, binary classification (any two labels, one of them positive) and
multiclass classification. The plots are `shipyard.training.plots`. numpy, pandas,
scikit-learn and matplotlib are imported inside the functions, so importing it stays cheap.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import ShipyardError
from shipyard.stats.metrics import (
    METRICS,
    TASKS,
    binary_only_metrics,
    default_metrics,
    multiclass_metrics,
    suitable_metrics,
    unsuitable_metrics,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


class EvaluationError(ShipyardError, ValueError):
    """Evaluation inputs that cannot be evaluated: unknown metric, missing y_score, bad labels."""


@dataclass
class Evaluation:
    """A model's evaluation on its holdout.

    Attributes:
        task: "classification" or "regression".
        metrics: Every requested metric, computed on the holdout.
        table: A small readable table; the first column, `group`, names the rows.
            Binary classification: rows `class <negative>` and `class <positive>` (the class
            names, e.g. `class stayed`, `class churned`) give `precision`, `recall`, `f1` of
            that class and `support` (its number of true rows); rows `score >= 0.1` ...
            `score >= 0.9` (only with y_score) give the positive class's `precision`, `recall`,
            `f1` when rows scoring at least the threshold are predicted positive, and
            `positive_rate` (the share so predicted). Cells that do not apply are empty.
            Multiclass: a `class <name>` row per class with `precision`, `recall`, `f1`,
            `support` and (with y_score) `roc_auc` of that class against the rest, then
            `macro avg` and `weighted avg` (weighted by support).
            Regression: row `all`, then `decile 1` (lowest predictions) to `decile 10`, each with
            `n` rows, the prediction range `pred_min`..`pred_max`, `mean_error` (bias; error is
            predicted minus actual, so positive means over-predicting), `mae`, and the
            `p50_abs_error`, `p90_abs_error`, `p99_abs_error` quantiles of |error|.
        plots: Plot name -> PNG path; empty unless `evaluate` was given an `out_dir`.
        n: Number of holdout rows.
        title: Shown in plot titles and the Markdown heading, e.g. the resource id.
        classes: The class names of a classification, the positive class last when binary.
    """

    task: str
    metrics: dict[str, float]
    table: pd.DataFrame
    plots: dict[str, Path] = field(default_factory=dict)
    n: int = 0
    title: str = ""
    classes: tuple[Any, ...] = ()

    @property
    def multiclass(self) -> bool:
        return len(self.classes) > 2

    def markdown(self) -> str:
        """A Markdown report (metrics, then the evaluation table) for a Prefect artifact."""
        kind = "multiclass" if self.multiclass else self.task
        heading, note = _TABLE_HEADINGS[kind]
        metric_rows = [[name, value] for name, value in self.metrics.items()]
        lines = [
            f"## Evaluation: {self.title}" if self.title else "## Evaluation",
            "",
            f"{self.task.capitalize()} model on a holdout of {self.n:,} rows{self._classes()}.",
            "",
            _markdown_table(["metric", "value"], metric_rows),
            "",
            f"### {heading}",
            "",
            _markdown_table(list(self.table.columns), self.table.values.tolist()),
            "",
            note,
        ]
        if self.plots:
            names = ", ".join(f"`{path.name}`" for path in self.plots.values())
            lines += ["", f"Plots (logged with the run): {names}"]
        return "\n".join(lines) + "\n"

    def _classes(self) -> str:
        if not self.classes:
            return ""
        if self.multiclass:
            return f" ({len(self.classes)} classes: {', '.join(map(str, self.classes))})"
        return f" (positive class: {self.classes[1]}; the other: {self.classes[0]})"


def metrics_for(
    task: str,
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    y_score: npt.ArrayLike | None = None,
    metrics: Sequence[str] | None = None,
    *,
    classes: Sequence[Any] | None = None,
    positive: Any = None,
) -> dict[str, float]:
    """Compute metrics on a holdout, without tables or plots (fast enough for search trials).

    Args:
        task: "classification" or "regression".
        y_true: True labels or values.
        y_pred: Predicted labels or values.
        y_score: Classification only, needed by roc_auc, pr_auc (average precision), log_loss
            and brier: the probability of the positive class (binary), or one column per class
            in the order of `classes` (multiclass), e.g. `model.predict_proba(X)`.
        metrics: Names of metrics that suit the task (`shipyard.stats.metrics`). None means the
            task's `default_metrics`, leaving out those that need y_score when it is not given.
        classes: The classes, in the order of y_score's columns. None: binary labels, bool or
            0/1, the positive class True or 1. More than two: multiclass.
        positive: The positive class of a binary target (one of `classes`); default the last.

    Returns:
        Metric name -> value, in the requested order.

    Raises:
        EvaluationError: (a ValueError) for an unknown task or metric, a metric that does not
            suit the task (or a multiclass target), a score metric without y_score, or inputs
            that cannot be evaluated.
    """
    holdout = _prepare(task, y_true, y_pred, y_score, classes, positive)
    names = _ensure_metrics(task, metrics, y_score is not None, holdout.multiclass)
    if needs_both := [n for n in names if n in ("roc_auc", "pr_auc")]:
        _ensure_both_classes(holdout, f"metric {_quoted(needs_both)}")
    return _compute(names, holdout)


def evaluate(
    task: str,
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    y_score: npt.ArrayLike | None = None,
    metrics: Sequence[str] | None = None,
    out_dir: Path | None = None,
    title: str = "",
    *,
    classes: Sequence[Any] | None = None,
    positive: Any = None,
) -> Evaluation:
    """Evaluate a model on its holdout: metrics, the evaluation table and, with out_dir, plots.

    Args:
        task: "classification" or "regression".
        y_true: True labels or values.
        y_pred: Predicted labels or values.
        y_score: As for `metrics_for`; adds the threshold rows (binary) or the per-class
            roc_auc (multiclass) to the table, and the ROC, PR and (binary) calibration plots.
        metrics: As for `metrics_for`.
        out_dir: Folder (created if missing) for the PNG plots: confusion_matrix, roc_curve,
            pr_curve, calibration (classification); residuals, predicted_vs_actual (regression).
        title: Shown in plot titles and the Markdown heading, e.g. "model.churn".
        classes: As for `metrics_for`; the plots and the table name the classes.
        positive: As for `metrics_for`.

    Returns:
        The Evaluation.

    Raises:
        EvaluationError: As for `metrics_for`; also for a classification holdout with one class.
    """
    from shipyard.training import plots

    holdout = _prepare(task, y_true, y_pred, y_score, classes, positive)
    names = _ensure_metrics(task, metrics, y_score is not None, holdout.multiclass)
    if task == "classification":
        _ensure_both_classes(holdout, "a classifier")
    values = _compute(names, holdout)
    if task == "classification":
        table = _classification_table(holdout)
    else:
        table = _regression_table(holdout)
    written = plots.write_plots(holdout, Path(out_dir), title) if out_dir is not None else {}
    return Evaluation(task, values, table, written, holdout.n, title, holdout.classes)


# --- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Holdout:
    """Validated arrays, as the tables and plots read them.

    Classification: `y_true`, `y_pred` are class indices into `classes`. A binary holdout is
    0/1 with 1 the positive class (so `classes` is (negative, positive)) and `y_score` the
    positive class's probability; a multiclass one has `y_score` of shape (rows, classes).
    Regression: floats, `classes` empty.
    """

    task: str
    y_true: npt.NDArray[Any]
    y_pred: npt.NDArray[Any]
    y_score: npt.NDArray[np.float64] | None
    classes: tuple[Any, ...] = ()

    @property
    def n(self) -> int:
        return len(self.y_true)

    @property
    def multiclass(self) -> bool:
        return len(self.classes) > 2


def _ensure_metrics(
    task: str, metrics: Sequence[str] | None, has_score: bool, multiclass: bool
) -> tuple[str, ...]:
    if metrics is None:
        # defaults are a suggestion, so without y_score they shrink instead of failing
        defaults = default_metrics(task, multiclass)
        return tuple(m for m in defaults if has_score or METRICS[m].needs != "score")
    names = tuple(dict.fromkeys([metrics] if isinstance(metrics, str) else metrics))
    if unsuitable := unsuitable_metrics(task, names):
        reasons = "; ".join(_why_unsuitable(name) for name in unsuitable)
        raise EvaluationError(
            f"cannot compute {_quoted(unsuitable)} for a {task} model: {reasons}",
            hint=f"{task} metrics are {', '.join(suitable_metrics(task))}",
        )
    if multiclass and (binary := binary_only_metrics(names)):
        raise EvaluationError(
            f"metric {_quoted(binary)} is about a positive class, which a multiclass target "
            "does not have",
            hint=f"multiclass metrics are {', '.join(multiclass_metrics())}",
        )
    if not has_score and (missing := [m for m in names if METRICS[m].needs == "score"]):
        raise EvaluationError(
            f"metric {_quoted(missing)} needs y_score, the class probabilities",
            hint="pass y_score=model.predict_proba(X)[:, 1] (binary) or predict_proba(X) "
            "(multiclass), or drop the metric",
        )
    return names


def _why_unsuitable(name: str) -> str:
    if name in METRICS:
        return f"'{name}' is a {' or '.join(METRICS[name].tasks)} metric"
    return f"'{name}' is not a metric"


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def _prepare(
    task: str,
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    y_score: npt.ArrayLike | None,
    classes: Sequence[Any] | None,
    positive: Any,
) -> Holdout:
    if task not in TASKS:
        raise EvaluationError(f"unknown task '{task}'", hint="use 'classification' or 'regression'")
    true, pred = _vector("y_true", y_true), _vector("y_pred", y_pred)
    if len(true) != len(pred):
        raise EvaluationError(f"y_true has {len(true)} rows but y_pred has {len(pred)}")
    if len(true) == 0:
        raise EvaluationError("the holdout is empty", hint="check the split's holdout fraction")
    if task == "regression":
        return Holdout(task, _finite("y_true", true), _finite("y_pred", pred), None)
    if classes is None:
        names: tuple[Any, ...] = (False, True) if true.dtype == bool else (0, 1)
        y, p = _binary("y_true", true), _binary("y_pred", pred)
        return Holdout(task, y, p, _binary_score(y_score, len(y)), names)
    names = tuple(_python(c) for c in classes)
    if len(names) < 2 or len(set(names)) < len(names):
        raise EvaluationError(f"classes must be two or more distinct labels, got {names}")
    y, p = _codes("y_true", true, names), _codes("y_pred", pred, names)
    if len(names) > 2:
        return Holdout(task, y, p, _class_scores(y_score, len(y), len(names)), names)
    at = names.index(_python(positive)) if positive is not None else 1
    if positive is not None and names[at] != _python(positive):
        raise EvaluationError(f"positive class {positive!r} is not one of the classes {names}")
    score = _binary_score(y_score, len(y))
    if at == 0:  # the positive class is index 1 from here on
        y, p = 1 - y, 1 - p
    return Holdout(task, y, p, score, (names[1 - at], names[at]))


def _python(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _vector(name: str, values: npt.ArrayLike) -> npt.NDArray[Any]:
    import numpy as np

    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise EvaluationError(
            f"{name} must be one-dimensional, got shape {array.shape}",
            hint="for predict_proba output of a binary model pass the positive-class column, "
            "proba[:, 1]; a multiclass model's needs its `classes`",
        )
    return array


def _finite(name: str, array: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    import numpy as np

    try:
        values = array.astype(np.float64)
    except (TypeError, ValueError):
        raise EvaluationError(f"{name} must be numeric, got dtype {array.dtype}") from None
    if bad := int((~np.isfinite(values)).sum()):
        raise EvaluationError(f"{name} has {bad} missing or infinite value(s)")
    return values


def _binary(name: str, array: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    import numpy as np

    try:
        labels = array.astype(np.float64)
        binary = bool(np.isin(labels, (0.0, 1.0)).all())
    except (TypeError, ValueError):
        binary = False
    if not binary:
        raise EvaluationError(
            f"{name} must hold binary labels (bool or 0/1), got {_shown(array.tolist())}",
            hint="pass `classes` (and `positive`) for other labels or more than two classes",
        )
    return labels.astype(np.int64)


def _codes(name: str, array: npt.NDArray[Any], classes: tuple[Any, ...]) -> npt.NDArray[np.int64]:
    """Labels -> their index in `classes`."""
    import numpy as np

    index = {label: i for i, label in enumerate(classes)}
    values = array.tolist()
    unknown = {v for v in values if v not in index}
    if unknown:
        raise EvaluationError(
            f"{name} has labels that are not among the classes {_shown(list(classes))}: "
            f"{_shown(list(unknown))}"
        )
    return np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))


def _shown(values: list[Any]) -> str:
    seen = sorted({str(value) for value in values})
    return ", ".join(seen[:5]) + (", ..." if len(seen) > 5 else "")


def _probabilities(name: str, array: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    values = _finite(name, array)
    if values.size and (values.min() < 0 or values.max() > 1):
        raise EvaluationError(
            f"{name} must be probabilities in [0, 1], got {values.min():g} to {values.max():g}",
            hint="pass model.predict_proba(X) rather than decision_function(X)",
        )
    return values


def _binary_score(y_score: npt.ArrayLike | None, rows: int) -> npt.NDArray[np.float64] | None:
    if y_score is None:
        return None
    score = _probabilities("y_score", _vector("y_score", y_score))
    if len(score) != rows:
        raise EvaluationError(f"y_true has {rows} rows but y_score has {len(score)}")
    return score


def _class_scores(
    y_score: npt.ArrayLike | None, rows: int, classes: int
) -> npt.NDArray[np.float64] | None:
    import numpy as np

    if y_score is None:
        return None
    array = np.asarray(y_score)
    if array.shape != (rows, classes):
        raise EvaluationError(
            f"y_score of a multiclass holdout must have one column per class, shape "
            f"({rows}, {classes}), got {array.shape}",
            hint="pass model.predict_proba(X), its columns in the order of `classes`",
        )
    return _probabilities("y_score", array)


def _ensure_both_classes(holdout: Holdout, needed_for: str) -> None:
    import numpy as np

    present = np.unique(holdout.y_true)
    if len(present) < 2:
        only = holdout.classes[int(present[0])]
        raise EvaluationError(
            f"the holdout has only class {only} in y_true, too few to evaluate {needed_for}",
            hint="use a larger holdout (or check that the data holds every class)",
        )


# --- metrics and tables -----------------------------------------------------------------------


def _roc_auc(m: Any, h: Holdout) -> float:
    if not h.multiclass:
        return float(m.roc_auc_score(h.y_true, h.y_score))
    # one-vs-rest, the mean over the classes present (sklearn's multi_class="ovr" refuses a
    # holdout that lacks a class)
    return float(sum(aucs := _class_aucs(h).values()) / len(aucs))


def _class_aucs(h: Holdout) -> dict[int, float]:
    """Class index -> ROC AUC of that class against the rest, for the classes it is defined."""
    from sklearn.metrics import roc_auc_score

    assert h.y_score is not None
    aucs = {}
    for c in range(len(h.classes)):
        is_class = h.y_true == c
        if is_class.any() and not is_class.all():
            aucs[c] = float(roc_auc_score(is_class, h.y_score[:, c]))
    return aucs


def _log_loss(m: Any, h: Holdout) -> float:
    return float(m.log_loss(h.y_true, h.y_score, labels=list(range(max(len(h.classes), 2)))))


# sklearn.metrics comes in as an argument so that it is imported only when metrics are computed
_METRICS: dict[str, Callable[[Any, Holdout], Any]] = {
    "roc_auc": _roc_auc,
    # average precision: the step-wise area under the PR curve, not the optimistic trapezoid
    "pr_auc": lambda m, h: m.average_precision_score(h.y_true, h.y_score),
    "accuracy": lambda m, h: m.accuracy_score(h.y_true, h.y_pred),
    "f1": lambda m, h: m.f1_score(h.y_true, h.y_pred, zero_division=0),
    "f1_macro": lambda m, h: m.f1_score(h.y_true, h.y_pred, average="macro", zero_division=0),
    "f1_weighted": lambda m, h: m.f1_score(h.y_true, h.y_pred, average="weighted", zero_division=0),
    "precision": lambda m, h: m.precision_score(h.y_true, h.y_pred, zero_division=0),
    "recall": lambda m, h: m.recall_score(h.y_true, h.y_pred, zero_division=0),
    "log_loss": _log_loss,
    "brier": lambda m, h: m.brier_score_loss(h.y_true, h.y_score, pos_label=1),
    "rmse": lambda m, h: m.root_mean_squared_error(h.y_true, h.y_pred),
    "mae": lambda m, h: m.mean_absolute_error(h.y_true, h.y_pred),
    "r2": lambda m, h: m.r2_score(h.y_true, h.y_pred),
    "mape": lambda m, h: m.mean_absolute_percentage_error(h.y_true, h.y_pred),
}


def _compute(names: Sequence[str], holdout: Holdout) -> dict[str, float]:
    from sklearn import metrics as sk_metrics

    return {name: float(_METRICS[name](sk_metrics, holdout)) for name in names}


def _classification_table(holdout: Holdout) -> pd.DataFrame:
    if holdout.multiclass:
        return _multiclass_table(holdout)
    import numpy as np
    import pandas as pd
    from sklearn.metrics import precision_recall_fscore_support as scores

    y_true, y_pred, y_score = holdout.y_true, holdout.y_pred, holdout.y_score
    precision, recall, f1, support = scores(y_true, y_pred, labels=[0, 1], zero_division=0)
    rows: list[list[Any]] = [
        [f"class {holdout.classes[c]}", precision[c], recall[c], f1[c], support[c], None]
        for c in (0, 1)
    ]
    if y_score is not None:
        for threshold in THRESHOLDS:
            flagged = y_score >= threshold
            p, r, f, _ = scores(y_true, flagged, average="binary", zero_division=0)
            rows.append([f"score >= {threshold:.1f}", p, r, f, None, float(np.mean(flagged))])
    columns = ["group", "precision", "recall", "f1", "support", "positive_rate"]
    return pd.DataFrame(rows, columns=columns).astype({"support": "Int64"})


def _multiclass_table(holdout: Holdout) -> pd.DataFrame:
    import numpy as np
    import pandas as pd
    from sklearn.metrics import precision_recall_fscore_support as scores

    labels = list(range(len(holdout.classes)))
    precision, recall, f1, support = scores(
        holdout.y_true, holdout.y_pred, labels=labels, zero_division=0
    )
    aucs = _class_aucs(holdout) if holdout.y_score is not None else {}
    auc = np.array([aucs.get(c, np.nan) for c in labels])
    rows: list[list[Any]] = [
        [f"class {name}", precision[c], recall[c], f1[c], support[c], auc[c]]
        for c, name in enumerate(holdout.classes)
    ]
    weights = support / max(int(support.sum()), 1)
    has_auc = ~np.isnan(auc)
    for group, weight in (
        ("macro avg", np.full(len(labels), 1 / len(labels))),
        ("weighted avg", weights),
    ):
        if has_auc.any():
            shares = weight[has_auc] / weight[has_auc].sum()
            mean_auc: float | None = float(np.dot(auc[has_auc], shares))
        else:
            mean_auc = None
        rows.append(
            [
                group,
                float(np.dot(precision, weight)),
                float(np.dot(recall, weight)),
                float(np.dot(f1, weight)),
                int(support.sum()),
                mean_auc,
            ]
        )
    columns = ["group", "precision", "recall", "f1", "support", "roc_auc"]
    return pd.DataFrame(rows, columns=columns).astype({"support": "Int64"})


def _regression_table(holdout: Holdout) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    y_pred, error = holdout.y_pred, holdout.y_pred - holdout.y_true
    groups = [("all", np.arange(holdout.n))]
    groups += [(f"decile {i}", rows) for i, rows in enumerate(deciles(y_pred), 1)]
    records = []
    for name, rows in groups:
        abs_error = np.abs(error[rows])
        quantiles = np.quantile(abs_error, [0.5, 0.9, 0.99]).tolist()
        summary = [y_pred[rows].min(), y_pred[rows].max(), error[rows].mean(), abs_error.mean()]
        records.append([name, len(rows), *summary, *quantiles])
    columns = ["group", "n", "pred_min", "pred_max", "mean_error", "mae"]
    columns += ["p50_abs_error", "p90_abs_error", "p99_abs_error"]
    return pd.DataFrame(records, columns=columns)


def deciles(values: npt.NDArray[np.float64]) -> list[npt.NDArray[np.intp]]:
    """Row indices in ten equal-count groups by value, lowest first (fewer below ten rows)."""
    import numpy as np

    # by rank rather than by value quantiles: ties may straddle two groups, but no group is empty
    return np.array_split(np.argsort(values, kind="stable"), min(10, len(values)))


_TABLE_HEADINGS = {
    "classification": (
        "By class and by decision threshold",
        "`class` rows: precision, recall and f1 of that class, support = its true rows. "
        "`score >=` rows: the positive class when rows scoring at least the threshold are "
        "predicted positive; positive_rate = the share so predicted.",
    ),
    "multiclass": (
        "By class",
        "`class` rows: precision, recall and f1 of that class, support = its true rows, "
        "roc_auc = that class against the rest. `macro avg` weighs every class alike, "
        "`weighted avg` by its support.",
    ),
    "regression": (
        "Errors overall and by decile of prediction",
        "error = predicted - actual (mean_error > 0: over-predicting); deciles run from the "
        "lowest predictions (1) to the highest (10); p50/p90/p99 are quantiles of absolute error.",
    ),
}


def _markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    # hand-built: DataFrame.to_markdown needs `tabulate`, an optional dependency
    numeric = [
        all(isinstance(row[i], numbers.Number) or _cell(row[i]) == "" for row in rows)
        for i in range(len(columns))
    ]
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---:" if is_number else "---" for is_number in numeric) + "|",
    ]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, numbers.Integral):
        return f"{value:,}"
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number):
            return ""
        if number == 0 or 1e-3 <= abs(number) < 1e4:
            return f"{number:.4f}"
        return f"{number:,.0f}" if abs(number) >= 1e4 else f"{number:.2e}"
    if value is None or str(value) == "<NA>":  # pandas' missing Int64
        return ""
    return str(value).replace("|", "\\|")
