"""What a rollout tells its alert routes: a rollback (critical), a pause for a person (warning)
and a promotion (info), each under the key `rollout.<name>/<event>`.

A promotion resolves the rollback and pause alerts of earlier rollouts of the same name; a
resume or an abort by a person resolves the pause alert (someone acted on it, and a later
pause of the same rollout is news again).
"""

from __future__ import annotations

from shipyard.alerts.notify import notify, resolve
from shipyard.compiler import Plan, RolloutStep
from shipyard.rollouts.state import RolloutState


def rollout_decided(
    plan: Plan, step: RolloutStep, state: RolloutState, action: str, outcome: str, why: str
) -> None:
    """Alert on the decision the controller just recorded (`action`, `outcome`, `why`), or
    resolve what it settles; never raises for an alert that cannot be sent."""
    if not step.alerts:
        return
    key = f"{step.id}/"
    candidate = f"v{state.candidate_version}"
    where = step.stages[state.stage].label if 0 <= state.stage < len(step.stages) else state.phase
    labels = {"service": state.service, "candidate": candidate, "stage": where}
    status = f"`shipyard rollout status {step.name}` shows every decision and measurement."
    if outcome == "rolled_back":
        failed = _failed_checks(state)
        check = "; ".join(failed) or why
        notify(
            plan, step.alerts, key + "rollback", "critical",
            f"rollout {step.name} rolled back candidate {candidate} at {where}: {check}",
            "\n".join([why, *(f"- {line}" for line in failed), status]),
            step.id, labels,
        )  # fmt: skip
    elif action == "pause" and outcome == "paused":
        notify(
            plan, step.alerts, key + "pause", "warning",
            f"rollout {step.name} of {candidate} paused at {where}, waiting for a person",
            f"{why}\n`shipyard rollout resume {step.name}` goes on, `shipyard rollout abort "
            f"{step.name}` rolls back, `shipyard rollout promote {step.name}` finishes.\n{status}",
            step.id, labels,
        )  # fmt: skip
    elif outcome == "promoted":
        notify(
            plan, step.alerts, key + "promote", "info",
            f"rollout {step.name} promoted {candidate} to @champion", why, step.id, labels,
        )  # fmt: skip
        settled = f"rollout {step.name} promoted {candidate}: {why}"
        resolve(plan, step.alerts, [key + "rollback", key + "pause"], settled, step.id)
    elif action == "resume" or outcome == "aborted":
        resolve(plan, step.alerts, [key + "pause"], f"rollout {step.name}: {why}", step.id)


def _failed_checks(state: RolloutState) -> list[str]:
    """The latest failed measurement of each metric in the stage rolled back from, with its
    evidence: what the rollback was for."""
    latest: dict[str, str] = {}
    for interval in state.intervals:
        if interval.stage != state.stage:
            continue
        for m in interval.measurements:
            if m.outcome == "failed":
                latest[m.name] = f"{m.name} failed: {m.evidence}"
    return list(latest.values())
