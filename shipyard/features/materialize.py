"""Incremental materialization of a feature view, and its freshness."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shipyard.compiler import FeatureRepoStep
from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.compiler.features import FeatureViewPlan


def materialize_view(repo: FeatureRepoStep, view: str, end: datetime) -> dict[str, Any]:
    """Materialize new rows of the view up to `end`; freshness = end - newest event time.

    A static view is loaded whole on every run: its rows share one event time, so an
    incremental run would find nothing new after the first, although the source changed.
    Its online rows are then as fresh as the source: freshness 0.
    """
    import pandas as pd

    from shipyard.features.repo import applied_store
    from shipyard.features.sources import STATIC_EVENT_AT

    plan = repo.view(view)
    store = applied_store(repo, views=[view])  # writes the view's parquet copy, if it reads one
    times = _event_times(plan)
    feature_view = store.get_feature_view(view)
    try:
        if plan.static:
            start = STATIC_EVENT_AT - timedelta(seconds=1)
            store.materialize(start_date=start, end_date=end, feature_views=[view])
        elif not feature_view.materialization_intervals and len(times):
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
    if plan.static:
        return {
            "view": view,
            "end": end.isoformat(),
            "rows": len(times),
            "newest_event": None,
            "freshness_seconds": 0.0,
        }
    newest = times[times <= pd.Timestamp(end)].max()
    freshness = (pd.Timestamp(end) - newest).total_seconds() if pd.notna(newest) else float("inf")
    return {
        "view": view,
        "end": end.isoformat(),
        "rows": int((times <= pd.Timestamp(end)).sum()),
        "newest_event": None if pd.isna(newest) else newest.isoformat(),
        "freshness_seconds": freshness,
    }


def _event_times(plan: FeatureViewPlan) -> pd.Series:
    """The event times of the file Feast reads for the view, in UTC."""
    import pandas as pd

    try:
        frame = pd.read_parquet(plan.offline_path, columns=[plan.timestamp])
    except (OSError, ValueError) as exc:  # pyarrow's errors are ValueErrors
        raise ShipyardError(
            f"cannot read the event times of feature view '{plan.name}' ({plan.timestamp} in "
            f"{plan.offline_path}): {exc}",
            hint=f"`shipyard run validate-dataset {plan.source_dataset}` checks the file "
            "against its schema",
            resource=f"feature_view.{plan.name}",
        ) from exc
    return pd.to_datetime(frame[plan.timestamp], utc=True)
