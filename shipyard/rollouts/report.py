"""A rollout for people: the status text, a Markdown report and a plot of the metrics per stage."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

from shipyard.compiler import RolloutStep
from shipyard.compiler.services import STABLE
from shipyard.figures import save_png
from shipyard.rollouts.state import RolloutState


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S")


def stage_label(step: RolloutStep, state: RolloutState) -> str:
    if state.phase == "stages" and state.stage < len(step.stages):
        return step.stages[state.stage].label
    return state.phase


def status_text(step: RolloutStep, state: RolloutState | None, weights: dict[str, float]) -> str:
    """What `shipyard rollout status` prints."""
    if state is None:
        return (
            f"rollout '{step.name}': never started (`shipyard rollout start {step.name}`)\n"
            f"  {len(step.stages)} stage(s): " + ", ".join(f"{s.label}" for s in step.stages)
        )
    owner = f", controller {state.owner}" if state.owner else ""
    lines = [
        f"rollout '{step.name}' ({state.strategy}): {state.status}"
        + (f" at {stage_label(step, state)}" if state.active else "")
        + owner,
        f"  candidate v{state.candidate_version} (variant {state.candidate_variant}) beside "
        f"stable v{state.stable_version}; weights now "
        + ", ".join(f"{name} {weight:g}%" for name, weight in weights.items()),
    ]
    if state.outcome:
        lines.append(f"  outcome: {state.outcome}")
    if state.intervals:
        lines.append("  analysis (newest last):")
        for interval in state.intervals[-12:]:
            requests = ", ".join(f"{k} {v:.0f}" for k, v in interval.requests.items())
            lines.append(
                f"    {_time(interval.at)} {step.stages[interval.stage].label:<14} "
                f"requests {requests}"
            )
            for m in interval.measurements:
                lines.append(f"      {m.outcome:<12} {m.evidence}")
    lines.append("  decisions:")
    for decision in state.decisions[-12:]:
        lines.append(
            f"    {_time(decision.at)} {decision.action:<9} {decision.outcome:<12} "
            f"{decision.reason} ({decision.actor})"
        )
    return "\n".join(lines)


def markdown(step: RolloutStep, state: RolloutState, plot_png: bytes | None) -> str:
    """The flow run's artifact: the decision, every interval's evidence and the plot."""
    out = [
        f"# Rollout {step.name}: {state.status}",
        "",
        f"Candidate **v{state.candidate_version}** ({state.candidate_variant}) against stable "
        f"**v{state.stable_version}**, strategy {state.strategy}.",
        "",
        f"**Outcome:** {state.outcome or 'still running'}",
        "",
        "| time | stage | weight | stable req | candidate req | metric | outcome | evidence |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for interval in state.intervals:
        for m in interval.measurements:
            out.append(
                f"| {_time(interval.at)} | {step.stages[interval.stage].label} | "
                f"{interval.weight:g}% | {interval.requests.get(STABLE, 0):.0f} | "
                f"{interval.requests.get(state.candidate_variant, 0):.0f} | {m.name} | "
                f"{m.outcome} | {m.evidence.replace('|', '/')} |"
            )
    out += [
        "",
        "## Decisions",
        "",
        "| time | action | outcome | reason | by |",
        "|---|---|---|---|---|",
    ]
    for d in state.decisions:
        out.append(
            f"| {_time(d.at)} | {d.action} | {d.outcome} | {d.reason.replace('|', '/')} | "
            f"{d.actor} |"
        )
    if plot_png:
        encoded = base64.b64encode(plot_png).decode()
        out += ["", f"![metrics per interval](data:image/png;base64,{encoded})"]
    return "\n".join(out)


def plot(step: RolloutStep, state: RolloutState, path: Path) -> bytes | None:
    """One panel per metric (candidate's value, stable's, the limit), plus the weight; PNG."""
    if not state.intervals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [m.name for m in step.metrics]
    figure, axes = plt.subplots(
        len(names) + 1, 1, figsize=(8, 2.2 * (len(names) + 1)), sharex=True, squeeze=False
    )
    start = state.intervals[0].at
    minutes = [(i.at - start) / 60 for i in state.intervals]
    weight_axis = axes[0][0]
    weight_axis.step(minutes, [i.weight for i in state.intervals], where="post", color="#555")
    weight_axis.set_ylabel("candidate %")
    weight_axis.set_ylim(0, 105)
    weight_axis.set_title(f"rollout {step.name}: {state.status}")
    colors = {"successful": "#2a9d8f", "failed": "#e63946", "inconclusive": "#adb5bd"}
    for row, name in enumerate(names, 1):
        axis = axes[row][0]
        values, baselines, marks = [], [], []
        for interval in state.intervals:
            found = next((m for m in interval.measurements if m.name == name), None)
            values.append(found.value if found and found.value is not None else float("nan"))
            baselines.append(
                found.baseline if found and found.baseline is not None else float("nan")
            )
            marks.append(colors[found.outcome] if found else colors["inconclusive"])
        axis.plot(minutes, values, color="#264653", label="candidate")
        axis.scatter(minutes, values, c=marks, zorder=3)
        axis.plot(minutes, baselines, color="#e9c46a", linestyle="--", label="stable")
        limit = next((m.max for m in step.metrics if m.name == name), None)
        if limit is not None:
            axis.axhline(limit, color="#e63946", linewidth=0.8, label="limit")
        axis.set_ylabel(name)
        axis.set_ylim(bottom=0)
        axis.legend(loc="best", fontsize=7, framealpha=0.6)
    axes[-1][0].set_xlabel("minutes since the first analysis")
    return save_png(figure, path)
