"""`shipyard abtest start|stop|report|size <test>` and `shipyard abtest calc ...`."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    from shipyard.compiler import Plan

EXIT_OK = 0


def add_abtest_parser(
    add: Callable[..., argparse.ArgumentParser], command: Callable[[argparse.Namespace], int]
) -> None:
    """`abtest` with its actions; `command(args)` runs the per-test ones (with a plan)."""
    from shipyard.abtests.calc import add_calc_parser

    abtest = add("abtest", lambda a: EXIT_OK, "A/B tests: start, stop, report, size; calc")
    actions = abtest.add_subparsers(dest="abtest_command", required=True, metavar="ACTION")
    for action, text in (
        ("start", "put the test's split in force on its service (the analysis starts it too)"),
        ("stop", "end the test: every caller back on the service's routing (audited)"),
        ("report", "effect, interval, p-value, probability to beat, SRM, guardrails, decision"),
        (
            "size",
            "callers per arm the fixed design needs, and the time that takes at current traffic",
        ),
    ):
        p = actions.add_parser(action, help=text, description=text)
        p.add_argument("test", help="a test under `ab_tests:`")
        if action in ("report", "size"):
            p.add_argument("--format", choices=["text", "json"], default="text")
        if action == "stop":
            p.add_argument("--reason", required=True, help="why, recorded in the audit log")
        if action == "size":
            p.add_argument(
                "--baseline", type=float, help="control's rate or mean (default: observed)"
            )
            p.add_argument("--sd", type=float, help="continuous metric: its standard deviation")
        p.set_defaults(func=command)
    add_calc_parser(actions)


def abtest_command(plan: Plan, args: argparse.Namespace) -> int:
    from shipyard.abtests.runner import AbTest

    test = AbTest(plan, args.test)
    if args.abtest_command == "start":
        state = test.start()
        print(f"A/B test '{args.test}' runs since {state.started_at:.0f} (by {state.started_by})")
        return EXIT_OK
    if args.abtest_command == "stop":
        state = test.stop("no_effect", f"stopped by hand: {args.reason}")
        print(f"A/B test '{args.test}' stopped: {state.reason}")
        return EXIT_OK
    if args.abtest_command == "report":
        from shipyard.abtests.report import text

        state, report = test.look(record=False)
        if args.format == "json":
            print(json.dumps(report.as_json(), indent=2, default=str))
        else:
            print(text(test.step, state, report))
        return EXIT_OK
    return _size(test, args)


def _size(test: Any, args: argparse.Namespace) -> int:
    """Callers per arm at the declared MDE, alpha and power; time at the observed entry rate."""
    from shipyard.stats.abtest_power import power_means, power_proportions

    step = test.step
    state = test.state()
    observed = None
    rate = None
    if state is not None:
        _, report = test.look(record=False)
        observed = report.arms[0].mean
        hours = max(report.elapsed_seconds / 3600, 1e-9)
        rate = sum(a.units for a in report.arms) / hours
    baseline = args.baseline if args.baseline is not None else observed
    if baseline is None:
        raise ShipyardError(
            f"A/B test '{step.name}' has no observed control {step.metric.name} yet",
            hint="give the expected one: `--baseline 0.1` (and `--sd` for a continuous metric)",
            resource=step.id,
        )
    try:
        if step.metric.type == "binary":
            result = power_proportions(
                baseline, baseline + step.mde, power=step.power, alpha=step.alpha
            )
        else:
            if args.sd is None:
                raise ShipyardError("a continuous metric needs `--sd`", resource=step.id)
            result = power_means(step.mde, args.sd, power=step.power, alpha=step.alpha)
    except ValueError as exc:
        raise ShipyardError(f"A/B test '{step.name}': {exc}", resource=step.id) from None
    per_arm = math.ceil(result.n)
    total = math.ceil(per_arm * 100 / min(a.share for a in step.arms))
    hours = total / rate if rate else None
    answer = {
        "schema": "shipyard.abtest.size/1",
        "test": step.name,
        "baseline": baseline,
        "mde": step.mde,
        "alpha": step.alpha,
        "power": step.power,
        "per_arm": per_arm,
        "total": total,
        "method": result.method,
        "callers_per_hour": rate,
        "expected_hours": hours,
    }
    if args.format == "json":
        print(json.dumps(answer, indent=2))
    else:
        print(
            f"A/B test '{step.name}': {per_arm} callers per arm ({total} in all, smallest arm "
            f"{min(a.share for a in step.arms):g}%) to detect {step.mde:g} from {baseline:.4g} at "
            f"alpha {step.alpha:g}, power {step.power:g} ({result.method})"
            + (f"; about {hours:.1f} h at the {rate:.0f} callers/h seen so far" if hours else "")
        )
    return EXIT_OK
