"""`shipyard observability up|down|status`: the Prometheus stack as local processes.

Prometheus, the Pushgateway, Alertmanager, node-exporter and, when the plan has alert routes,
Shipyard's alert receiver run as ManagedProcesses (pid file and log under the state folder),
listening on 127.0.0.1 at the profile's `observability:` ports, with their data in
<state>/observability/. `up` renders the configuration there first; on a stack already up it
renders again and asks Prometheus and Alertmanager to reload. `down` stops them by pid.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from shipyard.compiler.alerts import AlertStep
from shipyard.compiler.plan import Plan
from shipyard.errors import ShipyardError
from shipyard.observability.render import check_stack, render_stack
from shipyard.ports import MARKER, belongs_to, listener
from shipyard.processes import ManagedProcess, http_ok
from shipyard.settings import StateLayout
from shipyard.spec.profiles import ObservabilitySettings

LOCAL = "127.0.0.1"
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Component:
    """One process of the stack: how it starts and how it says it is ready."""

    name: str
    port: int
    setting: str = ""
    """The `observability:` field of its port, for messages."""
    argv: tuple[str, ...] = ()
    health_path: str | None = "/-/ready"
    """Path that answers 2xx once ready; None: ready once the port accepts connections."""
    reload: bool = False

    @property
    def url(self) -> str:
        return f"http://{LOCAL}:{self.port}"

    def ready(self) -> bool:
        if self.health_path is None:
            return _accepts(self.port)
        return http_ok(self.url + self.health_path)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOCAL, port), timeout=1.0):
            return True
    except OSError:
        return False


def folder(plan: Plan) -> Path:
    """<state>/observability: rendered configuration and every component's data."""
    return StateLayout(plan.runtime.state_dir).root / "observability"


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:  # Debian's packages are named as their binaries
        raise ShipyardError(
            f"{name} is not installed: `shipyard observability up` runs it",
            hint=f"install it: `sudo apt-get install {name}`",
        )
    return found


def _shipyard_argv() -> tuple[str, ...]:
    """This Python running Shipyard's CLI (shipyard/cli.py runs as a module)."""
    return (sys.executable, "-m", "shipyard.cli")


def components(plan: Plan, settings: ObservabilitySettings) -> list[Component]:
    """The stack's processes in start order (Prometheus last: it sends to Alertmanager)."""
    data = folder(plan)
    config = data / "config"
    found = [
        Component(
            "node-exporter",
            settings.node_exporter_port,
            "node_exporter_port",
            (
                "prometheus-node-exporter",
                f"--web.listen-address={LOCAL}:{settings.node_exporter_port}",
                f"--collector.textfile.directory={plan.blocks.metrics.textfile_dir}",
            ),
            health_path="/metrics",
        ),
        Component(
            "pushgateway",
            settings.pushgateway_port,
            "pushgateway_port",
            (
                "prometheus-pushgateway",
                f"--web.listen-address={LOCAL}:{settings.pushgateway_port}",
                f"--persistence.file={data / 'pushgateway' / 'metrics.data'}",
            ),
        ),
        Component(
            "alertmanager",
            settings.alertmanager_port,
            "alertmanager_port",
            (
                "prometheus-alertmanager",
                f"--config.file={config / 'alertmanager.yml'}",
                f"--storage.path={data / 'alertmanager'}",
                f"--web.listen-address={LOCAL}:{settings.alertmanager_port}",
                "--cluster.listen-address=",  # one local instance: no gossip port
            ),
            reload=True,
        ),
    ]
    if plan.steps_of(AlertStep):
        found.append(
            Component(
                "alert-receiver",
                settings.receiver_port,
                "receiver_port",
                (
                    *_shipyard_argv(),
                    "-f",
                    str(plan.runtime.spec_path),
                    "alerts",
                    "receive",
                    "--host",
                    LOCAL,
                    "--port",
                    str(settings.receiver_port),
                ),
                health_path="/-/healthy",
            )
        )
    found.append(
        Component(
            "prometheus",
            settings.prometheus_port,
            "prometheus_port",
            (
                "prometheus",
                f"--config.file={config / 'prometheus.yml'}",
                f"--storage.tsdb.path={data / 'prometheus'}",
                f"--storage.tsdb.retention.time={settings.retention}",
                f"--web.listen-address={LOCAL}:{settings.prometheus_port}",
                "--web.enable-lifecycle",
            ),
            reload=True,
        )
    )
    return found


