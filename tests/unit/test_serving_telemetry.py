"""Service metrics: buffered histograms expose exactly what observing one value at a time
would; every metric carries project and resource; the inputs are one histogram family."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from shipyard.serving.telemetry import (
    INPUT_METRIC,
    INPUT_SAMPLE_ROWS,
    BufferedHistogram,
    ServiceMetrics,
)

BUCKETS = (0.0, 1.0, 2.5, 10.0)
VALUES = [-1.0, 0.0, 0.5, 1.0, 1.0000001, 2.5, 7.0, 10.0, 11.0, 1e9, 3.0, 0.25]


def _samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels.get("le", "")): sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    }


def test_buffered_observations_match_one_at_a_time() -> None:
    direct, buffered = CollectorRegistry(), CollectorRegistry()
    one = Histogram("x", "x", ["service"], buckets=BUCKETS, registry=direct).labels("s")
    many = BufferedHistogram(
        Histogram("x", "x", ["service"], buckets=BUCKETS, registry=buffered).labels("s")
    )
    for value in VALUES:
        one.observe(value)
        many.observe(value)
    assert _samples(buffered)[("x_count", "")] == 0  # nothing written before the flush
    many.flush()
    assert _samples(buffered) == _samples(direct)
    many.flush()  # nothing pending: no change
    assert _samples(buffered) == _samples(direct)


def test_nan_is_dropped_instead_of_poisoning_the_sum() -> None:
    registry = CollectorRegistry()
    histogram = BufferedHistogram(
        Histogram("y", "y", buckets=BUCKETS, registry=registry)  # an unlabelled histogram
    )
    for value in (1.0, math.nan, 2.0):
        histogram.observe(value)
    histogram.flush()
    samples = _samples(registry)
    assert samples[("y_count", "")] == 2 and samples[("y_sum", "")] == 3.0


def test_without_prometheus_client_internals_it_observes_one_by_one() -> None:
    seen: list[float] = []

    class Plain:
        def observe(self, value: float) -> None:
            seen.append(value)

    histogram = BufferedHistogram(Plain())
    histogram.observe(1.5)
    histogram.observe(2.5)
    histogram.flush()
    assert seen == [1.5, 2.5]


@pytest.fixture
def multiprocess(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[int], str]:
    """prometheus_client in multiprocess mode, as under `bentoml serve`: `worker(pid)` makes
    later metrics write to that worker's files; the exposition is what /metrics shows."""
    from prometheus_client import values

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    def worker(pid: int) -> str:
        monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue(lambda: pid))
        return str(tmp_path)

    return worker


def _exposition(directory: str) -> str:
    from prometheus_client import generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return generate_latest(registry).decode()


BUCKETS_BY_FEATURE = {"tenure_months": [12.0, 29.85, 60.0], "monthly_charges": [20.0, 80.0]}


def test_inputs_are_one_family_with_each_features_buckets_over_workers(
    multiprocess: Callable[[int], str],
) -> None:
    multiprocess(1)
    first = ServiceMetrics("churn-demo", "service.churn-api", BUCKETS_BY_FEATURE)
    rows = [{"tenure_months": 12, "monthly_charges": 50.5}, {"tenure_months": 40}, {"x": 1}]
    first.observed_inputs(rows, {"stable": [0], "challenger": [1, 2]})
    first.flush()
    directory = multiprocess(2)
    second = ServiceMetrics("churn-demo", "service.churn-api", BUCKETS_BY_FEATURE)
    second.observed_inputs([{"tenure_months": 100, "monthly_charges": True}], {"stable": [0]})
    second.flush()

    text = _exposition(directory)
    assert text.count("# HELP shipyard_service_input ") == 1
    assert text.count("# TYPE shipyard_service_input histogram") == 1
    [family] = [f for f in text_string_to_metric_families(text) if f.name == INPUT_METRIC]
    assert all(
        (s.labels["project"], s.labels["resource"]) == ("churn-demo", "service.churn-api")
        for s in family.samples
    )

    def series(suffix: str, feature: str, variant: str) -> dict[str, float]:
        """le (or "" for _sum and _count) -> value, of one feature and variant."""
        return {
            s.labels.get("le", ""): s.value
            for s in family.samples
            if s.name == INPUT_METRIC + suffix
            and (s.labels["feature"], s.labels["variant"]) == (feature, variant)
        }

    both_workers = {"12.0": 1.0, "29.85": 1.0, "60.0": 1.0, "+Inf": 2.0}
    assert series("_bucket", "tenure_months", "stable") == both_workers
    assert series("_sum", "tenure_months", "stable") == {"": 112.0}
    # the second worker's monthly_charges is True, which is not a number: not counted
    assert series("_bucket", "monthly_charges", "stable") == {"20.0": 0.0, "80.0": 1.0, "+Inf": 1.0}
    # the request's first rows are sampled: row 1 (challenger) is, row 2 is not
    assert series("_count", "tenure_months", "challenger") == {"": 1.0}


