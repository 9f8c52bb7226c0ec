"""MLflow set-up for a run: tracking URI, reachability, experiment, the training's run,
requirements, git commit."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from shipyard.errors import ServiceUnavailable, ShipyardError
from shipyard.processes import http_ok

log = logging.getLogger("shipyard.training.tracking")

# MLflow retries HTTP calls for minutes by default; a dead server should fail in seconds.
HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def use_tracking(tracking_uri: str, resource: str) -> None:
    """Point MLflow at the tracking URI; an unreachable server is a clear error, not a hang."""
    import mlflow

    for key, value in HTTP_ENV.items():
        os.environ.setdefault(key, value)
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    elif tracking_uri.startswith(("http://", "https://")) and not _reachable(tracking_uri):
        raise ServiceUnavailable(
            f"the MLflow tracking server at {tracking_uri} is not reachable",
            hint="start it with `shipyard mlflow start` (or check `mlflow.tracking_uri` in the "
            "profile / the MLflow block in the Prefect UI); nothing was trained or registered",
            resource=resource,
        )
    mlflow.set_tracking_uri(tracking_uri)


def _reachable(uri: str) -> bool:
    from shipyard.retry import retrying

    def check() -> bool:
        if not http_ok(uri.rstrip("/") + "/health", timeout=5):
            raise ConnectionError(uri)
        return True

    try:
        return retrying(
            check,
            what=f"MLflow health at {uri}",
            retry_on=(ConnectionError,),
            attempts=3,
            max_wait=2,
        )
    except ConnectionError:
        return False


def ensure_experiment(name: str, artifact_root: str | None, tracking_uri: str) -> str:
    """The experiment's id; with a local store its artifacts go under the state folder."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    location = None
    if artifact_root and not tracking_uri.startswith(("http://", "https://")):
        root = Path(artifact_root)
        root.mkdir(parents=True, exist_ok=True)
        location = (root / name.replace("/", "_")).as_uri()
    return str(mlflow.create_experiment(name, artifact_location=location))


def experiment_name(project: str, model: str) -> str:
    """The MLflow experiment of a model's trainings."""
    return f"shipyard/{project}/{model}"


def start_run(experiment_id: str, name: str, tags: dict[str, str]) -> str:
    """Create the training's MLflow run (RUNNING) before training starts, so that a training
    killed half-way leaves a run the next one finds and ends (`shipyard.training.recovery`)."""
    from mlflow import MlflowClient

    return str(MlflowClient().create_run(experiment_id, run_name=name, tags=tags).info.run_id)


@contextmanager
def failed_on_error(run_id: str) -> Iterator[None]:
    """End the run as FAILED, saying why, when the block raises while the run still runs."""
    try:
        yield
    except BaseException as exc:
        _end_failed(run_id, exc)
        raise


def _end_failed(run_id: str, exc: BaseException) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from shipyard.training.recovery import FAILURE_TAG

    why = exc.message if isinstance(exc, ShipyardError) else f"{type(exc).__name__}: {exc}"
    client = MlflowClient()
    try:
        status = client.get_run(run_id).info.status
        if status == "FINISHED":
            return  # e.g. registered, then something after it failed: the run stands
        client.set_tag(run_id, FAILURE_TAG, why[:5000])
        if status == "RUNNING":  # MLflow ends a run it was inside of as FAILED itself
            client.set_terminated(run_id, "FAILED")
    except (MlflowException, OSError) as error:  # the next run of the model ends it
        log.warning("could not end MLflow run %s as failed: %s", run_id, error)


def pip_requirements(extra: tuple[str, ...] = ()) -> list[str]:
    """Pinned requirements of a logged model, so MLflow does not spend seconds inferring them."""
    names = ("scikit-learn", "pandas", "numpy", "scipy", "cloudpickle", *extra)
    out = []
    for name in names:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit(folder: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def code_version(paths: list[Path], libraries: tuple[str, ...] = ("scikit-learn",)) -> str:
    """Digest of the training code and library versions: changes when the code changes."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    for name in libraries:
        try:
            digest.update(f"{name}=={metadata.version(name)}".encode())
        except metadata.PackageNotFoundError:
            continue
    return digest.hexdigest()


def serialization(model: Any) -> dict[str, Any]:
    """How MLflow stores the model: skops (no arbitrary code on load) for scikit-learn objects,
    trusting exactly the types of the model this process just fitted; cloudpickle otherwise
    (custom training functions may return anything)."""
    try:
        import skops.io as sio

        trusted = sio.get_untrusted_types(data=sio.dumps(model))
    except Exception:  # skops refuses objects it cannot represent: fall back to cloudpickle
        return {"serialization_format": "cloudpickle"}
    return {"serialization_format": "skops", "skops_trusted_types": trusted}
