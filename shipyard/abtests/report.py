"""An A/B test for people: the text report, the Markdown artifact, plots, and an HTML page."""

from __future__ import annotations

import base64
import html
import math
from datetime import UTC, datetime
from pathlib import Path

from shipyard.abtests.analysis import AbTestReport
from shipyard.abtests.state import AbTestState
from shipyard.compiler.ab_tests import AbTestStep
from shipyard.figures import save_png

DECISIONS = {
    "keep_running": "keep running",
    "winner": "stop: a winner",
    "no_effect": "stop: no effect",
    "harm": "stop: harm",
    "sample_ratio_mismatch": "stop: sample ratio mismatch",
}


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def text(step: AbTestStep, state: AbTestState, report: AbTestReport) -> str:
    """What `shipyard abtest report` prints."""
    began = datetime.fromtimestamp(state.started_at, UTC).strftime("%Y-%m-%d %H:%M")
    lines = [
        f"A/B test '{step.name}' on service '{state.service}' ({step.design}, metric "
        f"{step.metric.name} {step.metric.type}): {state.status}, started {began} UTC, "
        f"{report.elapsed_seconds / 3600:.1f} h",
        f"  decision: {DECISIONS[report.decision]}: {report.reason}",
        f"  {'arm':<12} {'callers':>8} {'measured':>9} {'mean':>8} {'effect':>9} "
        f"{'interval':>21} {'p':>8} {'P(beat)':>8}",
    ]
    for arm in report.arms:
        interval = (
            f"[{_number(arm.ci_low)}, {_number(arm.ci_high)}]" if arm.ci_low is not None else ""
        )
        p = arm.adjusted_p if arm.adjusted_p is not None else arm.p_value
        chance = f"{arm.chance_to_win:.1%}" if arm.chance_to_win is not None else ""
        lines.append(
            f"  {arm.name:<12} {arm.units:>8} {arm.measured:>9} {_number(arm.mean):>8} "
            f"{_number(arm.effect):>9} {interval:>21} {_number(p, 3):>8} {chance:>8}"
            + (f"  ({arm.note})" if arm.note else "")
        )
    srm = report.srm
    lines.append(
        f"  sample ratio: p={_number(srm.p_value, 3)} "
        + ("MISMATCH" if srm.mismatch else "ok")
        + f" (expected {', '.join(f'{e:.0f}' for e in srm.expected)})"
    )
    if report.needed_per_arm is not None:
        lines.append(
            f"  fixed-design sample: {math.ceil(report.needed_per_arm)} measured callers per arm"
        )
    for guardrail in report.guardrails:
        lines.append(f"  guardrail {guardrail.outcome}: {guardrail.evidence}")
    if report.shares:
        lines.append(
            "  bandit shares: " + ", ".join(f"{v} {s:g}%" for v, s in report.shares.items())
        )
    if report.cuped_reduction is not None:
        lines.append(f"  CUPED variance reduction: {report.cuped_reduction:.1%}")
    if report.switched or report.unusable_outcomes:
        lines.append(
            f"  note: {report.switched} callers later served by another arm (counted in their "
            f"first), {report.unusable_outcomes} outcomes neither numbers nor booleans"
        )
    return "\n".join(lines)


