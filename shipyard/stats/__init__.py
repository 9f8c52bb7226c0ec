"""Pure statistics: the metric vocabulary and paired comparisons of two models."""

from shipyard.stats.metrics import (
    METRICS,
    TASKS,
    MetricDefinition,
    UnknownMetricError,
    UnknownTaskError,
    default_metrics,
    lookup_metric,
    suitable_metrics,
    unsuitable_metrics,
)

__all__ = [
    "METRICS",
    "TASKS",
    "MetricDefinition",
    "UnknownMetricError",
    "UnknownTaskError",
    "default_metrics",
    "lookup_metric",
    "suitable_metrics",
    "unsuitable_metrics",
]
