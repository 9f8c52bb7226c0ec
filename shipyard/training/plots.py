"""The evaluation's PNG plots, labelled with the class names: confusion matrix, ROC, PR and
calibration (classification), residuals and predicted-vs-actual (regression).

Each figure is rendered on a canvas of its own: plotting never touches pyplot's global backend
or figure list. matplotlib and scikit-learn are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from shipyard.training.evaluation import Holdout, deciles

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_SCATTER_POINTS = 5000

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
# one colour per class of a multiclass model (tab10, then tab20's lighter ones)
_CLASS_COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
)  # fmt: skip


def write_plots(holdout: Holdout, out_dir: Path, title: str) -> dict[str, Path]:
    """Render the plots of the holdout's task into out_dir (created if missing).

    Returns:
        Plot name -> PNG path, for the plots that apply (no ROC, PR or calibration without
        y_score; no calibration for a multiclass model).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    plotters = _CLASSIFICATION_PLOTS if holdout.task == "classification" else _REGRESSION_PLOTS
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, plot in plotters.items():
        if (figure := plot(holdout, title)) is None:
            continue
        FigureCanvasAgg(figure)
        written[name] = out_dir / f"{name}.png"
        figure.savefig(written[name], facecolor="white")
        figure.clear()
    return written


def _legend(ax: Axes, loc: Literal["best", "upper left", "lower left", "lower right"]) -> None:
    legend = ax.legend(loc=loc, **_LEGEND)
    for handle in legend.legend_handles:  # copies: faded scatter points read better opaque here
        if handle is not None:
            handle.set_alpha(1)


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


def _class_color(index: int) -> str:
    return _CLASS_COLORS[index % len(_CLASS_COLORS)]


# --- classification ---------------------------------------------------------------------------


def _confusion_matrix(holdout: Holdout, title: str) -> Figure:
    from sklearn.metrics import confusion_matrix

    if holdout.multiclass:
        return _multiclass_confusion(holdout, title)
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
    _style(ax, "Confusion matrix", title, "Predicted class", "True class")
    negative, positive = holdout.classes
    labels = [f"{negative}", f"{positive} (positive)"]
    ax.set_xticks([0, 1], labels)
    ax.set_yticks([0, 1], labels, rotation=90, va="center")
    ax.tick_params(length=0)
    ax.grid(False)
    ax.spines[:].set_visible(False)
    return figure


def _multiclass_confusion(holdout: Holdout, title: str) -> Figure:
    """Counts, and each cell's share of its true class: the row shares are the recalls."""
    import numpy as np
    from sklearn.metrics import confusion_matrix

    k = len(holdout.classes)
    counts = confusion_matrix(holdout.y_true, holdout.y_pred, labels=list(range(k)))
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = min(max(5.6, 1.0 * k + 2.4), 16.0)
    figure = _figure(side, side - 0.4)
    ax = figure.add_subplot()
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    size = 13 if k <= 4 else 10 if k <= 8 else 7
    for i in range(k):
        for j in range(k):
            color = "white" if shares[i, j] > 0.5 else _INK
            text = f"{counts[i, j]:,}\n{shares[i, j]:.0%}"
            ax.text(j, i, text, ha="center", va="center", fontsize=size, color=color)
    _style(
        ax, "Confusion matrix", title, "Predicted class", "True class (row % = share of the class)"
    )
    names = [str(name) for name in holdout.classes]
    ax.set_xticks(range(k), names, rotation=30 if max(map(len, names)) > 6 else 0, ha="right")
    ax.set_yticks(range(k), names)
    ax.tick_params(length=0)
    ax.grid(False)
    ax.spines[:].set_visible(False)
    return figure


def _operating_point(holdout: Holdout) -> tuple[float, float, float]:
    """(false-positive rate, recall, precision) of the predicted classes, to mark on curves."""
    y_true, y_pred = holdout.y_true, holdout.y_pred
    tp, fp = int((y_pred & y_true).sum()), int((y_pred & (1 - y_true)).sum())
    positives = int(y_true.sum())
    return fp / (holdout.n - positives), tp / positives, tp / (tp + fp) if tp + fp else 1.0


def _roc_curve(holdout: Holdout, title: str) -> Figure | None:
    from sklearn.metrics import roc_auc_score, roc_curve

    if holdout.y_score is None:
        return None
    if holdout.multiclass:
        return _one_vs_rest(holdout, title, "roc")
    positive = holdout.classes[1]
    fpr, tpr, _ = roc_curve(holdout.y_true, holdout.y_score)
    auc = roc_auc_score(holdout.y_true, holdout.y_score)
    op_fpr, op_tpr, _ = _operating_point(holdout)
    figure = _figure()
    ax = figure.add_subplot()
    ax.fill_between(fpr, tpr, color=_BLUE, alpha=0.08, linewidth=0)
    ax.plot(fpr, tpr, **_CURVE, label=f"model (AUC = {auc:.3f})")
    ax.plot([0, 1], [0, 1], **_REFERENCE, label="chance (AUC = 0.500)")
    point = f"predicted {positive} (FPR {op_fpr:.2f}, TPR {op_tpr:.2f})"
    ax.scatter(op_fpr, op_tpr, **_POINT, label=point)
    _style(
        ax,
        f"ROC curve of {positive}",
        title,
        "False positive rate",
        "True positive rate (recall)",
    )
    ax.set(xlim=(0, 1), ylim=(0, 1.02), aspect="equal")
    _legend(ax, "lower right")
    return figure


