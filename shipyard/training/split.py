"""Train/holdout splits: by event time when the dataset has one, else seeded and stratified."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shipyard.compiler import TrainModelStep
from shipyard.errors import ShipyardError
from shipyard.stats.targets import ClassificationTarget
from shipyard.training.holdout import Holdout, identity_columns, split_by_hash, time_rule
from shipyard.training.targets import normalise_labels, target_of

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Split:
    """Features and labels for training and for the holdout the gate judges on."""

    x_train: pd.DataFrame
    y_train: pd.Series
    x_test: pd.DataFrame
    y_test: pd.Series
    description: str
    test_rows: pd.DataFrame | None = None
    """Every column of the holdout rows (a champion may use other features)."""
    target: ClassificationTarget | None = None
    """A classification's classes and positive class, as the data has them."""
    holdout: Holdout | None = None
    """The rule that chose the holdout rows (recorded on the registered version)."""


def prepare_frame(
    frame: pd.DataFrame, step: TrainModelStep
) -> tuple[pd.DataFrame, ClassificationTarget | None]:
    """Keep the rows with a label (the others cannot teach), their labels as the declared
    type; and a classification's target as the data has it (`shipyard.stats.targets`)."""
    missing = [c for c in [*step.features, step.target] if c not in frame.columns]
    if missing:
        raise ShipyardError(
            f"columns {', '.join(missing)} are not in the data of dataset '{step.dataset_name}'",
            hint="the file no longer matches its schema; re-run validate-dataset to see why",
            resource=step.id,
        )
    frame = frame.dropna(subset=[step.target])
    if step.task != "classification":
        return frame, None
    frame = frame.assign(**{step.target: normalise_labels(frame[step.target], step)})
    return frame, target_of(step, frame[step.target])


def split_frame(frame: pd.DataFrame, step: TrainModelStep) -> Split:
    """Cut the holdout: by time the newest rows (so the gate sees the future), otherwise the
    rows whose stable hash falls below `test_size` (`shipyard.training.holdout`), so that a
    row stays on its side whatever other rows are added or removed."""
    frame, target = prepare_frame(frame, step)
    if len(frame) < 10:
        raise ShipyardError(
            f"only {len(frame)} labelled rows; too few to train and hold out",
            resource=step.id,
        )
    if step.split_by == "time" and step.timestamp:
        ordered = frame.sort_values(step.timestamp, kind="stable")
        cut = round(len(ordered) * (1 - step.test_size))
        train, test = ordered.iloc[:cut], ordered.iloc[cut:]
        boundary = ordered[step.timestamp].iloc[cut]
        rule = time_rule(train[step.timestamp], step.timestamp, step.test_size)
        description = f"time split at {boundary} ({len(train)} train / {len(test)} holdout rows)"
    else:
        columns = identity_columns(frame, step.key, step.features, step.target)
        labels = frame[step.target] if step.task == "classification" else None
        held, rule = split_by_hash(frame, columns, step.test_size, step.seed, labels)
        train, test = frame[~held], frame[held]
        description = (
            f"hash split on {', '.join(columns)}, seed {step.seed} "
            f"({len(train)} train / {len(test)} holdout)"
        )
    return Split(
        x_train=train[step.features],
        y_train=train[step.target],
        x_test=test[step.features],
        y_test=test[step.target],
        description=description,
        test_rows=test,
        target=target,
        holdout=rule,
    )


def validation_split(split: Split, step: TrainModelStep) -> Split:
    """A validation part carved from the training rows, for ranking search trials."""
    n = len(split.x_train)
    cut = round(n * (1 - step.test_size))
    if step.split_by == "time":
        # the training rows are already in time order
        return Split(
            split.x_train.iloc[:cut],
            split.y_train.iloc[:cut],
            split.x_train.iloc[cut:],
            split.y_train.iloc[cut:],
            f"trials: {cut} fit / {n - cut} validation rows (time order)",
            target=split.target,
        )
    from sklearn.model_selection import train_test_split

    stratify = split.y_train if step.task == "classification" else None
    x_fit, x_val, y_fit, y_val = train_test_split(
        split.x_train,
        split.y_train,
        test_size=step.test_size,
        random_state=step.seed,
        stratify=stratify,
    )
    return Split(
        x_fit,
        y_fit,
        x_val,
        y_val,
        f"trials: {len(x_fit)} fit / {len(x_val)} validation",
        target=split.target,
    )
