"""Prometheus recording and alerting rules compiled from the plan, one group per concern.

Every alert is a `signal` (the query whose value is judged) and a `condition` on it, so that
tests and `shipyard observability render` can evaluate the signal on its own: an alert's
expression returns nothing while it does not fire, its signal returns data whenever the
metrics behind it exist. Thresholds come from the plan where it has them (a rollout's
error-rate and p99 limits for its service, a monitor's schedule), else from the defaults here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from shipyard.compiler.plan import Plan, StepBase
from shipyard.compiler.rollouts import RolloutStep
from shipyard.compiler.services import ServiceStep
from shipyard.spec.alerts import SEVERITIES, Severity

SERVICE_JOB = "shipyard-services"
"""The scrape job of the services' /metrics (prometheus.yml names it so)."""
PREDICT = 'endpoint="/predict"'
ERROR_RATIO = "shipyard:service_error_ratio:rate5m"
LATENCY_P99 = "shipyard:service_latency_p99:rate5m"
REQUEST_RATE = "shipyard:service_requests:rate5m"
DEFAULT_MAX_ERROR_RATIO = 0.05
DEFAULT_MAX_LATENCY_P99 = 1.0
MONITOR_STALE_DEFAULT = 7200.0
"""Seconds without a monitor run before it is stale, when its schedule is not in the plan."""
MONITOR_STALE_RUNS = 3
"""A monitor is stale after this many of its scheduled runs were missed."""
SRM_P_VALUE = 0.001
BY_VARIANT = "project, resource, variant"


@dataclass(frozen=True)
class RecordingRule:
    """A series Prometheus computes on every evaluation, for dashboards and alerts."""

    record: str
    expr: str

    def to_yaml(self) -> dict[str, Any]:
        return {"record": self.record, "expr": self.expr}


@dataclass(frozen=True)
class AlertRule:
    """An alert: fires while `signal condition` returns series, for `for_` in a row."""

    alert: str
    signal: str
    condition: str
    severity: Severity
    summary: str
    description: str
    for_: str = "0m"
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def expr(self) -> str:
        return f"{self.signal} {self.condition}"

    def to_yaml(self) -> dict[str, Any]:
        return {
            "alert": self.alert,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity, **self.labels},
            "annotations": {"summary": self.summary, "description": self.description},
        }


Rule = RecordingRule | AlertRule


@dataclass(frozen=True)
class RuleGroup:
    """One group, written to rules/<name>.yml."""

    name: str
    rules: tuple[Rule, ...]

    def to_yaml(self) -> dict[str, Any]:
        return {
            "groups": [
                {"name": f"shipyard-{self.name}", "rules": [r.to_yaml() for r in self.rules]}
            ]
        }

    @property
    def queries(self) -> list[str]:
        """Every expression of the group: recordings, alert expressions and their signals."""
        found: list[str] = []
        for rule in self.rules:
            found += [rule.expr] if isinstance(rule, RecordingRule) else [rule.expr, rule.signal]
        return found


def rule_groups(plan: Plan) -> list[RuleGroup]:
    """Every rule group of the plan's stack, in the order `render` writes them."""
    return [
        RuleGroup("service-recording", tuple(_service_recordings())),
        RuleGroup("services", tuple(_service_alerts(plan))),
        RuleGroup("flows", tuple(_flow_alerts())),
        RuleGroup("data-quality", tuple(_quality_alerts())),
        RuleGroup("drift", tuple(_drift_alerts(plan))),
        RuleGroup("monitors", tuple(_monitor_alerts(plan))),
        RuleGroup("features", tuple(_feature_alerts())),
        RuleGroup("ab-tests", tuple(_ab_test_alerts())),
        RuleGroup("rollouts", tuple(_rollout_alerts())),
        RuleGroup("infrastructure", tuple(_infrastructure_alerts())),
    ]


def _zero_when_absent(counter: str, by: str, function: str = "rate", window: str = "5m") -> str:
    """`sum by (...) (rate(counter[5m]))` that is 0, not absent, for a service with requests
    but no sample of `counter` yet (no error so far is an error rate of 0)."""
    requests = f"{function}(shipyard_service_requests_total{{{PREDICT}}}[{window}])"
    return f"(sum by ({by}) ({function}({counter}[{window}])) or sum by ({by}) ({requests}) * 0)"


