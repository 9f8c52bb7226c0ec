"""Champion comparison: DeLong against a direct O(n^2) version, the paired bootstrap, the gate."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics as skm
from statsmodels.stats.contingency_tables import mcnemar

from shipyard.stats.metrics import METRICS
from shipyard.stats.paired import (
    compare_to_champion,
    delong_test,
    delong_variance,
    metric_value,
    paired_bootstrap,
)

Array = npt.NDArray[np.float64]


# --- DeLong -------------------------------------------------------------------------------------


def direct_delong(
    y: list[float], scores: list[list[float]]
) -> tuple[list[float], list[list[float]]]:
    """DeLong, DeLong & Clarke-Pearson (1988) as written: every positive-negative pair, O(n^2).

    Returns the AUCs and their covariance matrix S = S10 / m + S01 / n, where S10 and S01 are
    the sample covariances (n - 1 denominator) of the structural components (placement values).
    Plain Python on purpose: it shares nothing with the mid-rank algorithm under test.
    """

    def psi(positive: float, negative: float) -> float:
        return 1.0 if positive > negative else 0.5 if positive == negative else 0.0

    pos = [i for i, label in enumerate(y) if label == 1]
    neg = [i for i, label in enumerate(y) if label == 0]
    m, n = len(pos), len(neg)
    v10 = [[sum(psi(s[i], s[j]) for j in neg) / n for i in pos] for s in scores]
    v01 = [[sum(psi(s[i], s[j]) for i in pos) / m for j in neg] for s in scores]

    def cov(u: list[float], v: list[float]) -> float:
        mean_u, mean_v = sum(u) / len(u), sum(v) / len(v)
        return sum((a - mean_u) * (b - mean_v) for a, b in zip(u, v, strict=True)) / (len(u) - 1)

    k = range(len(scores))
    matrix = [[cov(v10[r], v10[c]) / m + cov(v01[r], v01[c]) / n for c in k] for r in k]
    return [sum(row) / m for row in v10], matrix


def dataset(kind: str, seed: int) -> tuple[Array, Array, Array]:
    rng = np.random.default_rng(seed)
    n = 120 if kind == "unbalanced" else 80
    y = (rng.random(n) < (0.1 if kind == "unbalanced" else 0.5)).astype(float)
    a = y * 0.8 + rng.normal(size=n)
    b = y * 0.5 + 0.5 * a + rng.normal(size=n)  # correlated with a, as two real models are
    if kind == "rounded":
        a, b = np.round(a, 1), np.round(b, 1)
    if kind == "integer":  # heavy ties: four distinct scores
        edges = [-0.5, 0.3, 1.0]
        a, b = np.digitize(a, edges).astype(float), np.digitize(b, edges).astype(float)
    if kind == "perfect":
        a = y + rng.random(n) * 0.5
    return y, a, b


KINDS = ["continuous", "rounded", "integer", "unbalanced", "perfect"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [1, 2])
def test_delong_matches_the_direct_quadratic_definition(kind: str, seed: int) -> None:
    y, a, b = dataset(kind, seed)
    (auc_a, auc_b), s = direct_delong(y.tolist(), [a.tolist(), b.tolist()])

    result = delong_test(y, a, b)

    assert result.auc_a == pytest.approx(auc_a, abs=1e-10)
    assert result.auc_b == pytest.approx(auc_b, abs=1e-10)
    assert result.covariance == pytest.approx(s[0][1], abs=1e-10)
    assert result.var_difference == pytest.approx(s[0][0] + s[1][1] - 2 * s[0][1], abs=1e-10)
    assert tuple(result) == (result.auc_a, result.auc_b, result.var_difference, result.covariance)


@pytest.mark.parametrize("kind", KINDS)
def test_single_auc_variance_matches_direct_and_auc_matches_sklearn(kind: str) -> None:
    y, a, _ = dataset(kind, 3)
    (auc,), s = direct_delong(y.tolist(), [a.tolist()])

    got_auc, got_var = delong_variance(y, a)

    assert got_auc == pytest.approx(auc, abs=1e-10)
    assert got_auc == pytest.approx(skm.roc_auc_score(y, a), abs=1e-12)
    assert got_var == pytest.approx(s[0][0], abs=1e-10)


# y = 1 0 1 0 1 0; positives X, negatives Y (pairs scored 1 if X > Y, 1/2 if tied, 0 below)
HAND_Y = [1, 0, 1, 0, 1, 0]
# model a: X = .9 .8 .4, Y = .6 .3 .2
#   placements of X (share of Y below): 1, 1, 2/3            -> AUC_a = 8/9
#   placements of Y (share of X above): 2/3, 1, 1
#   sample variances (n - 1 = 2): S10 = (1/81 + 1/81 + 4/81) / 2 = 1/27, S01 = 1/27
#   var(AUC_a) = S10 / 3 + S01 / 3 = 2/81
HAND_A = [0.9, 0.6, 0.8, 0.3, 0.4, 0.2]
# model b: X = .7 .5 .3, Y = .5 .7 .1 (two ties)
#   placements of X: (1 + 1/2 + 1)/3 = 5/6, (1/2 + 0 + 1)/3 = 1/2, 1/3  -> AUC_b = 5/9
#   placements of Y: (1 + 1/2 + 0)/3 = 1/2, (1/2 + 0 + 0)/3 = 1/6, 1
#   S10_b = (25 + 1 + 16)/324 / 2 = 7/108, S01_b = (1 + 49 + 64)/324 / 2 = 19/108
#   var(AUC_b) = (7/108 + 19/108) / 3 = 13/162
#   cross terms: S10_ab = (5 - 1 + 8)/162 / 2 = 1/27, S01_ab = (2 - 7 + 8)/162 / 2 = 1/108
#   cov(AUC_a, AUC_b) = (1/27 + 1/108) / 3 = 5/324
#   var(AUC_a - AUC_b) = 8/324 + 26/324 - 10/324 = 2/27
HAND_B = [0.7, 0.5, 0.5, 0.7, 0.3, 0.1]


def test_delong_on_a_hand_computed_example() -> None:
    result = delong_test(HAND_Y, HAND_A, HAND_B)

    assert result.auc_a == pytest.approx(8 / 9, abs=1e-12)
    assert result.auc_b == pytest.approx(5 / 9, abs=1e-12)
    assert result.covariance == pytest.approx(5 / 324, abs=1e-12)
    assert result.var_difference == pytest.approx(2 / 27, abs=1e-12)
    assert delong_variance(HAND_Y, HAND_A)[1] == pytest.approx(2 / 81, abs=1e-12)
    assert delong_variance(HAND_Y, HAND_B)[1] == pytest.approx(13 / 162, abs=1e-12)


def test_delong_comparison_on_the_hand_example() -> None:
    c = compare_to_champion("roc_auc", HAND_Y, None, None, HAND_A, HAND_B)

    # improvement 1/3, se = sqrt(2/27), so z = (1/3) / sqrt(2/27) = sqrt(3/2)
    se = math.sqrt(2 / 27)
    assert c.method == "delong"
    assert c.improvement == pytest.approx(1 / 3)
    assert c.ci_low == pytest.approx(1 / 3 - 1.959963984540054 * se)
    assert c.ci_high == pytest.approx(1 / 3 + 1.959963984540054 * se)
    assert c.p_value == pytest.approx(stats.norm.sf(math.sqrt(1.5)))
    assert not c.passed
    assert c.summary() == (
        "roc_auc 0.889 vs champion 0.556: +0.333 (95% CI -0.200..+0.867, delong p=0.11), "
        "needs >= +0.000: failed"
    )


def test_delong_p_value_is_half_the_alpha_exactly_at_the_lower_bound() -> None:
    y, a, b = dataset("continuous", 4)
    first = compare_to_champion("roc_auc", y, None, None, a, b, margin=-0.05)

    at_bound = compare_to_champion("roc_auc", y, None, None, a, b, margin=first.ci_low)

    # passed (ci_low >= margin) is the one-sided test at (1 - confidence) / 2
    assert at_bound.p_value == pytest.approx(0.025)
    assert at_bound.passed
    assert not compare_to_champion(
        "roc_auc", y, None, None, a, b, margin=first.ci_low + 1e-9
    ).passed


def test_a_clearly_better_model_passes_delong_with_a_small_p_value() -> None:
    rng = np.random.default_rng(5)
    y = (rng.random(600) < 0.4).astype(float)
    good = y * 2.0 + rng.normal(size=600)
    weak = y * 0.5 + rng.normal(size=600)

    c = compare_to_champion("roc_auc", y, None, None, good, weak, margin=-0.005)

    assert c.ci_low > 0
    assert c.p_value is not None and c.p_value < 1e-6
    assert c.passed


# --- paired bootstrap ---------------------------------------------------------------------------


def accuracy_rows(y: Array, p: Array) -> Array:
    result: Array = np.mean(y == p, axis=1)
    return result


def labels_with_accuracy(y: Array, right: npt.NDArray[np.bool_]) -> Array:
    return np.where(right, y, 1 - y)


def test_bootstrap_of_identical_models_is_a_zero_interval() -> None:
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 300).astype(float)
    p = labels_with_accuracy(y, rng.random(300) < 0.7)

    assert paired_bootstrap(y, p, p, skm.accuracy_score, n_resamples=100) == (0.0, 0.0, 0.0)


def test_bootstrap_of_a_clearly_better_model_is_above_zero() -> None:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 1000).astype(float)
    good = labels_with_accuracy(y, rng.random(1000) < 0.9)
    weak = labels_with_accuracy(y, rng.random(1000) < 0.7)

    estimate, low, high = paired_bootstrap(y, good, weak, skm.accuracy_score, n_resamples=200)

    assert estimate == pytest.approx(skm.accuracy_score(y, good) - skm.accuracy_score(y, weak))
    assert 0 < low < estimate < high


def test_bootstrap_intervals_cover_the_true_difference_about_95_percent_of_the_time() -> None:
    # each row: a is right with probability 0.80, b with 0.72, and half the rows share the
    # same draw (paired, correlated errors); the true accuracy difference is exactly 0.08
    rng = np.random.default_rng(2024)
    repetitions, covered = 200, 0
    for repetition in range(repetitions):
        y = rng.integers(0, 2, 200).astype(float)
        u = rng.random(200)
        v = np.where(rng.random(200) < 0.5, u, rng.random(200))
        a, b = labels_with_accuracy(y, u < 0.80), labels_with_accuracy(y, v < 0.72)
        _, low, high = paired_bootstrap(
            y, a, b, accuracy_rows, n_resamples=1000, seed=repetition, batched=True
        )
        covered += low <= 0.08 <= high
    assert 0.90 <= covered / repetitions <= 0.99


def test_bootstrap_interval_matches_the_normal_approximation_on_a_large_sample() -> None:
    # for a mean of paired differences the 95% interval is about +-1.96 standard errors
    rng = np.random.default_rng(13)
    y = rng.integers(0, 2, 3000).astype(float)
    a = labels_with_accuracy(y, rng.random(3000) < 0.8)
    b = labels_with_accuracy(y, rng.random(3000) < 0.75)
    per_row = (a == y).astype(float) - (b == y)
    half_width = 1.959963984540054 * per_row.std(ddof=1) / math.sqrt(3000)

    estimate, low, high = paired_bootstrap(y, a, b, accuracy_rows, n_resamples=4000, batched=True)

    assert estimate == pytest.approx(per_row.mean())
    assert estimate - low == pytest.approx(half_width, rel=0.08)
    assert high - estimate == pytest.approx(half_width, rel=0.08)


def test_bootstrap_is_deterministic_for_a_seed_and_batched_equals_per_resample() -> None:
    rng = np.random.default_rng(8)
    y = rng.integers(0, 2, 400).astype(float)
    a = labels_with_accuracy(y, rng.random(400) < 0.75)
    b = labels_with_accuracy(y, rng.random(400) < 0.72)

    first = paired_bootstrap(y, a, b, skm.accuracy_score, n_resamples=150, seed=3)

    assert paired_bootstrap(y, a, b, skm.accuracy_score, n_resamples=150, seed=3) == first
    assert paired_bootstrap(y, a, b, skm.accuracy_score, n_resamples=150, seed=4) != first
    batched = paired_bootstrap(y, a, b, accuracy_rows, n_resamples=150, seed=3, batched=True)
    assert batched == pytest.approx(first, abs=1e-12)


def test_bootstrap_rejects_a_metric_undefined_on_most_resamples() -> None:
    with pytest.raises(ValueError, match="undefined"):
        paired_bootstrap([0, 1, 1], [0, 1, 0], [1, 1, 0], lambda t, p: math.nan, n_resamples=50)


def test_batched_fn_must_return_one_value_per_resample() -> None:
    with pytest.raises(ValueError, match="one value per resample"):
        paired_bootstrap([0, 1], [0, 1], [1, 1], lambda t, p: 0.5, batched=True)


# --- metrics ------------------------------------------------------------------------------------


def holdout(seed: int = 10, n: int = 150) -> dict[str, Array]:
    """Binary labels, two correlated probability models with ties, labels, regression values."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(float)
    score_a = np.round(np.clip(0.35 * y + 0.65 * rng.random(n), 0.01, 0.99), 2)
    score_b = np.round(np.clip(0.5 * score_a + 0.2 * y + 0.3 * rng.random(n), 0.01, 0.99), 2)
    target = rng.normal(10.0, 3.0, n)
    return {
        "y": y,
        "score_a": score_a,
        "score_b": score_b,
        "label_a": (score_a > 0.5).astype(float),
        "label_b": (score_b > 0.5).astype(float),
        "target": target,
        "value_a": target + rng.normal(0.0, 1.0, n),
        "value_b": target + rng.normal(0.0, 1.2, n),
    }


