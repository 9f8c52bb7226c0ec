"""Grafana dashboards of the plan, built with grafana-foundation-sdk (never written by hand).

Six dashboards, each a list of panels over the provisioned Prometheus datasource: system
health, model performance per variant, drift per feature, infrastructure, A/B tests and
business metrics. Queries use fixed windows, not Grafana variables, so each one is also a
valid query of Prometheus' own API (the integration test evaluates every one of them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from grafana_foundation_sdk.builders import common, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as grafana
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as models
from grafana_foundation_sdk.models.dashboard import DataSourceRef
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from shipyard.compiler.ab_tests import AbTestStep
from shipyard.compiler.plan import Plan
from shipyard.compiler.services import ServiceStep
from shipyard.observability import rules

DATASOURCE_UID = "shipyard-prometheus"
"""The uid the provisioned datasource has and every panel names."""
DATASOURCE = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
PanelKind = Literal["timeseries", "stat", "table"]


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class PanelDef:
    """One panel: what it shows, in which unit, from which queries."""

    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: PanelKind = "timeseries"
    description: str = ""


@dataclass(frozen=True)
class DashboardDef:
    uid: str
    title: str
    description: str
    rows: tuple[tuple[str, tuple[PanelDef, ...]], ...]

    @property
    def queries(self) -> list[str]:
        return [q.expr for _, panels in self.rows for p in panels for q in p.queries]

    def build(self, project: str) -> dict[str, Any]:
        """The dashboard's JSON model (what Grafana's provisioning loads)."""
        board = (
            grafana.Dashboard(f"Shipyard {project}: {self.title}")
            .uid(f"shipyard-{project}-{self.uid}"[:40])
            .description(self.description)
            .tags(["shipyard", project])
            .refresh("30s")
            .time("now-6h", "now")
            .timezone("browser")
        )
        panel_id = 0
        for row_title, panels in self.rows:
            panel_id += 1
            board = board.with_row(grafana.Row(row_title).id(panel_id))
            for panel in panels:
                panel_id += 1
                board = board.with_panel(_panel(panel, panel_id))
        encoded: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
        return encoded


def _panel(panel: PanelDef, panel_id: int) -> Any:
    builder: Any
    if panel.kind == "stat":
        builder = (
            stat.Panel()
            .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
            .graph_mode(models.BigValueGraphMode.NONE)
        )
    elif panel.kind == "table":
        builder = table.Panel().show_header(True)
    else:
        builder = timeseries.Panel().legend(
            common.VizLegendOptions()
            .show_legend(True)
            .display_mode(models.LegendDisplayMode.LIST)
            .placement(models.LegendPlacement.BOTTOM)
        )
    builder = (
        builder.id(panel_id)
        .title(panel.title)
        .description(panel.description)
        .datasource(DATASOURCE)
        .unit(panel.unit)
        .span(8 if panel.kind == "stat" else 12)
        .height(8)
    )
    for index, query in enumerate(panel.queries):
        target = (
            prometheus.Dataquery()
            .expr(query.expr)
            .ref_id(chr(ord("A") + index))
            .datasource(DATASOURCE)
        )
        if query.legend:
            target = target.legend_format(query.legend)
        if panel.kind == "table":
            target = target.instant().format(PromQueryFormat.TABLE)
        elif panel.kind == "stat":
            target = target.instant()
        builder = builder.with_target(target)
    return builder


def _q(expr: str, legend: str = "") -> Query:
    return Query(expr, legend)


def system_health() -> DashboardDef:
    return DashboardDef(
        "system-health",
        "System health",
        "Services, flows and the observability stack: are they up, fast and succeeding?",
        (
            (
                "Services",
                (
                    PanelDef(
                        "Services up",
                        (_q(f'up{{job="{rules.SERVICE_JOB}"}}', "{{resource}}"),),
                        kind="stat",
                    ),
                    PanelDef(
                        "Requests per second by variant",
                        (_q(rules.REQUEST_RATE, "{{resource}} {{variant}}"),),
                        unit="reqps",
                    ),
                    PanelDef(
                        "Error ratio (5xx) by variant",
                        (_q(rules.ERROR_RATIO, "{{resource}} {{variant}}"),),
                        unit="percentunit",
                    ),
                    PanelDef(
                        "p99 latency by variant",
                        (_q(rules.LATENCY_P99, "{{resource}} {{variant}}"),),
                        unit="s",
                    ),
                ),
            ),
            (
                "Flows",
                (
                    PanelDef(
                        "Last flow run succeeded",
                        (_q("shipyard_flow_run_success", "{{flow}} {{resource}}"),),
                        kind="table",
                    ),
                    PanelDef(
                        "Flow run duration",
                        (_q("shipyard_flow_run_duration_seconds", "{{flow}} {{resource}}"),),
                        unit="s",
                    ),
                    PanelDef(
                        "Time since the last flow run",
                        (
                            _q(
                                "time() - shipyard_flow_run_last_timestamp_seconds",
                                "{{flow}} {{resource}}",
                            ),
                        ),
                        unit="s",
                        kind="table",
                    ),
                ),
            ),
            (
                "Stack",
                (
                    PanelDef(
                        "Stack targets up",
                        (_q('up{job!="' + rules.SERVICE_JOB + '"}', "{{job}}"),),
                        kind="stat",
                    ),
                    PanelDef(
                        "Alerts firing",
                        (
                            _q(
                                'count by (alertname, severity) (ALERTS{alertstate="firing"}) '
                                "or vector(0)",
                                "{{alertname}}",
                            ),
                        ),
                        kind="table",
                    ),
                ),
            ),
        ),
    )


def model_performance() -> DashboardDef:
    return DashboardDef(
        "model-performance",
        "Model performance",
        "Live model quality per variant (from feedback labels), predictions and training.",
        (
            (
                "Live performance",
                (
                    PanelDef(
                        "Metric on live traffic by variant",
                        (
                            _q(
                                "shipyard_monitor_performance",
                                "{{resource}} {{variant}} {{metric}}",
                            ),
                        ),
                    ),
                    PanelDef(
                        "Labelled predictions by variant",
                        (_q("shipyard_monitor_performance_labels", "{{resource}} {{variant}}"),),
                    ),
                ),
            ),
            (
                "Predictions",
                (
                    PanelDef(
                        "Mean prediction by variant",
                        (
                            _q(
                                "sum by (resource, variant) "
                                "(rate(shipyard_service_prediction_sum[15m])) / "
                                "sum by (resource, variant) "
                                "(rate(shipyard_service_prediction_count[15m]))",
                                "{{resource}} {{variant}}",
                            ),
                        ),
                    ),
                    PanelDef(
                        "Median prediction by variant",
                        (
                            _q(
                                "histogram_quantile(0.5, sum by (resource, variant, le) "
                                "(rate(shipyard_service_prediction_bucket[15m])))",
                                "{{resource}} {{variant}}",
                            ),
                        ),
                    ),
                    PanelDef(
                        "Rows per model call (p90)",
                        (
                            _q(
                                "histogram_quantile(0.9, sum by (resource, variant, le) "
                                "(rate(shipyard_service_batch_size_bucket[15m])))",
                                "{{resource}} {{variant}}",
                            ),
                        ),
                    ),
                ),
            ),
            (
                "Training",
                (
                    PanelDef(
                        "Hyper-parameter trials of the last training",
                        (_q("shipyard_model_trials", "{{resource}}"),),
                        kind="stat",
                    ),
                ),
            ),
        ),
    )


def drift() -> DashboardDef:
    return DashboardDef(
        "drift",
        "Drift",
        "Drift per feature against the training data's reference profile, and live inputs.",
        (
            (
                "Monitor",
                (
                    PanelDef(
                        "Drift detected",
                        (_q("shipyard_monitor_drift_detected", "{{resource}}"),),
                        kind="stat",
                    ),
                    PanelDef(
                        "Share of drifted features",
                        (_q("shipyard_monitor_drifted_share", "{{resource}}"),),
                        unit="percentunit",
                    ),
                    PanelDef(
                        "Drift statistic per feature",
                        (
                            _q(
                                "shipyard_monitor_feature_drift",
                                "{{resource}} {{feature}} ({{statistic}})",
                            ),
                            _q(
                                "shipyard_monitor_feature_drift_threshold",
                                "threshold {{feature}}",
                            ),
                        ),
                    ),
                    PanelDef(
                        "Drifted features",
                        (_q("shipyard_monitor_feature_drifted == 1", "{{resource}} {{feature}}"),),
                        kind="table",
                    ),
                    PanelDef(
                        "Prediction drift by variant",
                        (
                            _q(
                                "shipyard_monitor_prediction_drift",
                                "{{resource}} {{variant}} ({{statistic}})",
                            ),
                        ),
                    ),
                    PanelDef(
                        "Rows in the monitor's window",
                        (_q("shipyard_monitor_window_rows", "{{resource}}"),),
                    ),
                ),
            ),
            (
                "Live inputs",
                (
                    PanelDef(
                        "Median of each numeric input",
                        (
                            _q(
                                "histogram_quantile(0.5, sum by (resource, feature, le) "
                                "(rate(shipyard_service_input_bucket[15m])))",
                                "{{resource}} {{feature}}",
                            ),
                        ),
                    ),
                    PanelDef(
                        "Request rows failing an expectation",
                        (
                            _q(
                                "shipyard:service_failed_expectations:increase15m",
                                "{{resource}}",
                            ),
                        ),
                    ),
                ),
            ),
        ),
    )


def infrastructure() -> DashboardDef:
    return DashboardDef(
        "infrastructure",
        "Infrastructure",
        "The host from node-exporter: CPU, memory, disk, network.",
        (
            (
                "Host",
                (
                    PanelDef(
                        "CPU busy",
                        (
                            _q(
                                "1 - avg by (instance) "
                                '(rate(node_cpu_seconds_total{mode="idle"}[5m]))',
                                "{{instance}}",
                            ),
                        ),
                        unit="percentunit",
                    ),
                    PanelDef(
                        "Memory used",
                        (
                            _q(
                                "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
                                "{{instance}}",
                            ),
                        ),
                        unit="percentunit",
                    ),
                    PanelDef(
                        "Disk used",
                        (
                            _q(
                                "1 - node_filesystem_avail_bytes / node_filesystem_size_bytes",
                                "{{mountpoint}}",
                            ),
                        ),
                        unit="percentunit",
                    ),
                    PanelDef(
                        "Load (1 minute)",
                        (_q("node_load1", "{{instance}}"),),
                    ),
                    PanelDef(
                        "Network received",
                        (
                            _q(
                                "sum by (instance) (rate(node_network_receive_bytes_total[5m]))",
                                "{{instance}}",
                            ),
                        ),
                        unit="Bps",
                    ),
                ),
            ),
        ),
    )


def ab_tests(tests: Sequence[AbTestStep]) -> DashboardDef:
    per_test: list[PanelDef] = []
    for test in tests:
        service = f'resource="{test.service}"'
        arms = "|".join(arm.variant for arm in test.arms)
        per_test += [
            PanelDef(
                f"{test.name}: requests per arm ({test.metric.name} is decided from feedback)",
                (
                    _q(
                        f'{rules.REQUEST_RATE}{{{service},variant=~"{arms}"}}',
                        "{{variant}}",
                    ),
                ),
                unit="reqps",
            ),
            PanelDef(
                f"{test.name}: feedback on {test.service} (outcomes of {test.metric.name})",
                (
                    _q(
                        f"sum by (resource) (rate(shipyard_service_feedback_total{{{service}}}"
                        "[1h]))",
                        "{{resource}}",
                    ),
                ),
                unit="reqps",
            ),
        ]
    return DashboardDef(
        "ab-tests",
        "A/B tests",
        "Running tests, their sample-ratio check and traffic per arm.",
        (
            (
                "Tests",
                (
                    PanelDef(
                        "Running",
                        (_q("shipyard_ab_test_running", "{{resource}}"),),
                        kind="stat",
                    ),
                    PanelDef(
                        "Sample-ratio mismatch p-value (alert below 0.001)",
                        (_q("shipyard_ab_test_srm_p_value", "{{resource}}"),),
                    ),
                    *per_test,
                ),
            ),
        ),
    )


def business(services: Sequence[ServiceStep], tests: Sequence[AbTestStep]) -> DashboardDef:
    metrics = sorted({test.metric.name for test in tests})
    named = f" (A/B test metrics: {', '.join(metrics)})" if metrics else ""
    panels = [
        PanelDef(
            f"Feedback outcomes per service{named}",
            (
                _q(
                    "sum by (resource) (increase(shipyard_service_feedback_total[1h]))",
                    "{{resource}}",
                ),
            ),
        ),
        PanelDef(
            "Predictions per hour per service",
            (
                _q(
                    "sum by (resource) (increase(shipyard_service_requests_total"
                    f'{{{rules.PREDICT},status="200"}}[1h]))',
                    "{{resource}}",
                ),
            ),
        ),
    ]
    for service in services:
        match = f'resource="{service.id}"'
        panels.append(
            PanelDef(
                f"{service.name}: feedback per answered prediction",
                (
                    _q(
                        f"sum(increase(shipyard_service_feedback_total{{{match}}}[1h])) / "
                        f"sum(increase(shipyard_service_requests_total{{{match},"
                        f'{rules.PREDICT},status="200"}}[1h]))',
                        service.name,
                    ),
                ),
                unit="percentunit",
            )
        )
    return DashboardDef(
        "business",
        "Business metrics",
        "What the services deliver: predictions answered and the outcomes fed back.",
        (("Outcomes", tuple(panels)),),
    )


def dashboards(plan: Plan) -> list[DashboardDef]:
    """The plan's dashboards."""
    services = plan.steps_of(ServiceStep)
    tests = plan.steps_of(AbTestStep)
    return [
        system_health(),
        model_performance(),
        drift(),
        infrastructure(),
        ab_tests(tests),
        business(services, tests),
    ]