def test_every_service_metric_carries_project_and_resource(
    multiprocess: Callable[[int], str],
) -> None:
    directory = multiprocess(1)
    metrics = ServiceMetrics("churn-demo", "service.churn-api", {"tenure_months": [1.0]})
    metrics.request("/predict", 200, "stable", "2", 0.01)
    metrics.batch("stable", "2", 3)
    metrics.predicted("stable", "2", [0.25, 0.75, 0.5])
    metrics.feedback_received()
    metrics.observed_inputs([{"tenure_months": 3}], {"stable": [0]})
    metrics.flush()
    families = list(text_string_to_metric_families(_exposition(directory)))
    assert {f.name for f in families} == {
        "shipyard_service_requests",
        "shipyard_service_request_duration_seconds",
        "shipyard_service_batch_size",
        "shipyard_service_prediction",
        "shipyard_service_feedback",
        "shipyard_service_input",
    }
    for family in families:
        for sample in family.samples:
            assert sample.labels["project"] == "churn-demo", sample
            assert sample.labels["resource"] == "service.churn-api", sample
            assert "service" not in sample.labels
    [requests] = [f for f in families if f.name == "shipyard_service_requests"]
    assert requests.samples[0].labels == {
        "project": "churn-demo",
        "resource": "service.churn-api",
        "endpoint": "/predict",
        "status": "200",
        "variant": "stable",
        "model_version": "2",
    }
    [predictions] = [f for f in families if f.name == "shipyard_service_prediction"]
    count = [s for s in predictions.samples if s.name.endswith("_count")]
    assert count[0].value == INPUT_SAMPLE_ROWS  # a batch costs no more than two rows


def test_input_buckets_are_deciles_without_float_noise(tmp_path: Path) -> None:
    import pandas as pd

    from shipyard.serving.build import input_buckets
    from shipyard.serving.config import ModelInput

    data = tmp_path / "train.csv"
    pd.DataFrame(
        {
            "charges": [20.1 + 0.35 * i for i in range(100)],
            "calls": [i % 3 for i in range(100)],
            "plan": ["basic"] * 100,
        }
    ).to_csv(data, index=False)
    step = SimpleNamespace(data_files=[str(data)])
    inputs = [ModelInput(name=n, type=t) for n, t in (("charges", "float"), ("calls", "int"))]
    buckets = input_buckets(step, [*inputs, ModelInput(name="plan", type="str")])  # type: ignore[arg-type]
    assert set(buckets) == {"charges", "calls"}
    assert buckets["calls"] == [0.0, 1.0, 2.0]  # duplicate edges (after rounding) are one
    charges = buckets["charges"]
    assert charges == sorted(charges) and len(charges) == 10
    assert all(len(repr(edge)) <= 6 for edge in charges), charges  # 29.85, not 29.8500000001
    assert charges[0] == pytest.approx(20.1 + 0.35 * 9.9, rel=1e-3)


SERVICE_PROCESS = """
import logging, warnings
from bentoml._internal import log as bentoml_log
from shipyard.logs import current_request_id
from shipyard.serving.telemetry import configure_logging

configure_logging()
bentoml_log.configure_logging()  # what `bentoml serve` does first (its CLI configuration)
logging.getLogger("bentoml.serve").info("cli line")
bentoml_log.configure_server_logging()  # then the server's, as every worker does at start
logging.getLogger("bentoml.serve").info("server line")
logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
logging.getLogger("circus").warning("arbiter line")
logging.getLogger("shipyard.serving").info("shipyard line")
logging.getLogger("bentoml").debug("below BentoML's level")
token = current_request_id.set("req-9")
logging.getLogger("bentoml._internal.server.http_app").warning("during a request")
warnings.warn("an old API", UserWarning)
current_request_id.reset(token)
"""


def test_a_service_process_writes_every_line_once_as_json() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SERVICE_PROCESS],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = [json.loads(line) for line in (done.stdout + done.stderr).splitlines() if line]
    messages = [line["message"] for line in lines]
    assert messages[:6] == [
        "cli line",
        "server line",
        "Invalid HTTP request received.",
        "arbiter line",
        "shipyard line",
        "during a request",
    ]
    assert len(lines) == 7 and "UserWarning: an old API" in messages[6]
    assert lines[6]["logger"] == "py.warnings"
    assert [line.get("request_id") for line in lines] == [None] * 5 + ["req-9"] * 2
