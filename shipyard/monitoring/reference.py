"""The reference profile: what production is compared against, built once when a model trains.

`build_reference` summarises the training rows' features and the model's output on the holdout
(`shipyard.stats.drift.build_profile`: quantile bins, category counts, a sorted sketch) into a
few hundred kilobytes of JSON, stored as an artifact of the training run (`PROFILE_ARTIFACT`),
so it belongs to every version registered from that run. `load_reference` fetches a version's
profile once and keeps it in the state folder: later windows never read the training data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.compiler.monitoring import PREDICTION, PROFILE_ARTIFACT
from shipyard.errors import ShipyardError
from shipyard.stats.drift import DriftProfile, build_profile


def prediction_values(y_pred: Any, y_score: Any) -> Any:
    """The output the profile and the window compare: a binary classifier's positive-class
    probability, else the prediction (a multiclass label is categorical)."""
    if y_score is not None and np.ndim(y_score) == 1:
        return np.asarray(y_score, dtype=float)
    return np.asarray(y_pred)


def build_reference(
    features: dict[str, Any], categorical: list[str], predictions: Any
) -> DriftProfile:
    """The profile of the training features plus the model's output (column PREDICTION)."""
    columns = {name: values for name, values in features.items()}
    columns[PREDICTION] = predictions
    numeric_output = np.issubdtype(np.asarray(predictions).dtype, np.number)
    return build_profile(
        columns,
        categorical=[*categorical, *([] if numeric_output else [PREDICTION])],
    )


def write_reference(profile: DriftProfile, folder: Path) -> Path:
    """Write the profile where the training run's artifacts are gathered."""
    target = folder / Path(PROFILE_ARTIFACT).name
    target.write_text(profile.to_json(), encoding="utf-8")
    return target


def load_reference(
    registered_name: str, version: int, run_id: str, cache_dir: Path
) -> DriftProfile:
    """The profile of a model version (from its training run), cached under `cache_dir`.

    Raises:
        ShipyardError: The run has no profile (trained before profiles were stored) or it
            cannot be read.
    """
    cached = cache_dir / f"{registered_name}-v{version}.json"
    if not cached.exists():
        import mlflow

        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=PROFILE_ARTIFACT, dst_path=str(cache_dir / "tmp")
            )
        except Exception as exc:  # MLflow raises several types for a missing artifact
            raise ShipyardError(
                f"model '{registered_name}' version {version} has no reference profile "
                f"(run {run_id}: {str(exc).splitlines()[0][:200]})",
                hint="retrain it with this Shipyard (`shipyard run train-model <model> --force`)"
                ": the profile is stored with each training run",
                resource=f"model.{registered_name}",
            ) from None
        cache_dir.mkdir(parents=True, exist_ok=True)
        Path(local).replace(cached)
    try:
        return DriftProfile.from_dict(json.loads(cached.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        cached.unlink(missing_ok=True)
        raise ShipyardError(
            f"the reference profile of '{registered_name}' version {version} is unreadable: {exc}",
            hint="run the monitor again (it fetches the profile anew); if it persists, retrain",
            resource=f"model.{registered_name}",
        ) from None
