"""Rollout analysis: histogram quantiles by hand, the tests against scipy and statsmodels, power."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from scipy import stats
from statsmodels.stats import proportion

from shipyard.stats.analysis import (
    PSI_EPSILON,
    MetricOutcome,
    Outcome,
    error_rate_test,
    histogram_quantile,
    judge_runs,
    latency_test,
    prediction_shift,
)

INF = math.inf
BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, INF)


def binned(latencies: npt.NDArray[np.float64]) -> list[tuple[float, float]]:
    """Cumulative `le` buckets as prometheus_client counts them (a value on a bound is in it)."""
    index = np.searchsorted(np.array(BOUNDS), latencies, side="left")
    cumulative = np.cumsum(np.bincount(index, minlength=len(BOUNDS)))
    return [(bound, float(count)) for bound, count in zip(BOUNDS, cumulative, strict=True)]


# --- histogram_quantile -------------------------------------------------------------------------

HISTOGRAM = [(0.1, 10.0), (0.5, 60.0), (1.0, 90.0), (INF, 100.0)]


@pytest.mark.parametrize(
    ("quantile", "expected"),
    [
        (0.05, 0.05),  # rank 5 in the first bucket: 0 + 0.1 * 5/10
        (0.5, 0.42),  # rank 50 in (0.1, 0.5]: 0.1 + 0.4 * (50 - 10)/50
        (0.9, 1.0),  # rank 90 reaches (0.5, 1] exactly: its upper bound
        (0.95, 1.0),  # rank 95 lands in +Inf: the last finite bound
        (0.99, 1.0),
    ],
)
def test_histogram_quantile_interpolates_as_prometheus(quantile: float, expected: float) -> None:
    assert histogram_quantile(quantile, HISTOGRAM) == pytest.approx(expected)


def test_histogram_quantile_skips_empty_buckets_and_handles_bounds_at_zero() -> None:
    # rank 5 first reached by (0.2, 0.4]: 0.2 + 0.2 * 5/10
    assert histogram_quantile(0.5, [(0.1, 0), (0.2, 0), (0.4, 10), (INF, 10)]) == pytest.approx(0.3)
    # a first bucket with bound <= 0 returns that bound, as Prometheus does
    assert histogram_quantile(0.2, [(0.0, 5), (1.0, 10), (INF, 10)]) == 0.0
    assert histogram_quantile(0.5, [(0.1, 0), (INF, 0)]) is None


@pytest.mark.parametrize(
    "buckets",
    [
        [(0.1, 1), (1.0, 2)],  # no +Inf
        [(INF, 3)],  # no finite bucket
        [(0.5, 1), (0.1, 2), (INF, 3)],  # bounds out of order
        [(0.1, 5), (1.0, 3), (INF, 6)],  # not cumulative (a counter reset)
    ],
)
def test_histogram_quantile_refuses_malformed_buckets(buckets: list[tuple[float, float]]) -> None:
    with pytest.raises(ValueError):
        histogram_quantile(0.99, buckets)


# --- error rate ---------------------------------------------------------------------------------


def test_error_rate_z_test_is_statsmodels_and_reads_as_evidence() -> None:
    outcome = error_rate_test(4, 1000, 31, 1000, max_rate=0.01)
    _, expected = proportion.proportions_ztest([31, 4], [1000, 1000], alternative="larger")
    assert outcome.method == "z-test"
    assert outcome.p_value == pytest.approx(float(expected), rel=1e-12)
    assert (outcome.outcome, outcome.value, outcome.baseline) == ("failed", 0.031, 0.004)
    assert outcome.evidence == (
        "error rate 3.1% (31/1000) vs stable 0.4% (4/1000): one-sided z-test p=2.1e-06, "
        "max 1%: failed, above max and worse than stable"
    )


def test_error_rate_fails_on_the_test_alone_and_passes_a_similar_candidate() -> None:
    worse = error_rate_test(4, 1000, 31, 1000, max_rate=0.05)
    assert worse.outcome == "failed"
    assert worse.evidence.endswith("max 5%: failed, worse than stable")
    similar = error_rate_test(10, 1000, 12, 1000, max_rate=0.05)
    assert similar.outcome == "successful"
    assert similar.p_value is not None and similar.p_value > 0.05


def test_error_rate_small_counts_take_fishers_exact_test() -> None:
    # pooled rate 5/400: an expected 2.5 errors per arm, too few for the z-test
    outcome = error_rate_test(0, 200, 5, 200, max_rate=0.05)
    expected = stats.fisher_exact([[5, 195], [0, 200]], alternative="greater").pvalue
    assert outcome.method == "fisher"
    assert outcome.p_value == pytest.approx(float(expected), rel=1e-12)
    assert outcome.outcome == "failed"  # 2.5% is under the 5% max, but worse than stable
    none_anywhere = error_rate_test(0, 500, 0, 500, max_rate=0.01)
    assert (none_anywhere.outcome, none_anywhere.method, none_anywhere.p_value) == (
        "successful",
        "fisher",
        1.0,
    )


def test_error_rate_margin_uses_the_score_test() -> None:
    outcome = error_rate_test(10, 2000, 50, 2000, max_rate=0.05, margin=0.01)
    expected = proportion.test_proportions_2indep(
        50, 2000, 10, 2000, value=0.01, method="score", compare="diff", alternative="larger"
    ).pvalue
    assert outcome.method == "score"
    assert outcome.p_value == pytest.approx(float(expected), rel=1e-12)
    # 2.5% against 0.5% + 1%: worse beyond the margin
    assert outcome.outcome == "failed"
    assert "worse than stable + 1%" in outcome.evidence
    within = error_rate_test(10, 2000, 25, 2000, max_rate=0.05, margin=0.01)
    assert within.outcome == "successful"


def test_error_rate_without_enough_data_is_inconclusive_unless_already_too_high() -> None:
    no_data = error_rate_test(0, 0, 0, 0, max_rate=0.01)
    assert (no_data.outcome, no_data.value, no_data.p_value) == ("inconclusive", None, None)
    assert no_data.evidence.startswith("no candidate requests vs no stable requests")
    few = error_rate_test(3, 1000, 0, 10, max_rate=0.01)
    assert few.outcome == "inconclusive"
    assert few.evidence.endswith("inconclusive, fewer than 50 requests")
    # 5 errors are above 1% of 50 requests whatever the 40 missing requests would do
    assert error_rate_test(3, 1000, 5, 10, max_rate=0.01).outcome == "failed"
    no_stable = error_rate_test(0, 0, 1, 1000, max_rate=0.01)
    assert no_stable.outcome == "inconclusive"
    assert error_rate_test(0, 0, 20, 1000, max_rate=0.01).outcome == "failed"


def test_error_rate_threshold_only() -> None:
    assert error_rate_test(None, None, 5, 1000, max_rate=0.01).outcome == "successful"
    over = error_rate_test(None, None, 11, 1000, max_rate=0.01)
    assert (over.outcome, over.p_value, over.baseline) == ("failed", None, None)
    with pytest.raises(ValueError, match="both"):
        error_rate_test(None, 100, 5, 1000, max_rate=0.01)
    with pytest.raises(ValueError, match="errors <= total"):
        error_rate_test(None, None, 5, 4, max_rate=0.01)


# --- latency ------------------------------------------------------------------------------------


def test_mann_whitney_from_counts_is_scipys_on_the_expanded_indices() -> None:
    rng = np.random.default_rng(7)
    stable = rng.lognormal(math.log(0.05), 0.6, 80)
    candidate = rng.lognormal(math.log(0.06), 0.6, 90)
    outcome = latency_test(binned(stable), binned(candidate), max_quantile_seconds=10.0)
    index = np.array(BOUNDS)
    expected = stats.mannwhitneyu(
        np.searchsorted(index, candidate),
        np.searchsorted(index, stable),
        alternative="greater",
        method="asymptotic",
    ).pvalue
    assert outcome.method == "mann-whitney"
    assert outcome.p_value == pytest.approx(float(expected), rel=1e-10)


def test_latency_quantile_against_its_maximum() -> None:
    buckets = [(0.1, 10.0), (0.5, 60.0), (1.0, 90.0), (INF, 100.0)]
    median = latency_test(None, buckets, max_quantile_seconds=0.4, quantile=0.5)
    assert (median.outcome, median.value) == ("failed", pytest.approx(0.42))
    assert median.evidence == "p50 latency 0.42s (n=100): max 0.4s: failed, above max"
    assert latency_test(None, buckets, max_quantile_seconds=1.0).outcome == "successful"
    empty = [(0.1, 0.0), (0.5, 0.0), (1.0, 0.0), (INF, 0.0)]
    assert latency_test(empty, buckets, max_quantile_seconds=1.0).outcome == "inconclusive"
    assert latency_test(buckets, empty, max_quantile_seconds=1.0).outcome == "inconclusive"
    with pytest.raises(ValueError, match="same bounds"):
        latency_test([(0.2, 1.0), (INF, 1.0)], buckets, max_quantile_seconds=1.0)


def test_latency_detects_a_candidate_30_percent_slower_and_rarely_fails_an_identical_one() -> None:
    detected = false_alarms = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        stable = rng.lognormal(math.log(0.05), 0.5, 300)
        candidate = rng.lognormal(math.log(0.05), 0.5, 300)
        stable_buckets = binned(stable)
        slower = latency_test(stable_buckets, binned(candidate * 1.3), max_quantile_seconds=10.0)
        same = latency_test(stable_buckets, binned(candidate), max_quantile_seconds=10.0)
        detected += slower.outcome == "failed"
        false_alarms += same.outcome == "failed"
    assert detected >= 95, f"detected {detected} of 100"
    assert false_alarms <= 10, f"failed {false_alarms} of 100 identical candidates"


def test_latency_min_ratio_lets_a_small_significant_slowdown_pass() -> None:
    rng = np.random.default_rng(3)
    stable = binned(rng.lognormal(math.log(0.05), 0.5, 5000))
    candidate = binned(rng.lognormal(math.log(0.05), 0.5, 5000) * 1.1)
    strict = latency_test(stable, candidate, max_quantile_seconds=10.0)
    assert strict.outcome == "failed"
    assert strict.evidence.endswith("failed, slower than stable")
    lenient = latency_test(stable, candidate, max_quantile_seconds=10.0, min_ratio=1.5)
    assert (lenient.outcome, lenient.p_value) == ("successful", strict.p_value)


def test_latency_counts_in_the_millions_stay_cheap() -> None:
    stable = [(bound, float(i) * 1e6) for i, bound in enumerate(BOUNDS, start=1)]
    outcome = latency_test(stable, stable, max_quantile_seconds=10.0)
    assert outcome.outcome == "successful"
    assert outcome.p_value == pytest.approx(0.5)  # equal arms; the continuity correction


# --- prediction shift ---------------------------------------------------------------------------


def test_psi_known_value() -> None:
    # shares 0.1..0.4 against a uniform 0.25
    expected = sum((c - 0.25) * math.log(c / 0.25) for c in (0.1, 0.2, 0.3, 0.4))
    assert expected == pytest.approx(0.228218, abs=1e-6)
    outcome = prediction_shift([100, 100, 100, 100], [10, 20, 30, 40], max_psi=0.2)
    assert (outcome.outcome, outcome.value) == ("failed", pytest.approx(expected))
    assert (
        outcome.evidence == "prediction PSI 0.228 (n=100 vs stable 400), max 0.2: failed, above max"
    )
    assert prediction_shift([100, 100, 100, 100], [10, 20, 30, 40], 0.25).outcome == "successful"


def test_psi_empty_bin_counts_as_epsilon_and_no_data_is_inconclusive() -> None:
    outcome = prediction_shift([50, 50, 0], [50, 40, 10], max_psi=0.25)
    expected = -0.1 * math.log(0.8) + (0.1 - PSI_EPSILON) * math.log(0.1 / PSI_EPSILON)
    assert outcome.value == pytest.approx(expected)
    assert prediction_shift([5, 5], [7, 7], max_psi=0.0).value == 0.0
    assert prediction_shift([0, 0], [7, 7], max_psi=0.1).outcome == "inconclusive"
    with pytest.raises(ValueError, match="same bins"):
        prediction_shift([1, 2, 3], [1, 2], max_psi=0.1)


# --- the run ------------------------------------------------------------------------------------


def measured(name: str, outcome: Outcome) -> MetricOutcome:
    return MetricOutcome(name, outcome, None, None, 0.0, None, None, f"{name} {outcome}")


def intervals(*rows: str) -> list[list[MetricOutcome]]:
    """One row per interval, a letter per metric: s(uccessful), f(ailed), i(nconclusive)."""
    kinds: dict[str, Outcome] = {"s": "successful", "f": "failed", "i": "inconclusive"}
    names = ("error_rate", "latency")
    return [
        [measured(name, kinds[letter]) for name, letter in zip(names, row, strict=False)]
        for row in rows
    ]


def test_failure_limit_zero_fails_on_the_first_failure() -> None:
    decision = judge_runs(intervals("ss", "fs", "ss"), failure_limit=0)
    assert decision.outcome == "failed"
    assert decision.reason == "error_rate failed 1 of 3 measurements, more than failure_limit 0"
    assert dict(decision.failed) == {"error_rate": 1, "latency": 0}
    assert judge_runs(intervals("ss", "ss"), failure_limit=0).outcome == "successful"


def test_failure_limit_two_tolerates_two_failures_of_a_metric() -> None:
    assert judge_runs(intervals("fs", "sf", "fs", "ss"), failure_limit=2).outcome == "successful"
    decision = judge_runs(intervals("fs", "fs", "ss", "fs"), failure_limit=2)
    assert decision.outcome == "failed"
    assert decision.reason.startswith("error_rate failed 3 of 4")
    assert judge_runs(intervals("ff", "ff"), failure_limit=-1).outcome == "successful"


def test_inconclusive_measurements_pause_the_run() -> None:
    decision = judge_runs(intervals("ss", "si", "ss"), failure_limit=0)
    assert decision.outcome == "inconclusive"
    assert decision.reason == (
        "latency inconclusive 1 of 3 measurements, more than inconclusive_limit 0"
    )
    assert judge_runs(intervals("ss", "si"), 0, inconclusive_limit=1).outcome == "successful"
    # failed wins over inconclusive
    assert judge_runs(intervals("ii", "fs"), failure_limit=0).outcome == "failed"
    # a metric missing from an interval was not measured there
    assert judge_runs(intervals("ss", "s", "ss"), failure_limit=0).outcome == "inconclusive"


def test_no_data_is_never_a_pass() -> None:
    assert judge_runs([], failure_limit=0).outcome == "inconclusive"
    assert judge_runs([[], []], failure_limit=0).outcome == "inconclusive"
    decision = judge_runs(intervals("is", "is"), failure_limit=0, inconclusive_limit=5)
    assert decision.outcome == "inconclusive"
    assert decision.reason == (
        "error_rate inconclusive 2 of 2 measurements, none decided: no data is never a pass"
    )
    no_requests = error_rate_test(0, 0, 0, 0, max_rate=0.01)
    assert judge_runs([[no_requests]], failure_limit=0).outcome == "inconclusive"
