"""Training sets from the feature store: point-in-time-correct historical retrieval."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from shipyard.compiler import FeatureRepoStep, TrainModelStep
from shipyard.compiler.features import STATIC_EVENT_TIME
from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    import pandas as pd


log = logging.getLogger("shipyard.features.training")


def training_frame(
    step: TrainModelStep, repo: FeatureRepoStep, labels: pd.DataFrame
) -> pd.DataFrame:
    """The label rows (entity keys, event time, target) joined with the service's features as
    they were at each row's event time; features newer than a row never leak into it.

    Static views' features hold at any time; when every view of the service is static, the
    label rows need no event time (they are joined as of the static views' one event time).
    """
    import pandas as pd

    from shipyard.features.repo import applied_store
    from shipyard.features.sources import STATIC_EVENT_AT

    assert step.feature_service is not None
    service = repo.service(step.feature_service)
    views = [v for v in repo.views if any(r.startswith(f"{v.name}:") for r in service.references)]
    keys = sorted({v.join_key for v in views})
    timestamp = step.timestamp
    if timestamp is None and not all(v.static for v in views):
        raise ShipyardError(
            "the label dataset has no timestamp for point-in-time joins",
            hint=f"declare `timestamp:` on dataset '{step.dataset_name}'",
            resource=step.id,
        )
    wanted = [*keys, *([timestamp] if timestamp else []), step.target]
    missing = [c for c in wanted if c not in labels.columns]
    if missing:
        raise ShipyardError(
            f"the label data lacks {', '.join(missing)} needed to join '{service.name}'",
            hint="the file no longer matches its schema; re-run validate-dataset",
            resource=step.id,
        )
    store = applied_store(repo, views=[v.name for v in views])
    if timestamp is None:
        # every label row is joined on its keys alone: one entity row per key, at the epoch
        entity_df = labels[keys].drop_duplicates().copy()
        entity_df[STATIC_EVENT_TIME] = pd.Timestamp(STATIC_EVENT_AT)
        on = keys
    else:
        entity_df = labels[wanted].drop_duplicates(subset=[*keys, timestamp]).copy()
        on = [*keys, timestamp]
    try:
        joined = store.get_historical_features(
            entity_df=entity_df, features=store.get_feature_service(service.name)
        ).to_df()
    except Exception as exc:  # Feast raises many types for bad sources; name the service
        raise ShipyardError(
            f"building the training set from feature service '{service.name}' failed: {exc}",
            hint="check the views' source files (`shipyard features plan`)",
            resource=step.id,
        ) from exc
    # Feast's file store drops label rows that have no feature row yet; keep them (as missing
    # features) so the training set has exactly the label rows, as a left join should.
    columns = [c for c in service.features if c in joined.columns]
    if timestamp is None:
        result = labels[wanted].merge(joined[[*on, *columns]], on=on, how="left")
    else:
        for frame in (entity_df, joined):
            frame[timestamp] = pd.to_datetime(frame[timestamp], utc=True).astype(
                "datetime64[ns, UTC]"
            )
        result = entity_df.merge(joined[[*on, *columns]], on=on, how="left")
        result = result.sort_values(timestamp, kind="stable")
    log.info(
        "%s: training set from feature service %s: %d rows (%d without features yet), %d features",
        step.id,
        service.name,
        len(result),
        int(result[columns].isna().all(axis=1).sum()) if columns else len(result),
        len(columns),
    )
    return result.reset_index(drop=True)
