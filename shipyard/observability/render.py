"""`shipyard observability render`: the stack's configuration files, from the plan.

Pure up to `write_stack`, which writes them, and `check_stack`, which runs promtool and amtool
on them when those binaries exist. Layout of the output folder:

    prometheus.yml                 scrape configs, rule files, the Alertmanager
    rules/<group>.yml              recording and alerting rules (see rules.py)
    alertmanager.yml               one webhook receiver per alert route, routed by severity
    grafana/provisioning/datasources/shipyard.yml
    grafana/provisioning/dashboards/shipyard.yml
    grafana/dashboards/<uid>.json  built with grafana-foundation-sdk (see dashboards.py)
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from shipyard.compiler.alerts import AlertStep
from shipyard.compiler.plan import Plan
from shipyard.compiler.services import ServiceStep
from shipyard.errors import ShipyardError
from shipyard.observability import dashboards, rules
from shipyard.spec.alerts import SEVERITIES, Severity
from shipyard.spec.profiles import ObservabilitySettings

NULL_RECEIVER = "null"
LOCAL = "127.0.0.1"


@dataclass(frozen=True)
class Rendered:
    """The files of the stack: path relative to the output folder -> text."""

    files: dict[str, str]

    def write(self, folder: Path) -> list[Path]:
        written = []
        for name, text in sorted(self.files.items()):
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
        return written


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)


def _address(host: str, port: int) -> str:
    """A scrape target for a service bound to `host` (0.0.0.0 and :: are reached locally)."""
    return f"{LOCAL if host in ('0.0.0.0', '::', '') else host}:{port}"


def scrape_configs(plan: Plan, settings: ObservabilitySettings) -> list[dict[str, Any]]:
    """Prometheus itself, the Pushgateway(s), node-exporter and every service's /metrics."""
    configs: list[dict[str, Any]] = [
        {
            "job_name": "prometheus",
            "static_configs": [{"targets": [f"{LOCAL}:{settings.prometheus_port}"]}],
        },
        {
            # flows push batch gauges labelled {flow, resource, project}: keep their labels
            "job_name": "pushgateway",
            "honor_labels": True,
            "static_configs": [{"targets": _pushgateways(plan, settings)}],
        },
        {
            # host metrics, and the flows' *.prom files (textfile collector) without a gateway
            "job_name": "node",
            "static_configs": [{"targets": [f"{LOCAL}:{settings.node_exporter_port}"]}],
        },
        {
            "job_name": "alertmanager",
            "static_configs": [{"targets": [f"{LOCAL}:{settings.alertmanager_port}"]}],
        },
    ]
    services = plan.steps_of(ServiceStep)
    if services:
        configs.append(
            {
                "job_name": rules.SERVICE_JOB,
                "metrics_path": "/metrics",
                # the services label their own series {project, resource}; `up` gets the
                # target's labels, so it names the service too
                "honor_labels": True,
                "static_configs": [_service_target(service) for service in services],
            }
        )
    return configs


def _service_target(service: ServiceStep) -> dict[str, Any]:
    target: dict[str, Any] = {
        "targets": [_address(service.host, service.port)],
        "labels": {"project": service.project, "resource": service.id, "service": service.name},
    }
    return target


def _pushgateways(plan: Plan, settings: ObservabilitySettings) -> list[str]:
    """The local Pushgateway, and the profile's when flows push somewhere else."""
    targets = [f"{LOCAL}:{settings.pushgateway_port}"]
    url = plan.blocks.metrics.pushgateway_url
    if url:
        parts = urlsplit(url)
        if parts.hostname:
            remote = f"{parts.hostname}:{parts.port or 9091}"
            if remote not in targets and remote != f"localhost:{settings.pushgateway_port}":
                targets.append(remote)
    return targets


def prometheus_config(
    plan: Plan, settings: ObservabilitySettings, groups: list[rules.RuleGroup]
) -> dict[str, Any]:
    configs = scrape_configs(plan, settings)
    tls = {s.id: s for s in plan.steps_of(ServiceStep) if s.tls is not None}
    if tls:  # services serving TLS are scraped over https, in a job of their own
        plain = [c for c in configs if c["job_name"] == rules.SERVICE_JOB]
        for config in plain:
            config["static_configs"] = [
                t for t in config["static_configs"] if t["labels"]["resource"] not in tls
            ]
        configs.append(
            {
                "job_name": rules.SERVICE_JOB + "-tls",
                "scheme": "https",
                "honor_labels": True,
                "tls_config": {"insecure_skip_verify": True},
                "static_configs": [_service_target(s) for s in tls.values()],
            }
        )
    return {
        "global": {
            "scrape_interval": settings.scrape_interval,
            "evaluation_interval": settings.evaluation_interval,
            "external_labels": {"project": plan.project, "profile": plan.profile},
        },
        "rule_files": [f"rules/{group.name}.yml" for group in groups],
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [f"{LOCAL}:{settings.alertmanager_port}"]}]}
            ]
        },
        "scrape_configs": configs,
    }


def _at_or_above(severity: Severity) -> list[str]:
    return list(SEVERITIES[SEVERITIES.index(severity) :])


def default_route(routes: list[AlertStep]) -> AlertStep:
    """The route alerts without a known severity go to: one named `default`, else the one
    that takes the most severities (then the first by name)."""
    named = [r for r in routes if r.name == "default"]
    if named:
        return named[0]
    return min(routes, key=lambda r: (SEVERITIES.index(r.min_severity), r.name))


