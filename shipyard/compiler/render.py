"""Human-readable rendering of a Plan for `shipyard plan`."""

from __future__ import annotations

from shipyard.compiler.plan import Plan


def render_plan(plan: Plan) -> str:
    lines = [
        f"project {plan.project}  profile {plan.profile}  spec digest {plan.spec_digest[:12]}",
        f"prefect {plan.prefect_api_url}  work pool {plan.work_pool}",
        f"state   {plan.runtime.state_dir}",
        "",
        f"steps ({len(plan.steps)}, in dependency order):",
    ]
    width = max((len(s.id) for s in plan.steps), default=0)
    for step in plan.steps:
        after = f"  after {', '.join(step.needs)}" if step.needs else ""
        lines.append(f"  {step.id:<{width}}  [{step.flow}]{after}")
    lines += ["", f"deployments ({len(plan.deployments)}):"]
    width = max((len(d.full_name) for d in plan.deployments), default=0)
    for d in plan.deployments:
        schedule = f"schedule '{d.schedule}'" if d.schedule else "on demand"
        lines.append(
            f"  {d.full_name:<{width}}  {d.entrypoint}  {schedule}  tags {','.join(d.tags)}"
        )
    lines += ["", f"blocks ({len(plan.blocks)}):"]
    lines += [f"  {b.type}/{b.name}" for b in plan.blocks]
    if plan.secrets:
        lines += ["", "secrets (Prefect Secret blocks, resolved at run time):"]
        lines += [f"  secret/{name}" for name in plan.secrets]
    return "\n".join(lines)
