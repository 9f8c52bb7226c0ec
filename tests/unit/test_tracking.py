"""How a training reads in MLflow: gate verdicts as metrics and a table, trials ranked, links."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.compiler import TrainModelStep
from shipyard.compiler.models import ChampionGate, GateThreshold, SearchPlan
from shipyard.training import tracking
from shipyard.training.gate import GateCheck, GateVerdict, judge


def _step(**fields: Any) -> TrainModelStep:
    defaults: dict[str, Any] = {
        "id": "model.churn",
        "name": "churn",
        "description": "Which customers cancel next month.",
        "registered_name": "shop.churn",
        "dataset": "dataset.customers",
        "thresholds": [],
        "vs_champion": None,
        "search": None,
        "metrics": ["roc_auc", "log_loss"],
        "seed": 0,
    }
    return TrainModelStep.model_construct(**{**defaults, **fields})


def _trial(params: dict[str, Any], score: float | None, error: str | None = None) -> dict[str, Any]:
    return {
        "params": params,
        "metrics": {} if score is None else {"roc_auc": score},
        "error": error,
        "started": 1_700_000_000.0,
        "seconds": 1.5,
    }


def test_thresholds_become_passed_and_margin_metrics() -> None:
    step = _step(
        thresholds=[
            GateThreshold(metric="roc_auc", op=">=", value=0.8),
            GateThreshold(metric="log_loss", op="<", value=0.5),
        ]
    )
    metrics = {"roc_auc": 0.85, "log_loss": 0.6}
    verdict = judge(step, metrics, [], [], [])
    found = tracking.gate_metrics(verdict, step, metrics)
    assert found == pytest.approx(
        {
            "gate/passed": 0.0,
            "gate/roc_auc/passed": 1.0,
            "gate/roc_auc/margin": 0.05,  # clears 0.8 by 0.05
            "gate/log_loss/passed": 0.0,
            "gate/log_loss/margin": -0.1,  # misses < 0.5 by 0.1
        }
    )


def test_the_champion_comparison_becomes_metrics_with_its_numbers() -> None:
    step = _step(
        vs_champion=ChampionGate(metric="roc_auc", min_delta=-0.01, confidence=0.95, method="auto")
    )
    verdict = GateVerdict(
        checks=[GateCheck("vs champion v3 (roc_auc)", "+0.0100 [-0.0050, +0.0250]", "", True)],
        comparison={
            "metric": "roc_auc",
            "improvement": 0.01,
            "ci_low": -0.005,
            "ci_high": 0.025,
            "p_value": None,
            "passed": True,
            "n": 240,
            "champion_version": "3",
            "method": "delong",
        },
    )
    assert tracking.gate_metrics(verdict, step, {"roc_auc": 0.9}) == {
        "gate/passed": 1.0,
        "gate/vs_champion/passed": 1.0,
        "gate/vs_champion/improvement": 0.01,
        "gate/vs_champion/ci_low": -0.005,
        "gate/vs_champion/ci_high": 0.025,
        "gate/vs_champion/n": 240.0,
        "gate/vs_champion/champion_version": 3.0,
    }


def test_no_champion_yet_is_a_passed_comparison_without_numbers() -> None:
    step = _step(
        vs_champion=ChampionGate(metric="roc_auc", min_delta=0, confidence=0.95, method="auto")
    )
    verdict = judge(step, {"roc_auc": 0.7}, [], [], [], champion=lambda: None)
    assert tracking.gate_metrics(verdict, step, {"roc_auc": 0.7}) == {
        "gate/passed": 1.0,
        "gate/vs_champion/passed": 1.0,
    }


def test_the_gate_table_has_one_row_per_check() -> None:
    step = _step(thresholds=[GateThreshold(metric="roc_auc", op=">=", value=0.9)])
    verdict = judge(step, {"roc_auc": 0.85}, [], [], [])
    assert tracking.gate_table(verdict) == {
        "check": ["roc_auc"],
        "observed": ["0.8500"],
        "required": [">= 0.9"],
        "result": ["failed"],
        "evidence": [""],
    }


def test_trials_rank_by_the_metric_in_its_direction_and_failed_ones_get_none() -> None:
    trials = [_trial({"a": 1}, 0.7), _trial({"a": 2}, None, "diverged"), _trial({"a": 3}, 0.9)]
    assert tracking.trial_ranks(trials, "roc_auc", higher_is_better=True) == [2, None, 1]
    assert tracking.trial_ranks(trials, "roc_auc", higher_is_better=False) == [1, None, 2]


def test_the_findings_name_the_winning_trial_and_the_gate() -> None:
    search = SearchPlan(strategy="grid", trials=2, metric="roc_auc", space={"a": [1, 3]})
    step = _step(search=search, thresholds=[GateThreshold(metric="roc_auc", op=">=", value=0.6)])
    trials = [_trial({"a": 1}, 0.7), _trial({"a": 3}, 0.9)]
    verdict = judge(step, {"roc_auc": 0.8}, [], [], [])
    lines = tracking.findings(step, "random split", trials, {"a": 3}, {"roc_auc": 0.8}, verdict)
    assert lines == [
        "split: random split",
        "search: 2 of 2 grid-search trials scored on roc_auc; the best, trial-1 (a=3), "
        "scored 0.9000",
        "holdout: roc_auc 0.8000",
        "gate: gate passed (roc_auc)",
    ]


def _links(tracking_uri: str, **fields: Any) -> tracking.RunLinks:
    return tracking.RunLinks(
        tracking_uri=tracking_uri,
        experiment_id="7",
        experiment_name="shipyard/shop/churn",
        run_id="abc123",
        run_name="churn-cb4dc0af",
        **fields,
    )


def test_a_tracking_server_gets_links_to_its_run_version_and_plots() -> None:
    uri = "http://mlflow.internal:5000/"
    plots = tracking.plot_links(
        uri, "abc123", "mlflow-artifacts:/7/abc123/artifacts", ["roc_curve.png"]
    )
    assert plots == {
        "roc_curve.png": "http://mlflow.internal:5000/get-artifact?path=evaluation%2Froc_curve.png"
        "&run_uuid=abc123"
    }
    text = _links(uri, plots=plots, registered_name="shop.churn", version="4").markdown("unused")
    run = "http://mlflow.internal:5000/#/experiments/7/runs/abc123?workflowType=machine_learning"
    assert f"- Run: [churn-cb4dc0af]({run}) (`abc123`)" in text
    version = (
        "http://mlflow.internal:5000/#/models/shop.churn/versions/4?workflowType=machine_learning"
    )
    assert f"- Registered: [shop.churn version 4]({version})" in text
    assert f"- Plots: [roc_curve]({plots['roc_curve.png']})" in text


def test_a_sqlite_store_gets_the_run_id_the_command_to_browse_it_and_plot_paths() -> None:
    uri = "sqlite:////srv/shop/.shipyard/mlflow/mlflow.db"
    artifacts = "file:///srv/shop/.shipyard/mlflow/artifacts/7/abc123/artifacts"
    plots = tracking.plot_links(uri, "abc123", artifacts, ["roc_curve.png"])
    assert plots == {
        "roc_curve.png": "/srv/shop/.shipyard/mlflow/artifacts/7/abc123/artifacts/evaluation/"
        "roc_curve.png"
    }
    text = _links(uri, plots=plots).markdown("mlflow ui --backend-store-uri X")
    assert "](http" not in text  # no link to a UI that does not exist
    assert "`churn-cb4dc0af` (`abc123`)" in text
    assert "start one with `mlflow ui --backend-store-uri X`, then open " in text
    assert "http://127.0.0.1:5000/#/experiments/7/runs/abc123?workflowType=machine_learning" in text
    assert f"- Plots: `{plots['roc_curve.png']}`" in text
    assert "Registered" not in text  # nothing was registered
