"""materialize-features: load a feature view's new rows into the online store (incremental)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from prefect import flow

from shipyard.compiler.plan import MaterializeStep
from shipyard.features.materialize import materialize_view
from shipyard.logs import configure_json_logs, current_flow_run_id, quiet_expected_errors
from shipyard.metrics import monitored_run
from shipyard.runtime.connections import metrics_sink
from shipyard.settings import StateLayout

log = logging.getLogger("shipyard.flows.materialize_features")
quiet_expected_errors()


@flow(name="materialize-features", description=__doc__)
def materialize_features(step: MaterializeStep) -> dict[str, Any]:
    """Apply the feature repository, then materialize this view up to now."""
    runtime = step.repo.runtime
    configure_json_logs(StateLayout(runtime.state_dir).logs)
    with monitored_run(
        "materialize-features",
        step.id,
        runtime.project,
        metrics_sink(runtime),
        current_flow_run_id(),
    ) as metrics:
        result = materialize_view(step.repo, step.view, datetime.now(UTC))
        metrics.observe(
            "feature_freshness_seconds",
            result["freshness_seconds"],
            "Age of the newest materialized feature row.",
        )
        metrics.observe(
            "feature_rows_materialized",
            result["rows"],
            "Rows in the source up to the materialization time.",
        )
        log.info(
            "%s: materialized up to %s; newest row is %.0f s old",
            step.id,
            result["end"],
            result["freshness_seconds"],
        )
        return result
