"""build-service: build a service's Bento from the registry, then start or hot-reload it."""

from __future__ import annotations

import logging
from typing import Any

from prefect import flow, task

from shipyard.compiler.plan import ServiceStep
from shipyard.logs import configure_json_logs, current_flow_run_id, quiet_expected_errors
from shipyard.metrics import monitored_run
from shipyard.runtime.connections import load_block, metrics_sink
from shipyard.serving.build import BuildResult, build_service
from shipyard.serving.deploy import deploy
from shipyard.settings import StateLayout

log = logging.getLogger("shipyard.flows.build_service")
quiet_expected_errors()


@task(name="build-bento", retries=0)
def build(step: ServiceStep) -> BuildResult:
    tracking_uri = load_block(step.runtime, "mlflow").tracking_uri
    built = build_service(step, tracking_uri, say=log.info)
    log.info("%s", built.summary())
    return built


@task(name="deploy-local", retries=0)
def deploy_local(step: ServiceStep, built: BuildResult) -> str:
    return deploy(step, built, say=log.info)


@flow(name="build-service", description=__doc__)
def build_service_flow(step: ServiceStep, deploy_service: bool = True) -> dict[str, Any]:
    """Build the Bento (reused when nothing changed); then start or hot-reload the service."""
    runtime = step.runtime
    configure_json_logs(StateLayout(runtime.state_dir).logs)
    with monitored_run(
        "build-service", step.id, runtime.project, metrics_sink(runtime), current_flow_run_id()
    ) as metrics:
        built = build(step)
        metrics.observe("service_bento_reused", float(built.reused), "1 if nothing changed.")
        outcome = deploy_local(step, built) if deploy_service else f"built {built.tag}"
        log.info("%s", outcome)
        return {
            "bento": built.tag,
            "reused": built.reused,
            "variants": {v.name: v.version for v in built.config.variants},
            "outcome": outcome,
        }
