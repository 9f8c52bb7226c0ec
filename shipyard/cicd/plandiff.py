"""`shipyard ci plan-diff BASE.json HEAD.json`: what a change to the spec does to the
deployments, for a pull-request comment.

The two files are `shipyard plan --offline --json -o` of the base and of the head. The base
plan's deployments stand in for "what is applied", so the comparison is diff.py's own: the
same added / changed (with the changed step fields) / removed as `shipyard plan` prints.
"""

from __future__ import annotations

from pathlib import Path

from shipyard.compiler.diff import (
    MAX_FIELDS,
    AppliedDeployment,
    DeploymentChange,
    PlanDiff,
    diff_plan,
)
from shipyard.compiler.plan import Plan, read_plan

MARK = {"added": "+", "changed": "~", "removed": "-"}


def diff_files(base: Path | None, head: Path) -> tuple[Plan | None, Plan, PlanDiff]:
    """The two plans and their difference; `base` None: nothing was planned before."""
    head_plan = read_plan(head)
    base_plan = read_plan(base) if base is not None else None
    return base_plan, head_plan, plans_diff(base_plan, head_plan)


def plans_diff(base: Plan | None, head: Plan) -> PlanDiff:
    deployments = {
        name: AppliedDeployment(
            full_name=name,
            version=d.version,
            schedules=(d.schedule,) if d.schedule else (),
        )
        for name, d in (base.deployments.items() if base is not None else ())
    }
    return diff_plan(head, deployments, base)


def render_markdown(base: Plan | None, head: Plan, diff: PlanDiff) -> str:
    title = f"### Shipyard plan: {head.project} (profile {head.profile})"
    since = f"`{base.spec_digest[:12]}`" if base is not None else "no plan (no valid spec)"
    lines = [title, "", f"Spec {since} → `{head.spec_digest[:12]}`."]
    if diff.empty:
        lines += ["", "No changes: the head compiles to the same deployments as the base."]
        return "\n".join(lines) + "\n"
    counts = {kind: sum(c.change == kind for c in diff.changes) for kind in MARK}
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
    lines += [
        "",
        f"What `shipyard apply` would do to the deployments ({summary}):",
        "",
        "| | deployment | what changes |",
        "|---|---|---|",
    ]
    for change in diff.changes:
        lines.append(f"| {MARK[change.change]} | `{change.full_name}` | {_what(change)} |")
    return "\n".join(lines) + "\n"


def _what(change: DeploymentChange) -> str:
    if change.change == "added":
        return "new"
    if change.change == "removed":
        return "no longer in the spec; `shipyard apply` deletes it"
    parts = []
    if change.fields:
        shown = ", ".join(f"`{f}`" for f in change.fields[:MAX_FIELDS])
        more = len(change.fields) - MAX_FIELDS
        parts.append(shown + (f" and {more} more" if more > 0 else ""))
    if change.schedule is not None:
        before, after = change.schedule
        parts.append(f"schedule `{before or 'none'}` → `{after or 'none'}`")
    return "; ".join(parts) or "its code or settings (the step's digest)"


def render_text(base: Plan | None, head: Plan, diff: PlanDiff) -> str:
    where = f"the base plan {base.spec_digest[:12]}" if base is not None else "an empty base"
    return diff.render(where) + "\n"
