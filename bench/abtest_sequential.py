"""Peeking at A/B tests: the naive fixed z-test against Shipyard's mSPRT, and a Thompson bandit.

Simulated conversion tests, every one peeked after each batch of users (numpy, vectorised):

    A/A   no true effect: share of tests that some peek declares significant (false positives);
          the fixed z-test peeked is far above alpha, the mSPRT (always valid) stays under it
    A/B   the declared MDE: power by the horizon, and the mean units per arm at which the
          mSPRT stops, against the fixed test read once at the horizon
    bandit two arms (0.10 vs 0.12): Thompson sampling with a floor against a fixed 50/50
          split; regret = expected conversions lost to the worse arm

CPU seconds are `time.process_time()` around each test's decisions over all peeks (the
simulated data are shared). The baseline is the fixed-horizon z-test (and the 50/50 split).

    .venv/bin/python bench/abtest_sequential.py                 # ~10 s
    .venv/bin/python bench/abtest_sequential.py --tests 10000   # tighter rates
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shipyard.stats.abtest_bayes import thompson_allocation  # noqa: E402
from shipyard.stats.abtest_power import msprt_sample_size, power_proportions  # noqa: E402
from shipyard.stats.abtest_sequential import (  # noqa: E402
    default_tau,
    fixed_z_p_values,
    log_likelihood_ratio,
)

Array = npt.NDArray[np.float64]


def simulate(
    p_a: float, p_b: float, tests: int, peeks: int, per_peek: int, rng: np.random.Generator
) -> tuple[Array, Array, Array]:
    """Cumulative rates of both arms at each peek, and the units per arm at each peek."""
    x_a = np.cumsum(rng.binomial(per_peek, p_a, (tests, peeks)), axis=1)
    x_b = np.cumsum(rng.binomial(per_peek, p_b, (tests, peeks)), axis=1)
    n = per_peek * np.arange(1, peeks + 1, dtype=np.float64)
    return x_a / n, x_b / n, n


def decisions(
    rate_a: Array, rate_b: Array, n: Array, alpha: float
) -> tuple[dict[str, npt.NDArray[np.bool_]], dict[str, float]]:
    """Rejections at each peek of the fixed z-test and of the mSPRT, and the CPU of each."""
    variance = rate_a * (1 - rate_a) / n + rate_b * (1 - rate_b) / n
    valid = variance > 0
    safe = np.where(valid, variance, 1.0)
    diff = rate_b - rate_a
    cpu: dict[str, float] = {}
    start = time.process_time()
    fixed = (fixed_z_p_values(diff, safe) < alpha) & valid
    cpu["fixed"] = time.process_time() - start
    start = time.process_time()
    tau = default_tau(1.0, alpha) * np.sqrt(safe * 2 * n)  # GrowthBook's tuning, per look
    sequential = (log_likelihood_ratio(diff, safe, tau) >= math.log(1 / alpha)) & valid
    cpu["sequential"] = time.process_time() - start
    return {"fixed": fixed, "sequential": sequential}, cpu


def bandit(
    rates: tuple[float, float],
    sims: int,
    batches: int,
    per_batch: int,
    min_share: float,
    draws: int,
    rng: np.random.Generator,
) -> tuple[float, float, float]:
    """Mean regret of Thompson sampling with a floor and of 50/50, and Thompson's CPU seconds.

    The shares are `thompson_allocation`'s formula, vectorised over the simulations:
    min_share + (1 - 2 min_share) P(best), P(best) from `draws` posterior draws.
    """
    p = np.array(rates)
    best = p.max()
    successes = np.zeros((sims, 2))
    trials = np.zeros((sims, 2))
    regret = np.zeros(sims)
    start = time.process_time()
    for _ in range(batches):
        wins, losses = successes[:, None, :], trials[:, None, :] - successes[:, None, :]
        samples = rng.beta(1 + wins, 1 + losses, size=(sims, draws, 2))
        prob_b = (samples[:, :, 1] > samples[:, :, 0]).mean(axis=1)
        share_b = min_share + (1 - 2 * min_share) * prob_b
        users_b = rng.binomial(per_batch, share_b)
        users = np.stack([per_batch - users_b, users_b], axis=1).astype(np.float64)
        successes += rng.binomial(users.astype(np.int64), p)
        trials += users
        regret += users @ (best - p)
    cpu = time.process_time() - start
    fixed_regret = batches * per_batch / 2 * float(np.sum(best - p))
    return float(regret.mean()), fixed_regret, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=2000, help="simulated tests per scenario")
    parser.add_argument("--peeks", type=int, default=50, help="peeks per test")
    parser.add_argument("--per-peek", type=int, default=200, help="users per arm per peek")
    parser.add_argument("--baseline", type=float, default=0.10, help="control conversion rate")
    parser.add_argument("--mde", type=float, default=0.02, help="absolute effect of the A/B")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--bandit-sims", type=int, default=500)
    parser.add_argument("--bandit-batches", type=int, default=50)
    parser.add_argument("--bandit-per-batch", type=int, default=400, help="users per batch")
    parser.add_argument("--min-share", type=float, default=0.01, help="Thompson floor per arm")
    parser.add_argument("--draws", type=int, default=1000, help="posterior draws per update")
    parser.add_argument("--seed", type=int, default=20261202)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    alpha, p_a, p_b = args.alpha, args.baseline, args.baseline + args.mde
    horizon = args.peeks * args.per_peek
    margin = 3 * math.sqrt(alpha * (1 - alpha) / args.tests)

    print(
        f"{args.tests:,} tests x {args.peeks} peeks x {args.per_peek} users per arm per peek"
        f" (horizon {horizon:,} per arm), p = {p_a:g}, alpha = {alpha:g}"
    )
    rate_a, rate_b, n = simulate(p_a, p_a, args.tests, args.peeks, args.per_peek, rng)
    null, cpu_null = decisions(rate_a, rate_b, n, alpha)
    fpr = {
        "fixed, read once at the horizon": float(null["fixed"][:, -1].mean()),
        "fixed, peeked after every batch": float(null["fixed"].any(axis=1).mean()),
        "mSPRT, peeked after every batch": float(null["sequential"].any(axis=1).mean()),
    }
    print(f"\nA/A false-positive rate (target <= alpha + 3 se = {alpha + margin:.3f})")
    print(f"{'test':<34} {'FPR':>7} {'FPR/alpha':>10}")
    for name, rate in fpr.items():
        print(f"{name:<34} {rate:>7.3f} {rate / alpha:>9.2f}x")

    rate_a, rate_b, n = simulate(p_a, p_b, args.tests, args.peeks, args.per_peek, rng)
    alt, cpu_alt = decisions(rate_a, rate_b, n, alpha)
    first = np.where(alt["sequential"].any(axis=1), alt["sequential"].argmax(axis=1), -1)
    stop_n = np.where(first >= 0, n[np.maximum(first, 0)], horizon)
    planned_fixed = power_proportions(p_a, p_b, power=0.8, alpha=alpha).n
    planned_seq = msprt_sample_size(args.mde, p_a * (1 - p_a), p_b * (1 - p_b), alpha=alpha).n
    fixed_power = float(alt["fixed"][:, -1].mean())
    seq_power = float(alt["sequential"].any(axis=1).mean())
    print(f"\nA/B {p_a:g} vs {p_b:g}: power by the horizon of {horizon:,} per arm")
    print(f"{'test':<34} {'power':>7} {'mean n/arm':>11} {'planned n/arm (80%)':>20}")
    planned_peek = min(math.ceil(planned_fixed / args.per_peek), args.peeks) - 1
    planned_power = float(alt["fixed"][:, planned_peek].mean())
    planned_n = int(n[planned_peek])
    print(f"{'fixed, read once at its planned n':<34} {planned_power:>7.3f} {planned_n:>11,}"
          f" {math.ceil(planned_fixed):>20,}")  # fmt: skip
    print(f"{'fixed, read once at the horizon':<34} {fixed_power:>7.3f} {horizon:>11,}"
          f" {math.ceil(planned_fixed):>20,}")  # fmt: skip
    print(f"{'mSPRT, stops at first rejection':<34} {seq_power:>7.3f} {stop_n.mean():>11,.0f}"
          f" {math.ceil(planned_seq):>20,}")  # fmt: skip

    cpu_fixed = cpu_null["fixed"] + cpu_alt["fixed"]
    cpu_seq = cpu_null["sequential"] + cpu_alt["sequential"]
    looks = 2 * args.tests * args.peeks
    print(
        f"\nCPU over {looks:,} looks: fixed {cpu_fixed:.3f} s, mSPRT {cpu_seq:.3f} s"
        f" ({cpu_seq / max(cpu_fixed, 1e-9):.1f}x; {1e6 * cpu_seq / looks:.2f} us per look)"
    )

    check = thompson_allocation([40, 48], [400, 400], min_share=args.min_share).shares
    regret_ts, regret_fixed, cpu_ts = bandit(
        (p_a, p_b), args.bandit_sims, args.bandit_batches, args.bandit_per_batch,
        args.min_share, args.draws, rng,
    )  # fmt: skip
    users = args.bandit_batches * args.bandit_per_batch
    print(
        f"\nbandit {p_a:g} vs {p_b:g}: {args.bandit_sims} runs x {args.bandit_batches} batches x"
        f" {args.bandit_per_batch} users ({users:,} per run), Thompson floor {args.min_share:g}"
        f" (thompson_allocation at 40/400 vs 48/400: {check[0]:.3f}/{check[1]:.3f})"
    )
    print(f"{'allocation':<34} {'regret (lost conversions)':>26}")
    print(f"{'fixed 50/50':<34} {regret_fixed:>26,.1f}")
    print(f"{'Thompson sampling':<34} {regret_ts:>26,.1f}   CPU {cpu_ts:.2f} s")

    naive_ratio = fpr["fixed, peeked after every batch"] / alpha
    seq_rate = fpr["mSPRT, peeked after every batch"]
    holds = seq_rate <= alpha + margin
    print(
        f"\nratios: peeked fixed FPR {naive_ratio:.1f}x alpha, mSPRT FPR {seq_rate / alpha:.2f}x"
        f" alpha, mSPRT mean n {stop_n.mean() / planned_n:.2f}x the fixed test's planned n,"
        f" Thompson regret {regret_ts / regret_fixed:.2f}x 50/50"
    )
    verdict = "target met" if holds and naive_ratio > 2 and regret_ts < regret_fixed else "MISSED"
    print(
        f"verdict: {verdict}: mSPRT {'holds' if holds else 'DOES NOT hold'} alpha under"
        f" continuous peeking ({seq_rate:.3f} <= {alpha + margin:.3f}), the peeked fixed test"
        f" does not ({fpr['fixed, peeked after every batch']:.3f}); Thompson loses"
        f" {regret_ts:,.0f} conversions against 50/50's {regret_fixed:,.0f}"
    )
    return 0 if verdict == "target met" else 1


if __name__ == "__main__":
    raise SystemExit(main())
