"""Human-readable rendering of a Plan for `shipyard plan`."""

from __future__ import annotations

from shipyard.compiler.plan import Plan


def render_plan(plan: Plan) -> str:
    lines = [
        f"project {plan.project}  profile {plan.profile}  spec digest {plan.spec_digest[:12]}  "
        f"plan schema {plan.schema_version}",
        f"prefect {plan.prefect.api_url}  work pool {plan.prefect.work_pool}",
        f"state   {plan.runtime.state_dir}",
        "",
        f"steps ({len(plan.steps)}, in dependency order; each runs its tasks in order):",
    ]
    width = max((len(s) for s in plan.steps), default=0)
    for step_id, step in plan.steps.items():
        deployment = plan.deployment_of(step_id)
        runs = f"[{deployment.full_name}]" if deployment else "[run by the flows that need it]"
        lines.append(f"  {step_id:<{width}}  {' -> '.join(step.tasks)}  {runs}")
        if step.needs:
            lines.append(f"  {'':<{width}}    after {', '.join(step.needs)}")
    lines += ["", f"deployments ({len(plan.deployments)}):"]
    width = max((len(name) for name in plan.deployments), default=0)
    for name, d in plan.deployments.items():
        schedule = f"schedule '{d.schedule}'" if d.schedule else "on demand"
        parameters = ", ".join(f"{k}={v}" for k, v in d.parameters.items())
        lines.append(f"  {name:<{width}}  {d.entrypoint}({parameters})  {schedule}  v{d.version}")
    lines += ["", "blocks:"]
    lines += [f"  {b.type}/{b.name}" for b in plan.blocks.all()]
    if plan.secrets:
        lines += ["", "secrets (Prefect Secret blocks, resolved at run time):"]
        lines += [f"  secret/{name}" for name in plan.secrets]
    return "\n".join(lines)
