"""The holdout rule: a row keeps its side when other rows come and go, and a champion is
compared only on rows it did not train on (issue: a re-cut holdout favoured the champion)."""

from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipyard.compiler import TrainModelStep
from shipyard.training import estimators
from shipyard.training.champion import champion_scores
from shipyard.training.gate import ChampionScores, judge
from shipyard.training.holdout import (
    TAG,
    Holdout,
    buckets,
    comparable_rows,
    split_by_hash,
    time_rule,
)
from shipyard.training.split import split_frame

from .specs import compile_text, replaced, train_step

SPEC = """\
project: p
datasets:
  customers:
    path: customers.csv
    key: customer_id
    schema: {customer_id: int, seen_at: datetime, a: float, b: float, c: float, churned: bool}
models:
  churn:
    task: classification
    dataset: customers
    target: churned
    features: [a, b, c]
    estimator:
      class: sklearn.tree.DecisionTreeClassifier
      params: {max_depth: 6, min_samples_leaf: 5}
    metrics: [roc_auc]
    split: {by: random}
    gate:
      vs_champion: {metric: roc_auc, min_delta: -0.02, confidence: 0.95}
"""


def _step(tmp_path: Path, spec: str = SPEC) -> TrainModelStep:
    return train_step(compile_text(tmp_path, spec))


def _customers(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    p = 1 / (1 + np.exp(-(1.5 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2] * x[:, 0])))
    return pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "seen_at": pd.date_range("2025-01-01", periods=n, freq="h"),
            "a": x[:, 0],
            "b": x[:, 1],
            "c": x[:, 2],
            "churned": rng.random(n) < p,
        }
    )


def _given(found: ChampionScores) -> Callable[[], ChampionScores]:
    return lambda: found


def _version(holdout: Holdout | None) -> object:
    return types.SimpleNamespace(version="1", tags={TAG: holdout.to_tag()} if holdout else {})


def test_a_row_keeps_its_place_in_any_frame_and_the_seed_moves_it() -> None:
    frame = _customers(500)
    place = pd.Series(buckets(frame, ["customer_id"], 42), index=frame.index)
    shuffled = frame.sample(frac=1, random_state=3).drop(index=[0, 7, 99])
    assert (buckets(shuffled, ["customer_id"], 42) == place[shuffled.index].to_numpy()).all()
    assert ((place >= 0) & (place < 1)).all()
    assert (buckets(frame, ["customer_id"], 43) != place.to_numpy()).mean() > 0.99
    # the same event time read naive from a file or tz-aware from the feature store
    aware = frame.assign(seen_at=frame["seen_at"].dt.tz_localize("UTC"))
    assert (buckets(aware, ["seen_at"], 1) == buckets(frame, ["seen_at"], 1)).all()


def test_removing_rows_moves_no_other_row_to_the_other_side() -> None:
    frame = _customers(2000)
    held, rule = split_by_hash(frame, ["customer_id"], 0.2, 42, frame["churned"])
    fewer = frame.drop(index=frame.index[::97])
    held_fewer, _ = split_by_hash(fewer, ["customer_id"], 0.2, 42, fewer["churned"])
    assert (pd.Series(held, frame.index)[fewer.index].to_numpy() == held_fewer).all()
    assert 0.17 < held.mean() < 0.23
    assert (rule.held_out(frame) == held).all()


def test_every_class_is_on_both_sides_and_a_row_moved_to_training_never_counts_as_held_out() -> (
    None
):
    frame = pd.DataFrame({"id": np.arange(40), "y": [True] * 37 + [False] * 3})
    # seed 1: all three rows of the rare class hash below 0.9, so one is moved into training
    held, rule = split_by_hash(frame, ["id"], 0.9, 1, frame["y"])
    rare = held[frame["y"].to_numpy() == False]  # noqa: E712
    assert rare.any() and not rare.all()
    assert rule.trained, "the rare class needed a row moved into training"
    assert (rule.held_out(frame) == held).all()
    assert Holdout.from_tag(rule.to_tag()) == rule


def test_a_time_rule_holds_out_what_came_after_the_last_row_trained_on() -> None:
    frame = _customers(100)
    rule = time_rule(frame["seen_at"].iloc[:80], "seen_at", 0.2)
    assert rule.until == "2025-01-04T07:00:00+00:00"
    assert rule.held_out(frame).tolist() == [False] * 80 + [True] * 20
    assert rule.held_out(frame.drop(columns="seen_at")) is None


def test_a_champion_without_a_recorded_holdout_is_compared_on_every_row_and_says_so() -> None:
    frame = _customers(100)
    rows, basis = comparable_rows(None, Holdout("hash", ["customer_id"]), frame)
    assert rows.all() and "records no holdout" in basis
    assert Holdout.from_tag("not json") is None and Holdout.from_tag('{"by": "x"}') is None


