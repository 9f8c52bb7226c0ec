"""Process environment: telemetry switches and the state folder layout. Imports nothing heavy."""

from __future__ import annotations

from pathlib import Path

# Every default-on phone-home switch of the stack, turned off.
TELEMETRY_OFF: dict[str, str] = {
    "DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "True",
    "DVC_NO_ANALYTICS": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "FEAST_USAGE": "False",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}

DEFAULT_STATE_DIR = ".shipyard"


def state_dir_for(project_dir: Path, configured: str | None = None) -> Path:
    """The state folder: the profile's state_dir, else .shipyard beside pipelines.yaml."""
    path = Path(configured or DEFAULT_STATE_DIR)
    return (path if path.is_absolute() else project_dir / path).resolve()


class StateLayout:
    """Where each kind of runtime state lives inside the state folder."""

    def __init__(self, state_dir: Path | str) -> None:
        self.root = Path(state_dir)

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def dvc_cache(self) -> Path:
        return self.root / "dvc-cache"

    @property
    def dvc_remote(self) -> Path:
        return self.root / "dvc-remote"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.sqlite"

    @property
    def mlflow(self) -> Path:
        return self.root / "mlflow"

    @property
    def bentoml_home(self) -> Path:
        return self.root / "bentoml"
