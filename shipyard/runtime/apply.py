"""`shipyard apply`: save blocks and secrets, ensure the work pool, register every deployment,
prune the ones the spec dropped, and record the plan as applied (the block flows read)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from shipyard.audit import current_actor
from shipyard.compiler.plan import DeploymentPlan, Plan
from shipyard.errors import ShipyardError
from shipyard.runtime.code import import_code
from shipyard.runtime.plans import save_applied
from shipyard.runtime.server import activate
from shipyard.secrets import env_name

log = logging.getLogger("shipyard.apply")


def save_blocks(plan: Plan) -> list[str]:
    """Register Shipyard's block types and save the plan's block documents; returns notes."""
    from prefect.blocks.system import Secret

    block_types = import_code("blocks.connections").BLOCK_TYPES
    notes: list[str] = []
    for block_type in block_types.values():
        block_type.register_type_and_schema()
    for block in plan.blocks.all():
        fields = block.model_dump(exclude={"type", "name"})
        block_types[block.type](**fields).save(block.name, overwrite=True)
    for name in plan.secrets:
        value = os.environ.get(env_name(name))
        if value is not None:
            Secret(value=value).save(name, overwrite=True)
            notes.append(f"secret/{name} saved from {env_name(name)}")
            continue
        try:
            Secret.load(name)
        except ValueError:
            notes.append(
                f"secret/{name} has no value yet: create it in the Prefect UI (Blocks > Secret) "
                f"or export {env_name(name)} and re-run `shipyard apply`"
            )
    return notes


def ensure_work_pool(plan: Plan) -> bool:
    """Create the plan's work pool if missing; True when it was created."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(plan.prefect.work_pool)
            return False
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(name=plan.prefect.work_pool, type=plan.prefect.work_pool_type)
            )
            return True


def load_flow(deployment: DeploymentPlan) -> Any:
    """Import the flow object a deployment's entrypoint names."""
    path, function = deployment.entrypoint.split(":")
    module = import_code(path.removesuffix(".py").replace("/", "."))
    return getattr(module, function)


def register_deployment(plan: Plan, deployment: DeploymentPlan) -> str:
    """Create or update one deployment; a schedule removed from the spec is removed too."""
    from prefect import flow as prefect_flow
    from prefect.settings import PREFECT_DEPLOYMENTS_CLEAR_SCHEDULES_ON_EMPTY, temporary_settings

    remote_flow: Any = prefect_flow.from_source(
        source=deployment.source, entrypoint=deployment.entrypoint
    )
    runner_deployment: Any = remote_flow.to_deployment(
        name=deployment.name,
        work_pool_name=plan.prefect.work_pool,
        parameters=deployment.parameters,
        cron=deployment.schedule,
        tags=list(deployment.tags),
        description=deployment.description,
        job_variables=plan.job_variables.model_dump(),
        version=deployment.version,
    )
    with temporary_settings(updates={PREFECT_DEPLOYMENTS_CLEAR_SCHEDULES_ON_EMPTY: True}):
        deployment_id = runner_deployment.apply(schedules=None if deployment.schedule else [])
    return str(deployment_id)


def prune_deployments(plan: Plan) -> list[str]:
    """Delete this project's deployments that the spec no longer declares."""
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    removed: list[str] = []
    with get_client(sync_client=True) as client:
        existing = client.read_deployments(
            deployment_filter=DeploymentFilter(
                tags=DeploymentFilterTags(all_=[f"project:{plan.project}"])
            )
        )
        flows = {f.id: f.name for f in client.read_flows()}
        for deployment in existing:
            full_name = f"{flows.get(deployment.flow_id, '?')}/{deployment.name}"
            if full_name not in plan.deployments:
                client.delete_deployment(deployment.id)
                removed.append(full_name)
    return removed


def apply_plan(
    plan: Plan,
    say: Callable[[str], None] = print,
    verbose: bool = True,
    require_server: bool = True,
) -> None:
    """Make the Prefect server run exactly this plan; the plan is recorded last, so a failed
    apply leaves the previous plan recorded and `shipyard plan` still shows what is left.

    `require_server=False` allows Prefect's temporary server when no local server runs
    (`shipyard run` without `shipyard server start`)."""
    with_server = activate(plan, require_server=require_server)
    where = plan.prefect.api_url if with_server else "Prefect's temporary server"
    from prefect.exceptions import PrefectException

    try:
        notes = save_blocks(plan)
        created = ensure_work_pool(plan)
        ids = {name: register_deployment(plan, d) for name, d in plan.deployments.items()}
        removed = prune_deployments(plan)
        save_applied(plan, current_actor())
    except PrefectException as exc:
        raise ShipyardError(
            f"Prefect rejected the plan: {exc}",
            hint="check the server log (`shipyard server status`) and the plan (`shipyard plan`)",
        ) from exc
    if not verbose:
        say(
            f"applied plan {plan.spec_digest[:12]} of {plan.project} ({len(ids)} deployments"
            + (f", {len(removed)} removed" if removed else "")
            + f") to {where}"
        )
        return
    ui = plan.prefect.api_url.removesuffix("/api")
    say(f"applied project {plan.project} (profile {plan.profile}) to {plan.prefect.api_url}")
    say(f"  plan       {plan.spec_digest[:12]} (block shipyard-plan)")
    say(f"  work pool  {plan.prefect.work_pool}" + (" (created)" if created else ""))
    for block in plan.blocks.all():
        say(f"  block      {block.type}/{block.name}")
    for name, deployment_id in ids.items():
        schedule = plan.deployments[name].schedule
        say(
            f"  deployment {name}"
            + (f"  schedule '{schedule}'" if schedule else "")
            + f"  {ui}/deployments/deployment/{deployment_id}"
        )
    for name in removed:
        say(f"  removed    {name} (no longer in the spec)")
    for note in notes:
        say(f"  note: {note}")
    say(
        'run one now: `shipyard run <flow> <name>`, or `eval "$(shipyard env)"; prefect '
        "deployment run <flow>/<name>` executed by `shipyard worker start`"
    )
