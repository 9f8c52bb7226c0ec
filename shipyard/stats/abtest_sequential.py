"""Sequential A/B tests valid under continuous peeking: the normal-mixture mSPRT of Johari et al.

Johari, Pekelis and Walsh ("Always valid inference", 2015/2022; Optimizely's Stats Engine) mix
the likelihood ratio of a normal mean over a N(theta0, tau^2) prior on the effect. For two arms
with difference estimate D (treatment minus control) and variance V = var_a / n_a + var_b / n_b:

    Lambda_n = sqrt(V / (V + tau^2)) * exp(tau^2 (D - theta0)^2 / (2 V (V + tau^2)))

which for paired observations (V = 2 sigma^2 / n) is the paper's formula verbatim. Lambda_n is a
nonnegative martingale under the null, so by Ville's inequality P(sup_n Lambda_n >= 1 / alpha) <=
alpha: the running minimum of 1 / Lambda_n is a p-value valid at any stopping time, and the
theta0 not rejected form a confidence sequence (`msprt_test`). The variance is plugged in from
the data, which makes the guarantee asymptotic (as Waudby-Smith et al.'s asymptotic confidence
sequences; `tests/unit/test_stats_abtest.py` and `bench/abtest_sequential.py` check it by
simulation from 200 users per arm on).

tau is the effect size the test is tuned for. The default follows GrowthBook (`gbstats`,
eq. 9 of arXiv:2103.06476v7): tau^2 = rho^2 s^2 with s^2 = N V the per-unit variance of the
difference (N = n_a + n_b) and rho^2 = (-2 ln alpha + ln(-2 ln alpha + 1)) / N*, N* = 5000, so
the boundary is tightest near 5000 units in all. With that tau this confidence sequence is
GrowthBook's interval exactly (`growthbook_interval` gives theirs, for the comparison).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from shipyard.stats.abtest import Status, ensure_counts, ensure_unit

Array = npt.NDArray[np.float64]

N_TUNE = 5000.0
"""GrowthBook's default tuning: total units at which the default tau is tightest."""


@dataclass(frozen=True)
class SequentialResult:
    """One look of the mSPRT, treatment (B) minus control (A).

    Attributes:
        status: "ok", or "not_enough_data" (an empty arm, or no variance yet): then the
            numbers are None and `reject` False.
        estimate: Difference of means or proportions, B - A.
        p_value: Always-valid p-value: min(previous_p, 1 / Lambda_n), valid however often
            the test is peeked at.
        ci_low: Lower end of the confidence sequence at this look.
        ci_high: Upper end of the confidence sequence at this look.
        reject: p_value < alpha (stop: the arms differ).
        log_likelihood_ratio: ln Lambda_n at theta0 = 0 (kept in logs: it grows quickly).
        tau: Mixing standard deviation used.
        alpha: Significance level.
        reason: Why there is no result, or "".
    """

    status: Status
    estimate: float | None
    p_value: float | None
    ci_low: float | None
    ci_high: float | None
    reject: bool
    log_likelihood_ratio: float | None
    tau: float | None
    alpha: float
    reason: str = ""


def default_tau(unit_variance: float, alpha: float = 0.05, n_tune: float = N_TUNE) -> float:
    """GrowthBook's tuning of the mixing standard deviation: tau = rho * s.

    Args:
        unit_variance: s^2 = N V, the variance of the difference times the total units (for
            equal arms, 2 (var_a + var_b)).
        alpha: Significance level.
        n_tune: N*, the total units at which the boundary is tightest.
    """
    ensure_unit("alpha", alpha)
    if not (n_tune > 0.0):
        raise ValueError(f"n_tune must be positive, got {n_tune}")
    log_term = -2.0 * math.log(alpha)
    rho_squared = (log_term + math.log(log_term + 1.0)) / n_tune
    return math.sqrt(rho_squared * unit_variance)


def msprt_boundary(variance: float, tau: float, alpha: float) -> float:
    """The |z| at which the mSPRT rejects: Lambda_n = 1 / alpha solved for (D / sqrt(V))^2.

    b^2 = (1 + V / tau^2)(2 ln(1 / alpha) + ln(1 + tau^2 / V)).
    """
    ratio = tau * tau / variance
    return math.sqrt((1.0 + 1.0 / ratio) * (2.0 * math.log(1.0 / alpha) + math.log1p(ratio)))


def log_likelihood_ratio(estimate: Array, variance: Array, tau: Array | float) -> Array:
    """ln Lambda_n of the normal mixture at theta0 = 0, elementwise (arrays for simulations)."""
    tau_sq = np.asarray(tau, dtype=np.float64) ** 2
    total = variance + tau_sq
    result: Array = 0.5 * np.log(variance / total) + tau_sq * estimate**2 / (2.0 * variance * total)
    return result