def test_an_equally_good_candidate_passes_a_tight_gate_at_the_expected_rate(
    tmp_path: Path,
) -> None:
    """Retrain on the same data less ten rows, twenty times. Compared on rows neither model
    trained on, the candidate (as good as the champion) passes a -0.02 roc_auc margin about as
    often as the test's power allows; compared on a holdout re-cut over the changed data (as
    before), the champion is scored on its own training rows and the candidate almost never
    passes."""
    from sklearn.model_selection import train_test_split

    step = _step(tmp_path)
    frame = _customers()
    first = split_frame(frame, step)
    champion = estimators.fit_model(step, first.x_train, first.y_train, {})
    trained_on = set(frame.loc[first.x_train.index, "customer_id"])
    recut = train_test_split(frame, test_size=0.2, random_state=42, stratify=frame["churned"])
    recut_champion = estimators.fit_model(step, recut[0][step.features], recut[0]["churned"], {})
    rng = np.random.default_rng(7)
    honest, biased, deltas = 0, 0, []
    for _ in range(20):
        data = frame.drop(index=rng.choice(len(frame), 10, replace=False))
        split = split_frame(data, step)
        candidate = estimators.fit_model(step, split.x_train, split.y_train, {})
        y_pred, y_score = estimators.predict(step, candidate, split.x_test, split.target)
        found = champion_scores(step, split, _version(first.holdout), champion)  # type: ignore[arg-type]
        used = split.test_rows[found.rows]  # type: ignore[index]
        assert not set(used["customer_id"]) & trained_on
        assert len(used) == len(split.x_test)  # the same rule: every holdout row is comparable
        verdict = judge(step, {}, split.y_test, y_pred, y_score, _given(found), target=split.target)
        assert f"on {len(used):,} of {len(used):,} holdout rows" in verdict.checks[0].detail
        honest += verdict.passed
        assert verdict.comparison is not None
        deltas.append(verdict.comparison["improvement"])

        train, test = train_test_split(
            data, test_size=0.2, random_state=42, stratify=data["churned"]
        )
        candidate = estimators.fit_model(step, train[step.features], train["churned"], {})
        y_pred, y_score = estimators.predict(step, candidate, test[step.features], split.target)
        c_pred, c_score = estimators.predict(
            step, recut_champion, test[step.features], split.target
        )
        recut_found = ChampionScores("1", np.ones(len(test), bool), c_pred, c_score)
        biased += judge(
            step, {}, test["churned"], y_pred, y_score, _given(recut_found), target=split.target
        ).passed
    assert abs(float(np.mean(deltas))) < 0.01
    assert honest >= 14, f"{honest}/20 passed on rows neither model trained on"
    assert biased <= 4, f"{biased}/20 passed on a re-cut holdout"


def test_a_time_split_champion_is_compared_on_rows_after_its_last_training_row(
    tmp_path: Path,
) -> None:
    spec = replaced(SPEC, ("split: {by: random}", "split: {by: time}")).replace(
        "    key: customer_id\n", "    key: customer_id\n    timestamp: seen_at\n"
    )
    step = _step(tmp_path, spec)
    frame = _customers(1000)
    first = split_frame(frame, step)
    champion = estimators.fit_model(step, first.x_train, first.y_train, {})
    # the newest ten rows fewer: the cut moves back, so the newest rows the champion trained
    # on are now in the candidate's holdout; they are left out of the comparison
    later = split_frame(frame.drop(index=range(990, 1000)), step)
    found = champion_scores(step, later, _version(first.holdout), champion)  # type: ignore[arg-type]
    assert int(np.sum(found.rows)) == len(later.x_test) - 8
    assert found.basis == "rows the champion held out too (rows after 2025-02-03T07:00:00+00:00)"


@pytest.mark.parametrize("holdout", [None, Holdout("hash", ["customer_id"], 0.2, 42)])
def test_the_gate_table_names_the_rows_the_comparison_used(
    tmp_path: Path, holdout: Holdout | None
) -> None:
    step = _step(tmp_path)
    frame = _customers(600)
    split = split_frame(frame, step)
    model = estimators.fit_model(step, split.x_train, split.y_train, {})
    y_pred, y_score = estimators.predict(step, model, split.x_test, split.target)
    found = champion_scores(step, split, _version(holdout), model)  # type: ignore[arg-type]
    table = judge(
        step, {}, split.y_test, y_pred, y_score, _given(found), target=split.target
    ).markdown("p.churn")
    n = len(split.x_test)
    assert f"on {n:,} of {n:,} holdout rows: " in table
    assert ("records no holdout" in table) is (holdout is None)
