"""Incremental materialization of a feature view, and its freshness."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shipyard.compiler import FeatureRepoStep
from shipyard.errors import ShipyardError


def materialize_view(repo: FeatureRepoStep, view: str, end: datetime) -> dict[str, Any]:
    """Materialize new rows of the view up to `end`; freshness = end - newest event time."""
    import pandas as pd

    from shipyard.features.repo import applied_store

    plan = repo.view(view)
    store = applied_store(repo)
    times = pd.to_datetime(
        pd.read_parquet(plan.source_path, columns=[plan.timestamp])[plan.timestamp], utc=True
    )
    feature_view = store.get_feature_view(view)
    try:
        if not feature_view.materialization_intervals and len(times):
            # first run: backfill the whole history, not just the last TTL (Feast's default)
            start = times.min().to_pydatetime() - timedelta(seconds=1)
            store.materialize(start_date=start, end_date=end, feature_views=[view])
        else:
            store.materialize_incremental(end_date=end, feature_views=[view])
    except Exception as exc:  # Feast raises many types (Redis down, bad source)
        raise ShipyardError(
            f"materializing feature view '{view}' failed: {exc}",
            hint="check the online store is reachable and the source file is readable",
            resource=f"feature_view.{view}",
        ) from exc
    newest = times[times <= pd.Timestamp(end)].max()
    freshness = (pd.Timestamp(end) - newest).total_seconds() if pd.notna(newest) else float("inf")
    return {
        "view": view,
        "end": end.isoformat(),
        "rows": int((times <= pd.Timestamp(end)).sum()),
        "newest_event": None if pd.isna(newest) else newest.isoformat(),
        "freshness_seconds": freshness,
    }
