"""A/B-test statistics against R's published examples, statsmodels and scipy, and by simulation.

R's numbers are the examples of `?power.prop.test`, `?power.t.test`, `?t.test` (the `sleep`
data) and `?prop.test` (the smokers data), R 4.x. R solves `n` with `uniroot` at a tolerance
of about 1.2e-4, so solved sample sizes are pinned to 1e-4; everything else to 1e-6 or to R's
printed digits.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from scipy import stats
from statsmodels.stats import power as sm_power
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest as sm_proportions_ztest
from statsmodels.stats.weightstats import ttest_ind

from shipyard.stats.abtest import (
    adjust_p_values,
    cuped,
    prop_test,
    proportions_ztest,
    ratio_test,
    relative_lift,
    srm_test,
    welch_t_test,
    welch_test,
)
from shipyard.stats.abtest_bayes import (
    beta_binomial,
    evan_miller_prob,
    normal_lift,
    prob_beta_greater,
    thompson_allocation,
)
from shipyard.stats.abtest_power import msprt_sample_size, power_means, power_proportions
from shipyard.stats.abtest_sequential import (
    default_tau,
    fixed_z_p_values,
    growthbook_interval,
    log_likelihood_ratio,
    msprt_boundary,
    msprt_test,
    sequential_means,
    sequential_proportions,
)

SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


# --- power and sample size: R's power.prop.test and power.t.test ---------------------------------


def test_power_prop_test_power() -> None:
    """`power.prop.test(n = 50, p1 = .50, p2 = .75)` -> power = 0.7401659."""
    result = power_proportions(0.50, 0.75, n=50)
    assert result.power == pytest.approx(0.7401659, abs=1e-7)
    assert result.method == "R power.prop.test"


def test_power_prop_test_n() -> None:
    """`power.prop.test(p1 = .50, p2 = .75, power = .90)` prints n = 76.7 (R's help example).

    The brief quoted 76.65294, which R's formula does not give: at n = 76.65294 the same
    formula that gives 0.7401659 at n = 50 gives power 0.89980, not 0.9. The exact root is
    76.70693, which R prints as 76.7; the solved n must give the power back.
    """
    result = power_proportions(0.50, 0.75, power=0.90)
    assert result.n == pytest.approx(76.7, abs=0.05)
    assert result.n == pytest.approx(76.706928, abs=1e-5)
    assert power_proportions(0.50, 0.75, n=result.n).power == pytest.approx(0.90, abs=1e-12)
    assert power_proportions(0.50, 0.75, n=76.65294).power == pytest.approx(0.8998, abs=1e-4)


def test_power_t_test_power() -> None:
    """`power.t.test(n = 20, delta = 1)` -> power = 0.8689528."""
    assert power_means(1.0, n=20).power == pytest.approx(0.8689528, abs=1e-7)


@pytest.mark.parametrize(
    ("alternative", "expected"), [("two-sided", 22.02110), ("one-sided", 17.84713)]
)
def test_power_t_test_n(alternative: str, expected: float) -> None:
    """`power.t.test(power = .90, delta = 1[, alternative = "one.sided"])` -> n (R's uniroot)."""
    result = power_means(1.0, power=0.90, alternative=alternative)  # type: ignore[arg-type]
    assert result.n == pytest.approx(expected, abs=1e-4)
    assert power_means(1.0, n=result.n, alternative=alternative).power == pytest.approx(  # type: ignore[arg-type]
        0.90, abs=1e-10
    )


@pytest.mark.parametrize("n", [5, 20, 100])
def test_power_t_test_strict_is_statsmodels(n: int) -> None:
    """With both tails (R's strict = TRUE) the t power is statsmodels' `TTestIndPower`."""
    expected = sm_power.TTestIndPower().power(effect_size=0.5, nobs1=n, alpha=0.05, ratio=1.0)
    assert power_means(0.5, n=n, strict=True).power == pytest.approx(expected, abs=1e-9)


def test_power_rejects_impossible_input() -> None:
    with pytest.raises(ValueError, match="p1 and p2 are equal"):
        power_proportions(0.1, 0.1, n=100)
    with pytest.raises(ValueError, match="exactly one of n and power"):
        power_proportions(0.1, 0.2)
    with pytest.raises(ValueError, match="p2 must be in"):
        power_proportions(0.1, 1.2, n=10)
    with pytest.raises(ValueError, match="sd must be positive"):
        power_means(1.0, sd=0.0, n=10)


def test_msprt_horizon_is_where_the_boundary_gives_the_power() -> None:
    """The sequential horizon: Phi(delta / se - b(n)) + Phi(-delta / se - b(n)) = power."""
    result = msprt_sample_size(0.02, 0.1 * 0.9, 0.12 * 0.88, alpha=0.05, power=0.8)
    se = math.sqrt((0.09 + 0.1056) / result.n)
    bound = msprt_boundary(se**2, result.tau, 0.05)
    assert stats.norm.cdf(0.02 / se - bound) + stats.norm.cdf(-0.02 / se - bound) == (
        pytest.approx(0.8, abs=1e-9)
    )
    # fixed horizon: (z_.975 + z_.8)^2 (va + vb) / delta^2
    assert result.n_fixed == pytest.approx((1.959964 + 0.841621) ** 2 * 0.1956 / 0.0004, rel=1e-5)
    assert 1.5 < result.inflation < 2.5


# --- tests: R's t.test and prop.test, statsmodels ------------------------------------------------


def test_welch_is_r_t_test_on_sleep() -> None:
    """`t.test(extra ~ group, data = sleep)`: t = -1.8608, df = 17.776, p = 0.07939, CI."""
    # R reports group 1 - group 2; here the difference is b - a, so a is group 2
    result = welch_t_test(SLEEP_2, SLEEP_1)
    assert result.statistic == pytest.approx(-1.8608, abs=5e-5)
    assert result.df == pytest.approx(17.776, abs=5e-4)
    assert result.p_value == pytest.approx(0.07939, abs=5e-6)
    assert result.ci_low == pytest.approx(-3.3654832, abs=1e-7)
    assert result.ci_high == pytest.approx(0.2054832, abs=1e-7)


def test_welch_is_statsmodels_and_scipy() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(10, 2, 80), rng.normal(10.5, 3, 120)
    result = welch_t_test(a, b)
    t, p, df = ttest_ind(b, a, usevar="unequal")
    assert (result.statistic, result.p_value, result.df) == pytest.approx((t, p, df), abs=1e-9)
    summary = stats.ttest_ind_from_stats(
        b.mean(), b.std(ddof=1), 120, a.mean(), a.std(ddof=1), 80, equal_var=False
    )
    assert result.p_value == pytest.approx(summary.pvalue, abs=1e-12)


def test_prop_test_k_sample_is_r() -> None:
    """`prop.test(x = c(83, 90, 129, 70), n = c(86, 93, 136, 82))`: 12.6, df 3, p 0.005585."""
    result = prop_test([83, 90, 129, 70], [86, 93, 136, 82])
    assert result.statistic == pytest.approx(12.6, abs=0.05)
    assert result.df == 3
    assert result.p_value == pytest.approx(0.005585, abs=5e-7)


@pytest.mark.parametrize("correct", [True, False])
def test_prop_test_two_sample_is_scipy_chi2_contingency(correct: bool) -> None:
    """Two groups: R's Yates cap equals scipy's per-cell cap, so the statistics agree."""
    result = prop_test([120, 150], [1000, 1000], correct=correct)
    table = np.array([[120, 880], [150, 850]])
    chi2, p, _, _ = stats.chi2_contingency(table, correction=correct)
    assert (result.statistic, result.p_value) == pytest.approx((chi2, p), abs=1e-9)
    assert result.correct is correct


def test_prop_test_without_yates_is_the_squared_pooled_z() -> None:
    z = proportions_ztest(120, 1000, 150, 1000)
    chi = prop_test([120, 150], [1000, 1000], correct=False)
    assert chi.statistic == pytest.approx(z.statistic**2, abs=1e-9)  # type: ignore[operator]
    assert chi.p_value == pytest.approx(z.p_value, abs=1e-12)


def test_proportions_ztest_is_statsmodels() -> None:
    result = proportions_ztest(120, 1000, 150, 1000)
    z, p = sm_proportions_ztest([150, 120], [1000, 1000])
    assert (result.statistic, result.p_value) == pytest.approx((z, p), abs=1e-9)
    # Wald interval of the difference with each arm's own variance
    half = 1.959963984540054 * math.sqrt(0.12 * 0.88 / 1000 + 0.15 * 0.85 / 1000)
    assert (result.ci_low, result.ci_high) == pytest.approx((0.03 - half, 0.03 + half), abs=1e-12)


def test_relative_lift_is_growthbooks_delta_method() -> None:
    """sigma^2 = sC^2 muT^2 / (muC^4 nC) + sT^2 / (muC^2 nT) (GrowthBook `details.mdx`)."""
    lift, variance = relative_lift(10.0, 4.0 / 500, 10.3, 4.41 / 500)  # type: ignore[misc]
    assert lift == pytest.approx(0.03, abs=1e-12)
    assert variance == pytest.approx(4.0 * 10.3**2 / (10.0**4 * 500) + 4.41 / (100 * 500))
    result = welch_test(10.0, 2.0, 500, 10.3, 2.1, 500)
    critical = stats.t.isf(0.025, result.df)
    assert result.lift_ci_low == pytest.approx(0.03 - critical * math.sqrt(variance), abs=1e-12)
    assert relative_lift(0.0, 1.0, 1.0, 1.0) is None


def test_ratio_metric_delta_method_matches_simulation() -> None:
    """The delta-method variance of sum(y) / sum(x) is the spread of the ratio over replicates."""
    rng = np.random.default_rng(7)

    def arm(n: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        sessions = rng.poisson(3.0, n) + 1.0
        return rng.binomial(sessions.astype(int), 0.2).astype(float), sessions

    ratios = [y.sum() / x.sum() for y, x in (arm(400) for _ in range(3000))]
    ya, xa = arm(400)
    yb, xb = arm(400)
    result = ratio_test(ya, xa, yb, xb)
    se_estimated = (result.ci_high - result.ci_low) / (2 * 1.959964) / math.sqrt(2)  # type: ignore[operator]
    assert se_estimated == pytest.approx(float(np.std(ratios)), rel=0.1)
    assert result.mean_a == pytest.approx(ya.sum() / xa.sum())
    assert result.status == "ok" and 0.0 < result.p_value <= 1.0  # type: ignore[operator]


# --- SRM, multiple testing, CUPED ----------------------------------------------------------------


def test_srm_flags_5200_4800_not_5050_4950() -> None:
    flagged = srm_test([5200, 4800], [50, 50])
    assert flagged.statistic == pytest.approx(16.0)
    assert flagged.p_value == pytest.approx(6.334248e-05, rel=1e-6)
    assert flagged.mismatch
    fine = srm_test([5050, 4950], [50, 50])
    assert fine.p_value == pytest.approx(0.3173105, abs=1e-7)
    assert not fine.mismatch
    assert srm_test([5200, 4800], [0.5, 0.5]) == flagged  # weights in any unit
    assert srm_test([1500, 8500], [10, 90]).expected == (1000.0, 9000.0)


def test_srm_without_units_and_bad_input() -> None:
    assert srm_test([0, 0], [50, 50]).status == "not_enough_data"
    with pytest.raises(ValueError, match="non-negative"):
        srm_test([-1, 5], [50, 50])
    with pytest.raises(ValueError, match="one observed count per allocation"):
        srm_test([5, 5, 5], [50, 50])


@pytest.mark.parametrize(("method", "sm_method"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjust_p_values_is_multipletests(method: str, sm_method: str) -> None:
    p_values = [0.01, 0.04, 0.03, 0.005, 0.2]
    result = adjust_p_values(p_values, method)  # type: ignore[arg-type]
    reject, adjusted, _, _ = multipletests(p_values, alpha=0.05, method=sm_method)
    assert result.p_adjusted == pytest.approx(tuple(adjusted), abs=1e-12)
    assert result.reject == tuple(bool(r) for r in reject)
    assert adjust_p_values([], method).p_adjusted == ()  # type: ignore[arg-type]


def test_holm_and_bh_by_hand() -> None:
    """Holm: max over k <= i of (m - k + 1) p_(k); BH: min over k >= i of m p_(k) / k."""
    assert adjust_p_values([0.01, 0.02, 0.03], "holm").p_adjusted == pytest.approx(
        (0.03, 0.04, 0.04)
    )
    assert adjust_p_values([0.01, 0.02, 0.03], "bh").p_adjusted == pytest.approx((0.03,) * 3)
    with pytest.raises(ValueError, match="p-values must be in"):
        adjust_p_values([1.5])


def test_cuped_theta_and_variance_reduction() -> None:
    rng = np.random.default_rng(11)
    pre_a, pre_b = rng.normal(5, 1, 2000), rng.normal(5, 1, 2000)
    y_a = 2.0 * pre_a + rng.normal(0, 1, 2000)
    y_b = 2.0 * pre_b + 0.1 + rng.normal(0, 1, 2000)
    result = cuped(y_a, pre_a, y_b, pre_b)
    y, x = np.concatenate([y_a, y_b]), np.concatenate([pre_a, pre_b])
    assert result.theta == pytest.approx(np.cov(y, x)[0, 1] / np.var(x, ddof=1), abs=1e-12)
    assert result.variance_reduction == pytest.approx(np.corrcoef(y, x)[0, 1] ** 2, abs=1e-9)
    assert result.variance_reduction == pytest.approx(0.8, abs=0.03)  # 4 / (4 + 1)
    plain = welch_t_test(y_a, y_b)
    assert result.comparison.p_value < plain.p_value  # type: ignore[operator]
    no_covariate = cuped(y_a, np.ones(2000), y_b, np.ones(2000))
    assert no_covariate.status == "not_enough_data" and no_covariate.theta is None


# --- Bayesian and Thompson sampling --------------------------------------------------------------


@pytest.mark.parametrize(("x_a", "x_b"), [(120, 150), (5, 3), (0, 0), (1000, 999)])
def test_beta_probability_is_evan_millers_closed_form(x_a: int, x_b: int) -> None:
    a_a, b_a, a_b, b_b = 1 + x_a, 1 + 1000 - x_a, 1 + x_b, 1 + 1000 - x_b
    assert prob_beta_greater(a_a, b_a, a_b, b_b) == pytest.approx(
        evan_miller_prob(a_a, b_a, a_b, b_b), abs=1e-9
    )


def test_beta_binomial_against_monte_carlo() -> None:
    result = beta_binomial(120, 1000, 150, 1000)
    rng = np.random.default_rng(1)
    a, b = rng.beta(121, 881, 1_000_000), rng.beta(151, 851, 1_000_000)
    assert result.chance_to_win == pytest.approx(float((b > a).mean()), abs=0.002)
    assert result.expected_loss_b == pytest.approx(float(np.maximum(a - b, 0).mean()), rel=0.05)
    assert result.expected_loss_a == pytest.approx(float(np.maximum(b - a, 0).mean()), rel=0.01)
    # the identity E[max(B - A, 0)] - E[max(A - B, 0)] = E[B] - E[A]
    assert result.expected_loss_a - result.expected_loss_b == pytest.approx(  # type: ignore[operator]
        151 / 1002 - 121 / 1002, abs=1e-9
    )


def test_normal_lift_closed_forms() -> None:
    result = normal_lift(0.12, 0.12 * 0.88, 1000, 0.15, 0.15 * 0.85, 1000)
    _, variance = relative_lift(0.12, 0.12 * 0.88 / 1000, 0.15, 0.15 * 0.85 / 1000)  # type: ignore[misc]
    assert result.lift_mean == pytest.approx(0.25)
    assert result.lift_sd == pytest.approx(math.sqrt(variance))
    assert result.chance_to_win == pytest.approx(stats.norm.cdf(0.25 / math.sqrt(variance)))
    draws = np.random.default_rng(2).normal(0.25, math.sqrt(variance), 1_000_000)
    assert result.expected_loss_b == pytest.approx(float(np.maximum(-draws, 0).mean()), rel=0.03)
    shrunk = normal_lift(0.12, 0.12 * 0.88, 1000, 0.15, 0.15 * 0.85, 1000, prior_sd=0.3)
    assert 0 < shrunk.lift_mean < 0.25  # type: ignore[operator]


def test_thompson_shares_floor_and_seed() -> None:
    result = thompson_allocation([120, 150], [1000, 1000], min_share=0.05)
    assert sum(result.shares) == pytest.approx(1.0, abs=1e-12)
    assert min(result.shares) >= 0.05
    assert result.prob_best[1] == pytest.approx(
        beta_binomial(120, 1000, 150, 1000).chance_to_win, abs=0.01
    )
    assert thompson_allocation([120, 150], [1000, 1000], min_share=0.05) == result
    even = thompson_allocation([0, 0, 0], [0, 0, 0])
    assert even.shares == pytest.approx((1 / 3,) * 3, abs=0.02)
    with pytest.raises(ValueError, match="min_share"):
        thompson_allocation([1, 1], [2, 2], min_share=0.6)


# --- no NaN, no infinity, no ZeroDivisionError ----------------------------------------------------


@pytest.mark.parametrize(
    ("x_a", "n_a", "x_b", "n_b"),
    [(0, 0, 5, 10), (0, 10, 0, 0), (0, 100, 0, 100), (100, 100, 100, 100), (0, 0, 0, 0)],
)
def test_degenerate_counts_say_not_enough_data(x_a: int, n_a: int, x_b: int, n_b: int) -> None:
    for result in (
        proportions_ztest(x_a, n_a, x_b, n_b),
        prop_test([x_a, x_b], [n_a, n_b]),
        sequential_proportions(x_a, n_a, x_b, n_b),
    ):
        assert result.status == "not_enough_data"
        assert result.p_value is None
        assert result.reason
    bayes = beta_binomial(x_a, n_a, x_b, n_b)
    if n_a and n_b:  # the prior makes all-0 and all-1 arms well defined
        assert bayes.status == "ok" and math.isfinite(bayes.chance_to_win)  # type: ignore[arg-type]
    else:
        assert bayes.status == "not_enough_data" and bayes.chance_to_win is None


def test_degenerate_means_say_not_enough_data() -> None:
    assert welch_test(1.0, 0.0, 10, 1.0, 0.0, 10).status == "not_enough_data"
    assert welch_test(1.0, 1.0, 1, 1.0, 1.0, 10).status == "not_enough_data"
    assert welch_t_test([], [1.0, 2.0]).status == "not_enough_data"
    assert sequential_means(1.0, 0.0, 10, 2.0, 0.0, 10).status == "not_enough_data"
    assert normal_lift(0.0, 1.0, 10, 1.0, 1.0, 10).status == "not_enough_data"
    assert ratio_test([1, 2], [0, 0], [1, 2], [1, 1]).status == "not_enough_data"
    one_sided = welch_test(1.0, 0.0, 10, 2.0, 1.0, 10)  # one arm constant: still a test
    assert one_sided.status == "ok" and one_sided.df == pytest.approx(9.0)


@pytest.mark.parametrize(("x", "n", "message"), [(-1, 10, "negative"), (11, 10, "more than all")])
def test_impossible_counts_raise(x: int, n: int, message: str) -> None:
    for call in (proportions_ztest, sequential_proportions, beta_binomial):
        with pytest.raises(ValueError, match=message):
            call(x, n, 5, 10)


def test_huge_evidence_stays_finite() -> None:
    result = sequential_proportions(100_000, 1_000_000, 200_000, 1_000_000)
    assert result.p_value == 0.0 and result.reject
    assert math.isfinite(result.log_likelihood_ratio)  # type: ignore[arg-type]


# --- sequential: GrowthBook's formula, and peeking by simulation ---------------------------------


def test_msprt_with_default_tau_is_growthbooks_sequential_interval() -> None:
    """With tau^2 = rho^2 N V the mixture CS is GrowthBook's asymptotic CS (arXiv:2103.06476v7)."""
    result = sequential_proportions(120, 1000, 150, 1000)
    se = math.sqrt(0.12 * 0.88 / 1000 + 0.15 * 0.85 / 1000)
    low, high, p_value = growthbook_interval(0.03, se, 2000)
    assert (result.ci_low, result.ci_high, result.p_value) == pytest.approx(
        (low, high, p_value), abs=1e-12
    )
    assert result.tau == pytest.approx(default_tau(se**2 * 2000))


def test_msprt_is_johari_for_paired_observations() -> None:
    """V = 2 s2 / n: Lambda = sqrt(2s2 / (2s2 + n t2)) exp(n^2 t2 W^2 / (4 s2 (2s2 + n t2)))."""
    sigma_sq, tau, n, w = 1.5, 0.3, 400, 0.12
    johari = math.sqrt(2 * sigma_sq / (2 * sigma_sq + n * tau**2)) * math.exp(
        n**2 * tau**2 * w**2 / (4 * sigma_sq * (2 * sigma_sq + n * tau**2))
    )
    result = msprt_test(w, 2 * sigma_sq / n, 2 * n, tau=tau)
    assert result.log_likelihood_ratio == pytest.approx(math.log(johari), abs=1e-12)
    assert result.p_value == pytest.approx(min(1.0, 1 / johari), abs=1e-12)
    assert msprt_test(w, 2 * sigma_sq / n, 2 * n, tau=tau, previous_p=0.01).p_value == 0.01


def peeked_rejections(
    p_a: float, p_b: float, tests: int, peeks: int, per_peek: int, seed: int
) -> tuple[float, float]:
    """Share of tests that the naive z-test and the mSPRT reject at some peek (alpha 0.05)."""
    rng = np.random.default_rng(seed)
    x_a = np.cumsum(rng.binomial(per_peek, p_a, (tests, peeks)), axis=1)
    x_b = np.cumsum(rng.binomial(per_peek, p_b, (tests, peeks)), axis=1)
    n = per_peek * np.arange(1, peeks + 1, dtype=np.float64)
    rate_a, rate_b = x_a / n, x_b / n
    variance = rate_a * (1 - rate_a) / n + rate_b * (1 - rate_b) / n
    safe = np.where(variance > 0, variance, 1.0)
    diff = rate_b - rate_a
    naive = (fixed_z_p_values(diff, safe) < 0.05) & (variance > 0)
    tau = default_tau(1.0) * np.sqrt(safe * 2 * n)  # GrowthBook's tuning, per look
    log_lr = log_likelihood_ratio(diff, safe, tau)
    sequential = (log_lr >= math.log(1 / 0.05)) & (variance > 0)
    return float(naive.any(axis=1).mean()), float(sequential.any(axis=1).mean())


def test_msprt_holds_alpha_under_continuous_peeking() -> None:
    """A/A, 2,000 tests peeked after each of 50 batches of 200 users per arm, p = 0.1."""
    tests = 2000
    naive, sequential = peeked_rejections(0.1, 0.1, tests, 50, 200, seed=20261202)
    margin = 3 * math.sqrt(0.05 * 0.95 / tests)
    assert sequential <= 0.05 + margin
    assert naive > 0.2  # the peeked fixed test rejects a true null far more often than alpha


def test_msprt_has_power_at_its_horizon() -> None:
    """A/B 0.10 vs 0.12: by the horizon of `msprt_sample_size` at least 80% reject."""
    horizon = msprt_sample_size(0.02, 0.09, 0.1056, power=0.8)
    peeks = math.ceil(horizon.n / 200)
    _, sequential = peeked_rejections(0.10, 0.12, 1000, peeks, 200, seed=7)
    assert sequential >= 0.8 - 3 * math.sqrt(0.8 * 0.2 / 1000)
