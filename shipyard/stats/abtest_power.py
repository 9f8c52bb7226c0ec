"""A/B-test sample size and power: R's `power.prop.test` and `power.t.test`, and the mSPRT horizon.

The fixed-horizon formulas are R's (stats package, R 4.x), so that a number a person checks in R
is the number Shipyard prints: `power.prop.test` is the normal approximation with the pooled
variance under the null and the unpooled one under the alternative, `power.t.test` the
noncentral t of a two-sample test with `2(n - 1)` degrees of freedom. Both solve for `n` (per
arm) or for the power; R's `strict = FALSE` default leaves out the far tail of a two-sided test,
`strict=True` counts it (as statsmodels' `TTestIndPower` does). R solves `n` with `uniroot` at a
tolerance of about 1e-4; here `brentq` solves to 1e-10, so the two agree to R's printed digits.

The sequential horizon is the sample size per arm by which the mSPRT of `abtest_sequential`
(always valid under continuous peeking) has rejected with at least the asked-for power, by the
normal approximation and without simulation (see `msprt_sample_size`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from scipy import optimize, stats

from shipyard.stats.abtest_sequential import default_tau, msprt_boundary

Alternative = Literal["two-sided", "one-sided"]

_N_MIN = 2.0
_N_MAX = 1e9  # per arm; R searches (2, 1e7) and extends upwards


@dataclass(frozen=True)
class PowerResult:
    """A solved power calculation.

    Attributes:
        n: Sample size per arm (not rounded up: `math.ceil` it to plan).
        power: Probability of rejecting the null at `alpha` under the alternative.
        alpha: Significance level.
        alternative: "two-sided" or "one-sided".
        method: The formula followed, e.g. "R power.prop.test".
    """

    n: float
    power: float
    alpha: float
    alternative: Alternative
    method: str


@dataclass(frozen=True)
class SequentialSizeResult:
    """Sample size of the always-valid (mSPRT) design against the fixed-horizon one.

    Attributes:
        n: Sample size per arm by which the mSPRT has rejected with probability >= `power`
            (a conservative horizon: it may stop, and usually does, earlier).
        n_fixed: Per-arm size of the fixed-horizon z-test with the same alpha and power.
        inflation: `n / n_fixed`, the price of being allowed to peek at every observation.
        power: The power asked for.
        alpha: Significance level.
        tau: Standard deviation of the mSPRT's normal mixing distribution on the effect.
        method: The formula followed.
    """

    n: float
    n_fixed: float
    inflation: float
    power: float
    alpha: float
    tau: float
    method: str


def power_proportions(
    p1: float,
    p2: float,
    *,
    n: float | None = None,
    power: float | None = None,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
) -> PowerResult:
    """Power or sample size per arm of a test of two proportions, as R's `power.prop.test`.

    R's formula (strict = FALSE): power = Phi((sqrt(n) |p1 - p2| - z * sqrt((p1 + p2)(q1 + q2)
    / 2)) / sqrt(p1 q1 + p2 q2)), z = qnorm(1 - alpha / sides): the critical value is set with
    the pooled variance of the null, the spread under the alternative with each arm's own.
    Pass exactly one of `n` and `power`; the other is solved.

    Example: `power_proportions(0.50, 0.75, n=50).power` is 0.7401659, as
    `power.prop.test(n = 50, p1 = .50, p2 = .75)`.

    Raises:
        ValueError: Proportions outside (0, 1) or equal, n below 2, power not in (alpha, 1),
            or not exactly one of `n` and `power`.
    """
    for name, p in (("p1", p1), ("p2", p2)):
        if not (0.0 < p < 1.0):
            raise ValueError(f"{name} must be in (0, 1), got {p}")
    if p1 == p2:
        raise ValueError("p1 and p2 are equal: there is no effect to power a test for")
    _ensure_alpha(alpha)
    z = stats.norm.isf(alpha / _sides(alternative))
    q1, q2 = 1.0 - p1, 1.0 - p2
    null_sd = math.sqrt((p1 + p2) * (q1 + q2) / 2.0)
    alt_sd = math.sqrt(p1 * q1 + p2 * q2)
    effect = abs(p1 - p2)

    def power_at(size: float) -> float:
        return float(stats.norm.cdf((math.sqrt(size) * effect - z * null_sd) / alt_sd))

    return _solve(power_at, n, power, alpha, alternative, "R power.prop.test")


def power_means(
    delta: float,
    sd: float = 1.0,
    *,
    n: float | None = None,
    power: float | None = None,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    strict: bool = False,
) -> PowerResult:
    """Power or sample size per arm of a two-sample t-test, as R's `power.t.test`.

    R's formula: power = P(T' > qt(1 - alpha / sides, nu)), T' noncentral t with nu = 2(n - 1)
    degrees of freedom and noncentrality sqrt(n / 2) |delta| / sd (equal variances, equal
    arms). `strict=True` adds the probability of rejecting in the wrong tail of a two-sided
    test, as R's `strict = TRUE` and statsmodels' `TTestIndPower` do.

    Example: `power_means(1.0, n=20).power` is 0.8689528, as `power.t.test(n = 20, delta = 1)`.

    Raises:
        ValueError: delta zero, sd not positive, n below 2, power not in (alpha, 1), or not
            exactly one of `n` and `power`.
    """
    if delta == 0.0 or not math.isfinite(delta):
        raise ValueError(f"delta must be a finite non-zero difference, got {delta}")
    if not (sd > 0.0 and math.isfinite(sd)):
        raise ValueError(f"sd must be positive, got {sd}")
    _ensure_alpha(alpha)
    sides = _sides(alternative)
    effect = abs(delta) / sd

    def power_at(size: float) -> float:
        nu = 2.0 * (size - 1.0)
        ncp = math.sqrt(size / 2.0) * effect
        critical = stats.t.isf(alpha / sides, nu)
        upper = float(stats.nct.sf(critical, nu, ncp))
        if strict and sides == 2:
            upper += float(stats.nct.cdf(-critical, nu, ncp))
        return upper

    return _solve(power_at, n, power, alpha, alternative, "R power.t.test")


def msprt_sample_size(
    delta: float,
    variance_a: float,
    variance_b: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    tau: float | None = None,
    n_tune: float = 5000.0,
) -> SequentialSizeResult:
    """Per-arm horizon of the mSPRT (always-valid) design, and its inflation over a fixed test.

    The mSPRT with a N(0, tau^2) mixture rejects at sample size n when |z| > b(n), z the
    difference over its standard error sqrt(V), V = (variance_a + variance_b) / n, and
    b(n)^2 = (1 + V / tau^2)(2 ln(1 / alpha) + ln(1 + tau^2 / V)) (the boundary of
    `abtest_sequential.msprt_test`). Under the alternative z ~ N(delta / sqrt(V), 1), so the
    probability of being past the boundary at n is Phi(delta / sqrt(V) - b(n)) + Phi(-delta /
    sqrt(V) - b(n)); the horizon is the n where that equals `power`. A test peeked at every
    observation has rejected by n at least as often (it may cross earlier), so this horizon is
    conservative and needs no simulation. The fixed-horizon comparison is the two-sided
    z-test with the same variances: n = (z_{1-alpha/2} + z_power)^2 (va + vb) / delta^2.

    Args:
        delta: The effect to detect (absolute difference of means or proportions).
        variance_a: Per-unit variance in arm A (p(1 - p) for a proportion).
        variance_b: Per-unit variance in arm B.
        alpha: Significance level of the always-valid test.
        power: Power wanted by the horizon.
        tau: Mixing standard deviation; None tunes it by GrowthBook's rule
            (`abtest_sequential.default_tau`) for `n_tune` total units.
        n_tune: Total units (both arms) at which the default tau makes the boundary tightest.

    Raises:
        ValueError: delta zero, a variance not positive, alpha or power out of (0, 1).
    """
    if delta == 0.0 or not math.isfinite(delta):
        raise ValueError(f"delta must be a finite non-zero difference, got {delta}")
    for name, value in (("variance_a", variance_a), ("variance_b", variance_b)):
        if not (value > 0.0 and math.isfinite(value)):
            raise ValueError(f"{name} must be positive, got {value}")
    _ensure_alpha(alpha)
    if not (alpha < power < 1.0):
        raise ValueError(f"power must be in (alpha, 1), got {power}")
    total_variance = variance_a + variance_b
    if tau is None:
        # equal arms: N = 2n units, V = total_variance / n, so N V = 2 total_variance
        tau = default_tau(2.0 * total_variance, alpha, n_tune)
    if not (tau > 0.0 and math.isfinite(tau)):
        raise ValueError(f"tau must be positive, got {tau}")
    effect = abs(delta)

    def power_at(size: float) -> float:
        se = math.sqrt(total_variance / size)
        bound = msprt_boundary(se * se, tau, alpha)
        shift = effect / se
        return float(stats.norm.cdf(shift - bound) + stats.norm.cdf(-shift - bound))

    n_seq = _root(lambda size: power_at(size) - power)
    z_sum = stats.norm.isf(alpha / 2.0) + stats.norm.ppf(power)
    n_fixed = float(z_sum**2 * total_variance / effect**2)
    return SequentialSizeResult(
        n_seq, n_fixed, n_seq / n_fixed, power, alpha, tau, "mSPRT normal-mixture horizon"
    )


def _solve(
    power_at: Callable[[float], float],
    n: float | None,
    power: float | None,
    alpha: float,
    alternative: Alternative,
    method: str,
) -> PowerResult:
    if (n is None) == (power is None):
        raise ValueError("pass exactly one of n and power; the other is solved")
    if n is not None:
        if not (n >= _N_MIN and math.isfinite(n)):
            raise ValueError(f"n must be at least {_N_MIN:g} per arm, got {n}")
        return PowerResult(float(n), float(power_at(n)), alpha, alternative, method)
    assert power is not None
    if not (alpha < power < 1.0):
        raise ValueError(f"power must be in (alpha, 1), got {power}")
    if power_at(_N_MIN) >= power:
        return PowerResult(_N_MIN, float(power_at(_N_MIN)), alpha, alternative, method)
    size = _root(lambda s: float(power_at(s)) - power)
    return PowerResult(size, float(power), alpha, alternative, method)


def _root(f: Callable[[float], float]) -> float:
    if f(_N_MAX) < 0.0:
        raise ValueError(f"the effect is too small: more than {_N_MAX:.0e} per arm are needed")
    if f(_N_MIN) >= 0.0:
        return _N_MIN
    return float(optimize.brentq(f, _N_MIN, _N_MAX, xtol=1e-10, rtol=1e-14, maxiter=500))


def _sides(alternative: Alternative) -> int:
    if alternative == "two-sided":
        return 2
    if alternative == "one-sided":
        return 1
    raise ValueError(f"alternative must be 'two-sided' or 'one-sided', got {alternative!r}")


def _ensure_alpha(alpha: float) -> None:
    if not (0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
