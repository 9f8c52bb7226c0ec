"""The champion on the candidate's holdout: what it can be compared on, and its predictions."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from shipyard.compiler import TrainModelStep
from shipyard.errors import ShipyardError
from shipyard.stats.targets import same_label, show
from shipyard.training import estimators
from shipyard.training.gate import ChampionScores
from shipyard.training.holdout import TAG, Holdout, comparable_rows
from shipyard.training.split import Split

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

REVIEW = "promote explicitly with `shipyard models promote` after review"


def champion_scores(
    step: TrainModelStep, split: Split, version: ModelVersion, model: Any
) -> ChampionScores:
    """The champion's predictions on the candidate's holdout rows that it did not train on
    either (by the holdout rule recorded on its version), with how many those are.

    Raises:
        ShipyardError: The champion needs columns the data no longer has, or predicts classes
            the candidate's target does not have (a changed target): it cannot be compared.
    """
    tags = version.tags or {}
    features = json.loads(tags.get("shipyard.features", "null") or "null") or step.features
    rows = split.test_rows if split.test_rows is not None else split.x_test
    missing = [f for f in features if f not in rows.columns]
    if missing:
        raise ShipyardError(
            f"champion v{version.version} needs columns {', '.join(missing)} that the "
            "data no longer has, so it cannot be compared on the same holdout",
            hint=REVIEW,
            resource=step.id,
        )
    _ensure_same_classes(step, split, version, model)
    assert split.holdout is not None
    mask, basis = comparable_rows(Holdout.from_tag(tags.get(TAG)), split.holdout, rows)
    prediction, score = estimators.predict(step, model, rows[mask][features], split.target)
    return ChampionScores(str(version.version), mask, prediction, score, basis)


def _ensure_same_classes(
    step: TrainModelStep, split: Split, version: ModelVersion, model: Any
) -> None:
    """A champion may lack a class that is new in the data, never predict one the target
    does not have (its target changed: its labels and scores mean something else)."""
    target = split.target
    known = getattr(model, "classes_", None)
    if target is None or target.classes is None or known is None:
        return
    labels = [c.item() if hasattr(c, "item") else c for c in known]
    foreign = [c for c in labels if not any(same_label(c, t) for t in target.classes)]
    if foreign:
        raise ShipyardError(
            f"champion v{version.version} predicts classes {', '.join(map(show, labels))}, "
            f"and target '{step.target}' now has {', '.join(map(show, target.classes))}, so "
            "they cannot be compared on the same holdout",
            hint=REVIEW,
            resource=step.id,
        )
