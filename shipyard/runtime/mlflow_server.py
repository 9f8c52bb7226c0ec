"""The profile's local MLflow tracking server (`shipyard mlflow start|stop|status`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from shipyard.compiler.plan import Plan
from shipyard.errors import ShipyardError
from shipyard.ports import belongs_to, listener
from shipyard.processes import ManagedProcess, http_ok
from shipyard.runtime.server import environment_for
from shipyard.settings import StateLayout


def mlflow_process(plan: Plan) -> ManagedProcess:
    layout = StateLayout(plan.runtime.state_dir)
    return ManagedProcess("mlflow-server", layout.run, layout.logs)


def tracking_uri(plan: Plan) -> str:
    return plan.blocks.mlflow.tracking_uri


def browse_command(uri: str) -> str:
    """The `mlflow ui` command to browse a SQLite store: quiet (no telemetry) and one process
    (no job-execution workers, one uvicorn worker), as the profile's own server runs."""
    return (
        "MLFLOW_DISABLE_TELEMETRY=true MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false "
        f"mlflow ui --backend-store-uri {uri} --workers 1"
    )


def start(plan: Plan, timeout: float = 180.0) -> str:
    """Start the local MLflow server the profile asks for (idempotent); returns its URL."""
    server = plan.mlflow_server
    if server is None:
        uri = tracking_uri(plan)
        browse = browse_command(uri if uri.startswith("sqlite:") else "<uri>")
        raise ShipyardError(
            f"profile '{plan.profile}' has no local MLflow server to start: it tracks to {uri}",
            hint="set `mlflow.backend_store_uri` in the profile to run one, or browse the "
            f"store with `{browse}`",
        )
    url = f"http://127.0.0.1:{server.port}"
    if http_ok(url + "/health"):
        found = listener(server.port)
        if found is not None and not belongs_to(
            found, plan.runtime.state_dir, mlflow_process(plan).pid()
        ):
            raise ShipyardError(
                f"an MLflow server answers on port {server.port}, but it is not this project's "
                f"({found.describe()})",
                hint="stop that server, or give this project a port of its own: "
                f"`profiles.{plan.profile}.mlflow.port: {server.port + 1}`",
            )
        return url
    from shipyard.secrets import resolve

    backend = resolve(server.backend_store_uri, use_prefect=False) or ""
    if backend.startswith("postgresql://"):
        # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; the locked driver is psycopg2
        backend = "postgresql+psycopg2://" + backend.removeprefix("postgresql://")
    if backend.startswith("postgresql"):
        from shipyard.databases import ensure_postgres_database

        ensure_postgres_database(backend, purpose="MLflow")
    artifacts = str(server.artifact_root)
    if "://" not in artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **environment_for(plan)}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    process = mlflow_process(plan)
    process.start(
        [
            mlflow,
            "server",
            "--backend-store-uri",
            backend,
            "--default-artifact-root",
            artifacts,
            "--host",
            "127.0.0.1",
            "--port",
            str(server.port),
            "--workers",
            "1",
        ],
        env,
        Path(plan.runtime.project_dir),
    )
    try:
        process.wait_until(url + "/health", timeout)
    except ShipyardError:
        process.stop()
        raise
    return url


def command(plan: Plan, action: str) -> int:
    if action == "start":
        url = start(plan)
        print(f"MLflow server ready: {url}  (stop it with `shipyard mlflow stop`)")
        return 0
    if action == "stop":
        stopped = mlflow_process(plan).stop()
        print("MLflow server stopped" if stopped else "no local MLflow server was running")
        return 0
    uri = tracking_uri(plan)
    if uri.startswith("http"):
        up = http_ok(uri + "/health")
        print(f"MLflow tracking server {uri}: {'up' if up else 'down'}")
        return 0 if up else 1
    print(f"MLflow tracks to {uri} (no server needed); browse it with `{browse_command(uri)}`")
    return 0
