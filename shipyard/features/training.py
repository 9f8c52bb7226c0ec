"""Training sets from the feature store: point-in-time-correct historical retrieval."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from shipyard.compiler import FeatureRepoStep, TrainModelStep
from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("shipyard.features.training")


def training_frame(
    step: TrainModelStep, repo: FeatureRepoStep, labels: pd.DataFrame
) -> pd.DataFrame:
    """The label rows (entity keys, event time, target) joined with the service's features as
    they were at each row's event time; features newer than a row never leak into it."""
    from shipyard.features.repo import applied_store

    assert step.feature_service is not None
    service = repo.service(step.feature_service)
    keys = sorted(
        {
            v.join_key
            for v in repo.views
            if any(r.startswith(f"{v.name}:") for r in service.references)
        }
    )
    timestamp = step.timestamp
    if timestamp is None:
        raise ShipyardError(
            "the label dataset has no timestamp for point-in-time joins", resource=step.id
        )
    wanted = [*keys, timestamp, step.target]
    missing = [c for c in wanted if c not in labels.columns]
    if missing:
        raise ShipyardError(
            f"the label data lacks {', '.join(missing)} needed to join '{service.name}'",
            hint="the file no longer matches its schema; re-run validate-dataset",
            resource=step.id,
        )
    store = applied_store(repo)
    entity_df = labels[wanted].drop_duplicates(subset=[*keys, timestamp]).copy()
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
    import pandas as pd

    on = [*keys, timestamp]
    for frame in (entity_df, joined):
        frame[timestamp] = pd.to_datetime(frame[timestamp], utc=True).astype("datetime64[ns, UTC]")
    columns = [c for c in service.features if c in joined.columns]
    result = entity_df.merge(joined[[*on, *columns]], on=on, how="left")
    log.info(
        "%s: training set from feature service %s: %d rows (%d without features yet), %d features",
        step.id,
        service.name,
        len(result),
        len(result) - len(joined),
        len(columns),
    )
    return result.sort_values(timestamp, kind="stable").reset_index(drop=True)
