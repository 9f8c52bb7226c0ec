"""Paired statistics for the promotion gate: is the candidate non-inferior to the champion?

Both models are scored on the same holdout rows, so their errors are correlated; a paired method
(DeLong for ROC AUC, a paired bootstrap otherwise) gives a much tighter interval for the
difference than two independent intervals would. The gate passes when the lower confidence bound
of the improvement is at least the margin (`min_delta`, e.g. -0.005 allows a small loss).
Directions and what each metric is computed from come from `shipyard.stats.metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import stats
from sklearn import metrics as skm

from shipyard.stats.metrics import METRICS, lookup_metric

Array = npt.NDArray[np.float64]
MetricFn = Callable[[Array, Array], float | Array]

_EPS = float(np.finfo(np.float64).eps)  # the clip sklearn uses in log_loss and mape
_CHUNK_ELEMENTS = 1 << 20  # resampled rows gathered at once: ~8 MB per float array


@dataclass(frozen=True)
class Comparison:
    """The candidate against the champion on one metric, on the same holdout rows.

    Attributes:
        metric: Metric name, a key of `shipyard.stats.metrics.METRICS`.
        candidate: Metric of the candidate on the holdout.
        champion: Metric of the champion on the same rows.
        improvement: Candidate minus champion, sign-flipped for lower-is-better metrics, so a
            positive value always means the candidate is better.
        ci_low: Lower bound of the two-sided confidence interval of `improvement`.
        ci_high: Upper bound of that interval.
        p_value: One-sided p-value of H0 `improvement <= margin` (DeLong), of H0
            `improvement <= 0` (McNemar, margin 0 only), or None (bootstrap).
        method: "delong", "bootstrap" or "mcnemar".
        confidence: Confidence level of the interval, e.g. 0.95.
        margin: The non-inferiority margin (`min_delta`), e.g. -0.005.
        passed: `ci_low >= margin`: non-inferior at the given confidence. With a two-sided 95%
            interval this is a one-sided test at the 2.5% level.
        n: Number of holdout rows.
    """

    metric: str
    candidate: float
    champion: float
    improvement: float
    ci_low: float
    ci_high: float
    p_value: float | None
    method: str
    confidence: float
    margin: float
    passed: bool
    n: int

    def summary(self) -> str:
        """One line for logs and gate reports.

        Example: "roc_auc 0.842 vs champion 0.835: +0.007 (95% CI -0.004..+0.018, delong
        p=0.03), needs >= -0.005: passed".
        """
        test = self.method if self.p_value is None else f"{self.method} p={self.p_value:.2g}"
        return (
            f"{self.metric} {_num(self.candidate)} vs champion {_num(self.champion)}: "
            f"{_num(self.improvement, signed=True)} ({self.confidence * 100:g}% CI "
            f"{_num(self.ci_low, signed=True)}..{_num(self.ci_high, signed=True)}, {test}), "
            f"needs >= {_num(self.margin, signed=True)}: {'passed' if self.passed else 'failed'}"
        )


class DeLongResult(NamedTuple):
    """What `delong_test` returns; a plain 4-tuple in this order when unpacked."""

    auc_a: float
    """ROC AUC of `score_a` (equals sklearn's roc_auc_score)."""
    auc_b: float
    """ROC AUC of `score_b`."""
    var_difference: float
    """DeLong variance of `auc_a - auc_b`: var_a + var_b - 2 * covariance."""
    covariance: float
    """DeLong covariance of the two AUC estimates (positive when the models agree)."""


def metric_value(
    metric: str,
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike | None,
    y_score: npt.ArrayLike | None = None,
) -> float:
    """Compute one metric with sklearn.metrics.

    Args:
        metric: A key of `shipyard.stats.metrics.METRICS`. Classification metrics are binary,
            positive label 1.
        y_true: True labels (0/1 or bool) or regression targets.
        y_pred: Predicted labels (accuracy, f1, precision, recall) or values (rmse, mae, mape,
            r2); unused, and may be None, for the metrics that need "score".
        y_score: Positive-class probability, needed by the metrics that need "score" (roc_auc,
            pr_auc, log_loss and brier).

    Returns:
        The metric value.

    Raises:
        UnknownMetricError: (a ValueError) The metric is not in the vocabulary.
        ValueError: Missing `y_score`, NaNs, lengths that differ, non-binary labels, or a single
            class in `y_true` where the metric needs both.
    """
    y = _as_array(y_true, "y_true")
    if lookup_metric(metric).needs == "score":
        values = _required(y_score, "y_score", metric)
        _ensure_rows(metric, y, y_score=values)
    else:
        values = _required(y_pred, "y_pred", metric)
        _ensure_rows(metric, y, y_pred=values)
    return float(_SKLEARN[metric](y, values))


def delong_test(
    y_true: npt.ArrayLike, score_a: npt.ArrayLike, score_b: npt.ArrayLike
) -> DeLongResult:
    """DeLong's test for two correlated ROC AUCs measured on the same rows.

    The fast algorithm of Sun & Xu (2014): placement values from mid-ranks, O(n log n), exact
    for ties (a tie counts one half).

    Args:
        y_true: Binary labels (0/1 or bool), with at least two rows of each class.
        score_a: Scores of model a (any monotone score, e.g. the positive-class probability).
        score_b: Scores of model b on the same rows.

    Returns:
        `DeLongResult(auc_a, auc_b, var_difference, covariance)`: the two AUCs, the variance of
        `auc_a - auc_b` and the covariance of the two AUC estimates.

    Raises:
        ValueError: NaNs, lengths that differ, non-binary labels or fewer than two rows of a class.
    """
    y = _as_array(y_true, "y_true")
    a = _as_array(score_a, "score_a")
    b = _as_array(score_b, "score_b")
    _ensure_rows("roc_auc", y, score_a=a, score_b=b)
    aucs, cov = _delong_covariance(y, np.vstack([a, b]))
    var_difference = cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1]
    # identical scores give 0 up to rounding; a variance is never negative
    return DeLongResult(
        float(aucs[0]), float(aucs[1]), max(float(var_difference), 0.0), float(cov[0, 1])
    )


