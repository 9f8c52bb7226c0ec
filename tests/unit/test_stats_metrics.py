"""The metric vocabulary: one table, complete, read alike by validation, evaluation and the gate."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import get_args

import numpy as np
import pytest

from shipyard.errors import ShipyardError
from shipyard.loader import load_text
from shipyard.stats.metrics import (
    METRICS,
    TASKS,
    Needs,
    UnknownMetricError,
    UnknownTaskError,
    default_metrics,
    lookup_metric,
    suitable_metrics,
    unsuitable_metrics,
)
from shipyard.stats.paired import compare_to_champion, metric_value
from shipyard.training.evaluation import metrics_for
from shipyard.validation import validate

ROOT = Path(__file__).resolve().parents[2]
OLD_NAMES = re.compile(
    r"\b(HIGHER_IS_BETTER|SCORE_METRICS|LABEL_METRICS|METRICS_BY_TASK|DEFAULT_METRICS"
    r"|CLASSIFICATION_METRICS|REGRESSION_METRICS|check_metrics_for_task)\b"
)


# --- the table ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(METRICS))
def test_every_metric_has_tasks_a_direction_a_need_and_a_description(name: str) -> None:
    metric = METRICS[name]
    assert metric.name == name
    assert metric.tasks and set(metric.tasks) <= set(TASKS)
    assert isinstance(metric.higher_is_better, bool)
    assert metric.needs in get_args(Needs)
    assert metric.description and "\n" not in metric.description
    # a classification metric reads scores or labels, a regression metric predicted values
    assert (metric.needs == "value") == (metric.tasks == ("regression",))


def test_directions_and_needs_are_the_known_ones() -> None:
    lower = {name for name, m in METRICS.items() if not m.higher_is_better}
    assert lower == {"log_loss", "brier", "rmse", "mae", "mape"}
    scores = {name for name, m in METRICS.items() if m.needs == "score"}
    assert scores == {"roc_auc", "pr_auc", "log_loss", "brier"}


@pytest.mark.parametrize("task", TASKS)
def test_the_defaults_of_a_task_are_metrics_of_that_task(task: str) -> None:
    defaults = default_metrics(task)
    assert defaults and len(set(defaults)) == len(defaults)
    assert set(defaults) <= set(suitable_metrics(task))
    assert unsuitable_metrics(task, defaults) == []


def test_every_metric_suits_some_task_and_the_tasks_share_none() -> None:
    by_task = [set(suitable_metrics(task)) for task in TASKS]
    assert set().union(*by_task) == set(METRICS)
    assert sum(len(names) for names in by_task) == len(METRICS)


def test_unsuitable_metrics_keeps_order_drops_repeats_and_never_accepts_an_unknown_name() -> None:
    assert unsuitable_metrics("classification", ["roc_auc", "rmse"]) == ["rmse"]
    assert unsuitable_metrics("regression", ["rmse", "roc_auc", "r2"]) == ["roc_auc"]
    assert unsuitable_metrics("regression", ["typo", "mae", "typo"]) == ["typo"]
    for task in TASKS:
        assert unsuitable_metrics(task, suitable_metrics(task)) == []


def test_an_unknown_metric_raises_with_a_did_you_mean_and_the_known_names() -> None:
    with pytest.raises(UnknownMetricError) as raised:
        lookup_metric("rocauc")
    error = raised.value
    assert isinstance(error, ShipyardError) and isinstance(error, ValueError)
    assert error.render() == (
        "error: unknown metric 'rocauc'; did you mean 'roc_auc'?\n"
        f"  = hint: known metrics are {', '.join(METRICS)}"
    )


def test_an_unknown_metric_far_from_every_name_still_lists_them() -> None:
    with pytest.raises(UnknownMetricError, match=r"^unknown metric 'gini'$") as raised:
        lookup_metric("gini")
    assert raised.value.hint is not None and "roc_auc, pr_auc" in raised.value.hint


def test_an_unknown_task_raises() -> None:
    for call in (suitable_metrics, default_metrics, lambda t: unsuitable_metrics(t, ["rmse"])):
        with pytest.raises(UnknownTaskError, match="unknown task 'ranking'") as raised:
            call("ranking")
        assert isinstance(raised.value, ValueError)
        assert raised.value.hint == "use 'classification' or 'regression'"


# --- one table for everyone ---------------------------------------------------------------------

SPEC = """\
project: demo
datasets:
  customers:
    path: data/customers.csv
    schema: {{customer_id: int, tenure: int, charges: float, churned: bool}}
    expectations: [{{not_null: customer_id}}]
