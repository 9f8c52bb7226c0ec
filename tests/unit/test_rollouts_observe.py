"""parse_exposition and Traffic.since: what each variant did, from the service's own /metrics."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from shipyard.rollouts.observe import Traffic, VariantTraffic, parse_exposition
from shipyard.serving.telemetry import LATENCY_BUCKETS, PROBABILITY_BUCKETS

PROJECT = "churn-demo"
RESOURCE = "service.churn-api"
OTHER = "service.churn-b"


class Exposition:
    """The service metrics rollouts read, with the names, labels and buckets the service uses."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        base = ["project", "resource"]
        self.requests = Counter(
            "shipyard_service_requests",
            "Requests by endpoint, status, variant and model version.",
            [*base, "endpoint", "status", "variant", "model_version"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "shipyard_service_request_duration_seconds",
            "Time from request to response start.",
            [*base, "endpoint", "variant", "model_version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Histogram(
            "shipyard_service_prediction",
            "Predicted value (the positive-class probability for classifiers).",
            [*base, "variant", "model_version"],
            buckets=PROBABILITY_BUCKETS,
            registry=self.registry,
        )

    def request(
        self,
        variant: str,
        status: str = "200",
        count: int = 1,
        endpoint: str = "/predict",
        version: str = "3",
        resource: str = RESOURCE,
    ) -> None:
        labels = (PROJECT, resource, endpoint, status, variant, version)
        self.requests.labels(*labels).inc(count)

    def took(
        self,
        variant: str,
        seconds: float,
        count: int = 1,
        endpoint: str = "/predict",
        version: str = "3",
        resource: str = RESOURCE,
    ) -> None:
        child = self.latency.labels(PROJECT, resource, endpoint, variant, version)
        for _ in range(count):
            child.observe(seconds)

    def predicted(
        self,
        variant: str,
        value: float,
        count: int = 1,
        version: str = "3",
        resource: str = RESOURCE,
    ) -> None:
        child = self.predictions.labels(PROJECT, resource, variant, version)
        for _ in range(count):
            child.observe(value)

    def parse(self, at: float = 100.0) -> Traffic:
        return parse_exposition(generate_latest(self.registry).decode(), RESOURCE, at=at)


@pytest.fixture
def metrics() -> Exposition:
    return Exposition()


# --- requests and errors -----------------------------------------------------------------------


def test_requests_and_5xx_errors_per_variant(metrics: Exposition) -> None:
    metrics.request("stable", "200", 90)
    metrics.request("stable", "503", 2)
    metrics.request("challenger", "200", 8)
    metrics.request("challenger", "500", 3)
    metrics.request("challenger", "400", 4)  # the caller's mistake: a request, not an error
    metrics.request("challenger", "422", 1)
    traffic = metrics.parse(at=123.0)
    assert traffic.at == 123.0
    assert set(traffic.variants) == {"stable", "challenger"}
    assert (traffic.of("stable").requests, traffic.of("stable").errors) == (92, 2)
    assert (traffic.of("challenger").requests, traffic.of("challenger").errors) == (16, 3)


def test_only_predict_counts(metrics: Exposition) -> None:
    metrics.request("stable", "200", 5)
    metrics.request("stable", "500", 7, endpoint="/feedback")
    metrics.request("stable", "200", 40, endpoint="/healthz")
    metrics.took("stable", 0.5, 3, endpoint="/feedback")
    metrics.took("stable", 0.003, 5)
    stable = metrics.parse().of("stable")
    assert (stable.requests, stable.errors) == (5, 0)
    assert stable.latency[math.inf] == 5
    assert stable.latency[1.0] == 5  # the /feedback ones (0.5 s) are not in it


def test_other_resources_are_ignored(metrics: Exposition) -> None:
    metrics.request("stable", "200", 5)
    metrics.request("stable", "500", 50, resource=OTHER)
    metrics.request("intruder", "200", 9, resource=OTHER)
    metrics.took("stable", 0.2, 4, resource=OTHER)
    metrics.predicted("stable", 0.9, 6, resource=OTHER)
    traffic = metrics.parse()
    assert set(traffic.variants) == {"stable"}
    stable = traffic.of("stable")
    assert (stable.requests, stable.errors) == (5, 0)
    assert (stable.latency, stable.predictions) == ({}, {})


def test_requests_are_summed_over_model_versions(metrics: Exposition) -> None:
    metrics.request("stable", "200", 10, version="3")
    metrics.request("stable", "500", 1, version="3")
    metrics.request("stable", "200", 20, version="4")  # hot-reloaded mid-interval
    metrics.request("stable", "502", 2, version="4")
    stable = metrics.parse().of("stable")
    assert (stable.requests, stable.errors) == (33, 3)


def test_a_variant_without_traffic_is_empty() -> None:
    traffic = Exposition().parse()
    assert traffic.variants == {}
    assert traffic.of("challenger") == VariantTraffic()


# --- histograms --------------------------------------------------------------------------------


def test_latency_buckets_are_cumulative_and_summed_over_model_versions(
    metrics: Exposition,
) -> None:
    metrics.took("challenger", 0.004, 3, version="3")  # le=0.005
    metrics.took("challenger", 0.2, 2, version="3")  # le=0.25
    metrics.took("challenger", 0.004, 1, version="4")
    metrics.took("challenger", 7.0, 4, version="4")  # beyond the last finite bucket
    buckets = metrics.parse().of("challenger").latency_buckets()
    assert [bound for bound, _ in buckets] == [*LATENCY_BUCKETS, math.inf]
    observed = [0.004] * 4 + [0.2] * 2 + [7.0] * 4
    assert buckets == tuple(
        (bound, float(sum(value <= bound for value in observed)))
        for bound in (*LATENCY_BUCKETS, math.inf)
    )
    assert dict(buckets)[math.inf] == 10


def test_prediction_bins_are_per_bin_not_cumulative(metrics: Exposition) -> None:
    metrics.predicted("stable", 0.05, 3, version="3")  # bin (0, 0.1]
    metrics.predicted("stable", 0.05, 1, version="4")
    metrics.predicted("stable", 0.55, 2)  # bin (0.5, 0.6]
    metrics.predicted("stable", 0.95, 5)  # bin (0.9, 1.0]
    stable = metrics.parse().of("stable")
    assert sorted(stable.predictions) == [*PROBABILITY_BUCKETS, math.inf]
    bins = stable.prediction_bins()
    assert len(bins) == len(PROBABILITY_BUCKETS) + 1  # the bins, then +Inf beyond 1.0
    assert bins == [4, 0, 0, 0, 0, 2, 0, 0, 0, 5, 0]
    assert sum(bins) == 11


def test_prediction_bins_of_nothing_are_empty() -> None:
    assert VariantTraffic().prediction_bins() == []


# --- Traffic.since -----------------------------------------------------------------------------


def test_since_subtracts_the_earlier_snapshot(metrics: Exposition) -> None:
    metrics.request("stable", "200", 100)
    metrics.request("stable", "500", 1)
    metrics.took("stable", 0.01, 101)
    metrics.predicted("stable", 0.3, 10)
    before = metrics.parse(at=100.0)
    metrics.request("stable", "200", 40)
    metrics.request("stable", "500", 2)
    metrics.request("challenger", "200", 7)
    metrics.took("stable", 0.4, 42)
    metrics.predicted("stable", 0.8, 5)
    metrics.predicted("challenger", 0.8, 7)
    now = metrics.parse(at=160.0)

    interval = now.since(before)
    assert interval.at == 160.0
    stable, challenger = interval.of("stable"), interval.of("challenger")
    assert (stable.requests, stable.errors) == (42, 2)
    assert (challenger.requests, challenger.errors) == (7, 0)  # new since: all of it
    latency = dict(stable.latency_buckets())
    assert (latency[0.01], latency[0.25], latency[0.5], latency[math.inf]) == (0, 0, 42, 42)
    assert stable.prediction_bins() == [0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0]
    assert challenger.prediction_bins() == [0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0]


def test_since_treats_a_counter_that_went_down_as_reset() -> None:
    before = Traffic(
        10.0,
        {
            "stable": VariantTraffic(
                requests=500, errors=5, latency={0.1: 400, math.inf: 500}, predictions={1.0: 9}
            )
        },
    )
    now = Traffic(
        70.0,
        {
            "stable": VariantTraffic(
                requests=30, errors=7, latency={0.1: 20, math.inf: 30}, predictions={1.0: 12}
            )
        },
    )
    stable = now.since(before).of("stable")
    assert stable.requests == 30  # reset: what it counted since the restart
    assert stable.errors == 2  # errors did not go down: the difference
    assert stable.latency == {0.1: 20, math.inf: 30}
    assert stable.predictions == {1.0: 3}


def test_since_a_snapshot_without_the_variant_is_everything(metrics: Exposition) -> None:
    earlier = Traffic(0.0)
    metrics.request("challenger", "503", 4)
    now = metrics.parse(at=5.0)
    assert now.since(earlier).of("challenger").errors == 4
    assert now.since(now).of("challenger") == VariantTraffic(latency={}, predictions={})