def _service_recordings() -> Iterator[RecordingRule]:
    requests = f"shipyard_service_requests_total{{{PREDICT}}}"
    errors = f'shipyard_service_requests_total{{{PREDICT},status=~"5.."}}'
    yield RecordingRule(REQUEST_RATE, f"sum by ({BY_VARIANT}) (rate({requests}[5m]))")
    yield RecordingRule(
        ERROR_RATIO,
        f"{_zero_when_absent(errors, BY_VARIANT)} / sum by ({BY_VARIANT}) (rate({requests}[5m]))",
    )
    yield RecordingRule(
        LATENCY_P99,
        f"histogram_quantile(0.99, sum by ({BY_VARIANT}, le) "
        f"(rate(shipyard_service_request_duration_seconds_bucket{{{PREDICT}}}[5m])))",
    )
    yield RecordingRule(
        "shipyard:service_failed_expectations:increase15m",
        _zero_when_absent(
            "shipyard_service_failed_expectations_total", "project, resource", "increase", "15m"
        ),
    )
    yield RecordingRule(
        "shipyard:service_missing_features:increase15m",
        _zero_when_absent(
            "shipyard_service_missing_features_total", "project, resource", "increase", "15m"
        ),
    )


def _limits(plan: Plan, service: ServiceStep) -> tuple[float, float]:
    """The service's error-ratio and p99 limits: its rollout's, else the defaults."""
    error, latency = DEFAULT_MAX_ERROR_RATIO, DEFAULT_MAX_LATENCY_P99
    for rollout in plan.steps_of(RolloutStep):
        if rollout.service != service.id:
            continue
        for metric in rollout.metrics:
            if metric.kind == "error_rate" and metric.max is not None:
                error = metric.max
            if metric.kind == "latency" and metric.quantile == 0.99 and metric.max is not None:
                latency = metric.max
    return error, latency


def _service_alerts(plan: Plan) -> Iterator[AlertRule]:
    for service in plan.steps_of(ServiceStep):
        match = f'{{resource="{service.id}"}}'
        error, latency = _limits(plan, service)
        where = f"http://{service.host}:{service.port}"
        yield AlertRule(
            "ShipyardServiceDown",
            f'up{{job="{SERVICE_JOB}",resource="{service.id}"}}',
            "== 0",
            "critical",
            f"{service.id} does not answer /metrics at {where}",
            f"Prometheus cannot scrape {service.id}. Check `shipyard serve {service.name} "
            f"--status` and the service log; restart it with `shipyard serve {service.name} "
            "--restart`.",
            for_="2m",
        )
        yield AlertRule(
            "ShipyardServiceErrorRate",
            ERROR_RATIO + match,
            f"> {error:g}",
            "critical",
            f"{service.id} variant {{{{ $labels.variant }}}} fails "
            "{{ $value | humanizePercentage }} of /predict requests",
            f"More than {error:.2%} of /predict answers are 5xx for 5 minutes. Read the "
            "service log for the failing variant; if it is a candidate, abort its rollout "
            "(`shipyard rollout abort`) or send its traffic back to stable.",
            for_="5m",
        )
        yield AlertRule(
            "ShipyardServiceLatencyP99",
            LATENCY_P99 + match,
            f"> {latency:g}",
            "warning",
            f"{service.id} variant {{{{ $labels.variant }}}} p99 latency is "
            "{{ $value | humanizeDuration }}",
            f"The 99th percentile of /predict latency is above {latency:g} s for 10 minutes. "
            "Check CPU on the Infrastructure dashboard, batching settings and the variant's "
            "model size; scale workers or roll back a slower candidate.",
            for_="10m",
        )


def _flow_alerts() -> Iterator[AlertRule]:
    yield AlertRule(
        "ShipyardFlowRunFailed",
        "shipyard_flow_run_success",
        "== 0",
        "warning",
        "flow {{ $labels.flow }} failed for {{ $labels.resource }}",
        "The last run of {{ $labels.flow }} on {{ $labels.resource }} failed. Open the flow "
        "run in the Prefect UI, fix the cause, then run it again with `shipyard run "
        "{{ $labels.flow }} <name>`.",
    )


def _quality_alerts() -> Iterator[AlertRule]:
    yield AlertRule(
        "ShipyardDatasetExpectationsFailed",
        "shipyard_dataset_expectations_failed",
        "> 0",
        "warning",
        "{{ $value }} expectations failed on {{ $labels.resource }}",
        "The last validate-dataset run of {{ $labels.resource }} found failing expectations. "
        "Read the run's report in Prefect; fix the data (or the expectation) before the next "
        "training reads it.",
    )
    yield AlertRule(
        "ShipyardServiceRequestsFailExpectations",
        "shipyard:service_failed_expectations:increase15m",
        "> 0",
        "warning",
        "requests to {{ $labels.resource }} fail the training data's expectations",
        "{{ $value }} request rows failed an expectation in 15 minutes (the service's "
        "shipyard_service_failed_expectations_total names column and rule). Check the "
        "callers' inputs: the model sees data unlike its training data.",
    )
    yield AlertRule(
        "ShipyardServiceMissingFeatures",
        "shipyard:service_missing_features:increase15m",
        "> 0",
        "warning",
        "{{ $labels.resource }} scores rows without online features",
        "{{ $value }} rows in 15 minutes were scored without a feature the online store did "
        "not have. Materialize the feature views (`shipyard run materialize-features ...`) "
        "and check the entity keys callers send.",
    )
    yield AlertRule(
        "ShipyardMonitorQualityFailures",
        "shipyard_monitor_quality_failed_expectations",
        "> 0",
        "warning",
        "live inputs of {{ $labels.resource }} fail {{ $value }} expectations",
        "The monitor ran the training dataset's expectations on the last window of live "
        "inputs and some failed. Read the monitor's report; find which callers send the "
        "rows, or retrain on data that looks like them.",
    )


