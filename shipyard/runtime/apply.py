"""`shipyard apply`: save blocks and secrets, ensure the work pool, register every deployment."""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any

from shipyard.compiler.plan import DeploymentPlan, Plan
from shipyard.errors import ShipyardError
from shipyard.runtime.server import activate
from shipyard.secrets import env_name

log = logging.getLogger("shipyard.apply")


def save_blocks(plan: Plan) -> list[str]:
    """Register Shipyard's block types and save the plan's block documents; returns notes."""
    from prefect.blocks.system import Secret

    from blocks.connections import BLOCK_TYPES

    notes: list[str] = []
    for block_type in BLOCK_TYPES.values():
        block_type.register_type_and_schema()
    for block in plan.blocks:
        BLOCK_TYPES[block.type](**block.fields).save(block.name, overwrite=True)
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
            client.read_work_pool(plan.work_pool)
            return False
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=plan.work_pool, type="process"))
            return True


def load_flow(deployment: DeploymentPlan) -> Any:
    """Import the flow object a deployment's entrypoint names."""
    path, function = deployment.entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, function)


def register_deployment(deployment: DeploymentPlan, version: str) -> str:
    """Create or update one deployment; a schedule removed from the spec is removed too."""
    from prefect import flow as prefect_flow
    from prefect.settings import PREFECT_DEPLOYMENTS_CLEAR_SCHEDULES_ON_EMPTY, temporary_settings

    remote_flow: Any = prefect_flow.from_source(
        source=deployment.source, entrypoint=deployment.entrypoint
    )
    runner_deployment: Any = remote_flow.to_deployment(
        name=deployment.name,
        work_pool_name=deployment.work_pool,
        parameters=deployment.parameters,
        cron=deployment.schedule,
        tags=list(deployment.tags),
        description=deployment.description,
        job_variables=deployment.job_variables,
        version=version,
    )
    with temporary_settings(updates={PREFECT_DEPLOYMENTS_CLEAR_SCHEDULES_ON_EMPTY: True}):
        deployment_id = runner_deployment.apply(schedules=None if deployment.schedule else [])
    return str(deployment_id)


def prune_deployments(plan: Plan) -> list[str]:
    """Delete this project's deployments that the spec no longer declares."""
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    wanted = {d.full_name for d in plan.deployments}
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
            if full_name not in wanted:
                client.delete_deployment(deployment.id)
                removed.append(full_name)
    return removed


def apply_plan(plan: Plan) -> None:
    activate(plan, require_server=True)
    from prefect.exceptions import PrefectException

    try:
        notes = save_blocks(plan)
        created = ensure_work_pool(plan)
        ids = {d.full_name: register_deployment(d, plan.spec_digest[:12]) for d in plan.deployments}
        removed = prune_deployments(plan)
    except PrefectException as exc:
        raise ShipyardError(
            f"Prefect rejected the plan: {exc}",
            hint="check the server log (`shipyard server status`) and the plan (`shipyard plan`)",
        ) from exc
    ui = plan.prefect_api_url.removesuffix("/api")
    print(f"applied project {plan.project} (profile {plan.profile}) to {plan.prefect_api_url}")
    print(f"  work pool  {plan.work_pool}" + (" (created)" if created else ""))
    for block in plan.blocks:
        print(f"  block      {block.type}/{block.name}")
    for name, deployment_id in ids.items():
        schedule = next(d.schedule for d in plan.deployments if d.full_name == name)
        print(
            f"  deployment {name}"
            + (f"  schedule '{schedule}'" if schedule else "")
            + f"  {ui}/deployments/deployment/{deployment_id}"
        )
    for name in removed:
        print(f"  removed    {name} (no longer in the spec)")
    for note in notes:
        print(f"  note: {note}")
    print(
        'run one now: `eval "$(shipyard env)"; prefect deployment run <flow>/<name>`, '
        "executed by `shipyard worker start`"
    )
