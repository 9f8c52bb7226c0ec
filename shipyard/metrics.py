"""Prometheus metrics for flow runs: pushed to a Pushgateway, or written for a textfile collector.

Batch jobs are not scraped while they run, so each flow run publishes last-run gauges once, at
its end, grouped by flow and resource (the Pushgateway convention for batch jobs). A run
replaces only the gauges it observed: a training skipped because nothing changed leaves the
last training's model gauges as they were.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway, write_to_textfile
from prometheus_client.exposition import basic_auth_handler
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from shipyard.retry import retrying

log = logging.getLogger("shipyard.metrics")
PREFIX = "shipyard"


@dataclass(frozen=True)
class MetricsSink:
    """Where metrics go: a Pushgateway URL, else *.prom files in textfile_dir."""

    textfile_dir: str
    pushgateway_url: str | None = None
    username: str | None = None
    password: str | None = None


@dataclass
class FlowRunMetrics:
    """Gauges of one flow run; `observe` adds flow-specific values (rows, failed rules, ...)."""

    flow: str
    resource: str
    project: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    values: dict[str, float] = field(default_factory=dict)
    _gauges: dict[str, Gauge] = field(default_factory=dict)

    @property
    def labels(self) -> dict[str, str]:
        return {"flow": self.flow, "resource": self.resource, "project": self.project}

    def observe(
        self, name: str, value: float, help: str, labels: Mapping[str, str] | None = None
    ) -> None:
        """Set a gauge `shipyard_<name>` for this run; `labels` add dimensions (a gauge keeps
        the label names of its first observation: feature, variant, ...)."""
        metric = f"{PREFIX}_{name}"
        extra = dict(labels or {})
        if metric not in self._gauges:
            names = [*self.labels, *sorted(extra)]
            self._gauges[metric] = Gauge(metric, help, names, registry=self.registry)
        self._gauges[metric].labels(**self.labels, **extra).set(value)
        self.values[metric] = value


def _file_name(flow: str, resource: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{flow}__{resource}") + ".prom"


def publish(metrics: FlowRunMetrics, sink: MetricsSink) -> str:
    """Push to the gateway or write the textfile; returns where the metrics went."""
    if sink.pushgateway_url:
        from shipyard.secrets import resolve

        password = resolve(sink.password)

        def handler(url: str, method: str, timeout: float | None, headers: Any, data: bytes) -> Any:
            return basic_auth_handler(
                url, method, timeout, headers, data, sink.username or "", password or ""
            )

        retrying(
            lambda: pushadd_to_gateway(
                sink.pushgateway_url or "",
                job=f"{PREFIX}-{metrics.flow}",
                grouping_key={"resource": metrics.resource, "project": metrics.project},
                registry=metrics.registry,
                handler=handler if sink.username else _default_handler(),
                timeout=10,
            ),
            what=f"push metrics to {sink.pushgateway_url}",
        )
        return sink.pushgateway_url
    directory = Path(sink.textfile_dir)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / _file_name(metrics.flow, metrics.resource)
    registry = CollectorRegistry()
    registry.register(metrics.registry)
    registry.register(_Earlier(target, set(metrics.values)))
    write_to_textfile(str(target), registry)  # atomic: temp file + rename
    return str(target)


class _Earlier(Collector):
    """The gauges of the file this run replaces that the run itself did not observe."""

    def __init__(self, path: Path, observed: set[str]) -> None:
        self.path, self.observed = path, observed

    def collect(self) -> Iterator[Metric]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError:
            return
        try:
            for family in text_string_to_metric_families(text):
                if family.name not in self.observed:
                    yield family
        except ValueError:  # a damaged file: start again from this run's gauges
            log.warning("ignoring unreadable metrics file %s", self.path)


def _default_handler() -> Any:
    from prometheus_client.exposition import default_handler

    return default_handler


@contextmanager
def monitored_run(
    flow: str, resource: str, project: str, sink: MetricsSink, flow_run_id: str | None = None
) -> Iterator[FlowRunMetrics]:
    """Time the block; publish duration, outcome and any observed values, even on failure."""
    metrics = FlowRunMetrics(flow, resource, project)
    started = time.time()
    success = False
    try:
        yield metrics
        success = True
    finally:
        metrics.observe(
            "flow_run_duration_seconds", time.time() - started, "Duration of the last flow run."
        )
        metrics.observe(
            "flow_run_success",
            1.0 if success else 0.0,
            "1 if the last flow run completed, 0 if it failed.",
        )
        metrics.observe(
            "flow_run_last_timestamp_seconds", time.time(), "Unix time the last flow run ended."
        )
        try:
            where = publish(metrics, sink)
            log.info(
                "metrics published",
                extra={
                    "flow": flow,
                    "resource": resource,
                    "target": where,
                    "flow_run_id": flow_run_id,
                },
            )
        except Exception as exc:  # metrics must never turn a good run into a failed one
            log.warning(
                "could not publish metrics for %s to %s: %s",
                resource,
                sink.pushgateway_url or sink.textfile_dir,
                exc,
            )