REGRESSION = {"rmse", "mae", "mape", "r2"}


def inputs(metric: str, data: dict[str, Array]) -> tuple[Array, Array, Array]:
    """(y, model a, model b) as the metric reads them."""
    if METRICS[metric].needs == "score":
        return data["y"], data["score_a"], data["score_b"]
    if metric in REGRESSION:
        return data["target"], data["value_a"], data["value_b"]
    return data["y"], data["label_a"], data["label_b"]


SKLEARN: dict[str, Callable[[Array, Array], float]] = {
    "roc_auc": skm.roc_auc_score,
    "pr_auc": skm.average_precision_score,
    "log_loss": skm.log_loss,
    "brier": skm.brier_score_loss,
    "accuracy": skm.accuracy_score,
    "f1": skm.f1_score,
    "precision": skm.precision_score,
    "recall": skm.recall_score,
    "f1_macro": lambda y, p: skm.f1_score(y, p, average="macro"),
    "f1_weighted": lambda y, p: skm.f1_score(y, p, average="weighted"),
    "rmse": lambda y, p: math.sqrt(skm.mean_squared_error(y, p)),
    "mae": skm.mean_absolute_error,
    "mape": skm.mean_absolute_percentage_error,
    "r2": skm.r2_score,
}


def test_every_metric_has_a_direction_and_a_reference() -> None:
    assert set(METRICS) == set(SKLEARN)
    lower = {name for name, m in METRICS.items() if not m.higher_is_better}
    assert lower == {"log_loss", "brier", "rmse", "mae", "mape"}


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_metric_value_agrees_with_sklearn(metric: str) -> None:
    y, a, _ = inputs(metric, holdout())
    pred, score = (None, a) if METRICS[metric].needs == "score" else (a, None)

    assert metric_value(metric, y, pred, score) == pytest.approx(SKLEARN[metric](y, a), rel=1e-12)


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_vectorised_bootstrap_equals_a_naive_sklearn_bootstrap(metric: str) -> None:
    # same seed, same resampled rows: compare_to_champion's vectorised metrics must give the
    # interval a per-resample loop over sklearn gives, in the right direction
    y, a, b = inputs(metric, holdout(n=80))
    pred_a, pred_b, score_a, score_b = (
        (None, None, a, b) if METRICS[metric].needs == "score" else (a, b, None, None)
    )

    c = compare_to_champion(
        metric, y, pred_a, pred_b, score_a, score_b, method="bootstrap", seed=11, n_resamples=100
    )

    better, worse = (a, b) if METRICS[metric].higher_is_better else (b, a)
    estimate, low, high = paired_bootstrap(y, better, worse, SKLEARN[metric], 100, seed=11)
    assert c.improvement == pytest.approx(estimate, abs=1e-12)
    assert (c.ci_low, c.ci_high) == pytest.approx((low, high), abs=1e-12)
    assert c.candidate == pytest.approx(SKLEARN[metric](y, a), rel=1e-12)
    assert c.champion == pytest.approx(SKLEARN[metric](y, b), rel=1e-12)


