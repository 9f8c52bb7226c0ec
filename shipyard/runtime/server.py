"""The profile's Prefect server: environment for child processes, and the local server's life."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from shipyard.compiler.plan import Plan
from shipyard.databases import ensure_postgres_database, prefect_database_env
from shipyard.errors import ServiceUnavailable, ShipyardError
from shipyard.ports import Listener, belongs_to, listener
from shipyard.processes import ManagedProcess, http_ok
from shipyard.settings import TELEMETRY_OFF, StateLayout


def is_local(plan: Plan) -> bool:
    """True when Shipyard runs the profile's Prefect server itself."""
    return plan.prefect.local


def environment_for(plan: Plan, database_url: str | None = None) -> dict[str, str]:
    """Variables that point Prefect, MLflow and BentoML at this project's state and server."""
    layout = StateLayout(plan.runtime.state_dir)
    env = {
        **TELEMETRY_OFF,
        "SHIPYARD_STATE_DIR": str(layout.root),
        "SHIPYARD_SPEC": str(Path(plan.runtime.project_dir) / "pipelines.yaml"),
        "PREFECT_HOME": str(layout.prefect_home),
        "PREFECT_API_URL": plan.prefect.api_url,
        "PREFECT_LOGGING_EXTRA_LOGGERS": "shipyard",
        "MLFLOW_TRACKING_URI": f"sqlite:///{layout.mlflow / 'mlflow.db'}",
        "BENTOML_HOME": str(layout.bentoml_home),
    }
    if database_url:  # with its TLS parameters as Prefect's asyncpg driver takes them
        env.update(prefect_database_env(database_url))
    return env


def activate(plan: Plan, require_server: bool) -> bool:
    """Point this process at the plan's state and Prefect server.

    Returns True when a server answers. Without one, a local profile falls back to Prefect's
    ephemeral mode (same database, no UI) unless `require_server` is set.
    """
    env = environment_for(plan)
    for folder in ("PREFECT_HOME", "BENTOML_HOME"):
        Path(env[folder]).mkdir(parents=True, exist_ok=True)
    (StateLayout(plan.runtime.state_dir).mlflow).mkdir(parents=True, exist_ok=True)
    for key, value in env.items():
        if key == "PREFECT_API_URL":
            continue
        os.environ[key] = value
    if http_ok(plan.prefect.api_url.rstrip("/") + "/health"):
        if is_local(plan):
            ensure_own_server(plan)
        os.environ["PREFECT_API_URL"] = plan.prefect.api_url
        return True
    if require_server or not is_local(plan):
        hint = (
            "start it with `shipyard server start`"
            if is_local(plan)
            else "check `prefect.api_url` in the profile and that the server is up"
        )
        raise ServiceUnavailable(
            f"the Prefect server at {plan.prefect.api_url} is not reachable", hint=hint
        )
    os.environ.pop("PREFECT_API_URL", None)
    return False


def server_process(plan: Plan) -> ManagedProcess:
    layout = StateLayout(plan.runtime.state_dir)
    return ManagedProcess("prefect-server", layout.run, layout.logs)


def _port(plan: Plan) -> int:
    return int(plan.prefect.api_url.rsplit(":", 1)[-1].split("/")[0])


def foreign_server(plan: Plan) -> Listener | None:
    """The process answering on the local server's port when it is not this project's."""
    found = listener(_port(plan))
    if found is None or belongs_to(found, plan.runtime.state_dir, server_process(plan).pid()):
        return None
    return found


def ensure_own_server(plan: Plan) -> None:
    """Refuse another project's server on this project's port: registering deployments there
    would run this project's flows on the other's database."""
    found = foreign_server(plan)
    if found is not None:
        raise ShipyardError(
            f"a Prefect server answers on port {_port(plan)}, but it is not this project's "
            f"({found.describe()})",
            hint="stop that server, or give this project a port of its own: "
            f"`profiles.{plan.profile}.prefect.port: {_port(plan) + 1}`",
        )


def start(plan: Plan, database_url: str | None = None, timeout: float = 180.0) -> str:
    """Start the local Prefect server (idempotent); returns its UI URL."""
    if not is_local(plan):
        raise ShipyardError(
            f"profile '{plan.profile}' uses the Prefect server at {plan.prefect.api_url}; "
            "Shipyard only starts local servers",
            hint="start that server where it runs, or unset `prefect.api_url`",
        )
    ui = plan.prefect.api_url.removesuffix("/api")
    health = plan.prefect.api_url + "/health"
    process = server_process(plan)
    if http_ok(health):
        ensure_own_server(plan)
        return ui
    if database_url:
        ensure_postgres_database(database_url, purpose="Prefect")
    port = plan.prefect.api_url.rsplit(":", 1)[-1].split("/")[0]
    env = {**os.environ, **environment_for(plan, database_url)}
    env.pop("PREFECT_API_URL", None)  # the server must not try to reach itself
    StateLayout(plan.runtime.state_dir).prefect_home.mkdir(parents=True, exist_ok=True)
    prefect = str(Path(sys.executable).with_name("prefect"))
    process.start(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", port],
        env,
        Path(plan.runtime.project_dir),
    )
    try:
        process.wait_until(health, timeout)
    except ServiceUnavailable:
        process.stop()
        raise
    return ui


def stop(plan: Plan) -> bool:
    return server_process(plan).stop()


def command(plan: Plan, action: str) -> int:
    """`shipyard server start|stop|status`."""
    from shipyard.secrets import resolve

    database_url = resolve(plan.prefect.database_url, use_prefect=False)
    if action == "start":
        ui = start(plan, database_url)
        pid = server_process(plan).pid()
        print(
            f"Prefect server ready: UI {ui}  API {plan.prefect.api_url}"
            + (f"  (pid {pid})" if pid else "")
        )
        print('  use the `prefect` CLI against it: eval "$(shipyard env)"')
        print("  stop it with: shipyard server stop")
        return 0
    if action == "stop":
        if stop(plan):
            print("Prefect server stopped")
            return 0
        found = foreign_server(plan) if is_local(plan) else None
        print(
            "no Prefect server of this project was running"
            + (
                f"; the one on port {_port(plan)} is another's ({found.describe()})"
                if found
                else ""
            )
        )
        return 0
    healthy = http_ok(plan.prefect.api_url + "/health")
    print(f"Prefect server at {plan.prefect.api_url}: {'up' if healthy else 'down'}")
    return 0 if healthy else 1