models:
  m:
    task: {task}
    dataset: customers
    target: {target}
    features: [tenure]
    estimator: {{class: sklearn.linear_model.{estimator}}}
    metrics: [{metric}]
    gate:
      vs_champion: {{metric: {metric}}}
"""
ESTIMATORS = {"classification": "LogisticRegression", "regression": "LinearRegression"}
TARGETS = {"classification": "churned", "regression": "charges"}


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("name", list(METRICS))
def test_validation_accepts_a_metric_exactly_for_the_tasks_of_the_table(
    name: str, task: str
) -> None:
    spec = SPEC.format(task=task, target=TARGETS[task], estimator=ESTIMATORS[task], metric=name)
    codes = [d.code for d in validate(load_text(spec, "pipelines.yaml", env={}))]
    # written twice (metrics: and the champion comparison), reported twice
    assert codes == ([] if task in METRICS[name].tasks else ["E505", "E505"])


def holdout() -> dict[str, np.ndarray]:
    """A binary and a regression holdout where model a is clearly better than model b."""
    rng = np.random.default_rng(3)
    n = 400
    y = rng.integers(0, 2, n)
    score_a = np.clip(0.25 + 0.5 * y + rng.normal(0, 0.15, n), 0.01, 0.99)
    score_b = np.clip(0.4 + 0.2 * y + rng.normal(0, 0.25, n), 0.01, 0.99)
    target = rng.uniform(5, 15, n)
    return {
        "y": y,
        "score_a": score_a,
        "score_b": score_b,
        "label_a": (score_a >= 0.5).astype(int),
        "label_b": (score_b >= 0.5).astype(int),
        "target": target,
        "value_a": target + rng.normal(0, 0.5, n),
        "value_b": target + rng.normal(0.5, 2.0, n),
    }


@pytest.mark.parametrize("name", list(METRICS))
def test_the_champion_comparison_reads_direction_and_needs_from_the_table(name: str) -> None:
    data, metric = holdout(), METRICS[name]
    y = data["target"] if metric.needs == "value" else data["y"]
    # (candidate, champion) predictions and scores; model a is the candidate
    if metric.needs == "score":
        preds, scores = (None, None), (data["score_a"], data["score_b"])
    else:
        preds, scores = (data[f"{metric.needs}_a"], data[f"{metric.needs}_b"]), (None, None)

    c = compare_to_champion(name, y, *preds, *scores, n_resamples=50)

    candidate = metric_value(name, y, preds[0], scores[0])
    difference = candidate - metric_value(name, y, preds[1], scores[1])
    assert c.improvement == pytest.approx(difference if metric.higher_is_better else -difference)
    assert c.improvement > 0, "model a is the better one, whatever the metric's direction"
    if metric.needs == "score":
        with pytest.raises(ValueError, match="candidate_score"):
            compare_to_champion(name, y, data["label_a"], data["label_b"])


@pytest.mark.parametrize("task", TASKS)
def test_evaluation_computes_every_metric_of_the_task_and_needs_y_score_where_the_table_says(
    task: str,
) -> None:
    data = holdout()
    if task == "classification":
        y, pred, score = data["y"], data["label_a"], data["score_a"]
    else:
        y, pred, score = data["target"], data["value_a"], None
    names = suitable_metrics(task)

    assert tuple(metrics_for(task, y, pred, score, names)) == names
    for name in names:
        if METRICS[name].needs == "score":
            with pytest.raises(ValueError, match=f"'{name}' needs y_score"):
                metrics_for(task, y, pred, metrics=[name])
        else:
            assert set(metrics_for(task, y, pred, metrics=[name])) == {name}


def test_no_module_keeps_a_table_of_its_own() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in (ROOT / "shipyard").rglob("*.py")
        for match in OLD_NAMES.finditer(path.read_text(encoding="utf-8"))
    ]
    assert found == []


def test_importing_the_vocabulary_imports_no_numpy() -> None:
    code = "import shipyard.stats, shipyard.stats.metrics, sys; assert 'numpy' not in sys.modules"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_the_probe_would_notice_numpy() -> None:
    # guards the test above against a probe that can never fail
    code = "import shipyard.stats.paired, sys; assert 'numpy' not in sys.modules"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode != 0 and "AssertionError" in done.stderr
