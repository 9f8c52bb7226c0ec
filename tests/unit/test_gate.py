"""The gate: thresholds, the champion comparison and the verdict people read."""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.compiler import TrainModelStep
from shipyard.compiler.models import ChampionGate, GateThreshold
from shipyard.training.gate import ChampionScores, judge


def _step(thresholds: list[GateThreshold], vs: ChampionGate | None) -> TrainModelStep:
    return TrainModelStep.model_construct(
        id="model.m", thresholds=thresholds, vs_champion=vs, seed=0
    )


def _data(n: int = 400, seed: int = 1) -> tuple[Any, Any, Any]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    good = np.clip(y * 0.6 + rng.random(n) * 0.5, 0, 1)
    return y, (good > 0.5).astype(int), good


def test_thresholds_all_must_hold() -> None:
    step = _step(
        [
            GateThreshold(metric="roc_auc", op=">=", value=0.8),
            GateThreshold(metric="log_loss", op="<", value=0.5),
        ],
        None,
    )
    passed = judge(step, {"roc_auc": 0.85, "log_loss": 0.4}, [], [], [])
    assert passed.passed and passed.summary() == "gate passed (roc_auc, log_loss)"
    failed = judge(step, {"roc_auc": 0.85, "log_loss": 0.6}, [], [], [])
    assert not failed.passed
    assert failed.summary() == "gate failed: log_loss: 0.6000, needs < 0.5"
    assert "| log_loss | 0.6000 | < 0.5 | **failed** |" in failed.markdown("m")


def test_no_champion_yet_passes_with_a_note() -> None:
    step = _step([], ChampionGate(metric="roc_auc", min_delta=0.0, confidence=0.95, method="auto"))
    verdict = judge(step, {"roc_auc": 0.7}, [], [], [], champion=lambda: None)
    assert verdict.passed
    assert verdict.checks[0].detail == "first model: nothing to compare with"


def test_a_clearly_worse_candidate_fails_against_the_champion() -> None:
    y, labels, good = _data()
    rng = np.random.default_rng(5)
    noisy = np.clip(good + rng.normal(0, 0.6, len(good)), 0, 1)
    step = _step(
        [], ChampionGate(metric="roc_auc", min_delta=-0.01, confidence=0.95, method="auto")
    )
    verdict = judge(
        step,
        {"roc_auc": 0.6},
        y,
        (noisy > 0.5).astype(int),
        noisy,
        champion=lambda: ChampionScores("4", [True] * len(y), labels, good),
    )
    assert not verdict.passed
    assert verdict.comparison is not None
    assert verdict.comparison["method"] == "delong"
    assert verdict.comparison["champion_version"] == "4"
    assert verdict.comparison["ci_high"] < 0
    assert "vs champion v4 (roc_auc)" in verdict.summary()


def test_an_equal_candidate_passes_a_negative_margin() -> None:
    y, labels, good = _data()
    step = _step(
        [], ChampionGate(metric="accuracy", min_delta=-0.02, confidence=0.95, method="bootstrap")
    )
    verdict = judge(
        step,
        {"accuracy": 0.9},
        y,
        labels,
        good,
        champion=lambda: ChampionScores("1", [True] * len(y), labels, good),
    )
    assert verdict.passed
    assert verdict.comparison is not None and verdict.comparison["improvement"] == 0