def process(plan: Plan, component: Component) -> ManagedProcess:
    layout = StateLayout(plan.runtime.state_dir)
    return ManagedProcess(f"observability-{component.name}", layout.run, layout.logs)


def render_into_state(plan: Plan, settings: ObservabilitySettings) -> Path:
    """Render the configuration into <state>/observability/config and check it."""
    config = folder(plan) / "config"
    rendered = render_stack(plan, settings, config)
    rendered.write(config)
    check_stack(config, rendered)
    return config


def up(plan: Plan, settings: ObservabilitySettings, timeout: float = START_TIMEOUT) -> list[str]:
    """Start what is not running (idempotent); returns a line per component."""
    render_into_state(plan, settings)
    for sub in ("prometheus", "alertmanager", "pushgateway"):
        (folder(plan) / sub).mkdir(parents=True, exist_ok=True)
    Path(plan.blocks.metrics.textfile_dir).mkdir(parents=True, exist_ok=True)
    lines = []
    started: list[ManagedProcess] = []
    try:
        for component in components(plan, settings):
            managed = process(plan, component)
            pid = managed.pid()
            if pid is not None:
                _wait(managed, component, timeout)
                if component.reload:
                    _reload(component)
                lines.append(f"{component.name:<15} {component.url}  already up (pid {pid})")
                continue
            _ensure_port_free(plan, settings, component)
            argv = list(component.argv)
            if not argv[0].startswith("/"):
                argv[0] = _binary(argv[0])
            env = {**os.environ, MARKER: plan.runtime.state_dir}
            pid = managed.start(argv, env, Path(plan.runtime.project_dir))
            started.append(managed)
            _wait(managed, component, timeout)
            lines.append(f"{component.name:<15} {component.url}  started (pid {pid})")
    except ShipyardError:
        for managed in reversed(started):  # leave nothing half up behind
            managed.stop(timeout=10.0)
        raise
    return lines


def _ensure_port_free(plan: Plan, settings: ObservabilitySettings, component: Component) -> None:
    found = listener(component.port)
    taken = found is not None or _accepts(component.port)
    if not taken:
        return
    if found is not None and belongs_to(found, plan.runtime.state_dir, None):
        why = f"this project's own {found.describe()}, started without its pid file"
    else:
        why = found.describe() if found is not None else "a process this user cannot see"
    raise ShipyardError(
        f"port {component.port} for {component.name} is taken: {why}",
        hint=f"stop that process, or give {component.name} another port: "
        f"`profiles.{plan.profile}.observability.{component.setting}: {component.port + 10}`",
    )


def _wait(managed: ManagedProcess, component: Component, timeout: float) -> None:
    """Wait until the component is ready; else stop it and raise with its log's tail."""
    managed.wait_until(
        component.url,
        timeout,
        ready=component.ready,
        port_taken_hint=f"port {component.port} is taken: free it or set "
        f"`observability.{component.setting}`",
    )


def _reload(component: Component) -> None:
    """Ask a running Prometheus or Alertmanager to read its (just rendered) configuration."""
    request = urllib.request.Request(component.url + "/-/reload", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10):  # http URL of the local stack  # nosec B310
            return
    except (urllib.error.URLError, OSError) as exc:
        raise ShipyardError(
            f"{component.name} at {component.url} did not reload its configuration: {exc}",
            hint="restart the stack: `shipyard observability down`, then `up`",
        ) from None


def down(plan: Plan, settings: ObservabilitySettings) -> list[str]:
    """Stop every component by its pid (idempotent); returns a line per component."""
    lines = []
    for component in reversed(components(plan, settings)):
        managed = process(plan, component)
        pid = managed.pid()
        stopped = managed.stop()
        lines.append(
            f"{component.name:<15} stopped (pid {pid})"
            if stopped
            else f"{component.name:<15} was not running"
        )
    return lines


@dataclass(frozen=True)
class Status:
    component: Component
    pid: int | None
    ready: bool

    def line(self) -> str:
        state = "up" if self.ready else ("starting or unhealthy" if self.pid else "down")
        pid = f" (pid {self.pid})" if self.pid else ""
        return f"{self.component.name:<15} {self.component.url}  {state}{pid}"


def status(plan: Plan, settings: ObservabilitySettings) -> list[Status]:
    """Each component with its pid and whether it answers its health check."""
    found = []
    for component in components(plan, settings):
        pid = process(plan, component).pid()
        found.append(Status(component, pid, pid is not None and component.ready()))
    return found