@dataclass(frozen=True)
class Monitor:
    """What the rules need of a monitor step of the plan (kind "monitor")."""

    resource: str
    schedule: str | None
    severity: Severity
    metric: str | None = None
    min: float | None = None
    max: float | None = None


def monitors(plan: Plan) -> list[Monitor]:
    """The plan's monitors, read by field name: a monitor step carries `service`, `severity`
    and `performance` (metric, min, max)."""
    found = []
    for step in _monitor_steps(plan):
        performance = getattr(step, "performance", None)
        severity: Severity = getattr(step, "severity", "warning")
        found.append(
            Monitor(
                resource=str(getattr(step, "service", None) or f"service.{step.name}"),
                schedule=step.schedule,
                severity=severity if severity in SEVERITIES else "warning",
                metric=getattr(performance, "metric", None),
                min=getattr(performance, "min", None),
                max=getattr(performance, "max", None),
            )
        )
    return found


def _others(known: list[Monitor]) -> str:
    """A matcher for the resources no monitor of the plan watches (metrics of an older plan)."""
    return f'{{resource!~"{"|".join(m.resource for m in known)}"}}' if known else ""


def _drift_alerts(plan: Plan) -> Iterator[AlertRule]:
    known = monitors(plan)
    targets = [(f'{{resource="{m.resource}"}}', m.severity) for m in known]
    for match, severity in [*targets, (_others(known), "warning")]:
        yield AlertRule(
            "ShipyardDriftDetected",
            "shipyard_monitor_drift_detected" + match,
            "== 1",
            severity,
            "{{ $labels.resource }} drifts from its training data",
            "The monitor found input or prediction drift (see the Drift dashboard for the "
            "features). Check whether the inputs changed for a reason; retrain the model on "
            "recent data if it is real drift.",
        )
    yield AlertRule(
        "ShipyardFeatureDrifted",
        "shipyard_monitor_feature_drifted",
        "== 1",
        "info",
        "feature {{ $labels.feature }} of {{ $labels.resource }} drifted",
        "The feature's drift statistic crossed its threshold in the last monitor window.",
    )


def _monitor_steps(plan: Plan) -> list[StepBase]:
    return [step for step in plan.steps.values() if step.kind == "monitor"]


def stale_after(schedule: str | None) -> float:
    """Seconds without a run before a monitor on `schedule` is stale: MONITOR_STALE_RUNS
    times the longest gap between its next runs (a weekday schedule's weekend included)."""
    if not schedule:
        return MONITOR_STALE_DEFAULT
    from cronsim import CronSim, CronSimError

    try:
        runs = CronSim(schedule, datetime(2026, 1, 5, tzinfo=UTC))
        times = [next(runs) for _ in range(30)]
    except (CronSimError, StopIteration):
        return MONITOR_STALE_DEFAULT
    gap = max((b - a).total_seconds() for a, b in pairwise(times))
    return MONITOR_STALE_RUNS * gap


def _monitor_alerts(plan: Plan) -> Iterator[AlertRule]:
    yield AlertRule(
        "ShipyardMonitorUnhealthy",
        "shipyard_monitor_healthy",
        "== 0",
        "warning",
        "the monitor of {{ $labels.resource }} cannot judge it",
        "The monitor ran but could not judge everything (no reference profile for the "
        "served version, or too few predictions in the window). Read the monitor's report; "
        "retrain to record a reference profile, or widen its window.",
        for_="30m",
    )
    age = "time() - shipyard_monitor_last_run_timestamp_seconds"
    known = monitors(plan)
    for monitor in known:
        limit = stale_after(monitor.schedule)
        yield _stale(f'{age}{{resource="{monitor.resource}"}}', limit, monitor.schedule)
    yield _stale(age + _others(known), MONITOR_STALE_DEFAULT, None)
    for monitor in known:
        if monitor.metric is None:
            continue
        match = f'{{resource="{monitor.resource}",metric="{monitor.metric}"}}'
        for condition, bound in (("<", monitor.min), (">", monitor.max)):
            if bound is None:
                continue
            yield AlertRule(
                "ShipyardModelPerformance",
                "shipyard_monitor_performance" + match,
                f"{condition} {bound:g}",
                monitor.severity,
                f"{monitor.metric} of {{{{ $labels.resource }}}} variant "
                f"{{{{ $labels.variant }}}} is {{{{ $value }}}}",
                f"On live traffic with feedback labels the model's {monitor.metric} is "
                f"{'below' if condition == '<' else 'above'} {bound:g}. Compare variants on "
                "the Model performance dashboard; retrain, or roll back to the previous "
                "champion.",
            )


