"""Holdout evaluation of a trained model: metrics, a small evaluation table and PNG plots.

Which metrics exist, suit a task and need y_score is `shipyard.stats.metrics`; this module
computes them. numpy, pandas, scikit-learn and matplotlib are imported inside the functions, so
importing it stays cheap.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import ShipyardError
from shipyard.stats.metrics import (
    METRICS,
    TASKS,
    default_metrics,
    suitable_metrics,
    unsuitable_metrics,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MAX_SCATTER_POINTS = 5000


class EvaluationError(ShipyardError, ValueError):
    """Evaluation inputs that cannot be evaluated: unknown metric, missing y_score, bad labels."""


@dataclass
class Evaluation:
    """A model's evaluation on its holdout.

    Attributes:
        task: "classification" (binary) or "regression".
        metrics: Every requested metric, computed on the holdout.
        table: A small readable table; the first column, `group`, names the rows.
            Classification: rows `class 0` and `class 1` give `precision`, `recall`, `f1` of
            that class and `support` (its number of true rows); rows `score >= 0.1` ...
            `score >= 0.9` (only with y_score) give the positive class's `precision`, `recall`,
            `f1` when rows scoring at least the threshold are predicted positive, and
            `positive_rate` (the share so predicted). Cells that do not apply are empty.
            Regression: row `all`, then `decile 1` (lowest predictions) to `decile 10`, each with
            `n` rows, the prediction range `pred_min`..`pred_max`, `mean_error` (bias; error is
            predicted minus actual, so positive means over-predicting), `mae`, and the
            `p50_abs_error`, `p90_abs_error`, `p99_abs_error` quantiles of |error|.
        plots: Plot name -> PNG path; empty unless `evaluate` was given an `out_dir`.
        n: Number of holdout rows.
        title: Shown in plot titles and the Markdown heading, e.g. the resource id.
    """

    task: str
    metrics: dict[str, float]
    table: pd.DataFrame
    plots: dict[str, Path] = field(default_factory=dict)
    n: int = 0
    title: str = ""

    def markdown(self) -> str:
        """A Markdown report (metrics, then the evaluation table) for a Prefect artifact."""
        heading, note = _TABLE_HEADINGS[self.task]
        metric_rows = [[name, value] for name, value in self.metrics.items()]
        lines = [
            f"## Evaluation: {self.title}" if self.title else "## Evaluation",
            "",
            f"{self.task.capitalize()} model on a holdout of {self.n:,} rows.",
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


def metrics_for(
    task: str,
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    y_score: npt.ArrayLike | None = None,
    metrics: Sequence[str] | None = None,
) -> dict[str, float]:
    """Compute metrics on a holdout, without tables or plots (fast enough for search trials).

    Args:
        task: "classification" (binary only for now) or "regression".
        y_true: True labels (bool or 0/1) or values.
        y_pred: Predicted labels (bool or 0/1) or values.
        y_score: Predicted probability of the positive class (classification only), needed by
            roc_auc, pr_auc (average precision), log_loss and brier.
        metrics: Names of metrics that suit the task (`shipyard.stats.metrics`). None means the
            task's `default_metrics`, leaving out those that need y_score when it is not given.

    Returns:
        Metric name -> value, in the requested order.

    Raises:
        EvaluationError: (a ValueError) for an unknown task or metric, a metric that does not
            suit the task, a score metric without y_score, or inputs that cannot be evaluated.
    """
    names = _ensure_metrics(task, metrics, has_score=y_score is not None)
    holdout = _prepare(task, y_true, y_pred, y_score)
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
) -> Evaluation:
    """Evaluate a model on its holdout: metrics, the evaluation table and, with out_dir, plots.

    Args:
        task: "classification" (binary only for now) or "regression".
        y_true: True labels (bool or 0/1) or values.
        y_pred: Predicted labels (bool or 0/1) or values.
        y_score: Predicted probability of the positive class (classification only); adds the
            threshold rows to the table and the ROC, PR and calibration plots.
        metrics: As for `metrics_for`.
        out_dir: Folder (created if missing) for the PNG plots: confusion_matrix, roc_curve,
            pr_curve, calibration (classification); residuals, predicted_vs_actual (regression).
        title: Shown in plot titles and the Markdown heading, e.g. "model.churn".

    Returns:
        The Evaluation.

    Raises:
        EvaluationError: As for `metrics_for`; also for a classification holdout with one class.
    """
    names = _ensure_metrics(task, metrics, has_score=y_score is not None)
    holdout = _prepare(task, y_true, y_pred, y_score)
    if task == "classification":
        _ensure_both_classes(holdout, "a classifier")
    values = _compute(names, holdout)
    plots: dict[str, Path] = {}
    if task == "classification":
        table = _classification_table(holdout)
        if out_dir is not None:
            plots = _write_plots(_CLASSIFICATION_PLOTS, holdout, Path(out_dir), title)
    else:
        table = _regression_table(holdout)
        if out_dir is not None:
            plots = _write_plots(_REGRESSION_PLOTS, holdout, Path(out_dir), title)
    return Evaluation(task, values, table, plots, holdout.n, title)


# --- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Holdout:
    """Validated arrays: 0/1 ints for classification labels, floats otherwise."""

    task: str
    y_true: npt.NDArray[Any]
    y_pred: npt.NDArray[Any]
    y_score: npt.NDArray[np.float64] | None

    @property
    def n(self) -> int:
        return len(self.y_true)


def _ensure_metrics(task: str, metrics: Sequence[str] | None, has_score: bool) -> tuple[str, ...]:
    if task not in TASKS:
        raise EvaluationError(f"unknown task '{task}'", hint="use 'classification' or 'regression'")
    if metrics is None:
        # defaults are a suggestion, so without y_score they shrink instead of failing
        return tuple(m for m in default_metrics(task) if has_score or METRICS[m].needs != "score")
    names = tuple(dict.fromkeys([metrics] if isinstance(metrics, str) else metrics))
    if unsuitable := unsuitable_metrics(task, names):
        reasons = "; ".join(_why_unsuitable(name) for name in unsuitable)
        raise EvaluationError(
            f"cannot compute {_quoted(unsuitable)} for a {task} model: {reasons}",
            hint=f"{task} metrics are {', '.join(suitable_metrics(task))}",
        )
    if not has_score and (missing := [m for m in names if METRICS[m].needs == "score"]):
        raise EvaluationError(
            f"metric {_quoted(missing)} needs y_score, the probability of the positive class",
            hint="pass y_score=model.predict_proba(X)[:, 1], or drop the metric",
        )
    return names


def _why_unsuitable(name: str) -> str:
    if name in METRICS:
        return f"'{name}' is a {' or '.join(METRICS[name].tasks)} metric"
    return f"'{name}' is not a metric"


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def _prepare(
    task: str, y_true: npt.ArrayLike, y_pred: npt.ArrayLike, y_score: npt.ArrayLike | None
) -> _Holdout:
    true, pred = _vector("y_true", y_true), _vector("y_pred", y_pred)
    if len(true) != len(pred):
        raise EvaluationError(f"y_true has {len(true)} rows but y_pred has {len(pred)}")
    if len(true) == 0:
        raise EvaluationError("the holdout is empty", hint="check the split's holdout fraction")
    if task == "regression":
        return _Holdout(task, _finite("y_true", true), _finite("y_pred", pred), None)
    score = None
    if y_score is not None:
        score = _finite("y_score", _vector("y_score", y_score))
        if len(score) != len(true):
            raise EvaluationError(f"y_true has {len(true)} rows but y_score has {len(score)}")
        if score.min() < 0 or score.max() > 1:
            raise EvaluationError(
                f"y_score must be probabilities in [0, 1], got {score.min():g} to {score.max():g}",
                hint="pass model.predict_proba(X)[:, 1] rather than decision_function(X)",
            )
    return _Holdout(task, _binary("y_true", true), _binary("y_pred", pred), score)


def _vector(name: str, values: npt.ArrayLike) -> npt.NDArray[Any]:
    import numpy as np

    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise EvaluationError(
            f"{name} must be one-dimensional, got shape {array.shape}",
            hint="for predict_proba output pass the positive-class column, proba[:, 1]",
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
        seen = sorted({str(value) for value in array.tolist()})
        shown = ", ".join(seen[:5]) + (", ..." if len(seen) > 5 else "")
        raise EvaluationError(
            f"{name} must hold binary labels (bool or 0/1), got {shown}",
            hint="only binary classification is supported for now; encode the positive class as 1",
        )
    return labels.astype(np.int64)


def _ensure_both_classes(holdout: _Holdout, needed_for: str) -> None:
    positives = int(holdout.y_true.sum())
    if positives in (0, holdout.n):
        only = 1 if positives else 0
        raise EvaluationError(
            f"the holdout has only class {only} in y_true, too few to evaluate {needed_for}",
            hint="use a stratified split or a larger holdout",
        )


# --- metrics and tables -----------------------------------------------------------------------

# sklearn.metrics comes in as an argument so that it is imported only when metrics are computed
_METRICS: dict[str, Callable[[Any, _Holdout], Any]] = {
    "roc_auc": lambda m, h: m.roc_auc_score(h.y_true, h.y_score),
    # average precision: the step-wise area under the PR curve, not the optimistic trapezoid
    "pr_auc": lambda m, h: m.average_precision_score(h.y_true, h.y_score),
    "accuracy": lambda m, h: m.accuracy_score(h.y_true, h.y_pred),
    "f1": lambda m, h: m.f1_score(h.y_true, h.y_pred, zero_division=0),
    "precision": lambda m, h: m.precision_score(h.y_true, h.y_pred, zero_division=0),
    "recall": lambda m, h: m.recall_score(h.y_true, h.y_pred, zero_division=0),
    "log_loss": lambda m, h: m.log_loss(h.y_true, h.y_score, labels=[0, 1]),
    "brier": lambda m, h: m.brier_score_loss(h.y_true, h.y_score, pos_label=1),
    "rmse": lambda m, h: m.root_mean_squared_error(h.y_true, h.y_pred),
    "mae": lambda m, h: m.mean_absolute_error(h.y_true, h.y_pred),
    "r2": lambda m, h: m.r2_score(h.y_true, h.y_pred),
    "mape": lambda m, h: m.mean_absolute_percentage_error(h.y_true, h.y_pred),
}


def _compute(names: Sequence[str], holdout: _Holdout) -> dict[str, float]:
    from sklearn import metrics as sk_metrics

    return {name: float(_METRICS[name](sk_metrics, holdout)) for name in names}


def _classification_table(holdout: _Holdout) -> pd.DataFrame:
    import numpy as np
    import pandas as pd
    from sklearn.metrics import precision_recall_fscore_support as scores

    y_true, y_pred, y_score = holdout.y_true, holdout.y_pred, holdout.y_score
    precision, recall, f1, support = scores(y_true, y_pred, labels=[0, 1], zero_division=0)
    rows: list[list[Any]] = [
        [f"class {c}", precision[c], recall[c], f1[c], support[c], None] for c in (0, 1)
    ]
    if y_score is not None:
        for threshold in THRESHOLDS:
            flagged = y_score >= threshold
            p, r, f, _ = scores(y_true, flagged, average="binary", zero_division=0)
            rows.append([f"score >= {threshold:.1f}", p, r, f, None, float(np.mean(flagged))])
    columns = ["group", "precision", "recall", "f1", "support", "positive_rate"]
    return pd.DataFrame(rows, columns=columns).astype({"support": "Int64"})


def _regression_table(holdout: _Holdout) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    y_pred, error = holdout.y_pred, holdout.y_pred - holdout.y_true
    groups = [("all", np.arange(holdout.n))]
    groups += [(f"decile {i}", rows) for i, rows in enumerate(_deciles(y_pred), 1)]
    records = []
    for name, rows in groups:
        abs_error = np.abs(error[rows])
        quantiles = np.quantile(abs_error, [0.5, 0.9, 0.99]).tolist()
        summary = [y_pred[rows].min(), y_pred[rows].max(), error[rows].mean(), abs_error.mean()]
        records.append([name, len(rows), *summary, *quantiles])
    columns = ["group", "n", "pred_min", "pred_max", "mean_error", "mae"]
    columns += ["p50_abs_error", "p90_abs_error", "p99_abs_error"]
    return pd.DataFrame(records, columns=columns)


def _deciles(values: npt.NDArray[np.float64]) -> list[npt.NDArray[np.intp]]:
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


# --- plots ------------------------------------------------------------------------------------

_BLUE, _ORANGE, _GREY, _GRID, _INK = "#2563eb", "#ea580c", "#6b7280", "#e5e7eb", "#1f2937"
_CURVE: dict[str, Any] = {"color": _BLUE, "linewidth": 2.2}
_REFERENCE: dict[str, Any] = {"color": _GREY, "linestyle": "--", "linewidth": 1.2}
_POINT: dict[str, Any] = {
    "s": 64,
    "color": _ORANGE,
    "edgecolor": "white",
    "linewidth": 1.5,
    "zorder": 3,
}
_CLOUD: dict[str, Any] = {"s": 10, "color": _BLUE, "linewidth": 0, "rasterized": True}
_LEGEND: dict[str, Any] = {"frameon": False, "fontsize": "small"}


def _legend(ax: Axes, loc: Literal["best", "upper left", "lower left", "lower right"]) -> None:
    legend = ax.legend(loc=loc, **_LEGEND)
    for handle in legend.legend_handles:  # copies: faded scatter points read better opaque here
        if handle is not None:
            handle.set_alpha(1)


def _write_plots(
    plotters: dict[str, Callable[[_Holdout, str], Figure | None]],
    holdout: _Holdout,
    out_dir: Path,
    title: str,
) -> dict[str, Path]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, plot in plotters.items():
        if (figure := plot(holdout, title)) is None:
            continue
        # a canvas of our own: rendering never touches pyplot's global backend or figure list
        FigureCanvasAgg(figure)
        written[name] = out_dir / f"{name}.png"
        figure.savefig(written[name], facecolor="white")
        figure.clear()
    return written


def _figure(width: float = 6.0, height: float = 5.6) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=120, layout="constrained")


def _style(ax: Axes, heading: str, title: str, xlabel: str, ylabel: str) -> None:
    if heading:
        ax.set_title(f"{heading} · {title}" if title else heading, loc="left", fontweight="bold")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, color=_GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)


def _confusion_matrix(holdout: _Holdout, title: str) -> Figure:
    from sklearn.metrics import confusion_matrix

    counts = confusion_matrix(holdout.y_true, holdout.y_pred, labels=[0, 1])
    figure = _figure(5.6, 5.2)
    ax = figure.add_subplot()
    ax.imshow(counts, cmap="Blues", vmin=0, vmax=max(int(counts.max()), 1))
    for (i, j), name in zip(
        [(0, 0), (0, 1), (1, 0), (1, 1)], ("TN", "FP", "FN", "TP"), strict=True
    ):
        text = f"{name}\n{counts[i, j]:,}\n{counts[i, j] / holdout.n:.1%}"
        color = "white" if counts[i, j] > counts.max() / 2 else _INK
        ax.text(j, i, text, ha="center", va="center", fontsize=13, linespacing=1.4, color=color)
    _style(ax, "Confusion matrix", title, "Predicted label", "True label")
    labels = ["0 (negative)", "1 (positive)"]
    ax.set_xticks([0, 1], labels)
    ax.set_yticks([0, 1], labels, rotation=90, va="center")
    ax.tick_params(length=0)
    ax.grid(False)
    ax.spines[:].set_visible(False)
    return figure


def _operating_point(holdout: _Holdout) -> tuple[float, float, float]:
    """(false-positive rate, recall, precision) of y_pred, to mark it on the curves."""
    y_true, y_pred = holdout.y_true, holdout.y_pred
    tp, fp = int((y_pred & y_true).sum()), int((y_pred & (1 - y_true)).sum())
    positives = int(y_true.sum())
    return fp / (holdout.n - positives), tp / positives, tp / (tp + fp) if tp + fp else 1.0


def _roc_curve(holdout: _Holdout, title: str) -> Figure | None:
    from sklearn.metrics import roc_auc_score, roc_curve

    if holdout.y_score is None:
        return None
    fpr, tpr, _ = roc_curve(holdout.y_true, holdout.y_score)
    auc = roc_auc_score(holdout.y_true, holdout.y_score)
    op_fpr, op_tpr, _ = _operating_point(holdout)
    figure = _figure()
    ax = figure.add_subplot()
    ax.fill_between(fpr, tpr, color=_BLUE, alpha=0.08, linewidth=0)
    ax.plot(fpr, tpr, **_CURVE, label=f"model (AUC = {auc:.3f})")
    ax.plot([0, 1], [0, 1], **_REFERENCE, label="chance (AUC = 0.500)")
    ax.scatter(op_fpr, op_tpr, **_POINT, label=f"y_pred (FPR {op_fpr:.2f}, TPR {op_tpr:.2f})")
    _style(ax, "ROC curve", title, "False positive rate", "True positive rate (recall)")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), aspect="equal")
    _legend(ax, "lower right")
    return figure


def _pr_curve(holdout: _Holdout, title: str) -> Figure | None:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    if holdout.y_score is None:
        return None
    precision, recall, _ = precision_recall_curve(holdout.y_true, holdout.y_score)
    ap = average_precision_score(holdout.y_true, holdout.y_score)
    prevalence = float(holdout.y_true.mean())
    _, op_recall, op_precision = _operating_point(holdout)
    figure = _figure()
    ax = figure.add_subplot()
    ax.fill_between(recall, precision, step="post", color=_BLUE, alpha=0.08, linewidth=0)
    ax.step(recall, precision, where="post", **_CURVE, label=f"model (AP = {ap:.3f})")
    ax.axhline(prevalence, **_REFERENCE, label=f"no skill (prevalence = {prevalence:.3f})")
    point = f"y_pred (recall {op_recall:.2f}, precision {op_precision:.2f})"
    ax.scatter(op_recall, op_precision, **_POINT, label=point)
    _style(ax, "Precision-recall curve", title, "Recall", "Precision")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), aspect="equal")
    _legend(ax, "lower left")
    return figure


def _calibration(holdout: _Holdout, title: str) -> Figure | None:
    import numpy as np
    from sklearn.metrics import brier_score_loss

    if holdout.y_score is None:
        return None
    y_true, y_score = holdout.y_true, holdout.y_score
    bins = np.minimum((y_score * 10).astype(int), 9)  # ten equal-width bins; 1.0 joins the last
    counts = np.bincount(bins, minlength=10)
    filled = counts > 0
    mean_score = np.bincount(bins, weights=y_score, minlength=10)[filled] / counts[filled]
    observed = np.bincount(bins, weights=y_true, minlength=10)[filled] / counts[filled]
    brier = brier_score_loss(y_true, y_score, pos_label=1)

    figure = _figure(6.0, 6.6)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.plot([0, 1], [0, 1], **_REFERENCE, label="perfectly calibrated")
    top.plot(mean_score, observed, marker="o", **_CURVE, label=f"model (Brier = {brier:.3f})")
    _style(top, "Calibration", title, "", "Observed share of positives")
    top.set(xlim=(0, 1), ylim=(-0.02, 1.02))
    _legend(top, "upper left")
    by_class = [y_score[y_true == 0], y_score[y_true == 1]]
    colors, labels = ["#cbd5e1", _BLUE], ["class 0", "class 1"]
    bottom.hist(by_class, bins=np.linspace(0, 1, 11), stacked=True, color=colors, label=labels)
    _style(bottom, "", "", "Predicted probability of class 1", "Rows")
    bottom.legend(loc="upper center", ncols=2, **_LEGEND)
    return figure


def _scatter_rows(n: int) -> tuple[npt.NDArray[np.int64], str]:
    """The rows to draw (a fixed sample past MAX_SCATTER_POINTS) and a note saying so."""
    import numpy as np

    if n <= MAX_SCATTER_POINTS:
        return np.arange(n), f"{n:,} rows"
    rows = np.sort(np.random.default_rng(0).choice(n, MAX_SCATTER_POINTS, replace=False))
    return rows, f"{MAX_SCATTER_POINTS:,} of {n:,} rows"


def _alpha(points: int) -> float:
    # dense clouds fade so that overlap shows as darker areas
    return min(0.8, max(0.15, 300 / points))


def _residuals(holdout: _Holdout, title: str) -> Figure:
    y_pred, error = holdout.y_pred, holdout.y_pred - holdout.y_true
    rows, note = _scatter_rows(holdout.n)
    deciles = _deciles(y_pred)
    figure = _figure(7.0, 5.0)
    ax = figure.add_subplot()
    ax.scatter(y_pred[rows], error[rows], alpha=_alpha(len(rows)), **_CLOUD, label=note)
    ax.axhline(0, **_REFERENCE, label="no error")
    x, y = [y_pred[d].mean() for d in deciles], [error[d].mean() for d in deciles]
    ax.plot(x, y, color=_ORANGE, marker="o", linewidth=2, label="mean error by decile")
    _style(ax, "Residuals", title, "Predicted value", "Error (predicted - actual)")
    _legend(ax, "best")
    return figure


def _predicted_vs_actual(holdout: _Holdout, title: str) -> Figure:
    from sklearn.metrics import r2_score, root_mean_squared_error

    y_true, y_pred = holdout.y_true, holdout.y_pred
    rows, note = _scatter_rows(holdout.n)
    low = float(min(y_true.min(), y_pred.min()))
    high = float(max(y_true.max(), y_pred.max()))
    pad = (high - low) * 0.03 or 1.0
    r2, rmse = r2_score(y_true, y_pred), root_mean_squared_error(y_true, y_pred)
    figure = _figure(6.0, 6.0)
    ax = figure.add_subplot()
    ax.scatter(y_true[rows], y_pred[rows], alpha=_alpha(len(rows)), **_CLOUD, label=note)
    ax.plot([low, high], [low, high], **_REFERENCE, label="predicted = actual")
    box = {"boxstyle": "round,pad=0.4", "facecolor": "white", "edgecolor": _GRID}
    stats = f"R² = {r2:.3f}\nRMSE = {rmse:.4g}"
    ax.text(0.97, 0.03, stats, transform=ax.transAxes, ha="right", va="bottom", bbox=box)
    _style(ax, "Predicted vs actual", title, "Actual value", "Predicted value")
    ax.set(xlim=(low - pad, high + pad), ylim=(low - pad, high + pad), aspect="equal")
    _legend(ax, "upper left")
    return figure


_CLASSIFICATION_PLOTS: dict[str, Callable[[_Holdout, str], Figure | None]] = {
    "confusion_matrix": _confusion_matrix,
    "roc_curve": _roc_curve,
    "pr_curve": _pr_curve,
    "calibration": _calibration,
}
_REGRESSION_PLOTS: dict[str, Callable[[_Holdout, str], Figure | None]] = {
    "residuals": _residuals,
    "predicted_vs_actual": _predicted_vs_actual,
}