def delong_variance(y_true: npt.ArrayLike, score: npt.ArrayLike) -> tuple[float, float]:
    """ROC AUC of one model and its DeLong variance.

    Args:
        y_true: Binary labels (0/1 or bool), with at least two rows of each class.
        score: Scores of the model.

    Returns:
        `(auc, variance)`.
    """
    y = _as_array(y_true, "y_true")
    s = _as_array(score, "score")
    _ensure_rows("roc_auc", y, score=s)
    aucs, cov = _delong_covariance(y, s[np.newaxis, :])
    return float(aucs[0]), float(cov[0, 0])


def paired_bootstrap(
    y_true: npt.ArrayLike,
    pred_a: npt.ArrayLike,
    pred_b: npt.ArrayLike,
    fn: MetricFn,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    *,
    batched: bool = False,
) -> tuple[float, float, float]:
    """Percentile interval of `fn(a) - fn(b)`, resampling the same rows for both models.

    Args:
        y_true: True labels or targets.
        pred_a: Predictions (or scores) of model a.
        pred_b: Predictions (or scores) of model b on the same rows.
        fn: `fn(y_true_subset, pred_subset) -> float`. With `batched=True` it receives 2-D arrays
            (one resample per row) and returns one value per resample, which avoids a Python call
            per resample. A resample where fn returns NaN (e.g. a single class) is left out.
        n_resamples: Number of bootstrap resamples.
        confidence: Confidence level of the two-sided interval, in (0, 1).
        seed: Seed of the resampling; the same seed gives the same interval.
        batched: Whether fn works on 2-D arrays, see `fn`.

    Returns:
        `(estimate, ci_low, ci_high)`: `fn(a) - fn(b)` on all rows and the percentile interval.

    Raises:
        ValueError: NaNs, lengths that differ, no rows, a bad `n_resamples` or `confidence`, or
            fn undefined (NaN) on more than half of the resamples.
    """
    y = _as_array(y_true, "y_true")
    a = _as_array(pred_a, "pred_a")
    b = _as_array(pred_b, "pred_b")
    _ensure_same_length(y_true=y, pred_a=a, pred_b=b)
    _ensure_confidence(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    batch_fn = _as_batched(fn) if batched else _per_resample(fn)
    estimate = float(batch_fn(y[np.newaxis], a[np.newaxis])[0])
    estimate -= float(batch_fn(y[np.newaxis], b[np.newaxis])[0])

    rng = np.random.default_rng(seed)
    n = y.size
    chunk = max(1, _CHUNK_ELEMENTS // n)
    differences = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        rows = rng.integers(0, n, size=(min(chunk, n_resamples - start), n))
        resampled_y = y[rows]
        differences[start : start + rows.shape[0]] = batch_fn(resampled_y, a[rows]) - batch_fn(
            resampled_y, b[rows]
        )
    defined = differences[np.isfinite(differences)]
    if defined.size * 2 < n_resamples:
        raise ValueError(
            f"the metric is undefined (NaN) on {n_resamples - defined.size} of {n_resamples} "
            "bootstrap resamples; the holdout is too small or has too few rows of a class"
        )
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(defined, [tail, 1.0 - tail])
    return estimate, float(low), float(high)


def compare_to_champion(
    metric: str,
    y_true: npt.ArrayLike,
    candidate_pred: npt.ArrayLike | None,
    champion_pred: npt.ArrayLike | None,
    candidate_score: npt.ArrayLike | None = None,
    champion_score: npt.ArrayLike | None = None,
    margin: float = 0.0,
    confidence: float = 0.95,
    method: str = "auto",
    seed: int = 0,
    *,
    n_resamples: int = 2000,
) -> Comparison:
    """Compare the candidate with the champion on the same holdout rows.

    Args:
        metric: A key of `shipyard.stats.metrics.METRICS`; its `higher_is_better` orients the
            improvement and its `needs` says which of predictions or scores are compared.
        y_true: True labels or targets of the holdout.
        candidate_pred: Candidate's predicted labels or values; may be None for a metric that
            needs "score".
        champion_pred: Champion's predictions on the same rows; may be None likewise.
        candidate_score: Candidate's positive-class probability, needed for a metric that needs
            "score".
        champion_score: Champion's positive-class probability on the same rows, likewise.
        margin: Non-inferiority margin on the improvement; negative allows a small loss.
        confidence: Confidence level of the two-sided interval, in (0, 1).
        method: "auto" (DeLong for roc_auc, bootstrap otherwise), "delong" (roc_auc only),
            "bootstrap", or "mcnemar" (accuracy with margin 0: exact one-sided McNemar p-value,
            bootstrap interval).
        seed: Seed of the bootstrap.
        n_resamples: Bootstrap resamples.

    Returns:
        The comparison; `passed` is `ci_low >= margin`.

    Raises:
        UnknownMetricError: (a ValueError) The metric is not in the vocabulary.
        ValueError: Unknown method, a method that does not fit the metric, missing predictions
            or scores, NaNs, lengths that differ, or a single class for roc_auc.
    """
    definition = lookup_metric(metric)
    _ensure_confidence(confidence)
    if not math.isfinite(margin):
        raise ValueError(f"margin must be a finite number, got {margin}")
    chosen = _choose_method(metric, method, margin)
    y = _as_array(y_true, "y_true")
    if definition.needs == "score":
        candidate = _required(candidate_score, "candidate_score", metric)
        champion = _required(champion_score, "champion_score", metric)
        _ensure_rows(metric, y, candidate_score=candidate, champion_score=champion)
    else:
        candidate = _required(candidate_pred, "candidate_pred", metric)
        champion = _required(champion_pred, "champion_pred", metric)
        _ensure_rows(metric, y, candidate_pred=candidate, champion_pred=champion)
    candidate_value = float(_SKLEARN[metric](y, candidate))
    champion_value = float(_SKLEARN[metric](y, champion))
    higher = definition.higher_is_better
    improvement = candidate_value - champion_value if higher else champion_value - candidate_value

    p_value: float | None = None
    if chosen == "delong":
        result = delong_test(y, candidate, champion)
        se = math.sqrt(result.var_difference)
        half_width = float(stats.norm.ppf(0.5 + confidence / 2.0)) * se
        ci_low, ci_high = improvement - half_width, improvement + half_width
        if se > 0:
            p_value = float(stats.norm.sf((improvement - margin) / se))
        else:  # identical rankings: no uncertainty left
            p_value = 0.0 if improvement > margin else 1.0
    else:
        # order the pair so that fn(better) - fn(worse) is the improvement
        better, worse = (candidate, champion) if higher else (champion, candidate)
        _, ci_low, ci_high = paired_bootstrap(
            y, better, worse, _BATCHED[metric], n_resamples, confidence, seed, batched=True
        )
        if chosen == "mcnemar":
            p_value = _mcnemar_p_value(y, candidate, champion)
    return Comparison(
        metric=metric,
        candidate=candidate_value,
        champion=champion_value,
        improvement=improvement,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=p_value,
        method=chosen,
        confidence=float(confidence),
        margin=float(margin),
        passed=bool(ci_low >= margin),
        n=int(y.size),
    )


def _delong_covariance(y: Array, scores: Array) -> tuple[Array, Array]:
    """AUCs and their DeLong covariance matrix for scores of shape (models, rows)."""
    positive = y == 1
    x, z = scores[:, positive], scores[:, ~positive]
    m, n = x.shape[1], z.shape[1]
    if m < 2 or n < 2:
        raise ValueError(
            f"DeLong's test needs at least two rows of each class, got {m} positive and {n} "
            "negative; use a larger holdout"
        )
    # mid-ranks within each class and overall turn pairwise comparisons into O(n log n)
    rank_x = stats.rankdata(x, axis=1)
    rank_z = stats.rankdata(z, axis=1)
    rank_all = stats.rankdata(np.hstack([x, z]), axis=1)
    placement_x = (rank_all[:, :m] - rank_x) / n  # share of negatives below each positive
    placement_z = 1.0 - (rank_all[:, m:] - rank_z) / m  # share of positives above each negative
    aucs = placement_x.mean(axis=1)
    cov = np.atleast_2d(np.cov(placement_x)) / m + np.atleast_2d(np.cov(placement_z)) / n
    return aucs, cov


def _mcnemar_p_value(y: Array, candidate: Array, champion: Array) -> float:
    """Exact one-sided McNemar p-value of H0 'the candidate is not more accurate'."""
    candidate_right = candidate == y
    champion_right = champion == y
    only_candidate = int(np.sum(candidate_right & ~champion_right))
    only_champion = int(np.sum(champion_right & ~candidate_right))
    # under H0 each discordant row is a fair coin; statsmodels' mcnemar(exact=True) is the
    # two-sided version of this binomial test
    discordant = only_candidate + only_champion
    return float(stats.binom.sf(only_candidate - 1, discordant, 0.5))


def _choose_method(metric: str, method: str, margin: float) -> str:
    if method == "auto":
        return "delong" if metric == "roc_auc" else "bootstrap"
    if method == "delong" and metric != "roc_auc":
        raise ValueError(f"method 'delong' compares ROC AUCs only, not {metric}; use 'bootstrap'")
    if method == "mcnemar":
        if metric != "accuracy":
            raise ValueError(f"method 'mcnemar' compares accuracies only, not {metric}")
        if margin != 0:
            raise ValueError(
                f"McNemar's test has H0 'no difference' and cannot test a margin of {margin:g}; "
                "use margin 0 or method 'bootstrap'"
            )
    if method not in ("delong", "bootstrap", "mcnemar"):
        raise ValueError(
            f"unknown method '{method}'; expected one of auto, delong, bootstrap, mcnemar"
        )
    return method


def _as_array(values: npt.ArrayLike, name: str) -> Array:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numbers or booleans without gaps: {error}") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise ValueError(
            f"{name} has {bad} NaN or infinite values of {array.size}; drop or impute those "
            "rows before comparing"
        )
    return array


def _required(values: npt.ArrayLike | None, name: str, metric: str) -> Array:
    if values is None:
        what = "positive-class probabilities" if METRICS[metric].needs == "score" else "predictions"
        raise ValueError(f"metric '{metric}' needs {name} ({what}), got None")
    return _as_array(values, name)


def _ensure_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, e.g. 0.95, got {confidence}")


def _ensure_same_length(**arrays: Array) -> None:
    lengths = {name: array.size for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name}={size}" for name, size in lengths.items())
        raise ValueError(f"all inputs must have one value per holdout row, got lengths {shown}")
    if not next(iter(lengths.values())):
        raise ValueError("the holdout has no rows")


def _ensure_rows(metric: str, y: Array, **predictions: Array) -> None:
    """Lengths agree; labels are binary where the metric is binary; both classes for roc_auc."""
    _ensure_same_length(y_true=y, **predictions)
    needs = METRICS[metric].needs
    if needs == "value":
        return
    _ensure_binary(y, "y_true", metric)
    if needs == "label":
        for name, p in predictions.items():
            _ensure_binary(p, name, metric)
    if metric == "roc_auc" and y.min() == y.max():
        raise ValueError(
            f"roc_auc needs both classes in y_true, but all {y.size} rows are {y[0]:g}; "
            "use a larger or stratified holdout"
        )
    if metric == "pr_auc" and not y.any():
        raise ValueError("pr_auc needs at least one positive row in y_true, found none")


def _ensure_binary(values: Array, name: str, metric: str) -> None:
    if not np.all((values == 0) | (values == 1)):
        found = np.unique(values)[:5]
        raise ValueError(
            f"{metric} needs binary {name} (0/1 or False/True, positive 1), "
            f"found values {', '.join(f'{v:g}' for v in found)}"
        )


def _num(value: float, signed: bool = False) -> str:
    sign = "+" if signed else ""
    if value != 0 and not 1e-3 <= abs(value) < 1e4:
        return f"{value:{sign}.3g}"
    return f"{value:{sign}.3f}"


def _per_resample(fn: MetricFn) -> Callable[[Array, Array], Array]:
    def batch(ys: Array, ps: Array) -> Array:
        return np.array([float(fn(y, p)) for y, p in zip(ys, ps, strict=True)])

    return batch


def _as_batched(fn: MetricFn) -> Callable[[Array, Array], Array]:
    def batch(ys: Array, ps: Array) -> Array:
        values = np.asarray(fn(ys, ps), dtype=np.float64)
        if values.shape != (ys.shape[0],):
            raise ValueError(
                f"a batched fn must return one value per resample, shape ({ys.shape[0]},), "
                f"got shape {values.shape}"
            )
        return values

    return batch


# sklearn is the reference for single values; the vectorised versions below compute the same
# metrics for many resamples at once (rows of 2-D arrays), which is what makes the bootstrap fast


def _log_loss(y: Array, p: Array) -> float:
    return float(skm.log_loss(y, p, labels=[0, 1]))


_SKLEARN: dict[str, Callable[[Array, Array], float]] = {
    "roc_auc": skm.roc_auc_score,
    "pr_auc": skm.average_precision_score,
    "log_loss": _log_loss,
    "brier": skm.brier_score_loss,
    "accuracy": skm.accuracy_score,
    "f1": lambda y, p: skm.f1_score(y, p, pos_label=1, zero_division=0.0),
    "precision": lambda y, p: skm.precision_score(y, p, pos_label=1, zero_division=0.0),
    "recall": lambda y, p: skm.recall_score(y, p, pos_label=1, zero_division=0.0),
    "f1_macro": lambda y, p: skm.f1_score(y, p, labels=[0, 1], average="macro", zero_division=0.0),
    "f1_weighted": lambda y, p: skm.f1_score(
        y, p, labels=[0, 1], average="weighted", zero_division=0.0
    ),
    "rmse": skm.root_mean_squared_error,
    "mae": skm.mean_absolute_error,
    "mape": skm.mean_absolute_percentage_error,
    "r2": skm.r2_score,
}


def _ratio(numerator: Array, denominator: Array, undefined: float = 0.0) -> Array:
    """numerator / denominator, `undefined` where the denominator is 0 (sklearn's zero_division)."""
    out: Array = np.full(numerator.shape, undefined)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _confusion(y: Array, p: Array) -> tuple[Array, Array, Array]:
    true_pos: Array = ((p == 1) & (y == 1)).sum(axis=1, dtype=np.float64)
    false_pos: Array = ((p == 1) & (y == 0)).sum(axis=1, dtype=np.float64)
    false_neg: Array = ((p == 0) & (y == 1)).sum(axis=1, dtype=np.float64)
    return true_pos, false_pos, false_neg


def _batched_precision(y: Array, p: Array) -> Array:
    tp, fp, _ = _confusion(y, p)
    return _ratio(tp, tp + fp)


def _batched_recall(y: Array, p: Array) -> Array:
    tp, _, fn = _confusion(y, p)
    return _ratio(tp, tp + fn)


def _batched_f1(y: Array, p: Array) -> Array:
    tp, fp, fn = _confusion(y, p)
    return _ratio(2.0 * tp, 2.0 * tp + fp + fn)


def _batched_f1_macro(y: Array, p: Array) -> Array:
    """The mean f1 of the two classes (class 0's is class 1's with the labels swapped)."""
    return (_batched_f1(y, p) + _batched_f1(1.0 - y, 1.0 - p)) / 2.0


def _batched_f1_weighted(y: Array, p: Array) -> Array:
    """The f1 of the two classes weighted by their true rows."""
    positives: Array = y.mean(axis=1)
    weighted: Array = positives * _batched_f1(y, p)
    return weighted + (1.0 - positives) * _batched_f1(1.0 - y, 1.0 - p)


def _batched_log_loss(y: Array, p: Array) -> Array:
    q = np.clip(p, _EPS, 1.0 - _EPS)
    result: Array = -np.mean(y * np.log(q) + (1.0 - y) * np.log(1.0 - q), axis=1)
    return result


def _batched_r2(y: Array, p: Array) -> Array:
    residual = np.sum((y - p) ** 2, axis=1)
    total = np.sum((y - y.mean(axis=1, keepdims=True)) ** 2, axis=1)
    # sklearn's force_finite: a constant target scores 1 if predicted exactly, else 0
    constant = np.where(residual == 0, 1.0, 0.0)
    return np.where(total > 0, 1.0 - _ratio(residual, total), constant)


def _batched_roc_auc(y: Array, s: Array) -> Array:
    positives: Array = (y == 1).sum(axis=1, dtype=np.float64)
    negatives = y.shape[1] - positives
    rank_sum: Array = np.where(y == 1, stats.rankdata(s, axis=1), 0.0).sum(axis=1)
    # Mann-Whitney: the rank sum of the positives, less its minimum, counts the pairs they win
    return _ratio(rank_sum - positives * (positives + 1) / 2, positives * negatives, np.nan)


def _batched_pr_auc(y: Array, s: Array) -> Array:
    order = np.argsort(-s, axis=1, kind="stable")
    sorted_s = np.take_along_axis(s, order, axis=1)
    sorted_y = np.take_along_axis(y, order, axis=1)
    precision = np.cumsum(sorted_y, axis=1) / np.arange(1, s.shape[1] + 1)
    # a threshold takes a whole group of tied scores: each positive counts with the precision
    # at the end of its group (the next position where the score changes)
    position = np.broadcast_to(np.arange(s.shape[1]), s.shape)
    group_end = np.ones(s.shape, dtype=bool)
    group_end[:, :-1] = sorted_s[:, 1:] != sorted_s[:, :-1]
    next_end = np.minimum.accumulate(np.where(group_end, position, s.shape[1])[:, ::-1], axis=1)
    precision_at_end = np.take_along_axis(precision, next_end[:, ::-1], axis=1)
    return _ratio((sorted_y * precision_at_end).sum(axis=1), sorted_y.sum(axis=1), np.nan)


_BATCHED: dict[str, Callable[[Array, Array], Array]] = {
    "roc_auc": _batched_roc_auc,
    "pr_auc": _batched_pr_auc,
    "log_loss": _batched_log_loss,
    "brier": lambda y, p: np.mean((p - y) ** 2, axis=1),
    "accuracy": lambda y, p: np.mean(y == p, axis=1),
    "f1": _batched_f1,
    "precision": _batched_precision,
    "recall": _batched_recall,
    "f1_macro": _batched_f1_macro,
    "f1_weighted": _batched_f1_weighted,
    "rmse": lambda y, p: np.sqrt(np.mean((p - y) ** 2, axis=1)),
    "mae": lambda y, p: np.mean(np.abs(p - y), axis=1),
    "mape": lambda y, p: np.mean(np.abs(p - y) / np.maximum(np.abs(y), _EPS), axis=1),
    "r2": _batched_r2,
}