def _pr_curve(holdout: Holdout, title: str) -> Figure | None:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    if holdout.y_score is None:
        return None
    if holdout.multiclass:
        return _one_vs_rest(holdout, title, "pr")
    positive = holdout.classes[1]
    precision, recall, _ = precision_recall_curve(holdout.y_true, holdout.y_score)
    ap = average_precision_score(holdout.y_true, holdout.y_score)
    prevalence = float(holdout.y_true.mean())
    _, op_recall, op_precision = _operating_point(holdout)
    figure = _figure()
    ax = figure.add_subplot()
    ax.fill_between(recall, precision, step="post", color=_BLUE, alpha=0.08, linewidth=0)
    ax.step(recall, precision, where="post", **_CURVE, label=f"model (AP = {ap:.3f})")
    ax.axhline(prevalence, **_REFERENCE, label=f"no skill (share of {positive} = {prevalence:.3f})")
    point = f"predicted {positive} (recall {op_recall:.2f}, precision {op_precision:.2f})"
    ax.scatter(op_recall, op_precision, **_POINT, label=point)
    _style(ax, f"Precision-recall curve of {positive}", title, "Recall", "Precision")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), aspect="equal")
    _legend(ax, "lower left")
    return figure


def _one_vs_rest(holdout: Holdout, title: str, kind: Literal["roc", "pr"]) -> Figure:
    """One curve per class, that class against the rest (classes absent from the holdout are
    left out: their curve is undefined)."""
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    assert holdout.y_score is not None
    figure = _figure(6.4, 5.8)
    ax = figure.add_subplot()
    for c, name in enumerate(holdout.classes):
        is_class = holdout.y_true == c
        if not is_class.any() or is_class.all():
            continue
        score = holdout.y_score[:, c]
        line: dict[str, Any] = {"color": _class_color(c), "linewidth": 2.0}
        if kind == "roc":
            fpr, tpr, _ = roc_curve(is_class, score)
            auc = roc_auc_score(is_class, score)
            ax.plot(fpr, tpr, **line, label=f"{name} (AUC = {auc:.3f})")
        else:
            precision, recall, _ = precision_recall_curve(is_class, score)
            ap = average_precision_score(is_class, score)
            ax.step(recall, precision, where="post", **line, label=f"{name} (AP = {ap:.3f})")
    if kind == "roc":
        ax.plot([0, 1], [0, 1], **_REFERENCE, label="chance (AUC = 0.500)")
        _style(
            ax,
            "ROC curves, each class vs the rest",
            title,
            "False positive rate",
            "True positive rate (recall)",
        )
        loc: Literal["lower right", "lower left"] = "lower right"
    else:
        _style(ax, "Precision-recall, each class vs the rest", title, "Recall", "Precision")
        loc = "lower left"
    ax.set(xlim=(0, 1), ylim=(0, 1.02), aspect="equal")
    _legend(ax, loc)
    return figure


def _calibration(holdout: Holdout, title: str) -> Figure | None:
    import numpy as np
    from sklearn.metrics import brier_score_loss

    if holdout.y_score is None or holdout.multiclass:
        return None
    negative, positive = holdout.classes
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
    _style(top, "Calibration", title, "", f"Observed share of {positive}")
    top.set(xlim=(0, 1), ylim=(-0.02, 1.02))
    _legend(top, "upper left")
    by_class = [y_score[y_true == 0], y_score[y_true == 1]]
    colors, labels = ["#cbd5e1", _BLUE], [f"true {negative}", f"true {positive}"]
    bottom.hist(by_class, bins=np.linspace(0, 1, 11), stacked=True, color=colors, label=labels)
    _style(bottom, "", "", f"Predicted probability of {positive}", "Rows")
    bottom.legend(loc="upper center", ncols=2, **_LEGEND)
    return figure


# --- regression -------------------------------------------------------------------------------


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


def _residuals(holdout: Holdout, title: str) -> Figure:
    y_pred, error = holdout.y_pred, holdout.y_pred - holdout.y_true
    rows, note = _scatter_rows(holdout.n)
    groups = deciles(y_pred)
    figure = _figure(7.0, 5.0)
    ax = figure.add_subplot()
    ax.scatter(y_pred[rows], error[rows], alpha=_alpha(len(rows)), **_CLOUD, label=note)
    ax.axhline(0, **_REFERENCE, label="no error")
    x, y = [y_pred[d].mean() for d in groups], [error[d].mean() for d in groups]
    ax.plot(x, y, color=_ORANGE, marker="o", linewidth=2, label="mean error by decile")
    _style(ax, "Residuals", title, "Predicted value", "Error (predicted - actual)")
    _legend(ax, "best")
    return figure


def _predicted_vs_actual(holdout: Holdout, title: str) -> Figure:
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


_CLASSIFICATION_PLOTS: dict[str, Callable[[Holdout, str], Figure | None]] = {
    "confusion_matrix": _confusion_matrix,
    "roc_curve": _roc_curve,
    "pr_curve": _pr_curve,
    "calibration": _calibration,
}
_REGRESSION_PLOTS: dict[str, Callable[[Holdout, str], Figure | None]] = {
    "residuals": _residuals,
    "predicted_vs_actual": _predicted_vs_actual,
}