def test_log_loss_clips_certain_probabilities_like_sklearn() -> None:
    # scores of exactly 0 and 1, some confidently wrong: both paths clip to [eps, 1 - eps]
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0, 1, 0] * 3, dtype=float)
    a = np.array([1.0, 0.0, 0.0, 0.2, 0.9, 1.0, 0.7, 0.1, 0.6, 0.3] * 3)
    b = np.array([0.8, 0.1, 0.7, 0.3, 1.0, 0.0, 0.6, 0.2, 0.5, 0.4] * 3)

    c = compare_to_champion("log_loss", y, None, None, a, b, n_resamples=50)

    assert c.candidate == pytest.approx(skm.log_loss(y, a), rel=1e-12)
    _, low, high = paired_bootstrap(y, b, a, skm.log_loss, n_resamples=50)
    assert (c.ci_low, c.ci_high) == pytest.approx((low, high), rel=1e-9)


@pytest.mark.parametrize(
    ("metric", "y", "candidate", "champion", "improvement"),
    [
        # no positive rows or predictions: sklearn's zero_division=0 gives f1 0, not 1
        ("f1", [0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0], 0.0),
        ("precision", [0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0], 0.0),
        # a constant target: r2 is 1 when predicted exactly, else 0 (sklearn's force_finite)
        ("r2", [3.0, 3.0, 3.0, 3.0], [3.0, 3.0, 3.0, 3.0], [3.5, 2.5, 3.5, 2.5], 1.0),
    ],
)
def test_degenerate_holdouts_follow_sklearn_conventions_in_every_resample(
    metric: str, y: list[float], candidate: list[float], champion: list[float], improvement: float
) -> None:
    c = compare_to_champion(metric, y, candidate, champion, n_resamples=50)

    assert c.improvement == improvement
    # every resample of these rows is degenerate the same way, so the interval is a point
    assert (c.ci_low, c.ci_high) == (improvement, improvement)


