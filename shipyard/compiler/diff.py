"""The difference between a plan and what is applied: deployments added, changed, removed.

Pure: the applied side is handed in (read from the Prefect server by the runtime), so the diff
itself is testable in milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from shipyard.compiler.plan import Plan

MAX_FIELDS = 6
"""Changed fields named per step; more are counted."""


@dataclass(frozen=True)
class AppliedDeployment:
    """A deployment as the Prefect server has it."""

    full_name: str
    version: str | None
    schedules: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeploymentChange:
    full_name: str
    change: str  # "added", "changed", "removed"
    fields: tuple[str, ...] = ()
    schedule: tuple[str | None, str | None] | None = None

    def describe(self) -> str:
        mark = {"added": "+", "changed": "~", "removed": "-"}[self.change]
        parts = [f"  {mark} {self.full_name}"]
        if self.change == "added":
            parts.append("(new)")
        elif self.change == "removed":
            parts.append("(no longer in the spec; `shipyard apply` deletes it)")
        if self.fields:
            shown = ", ".join(self.fields[:MAX_FIELDS])
            more = len(self.fields) - MAX_FIELDS
            parts.append(f"changed: {shown}" + (f" and {more} more" if more > 0 else ""))
        if self.schedule is not None:
            before, after = self.schedule
            parts.append(f"schedule {before or 'none'!r} -> {after or 'none'!r}")
        return "  ".join(parts)


@dataclass
class PlanDiff:
    """What `shipyard apply` would change on the server."""

    changes: list[DeploymentChange] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.changes

    def render(self, where: str) -> str:
        if self.empty:
            return f"no changes: the plan is what is applied on {where}"
        kinds = ("added", "changed", "removed")
        counts = {kind: sum(c.change == kind for c in self.changes) for kind in kinds}
        summary = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
        lines = [f"changes against {where} ({summary}):"]
        lines += [change.describe() for change in self.changes]
        return "\n".join(lines)

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {
                "deployment": c.full_name,
                "change": c.change,
                "fields": list(c.fields),
                "schedule": list(c.schedule) if c.schedule else None,
            }
            for c in self.changes
        ]


def diff_plan(
    plan: Plan, deployments: Mapping[str, AppliedDeployment], applied: Plan | None
) -> PlanDiff:
    """Compare the plan's deployments with the server's; name changed step fields when the
    applied plan is known."""
    diff = PlanDiff()
    for name, deployment in plan.deployments.items():
        current = deployments.get(name)
        if current is None:
            diff.changes.append(DeploymentChange(name, "added"))
            continue
        schedule = (current.schedules[0] if current.schedules else None, deployment.schedule)
        schedule_changed = schedule[0] != schedule[1]
        if current.version == deployment.version and not schedule_changed:
            continue
        fields: tuple[str, ...] = ()
        if applied is not None and deployment.step in applied.steps:
            fields = tuple(
                changed_fields(
                    applied.steps[deployment.step].model_dump(mode="json"),
                    plan.steps[deployment.step].model_dump(mode="json"),
                )
            )
        diff.changes.append(
            DeploymentChange(name, "changed", fields, schedule if schedule_changed else None)
        )
    for name in deployments:
        if name not in plan.deployments:
            diff.changes.append(DeploymentChange(name, "removed"))
    return diff


def changed_fields(before: Any, after: Any, prefix: str = "") -> Iterator[str]:
    """Dotted paths of the values that differ between two JSON documents."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in dict.fromkeys([*before, *after]):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in before or key not in after:
                yield path
            else:
                yield from changed_fields(before[key], after[key], path)
    elif before != after:
        yield prefix or "(value)"
