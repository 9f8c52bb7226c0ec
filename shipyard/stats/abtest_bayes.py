"""Bayesian A/B tests (beta-binomial, GrowthBook's normal model on the lift) and Thompson sampling.

Chance to win is P(B beats A) under the posterior; expected loss (GrowthBook's "risk") is what
choosing an arm costs on average when it is the worse one: E[max(other - chosen, 0)]. The
beta-binomial model's numbers are exact (one-dimensional numerical integration); the normal
model's are closed forms. Thompson sampling is seeded Monte Carlo, so a given state always
gives the same allocation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import integrate, special, stats

from shipyard.stats.abtest import Status, ensure_counts, relative_lift

THOMPSON_DRAWS = 20_000
"""Posterior draws per arm: the standard error of a probability of being best is <= 0.0036."""


@dataclass(frozen=True)
class BayesResult:
    """Posterior comparison of B (treatment) with A (control).

    Attributes:
        status: "ok" or "not_enough_data" (then the numbers are None; see `reason`).
        method: "beta-binomial" or "normal (GrowthBook, on the lift)".
        chance_to_win: P(B > A) under the posterior.
        expected_loss_b: E[max(A - B, 0)]: the risk of shipping B.
        expected_loss_a: E[max(B - A, 0)]: the risk of keeping A.
        mean_a: Posterior mean of A's rate (beta-binomial) or None.
        mean_b: Posterior mean of B's rate (beta-binomial) or None.
        lift_mean: Posterior mean of the lift (normal model) or None.
        lift_sd: Posterior standard deviation of the lift (normal model) or None.
        reason: Why there is no result, or "".

    Losses are in the unit of the model: rates for beta-binomial, relative lift for normal.
    """

    status: Status
    method: str
    chance_to_win: float | None
    expected_loss_b: float | None
    expected_loss_a: float | None
    mean_a: float | None = None
    mean_b: float | None = None
    lift_mean: float | None = None
    lift_sd: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class ThompsonResult:
    """Thompson-sampling allocation of traffic across arms.

    Attributes:
        shares: Traffic share per arm, each >= min_share, summing to 1.
        prob_best: Monte Carlo probability that each arm has the highest rate.
        min_share: The floor each arm keeps (so that no arm stops learning).
        draws: Posterior draws per arm.
        seed: The generator's seed.
    """

    shares: tuple[float, ...]
    prob_best: tuple[float, ...]
    min_share: float
    draws: int
    seed: int


def prob_beta_greater(a_1: float, b_1: float, a_2: float, b_2: float) -> float:
    """P(X2 > X1) for independent X1 ~ Beta(a_1, b_1), X2 ~ Beta(a_2, b_2), by integration.

    P = integral of f_2(x) F_1(x) dx, by adaptive quadrature over the central mass of X2
    (quantiles 1e-15 to 1 - 1e-15, where the rest of the integrand is below 1e-15); equal to
    Evan Miller's closed-form sum for integer parameters (tested).
    """
    for value in (a_1, b_1, a_2, b_2):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"beta parameters must be positive, got {(a_1, b_1, a_2, b_2)}")
    low = float(stats.beta.ppf(1e-15, a_2, b_2))
    high = float(stats.beta.isf(1e-15, a_2, b_2))
    mode = min(max((a_2 - 1) / (a_2 + b_2 - 2), low), high) if a_2 + b_2 > 2 else 0.5 * (low + high)
    value, _ = integrate.quad(
        lambda x: float(stats.beta.pdf(x, a_2, b_2) * stats.beta.cdf(x, a_1, b_1)),
        low,
        high,
        points=[mode] if low < mode < high else None,
        limit=200,
        epsabs=1e-12,
        epsrel=1e-10,
    )
    return min(max(float(value), 0.0), 1.0)


def beta_binomial(
    x_a: int,
    n_a: int,
    x_b: int,
    n_b: int,
    *,
    prior_alpha: float = 1.0,
    prior_beta: float = 1.0,
) -> BayesResult:
    """Beta-binomial model of two conversion rates, Beta(1, 1) prior by default.

    Posteriors Beta(prior_alpha + x, prior_beta + n - x). Chance to win P(B > A) by
    `prob_beta_greater`. The expected loss in closed form from it: E[A 1(A > B)] = E[A] P(A+ >
    B) with A+ ~ Beta(a_A + 1, b_A), so E[max(A - B, 0)] = E[A] P(A+ > B) - E[B] P(A > B+).

    Raises:
        ValueError: Impossible counts, prior parameters not positive.
    """
    ensure_counts(x_a, n_a, "A")
    ensure_counts(x_b, n_b, "B")
    if not (prior_alpha > 0 and prior_beta > 0):
        raise ValueError(f"prior parameters must be positive, got {prior_alpha}, {prior_beta}")
    method = "beta-binomial"
    if n_a == 0 or n_b == 0:
        return BayesResult(
            "not_enough_data", method, None, None, None, reason="an arm has no units"
        )
    a_a, b_a = prior_alpha + x_a, prior_beta + n_a - x_a
    a_b, b_b = prior_alpha + x_b, prior_beta + n_b - x_b
    mean_a, mean_b = a_a / (a_a + b_a), a_b / (a_b + b_b)
    win = prob_beta_greater(a_a, b_a, a_b, b_b)
    # loss of shipping B: E[max(A - B, 0)] = E[A 1(A > B)] - E[B 1(A > B)]
    loss_b = mean_a * prob_beta_greater(a_b, b_b, a_a + 1, b_a)
    loss_b -= mean_b * prob_beta_greater(a_b + 1, b_b, a_a, b_a)
    # loss of keeping A: E[max(B - A, 0)] = E[B 1(B > A)] - E[A 1(B > A)]
    loss_a = mean_b * prob_beta_greater(a_a, b_a, a_b + 1, b_b)
    loss_a -= mean_a * prob_beta_greater(a_a + 1, b_a, a_b, b_b)
    return BayesResult(
        "ok", method, win, max(loss_b, 0.0), max(loss_a, 0.0), mean_a=mean_a, mean_b=mean_b
    )


def normal_lift(
    mean_a: float,
    var_a: float,
    n_a: int,
    mean_b: float,
    var_b: float,
    n_b: int,
    *,
    prior_mean: float = 0.0,
    prior_sd: float | None = None,
) -> BayesResult:
    """GrowthBook's Bayesian model: a normal likelihood of the lift, precision-weighted update.

    The lift (B - A) / A and its variance by the delta method (`abtest.relative_lift`, var per
    unit / n); the prior N(prior_mean, prior_sd^2) is improper (flat) by default, as
    GrowthBook's default (its proper option is N(0, 0.3^2)). Posterior precision = 1 / v + 1 /
    prior_sd^2, mean = (lift / v + prior_mean / prior_sd^2) / precision. Chance to win is
    Phi(mu / sigma); risks E[max(-L, 0)] = sigma phi(mu / sigma) - mu Phi(-mu / sigma) (of B)
    and E[max(L, 0)] = sigma phi(mu / sigma) + mu Phi(mu / sigma) (of A), in units of lift.

    Args:
        mean_a: Control's mean (rate for a proportion).
        var_a: Control's per-unit variance (p(1 - p) for a proportion).
        n_a: Control's units.
        mean_b: Treatment's mean.
        var_b: Treatment's per-unit variance.
        n_b: Treatment's units.
        prior_mean: Prior mean of the lift.
        prior_sd: Prior standard deviation of the lift; None for the flat prior.

    Raises:
        ValueError: Negative variances or sizes, prior_sd not positive.
    """
    for name, value in (("var_a", var_a), ("var_b", var_b), ("n_a", n_a), ("n_b", n_b)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be finite and non-negative, got {value}")
    if prior_sd is not None and not (prior_sd > 0):
        raise ValueError(f"prior_sd must be positive, got {prior_sd}")
    method = "normal (GrowthBook, on the lift)"
    if n_a == 0 or n_b == 0:
        return BayesResult(
            "not_enough_data", method, None, None, None, reason="an arm has no units"
        )
    lift = relative_lift(mean_a, var_a / n_a, mean_b, var_b / n_b)
    if lift is None or lift[1] == 0.0:
        return BayesResult(
            "not_enough_data", method, None, None, None,
            reason="control's mean is 0 or there is no variance: the lift is undefined",
        )  # fmt: skip
    precision = 1.0 / lift[1]
    weighted = lift[0] * precision
    if prior_sd is not None:
        precision += 1.0 / prior_sd**2
        weighted += prior_mean / prior_sd**2
    mu, sigma = weighted / precision, math.sqrt(1.0 / precision)
    ratio = mu / sigma
    density = float(stats.norm.pdf(ratio))
    loss_b = sigma * density - mu * float(stats.norm.cdf(-ratio))
    loss_a = sigma * density + mu * float(stats.norm.cdf(ratio))
    return BayesResult(
        "ok", method, float(stats.norm.cdf(ratio)), max(loss_b, 0.0), max(loss_a, 0.0),
        lift_mean=mu, lift_sd=sigma,
    )  # fmt: skip


def thompson_allocation(
    successes: Sequence[int],
    trials: Sequence[int],
    *,
    min_share: float = 0.01,
    draws: int = THOMPSON_DRAWS,
    seed: int = 0,
    prior_alpha: float = 1.0,
    prior_beta: float = 1.0,
) -> ThompsonResult:
    """Traffic shares by Thompson sampling: each arm's probability of being best, with a floor.

    P(best) by Monte Carlo: `draws` joint draws from the Beta(prior + successes, prior +
    failures) posteriors, the share of draws each arm wins (ties split evenly). Then share_i =
    min_share + (1 - k min_share) P(best)_i: every arm keeps the floor (GrowthBook keeps 1%),
    the rest goes to the likely best, and the shares sum to 1.

    Raises:
        ValueError: Impossible counts, fewer than 2 arms, k * min_share > 1, draws < 1.
    """
    if len(successes) != len(trials) or len(successes) < 2:
        raise ValueError("pass one success count per trial count, for at least 2 arms")
    for i, (count, size) in enumerate(zip(successes, trials, strict=True)):
        ensure_counts(count, size, str(i + 1))
    k = len(successes)
    if not (0.0 <= min_share <= 1.0 / k):
        raise ValueError(f"min_share must be in [0, 1/{k}] for {k} arms, got {min_share}")
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    x = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    rng = np.random.default_rng(seed)
    samples = rng.beta(prior_alpha + x, prior_beta + n - x, size=(draws, k))
    best = samples == samples.max(axis=1, keepdims=True)
    prob_best = (best / best.sum(axis=1, keepdims=True)).mean(axis=0)
    shares = min_share + (1.0 - k * min_share) * prob_best
    shares = shares / shares.sum()  # exact to rounding already; keeps the sum at 1.0
    return ThompsonResult(
        tuple(float(s) for s in shares), tuple(float(p) for p in prob_best), min_share, draws, seed
    )


def evan_miller_prob(a_1: int, b_1: int, a_2: int, b_2: int) -> float:
    """P(X2 > X1) for integer beta parameters, Evan Miller's closed form (for the tests).

    sum_{i=0}^{a_2 - 1} B(a_1 + i, b_1 + b_2) / ((b_2 + i) B(1 + i, b_2) B(a_1, b_1)).
    """
    i = np.arange(a_2, dtype=np.float64)
    log_terms = (
        special.betaln(a_1 + i, b_1 + b_2)
        - np.log(b_2 + i)
        - special.betaln(1 + i, b_2)
        - special.betaln(a_1, b_1)
    )
    return float(np.exp(special.logsumexp(log_terms)))