def msprt_test(
    estimate: float,
    variance: float,
    n_total: float,
    *,
    alpha: float = 0.05,
    tau: float | None = None,
    n_tune: float = N_TUNE,
    previous_p: float = 1.0,
) -> SequentialResult:
    """The mSPRT at one look, from a difference and its variance.

    Args:
        estimate: D, treatment minus control.
        variance: V, the variance of D (var_a / n_a + var_b / n_b).
        n_total: Units in both arms so far (for the default tau).
        alpha: Significance level.
        tau: Mixing standard deviation on the effect; None for GrowthBook's tuning.
        n_tune: Total units the default tau is tuned for.
        previous_p: The always-valid p-value of the previous look (1 at the first).

    Raises:
        ValueError: alpha or previous_p out of range, tau not positive, negative variance.
    """
    ensure_unit("alpha", alpha)
    if not (0.0 <= previous_p <= 1.0):
        raise ValueError(f"previous_p must be in [0, 1], got {previous_p}")
    if variance < 0.0 or not math.isfinite(variance) or not math.isfinite(estimate):
        raise ValueError(f"variance must be finite and non-negative, got {variance}")
    if variance == 0.0 or n_total <= 0:
        return SequentialResult(
            "not_enough_data", None, None, None, None, False, None, None, alpha,
            "no variance yet: every outcome is the same, or an arm is empty",
        )  # fmt: skip
    if tau is None:
        tau = default_tau(variance * n_total, alpha, n_tune)
    if not (tau > 0.0 and math.isfinite(tau)):
        raise ValueError(f"tau must be positive, got {tau}")
    log_lr = float(log_likelihood_ratio(np.array(estimate), np.array(variance), tau))
    p_value = min(previous_p, 1.0, math.exp(-log_lr) if log_lr > -700 else 1.0)
    tau_sq = tau * tau
    half = math.sqrt(
        2.0 * variance * (variance + tau_sq) / tau_sq
        * (math.log(1.0 / alpha) + 0.5 * math.log1p(tau_sq / variance))
    )  # fmt: skip
    return SequentialResult(
        "ok", estimate, p_value, estimate - half, estimate + half, p_value < alpha, log_lr, tau,
        alpha,
    )  # fmt: skip


def sequential_proportions(
    x_a: int,
    n_a: int,
    x_b: int,
    n_b: int,
    *,
    alpha: float = 0.05,
    tau: float | None = None,
    n_tune: float = N_TUNE,
    previous_p: float = 1.0,
) -> SequentialResult:
    """The mSPRT on two conversion rates, variance p(1 - p) / n per arm (as GrowthBook).

    Raises:
        ValueError: Negative counts or more successes than trials.
    """
    ensure_counts(x_a, n_a, "A")
    ensure_counts(x_b, n_b, "B")
    if n_a == 0 or n_b == 0:
        return SequentialResult(
            "not_enough_data", None, None, None, None, False, None, None, alpha,
            "an arm has no units",
        )  # fmt: skip
    p_a, p_b = x_a / n_a, x_b / n_b
    variance = p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b
    return msprt_test(
        p_b - p_a, variance, n_a + n_b, alpha=alpha, tau=tau, n_tune=n_tune, previous_p=previous_p
    )


def sequential_means(
    mean_a: float,
    sd_a: float,
    n_a: int,
    mean_b: float,
    sd_b: float,
    n_b: int,
    *,
    alpha: float = 0.05,
    tau: float | None = None,
    n_tune: float = N_TUNE,
    previous_p: float = 1.0,
) -> SequentialResult:
    """The mSPRT on two means from their summaries (sd with n - 1), variance sd^2 / n per arm.

    Raises:
        ValueError: Negative sizes or standard deviations.
    """
    for name, value in (("n_a", n_a), ("n_b", n_b), ("sd_a", sd_a), ("sd_b", sd_b)):
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"{name} must be finite and non-negative, got {value}")
    if n_a < 2 or n_b < 2:
        return SequentialResult(
            "not_enough_data", None, None, None, None, False, None, None, alpha,
            "each arm needs at least 2 units",
        )  # fmt: skip
    variance = sd_a**2 / n_a + sd_b**2 / n_b
    return msprt_test(
        mean_b - mean_a, variance, n_a + n_b, alpha=alpha, tau=tau, n_tune=n_tune,
        previous_p=previous_p,
    )  # fmt: skip


def growthbook_interval(
    estimate: float, se: float, n_total: float, alpha: float = 0.05, n_tune: float = N_TUNE
) -> tuple[float, float, float]:
    """GrowthBook's asymptotic confidence sequence and p-value, verbatim (for comparison).

    `gbstats/frequentist/tests.py`: rho = sqrt((-2 ln alpha + ln(-2 ln alpha + 1)) / N*),
    s^2 = SE^2 N, halfwidth = s sqrt(2 (N rho^2 + 1) ln(sqrt(N rho^2 + 1) / alpha) / (N rho)^2);
    e = exp(rho^2 S^2 / (2 (N rho^2 + 1))) / sqrt(N rho^2 + 1), S^2 = estimate^2 N / SE^2,
    p = min(1, 1 / e).

    Returns:
        (low, high, p_value).
    """
    log_term = -2.0 * math.log(alpha)
    rho_sq = (log_term + math.log(log_term + 1.0)) / n_tune
    s_sq = se * se * n_total
    n_rho = n_total * rho_sq + 1.0
    half = math.sqrt(s_sq) * math.sqrt(
        2.0 * n_rho * math.log(math.sqrt(n_rho) / alpha) / (n_total * n_total * rho_sq)
    )
    big_s_sq = estimate * estimate * n_total / (se * se)
    log_e = rho_sq * big_s_sq / (2.0 * n_rho) - 0.5 * math.log(n_rho)
    return estimate - half, estimate + half, min(1.0, math.exp(-log_e))


def fixed_z_p_values(estimate: Array, variance: Array) -> Array:
    """Two-sided p-values of the fixed-horizon z-test, elementwise (the naive peeker's test)."""
    result: Array = 2.0 * stats.norm.sf(np.abs(estimate) / np.sqrt(variance))
    return result
