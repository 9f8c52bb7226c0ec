"""One analysis interval -> one measurement per metric, with the shared statistics package.

With `compare: stable` the candidate is tested against stable on the same interval; when stable
gets no traffic (after a blue-green switch, at a rolling rollout's last replica) only the
thresholds apply. Prediction shift compares with stable's predictions in the interval, or, when
stable answered none, with everything stable predicted before the rollout began.
"""

from __future__ import annotations

from collections.abc import Callable

from shipyard.compiler.rollouts import MetricPlan, RolloutStep
from shipyard.compiler.services import STABLE
from shipyard.errors import ServiceUnavailable
from shipyard.rollouts.observe import Prometheus, Traffic, VariantTraffic
from shipyard.rollouts.state import Measurement
from shipyard.stats.analysis import (
    MetricOutcome,
    Outcome,
    error_rate_test,
    latency_test,
    prediction_shift,
)


def measure(
    step: RolloutStep,
    interval: Traffic,
    reference: Traffic | None,
    prometheus: Prometheus | None = None,
    weight: float = 0.0,
) -> list[Measurement]:
    """Every metric of the rollout over one interval, at the candidate's share `weight`.

    At 100% stable answers only the requests that were in flight at the switch: too few to
    compare with, so only the thresholds apply."""
    stable, candidate = interval.of(STABLE), interval.of(step.candidate.name)
    compared = stable if stable.requests > 0 and weight < 100 else None
    measures: dict[str, Callable[[MetricPlan], MetricOutcome]] = {
        "error_rate": lambda m: _error_rate(step, m, compared, candidate),
        "latency": lambda m: _latency(step, m, compared, candidate),
        "prediction_shift": lambda m: _shift(m, stable, candidate, reference, step.min_requests),
        "query": lambda m: _query(step, m, prometheus),
    }
    return [Measurement.of(measures[metric.kind](metric)) for metric in step.metrics]


def unmeasured(step: RolloutStep, why: str) -> list[Measurement]:
    """An interval whose traffic could not be read: every metric inconclusive, saying why."""
    return [
        Measurement.of(_no_data(metric, f"{metric.name}: not measured: {why}"))
        for metric in step.metrics
    ]


def _no_data(metric: MetricPlan, why: str) -> MetricOutcome:
    limit = metric.max if metric.max is not None else (metric.min or 0.0)
    return MetricOutcome(metric.name, "inconclusive", None, None, limit, None, None, why)


def _error_rate(
    step: RolloutStep,
    metric: MetricPlan,
    stable: VariantTraffic | None,
    candidate: VariantTraffic,
) -> MetricOutcome:
    assert metric.max is not None
    versus = stable if metric.compare else None
    return error_rate_test(
        round(versus.errors) if versus else None,
        round(versus.requests) if versus else None,
        round(candidate.errors),
        round(candidate.requests),
        max_rate=metric.max,
        margin=metric.margin,
        alpha=step.alpha,
        min_requests=step.min_requests,
        name=metric.name,
    )


def _latency(
    step: RolloutStep,
    metric: MetricPlan,
    stable: VariantTraffic | None,
    candidate: VariantTraffic,
) -> MetricOutcome:
    assert metric.max is not None and metric.quantile is not None
    if candidate.requests <= 0 or not candidate.latency:
        return _no_data(metric, f"{metric.name}: no candidate requests in the interval")
    versus = stable if metric.compare and stable is not None and stable.latency else None
    return latency_test(
        versus.latency_buckets() if versus else None,
        candidate.latency_buckets(),
        max_quantile_seconds=metric.max,
        quantile=metric.quantile,
        alpha=step.alpha,
        min_ratio=metric.margin,
        min_requests=step.min_requests,
        name=metric.name,
    )


def _shift(
    metric: MetricPlan,
    stable: VariantTraffic,
    candidate: VariantTraffic,
    reference: Traffic | None,
    min_requests: int,
) -> MetricOutcome:
    assert metric.max is not None
    baseline = stable if sum(stable.prediction_bins()) > 0 else None
    if baseline is None and reference is not None:
        baseline = reference.of(STABLE)
    if baseline is None or sum(baseline.prediction_bins()) <= 0:
        return _no_data(metric, "prediction shift: stable has no predictions to compare with")
    ours, theirs = candidate.prediction_bins(), baseline.prediction_bins()
    if sum(ours) <= 0:
        return _no_data(metric, "prediction shift: no candidate predictions in the interval")
    if len(ours) != len(theirs):
        return _no_data(metric, "prediction shift: the variants' histograms have other bins")
    # PSI of two samples of one distribution is about (bins - 1) * (1/n1 + 1/n2), not 0: below
    # ten predictions per bin that noise alone passes a usual max_psi of 0.2
    needed = max(min_requests, 10 * len(ours))
    if min(sum(ours), sum(theirs)) < needed:
        return _no_data(
            metric,
            f"prediction shift: {sum(ours):.0f} candidate and {sum(theirs):.0f} stable "
            f"predictions, fewer than {needed} (10 per bin) to tell a shift from noise",
        )
    return prediction_shift(theirs, ours, metric.max, name=metric.name)


def _query(step: RolloutStep, metric: MetricPlan, prometheus: Prometheus | None) -> MetricOutcome:
    assert metric.query is not None
    if prometheus is None:
        return _no_data(metric, f"{metric.name}: no Prometheus in the profile to run the query")
    promql = metric.query.replace("{{variant}}", step.candidate.name)
    try:
        series = prometheus.query(promql)
    except ServiceUnavailable as exc:
        return _no_data(metric, f"{metric.name}: {exc.message}")
    if len(series) != 1:
        return _no_data(
            metric, f"{metric.name}: the query gave {len(series)} series, not one number"
        )
    value = series[0][1]
    high = metric.max is not None and value > metric.max
    low = metric.min is not None and value < metric.min
    bounds = " and ".join(
        text
        for text in (
            f"max {metric.max:g}" if metric.max is not None else "",
            f"min {metric.min:g}" if metric.min is not None else "",
        )
        if text
    )
    verdict: Outcome = "failed" if high or low else "successful"
    evidence = f"{metric.name} {value:.4g}, {bounds}: " + (
        "failed, above max" if high else "failed, below min" if low else "ok"
    )
    limit = metric.max if metric.max is not None else (metric.min or 0.0)
    return MetricOutcome(metric.name, verdict, value, None, limit, None, None, evidence)
