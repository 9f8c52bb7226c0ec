"""`on_winner: promote`: the winning arm's version becomes the service's stable one.

When the spec declares a rollout of the service whose candidate is the winner's alias, that
rollout takes it from here (smoke test, stages, analysis, promotion or rollback); otherwise the
winner's version becomes @champion directly (audited) and the service is rebuilt on it.
"""

from __future__ import annotations

from collections.abc import Callable

from shipyard.compiler import Plan, RolloutStep, ServiceStep
from shipyard.compiler.ab_tests import AbTestStep
from shipyard.compiler.features import repo_step


def promote_winner(
    plan: Plan, step: AbTestStep, winner: str, say: Callable[[str], None] = print
) -> str:
    arm = next(a for a in step.arms if a.name == winner)
    if arm is step.arms[0]:
        return f"the control arm '{winner}' won: the service already serves it as stable"
    for rollout in plan.steps.values():
        if (
            isinstance(rollout, RolloutStep)
            and rollout.service == step.service
            and rollout.candidate.alias == arm.alias
        ):
            from shipyard.rollouts.controller import Controller

            state = Controller(plan, rollout.name, say=say).run()
            return (
                f"rollout '{rollout.name}' of the winner {arm.reference}: {state.status}: "
                f"{state.outcome}"
            )
    from shipyard import registry
    from shipyard.audit import AuditLog
    from shipyard.serving.build import build_service
    from shipyard.serving.deploy import deploy
    from shipyard.settings import StateLayout
    from shipyard.training.tracking import use_tracking

    service = plan.steps[step.service]
    assert isinstance(service, ServiceStep)
    use_tracking(plan.blocks.mlflow.tracking_uri, step.id)
    found = (
        registry.model_version(service.registered_name, arm.version)
        if arm.version is not None
        else registry.alias_version(service.registered_name, arm.alias or "")
    )
    if found is None:
        return f"the winner {arm.reference} holds no version any more: nothing was promoted"
    audit = AuditLog(StateLayout(plan.runtime.state_dir).catalog)
    registry.promote(
        service.registered_name, str(found.version), audit, f"A/B test {step.name} winner", step.id
    )
    built = build_service(service, repo_step(plan.steps), plan.blocks.mlflow.tracking_uri, say=say)
    return f"v{found.version} ({arm.reference}) is @champion: " + deploy(service, built, say=say)
