"""`shipyard run <flow> <name>`: a flow run of the deployment, run here or by a worker.

The run is created from its deployment, so it shows on the deployment's page in the Prefect
UI with its tags, exactly as `prefect deployment run` would. If pipelines.yaml compiles to a
plan other than the applied one, the plan is applied first: `shipyard run` runs what the spec
says now. In this process (the default) the run's flow is executed at once; with `--worker`
it waits for a worker of the work pool to pick it up.

A Prefect server that stops answering during the run is reported as such (exit 1), saying what
the run had already done when its outcome was settled (e.g. the model version it registered):
Prefect's client gives up within seconds here, not after its default minutes of retries.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any, cast

from shipyard.compiler.plan import DeploymentPlan, Plan
from shipyard.diagnostics import did_you_mean
from shipyard.errors import ServiceUnavailable, ShipyardError
from shipyard.runtime.apply import apply_plan, load_flow
from shipyard.runtime.flow_run import settled_outcome
from shipyard.runtime.plans import applied_plan_of, using
from shipyard.runtime.server import activate

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

WORKER_NOTICE_SECONDS = 30.0
POLL_SECONDS = 1.0
CLIENT_ENV = {
    "PREFECT_CLIENT_MAX_RETRIES": "2",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}
"""Prefect's client retries every call to a lost server 5 times with exponential back-off
(about a minute per call, minutes per run); 2 retries ride out a restart and fail in seconds.
Shipyard's own log lines outside a flow run (a command that starts an A/B test) stay local
instead of warning that they have no flow run. Defaults only: the environment wins. Read once,
when Prefect is imported."""


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
    for key, value in CLIENT_ENV.items():
        os.environ.setdefault(key, value)
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
    started: list[str] = []  # the flow run's id, once it exists
    try:
        state, result, url = _execute(plan, deployment, flow, force, on_worker, started)
    except ShipyardError:
        raise
    except Exception as exc:
        lost = _server_failure(exc)
        if lost is None:
            raise
        flow_run_id = started[0] if started else None
        raise _server_lost(plan, deployment, flow_run_id, lost, on_worker) from exc
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


def _execute(
    plan: Plan,
    deployment: DeploymentPlan,
    flow: Any,
    force: bool,
    on_worker: bool,
    started: list[str],
) -> tuple[State[Any], Any, str]:
    """Apply if needed, create the run, and run it here or wait for a worker: (state, result,
    the run's URL). The run's id goes to `started` as soon as it exists."""
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
    started.append(str(flow_run.id))
    url = plan.prefect.api_url.removesuffix("/api") + f"/runs/flow-run/{flow_run.id}"
    if on_worker:
        print(
            f"{deployment.full_name}: flow run {flow_run.id} waits for a worker on pool "
            f"'{plan.prefect.work_pool}' ({url})"
        )
        return _wait_for_worker(flow_run.id, plan), None, url
    from prefect.flow_engine import run_flow

    _quiet_server_loss()
    with using(plan):
        state = cast("State[Any]", run_flow(flow, flow_run=flow_run, return_type="state"))
    return state, state.result(raise_on_failure=False), url


def _server_failure(exc: BaseException) -> BaseException | None:
    """The failure to reach the Prefect API behind `exc`, if that is what it is."""
    import httpx
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    seen: BaseException | None = exc
    for _ in range(20):  # a bounded walk down the chain of causes
        if seen is None:
            return None
        if isinstance(
            seen, httpx.TransportError | ConnectionError | ConnectionClosed | InvalidHandshake
        ) or (isinstance(seen, httpx.HTTPStatusError) and seen.response.status_code >= 500):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class _ServerLossWithoutTraceback(logging.Filter):
    """Prefect logs every call that finds its server gone with a traceback (the engine, its
    event and log workers); `shipyard run` says once, at the end, that the server is gone."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] and _server_failure(record.exc_info[1]):
            record.exc_info = None
            record.exc_text = None
        return True


def _quiet_server_loss() -> None:
    for handler in logging.getLogger().handlers:  # Prefect's console handler is the root's
        if not any(isinstance(f, _ServerLossWithoutTraceback) for f in handler.filters):
            handler.addFilter(_ServerLossWithoutTraceback())


def _server_lost(
    plan: Plan,
    deployment: DeploymentPlan,
    flow_run_id: str | None,
    lost: BaseException,
    on_worker: bool,
) -> ShipyardError:
    """What to tell when the Prefect server went away mid-run: what the run had settled, if
    anything, and that the server is down."""
    server = f"the Prefect server at {plan.prefect.api_url} is down ({type(lost).__name__})"
    start = (
        "start it again (`shipyard server start`)" if plan.prefect.local else "once it is up again"
    )
    outcome = settled_outcome(flow_run_id) if flow_run_id else None
    if outcome is not None:
        return ServiceUnavailable(
            f"{outcome}, but {server}: flow run {flow_run_id} could not record its end",
            hint="the registration stands, and a rerun with the same inputs is skipped; "
            f"{start}: the next run of {deployment.step} marks this flow run crashed",
            resource=deployment.step,
        )
    if flow_run_id is None:
        what = f"before a run of {deployment.full_name} was created"
    elif on_worker:
        what = f"while waiting for flow run {flow_run_id} (a worker may still run it)"
    else:
        what = f"{deployment.full_name} (flow run {flow_run_id}) did not finish"
    return ServiceUnavailable(
        f"{server}: {what}",
        hint=f"{start}, then run it again: the next run settles what this one left behind",
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
