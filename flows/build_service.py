"""build-service: build a service's Bento from the registry, then start or hot-reload it."""

from __future__ import annotations

import logging

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from shipyard.compiler import FeatureRepoStep, ServiceStep
from shipyard.compiler.features import REPO_ID
from shipyard.logs import quiet_expected_errors
from shipyard.runtime.flow_run import StepRun, begin, run_name
from shipyard.serving import build as bento
from shipyard.serving.deploy import deploy as deploy_locally

log = logging.getLogger("shipyard.flows.build_service")
quiet_expected_errors()


class BuildServiceResult(BaseModel):
    """The Bento a build-service run made (or reused) and what became of the service."""

    bento: str
    reused: bool
    variants: dict[str, str]
    outcome: str


@task(name="build", cache_policy=NO_CACHE, persist_result=False)
def build(run: StepRun[ServiceStep]) -> bento.BuildResult:
    """The Bento of the registry versions the service serves (reused when nothing changed)."""
    repo = run.plan.steps.get(REPO_ID)
    built = bento.build_service(
        run.step,
        repo if isinstance(repo, FeatureRepoStep) else None,
        run.block("mlflow").tracking_uri,
        say=log.info,
    )
    log.info("%s", built.summary())
    return built


@task(name="deploy", cache_policy=NO_CACHE, persist_result=False)
def deploy(step: ServiceStep, built: bento.BuildResult) -> str:
    """Start the service, or hot-reload it when it already runs."""
    return deploy_locally(step, built, say=log.info)


@flow(name="build-service", flow_run_name=run_name("build-service", "service"), description=__doc__)
def build_service(service: str, start: bool = True) -> BuildServiceResult:
    """Build the Bento (reused when nothing changed); then start or hot-reload the service."""
    run = begin("build-service", ServiceStep, service)
    with run.monitored() as metrics:
        built = build(run)
        metrics.observe("service_bento_reused", float(built.reused), "1 if nothing changed.")
        outcome = deploy(run.step, built) if start else f"built {built.tag}"
        log.info("%s", outcome)
        return BuildServiceResult(
            bento=built.tag,
            reused=built.reused,
            variants={v.name: v.version for v in built.config.variants},
            outcome=outcome,
        )