def plot(step: AbTestStep, state: AbTestState, report: AbTestReport, path: Path) -> bytes | None:
    """Effect and interval per look, cumulative callers per arm, and the posterior (binary)."""
    looks = state.looks
    if not looks:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, (effect_axis, exposure_axis, posterior_axis) = plt.subplots(3, 1, figsize=(8, 9))
    hours = [(look.at - state.started_at) / 3600 for look in looks]
    for offset, arm in enumerate(step.arms[1:]):
        points = [
            (h, look.effect.get(arm.name), *look.ci.get(arm.name, (None, None)))
            for h, look in zip(hours, looks, strict=True)
        ]
        shown = [(h, e, lo, hi) for h, e, lo, hi in points if e is not None]
        if not shown:
            continue
        xs = [h for h, _, _, _ in shown]
        ys = [e for _, e, _, _ in shown]
        below = [e - lo if lo is not None else 0.0 for _, e, lo, _ in shown]
        above = [hi - e if hi is not None else 0.0 for _, e, _, hi in shown]
        effect_axis.errorbar(
            xs, ys, yerr=[below, above], marker="o", capsize=4, label=f"{arm.name} - control",
            color=f"C{offset}",
        )  # fmt: skip
    effect_axis.axhline(0, color="#555", linewidth=0.8)
    for sign in (1, -1):
        effect_axis.axhline(sign * step.mde, color="#e63946", linewidth=0.6, linestyle=":")
    effect_axis.set_ylabel(f"effect on {step.metric.name}")
    effect_axis.set_xlabel("hours since start (each look, with its interval)")
    effect_axis.set_title(f"A/B test {step.name}: {DECISIONS[report.decision]}")
    effect_axis.legend(fontsize=7)
    entered = sorted(report.entered)
    for offset, plan in enumerate(step.arms):
        times = [(t - state.started_at) / 3600 for t, variant in entered if variant == plan.variant]
        exposure_axis.step(times, range(1, len(times) + 1), where="post", label=plan.name,
                           color=f"C{offset}")  # fmt: skip
    exposure_axis.set_ylabel("callers (cumulative)")
    exposure_axis.set_xlabel("hours since start")
    exposure_axis.legend(fontsize=7)
    if step.metric.type == "binary":
        from scipy import stats

        means = [r.mean for r in report.arms if r.mean is not None]
        low, high = (max(0.0, min(means) - 0.1), min(1.0, max(means) + 0.1)) if means else (0, 1)
        grid = np.linspace(low, high, 1001)
        for result in report.arms:
            if result.measured and result.mean is not None:
                wins = result.mean * result.measured
                density = stats.beta.pdf(grid, 1 + wins, 1 + result.measured - wins)
                posterior_axis.plot(grid, density, label=result.name)
        posterior_axis.set_xlabel(f"{step.metric.name} rate (Beta posterior, uniform prior)")
        posterior_axis.legend(fontsize=7)
    else:
        posterior_axis.set_axis_off()
    return save_png(figure, path)


def markdown(step: AbTestStep, state: AbTestState, report: AbTestReport, png: bytes | None) -> str:
    rows = [
        f"# A/B test {step.name}: {DECISIONS[report.decision]}",
        "",
        f"**Reason:** {report.reason}",
        "",
        f"Design {step.design}, metric {step.metric.name} ({step.metric.type}), MDE {step.mde:g}, "
        f"alpha {step.alpha:g}; status {state.status}.",
        "",
        "| arm | callers | measured | mean | effect | interval | p | P(beat control) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm in report.arms:
        p = arm.adjusted_p if arm.adjusted_p is not None else arm.p_value
        interval = (
            f"[{_number(arm.ci_low)}, {_number(arm.ci_high)}]" if arm.ci_low is not None else ""
        )
        chance = f"{arm.chance_to_win:.1%}" if arm.chance_to_win is not None else ""
        rows.append(
            f"| {arm.name} | {arm.units} | {arm.measured} | {_number(arm.mean)} | "
            f"{_number(arm.effect)} | {interval} | {_number(p, 3)} | {chance} |"
        )
    rows += [
        "",
        f"Sample ratio: p={_number(report.srm.p_value, 3)}, "
        + ("**mismatch**" if report.srm.mismatch else "ok"),
    ]
    for guardrail in report.guardrails:
        rows.append(f"- guardrail {guardrail.outcome}: {guardrail.evidence}")
    if png:
        encoded = base64.b64encode(png).decode()
        rows += ["", f"![effect, exposure, posterior](data:image/png;base64,{encoded})"]
    return "\n".join(rows)


def html_page(step: AbTestStep, state: AbTestState, report: AbTestReport, png: bytes | None) -> str:
    """A page to open in a browser or attach: the text report and the plot."""
    image = (
        f'<img alt="plots" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        if png
        else ""
    )
    return (
        "<!doctype html><meta charset='utf-8'>"
        f"<title>A/B test {html.escape(step.name)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}pre{background:#f4f4f4;padding:1em}</style>"
        f"<h1>A/B test {html.escape(step.name)}</h1>"
        f"<pre>{html.escape(text(step, state, report))}</pre>{image}"
    )
