"""The multiclass champion comparison: the metrics sklearn computes, the interval a naive
bootstrap over sklearn gives, the direction of each metric."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from shipyard.stats.metrics import METRICS, multiclass_metrics
from shipyard.stats.multiclass import compare_multiclass
from shipyard.stats.paired import paired_bootstrap

K = 4
LABELS = list(range(K))
SKLEARN: dict[str, Callable[[Any, Any], float]] = {
    "roc_auc": lambda y, s: skm.roc_auc_score(y, s, multi_class="ovr", labels=LABELS),
    "accuracy": skm.accuracy_score,
    "f1_macro": lambda y, p: skm.f1_score(y, p, average="macro", zero_division=0),
    "f1_weighted": lambda y, p: skm.f1_score(y, p, average="weighted", zero_division=0),
    "log_loss": lambda y, s: skm.log_loss(y, s, labels=LABELS),
}


def holdout(n: int = 300) -> dict[str, np.ndarray]:
    """Four classes; model a is clearly better than model b."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, K, n)

    def model(noise: float) -> np.ndarray:
        logits = rng.normal(0, noise, (n, K))
        logits[np.arange(n), y] += 1.5
        proba = np.exp(logits)
        return np.asarray(proba / proba.sum(axis=1, keepdims=True))

    a, b = model(1.0), model(1.8)
    return {"y": y, "score_a": a, "score_b": b, "label_a": a.argmax(1), "label_b": b.argmax(1)}


def test_every_multiclass_metric_has_a_reference() -> None:
    assert set(multiclass_metrics()) == set(SKLEARN)


@pytest.mark.parametrize("metric", sorted(SKLEARN))
def test_the_comparison_equals_a_naive_bootstrap_over_sklearn(metric: str) -> None:
    data = holdout(120)
    kind = "score" if METRICS[metric].needs == "score" else "label"
    a, b = data[f"{kind}_a"], data[f"{kind}_b"]
    c = compare_multiclass(
        metric, data["y"], data["label_a"], data["label_b"], data["score_a"], data["score_b"], K,
        seed=3, n_resamples=60,
    )  # fmt: skip
    assert c.candidate == pytest.approx(SKLEARN[metric](data["y"], a), rel=1e-12)
    assert c.champion == pytest.approx(SKLEARN[metric](data["y"], b), rel=1e-12)
    assert c.improvement > 0, "model a is the better one, whatever the metric's direction"
    better, worse = (a, b) if METRICS[metric].higher_is_better else (b, a)
    rng = np.random.default_rng(3)
    differences = []
    for _ in range(60):  # the rows paired_bootstrap draws, one resample at a time
        rows = rng.integers(0, len(data["y"]), len(data["y"]))
        y = data["y"][rows]
        differences.append(SKLEARN[metric](y, better[rows]) - SKLEARN[metric](y, worse[rows]))
    low, high = np.quantile(differences, [0.025, 0.975])
    assert (c.ci_low, c.ci_high) == pytest.approx((low, high), abs=1e-12)
    assert c.method == "bootstrap" and c.n == len(data["y"]) and c.passed


def test_identical_models_are_exactly_equal() -> None:
    data = holdout()
    c = compare_multiclass(
        "accuracy", data["y"], data["label_a"], data["label_a"], None, None, K, margin=-0.01
    )
    assert (c.improvement, c.ci_low, c.ci_high, c.passed) == (0.0, 0.0, 0.0, True)


@pytest.mark.parametrize("metric", ["f1", "pr_auc", "brier", "precision", "recall"])
def test_a_metric_about_a_positive_class_is_refused(metric: str) -> None:
    data = holdout(30)
    with pytest.raises(ValueError, match="about a positive class"):
        compare_multiclass(metric, data["y"], data["label_a"], data["label_b"], None, None, K)


def test_scores_of_the_wrong_shape_are_refused() -> None:
    data = holdout(30)
    with pytest.raises(ValueError, match=r"shape \(30, 4\)"):
        compare_multiclass(
            "log_loss", data["y"], None, None, data["score_a"][:, :3], data["score_b"], K
        )


def test_the_bootstrap_it_builds_on_is_the_paired_one() -> None:
    # guards the naive reference above: the same seed gives paired_bootstrap the same rows
    data = holdout(50)
    _, low, high = paired_bootstrap(
        data["y"].astype(float), data["label_a"], data["label_b"], skm.accuracy_score, 200, seed=3
    )
    c = compare_multiclass(
        "accuracy", data["y"], data["label_a"], data["label_b"], None, None, K, seed=3,
        n_resamples=200,
    )  # fmt: skip
    assert (c.ci_low, c.ci_high) == pytest.approx((low, high), abs=1e-12)