def _stale(signal: str, limit: float, schedule: str | None) -> AlertRule:
    when = f"its schedule {schedule!r}" if schedule else "a monitor"
    return AlertRule(
        "ShipyardMonitorStale",
        signal,
        f"> {limit:g}",
        "warning",
        "the monitor of {{ $labels.resource }} has not run for {{ $value | humanizeDuration }}",
        f"No monitor run in {limit:g} s ({MONITOR_STALE_RUNS} runs of {when}). Check that "
        "the Prefect worker runs (`shipyard worker status`) and the monitor's deployment is "
        "scheduled.",
    )


def _feature_alerts() -> Iterator[AlertRule]:
    yield AlertRule(
        "ShipyardFeaturesStale",
        "shipyard_monitor_feature_age_seconds",
        "> on (project, resource, view) shipyard_monitor_feature_max_age_seconds",
        "warning",
        "online features of view {{ $labels.view }} for {{ $labels.resource }} are stale",
        "The newest online features of {{ $labels.view }} are {{ $value | humanizeDuration }} "
        "old, older than allowed. Run its materialization (`shipyard run "
        "materialize-features {{ $labels.view }}`) and check its schedule.",
    )


def _ab_test_alerts() -> Iterator[AlertRule]:
    yield AlertRule(
        "ShipyardAbTestSampleRatioMismatch",
        "shipyard_ab_test_srm_p_value",
        f"< {SRM_P_VALUE:g}",
        "critical",
        "A/B test {{ $labels.resource }} has a sample-ratio mismatch",
        "The arms' callers are not split as allocated (SRM p-value {{ $value }}): the "
        "test's result cannot be trusted. Check routing rules and caching in front of the "
        "service (`shipyard abtest status`), then restart the test.",
    )


def _rollout_alerts() -> Iterator[AlertRule]:
    yield AlertRule(
        "ShipyardRolloutRolledBack",
        "shipyard_rollout_outcome",
        "== -1",
        "warning",
        "rollout {{ $labels.resource }} was rolled back or aborted",
        "The candidate failed its analysis and stable has all the traffic again. Read "
        "`shipyard rollout status <name>` for the failed measurements before retrying.",
    )
    yield AlertRule(
        "ShipyardRolloutFailedMeasurements",
        "shipyard_rollout_failed_measurements",
        "> 0",
        "info",
        "rollout {{ $labels.resource }} had {{ $value }} failed measurements",
        "Some analysis intervals of the last rollout run failed; `shipyard rollout status` "
        "shows their evidence.",
    )


def _infrastructure_alerts() -> Iterator[AlertRule]:
    yield AlertRule(
        "ShipyardTargetDown",
        'up{job=~"prometheus|pushgateway|alertmanager|node"}',
        "== 0",
        "critical",
        "{{ $labels.job }} at {{ $labels.instance }} is down",
        "A part of the observability stack does not answer. `shipyard observability status` "
        "shows which; its log is under <state>/logs; `shipyard observability up` restarts it.",
        for_="2m",
    )
    yield AlertRule(
        "ShipyardHostCpuHigh",
        '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))',
        "> 0.9",
        "warning",
        "CPU of {{ $labels.instance }} is {{ $value | humanizePercentage }} busy",
        "The host's CPU has been over 90% busy for 15 minutes: services slow down and "
        "trainings queue. Find the process (top), move trainings to a Dask cluster or add "
        "capacity.",
        for_="15m",
    )
    yield AlertRule(
        "ShipyardHostMemoryHigh",
        "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
        "> 0.9",
        "warning",
        "memory of {{ $labels.instance }} is {{ $value | humanizePercentage }} used",
        "Less than 10% of memory is available: the kernel will kill processes. Reduce "
        "service workers or trial parallelism, or add memory.",
        for_="10m",
    )
    yield AlertRule(
        "ShipyardHostDiskFull",
        "1 - node_filesystem_avail_bytes / node_filesystem_size_bytes",
        "> 0.9",
        "critical",
        "{{ $labels.mountpoint }} on {{ $labels.instance }} is {{ $value | humanizePercentage }} "
        "full",
        "The filesystem is over 90% full. The state folder (DVC cache, MLflow artifacts, "
        "Prometheus data) usually grows most: `dvc gc`, drop old model versions, or shorten "
        "the Prometheus retention.",
        for_="10m",
    )
