"""`shipyard abtest calc`: the A/B-test calculator over `shipyard.stats.abtest*`.

    shipyard abtest calc size --baseline 0.10 --mde 0.02 [--relative] [--alpha 0.05]
                              [--power 0.8] [--design fixed|sequential] [--sd SD]
    shipyard abtest calc proportions --x 120 --n 1000 --x 150 --n 1000
    shipyard abtest calc means --mean 10 --sd 2 --n 500 --mean 10.3 --sd 2.1 --n 500
    shipyard abtest calc srm --observed 5200 4800 --allocation 50 50
    shipyard abtest calc sequential --x 120 --n 1000 --x 150 --n 1000 [--tau T]
    shipyard abtest calc bayesian --x 120 --n 1000 --x 150 --n 1000 [--min-share 0.01]

The first arm is the control (A), the second the treatment (B); differences are B - A. Every
action takes `--format text|json`. The JSON is one object, stable within its schema version:

    {"schema": "shipyard.abtest.calc/1", "action": "<action>", "input": {...}, "result": {...}}

`input` echoes the parsed arguments; `result` holds the fields of the statistics result types
(`PowerResult`, `SequentialSizeResult`, `Comparison`, `ChiSquareResult`, `SrmResult`,
`SequentialResult`, `BayesResult`, `ThompsonResult`) by action:

    size          {"fixed": PowerResult, "sequential": SequentialSizeResult | null,
                   "n_per_arm": int, "n_total": int, "p1"/"p2" or "delta"/"sd"}
    proportions   {"z_test": Comparison, "chi_square": ChiSquareResult (Yates),
                   "chi_square_uncorrected": ChiSquareResult}
    means         {"welch": Comparison}
    srm           SrmResult
    sequential    SequentialResult
    bayesian      {"beta_binomial": BayesResult, "normal_lift": BayesResult,
                   "thompson": ThompsonResult}

Numbers that cannot be computed are null, never NaN, with `status` "not_enough_data" and a
`reason`. Fields may be added within version 1; none are renamed or removed. Impossible input
(x > n, negative counts, a missing --n) raises `ShipyardError`: the CLI prints it and exits 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    from shipyard.stats.abtest import Comparison

# The statistics (numpy, scipy, statsmodels) are imported by the action that runs, not here:
# the CLI builds this parser on every start, and `shipyard validate` must stay fast.

SCHEMA = "shipyard.abtest.calc/1"

Handler = Callable[[argparse.Namespace], tuple[dict[str, Any], list[str]]]


def add_calc_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `calc` and its actions to an argparse subparsers object; each sets `func`.

    Called from the CLI as `abtest calc ...`; `args.func(args)` runs the action and returns
    the exit code (0), or raises `ShipyardError` for input the statistics cannot take.
    """
    calc: argparse.ArgumentParser = subparsers.add_parser(
        "calc",
        help="A/B-test calculator: sample size, tests, SRM, sequential, Bayesian",
        description="A/B-test calculator. The first arm is the control, the second the treatment.",
    )
    actions = calc.add_subparsers(dest="calc_action", required=True, metavar="ACTION")

    def action(name: str, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = actions.add_parser(name, help=help, description=help)
        p.add_argument("--format", choices=["text", "json"], default="text")
        p.add_argument("--alpha", type=float, default=0.05, help="significance (default 0.05)")
        p.set_defaults(func=calc_command)
        return p

    p = action("size", "sample size per arm for a conversion rate (or a mean, with --sd)")
    p.add_argument("--baseline", type=float, required=True, help="control's rate (or mean)")
    p.add_argument("--mde", type=float, required=True, help="minimum detectable effect")
    p.add_argument("--relative", action="store_true", help="--mde is relative to the baseline")
    p.add_argument("--power", type=float, default=0.8, help="power wanted (default 0.8)")
    p.add_argument("--design", choices=["fixed", "sequential"], default="fixed")
    p.add_argument("--sd", type=float, help="standard deviation: size a test of means")
    p = action("proportions", "two conversion rates: z-test, chi-square, intervals, lift")
    _add_counts(p)
    p = action("means", "two means from summaries: Welch's t-test, intervals, lift")
    p.add_argument("--mean", type=float, action="append", help="an arm's mean (twice)")
    p.add_argument("--sd", type=float, action="append", help="an arm's standard deviation")
    p.add_argument("--n", type=int, action="append", help="an arm's units")
    p = action("srm", "sample-ratio mismatch: units per arm against the allocation")
    p.add_argument("--observed", type=int, nargs="+", required=True, help="units per arm")
    p.add_argument("--allocation", type=float, nargs="+", help="weights (default: equal)")
    p.add_argument("--threshold", type=float, default=0.001, help="p below which SRM is flagged")
    p = action("sequential", "always-valid mSPRT on two conversion rates (peek at will)")
    _add_counts(p)
    p.add_argument("--tau", type=float, help="mixing sd on the effect (default: GrowthBook's)")
    p.add_argument("--n-tune", type=float, default=5000.0, help="total units tau is tuned for")
    p = action("bayesian", "beta-binomial and normal-lift posteriors, Thompson shares")
    _add_counts(p)
    p.add_argument("--prior-alpha", type=float, default=1.0)
    p.add_argument("--prior-beta", type=float, default=1.0)
    p.add_argument("--min-share", type=float, default=0.01, help="Thompson floor per arm")
    for parser in actions.choices.values():  # the JSON's "input": this action's own options
        dests = [a.dest for a in parser._actions if a.dest not in ("help", "format")]
        parser.set_defaults(calc_inputs=tuple(dests))
    return calc


def calc_command(args: argparse.Namespace) -> int:
    """Run one calculator action from parsed arguments and print its result; returns 0."""
    handler = _HANDLERS[args.calc_action]
    try:
        result, lines = handler(args)
    except ValueError as exc:
        raise ShipyardError(
            f"abtest calc {args.calc_action}: {exc}", hint="see --help for the arguments"
        ) from exc
    if args.format == "json":
        inputs = {name: getattr(args, name) for name in args.calc_inputs}
        document = {"schema": SCHEMA, "action": args.calc_action, "input": inputs}
        document["result"] = result
        print(json.dumps(_clean(document), indent=2, allow_nan=False))
    else:
        print("\n".join(lines))
    return 0


def _size(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    from shipyard.stats.abtest_power import msprt_sample_size, power_means, power_proportions

    mde = args.mde * args.baseline if args.relative else args.mde
    target = args.baseline + mde
    lines = []
    if args.sd is not None:
        fixed = power_means(mde, args.sd, power=args.power, alpha=args.alpha)
        variances = (args.sd**2, args.sd**2)
        what = f"means {args.baseline:g} -> {target:g} (sd {args.sd:g})"
        result: dict[str, Any] = {"delta": mde, "sd": args.sd}
    else:
        fixed = power_proportions(args.baseline, target, power=args.power, alpha=args.alpha)
        variances = (args.baseline * (1 - args.baseline), target * (1 - target))
        what = f"rates {_pct(args.baseline)} -> {_pct(target)}"
        result = {"p1": args.baseline, "p2": target}
    result["fixed"] = fixed
    result["sequential"] = None
    n_per_arm = math.ceil(fixed.n)
    lines.append(f"{what}, alpha {args.alpha:g}, power {args.power:g}")
    lines.append(f"fixed horizon ({fixed.method}): {n_per_arm:,} per arm, {2 * n_per_arm:,} total")
    if args.design == "sequential":
        seq = msprt_sample_size(mde, *variances, alpha=args.alpha, power=args.power)
        result["sequential"] = seq
        n_per_arm = math.ceil(seq.n)
        lines.append(
            f"sequential (mSPRT, tau {seq.tau:.4g}, peek at will): horizon {n_per_arm:,} per arm,"
            f" {2 * n_per_arm:,} total, {seq.inflation:.2f}x the fixed n (it usually stops sooner)"
        )
    result["n_per_arm"] = n_per_arm
    result["n_total"] = 2 * n_per_arm
    return result, lines


def _proportions(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    from shipyard.stats.abtest import prop_test, proportions_ztest

    (x_a, n_a), (x_b, n_b) = _counts(args)
    z = proportions_ztest(x_a, n_a, x_b, n_b, alpha=args.alpha)
    yates = prop_test([x_a, x_b], [n_a, n_b], correct=True, alpha=args.alpha)
    plain = prop_test([x_a, x_b], [n_a, n_b], correct=False, alpha=args.alpha)
    lines = _comparison_lines(z, args.alpha, rate=True)
    if yates.status == "ok":
        lines.append(
            f"chi-square (R prop.test): X-squared {yates.statistic:.4g} p={_p(yates.p_value)}"
            f" with Yates; {plain.statistic:.4g} p={_p(plain.p_value)} without"
        )
    result = {"z_test": z, "chi_square": yates, "chi_square_uncorrected": plain}
    return result, lines


def _means(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    from shipyard.stats.abtest import welch_test

    means, sds, ns = args.mean or [], args.sd or [], args.n or []
    if not (len(means) == len(sds) == len(ns) == 2):
        raise ShipyardError(
            f"abtest calc means: pass --mean, --sd and --n once per arm, for 2 arms (got "
            f"{len(means)} --mean, {len(sds)} --sd, {len(ns)} --n)",
            hint="e.g. --mean 10 --sd 2 --n 500 --mean 10.3 --sd 2.1 --n 500",
        )
    welch = welch_test(means[0], sds[0], ns[0], means[1], sds[1], ns[1], alpha=args.alpha)
    return {"welch": welch}, _comparison_lines(welch, args.alpha, rate=False)


def _srm(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    from shipyard.stats.abtest import srm_test

    allocation = args.allocation or [1.0] * len(args.observed)
    result = srm_test(args.observed, allocation, threshold=args.threshold)
    if result.status != "ok":
        return _fields(result), [f"not enough data: {result.reason}"]
    verdict = (
        "SAMPLE-RATIO MISMATCH: the assignment is broken, do not trust this test"
        if result.mismatch
        else "no mismatch"
    )
    expected = ", ".join(f"{e:,.1f}" for e in result.expected)
    lines = [
        f"observed {', '.join(f'{c:,}' for c in args.observed)}; expected {expected}",
        f"chi-square {result.statistic:.4g}, df {result.df}, p={_p(result.p_value)}"
        f" (threshold {args.threshold:g}): {verdict}",
    ]
    return _fields(result), lines


def _sequential(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    from shipyard.stats.abtest_sequential import sequential_proportions

    (x_a, n_a), (x_b, n_b) = _counts(args)
    result = sequential_proportions(
        x_a, n_a, x_b, n_b, alpha=args.alpha, tau=args.tau, n_tune=args.n_tune
    )
    if result.status != "ok":
        return _fields(result), [f"not enough data: {result.reason}"]
    verdict = "significant: stop" if result.reject else "not significant yet: keep going"
    lines = [
        f"A {_pct(x_a / n_a)} ({x_a}/{n_a}) vs B {_pct(x_b / n_b)} ({x_b}/{n_b})",
        f"mSPRT (tau {result.tau:.4g}): always-valid p={_p(result.p_value)},"
        f" {_conf(args.alpha)} confidence sequence of B - A [{_pp(result.ci_low)},"
        f" {_pp(result.ci_high)}]: {verdict}",
    ]
    return _fields(result), lines


def _bayesian(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    from shipyard.stats.abtest_bayes import beta_binomial, normal_lift, thompson_allocation

    (x_a, n_a), (x_b, n_b) = _counts(args)
    beta = beta_binomial(
        x_a, n_a, x_b, n_b, prior_alpha=args.prior_alpha, prior_beta=args.prior_beta
    )
    p_a, p_b = (x_a / n_a if n_a else 0.0), (x_b / n_b if n_b else 0.0)
    normal = normal_lift(p_a, p_a * (1 - p_a), n_a, p_b, p_b * (1 - p_b), n_b)
    thompson = thompson_allocation(
        [x_a, x_b], [n_a, n_b], min_share=args.min_share, prior_alpha=args.prior_alpha,
        prior_beta=args.prior_beta,
    )  # fmt: skip
    result = {"beta_binomial": beta, "normal_lift": normal, "thompson": thompson}
    if beta.status != "ok":
        return result, [f"not enough data: {beta.reason}"]
    lines = [
        f"beta-binomial, Beta({args.prior_alpha:g}, {args.prior_beta:g}) prior: chance B beats A"
        f" {_pct(beta.chance_to_win)}; expected loss of shipping B {_pp(beta.expected_loss_b)},"
        f" of keeping A {_pp(beta.expected_loss_a)}",
    ]
    if normal.status == "ok":
        lines.append(
            f"normal on the lift (GrowthBook): lift {_pct(normal.lift_mean)} +/- "
            f"{_pct(normal.lift_sd)}, chance to win {_pct(normal.chance_to_win)}, risk of B "
            f"{_pct(normal.expected_loss_b)} of lift"
        )
    else:
        lines.append(f"normal on the lift: not enough data: {normal.reason}")
    shares = ", ".join(_pct(s) for s in thompson.shares)
    lines.append(f"Thompson sampling shares (floor {_pct(args.min_share)}): A, B = {shares}")
    return result, lines


_HANDLERS: dict[str, Handler] = {
    "size": _size,
    "proportions": _proportions,
    "means": _means,
    "srm": _srm,
    "sequential": _sequential,
    "bayesian": _bayesian,
}


def _add_counts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--x", type=int, action="append", help="an arm's successes (twice)")
    p.add_argument("--n", type=int, action="append", help="an arm's units (after its --x)")


def _counts(args: argparse.Namespace) -> list[tuple[int, int]]:
    xs, ns = args.x or [], args.n or []
    if len(xs) != 2 or len(ns) != 2:
        raise ShipyardError(
            f"abtest calc {args.calc_action}: pass --x and --n once per arm, for 2 arms (got "
            f"{len(xs)} --x and {len(ns)} --n)",
            hint="e.g. --x 120 --n 1000 --x 150 --n 1000 (control first)",
        )
    return list(zip(xs, ns, strict=True))


def _comparison_lines(c: Comparison, alpha: float, *, rate: bool) -> list[str]:
    show = _pct if rate else _num
    head = f"A {show(c.mean_a)} vs B {show(c.mean_b)}"
    if c.status != "ok":
        return [head, f"not enough data: {c.reason}"]
    df = f", df {c.df:.4g}" if c.df is not None else ""
    diff = _pp if rate else _num
    lines = [
        head,
        f"{c.method}: statistic {c.statistic:.4g}{df}, p={_p(c.p_value)}",
        f"difference B - A {diff(c.estimate)}, {_conf(alpha)} CI [{diff(c.ci_low)},"
        f" {diff(c.ci_high)}]",
    ]
    if c.lift is not None:
        lines.append(
            f"relative lift {_pct(c.lift)}, {_conf(alpha)} CI [{_pct(c.lift_ci_low)},"
            f" {_pct(c.lift_ci_high)}] (delta method)"
        )
    return lines


def _fields(result: Any) -> dict[str, Any]:
    return dict(dataclasses.asdict(result))


def _clean(value: Any) -> Any:
    """Dataclasses to dicts, tuples to lists, non-finite floats to None (JSON has no NaN)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _clean(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _conf(alpha: float) -> str:
    return f"{100 * (1 - alpha):g}%"


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _pp(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.2f} pp"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