# --- compare_to_champion ------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["rmse", "log_loss"])
def test_lower_is_better_metrics_count_a_smaller_error_as_improvement(metric: str) -> None:
    rng = np.random.default_rng(12)
    if metric == "rmse":
        y = rng.normal(size=800)
        good, bad = y + rng.normal(0, 0.5, 800), y + rng.normal(0, 1.0, 800)
        args: dict[str, Any] = {"candidate_pred": good, "champion_pred": bad}
        swapped: dict[str, Any] = {"candidate_pred": bad, "champion_pred": good}
    else:
        y = (rng.random(800) < 0.5).astype(float)
        good = np.clip(0.2 + 0.6 * y + rng.normal(0, 0.1, 800), 0.01, 0.99)
        bad = np.clip(0.4 + 0.2 * y + rng.normal(0, 0.1, 800), 0.01, 0.99)
        args = {"candidate_pred": None, "champion_pred": None}
        args |= {"candidate_score": good, "champion_score": bad}
        swapped = {"candidate_pred": None, "champion_pred": None}
        swapped |= {"candidate_score": bad, "champion_score": good}

    c = compare_to_champion(metric, y, **args)
    worse = compare_to_champion(metric, y, **swapped)

    assert c.candidate < c.champion
    assert c.improvement == pytest.approx(c.champion - c.candidate)
    assert 0 < c.ci_low < c.improvement < c.ci_high
    assert c.passed
    assert worse.improvement == pytest.approx(-c.improvement)
    assert (worse.ci_low, worse.ci_high) == pytest.approx((-c.ci_high, -c.ci_low), abs=1e-12)
    assert not worse.passed


