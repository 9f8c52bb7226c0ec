"""`shipyard run <flow> <name>`: run one compiled flow now, in this process."""

from __future__ import annotations

import inspect
import json
import sys

from shipyard.compiler.plan import Plan
from shipyard.diagnostics import did_you_mean
from shipyard.errors import ShipyardError
from shipyard.runtime.apply import load_flow, save_blocks
from shipyard.runtime.server import activate


def run_deployment_now(plan: Plan, flow_name: str, name: str, force: bool = False) -> int:
    deployment = plan.deployment(flow_name, name)
    if deployment is None:
        known = [d.full_name for d in plan.deployments]
        raise ShipyardError(
            f"no compiled flow '{flow_name}/{name}'",
            hint=did_you_mean(f"{flow_name}/{name}", known)
            or f"compiled flows: {', '.join(known) or 'none'} (see `shipyard plan`)",
        )
    with_server = activate(plan, require_server=False)
    if not with_server:
        print(
            "note: no Prefect server is running; using a temporary one "
            "(start `shipyard server start` to see runs in the UI)",
            file=sys.stderr,
        )
    save_blocks(plan)
    flow = load_flow(deployment)
    parameters = dict(deployment.parameters)
    if force:
        if "force" not in inspect.signature(flow.fn).parameters:
            raise ShipyardError(f"flow '{flow_name}' has no --force option")
        parameters["force"] = True
    state = flow(**parameters, return_state=True)
    result = state.result(raise_on_failure=False)
    if state.is_completed():
        print(f"{deployment.full_name}: completed")
        print(json.dumps(result, indent=2, default=str))
        if with_server:
            print(
                f"flow run: {plan.prefect_api_url.removesuffix('/api')}/runs/flow-run/"
                f"{state.state_details.flow_run_id}"
            )
        return 0
    if isinstance(result, ShipyardError):
        raise result
    raise ShipyardError(
        f"{deployment.full_name} ended in state {state.type.value}: {result}",
        hint="see the flow run's logs in the Prefect UI or the output above",
        resource=deployment.resource,
    )
