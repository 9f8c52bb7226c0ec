"""What each variant of a service did over an interval: requests, errors, latency, predictions.

Two sources give the same `Traffic`: the service's own `/metrics`, scraped at both ends of the
interval and subtracted (the embedded profile: no Prometheus needed), or the profile's
Prometheus, asked for `increase(...[interval])` (the scale-out profile, where many replicas
serve and a scrape of one would see only its share). Errors are 5xx answers of /predict: a
400 is the caller's mistake, not the model's.
"""

from __future__ import annotations

import json
import math
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field

from shipyard.errors import ServiceUnavailable
from shipyard.retry import retrying

Buckets = tuple[tuple[float, float], ...]
"""Cumulative `(upper_bound, count)` pairs, the last +inf, as Prometheus histograms have."""

ENDPOINT = "/predict"
REQUESTS = "shipyard_service_requests_total"
DURATION = "shipyard_service_request_duration_seconds_bucket"
PREDICTION = "shipyard_service_prediction_bucket"


@dataclass
class VariantTraffic:
    """One variant's counts (cumulative in a snapshot, differences in an interval)."""

    requests: float = 0.0
    errors: float = 0.0
    latency: dict[float, float] = field(default_factory=dict)
    predictions: dict[float, float] = field(default_factory=dict)

    def latency_buckets(self) -> Buckets:
        return _sorted(self.latency)

    def prediction_bins(self) -> list[float]:
        """Predictions per bin (not cumulative), lowest bin first."""
        cumulative = [count for _, count in _sorted(self.predictions)]
        return [b - a for a, b in zip([0.0, *cumulative], cumulative, strict=False)]


@dataclass
class Traffic:
    """Every variant's counts, at one moment (a snapshot) or over an interval."""

    at: float
    variants: dict[str, VariantTraffic] = field(default_factory=dict)

    def of(self, variant: str) -> VariantTraffic:
        return self.variants.get(variant) or VariantTraffic()

    def since(self, earlier: Traffic) -> Traffic:
        """The counts between two snapshots. A counter that went down was reset (a worker
        restarted): its current value is what it counted since, as Prometheus' increase()."""
        interval = Traffic(self.at)
        for name, now in self.variants.items():
            before = earlier.of(name)
            interval.variants[name] = VariantTraffic(
                requests=_increase(now.requests, before.requests),
                errors=_increase(now.errors, before.errors),
                latency=_increase_map(now.latency, before.latency),
                predictions=_increase_map(now.predictions, before.predictions),
            )
        return interval


def _increase(now: float, before: float) -> float:
    return now - before if now >= before else now


def _increase_map(now: Mapping[float, float], before: Mapping[float, float]) -> dict[float, float]:
    return {bound: _increase(count, before.get(bound, 0.0)) for bound, count in now.items()}


def _sorted(buckets: Mapping[float, float]) -> Buckets:
    return tuple(sorted(buckets.items()))


def parse_exposition(text: str, resource: str, at: float | None = None) -> Traffic:
    """A snapshot from Prometheus text exposition, for one service (`resource` label)."""
    from prometheus_client.parser import text_string_to_metric_families

    traffic = Traffic(time.time() if at is None else at)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("resource") != resource:
                continue
            variant = labels.get("variant", "none")
            if sample.name == REQUESTS and labels.get("endpoint") == ENDPOINT:
                counts = traffic.variants.setdefault(variant, VariantTraffic())
                counts.requests += sample.value
                if labels.get("status", "").startswith("5"):
                    counts.errors += sample.value
            elif sample.name == DURATION and labels.get("endpoint") == ENDPOINT:
                _add(traffic, variant, "latency", float(labels["le"]), sample.value)
            elif sample.name == PREDICTION:
                _add(traffic, variant, "predictions", float(labels["le"]), sample.value)
    return traffic


def _add(traffic: Traffic, variant: str, kind: str, bound: float, value: float) -> None:
    counts = traffic.variants.setdefault(variant, VariantTraffic())
    buckets: dict[float, float] = getattr(counts, kind)
    buckets[bound] = buckets.get(bound, 0.0) + value  # summed over model versions


def scrape(url: str, resource: str, context: ssl.SSLContext | None = None) -> Traffic:
    """A snapshot of the service's /metrics (every worker's, merged by BentoML).

    Raises:
        ServiceUnavailable: The service did not answer (after retries).
    """

    def fetch() -> str:
        with urllib.request.urlopen(
            url + "/metrics", timeout=10, context=context
        ) as response:  # http(s) URL of the service  # nosec B310
            return str(response.read().decode())

    try:
        text = retrying(fetch, f"{url}/metrics", attempts=3, max_wait=2.0)
    except OSError as exc:
        raise ServiceUnavailable(
            f"the service's metrics at {url}/metrics do not answer: {exc}",
            hint="check that the service runs (`shipyard serve <service> --status`)",
        ) from exc
    return parse_exposition(text, resource)


class Prometheus:
    """The query API of a Prometheus server (`profiles.<profile>.prometheus.url`)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """An instant query: `(labels, value)` per series; NaN values are left out.

        Raises:
            ServiceUnavailable: Prometheus did not answer, or refused the query.
        """
        address = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})

        def fetch() -> dict[str, object]:
            with urllib.request.urlopen(
                address, timeout=10
            ) as response:  # the profile's Prometheus URL  # nosec B310
                answer: dict[str, object] = json.loads(response.read())
                return answer

        try:
            answer = retrying(fetch, f"Prometheus at {self.url}", attempts=3, max_wait=2.0)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise ServiceUnavailable(
                f"Prometheus at {self.url} refused the query {promql!r}: {detail}",
                hint="fix the query in `rollouts.<name>.analysis.metrics`",
            ) from exc
        except (OSError, ValueError) as exc:
            raise ServiceUnavailable(
                f"Prometheus at {self.url} does not answer: {exc}",
                hint="start it, or fix `profiles.<profile>.prometheus.url`",
            ) from exc
        data = answer.get("data")
        results = data.get("result", []) if isinstance(data, dict) else []
        series = []
        for result in results:
            value = float(result["value"][1])
            if not math.isnan(value):
                series.append((dict(result["metric"]), value))
        return series

    def traffic(self, resource: str, seconds: float) -> Traffic:
        """Every variant's counts over the last `seconds`, from increase()."""
        window = f"{max(1, round(seconds))}s"
        match = f'resource="{resource}",endpoint="{ENDPOINT}"'
        traffic = Traffic(time.time())
        queries = {
            "requests": f"sum by (variant) (increase({REQUESTS}{{{match}}}[{window}]))",
            "errors": f'sum by (variant) (increase({REQUESTS}{{{match},status=~"5.."}}[{window}]))',
            "latency": f"sum by (variant, le) (increase({DURATION}{{{match}}}[{window}]))",
            "predictions": f'sum by (variant, le) (increase({PREDICTION}{{resource="{resource}"}}'
            f"[{window}]))",
        }
        for kind, promql in queries.items():
            for labels, value in self.query(promql):
                counts = traffic.variants.setdefault(
                    labels.get("variant", "none"), VariantTraffic()
                )
                if kind in ("requests", "errors"):
                    setattr(counts, kind, value)
                else:
                    getattr(counts, kind)[float(labels["le"])] = value
        return traffic
