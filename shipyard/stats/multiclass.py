"""The champion comparison of two multiclass classifiers on the same rows: a paired bootstrap.

Labels are class indices 0..k-1 and scores are probability matrices (rows, k). Every metric
comes in one vectorised form that takes many resamples at once (rows of an index array), the
full holdout being the resample that takes every row once; `shipyard.stats.paired`'s bootstrap
does the resampling. DeLong's test compares binary ROC AUCs only, so a multiclass comparison is
always a bootstrap. The metrics are those of `shipyard.training.evaluation` for a multiclass
holdout: roc_auc one-vs-rest averaged over the classes present, f1_macro and f1_weighted over
the classes present in the truth or the predictions (scikit-learn's default), log_loss, accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from shipyard.stats.metrics import lookup_metric, multiclass_metrics
from shipyard.stats.paired import _EPS, Comparison, _batched_roc_auc, _ratio, paired_bootstrap

Array = npt.NDArray[np.float64]
Codes = npt.NDArray[np.int64]
Rows = npt.NDArray[np.int64]
"""Row indices of resamples, shape (resamples, rows)."""


def compare_multiclass(
    metric: str,
    y_true: npt.ArrayLike,
    candidate_pred: npt.ArrayLike,
    champion_pred: npt.ArrayLike,
    candidate_score: npt.ArrayLike | None,
    champion_score: npt.ArrayLike | None,
    classes: int,
    margin: float = 0.0,
    confidence: float = 0.95,
    seed: int = 0,
    *,
    n_resamples: int = 2000,
) -> Comparison:
    """Compare a multiclass candidate with the champion on the same holdout rows.

    Args:
        metric: One of `multiclass_metrics()`.
        y_true: True class indices, 0..classes-1.
        candidate_pred: Candidate's predicted class indices.
        champion_pred: Champion's predicted class indices on the same rows.
        candidate_score: Candidate's class probabilities, shape (rows, classes); needed by
            roc_auc and log_loss.
        champion_score: Champion's, likewise.
        classes: The number of classes.
        margin: Non-inferiority margin on the improvement; negative allows a small loss.
        confidence: Confidence level of the two-sided interval.
        seed: Seed of the bootstrap.
        n_resamples: Bootstrap resamples.

    Returns:
        The comparison (method "bootstrap"); `passed` is `ci_low >= margin`.

    Raises:
        ValueError: A metric a multiclass target does not have, missing scores, shapes that do
            not fit, or labels outside 0..classes-1.
    """
    definition = lookup_metric(metric)
    if metric not in multiclass_metrics():
        raise ValueError(
            f"metric '{metric}' is about a positive class, which a multiclass target does not "
            f"have; compare on one of {', '.join(multiclass_metrics())}"
        )
    if not math.isfinite(margin):
        raise ValueError(f"margin must be a finite number, got {margin}")
    y = _codes(y_true, "y_true", classes)
    n = y.size
    if n == 0:
        raise ValueError("the holdout has no rows")
    values: tuple[Codes | Array, Codes | Array]
    if definition.needs == "score":
        values = (
            _scores(candidate_score, "candidate_score", n, classes),
            _scores(champion_score, "champion_score", n, classes),
        )
    else:
        values = (
            _codes(candidate_pred, "candidate_pred", classes, n),
            _codes(champion_pred, "champion_pred", classes, n),
        )
    fn = _metric(metric, classes)
    candidate_value, champion_value = (float(fn(y[np.newaxis], v[np.newaxis])[0]) for v in values)
    higher = definition.higher_is_better
    improvement = candidate_value - champion_value if higher else champion_value - candidate_value
    better, worse = values if higher else values[::-1]
    # paired_bootstrap resamples 1-D arrays: it is handed row numbers (the better model's as
    # 0..n-1, the other's as n..2n-1), and the metric looks the resampled rows up
    stacked = np.concatenate([better, worse])

    def batched(rows: Array, picked: Array) -> Array:
        return fn(y[rows.astype(np.int64)], stacked[picked.astype(np.int64)])

    index = np.arange(n, dtype=np.float64)
    _, ci_low, ci_high = paired_bootstrap(
        index, index, index + n, batched, n_resamples, confidence, seed, batched=True
    )
    return Comparison(
        metric=metric,
        candidate=candidate_value,
        champion=champion_value,
        improvement=improvement,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=None,
        method="bootstrap",
        confidence=float(confidence),
        margin=float(margin),
        passed=bool(ci_low >= margin),
        n=int(n),
    )


def _codes(values: npt.ArrayLike | None, name: str, classes: int, rows: int = -1) -> Codes:
    if values is None:
        raise ValueError(f"{name} is needed (predicted class indices), got None")
    array = np.asarray(values)
    if array.ndim != 1 or (rows >= 0 and array.size != rows):
        raise ValueError(f"{name} must hold one class index per holdout row, got {array.shape}")
    if array.size and (
        not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() >= classes
    ):
        raise ValueError(f"{name} must hold class indices 0..{classes - 1}")
    return array.astype(np.int64)


def _scores(values: npt.ArrayLike | None, name: str, rows: int, classes: int) -> Array:
    if values is None:
        raise ValueError(f"{name} is needed (class probabilities), got None")
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (rows, classes):
        raise ValueError(f"{name} must have shape ({rows}, {classes}), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} has NaN or infinite values")
    return array


# each takes truths of shape (resamples, rows) and the model's labels of that shape, or its
# probabilities of shape (resamples, rows, classes); it returns one value per resample


def _metric(metric: str, classes: int) -> Callable[[Codes, npt.NDArray[Any]], Array]:
    if metric == "accuracy":
        return lambda y, p: np.mean(y == p, axis=1)
    if metric in ("f1_macro", "f1_weighted"):
        return lambda y, p: _f1(y, p, classes, weighted=metric == "f1_weighted")
    if metric == "log_loss":
        return _log_loss
    return lambda y, s: _roc_auc(y, s, classes)


def _f1(y: Codes, p: npt.NDArray[Any], classes: int, weighted: bool) -> Array:
    total: Array = np.zeros(y.shape[0])
    weight: Array = np.zeros(y.shape[0])
    for c in range(classes):
        truth, predicted = y == c, p == c
        tp = (truth & predicted).sum(axis=1, dtype=np.float64)
        fp = (~truth & predicted).sum(axis=1, dtype=np.float64)
        fn = (truth & ~predicted).sum(axis=1, dtype=np.float64)
        f1 = _ratio(2.0 * tp, 2.0 * tp + fp + fn)
        # macro: the classes in the truth or the predictions; weighted: by true rows
        share = tp + fn if weighted else ((tp + fp + fn) > 0).astype(np.float64)
        total += f1 * share
        weight += share
    return _ratio(total, weight)


def _log_loss(y: Codes, s: npt.NDArray[Any]) -> Array:
    of_truth = np.take_along_axis(s, y[..., np.newaxis], axis=2)[..., 0]
    result: Array = -np.mean(np.log(np.clip(of_truth, _EPS, 1.0 - _EPS)), axis=1)
    return result


def _roc_auc(y: Codes, s: npt.NDArray[Any], classes: int) -> Array:
    """One-vs-rest ROC AUC, the mean over the classes present (and absent from some rows)."""
    per_class = np.stack(
        [_batched_roc_auc((y == c).astype(np.float64), s[..., c]) for c in range(classes)]
    )
    defined = np.isfinite(per_class)
    counted = defined.sum(axis=0)
    sums = np.where(defined, per_class, 0.0).sum(axis=0)
    return _ratio(sums, counted.astype(np.float64), np.nan)