def alertmanager_config(plan: Plan, settings: ObservabilitySettings) -> dict[str, Any]:
    """One webhook receiver per alert route; a route gets the alerts at or above its
    `min_severity` (every matching route gets them: `continue`); alerts of a severity below
    every route's are dropped (the null receiver); the rest, without a known severity, go to
    the default route."""
    routes = sorted(plan.steps_of(AlertStep), key=lambda r: r.name)
    root: dict[str, Any] = {
        "group_by": ["alertname", "project", "resource"],
        "group_wait": "30s",
        "group_interval": "5m",
        "repeat_interval": "4h",
    }
    receivers: list[dict[str, Any]] = [{"name": NULL_RECEIVER}]
    if not routes:
        return {"route": {"receiver": NULL_RECEIVER, **root}, "receivers": receivers}
    children: list[dict[str, Any]] = []
    for route in routes:
        receivers.append(
            {
                "name": route.name,
                "webhook_configs": [
                    {
                        "url": f"http://{LOCAL}:{settings.receiver_port}/alertmanager/{route.name}",
                        "send_resolved": True,
                    }
                ],
            }
        )
        severities = "|".join(_at_or_above(route.min_severity))
        children.append(
            {
                "receiver": route.name,
                "matchers": [f'severity=~"{severities}"'],
                "continue": True,
            }
        )
    lowest = min(SEVERITIES.index(route.min_severity) for route in routes)
    if lowest > 0:  # severities below every route's floor: told to nobody
        below = "|".join(SEVERITIES[:lowest])
        children.append({"receiver": NULL_RECEIVER, "matchers": [f'severity=~"{below}"']})
    return {
        "route": {"receiver": default_route(routes).name, **root, "routes": children},
        "receivers": receivers,
    }


def grafana_provisioning(
    settings: ObservabilitySettings, dashboards_dir: Path
) -> dict[str, dict[str, Any]]:
    """Grafana's datasource and dashboard-provider files (paths under grafana/provisioning)."""
    return {
        "datasources/shipyard.yml": {
            "apiVersion": 1,
            "datasources": [
                {
                    "name": "Shipyard Prometheus",
                    "uid": dashboards.DATASOURCE_UID,
                    "type": "prometheus",
                    "access": "proxy",
                    "url": f"http://{LOCAL}:{settings.prometheus_port}",
                    "isDefault": True,
                    "editable": False,
                }
            ],
        },
        "dashboards/shipyard.yml": {
            "apiVersion": 1,
            "providers": [
                {
                    "name": "shipyard",
                    "folder": "Shipyard",
                    "type": "file",
                    "disableDeletion": False,
                    "allowUiUpdates": False,
                    "updateIntervalSeconds": 30,
                    "options": {"path": str(dashboards_dir)},
                }
            ],
        },
    }


def render_stack(plan: Plan, settings: ObservabilitySettings, folder: Path) -> Rendered:
    """Every file of the stack for the output folder `folder` (Grafana's provider points at
    its absolute dashboards folder)."""
    groups = rules.rule_groups(plan)
    files = {
        "prometheus.yml": _dump(prometheus_config(plan, settings, groups)),
        "alertmanager.yml": _dump(alertmanager_config(plan, settings)),
    }
    for group in groups:
        files[f"rules/{group.name}.yml"] = _dump(group.to_yaml())
    dashboards_dir = folder.resolve() / "grafana" / "dashboards"
    for name, data in grafana_provisioning(settings, dashboards_dir).items():
        files[f"grafana/provisioning/{name}"] = _dump(data)
    for board in dashboards.dashboards(plan):
        model = board.build(plan.project)
        files[f"grafana/dashboards/{board.uid}.json"] = json.dumps(model, indent=2) + "\n"
    return Rendered(files)


# -- checks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    tool: str
    argv: tuple[str, ...]
    file: str


def checks(folder: Path, rendered: Rendered) -> list[Check]:
    """promtool on the rules and the config (which reads the rules too), amtool on
    Alertmanager's config."""
    rule_files = sorted(name for name in rendered.files if name.startswith("rules/"))
    found = [Check("promtool", ("check", "rules", str(folder / r)), r) for r in rule_files]
    found.append(
        Check("promtool", ("check", "config", str(folder / "prometheus.yml")), "prometheus.yml")
    )
    found.append(
        Check("amtool", ("check-config", str(folder / "alertmanager.yml")), "alertmanager.yml")
    )
    return found


def check_stack(folder: Path, rendered: Rendered, required: bool = False) -> list[str]:
    """Run every check whose tool is installed; returns the tools that were missing (with
    `required`, a missing tool is an error). A failing check raises, naming the file."""
    missing = []
    for check in checks(folder, rendered):
        binary = shutil.which(check.tool)
        if binary is None:
            if required:
                raise ShipyardError(
                    f"{check.tool} is not installed: cannot check {check.file}",
                    hint="install prometheus and prometheus-alertmanager (apt-get)",
                )
            missing.append(check.tool)
            continue
        done = subprocess.run(
            [binary, *check.argv], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()
            raise ShipyardError(
                f"{check.tool} rejects {folder / check.file}:\n{output}",
                hint="this file is rendered from the plan: report it, with the plan "
                "(`shipyard plan -o plan.json`)",
            )
    return sorted(set(missing))
