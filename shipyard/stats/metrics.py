"""The metric vocabulary: every metric Shipyard computes, the tasks it suits and its direction.

The one table that spec validation, holdout evaluation, the promotion gate and the search read.
Pure and imported by `shipyard validate`, so it imports nothing heavy (no numpy).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from shipyard.diagnostics import did_you_mean
from shipyard.errors import ShipyardError

Task = Literal["classification", "regression"]
"""What a model predicts: a class (binary or multiclass, `shipyard.stats.targets`) or a number."""
Needs = Literal["score", "label", "value"]
"""What a metric is computed from: class probabilities, predicted labels or values."""

TASKS: tuple[Task, ...] = ("classification", "regression")


@dataclass(frozen=True)
class MetricDefinition:
    """One metric of the vocabulary.

    Attributes:
        name: The name used in specs, MLflow and reports, e.g. "roc_auc".
        tasks: The tasks it suits.
        higher_is_better: The direction: True for roc_auc, False for losses and errors.
        needs: What it is computed from: "score" (class probabilities, `y_score`: the
            positive class's of a binary target, every class's of a multiclass one), "label"
            (predicted labels) or "value" (predicted values of a regression).
        description: One line for docs and messages.
        binary_only: A classification metric about the positive class, which a multiclass
            target does not have (f1: use f1_macro or f1_weighted there).
    """

    name: str
    tasks: tuple[Task, ...]
    higher_is_better: bool
    needs: Needs
    description: str
    binary_only: bool = False


def _classification(
    name: str, higher: bool, needs: Needs, text: str, binary_only: bool = False
) -> MetricDefinition:
    return MetricDefinition(name, ("classification",), higher, needs, text, binary_only)


def _regression(name: str, higher: bool, text: str) -> MetricDefinition:
    return MetricDefinition(name, ("regression",), higher, "value", text)


# the order is the one of hints and docs (docs/errors.md E505): classification, then regression
METRICS: Mapping[str, MetricDefinition] = MappingProxyType(
    {
        m.name: m
        for m in (
            _classification(
                "roc_auc",
                True,
                "score",
                "area under the ROC curve (multiclass: one-vs-rest, the mean over classes)",
            ),
            _classification(
                "pr_auc", True, "score", "average precision (area under PR curve)", True
            ),
            _classification("accuracy", True, "label", "share of rows labelled correctly"),
            _classification(
                "f1", True, "label", "harmonic mean of precision and recall (positive class)", True
            ),
            _classification("f1_macro", True, "label", "f1 of each class, averaged"),
            _classification(
                "f1_weighted", True, "label", "f1 of each class, averaged by its true rows"
            ),
            _classification("precision", True, "label", "positive predictive value", True),
            _classification("recall", True, "label", "true positive rate (sensitivity)", True),
            _classification("log_loss", False, "score", "cross-entropy of the probabilities"),
            _classification(
                "brier", False, "score", "mean squared error of the probabilities", True
            ),
            _regression("rmse", False, "root mean squared error"),
            _regression("mae", False, "mean absolute error"),
            _regression("r2", True, "coefficient of determination (R²)"),
            _regression("mape", False, "mean absolute percentage error"),
        )
    }
)
"""Every metric by name."""

_DEFAULTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "classification": ("roc_auc", "accuracy", "f1", "log_loss"),
        "multiclass": ("roc_auc", "accuracy", "f1_macro", "log_loss"),
        "regression": ("rmse", "mae", "r2"),
    }
)


class UnknownMetricError(ShipyardError, ValueError):
    """A metric name that is not in the vocabulary."""

    def __init__(self, name: str) -> None:
        close = did_you_mean(name, METRICS)
        super().__init__(
            f"unknown metric '{name}'" + (f"; {close}" if close else ""),
            hint=f"known metrics are {', '.join(METRICS)}",
        )
        self.name = name


class UnknownTaskError(ShipyardError, ValueError):
    """A task that no metric suits."""

    def __init__(self, task: str) -> None:
        super().__init__(f"unknown task '{task}'", hint=f"use {' or '.join(map(repr, TASKS))}")
        self.task = task


def lookup_metric(name: str) -> MetricDefinition:
    """The definition of a metric.

    Args:
        name: A metric name, e.g. "roc_auc".

    Returns:
        Its definition.

    Raises:
        UnknownMetricError: (a ValueError) The name is not a metric; the message suggests the
            closest name and the hint lists them all.
    """
    try:
        return METRICS[name]
    except KeyError:
        raise UnknownMetricError(name) from None


def suitable_metrics(task: str) -> tuple[str, ...]:
    """The names of the metrics that suit a task, in table order.

    Raises:
        UnknownTaskError: (a ValueError) The task is not one of `TASKS`.
    """
    _ensure_task(task)
    return tuple(name for name, m in METRICS.items() if task in m.tasks)


def default_metrics(task: str, multiclass: bool = False) -> tuple[str, ...]:
    """The metrics computed on the holdout of a model whose spec declares none.

    Args:
        task: "classification" or "regression".
        multiclass: A classification target with more than two classes (f1_macro for f1).

    Raises:
        UnknownTaskError: (a ValueError) The task is not one of `TASKS`.
    """
    _ensure_task(task)
    return _DEFAULTS["multiclass" if multiclass and task == "classification" else task]


def binary_only_metrics(names: Iterable[str]) -> list[str]:
    """The names among `names` that need a binary target (in order, without repeats)."""
    return [name for name in dict.fromkeys(names) if name in METRICS and METRICS[name].binary_only]


def multiclass_metrics() -> tuple[str, ...]:
    """The classification metrics a multiclass target has, in table order."""
    return tuple(
        name for name, m in METRICS.items() if "classification" in m.tasks and not m.binary_only
    )


def unsuitable_metrics(task: str, names: Iterable[str]) -> list[str]:
    """The names that are not metrics of the task, in the given order and without repeats.

    Pure and cheap, for spec validation: an unknown name never suits.

    Raises:
        UnknownTaskError: (a ValueError) The task is not one of `TASKS`.
    """
    allowed = suitable_metrics(task)
    return [name for name in dict.fromkeys(names) if name not in allowed]


def _ensure_task(task: str) -> None:
    if task not in TASKS:
        raise UnknownTaskError(task)