def test_passed_is_the_lower_bound_against_the_margin() -> None:
    y, a, b = inputs("accuracy", holdout(n=400))
    first = compare_to_champion("accuracy", y, a, b, margin=-0.05, seed=1)

    assert compare_to_champion("accuracy", y, a, b, margin=first.ci_low, seed=1).passed
    assert not compare_to_champion("accuracy", y, a, b, margin=first.ci_low + 1e-6, seed=1).passed
    assert first.passed == (first.ci_low >= -0.05)
    assert first.p_value is None


@pytest.mark.parametrize(("margin", "passed"), [(-0.005, True), (0.0, True), (0.001, False)])
@pytest.mark.parametrize("metric", ["accuracy", "roc_auc", "rmse"])
def test_identical_predictions_improve_by_zero_and_pass_iff_the_margin_allows(
    metric: str, margin: float, passed: bool
) -> None:
    y, a, _ = inputs(metric, holdout())
    scores: tuple[Any, Any] = (a, a) if METRICS[metric].needs == "score" else (None, None)

    c = compare_to_champion(metric, y, a, a, *scores, margin=margin)

    assert (c.improvement, c.ci_low, c.ci_high) == (0.0, 0.0, 0.0)
    assert c.passed is passed
    assert c.n == len(y)


def test_summary_of_a_bootstrap_comparison() -> None:
    c = compare_to_champion("accuracy", [1, 0, 1, 1], [1, 0, 0, 1], [1, 0, 0, 1], margin=-0.005)

    assert c.summary() == (
        "accuracy 0.750 vs champion 0.750: +0.000 (95% CI +0.000..+0.000, bootstrap), "
        "needs >= -0.005: passed"
    )


