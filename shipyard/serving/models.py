"""The models of one service bundle: loaded from their MLflow folders, fed a DataFrame built
from the request rows, each variant behind its own (adaptive) batcher."""

from __future__ import annotations

import os
import pickle  # nosec B403 - MLflow's own formats for the registry's models, see _load_model
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any

from shipyard.serving.batching import MicroBatcher, run_unbatched
from shipyard.serving.config import ModelInput, ServiceConfig
from shipyard.serving.startup import stage
from shipyard.serving.telemetry import ServiceMetrics

TRUE = ("true", "1", "yes")


@dataclass(frozen=True)
class Variant:
    """One loaded model version: `stable` or a candidate named after its registry alias."""

    name: str
    version: str
    semver: str
    model: Any
    classes: list[Any] | None
    positive: int = 1
    """The column of predict_proba a binary model's `probability` is (its positive class)."""


def _mlmodel(path: Path) -> dict[str, Any]:
    """The model folder's MLmodel file, as the YAML mapping it is ({} when there is none)."""
    import yaml

    try:
        text = (path / "MLmodel").read_text()
    except FileNotFoundError:
        return {}
    loaded = yaml.safe_load(text)
    return loaded if isinstance(loaded, dict) else {}


def _load_model(path: Path) -> Any:
    """The scikit-learn model of an MLflow model folder.

    What `mlflow.sklearn.load_model` does for a local folder, without importing MLflow: that
    import is most of a worker's start (seconds), and a worker needs none of MLflow otherwise.
    Anything this does not know for certain (no sklearn flavor, a format other than skops,
    pickle or cloudpickle, bundled code, deserialization turned off) goes through MLflow.
    """
    flavor = (_mlmodel(path).get("flavors") or {}).get("sklearn") or {}
    file = flavor.get("pickled_model")
    kind = flavor.get("serialization_format", "pickle")
    allowed = os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true").lower() in TRUE
    if not file or flavor.get("code") or kind not in ("skops", "pickle", "cloudpickle"):
        allowed = False
    if not allowed:
        import mlflow.sklearn

        return mlflow.sklearn.load_model(str(path))
    model_file = path / str(file)
    if kind == "skops":
        import skops.io

        return skops.io.load(model_file, trusted=flavor.get("skops_trusted_types"))
    with model_file.open("rb") as handle:
        if kind == "cloudpickle":
            import cloudpickle

            return cloudpickle.load(handle)
        return pickle.load(handle)  # nosec B301 - the registry's own model, as MLflow loads it


def _positive_column(path: Path, classes: list[Any] | None) -> int:
    """Where the positive class is among a binary model's classes: its MLmodel metadata names
    it (a string target's positive class may sort first); else the last, True or 1."""
    if not (path / "MLmodel").exists():
        return 1
    metadata = _mlmodel(path).get("metadata") or {}
    positive = metadata.get("shipyard", {}).get("positive_class")
    found = [i for i, c in enumerate(classes or []) if type(c) is type(positive) and c == positive]
    return found[0] if found else 1


def _python(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


class FrameBuilder:
    """Rows -> the model's input DataFrame, in signature column order.

    When every input is a float (the common all-numeric model), one numpy call reads the rows
    into a float64 block: the same frame as `DataFrame.from_records`, in a third of the time
    for a batch of 100 and a seventh for one row. Other signatures, and rows numpy cannot
    read as floats, take `from_records`.
    """

    def __init__(self, inputs: list[ModelInput]) -> None:
        self.columns = [column.name for column in inputs]
        numeric = len(inputs) > 1 and all(column.type == "float" for column in inputs)
        self.values = itemgetter(*self.columns) if numeric else None

    def __call__(self, rows: list[Mapping[str, Any]]) -> Any:
        import pandas as pd

        if self.values is not None:
            import numpy as np

            try:
                block = np.array(list(map(self.values, rows)), dtype=np.float64)
            except (TypeError, ValueError):
                pass
            else:
                return pd.DataFrame(block, columns=self.columns, copy=False)
        return pd.DataFrame.from_records(rows, columns=self.columns)


class ModelSet:
    """The models of one bundle, loaded, each behind its own batcher."""

    def __init__(self, config: ServiceConfig, bundle: Path, metrics: ServiceMetrics) -> None:
        self.config = config
        self.bundle = bundle
        self.frame = FrameBuilder(config.model_inputs)
        self.classifier = config.step.task == "classification"
        self.variants: dict[str, Variant] = {}
        for served in config.variants:
            stage(f"loading model {served.registered_name} v{served.version} ({served.name})")
            model = _load_model(bundle / served.path)
            found = getattr(model, "classes_", None)
            classes = [_python(c) for c in found] if found is not None else None
            self.variants[served.name] = Variant(
                name=served.name,
                version=served.version,
                semver=served.semver,
                model=model,
                classes=classes,
                positive=_positive_column(bundle / served.path, classes),
            )
        step = config.step
        self.submit: dict[str, Any] = {}
        for name, variant in self.variants.items():
            predict = partial(self._predict, variant)
            counted = partial(metrics.batch, name, variant.version)
            if step.adaptive_batching:
                batcher: MicroBatcher[Mapping[str, Any], tuple[Any, float | None]] = MicroBatcher(
                    predict,
                    max_batch_size=step.max_batch_size,
                    max_latency_ms=step.max_latency_ms,
                    on_batch=counted,
                )
                self.submit[name] = batcher.submit
            else:
                self.submit[name] = run_unbatched(predict, on_batch=counted)

    def _predict(
        self, variant: Variant, rows: list[Mapping[str, Any]]
    ) -> list[tuple[Any, float | None]]:
        frame = self.frame(rows)
        model = variant.model
        if self.classifier and variant.classes is not None and hasattr(model, "predict_proba"):
            proba = model.predict_proba(frame)
            picked = proba.argmax(axis=1).tolist()
            # binary: the positive class's probability; multiclass: the predicted class's
            positive = proba[:, variant.positive] if proba.shape[1] == 2 else proba.max(axis=1)
            score = positive.tolist()
            classes = variant.classes
            return [(classes[i], s) for i, s in zip(picked, score, strict=True)]
        return [(_python(p), None) for p in model.predict(frame)]
