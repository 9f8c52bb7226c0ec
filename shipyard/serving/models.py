"""The models of one service bundle: loaded from their MLflow folders, fed a DataFrame built
from the request rows, each variant behind its own (adaptive) batcher."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any

from shipyard.serving.batching import MicroBatcher, run_unbatched
from shipyard.serving.config import ModelInput, ServiceConfig
from shipyard.serving.telemetry import ServiceMetrics


@dataclass(frozen=True)
class Variant:
    """One loaded model version: `stable` or a candidate named after its registry alias."""

    name: str
    version: str
    semver: str
    model: Any
    classes: list[Any] | None


def _load_model(path: Path) -> Any:
    import mlflow.sklearn

    return mlflow.sklearn.load_model(str(path))


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
            model = _load_model(bundle / served.path)
            classes = getattr(model, "classes_", None)
            self.variants[served.name] = Variant(
                name=served.name,
                version=served.version,
                semver=served.semver,
                model=model,
                classes=[_python(c) for c in classes] if classes is not None else None,
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
            score = (proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)).tolist()
            classes = variant.classes
            return [(classes[i], s) for i, s in zip(picked, score, strict=True)]
        return [(_python(p), None) for p in model.predict(frame)]
