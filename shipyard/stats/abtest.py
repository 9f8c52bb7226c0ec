"""A/B-test statistics: fixed-horizon tests, intervals, ratio metrics, SRM, multiple testing, CUPED.

Arm A is the control, arm B the treatment; every difference is B - A and every lift (B - A) / A.
The tests follow R where R has the reference (`prop.test`, `t.test`), and GrowthBook's
`gbstats` for the relative lift (delta method). Too little data never gives NaN or a division
by zero: the result says `status="not_enough_data"` with None numbers and a reason; impossible
input (negative counts, more successes than trials) raises ValueError. Power and sample size are
in `abtest_power`, the sequential test in `abtest_sequential`, the Bayesian models and Thompson
sampling in `abtest_bayes`. Pure numpy, scipy and statsmodels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats
from statsmodels.stats.multitest import multipletests

Array = npt.NDArray[np.float64]
Status = Literal["ok", "not_enough_data"]

SRM_THRESHOLD = 0.001
"""p-value under which a sample-ratio mismatch is flagged (GrowthBook and Eppo use 0.001)."""


@dataclass(frozen=True)
class Comparison:
    """A two-arm comparison, B - A.

    Attributes:
        status: "ok", or "not_enough_data" (then the statistics are None; see `reason`).
        method: The test followed, e.g. "pooled two-proportion z-test".
        mean_a: Control's mean or rate (None without units).
        mean_b: Treatment's mean or rate.
        estimate: B - A.
        statistic: The test statistic (z, t or X-squared).
        df: Degrees of freedom of a t or chi-square statistic, else None.
        p_value: Two-sided p-value.
        ci_low: Lower end of the (1 - alpha) interval of B - A.
        ci_high: Upper end.
        lift: Relative lift (B - A) / A; None when A's mean is 0.
        lift_ci_low: Lower end of the lift's interval, delta method (GrowthBook).
        lift_ci_high: Upper end.
        alpha: 1 - the intervals' confidence.
        reason: Why there is no result, or "".
    """

    status: Status
    method: str
    mean_a: float | None
    mean_b: float | None
    estimate: float | None = None
    statistic: float | None = None
    df: float | None = None
    p_value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    lift: float | None = None
    lift_ci_low: float | None = None
    lift_ci_high: float | None = None
    alpha: float = 0.05
    reason: str = ""


@dataclass(frozen=True)
class ChiSquareResult:
    """R's `prop.test` on k proportions: are they all equal?

    Attributes:
        status: "ok" or "not_enough_data".
        statistic: X-squared (with Yates' correction when asked and k = 2).
        df: k - 1.
        p_value: Upper tail of chi-square(df).
        estimates: Each group's proportion.
        ci_low: For k = 2, the interval of p1 - p2 as R prints it (first minus second); else None.
        ci_high: Upper end, likewise.
        correct: Whether Yates' continuity correction was applied.
        reason: Why there is no result, or "".
    """

    status: Status
    statistic: float | None
    df: int
    p_value: float | None
    estimates: tuple[float, ...]
    ci_low: float | None
    ci_high: float | None
    correct: bool
    reason: str = ""


@dataclass(frozen=True)
class SrmResult:
    """Sample-ratio mismatch: Pearson chi-square goodness of fit against the allocation.

    Attributes:
        status: "ok" or "not_enough_data" (no units at all).
        statistic: X-squared.
        df: Arms - 1.
        p_value: Upper tail of chi-square(df), or None.
        mismatch: p_value < threshold: the assignment is broken, do not trust the results.
        expected: Units each arm should have had.
        threshold: The p-value threshold.
        reason: Why there is no result, or "".
    """

    status: Status
    statistic: float | None
    df: int
    p_value: float | None
    mismatch: bool
    expected: tuple[float, ...]
    threshold: float
    reason: str = ""


@dataclass(frozen=True)
class MultipleTestResult:
    """p-values adjusted for multiple comparisons (statsmodels `multipletests`).

    Attributes:
        method: "holm" (family-wise error) or "bh" (Benjamini-Hochberg false discovery rate).
        p_adjusted: Adjusted p-values, in the input order.
        reject: Whether each hypothesis is rejected at `alpha`, in the input order.
        alpha: The family-wise error or false discovery rate controlled.
    """

    method: Literal["holm", "bh"]
    p_adjusted: tuple[float, ...]
    reject: tuple[bool, ...]
    alpha: float


@dataclass(frozen=True)
class CupedResult:
    """CUPED (Deng et al. 2013): the metric minus theta times its centred pre-period covariate.

    Attributes:
        status: "ok" or "not_enough_data" (covariate without variance, or fewer than 2 units).
        theta: cov(Y, X) / var(X) over both arms pooled.
        adjusted_a: Control's adjusted metric Y - theta (X - mean(X)), mean(X) pooled.
        adjusted_b: Treatment's adjusted metric.
        variance_reduction: 1 - var(adjusted) / var(Y), pooled (the squared correlation).
        comparison: Welch's test on the adjusted metric.
        reason: Why there is no result, or "".
    """

    status: Status
    theta: float | None
    adjusted_a: Array
    adjusted_b: Array
    variance_reduction: float | None
    comparison: Comparison
    reason: str = ""


def proportions_ztest(x_a: int, n_a: int, x_b: int, n_b: int, *, alpha: float = 0.05) -> Comparison:
    """Pooled two-proportion z-test (statsmodels `proportions_ztest`), Wald and delta intervals.

    z = (p_b - p_a) / sqrt(p (1 - p) (1 / n_a + 1 / n_b)) with p the pooled rate; the interval
    of the difference is Wald's with each arm's own variance p(1 - p) / n, the lift's the
    delta method of GrowthBook: var = v_a p_b^2 / p_a^4 + v_b / p_a^2, v = p(1 - p) / n.

    Raises:
        ValueError: Negative counts, more successes than trials, alpha out of (0, 1).
    """
    ensure_counts(x_a, n_a, "A")
    ensure_counts(x_b, n_b, "B")
    ensure_unit("alpha", alpha)
    method = "pooled two-proportion z-test"
    p_a, p_b = (x_a / n_a if n_a else None), (x_b / n_b if n_b else None)
    if p_a is None or p_b is None:
        return Comparison(
            "not_enough_data", method, p_a, p_b, alpha=alpha, reason="an arm is empty"
        )
    pooled = (x_a + x_b) / (n_a + n_b)
    if pooled in (0.0, 1.0):
        return Comparison(
            "not_enough_data", method, p_a, p_b, estimate=p_b - p_a, alpha=alpha,
            reason="every outcome is the same (all 0 or all 1): no variance to test",
        )  # fmt: skip
    z = (p_b - p_a) / math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))
    p_value = float(2.0 * stats.norm.sf(abs(z)))
    var_a, var_b = p_a * (1 - p_a) / n_a, p_b * (1 - p_b) / n_b
    critical = float(stats.norm.isf(alpha / 2.0))
    return _comparison(method, p_a, var_a, p_b, var_b, z, None, p_value, critical, alpha)


def prop_test(
    successes: Sequence[int], trials: Sequence[int], *, correct: bool = True, alpha: float = 0.05
) -> ChiSquareResult:
    """R's `prop.test`: Pearson chi-square of k proportions being equal, Yates for k = 2.

    As R: the expected counts are n_i p and n_i (1 - p), p pooled; with `correct` and k = 2,
    YATES = min(0.5, |p1 - p2| / (1 / n1 + 1 / n2)) is taken off every |observed - expected|;
    the interval of p1 - p2 is (p1 - p2) -/+ (z sqrt(sum p_i (1 - p_i) / n_i) + YATES (1 / n1
    + 1 / n2)), clipped to [-1, 1]. Example: x = (83, 90, 129, 70), n = (86, 93, 136, 82)
    gives X-squared 12.6, df 3, p 0.005585.

    Raises:
        ValueError: Fewer than 2 groups, lengths that differ, impossible counts.
    """
    if len(successes) != len(trials) or len(successes) < 2:
        raise ValueError("pass one success count per trial count, for at least 2 groups")
    for i, (count, size) in enumerate(zip(successes, trials, strict=True)):
        ensure_counts(count, size, f"group {i + 1}")
    ensure_unit("alpha", alpha)
    k = len(successes)
    use_yates = correct and k == 2
    if any(n == 0 for n in trials):
        return ChiSquareResult(
            "not_enough_data", None, k - 1, None, (), None, None, use_yates, "a group is empty"
        )
    x = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    estimates = x / n
    pooled = x.sum() / n.sum()
    if pooled in (0.0, 1.0):
        return ChiSquareResult(
            "not_enough_data", None, k - 1, None, tuple(estimates.tolist()), None, None,
            use_yates, "every outcome is the same (all 0 or all 1)",
        )  # fmt: skip
    yates = 0.0
    if use_yates:
        yates = min(0.5, float(abs(estimates[0] - estimates[1]) / np.sum(1.0 / n)))
    observed = np.concatenate([x, n - x])
    expected = np.concatenate([n * pooled, n * (1.0 - pooled)])
    statistic = float(np.sum((np.abs(observed - expected) - yates) ** 2 / expected))
    p_value = float(stats.chi2.sf(statistic, k - 1))
    low: float | None = None
    high: float | None = None
    if k == 2:
        delta = float(estimates[0] - estimates[1])
        z = float(stats.norm.isf(alpha / 2.0))
        width = z * math.sqrt(float(np.sum(estimates * (1 - estimates) / n)))
        width += yates * float(np.sum(1.0 / n))
        low, high = max(delta - width, -1.0), min(delta + width, 1.0)
    return ChiSquareResult(
        "ok", statistic, k - 1, p_value, tuple(estimates.tolist()), low, high, use_yates
    )


def welch_test(
    mean_a: float,
    sd_a: float,
    n_a: int,
    mean_b: float,
    sd_b: float,
    n_b: int,
    *,
    alpha: float = 0.05,
) -> Comparison:
    """Welch's t-test from summaries, as R's `t.test` default (`var.equal = FALSE`).

    t = (mean_b - mean_a) / sqrt(v_a + v_b), v = sd^2 / n (sd with n - 1), Welch-Satterthwaite
    df = (v_a + v_b)^2 / (v_a^2 / (n_a - 1) + v_b^2 / (n_b - 1)); the intervals of the
    difference and of the lift (delta method, GrowthBook) use the t quantile with that df.

    Raises:
        ValueError: Negative sizes or standard deviations, non-finite means, alpha out of range.
    """
    for name, value in (("sd_a", sd_a), ("sd_b", sd_b), ("n_a", n_a), ("n_b", n_b)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be finite and non-negative, got {value}")
    if not (math.isfinite(mean_a) and math.isfinite(mean_b)):
        raise ValueError("means must be finite")
    ensure_unit("alpha", alpha)
    method = "Welch two-sample t-test"
    if n_a < 2 or n_b < 2:
        return Comparison(
            "not_enough_data", method, mean_a if n_a else None, mean_b if n_b else None,
            alpha=alpha, reason="each arm needs at least 2 units",
        )  # fmt: skip
    var_a, var_b = sd_a**2 / n_a, sd_b**2 / n_b
    if var_a + var_b == 0.0:
        return Comparison(
            "not_enough_data", method, mean_a, mean_b, estimate=mean_b - mean_a, alpha=alpha,
            reason="both arms have zero variance",
        )  # fmt: skip
    df = (var_a + var_b) ** 2 / (var_a**2 / (n_a - 1) + var_b**2 / (n_b - 1))
    t = (mean_b - mean_a) / math.sqrt(var_a + var_b)
    p_value = float(2.0 * stats.t.sf(abs(t), df))
    critical = float(stats.t.isf(alpha / 2.0, df))
    return _comparison(method, mean_a, var_a, mean_b, var_b, t, df, p_value, critical, alpha)


def welch_t_test(a: npt.ArrayLike, b: npt.ArrayLike, *, alpha: float = 0.05) -> Comparison:
    """Welch's t-test on two samples (control `a`, treatment `b`); see `welch_test`."""
    xa, xb = _finite_array(a, "a"), _finite_array(b, "b")
    sd_a = float(np.std(xa, ddof=1)) if xa.size > 1 else 0.0
    sd_b = float(np.std(xb, ddof=1)) if xb.size > 1 else 0.0
    mean_a = float(xa.mean()) if xa.size else 0.0
    mean_b = float(xb.mean()) if xb.size else 0.0
    return welch_test(mean_a, sd_a, xa.size, mean_b, sd_b, xb.size, alpha=alpha)


def ratio_test(
    numerator_a: npt.ArrayLike,
    denominator_a: npt.ArrayLike,
    numerator_b: npt.ArrayLike,
    denominator_b: npt.ArrayLike,
    *,
    alpha: float = 0.05,
) -> Comparison:
    """A ratio metric (sum of numerators / sum of denominators, per-user pairs), delta method.

    Each arm's R = mean(y) / mean(x) has var(R) ~ (s_y^2 / x^2 - 2 y s_xy / x^3 + y^2 s_x^2 /
    x^4) / n (first-order Taylor expansion; Deng et al. 2018, as GrowthBook, Eppo and Statsig),
    means and (co)variances with n - 1; the difference is z-tested, its lift by the delta method.

    Raises:
        ValueError: Arrays of different lengths within an arm, non-finite values.
    """
    ensure_unit("alpha", alpha)
    method = "ratio metric z-test (delta method)"
    arms = []
    for name, num, den in (("A", numerator_a, denominator_a), ("B", numerator_b, denominator_b)):
        y, x = _finite_array(num, f"numerator_{name}"), _finite_array(den, f"denominator_{name}")
        if y.shape != x.shape:
            raise ValueError(f"arm {name}: numerator and denominator need one value per user")
        if y.size < 2 or x.mean() == 0.0:
            return Comparison(
                "not_enough_data", method, None, None, alpha=alpha,
                reason=f"arm {name} needs at least 2 users and a non-zero denominator",
            )  # fmt: skip
        my, mx = float(y.mean()), float(x.mean())
        cov = np.cov(y, x, ddof=1)
        var = (cov[0, 0] / mx**2 - 2 * my * cov[0, 1] / mx**3 + my**2 * cov[1, 1] / mx**4) / y.size
        arms.append((my / mx, max(float(var), 0.0)))
    (r_a, var_a), (r_b, var_b) = arms
    if var_a + var_b == 0.0:
        return Comparison(
            "not_enough_data", method, r_a, r_b, estimate=r_b - r_a, alpha=alpha,
            reason="the ratios have no variance",
        )  # fmt: skip
    z = (r_b - r_a) / math.sqrt(var_a + var_b)
    p_value = float(2.0 * stats.norm.sf(abs(z)))
    critical = float(stats.norm.isf(alpha / 2.0))
    return _comparison(method, r_a, var_a, r_b, var_b, z, None, p_value, critical, alpha)


def srm_test(
    observed: Sequence[int], allocation: Sequence[float], *, threshold: float = SRM_THRESHOLD
) -> SrmResult:
    """Sample-ratio mismatch: Pearson chi-square of the units per arm against the allocation.

    Expected counts are total * w_i / sum(w) (weights in any unit: 50/50, 0.5/0.5); a mismatch
    is p < `threshold` (0.001 by default, as GrowthBook and Eppo). 5200/4800 at 50/50 gives
    X-squared 16, p 6.3e-5: a mismatch; 5050/4950 gives p 0.32.

    Raises:
        ValueError: Fewer than 2 arms, lengths that differ, negative counts, weights not
            positive, threshold out of (0, 1).
    """
    if len(observed) != len(allocation) or len(observed) < 2:
        raise ValueError("pass one observed count per allocation weight, for at least 2 arms")
    if any(int(c) != c or c < 0 for c in observed):
        raise ValueError(f"observed counts must be non-negative integers, got {list(observed)}")
    if any(not (w > 0 and math.isfinite(w)) for w in allocation):
        raise ValueError(f"allocation weights must be positive, got {list(allocation)}")
    ensure_unit("threshold", threshold)
    counts = np.asarray(observed, dtype=np.float64)
    weights = np.asarray(allocation, dtype=np.float64)
    expected = counts.sum() * weights / weights.sum()
    df = len(observed) - 1
    if counts.sum() == 0:
        return SrmResult(
            "not_enough_data", None, df, None, False, tuple(expected.tolist()), threshold,
            "no units in any arm",
        )  # fmt: skip
    statistic = float(np.sum((counts - expected) ** 2 / expected))
    p_value = float(stats.chi2.sf(statistic, df))
    return SrmResult(
        "ok", statistic, df, p_value, p_value < threshold, tuple(expected.tolist()), threshold
    )


def adjust_p_values(
    p_values: Sequence[float], method: Literal["holm", "bh"] = "holm", *, alpha: float = 0.05
) -> MultipleTestResult:
    """Holm's step-down (family-wise error) or Benjamini-Hochberg (false discovery rate).

    statsmodels `multipletests` with method "holm" or "fdr_bh"; an empty list gives empty
    results.

    Raises:
        ValueError: A p-value outside [0, 1] or NaN, an unknown method.
    """
    if method not in ("holm", "bh"):
        raise ValueError(f"method must be 'holm' or 'bh', got {method!r}")
    ensure_unit("alpha", alpha)
    if any(not (0.0 <= p <= 1.0) for p in p_values):
        raise ValueError(f"p-values must be in [0, 1], got {list(p_values)}")
    if not p_values:
        return MultipleTestResult(method, (), (), alpha)
    reject, adjusted, _, _ = multipletests(
        list(p_values), alpha=alpha, method="holm" if method == "holm" else "fdr_bh"
    )
    return MultipleTestResult(
        method, tuple(float(p) for p in adjusted), tuple(bool(r) for r in reject), alpha
    )


def cuped(
    metric_a: npt.ArrayLike,
    covariate_a: npt.ArrayLike,
    metric_b: npt.ArrayLike,
    covariate_b: npt.ArrayLike,
    *,
    alpha: float = 0.05,
) -> CupedResult:
    """CUPED: theta = cov(Y, X) / var(X) over both arms pooled, Y' = Y - theta (X - mean(X)).

    One theta for both arms (Deng et al. 2013), so the adjustment cannot create a difference
    between arms that the covariate, measured before assignment, does not explain. The
    variance reduction is 1 - var(Y') / var(Y) over the pooled data, which is corr(Y, X)^2.

    Raises:
        ValueError: Metric and covariate of different lengths within an arm, non-finite values.
    """
    ya, xa = _finite_array(metric_a, "metric_a"), _finite_array(covariate_a, "covariate_a")
    yb, xb = _finite_array(metric_b, "metric_b"), _finite_array(covariate_b, "covariate_b")
    if ya.shape != xa.shape or yb.shape != xb.shape:
        raise ValueError("metric and covariate need one value per user in each arm")
    y, x = np.concatenate([ya, yb]), np.concatenate([xa, xb])
    var_x = float(np.var(x, ddof=1)) if x.size > 1 else 0.0
    var_y = float(np.var(y, ddof=1)) if y.size > 1 else 0.0
    if var_x == 0.0 or var_y == 0.0:
        return CupedResult(
            "not_enough_data", None, ya, yb, None, welch_t_test(ya, yb, alpha=alpha),
            "the metric or the covariate has no variance (or fewer than 2 units)",
        )  # fmt: skip
    theta = float(np.cov(y, x, ddof=1)[0, 1]) / var_x
    centre = float(x.mean())
    adj_a, adj_b = ya - theta * (xa - centre), yb - theta * (xb - centre)
    reduction = 1.0 - float(np.var(np.concatenate([adj_a, adj_b]), ddof=1)) / var_y
    return CupedResult(
        "ok", theta, adj_a, adj_b, reduction, welch_t_test(adj_a, adj_b, alpha=alpha)
    )


def relative_lift(
    mean_a: float, var_mean_a: float, mean_b: float, var_mean_b: float
) -> tuple[float, float] | None:
    """The lift (B - A) / A and its variance by the delta method (GrowthBook's `details.mdx`).

    var = var_mean_a mean_b^2 / mean_a^4 + var_mean_b / mean_a^2, var_mean the variance of each
    arm's mean (sigma^2 / n). None when A's mean is 0.
    """
    if mean_a == 0.0:
        return None
    lift = (mean_b - mean_a) / mean_a
    return lift, var_mean_a * mean_b**2 / mean_a**4 + var_mean_b / mean_a**2


def ensure_counts(x: int, n: int, arm: str) -> None:
    """Raise ValueError unless 0 <= x <= n are whole numbers."""
    if int(x) != x or int(n) != n:
        raise ValueError(f"arm {arm}: counts must be whole numbers, got {x}/{n}")
    if n < 0 or x < 0:
        raise ValueError(f"arm {arm}: counts must not be negative, got {x}/{n}")
    if x > n:
        raise ValueError(f"arm {arm}: {x} successes out of {n} trials is more than all of them")


def ensure_unit(name: str, value: float) -> None:
    """Raise ValueError unless 0 < value < 1."""
    if not (0.0 < value < 1.0):
        raise ValueError(f"{name} must be in (0, 1), got {value}")


def _comparison(
    method: str,
    mean_a: float,
    var_a: float,
    mean_b: float,
    var_b: float,
    statistic: float,
    df: float | None,
    p_value: float,
    critical: float,
    alpha: float,
) -> Comparison:
    diff = mean_b - mean_a
    half = critical * math.sqrt(var_a + var_b)
    lift = relative_lift(mean_a, var_a, mean_b, var_b)
    lift_low = lift_high = lift_value = None
    if lift is not None:
        lift_value, lift_half = lift[0], critical * math.sqrt(lift[1])
        lift_low, lift_high = lift_value - lift_half, lift_value + lift_half
    return Comparison(
        "ok", method, mean_a, mean_b, diff, statistic, df, p_value, diff - half, diff + half,
        lift_value, lift_low, lift_high, alpha,
    )  # fmt: skip


def _finite_array(values: npt.ArrayLike, name: str) -> Array:
    array = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must hold finite numbers only")
    return array