def test_mcnemar_p_value_is_the_one_sided_exact_test_statsmodels_doubles() -> None:
    # 100 rows: both right 80, only the candidate right 12, only the champion right 3, both wrong 5
    y = np.ones(100)
    candidate = np.r_[np.ones(80), np.ones(12), np.zeros(3), np.zeros(5)]
    champion = np.r_[np.ones(80), np.zeros(12), np.ones(3), np.zeros(5)]
    two_sided = mcnemar([[80, 12], [3, 5]], exact=True).pvalue

    c = compare_to_champion("accuracy", y, candidate, champion, method="mcnemar")
    reverse = compare_to_champion("accuracy", y, champion, candidate, method="mcnemar")

    # P(X >= 12) for X ~ Binomial(15, 1/2) = P(X <= 3) = (1 + 15 + 105 + 455) / 2**15
    assert c.p_value == pytest.approx(576 / 2**15, rel=1e-12)
    assert c.p_value == pytest.approx(two_sided / 2, rel=1e-12)
    assert reverse.p_value == pytest.approx(
        stats.binomtest(3, 15, alternative="greater").pvalue, rel=1e-12
    )
    assert c.method == "mcnemar" and c.improvement == pytest.approx(0.09)
    with pytest.raises(ValueError, match="margin"):
        compare_to_champion("accuracy", y, candidate, champion, margin=-0.01, method="mcnemar")


def test_lists_series_and_arrays_give_the_same_comparison() -> None:
    y, a, b = inputs("roc_auc", holdout())
    from_arrays = compare_to_champion("roc_auc", y, None, None, a, b)

    from_lists = compare_to_champion("roc_auc", y.tolist(), None, None, a.tolist(), b.tolist())
    from_series = compare_to_champion(
        "roc_auc", pd.Series(y.astype(bool)), None, None, pd.Series(a), pd.Series(b)
    )

    assert from_lists == from_arrays == from_series


BAD_INPUTS = {
    "lengths differ": (
        lambda: compare_to_champion("roc_auc", [1, 0, 1], None, None, [0.1, 0.2], [0.3, 0.2]),
        "lengths",
    ),
    "one class for roc_auc": (
        lambda: compare_to_champion("roc_auc", [1, 1], None, None, [0.1, 0.2], [0.3, 0.2]),
        "both classes",
    ),
    "nan": (lambda: compare_to_champion("rmse", [1.0, math.nan], [1.0, 2.0], [1.0, 2.0]), "NaN"),
    "missing score": (
        lambda: compare_to_champion("roc_auc", [0, 1], [0, 1], [1, 0]),
        "candidate_score",
    ),
    "typo": (
        lambda: compare_to_champion("rocauc", [0, 1], [0, 1], [1, 0]),
        "did you mean 'roc_auc'",
    ),
    "delong for rmse": (
        lambda: compare_to_champion("rmse", [1.0, 2.0], [1.0, 2], [1.0, 2], method="delong"),
        "ROC AUCs only",
    ),
    "labels not binary": (
        lambda: compare_to_champion("accuracy", [0, 2], [0, 1], [1, 1]),
        "binary y_true",
    ),
    "confidence in percent": (
        lambda: compare_to_champion("accuracy", [0, 1], [0, 1], [1, 1], confidence=95),
        "confidence",
    ),
    "one positive for delong": (
        lambda: delong_test([0, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]),
        "at least two rows",
    ),
    "metric needs y_score": (lambda: metric_value("log_loss", [0, 1], [0, 1]), "y_score"),
    "pandas NA": (
        lambda: metric_value("mae", pd.Series([1, None], dtype="Int64"), [1, 2]),
        "y_true has 1 NaN",
    ),
}


@pytest.mark.parametrize(("call", "message"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_inputs_raise_value_errors_that_say_what_is_wrong(
    call: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call()
