"""Prometheus metrics and JSON logs of a running service.

The metrics live in BentoML's multiprocess directory, so `/metrics` aggregates every worker.
prometheus_client must be imported only after the worker has set PROMETHEUS_MULTIPROC_DIR,
so nothing here imports it at module level; `ServiceMetrics` is created once per process.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

from shipyard.logs import JsonFormatter

log = logging.getLogger("shipyard.serving")
request_log = logging.getLogger("shipyard.serving.requests")

LATENCY_BUCKETS = (
    0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.01, 0.012, 0.015, 0.02, 0.025, 0.03,
    0.04, 0.05, 0.065, 0.08, 0.1, 0.13, 0.16, 0.2, 0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Bounds about 1.25x apart from 1 ms to 250 ms: a rollout compares a canary's latency with
stable's through these buckets, and a 30% slowdown must not vanish inside one of them."""
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
PROBABILITY_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))
INPUT_SAMPLE_ROWS = 2
"""Input and prediction histograms observe at most this many rows per request: every
single-row request is seen, and a batch costs no more than two rows."""
FLUSH_SECONDS = 1.0


class BufferedHistogram:
    """A labelled Histogram child whose observations are counted in memory first.

    In BentoML's multiprocess mode every `observe()` writes two memory-mapped values under a
    lock (about 3 µs); the input histograms take 30 and more per request. Here an observation
    is a list append, and `flush()` adds each bucket's count and the sum in one write each:
    the same exposition, up to FLUSH_SECONDS late. NaN is dropped (prometheus_client would
    count it in no bucket and turn the sum into NaN for good).
    """

    def __init__(self, child: Any) -> None:
        self.child = child
        self.pending: list[float] = []
        bounds = getattr(child, "_upper_bounds", None)
        # prometheus_client's own fields; without them (another version), observe one by one
        self.bounds = list(bounds) if bounds and hasattr(child, "_buckets") else None

    def observe(self, value: float) -> None:
        self.pending.append(value)

    def flush(self) -> None:
        if not self.pending:
            return
        values, self.pending = self.pending, []
        values = [v for v in values if not math.isnan(v)]
        if self.bounds is None:
            for value in values:
                self.child.observe(value)
            return
        for index, count in Counter(bisect_left(self.bounds, v) for v in values).items():
            self.child._buckets[index].inc(count)
        self.child._sum.inc(math.fsum(values))


INPUT_METRIC = "shipyard_service_input"


