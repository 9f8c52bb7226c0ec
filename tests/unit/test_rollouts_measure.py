"""measure(): one analysis interval of hand-made traffic -> one measurement per metric."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from shipyard.compiler import RolloutStep
from shipyard.rollouts.measure import measure
from shipyard.rollouts.observe import Prometheus, Traffic, VariantTraffic
from shipyard.rollouts.state import Measurement
from shipyard.serving.telemetry import LATENCY_BUCKETS, PROBABILITY_BUCKETS

from .specs import compile_text

pytestmark = pytest.mark.usefixtures("no_state_dir_override")

SPEC = """\
project: churn-demo
datasets:
  customers:
    path: data/customers.parquet
    timestamp: event_time
    schema:
      customer_id: int
      event_time: datetime
      plan: {category: [basic, pro]}
      tenure: int
      churned: bool
models:
  churn:
    task: classification
    dataset: customers
    target: churned
    features: [plan, tenure]
    estimator: {class: sklearn.linear_model.LogisticRegression}
services:
  churn-api:
    model: churn
    candidates: [challenger]
rollouts:
  churn-api:
    analysis:
      min_requests: 50
      metrics:
        - {name: error_rate, max: 5%, compare: stable}
        - {name: latency_p99, max: 500ms, compare: stable}
        - {name: prediction_shift, max_psi: 0.2}
        - {query: 'sum(rate(errors{variant="{{variant}}"}[1m]))', max: 0.5}
