"""`shipyard run <flow> <name>`: a flow run of the deployment, run here or by a worker.

The run is created from its deployment, so it shows on the deployment's page in the Prefect
UI with its tags, exactly as `prefect deployment run` would. If pipelines.yaml compiles to a
plan other than the applied one, the plan is applied first: `shipyard run` runs what the spec
says now. In this process (the default) the run's flow is executed at once; with `--worker`
it waits for a worker of the work pool to pick it up.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, cast

from shipyard.compiler.plan import DeploymentPlan, Plan
from shipyard.diagnostics import did_you_mean
from shipyard.errors import ShipyardError
from shipyard.runtime.apply import apply_plan, load_flow
from shipyard.runtime.plans import applied_plan_of, using
from shipyard.runtime.server import activate

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

WORKER_NOTICE_SECONDS = 30.0
POLL_SECONDS = 1.0


def find_deployment(plan: Plan, flow_name: str, name: str) -> DeploymentPlan:
    deployment = plan.deployment(flow_name, name)
    if deployment is None:
        known = list(plan.deployments)
        raise ShipyardError(
            f"no compiled flow '{flow_name}/{name}'",
            hint=did_you_mean(f"{flow_name}/{name}", known)
            or f"compiled flows: {', '.join(known) or 'none'} (see `shipyard plan`)",
        )
    return deployment


def run_deployment_now(
    plan: Plan, flow_name: str, name: str, force: bool = False, on_worker: bool = False
) -> int:
    """Create a run of the deployment and execute it; 0 when it completed."""
    deployment = find_deployment(plan, flow_name, name)
    # before anything imports Prefect: its settings are read once, at import
    with_server = activate(plan, require_server=on_worker)
    flow = load_flow(deployment)
    if force and "force" not in flow.parameters.properties:
        raise ShipyardError(f"flow '{flow_name}' has no --force option")
    if not with_server:
        print(
            "note: no Prefect server is running; using a temporary one "
            "(start `shipyard server start` to see runs in the UI)",
            file=sys.stderr,
        )
    applied = applied_plan_of(plan)
    if applied is None or applied.plan.digest != plan.digest:
        why = "nothing applied yet" if applied is None else "pipelines.yaml changed since"
        print(f"applying the plan first ({why}) ...", file=sys.stderr)
        apply_plan(
            plan,
            say=lambda line: print(f"  {line}", file=sys.stderr),
            verbose=False,
            require_server=on_worker,
        )
    flow_run = _create_run(deployment, {"force": True} if force else {}, scheduled=on_worker)
    url = plan.prefect.api_url.removesuffix("/api") + f"/runs/flow-run/{flow_run.id}"
    if on_worker:
        print(
            f"{deployment.full_name}: flow run {flow_run.id} waits for a worker on pool "
            f"'{plan.prefect.work_pool}' ({url})"
        )
        state = _wait_for_worker(flow_run.id, plan)
        result: Any = None
    else:
        from prefect.flow_engine import run_flow

        with using(plan):
            state = cast("State[Any]", run_flow(flow, flow_run=flow_run, return_type="state"))
        result = state.result(raise_on_failure=False)
    if state.is_completed():
        print(f"{deployment.full_name}: completed")
        if result is not None:
            print(
                result.model_dump_json(indent=2) if hasattr(result, "model_dump_json") else result
            )
        if with_server:
            print(f"flow run: {url}")
        return 0
    if isinstance(result, ShipyardError):
        raise result
    raise ShipyardError(
        f"{deployment.full_name} ended in state {state.type.value}"
        + (f": {result}" if result is not None else f": {state.message or ''}"),
        hint=f"see the flow run's logs in the Prefect UI ({url}) or the output above",
        resource=deployment.step,
    )


def _create_run(deployment: DeploymentPlan, parameters: dict[str, Any], scheduled: bool) -> Any:
    """A flow run of the deployment. Run here, it starts Pending, so no worker takes it too."""
    from prefect import get_client
    from prefect.states import Pending

    with get_client(sync_client=True) as client:
        found = client.read_deployment_by_name(deployment.full_name)
        return client.create_flow_run_from_deployment(
            found.id, parameters=parameters, state=None if scheduled else Pending()
        )


def _wait_for_worker(flow_run_id: Any, plan: Plan) -> Any:
    """Poll the run until it ends, printing its state changes."""
    from prefect import get_client

    started = time.monotonic()
    last, warned = None, False
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            state = run.state
            if state is not None and state.name != last:
                last = state.name
                print(f"  {state.name}", flush=True)
            if state is not None and state.is_final():
                return state
            if (
                not warned
                and state is not None
                and state.is_scheduled()
                and time.monotonic() - started > WORKER_NOTICE_SECONDS
            ):
                warned = True
                print(
                    f"  no worker has picked it up yet: start one with `shipyard worker start` "
                    f"(pool '{plan.prefect.work_pool}')",
                    file=sys.stderr,
                )
            time.sleep(POLL_SECONDS)
