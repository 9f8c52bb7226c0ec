"""Rollout analysis statistics: is the canary worse than the stable variant over an interval?

Each check turns one analysis interval's counts into a `MetricOutcome` (successful, failed or
inconclusive) with a one-line evidence string, and `judge_runs` folds the outcomes of many
intervals into a run decision with Argo Rollouts' semantics (`failureLimit`,
`inconclusiveLimit`; a Failed run aborts the rollout, an Inconclusive one pauses it for a
person). The inputs are what Prometheus holds over the interval: request and error counts, the
deltas of cumulative latency histogram buckets, binned prediction counts. No data, or too little
to tell, is inconclusive and never a pass. Pure numpy, scipy and statsmodels: no clients.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

Array = npt.NDArray[np.float64]
Outcome = Literal["successful", "failed", "inconclusive"]
Buckets = Sequence[tuple[float, float]]
"""Cumulative histogram buckets `(upper_bound_seconds, cumulative_count)`, the last `+inf`."""

PSI_EPSILON = 1e-4
"""The share an empty bin counts as in the PSI, so that its logarithm stays finite."""

_EXACT_BELOW = 5.0  # the textbook rule: the z-test needs every expected 2x2 count >= 5


@dataclass(frozen=True)
class MetricOutcome:
    """One metric measured over one analysis interval, candidate against stable.

    Attributes:
        name: Metric name, e.g. "error_rate"; `judge_runs` counts outcomes by it.
        outcome: "successful", "failed" or "inconclusive" (no data, or too little to tell).
        value: The candidate's observed value (error rate, latency quantile in seconds, PSI),
            or None without data.
        baseline: The stable variant's value, or None without a comparison or its data.
        threshold: The absolute limit on `value` (max error rate, max seconds, max PSI).
        p_value: One-sided p-value of "the candidate is worse than stable", or None when no
            test was made.
        method: The test behind `p_value`: "z-test", "fisher", "score", "mann-whitney", or
            None.
        evidence: One line for a person, e.g. "error rate 3.1% (31/1000) vs stable 0.4%
            (4/1000): one-sided z-test p=2.1e-06, max 1%: failed, above max".
    """

    name: str
    outcome: Outcome
    value: float | None
    baseline: float | None
    threshold: float
    p_value: float | None
    method: str | None
    evidence: str


@dataclass(frozen=True)
class RunDecision:
    """What an analysis run decides from its measurements, as Argo Rollouts does.

    Attributes:
        outcome: "failed" (abort the rollout), "inconclusive" (pause for a person) or
            "successful" (continue).
        reason: One line naming the deciding metric(s) and their counts.
        failed: Failed measurements per metric.
        inconclusive: Inconclusive measurements per metric (a missing one counts).
        intervals: Number of intervals judged.
    """

    outcome: Outcome
    reason: str
    failed: Mapping[str, int] = field(default_factory=dict)
    inconclusive: Mapping[str, int] = field(default_factory=dict)
    intervals: int = 0


def error_rate_test(
    stable_errors: int | None,
    stable_total: int | None,
    candidate_errors: int,
    candidate_total: int,
    max_rate: float,
    margin: float = 0.0,
    alpha: float = 0.05,
    *,
    min_requests: int = 50,
    name: str = "error_rate",
) -> MetricOutcome:
    """Check the candidate's error rate against a maximum and, optionally, against stable.

    The measurement fails when the candidate's rate is above `max_rate`, or when a one-sided
    test rejects "candidate rate <= stable rate + margin" at `alpha`. The test is statsmodels'
    pooled two-proportion z-test with margin 0, unless an expected count of the 2x2 table is
    below 5: then Fisher's exact test (scipy, alternative "greater"), which stays valid for a
    handful of errors. With a margin the null says the rates differ, which the pooled variance
    denies, so a margin uses the Farrington-Manning score test (statsmodels
    `test_proportions_2indep`, method "score"), the usual non-inferiority test for a difference.

    Too few requests to tell: with fewer than `min_requests` candidate requests the
    measurement is inconclusive, unless its errors alone exceed `max_rate` of `min_requests`
    (the rate would stay above the maximum even if every missing request succeeded): then it
    fails. A comparison with fewer than `min_requests` stable requests is inconclusive unless
    the maximum is already exceeded.

    Args:
        stable_errors: Errors of the stable variant over the interval; None (with
            `stable_total` None) to check the maximum only.
        stable_total: Requests of the stable variant over the interval, or None.
        candidate_errors: Errors of the candidate over the interval.
        candidate_total: Requests of the candidate over the interval.
        max_rate: Highest acceptable candidate error rate, in [0, 1].
        margin: How much worse than stable the candidate may be, in [0, 1).
        alpha: Significance level of the one-sided test, in (0, 1).
        min_requests: Fewest requests per variant that are judged, at least 1.
        name: Metric name carried by the outcome.

    Returns:
        The outcome; `value` is the candidate's rate and `baseline` the stable rate.

    Raises:
        ValueError: Negative counts, more errors than requests, only one of the stable counts,
            or a parameter out of its range.
    """
    _ensure_counts(candidate_errors, candidate_total, "candidate")
    compare = stable_errors is not None or stable_total is not None
    if compare and (stable_errors is None or stable_total is None):
        raise ValueError("pass both stable_errors and stable_total, or neither")
    _ensure_unit("max_rate", max_rate, closed=True)
    _ensure_unit("alpha", alpha, closed=False)
    if not (0.0 <= margin < 1.0):
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    _ensure_min("min_requests", min_requests)

    rate = candidate_errors / candidate_total if candidate_total else None
    observed = (
        f"error rate {_percent(rate)} ({candidate_errors}/{candidate_total})"
        if rate is not None
        else "no candidate requests"
    )
    baseline: float | None = None
    if stable_errors is not None and stable_total is not None:
        _ensure_counts(stable_errors, stable_total, "stable")
        baseline = stable_errors / stable_total if stable_total else None
        observed += (
            f" vs stable {_percent(baseline)} ({stable_errors}/{stable_total})"
            if baseline is not None
            else " vs no stable requests"
        )
    limit = f"max {_percent(max_rate)}"

    def outcome(
        verdict: Outcome, why: str, p: float | None = None, method: str | None = None
    ) -> MetricOutcome:
        test = f"one-sided {method} p={p:.2g}, " if p is not None else ""
        return MetricOutcome(
            name, verdict, rate, baseline, max_rate, p, method, f"{observed}: {test}{limit}: {why}"
        )

    if candidate_total < min_requests:
        if candidate_errors > max_rate * min_requests:
            return outcome("failed", f"failed, above max even over {min_requests} requests")
        return outcome("inconclusive", f"inconclusive, fewer than {min_requests} requests")
    assert rate is not None  # candidate_total >= min_requests >= 1
    above = rate > max_rate
    if not compare:
        return outcome("failed", "failed, above max") if above else outcome("successful", "ok")
    assert stable_errors is not None and stable_total is not None
    if stable_total < min_requests:
        if above:
            return outcome("failed", "failed, above max")
        return outcome("inconclusive", f"inconclusive, fewer than {min_requests} stable requests")

    p_value, method = _worse_rate_p_value(
        stable_errors, stable_total, candidate_errors, candidate_total, margin
    )
    worse = p_value < alpha
    margin_text = f" + {_percent(margin)}" if margin else ""
    if above and worse:
        return outcome(
            "failed", f"failed, above max and worse than stable{margin_text}", p_value, method
        )
    if above:
        return outcome("failed", "failed, above max", p_value, method)
    if worse:
        return outcome("failed", f"failed, worse than stable{margin_text}", p_value, method)
    return outcome("successful", "ok", p_value, method)


def histogram_quantile(quantile: float, buckets: Buckets) -> float | None:
    """The quantile of cumulative histogram buckets, as Prometheus' `histogram_quantile`.

    Linear interpolation within the bucket holding rank `quantile * total`: the first bucket
    whose cumulative count reaches the rank, from the previous upper bound (0 for the first
    bucket, unless its bound is <= 0: then that bound) to its own. A rank that lands in the
    +Inf bucket returns the upper bound of the last finite bucket, as Prometheus does: the
    histogram cannot say how far beyond it the slow requests are.

    Args:
        quantile: In (0, 1), e.g. 0.99.
        buckets: `(upper_bound, cumulative_count)` pairs, bounds increasing, the last +inf.

    Returns:
        The quantile in the buckets' unit, or None when the histogram holds no observations.

    Raises:
        ValueError: Malformed buckets or a quantile outside (0, 1).
    """
    _ensure_unit("quantile", quantile, closed=False)
    bounds, cumulative = _buckets(buckets, "buckets")
    return _quantile(quantile, bounds, cumulative)


def latency_test(
    stable_buckets: Buckets | None,
    candidate_buckets: Buckets,
    max_quantile_seconds: float,
    quantile: float = 0.99,
    alpha: float = 0.05,
    min_ratio: float = 1.0,
    *,
    min_requests: int = 50,
    name: str = "latency",
) -> MetricOutcome:
    """Check the candidate's latency quantile against a maximum and, optionally, stable's.

    The quantile is `histogram_quantile`'s. The comparison is a one-sided Mann-Whitney U test
    of "candidate latencies are stochastically larger" on the bucket indices: every request in
    a bucket ties with the others there, so U and its tie-corrected variance come from the
    per-bucket counts in O(buckets) memory (normal approximation with continuity correction,
    scipy's asymptotic `mannwhitneyu`; with hundreds of requests per arm it is accurate).

    The measurement fails when the candidate's quantile is above `max_quantile_seconds`, or
    when the test rejects at `alpha` and the candidate's quantile is at least `min_ratio` times
    stable's. The test says the candidate is slower overall, which the ratio alone cannot say
    from one noisy tail quantile; the ratio keeps a slowdown that is significant but does not
    reach the quantile that matters (or is smaller than `min_ratio` allows) from failing the
    rollout. A candidate 30% slower on every request fails with a few hundred requests per arm;
    an identical one fails with probability about `alpha`.

    Fewer than `min_requests` requests of the candidate (or, with a comparison, of stable)
    make the measurement inconclusive, unless the maximum is exceeded with a comparison.

    Args:
        stable_buckets: Stable's bucket deltas over the interval, the same bounds as the
            candidate's; None to check the maximum only.
        candidate_buckets: The candidate's `(upper_bound_seconds, cumulative_count)` deltas
            over the interval, bounds increasing, the last +inf.
        max_quantile_seconds: Highest acceptable candidate quantile, in seconds.
        quantile: The quantile checked, in (0, 1).
        alpha: Significance level of the one-sided test, in (0, 1).
        min_ratio: How many times stable's quantile the candidate's must reach before a
            significant test fails it, at least 0; 1.0 fails any significant slowdown that
            shows in the quantile.
        min_requests: Fewest requests per variant that are judged, at least 1.
        name: Metric name carried by the outcome.

    Returns:
        The outcome; `value` is the candidate's quantile and `baseline` stable's, in seconds.

    Raises:
        ValueError: Malformed buckets, bounds that differ, or a parameter out of its range.
    """
    _ensure_unit("quantile", quantile, closed=False)
    _ensure_unit("alpha", alpha, closed=False)
    if not (math.isfinite(max_quantile_seconds) and max_quantile_seconds >= 0):
        raise ValueError(f"max_quantile_seconds must be >= 0, got {max_quantile_seconds}")
    if not (math.isfinite(min_ratio) and min_ratio >= 0):
        raise ValueError(f"min_ratio must be >= 0, got {min_ratio}")
    _ensure_min("min_requests", min_requests)
    bounds, candidate = _buckets(candidate_buckets, "candidate_buckets")
    stable: Array | None = None
    if stable_buckets is not None:
        stable_bounds, stable = _buckets(stable_buckets, "stable_buckets")
        if not np.array_equal(bounds, stable_bounds):
            raise ValueError("stable_buckets and candidate_buckets must have the same bounds")

    label = f"p{quantile * 100:g} latency"
    n = float(candidate[-1])
    value = _quantile(quantile, bounds, candidate)
    observed = f"{label} {_seconds(value)} (n={n:g})" if value is not None else f"no {label}"
    baseline: float | None = None
    if stable is not None:
        baseline = _quantile(quantile, bounds, stable)
        observed += (
            f" vs stable {_seconds(baseline)} (n={float(stable[-1]):g})"
            if baseline is not None
            else " vs no stable requests"
        )
    limit = f"max {_seconds(max_quantile_seconds)}"

    def outcome(verdict: Outcome, why: str, p: float | None = None) -> MetricOutcome:
        method = "mann-whitney" if p is not None else None
        test = f"one-sided Mann-Whitney p={p:.2g}, " if p is not None else ""
        return MetricOutcome(
            name,
            verdict,
            value,
            baseline,
            max_quantile_seconds,
            p,
            method,
            f"{observed}: {test}{limit}: {why}",
        )

    if n < min_requests or value is None:
        return outcome("inconclusive", f"inconclusive, fewer than {min_requests} requests")
    above = value > max_quantile_seconds
    if stable is None:
        return outcome("failed", "failed, above max") if above else outcome("successful", "ok")
    if float(stable[-1]) < min_requests or baseline is None:
        if above:
            return outcome("failed", "failed, above max")
        return outcome("inconclusive", f"inconclusive, fewer than {min_requests} stable requests")

    p_value = _mann_whitney_greater(np.diff(stable, prepend=0.0), np.diff(candidate, prepend=0.0))
    slower = p_value < alpha and value >= min_ratio * baseline
    ratio = f" x{min_ratio:g}" if min_ratio != 1.0 else ""
    if above and slower:
        return outcome("failed", f"failed, above max and slower than stable{ratio}", p_value)
    if above:
        return outcome("failed", "failed, above max", p_value)
    if slower:
        return outcome("failed", f"failed, slower than stable{ratio}", p_value)
    return outcome("successful", "ok", p_value)


def prediction_shift(
    stable_counts: Sequence[float],
    candidate_counts: Sequence[float],
    max_psi: float,
    *,
    name: str = "prediction_shift",
) -> MetricOutcome:
    """Population stability index between stable's and the candidate's predictions.

    PSI = sum over bins of (c - s) * ln(c / s), with c and s each variant's share of its
    predictions in the bin. An empty bin counts as a share of `PSI_EPSILON` (1e-4) so that the
    logarithm stays finite; shares are not renormalised, which keeps PSI exactly 0 for two
    identical distributions. Common reading: below 0.1 no shift, 0.1 to 0.25 some, above 0.25
    a large one.

    Args:
        stable_counts: Stable's prediction counts per bin.
        candidate_counts: The candidate's counts in the same bins.
        max_psi: Highest acceptable PSI, at least 0.
        name: Metric name carried by the outcome.

    Returns:
        The outcome: failed when PSI > max_psi, inconclusive when either variant has no
        predictions; `value` is the PSI, `p_value` None.

    Raises:
        ValueError: Bins that differ in number, fewer than two bins, negative or non-finite
            counts, or a negative max_psi.
    """
    stable = np.asarray(stable_counts, dtype=np.float64)
    candidate = np.asarray(candidate_counts, dtype=np.float64)
    if stable.ndim != 1 or stable.shape != candidate.shape or stable.size < 2:
        raise ValueError(
            f"stable_counts and candidate_counts must be the same bins, at least two, got "
            f"{stable.size} and {candidate.size}"
        )
    for label, counts in (("stable_counts", stable), ("candidate_counts", candidate)):
        if not np.isfinite(counts).all() or (counts < 0).any():
            raise ValueError(f"{label} must be finite and non-negative")
    if not (math.isfinite(max_psi) and max_psi >= 0):
        raise ValueError(f"max_psi must be >= 0, got {max_psi}")
    stable_n, candidate_n = float(stable.sum()), float(candidate.sum())
    sizes = f"(n={candidate_n:g} vs stable {stable_n:g})"
    if stable_n == 0 or candidate_n == 0:
        evidence = f"no prediction PSI {sizes}, max {max_psi:g}: inconclusive, no predictions"
        return MetricOutcome(name, "inconclusive", None, None, max_psi, None, None, evidence)
    s = np.maximum(stable / stable_n, PSI_EPSILON)
    c = np.maximum(candidate / candidate_n, PSI_EPSILON)
    psi = float(np.sum((c - s) * np.log(c / s)))
    failed = psi > max_psi
    verdict: Outcome = "failed" if failed else "successful"
    evidence = (
        f"prediction PSI {psi:.3g} {sizes}, max {max_psi:g}: "
        f"{'failed, above max' if failed else 'ok'}"
    )
    return MetricOutcome(name, verdict, psi, None, max_psi, None, None, evidence)


def judge_runs(
    measurements: Sequence[Sequence[MetricOutcome]],
    failure_limit: int,
    inconclusive_limit: int = 0,
) -> RunDecision:
    """Decide an analysis run from its measurements, with Argo Rollouts' semantics.

    Each inner list is one interval's measurement, one outcome per metric. A metric fails the
    run once its failed measurements exceed `failure_limit` (0: the first failure fails; -1:
    never). Otherwise its inconclusive measurements beyond `inconclusive_limit` make the run
    inconclusive, which pauses the rollout for a person. A metric missing from an interval
    counts as an inconclusive measurement there, and a metric with no successful or failed
    measurement at all (and a run with no measurements) is inconclusive whatever the limit:
    no data is never a pass. Failed wins over inconclusive, which wins over successful.

    Args:
        measurements: One list of outcomes per interval, oldest first.
        failure_limit: Failed measurements a metric may have, at least -1 (-1 disables).
        inconclusive_limit: Inconclusive measurements a metric may have, at least 0.

    Returns:
        The decision, its reason naming the metric(s) and counts.

    Raises:
        ValueError: A limit out of range, or a metric measured twice in one interval.
    """
    if failure_limit < -1:
        raise ValueError(f"failure_limit must be -1 (disabled) or more, got {failure_limit}")
    if inconclusive_limit < 0:
        raise ValueError(f"inconclusive_limit must be 0 or more, got {inconclusive_limit}")
    names: list[str] = []
    for interval in measurements:
        seen: set[str] = set()
        for measurement in interval:
            if measurement.name in seen:
                raise ValueError(f"metric '{measurement.name}' is measured twice in an interval")
            seen.add(measurement.name)
            if measurement.name not in names:
                names.append(measurement.name)
    intervals = len(measurements)
    if not names:
        return RunDecision("inconclusive", "no measurements: no data is never a pass")

    counts: dict[str, dict[Outcome, int]] = {
        metric: {"successful": 0, "failed": 0, "inconclusive": 0} for metric in names
    }
    for interval in measurements:
        by_name = {measurement.name: measurement.outcome for measurement in interval}
        for metric in names:
            counts[metric][by_name.get(metric, "inconclusive")] += 1
    failed = {metric: counts[metric]["failed"] for metric in names}
    inconclusive = {metric: counts[metric]["inconclusive"] for metric in names}

    def of(metric: str, kind: Outcome) -> str:
        return f"{metric} {kind} {counts[metric][kind]} of {intervals} measurements"

    over_failures = [
        f"{of(metric, 'failed')}, more than failure_limit {failure_limit}"
        for metric in names
        if failure_limit >= 0 and failed[metric] > failure_limit
    ]
    if over_failures:
        return RunDecision("failed", "; ".join(over_failures), failed, inconclusive, intervals)
    unclear = [
        f"{of(metric, 'inconclusive')}, more than inconclusive_limit {inconclusive_limit}"
        if inconclusive[metric] > inconclusive_limit
        else f"{of(metric, 'inconclusive')}, none decided: no data is never a pass"
        for metric in names
        if inconclusive[metric] > inconclusive_limit or inconclusive[metric] == intervals
    ]
    if unclear:
        return RunDecision("inconclusive", "; ".join(unclear), failed, inconclusive, intervals)
    summary = ", ".join(f"{metric} failed {failed[metric]}" for metric in names)
    reason = (
        f"{intervals} measurements within failure_limit {failure_limit} and inconclusive_limit "
        f"{inconclusive_limit}: {summary}"
    )
    return RunDecision("successful", reason, failed, inconclusive, intervals)


def _worse_rate_p_value(
    stable_errors: int,
    stable_total: int,
    candidate_errors: int,
    candidate_total: int,
    margin: float,
) -> tuple[float, str]:
    """One-sided p-value of H0 'candidate rate <= stable rate + margin', and its method."""
    from statsmodels.stats.proportion import proportions_ztest, test_proportions_2indep

    if margin > 0:
        with np.errstate(divide="ignore", invalid="ignore"):  # ratios statsmodels also reports
            result = test_proportions_2indep(
                candidate_errors,
                candidate_total,
                stable_errors,
                stable_total,
                value=margin,
                method="score",
                compare="diff",
                alternative="larger",
            )
        return _p(float(result.pvalue)), "score"
    pooled = (candidate_errors + stable_errors) / (candidate_total + stable_total)
    expected = min(candidate_total, stable_total) * min(pooled, 1.0 - pooled)
    if expected < _EXACT_BELOW:
        table = [
            [candidate_errors, candidate_total - candidate_errors],
            [stable_errors, stable_total - stable_errors],
        ]
        return _p(float(stats.fisher_exact(table, alternative="greater").pvalue)), "fisher"
    _, p_value = proportions_ztest(
        [candidate_errors, stable_errors], [candidate_total, stable_total], alternative="larger"
    )
    return _p(float(p_value)), "z-test"


def _mann_whitney_greater(stable: Array, candidate: Array) -> float:
    """One-sided Mann-Whitney p-value that the candidate's bins are higher, from bin counts.

    U counts the (candidate, stable) pairs where the candidate is in a higher bin, a pair in
    the same bin counting one half; its variance is corrected for the ties of each bin.
    """
    n1, n2 = float(candidate.sum()), float(stable.sum())
    total = n1 + n2
    below = np.cumsum(stable) - stable
    u = float(np.sum(candidate * (below + 0.5 * stable)))
    ties = candidate + stable
    tie_term = float(np.sum(ties**3 - ties)) / (total * (total - 1.0))
    variance = n1 * n2 / 12.0 * ((total + 1.0) - tie_term)
    if variance <= 0:  # every request in one bucket: no evidence either way
        return 1.0
    z = (u - n1 * n2 / 2.0 - 0.5) / math.sqrt(variance)
    return float(stats.norm.sf(z))


def _quantile(quantile: float, bounds: Array, cumulative: Array) -> float | None:
    total = float(cumulative[-1])
    if total == 0:
        return None
    rank = quantile * total
    # the first bucket that reaches the rank; the +Inf bucket when no finite one does
    b = int(np.searchsorted(cumulative[:-1], rank, side="left"))
    if b == bounds.size - 1:
        return float(bounds[-2])
    if b == 0 and bounds[0] <= 0:
        return float(bounds[0])
    start = float(bounds[b - 1]) if b > 0 else 0.0
    below = float(cumulative[b - 1]) if b > 0 else 0.0
    in_bucket = float(cumulative[b]) - below
    return start + (float(bounds[b]) - start) * (rank - below) / in_bucket


def _buckets(buckets: Buckets, label: str) -> tuple[Array, Array]:
    pairs = list(buckets)
    if len(pairs) < 2:
        raise ValueError(f"{label} needs at least one finite bucket and +inf, got {len(pairs)}")
    bounds = np.array([float(bound) for bound, _ in pairs])
    cumulative = np.array([float(count) for _, count in pairs])
    if bounds[-1] != math.inf or not np.isfinite(bounds[:-1]).all():
        raise ValueError(f"{label} must end with the +inf bucket, after finite bounds")
    if (np.diff(bounds) <= 0).any():
        raise ValueError(f"{label} bounds must increase")
    if not np.isfinite(cumulative).all() or cumulative[0] < 0 or (np.diff(cumulative) < 0).any():
        raise ValueError(
            f"{label} counts must be cumulative (non-negative, non-decreasing); a counter reset "
            "in the interval gives negative deltas"
        )
    return bounds, cumulative


def _ensure_counts(errors: int, total: int, label: str) -> None:
    if total < 0 or errors < 0 or errors > total:
        raise ValueError(f"{label} needs 0 <= errors <= total, got {errors} of {total}")


def _ensure_unit(label: str, value: float, *, closed: bool) -> None:
    inside = 0.0 <= value <= 1.0 if closed else 0.0 < value < 1.0
    if not inside:
        raise ValueError(f"{label} must be in {'[0, 1]' if closed else '(0, 1)'}, got {value}")


def _ensure_min(label: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{label} must be at least 1, got {value}")


def _p(value: float) -> float:
    return 1.0 if math.isnan(value) else min(max(value, 0.0), 1.0)


def _percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.3g}%"


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}s"