"""
NAMES = ["error_rate", "latency_p99", "prediction_shift", "query_4"]


@pytest.fixture
def step(tmp_path: Path) -> RolloutStep:
    return compile_text(tmp_path, SPEC).named(RolloutStep, "churn-api")


def latency(seconds: Sequence[float]) -> dict[float, float]:
    """Cumulative duration buckets of these observations, as the service exposes them."""
    return {
        bound: float(sum(value <= bound for value in seconds))
        for bound in (*LATENCY_BUCKETS, math.inf)
    }


def predictions(per_bin: Sequence[float]) -> dict[float, float]:
    """Cumulative prediction buckets from per-bin counts (the bins of PROBABILITY_BUCKETS)."""
    bounds = (*PROBABILITY_BUCKETS, math.inf)
    assert len(per_bin) <= len(bounds)
    counts = [*per_bin, *[0.0] * (len(bounds) - len(per_bin))]
    running, cumulative = 0.0, {}
    for bound, count in zip(bounds, counts, strict=True):
        running += count
        cumulative[bound] = running
    return cumulative


SPREAD = [10, 20, 30, 40, 50, 50, 40, 30, 20, 10]


def variant(
    requests: int,
    errors: int = 0,
    seconds: float = 0.02,
    bins: Sequence[float] | None = None,
) -> VariantTraffic:
    """`requests` requests (`errors` of them 5xx) of about `seconds` each, predicting `bins`."""
    spread = [seconds * (0.5 + i / requests) for i in range(requests)]
    return VariantTraffic(
        requests=requests,
        errors=errors,
        latency=latency(spread),
        predictions=predictions(bins if bins is not None else [0] * 10),
    )


def by_name(measurements: list[Measurement]) -> dict[str, Measurement]:
    assert [m.name for m in measurements] == NAMES
    return {m.name: m for m in measurements}


class FakePrometheus(Prometheus):
    """Answers every query with the given series, and remembers the queries."""

    def __init__(self, series: list[tuple[dict[str, str], float]]) -> None:
        super().__init__("http://prometheus.invalid:9090")
        self.series = series
        self.asked: list[str] = []

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        self.asked.append(promql)
        return self.series


# --- a healthy and a failing candidate ---------------------------------------------------------


def test_a_healthy_candidate_is_successful(step: RolloutStep) -> None:
    interval = Traffic(
        60.0,
        {
            "stable": variant(1800, errors=9, bins=[x * 9 for x in SPREAD]),
            "challenger": variant(200, errors=1, bins=SPREAD),
        },
    )
    prometheus = FakePrometheus([({}, 0.1)])
    measured = by_name(measure(step, interval, None, prometheus))
    assert {m.outcome for m in measured.values()} == {"successful"}, measured
    errors = measured["error_rate"]
    assert errors.value == pytest.approx(1 / 200)
    assert errors.baseline == pytest.approx(9 / 1800)
    assert errors.threshold == 0.05 and errors.p_value is not None and errors.method
    latency_p99 = measured["latency_p99"]
    assert latency_p99.value is not None and latency_p99.value < 0.5
    assert latency_p99.baseline is not None and latency_p99.method == "mann-whitney"
    shift = measured["prediction_shift"]
    assert shift.value == pytest.approx(0.0) and shift.threshold == 0.2
    query = measured["query_4"]
    assert (query.value, query.threshold) == (0.1, 0.5)
    assert prometheus.asked == ['sum(rate(errors{variant="challenger"}[1m]))']


def test_a_candidate_with_many_5xx_fails_on_error_rate_with_a_p_value(step: RolloutStep) -> None:
    interval = Traffic(
        60.0,
        {
            "stable": variant(1800, errors=9, bins=SPREAD),
            "challenger": variant(200, errors=30, bins=SPREAD),
        },
    )
    measured = by_name(measure(step, interval, None, FakePrometheus([({}, 0.1)])))
    errors = measured["error_rate"]
    assert errors.outcome == "failed"
    assert errors.value == pytest.approx(0.15)
    assert errors.p_value is not None and errors.p_value < 1e-6
    assert errors.method in ("z-test", "fisher")
    assert "failed, above max and worse than stable" in errors.evidence
    assert measured["latency_p99"].outcome == "successful"


def test_a_candidate_worse_than_stable_but_under_max_fails_by_the_test(step: RolloutStep) -> None:
    interval = Traffic(
        60.0,
        {"stable": variant(5000, errors=5, bins=SPREAD), "challenger": variant(1000, errors=40)},
    )
    errors = by_name(measure(step, interval, None))["error_rate"]
    assert errors.value == pytest.approx(0.04)  # under max 5%
    assert errors.outcome == "failed" and errors.p_value is not None and errors.p_value < 0.05
    assert errors.evidence.endswith("failed, worse than stable")


def test_a_slow_candidate_fails_on_latency(step: RolloutStep) -> None:
    interval = Traffic(
        60.0,
        {
            "stable": variant(1000, seconds=0.02, bins=SPREAD),
            "challenger": variant(300, seconds=0.9, bins=SPREAD),
        },
    )
    latency_p99 = by_name(measure(step, interval, None))["latency_p99"]
    assert latency_p99.outcome == "failed"
    assert latency_p99.value is not None and latency_p99.value > 0.5
    assert latency_p99.p_value is not None and latency_p99.p_value < 1e-6


def test_a_shifted_prediction_distribution_fails(step: RolloutStep) -> None:
    interval = Traffic(
        60.0,
        {
            "stable": variant(1000, bins=[100, 100, 100, 100, 100, 0, 0, 0, 0, 0]),
            "challenger": variant(200, bins=[0, 0, 0, 0, 0, 40, 40, 40, 40, 40]),
        },
    )
    shift = by_name(measure(step, interval, None))["prediction_shift"]
    assert shift.outcome == "failed"
    assert shift.value is not None and shift.value > 0.2


# --- too little data ---------------------------------------------------------------------------


def test_no_candidate_requests_is_inconclusive_never_successful(step: RolloutStep) -> None:
    # the candidate's series exist (its smoke requests) but nothing came in this interval
    interval = Traffic(
        60.0, {"stable": variant(1000, errors=2, bins=SPREAD), "challenger": variant(0)}
    )
    measured = by_name(measure(step, interval, None))
    assert {name: m.outcome for name, m in measured.items()} == {
        name: "inconclusive" for name in NAMES
    }
    assert measured["error_rate"].value is None
    assert "no candidate requests" in measured["latency_p99"].evidence
    assert "no candidate predictions" in measured["prediction_shift"].evidence


def test_few_candidate_requests_are_inconclusive(step: RolloutStep) -> None:
    interval = Traffic(
        60.0, {"stable": variant(1000, bins=SPREAD), "challenger": variant(20, bins=SPREAD)}
    )
    measured = by_name(measure(step, interval, None))
    assert measured["error_rate"].outcome == "inconclusive"
    assert measured["latency_p99"].outcome == "inconclusive"


def test_a_candidate_absent_from_the_interval_is_inconclusive(step: RolloutStep) -> None:
    interval = Traffic(60.0, {"stable": variant(1000, errors=2, bins=SPREAD)})
    measured = by_name(measure(step, interval, None))
    assert {m.outcome for m in measured.values()} == {"inconclusive"}


def test_stable_without_traffic_checks_the_thresholds_only(tmp_path: Path) -> None:
    # after a blue-green switch (weight 100) stable answers nothing: no comparison to make
    text = SPEC.replace("        - {name: prediction_shift, max_psi: 0.2}\n", "").replace(
        "        - {query: 'sum(rate(errors{variant=\"{{variant}}\"}[1m]))', max: 0.5}\n", ""
    )
    step = compile_text(tmp_path, text).named(RolloutStep, "churn-api")
    assert [m.name for m in step.metrics] == ["error_rate", "latency_p99"]
    healthy = Traffic(60.0, {"challenger": variant(400, errors=4, bins=SPREAD)})
    errors, latency_p99 = measure(step, healthy, None)
    assert (errors.outcome, errors.baseline, errors.p_value) == ("successful", None, None)
    assert (latency_p99.outcome, latency_p99.baseline, latency_p99.p_value) == (
        "successful",
        None,
        None,
    )
    failing = Traffic(60.0, {"challenger": variant(400, errors=40, seconds=0.9)})
    errors, latency_p99 = measure(step, failing, None)
    assert (errors.outcome, errors.baseline, errors.p_value) == ("failed", None, None)
    assert (latency_p99.outcome, latency_p99.baseline) == ("failed", None)
    idle = Traffic(60.0, {"stable": variant(0), "challenger": variant(400, errors=4)})
    assert [m.baseline for m in measure(step, idle, None)] == [None, None]


# --- prediction shift against the reference ----------------------------------------------------


def test_prediction_shift_falls_back_to_the_reference_when_stable_predicted_nothing(
    step: RolloutStep,
) -> None:
    interval = Traffic(
        60.0, {"stable": variant(0), "challenger": variant(400, bins=[x * 2 for x in SPREAD])}
    )
    same = Traffic(0.0, {"stable": variant(5000, bins=[x * 25 for x in SPREAD])})
    shift = by_name(measure(step, interval, same))["prediction_shift"]
    assert shift.outcome == "successful" and shift.value == pytest.approx(0.0)
    shifted = Traffic(0.0, {"stable": variant(5000, bins=[500] * 5)})
    moved = by_name(measure(step, interval, shifted))["prediction_shift"]
    assert moved.outcome == "failed" and moved.value is not None and moved.value > 0.2


def test_prediction_shift_prefers_stable_in_the_interval(step: RolloutStep) -> None:
    interval = Traffic(
        60.0, {"stable": variant(500, bins=SPREAD), "challenger": variant(400, bins=SPREAD)}
    )
    shifted = Traffic(0.0, {"stable": variant(5000, bins=[500] * 5)})
    shift = by_name(measure(step, interval, shifted))["prediction_shift"]
    assert shift.outcome == "successful" and shift.value == pytest.approx(0.0)


def test_prediction_shift_without_any_stable_predictions_is_inconclusive(
    step: RolloutStep,
) -> None:
    interval = Traffic(60.0, {"stable": variant(0), "challenger": variant(400, bins=SPREAD)})
    for reference in (None, Traffic(0.0, {"stable": variant(0)})):
        shift = by_name(measure(step, interval, reference))["prediction_shift"]
        assert shift.outcome == "inconclusive" and shift.value is None
        assert "stable has no predictions" in shift.evidence


# --- PromQL metrics ----------------------------------------------------------------------------


def test_a_query_metric_without_prometheus_is_inconclusive(step: RolloutStep) -> None:
    interval = Traffic(
        60.0, {"stable": variant(1000, bins=SPREAD), "challenger": variant(200, bins=SPREAD)}
    )
    query = by_name(measure(step, interval, None, None))["query_4"]
    assert (query.outcome, query.value, query.threshold) == ("inconclusive", None, 0.5)
    assert "no Prometheus" in query.evidence


def test_a_query_metric_above_max_fails_and_not_one_number_is_inconclusive(
    step: RolloutStep,
) -> None:
    interval = Traffic(
        60.0, {"stable": variant(1000, bins=SPREAD), "challenger": variant(200, bins=SPREAD)}
    )
    high = by_name(measure(step, interval, None, FakePrometheus([({}, 0.75)])))["query_4"]
    assert (high.outcome, high.value) == ("failed", 0.75)
    assert high.evidence.endswith("failed, above max")
    several = FakePrometheus([({"variant": "a"}, 0.1), ({"variant": "b"}, 0.2)])
    unclear = by_name(measure(step, interval, None, several))["query_4"]
    assert unclear.outcome == "inconclusive" and "2 series" in unclear.evidence
