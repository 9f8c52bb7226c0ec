"""What a classification target may be: one rule, so that `validate` and training agree."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from shipyard.compiler import TrainModelStep
from shipyard.compiler.models import ChampionGate, GateThreshold
from shipyard.errors import ShipyardError
from shipyard.loader import load_text
from shipyard.stats.targets import ClassificationTarget, declared_target, observed_target
from shipyard.training.targets import (
    class_probabilities,
    encode,
    holdout_metrics,
    normalise_labels,
    target_of,
)
from shipyard.validation import validate

# (declared column type as YAML, positive_class as YAML or None, the labels of the data)
CASES: list[tuple[str, str | None, list[Any]]] = [
    ("bool", None, [True, False]),
    ("bool", "false", [True, False]),
    ("bool", "yes", [True, False]),
    ("{category: [0, 1]}", None, [0, 1]),
    ("{category: [1, 2]}", None, [1, 2]),
    ("{category: [1, 2]}", "2", [1, 2]),
    ("{category: [churned, stayed]}", None, ["churned", "stayed"]),
    ("{category: [churned, stayed]}", "churned", ["churned", "stayed"]),
    ("{category: [churned, stayed]}", "Churned", ["churned", "stayed"]),
    ("{category: [setosa, versicolor, virginica]}", None, ["setosa", "versicolor", "virginica"]),
    ("{category: [setosa, versicolor, virginica]}", "setosa", ["setosa", "versicolor"]),
    ("{category: [only]}", None, ["only"]),
    ("float", None, [0.5, 1.5]),
]

SPEC = """\
project: p
datasets:
  d:
    path: data/d.csv
    schema: {{x: float, y: {column_type}}}
    expectations: [{{not_null: x}}]
models:
  m:
    task: classification
    dataset: d
    target: y
    features: [x]
    estimator: {{class: sklearn.linear_model.LogisticRegression}}
{positive}"""


def _validate(column_type: str, positive: str | None) -> tuple[str | None, Any, Any]:
    """validate's code for the spec (or None), and the target's type and positive class as
    Shipyard's loader reads them (YAML 1.2: `yes` stays a word)."""
    from shipyard.validation.models import declared_type

    text = SPEC.format(
        column_type=column_type,
        positive=f"    positive_class: {positive}\n" if positive is not None else "",
    )
    loaded = load_text(text, "pipelines.yaml", env={})
    codes = [d.code for d in validate(loaded)]
    assert len(codes) <= 1, codes
    assert loaded.spec is not None
    column = loaded.spec.datasets["d"].columns["y"]
    return (
        codes[0] if codes else None,
        declared_type(column),
        loaded.spec.models["m"].positive_class,
    )


def _step(loaded_type: Any, positive: Any) -> TrainModelStep:
    return TrainModelStep.model_construct(
        id="model.m",
        target="y",
        target_type=loaded_type,
        positive_class=positive,
        task="classification",
        metrics=["roc_auc", "accuracy"],
        metrics_declared=False,
        thresholds=[],
        vs_champion=None,
        search=None,
    )


@pytest.mark.parametrize(("column_type", "positive", "labels"), CASES)
def test_validate_and_training_reach_the_same_verdict(
    column_type: str, positive: str | None, labels: list[Any]
) -> None:
    """validate reads the declared type, training the data; where the data holds the declared
    classes, both say the same: the same code, or both fine."""
    code, loaded_type, value = _validate(column_type, positive)
    step = _step(loaded_type, value)
    frame = pd.DataFrame({"y": labels * 5})
    try:
        target_of(step, normalise_labels(frame["y"], step))
        trained = None
    except ShipyardError as exc:
        trained = exc
    if code is None:
        assert trained is None, trained
    else:
        assert trained is not None, f"validate says {code}, training accepted it"
        found = observed_target("y", loaded_type, value, labels)
        assert not isinstance(found, ClassificationTarget) and found.code == code


def test_the_defaults_of_the_positive_class_are_true_and_one() -> None:
    assert declared_target("y", "bool", None) == ClassificationTarget((False, True), "binary", True)
    assert declared_target("y", [1, 0], None) == ClassificationTarget((0, 1), "binary", 1)
    assert declared_target("y", ["b", "a"], "b") == ClassificationTarget(("a", "b"), "binary", "b")
    # a plain int or str column: the classes are the data's
    assert declared_target("y", "str", None) == ClassificationTarget(None, None, None)


def test_a_str_target_with_two_classes_in_the_data_needs_a_positive_class_at_training() -> None:
    step = _step("str", None)
    with pytest.raises(ShipyardError) as raised:
        target_of(step, pd.Series(["no", "yes", "no"]))
    assert raised.value.message == (
        "binary target 'y' has classes 'no', 'yes', and no `positive_class` says which one the "
        "model detects"
    )
    assert raised.value.hint is not None and "positive_class: yes" in raised.value.hint
    assert raised.value.resource == "model.m"
    found = target_of(_step("str", "yes"), pd.Series(["no", "yes", "no"]))
    assert (found.kind, found.positive, found.negative) == ("binary", "yes", "no")


def test_a_str_target_with_three_classes_in_the_data_is_multiclass_and_defaults_follow() -> None:
    step = _step("str", None)
    found = target_of(step, pd.Series(["b", "a", "c", "a"]))
    assert found == ClassificationTarget(("a", "b", "c"), "multiclass")
    assert holdout_metrics(step, found) == ["roc_auc", "accuracy", "f1_macro", "log_loss"]


def test_metrics_a_multiclass_target_lacks_stop_the_training_naming_the_fix() -> None:
    step = _step("str", None).model_copy(
        update={
            "thresholds": [GateThreshold(metric="f1", op=">=", value=0.5)],
            "vs_champion": ChampionGate(
                metric="pr_auc", min_delta=0.0, confidence=0.95, method="auto"
            ),
        }
    )
    with pytest.raises(ShipyardError) as raised:
        target_of(step, pd.Series(["a", "b", "c"]))
    assert "has 3 classes in the data" in raised.value.message
    assert "'f1', 'pr_auc'" in raised.value.message
    assert (
        raised.value.hint
        == "in pipelines.yaml use f1 -> f1_macro or f1_weighted; pr_auc -> roc_auc"
    )


def test_labels_are_normalised_to_the_declared_type() -> None:
    as_floats = pd.Series([0.0, 1.0, 1.0])  # a 0/1 column with a gap elsewhere, read as floats
    assert normalise_labels(as_floats, _step("int", None)).tolist() == [0, 1, 1]
    categorical = pd.Series(["a", "b"], dtype="category")
    assert normalise_labels(categorical, _step(["a", "b"], "a")).dtype == object


def test_probabilities_follow_the_targets_classes_whatever_the_models_order() -> None:
    class Model:
        classes_ = ["stayed", "churned"]  # as a custom model may keep them

        def predict_proba(self, x: Any) -> Any:
            return [[0.9, 0.1], [0.2, 0.8]]

    target = ClassificationTarget(("churned", "stayed"), "binary", "churned")
    proba = class_probabilities(Model(), None, target)
    assert proba is not None and proba.tolist() == [[0.1, 0.9], [0.8, 0.2]]
    assert encode(target, ["stayed", "churned"]).tolist() == [0, 1]
    three = ClassificationTarget(("a", "b", "c"), "multiclass")
    assert encode(three, ["c", "a", "z"]).tolist() == [2, 0, 3]  # z: a class the data lacks
