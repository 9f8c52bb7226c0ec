"""materialize-features: load a feature view's new rows into the online store (incremental)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from shipyard.compiler import FeatureRepoStep, MaterializeStep
from shipyard.features.materialize import materialize_view
from shipyard.logs import quiet_expected_errors
from shipyard.runtime.flow_run import begin, run_name

log = logging.getLogger("shipyard.flows.materialize_features")
quiet_expected_errors()


class MaterializeResult(BaseModel):
    """How far a view was materialized and how fresh its newest row is."""

    view: str
    end: str
    rows: int
    newest_event: str | None
    freshness_seconds: float


@task(name="materialize", cache_policy=NO_CACHE, persist_result=False)
def materialize(repo: FeatureRepoStep, view: str) -> MaterializeResult:
    """Apply the feature repository, then materialize this view up to now."""
    return MaterializeResult(**materialize_view(repo, view, datetime.now(UTC)))


@flow(
    name="materialize-features",
    flow_run_name=run_name("materialize-features", "view"),
    description=__doc__,
)
def materialize_features(view: str) -> MaterializeResult:
    """Apply the feature repository, then materialize this view up to now."""
    run = begin("materialize-features", MaterializeStep, view)
    repo = run.plan.step(run.step.repo, FeatureRepoStep)
    with run.monitored() as metrics:
        result = materialize(repo, view)
        metrics.observe(
            "feature_freshness_seconds",
            result.freshness_seconds,
            "Age of the newest materialized feature row.",
        )
        metrics.observe(
            "feature_rows_materialized",
            result.rows,
            "Rows in the source up to the materialization time.",
        )
        log.info(
            "%s: materialized up to %s; newest row is %.0f s old",
            run.step.id,
            result.end,
            result.freshness_seconds,
        )
        return result