class ServiceMetrics:
    """The service's own metrics, labelled like the flows' (`project`, `resource`, e.g.
    `resource="service.churn-api"`) and by variant and model version where they apply.

    Every metric is created unregistered (`registry=None`): under `bentoml serve` the values
    live in prometheus_client's multiprocess files, and `/metrics` reads those, merging
    every worker's by metric name. That merge is what gives the input histogram one family
    with a bucket set per feature: prometheus_client fixes buckets per Histogram object, so
    each feature has its own object, all named `shipyard_service_input`.
    """

    def __init__(
        self, project: str, resource: str, input_buckets: Mapping[str, Sequence[float]]
    ) -> None:
        from prometheus_client import Counter, Histogram

        self.labels = (project, resource)
        base = ["project", "resource"]
        self.requests = Counter(
            "shipyard_service_requests",
            "Requests by endpoint, status, variant and model version.",
            [*base, "endpoint", "status", "variant", "model_version"],
            registry=None,
        )
        self.latency = Histogram(
            "shipyard_service_request_duration_seconds",
            "Time from request to response start.",
            [*base, "endpoint", "variant", "model_version"],
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        self.batch_size = Histogram(
            "shipyard_service_batch_size",
            "Rows per model call (after adaptive batching).",
            [*base, "variant", "model_version"],
            buckets=BATCH_BUCKETS,
            registry=None,
        )
        self.predictions = Histogram(
            "shipyard_service_prediction",
            "Predicted value (the positive-class probability for classifiers).",
            [*base, "variant", "model_version"],
            buckets=PROBABILITY_BUCKETS,
            registry=None,
        )
        self.feedback = Counter(
            "shipyard_service_feedback", "Feedback records received.", base, registry=None
        )
        self.failed_expectations = Counter(
            "shipyard_service_failed_expectations",
            "Request rows failing an expectation of the training data, by column, rule and "
            "what the service did (flagged or rejected).",
            [*base, "column", "rule", "action"],
            registry=None,
        )
        self.missing_features = Counter(
            "shipyard_service_missing_features",
            "Request rows scored without a feature the online store did not have for them.",
            [*base, "feature"],
            registry=None,
        )
        self.inputs = {
            feature: Histogram(
                INPUT_METRIC,
                "Values of the numeric model inputs, by feature and variant "
                "(buckets: the feature's training-data deciles).",
                [*base, "feature", "variant"],
                buckets=tuple(buckets),
                registry=None,
            )
            for feature, buckets in input_buckets.items()
        }
        self._children: dict[tuple[str, ...], Any] = {}
        self._buffered: dict[tuple[str, str], BufferedHistogram] = {}
        self._inputs: dict[str, list[tuple[str, BufferedHistogram]]] = {}
        self._flush_at = time.monotonic() + FLUSH_SECONDS

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (str(id(metric)), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*self.labels, *labels)
        return child

    def request(
        self, endpoint: str, status: int, variant: str, version: str, seconds: float
    ) -> None:
        self._child(self.requests, endpoint, str(status), variant, version).inc()
        self._child(self.latency, endpoint, variant, version).observe(seconds)

    def batch(self, variant: str, version: str, rows: int) -> None:
        self._child(self.batch_size, variant, version).observe(rows)

    def feedback_received(self) -> None:
        self._child(self.feedback).inc()

    def failed(self, column: str, rule: str, action: str, rows: int) -> None:
        self._child(self.failed_expectations, column, rule, action).inc(rows)

    def missing(self, feature: str, rows: int) -> None:
        self._child(self.missing_features, feature).inc(rows)

    def predicted(self, variant: str, version: str, values: Sequence[float]) -> None:
        buffered = self._buffered.get((variant, version))
        if buffered is None:
            child = self._child(self.predictions, variant, version)
            buffered = self._buffered[(variant, version)] = BufferedHistogram(child)
        for value in values[:INPUT_SAMPLE_ROWS]:
            buffered.observe(value)

    def _variant_inputs(self, variant: str) -> list[tuple[str, BufferedHistogram]]:
        histograms = self._inputs.get(variant)
        if histograms is None:
            histograms = self._inputs[variant] = [
                (feature, BufferedHistogram(histogram.labels(*self.labels, feature, variant)))
                for feature, histogram in self.inputs.items()
            ]
        return histograms

    def observed_inputs(
        self, rows: Sequence[Mapping[str, Any]], groups: Mapping[str, Sequence[int]]
    ) -> None:
        """Count the numeric inputs of a request's first INPUT_SAMPLE_ROWS rows, each under
        the variant that answered it (`groups`: variant -> its rows' positions, ascending)."""
        for variant, indexes in groups.items():
            sampled = indexes[: bisect_left(indexes, INPUT_SAMPLE_ROWS)]
            if not sampled:
                continue
            histograms = self._variant_inputs(variant)
            for index in sampled:
                row = rows[index]
                for feature, histogram in histograms:
                    value = row.get(feature)
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        histogram.observe(value)
        if time.monotonic() >= self._flush_at:
            self.flush()

    def flush(self) -> None:
        """Write the buffered observations (every second under load, and before /metrics)."""
        self._flush_at = time.monotonic() + FLUSH_SECONDS
        for histograms in self._inputs.values():
            for _, histogram in histograms:
                histogram.flush()
        for buffered in self._buffered.values():
            buffered.flush()


@cache
def service_metrics(project: str, resource: str, buckets_json: str) -> ServiceMetrics:
    """One ServiceMetrics per process: its label children and buffers are shared by every
    bundle the worker loads."""
    return ServiceMetrics(project, resource, json.loads(buckets_json))


class ValidationErrorFilter(logging.Filter):
    """BentoML logs a 400's whole traceback, with the request's field values in it. Keep one
    line naming the fields and problems, never the values (masked fields included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from pydantic import ValidationError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ValidationError):
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                for e in exc.errors(include_input=False, include_context=False)
            )
            path = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg = f"invalid request to {path}: {problems}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_configured = False


def _json_bentoml_configs() -> Callable[[], None] | None:
    """Point BentoML's own logging configurations at Shipyard's JSON formatter.

    `bentoml serve` applies its CLI configuration, then its server configuration, and every
    worker applies the server one at start; edited here, each lands on one JSON handler (on
    the root logger, so every line is written once) and keeps BentoML's levels. BentoML's
    trace filter is dropped: it only adds fields for its text format. Returns BentoML's
    function that applies the server configuration; None if BentoML's layout changed (its
    lines then stay text).
    """
    try:
        from bentoml._internal import log as bentoml_log

        server, cli = bentoml_log.SERVER_LOGGING_CONFIG, bentoml_log.CLI_LOGGING_CONFIG
        formatter = {"()": JsonFormatter}
        server["disable_existing_loggers"] = cli["disable_existing_loggers"] = False
        server["formatters"] = {"traced": formatter}
        server["filters"] = {}
        server["handlers"]["tracehandler"] = {
            "class": "logging.StreamHandler",
            "formatter": "traced",
            "stream": "ext://sys.stderr",
        }
        for logger in server["loggers"].values():
            logger.update(handlers=[], propagate=True)
        server["loggers"]["shipyard"] = {"level": logging.INFO, "propagate": True}
        server["root"]["handlers"] = ["tracehandler"]
        cli["formatters"]["simple"] = formatter
        cli["root"]["handlers"] = ["defaulthandler"]
        apply: Callable[[], None] = bentoml_log.configure_server_logging
    except (ImportError, AttributeError, KeyError, TypeError):
        return None
    return apply


def configure_logging() -> None:
    """Every line a service process logs is one JSON object on stderr: Shipyard's, BentoML's,
    uvicorn's and warnings (`logging.captureWarnings`); while a request is answered, each
    carries its request id. Runs in the `bentoml serve` process (`shipyard.serving.launch`)
    and in each worker (`bentos/service.py`); idempotent."""
    global _configured
    bentoml_http = logging.getLogger("bentoml._internal.server.http_app")
    if not any(isinstance(f, ValidationErrorFilter) for f in bentoml_http.filters):
        bentoml_http.addFilter(ValidationErrorFilter())
    if _configured:
        return
    _configured = True
    logging.captureWarnings(True)
    apply = _json_bentoml_configs()
    if apply is not None:
        apply()
        return
    logger = logging.getLogger("shipyard")  # BentoML moved: at least Shipyard's lines are JSON
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
