"""Train/holdout splits: by event time when the dataset has one, else seeded and stratified."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shipyard.compiler import TrainModelStep
from shipyard.errors import ShipyardError

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


def prepare_frame(frame: pd.DataFrame, step: TrainModelStep) -> pd.DataFrame:
    """Keep the model's columns; rows with a missing label are dropped (they cannot teach)."""
    missing = [c for c in [*step.features, step.target] if c not in frame.columns]
    if missing:
        raise ShipyardError(
            f"columns {', '.join(missing)} are not in the data of dataset '{step.dataset_name}'",
            hint="the file no longer matches its schema; re-run validate-dataset to see why",
            resource=step.id,
        )
    frame = frame.dropna(subset=[step.target])
    if step.task == "classification":
        classes = frame[step.target].nunique()
        if classes < 2:
            raise ShipyardError(
                f"target '{step.target}' has {classes} class in {len(frame)} rows; "
                "a classifier needs at least two",
                hint="check the data (or the target column named in pipelines.yaml)",
                resource=step.id,
            )
        if classes > 2:
            raise ShipyardError(
                f"target '{step.target}' has {classes} classes; only binary classification "
                "is supported",
                hint="derive a binary label column and use it as `target`",
                resource=step.id,
            )
    return frame


def split_frame(frame: pd.DataFrame, step: TrainModelStep) -> Split:
    """Cut the holdout; time-based keeps the newest rows out, so the gate sees the future."""
    from sklearn.model_selection import train_test_split

    frame = prepare_frame(frame, step)
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
        description = f"time split at {boundary} ({len(train)} train / {len(test)} holdout rows)"
    else:
        stratify = frame[step.target] if step.task == "classification" else None
        train, test = train_test_split(
            frame, test_size=step.test_size, random_state=step.seed, stratify=stratify
        )
        description = f"random split, seed {step.seed} ({len(train)} train / {len(test)} holdout)"
    return Split(
        x_train=train[step.features],
        y_train=train[step.target],
        x_test=test[step.features],
        y_test=test[step.target],
        description=description,
        test_rows=test,
    )


def validation_split(split: Split, step: TrainModelStep) -> Split:
    """A validation part carved from the training rows, for ranking search trials."""
    inner = Split(split.x_train, split.y_train, split.x_train, split.y_train, "")
    n = len(inner.x_train)
    cut = round(n * (1 - step.test_size))
    if step.split_by == "time":
        # the training rows are already in time order
        return Split(
            split.x_train.iloc[:cut],
            split.y_train.iloc[:cut],
            split.x_train.iloc[cut:],
            split.y_train.iloc[cut:],
            f"trials: {cut} fit / {n - cut} validation rows (time order)",
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
    return Split(x_fit, y_fit, x_val, y_val, f"trials: {len(x_fit)} fit / {len(x_val)} validation")
