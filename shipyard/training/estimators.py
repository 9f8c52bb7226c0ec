"""Building the model: preprocessing for the declared column types plus the estimator."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shipyard.compiler import TrainModelStep
from shipyard.errors import ShipyardError
from shipyard.stats.targets import ClassificationTarget
from shipyard.training.targets import class_probabilities, positive_index

if TYPE_CHECKING:
    import pandas as pd

CATEGORICAL = ("str", "bool")


def import_object(path: str, resource: str, what: str) -> Any:
    """`pkg.mod.Class` or `pkg.mod:function` -> the object, with an error naming the fix."""
    module_name, _, attribute = path.replace(":", ".").rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ShipyardError(
            f"cannot import module '{module_name}' for {what} '{path}': {exc}",
            hint="check the spelling, and that the package is installed in the environment "
            "(add it to pyproject.toml and run `make lock`)",
            resource=resource,
        ) from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        from shipyard.diagnostics import did_you_mean

        names = [n for n in dir(module) if not n.startswith("_")]
        raise ShipyardError(
            f"module '{module_name}' has no '{attribute}' ({what} '{path}')",
            hint=did_you_mean(attribute, names) or "check the name",
            resource=resource,
        ) from None


def make_estimator(step: TrainModelStep, params: dict[str, Any]) -> Any:
    """Instantiate the estimator class with the spec's parameters (and any trial's)."""
    assert step.estimator_class is not None
    cls = import_object(step.estimator_class, step.id, "estimator")
    merged = {**step.estimator_params, **params}
    accepted = _accepted_params(cls)
    if "random_state" in accepted and "random_state" not in merged:
        merged["random_state"] = step.seed
    unknown = sorted(set(merged) - accepted) if accepted else []
    if unknown:
        from shipyard.diagnostics import did_you_mean

        hints = [h for h in (did_you_mean(u, accepted) for u in unknown) if h]
        raise ShipyardError(
            f"{step.estimator_class} does not accept parameter(s) {', '.join(unknown)}",
            hint="; ".join(hints) or f"it accepts: {', '.join(sorted(accepted))}",
            resource=step.id,
        )
    try:
        return cls(**merged)
    except (TypeError, ValueError) as exc:
        raise ShipyardError(
            f"{step.estimator_class}({_show(merged)}) failed: {exc}",
            hint="fix `estimator.params` (or the search space) in pipelines.yaml",
            resource=step.id,
        ) from exc


def _accepted_params(cls: Any) -> set[str]:
    if hasattr(cls, "get_params"):
        try:
            return set(cls().get_params(deep=False))
        except TypeError:
            pass
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return set()
    if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        return set()
    return {n for n in signature.parameters if n != "self"}


def _show(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in params.items())


def preprocessor(step: TrainModelStep) -> Any:
    """One-hot encoding for categories, strings and booleans; numbers pass through."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    categorical = [
        f for f, t in step.feature_types.items() if isinstance(t, list) or t in CATEGORICAL
    ]
    numeric = [f for f in step.features if f not in categorical]
    transformers: list[tuple[str, Any, list[str]]] = []
    if categorical:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        transformers.append(("categorical", encoder, categorical))
    if numeric:
        transformers.append(("numeric", "passthrough", numeric))
    return ColumnTransformer(transformers, verbose_feature_names_out=False)


def fit_model(step: TrainModelStep, x: pd.DataFrame, y: pd.Series, params: dict[str, Any]) -> Any:
    """Fit the declared estimator (inside a preprocessing pipeline) or the custom function."""
    if step.train_function:
        function: Callable[..., Any] = import_object(
            step.train_function, step.id, "training function"
        )
        model = function(x, y, {**step.train_params, **params}, step.seed)
        if not hasattr(model, "predict"):
            raise ShipyardError(
                f"training function '{step.train_function}' returned "
                f"{type(model).__name__}, which has no predict()",
                hint="return a fitted model object with predict (and predict_proba for "
                "classification)",
                resource=step.id,
            )
        return model
    from sklearn.pipeline import Pipeline

    pipeline = Pipeline([("prepare", preprocessor(step)), ("model", make_estimator(step, params))])
    try:
        pipeline.fit(x, y)
    except (TypeError, ValueError) as exc:
        raise ShipyardError(
            f"fitting {step.estimator_class} failed: {exc}",
            hint=f"check the estimator's parameters and that it suits a {step.task} target",
            resource=step.id,
        ) from exc
    return pipeline


def predict(
    step: TrainModelStep, model: Any, x: pd.DataFrame, target: ClassificationTarget | None
) -> tuple[Any, Any]:
    """(labels or values, scores or None). The scores of a binary classifier are its positive
    class's probability; of a multiclass one, a column per class of the target (in the order
    of `target.classes`, whatever order the model keeps them in)."""
    y_pred = model.predict(x)
    if step.task != "classification" or target is None:
        return y_pred, None
    proba = class_probabilities(model, x, target)
    if proba is None or target.kind == "multiclass":
        return y_pred, proba
    return y_pred, proba[:, positive_index(target)]
