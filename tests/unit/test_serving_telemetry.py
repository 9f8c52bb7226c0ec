"""Buffered histograms expose exactly what observing one value at a time would; input
histogram buckets are the training data's deciles, without float noise."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, Histogram

from shipyard.serving.telemetry import BufferedHistogram

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
