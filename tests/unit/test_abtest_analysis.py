"""analyse(): one look at an A/B test from hand-made exposures -> results and a decision.

Bad input never gives NaN or infinity: an arm without callers or outcomes, all-zero or all-one
outcomes and zero variance keep the test running with the reason; a sample-ratio mismatch,
a failed guardrail or a worse arm stop it.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from shipyard.abtests.analysis import AbTestReport, analyse
from shipyard.abtests.exposure import ArmCounts, Exposures
from shipyard.abtests.state import AbTestState
from shipyard.compiler.ab_tests import AbTestStep
from shipyard.stats.analysis import MetricOutcome

from .specs import compile_text

pytestmark = pytest.mark.usefixtures("no_state_dir_override")

SPEC = """\
project: shop
datasets:
  customers:
    path: data/customers.parquet
    schema: {customer_id: int, tenure: int, churned: bool}
models:
  churn:
    task: classification
    dataset: customers
    target: churned
    features: [customer_id, tenure]
    estimator: {class: sklearn.linear_model.LogisticRegression}
services:
  churn-api:
    model: churn
    candidates: [challenger]
    auth: {api_keys: {app: {key: "${secret:k}"}}}
ab_tests:
  churn-v2:
    service: churn-api
    variants: {control: champion, treatment: challenger}
    assign_by: customer_id
    metric: {name: retained, type: TYPE}
    mde: 0.05
    design: DESIGN
"""
DAY = 86_400.0


def step(
    design: str = "sequential", metric: str = "binary", extra: str = "", mde: float = 0.05
) -> AbTestStep:
    text = SPEC.replace("DESIGN", design).replace("TYPE", metric) + extra
    text = text.replace("mde: 0.05", f"mde: {mde}")
    found = compile_text(Path("/tmp/shop"), text).steps["ab_test.churn-v2"]  # compiling is pure
    assert isinstance(found, AbTestStep)
    return found


def state() -> AbTestState:
    return AbTestState(name="churn-v2", service="churn-api", started_at=0.0, started_by="me")


def binary(units: int, rate: float, seed: int = 0) -> ArmCounts:
    rng = random.Random(seed)
    values = [1.0 if rng.random() < rate else 0.0 for _ in range(units)]
    return ArmCounts(
        units=units, values=values, requests=[1.0] * units, covariates=[math.nan] * units
    )


def exposures(control: ArmCounts, treatment: ArmCounts) -> Exposures:
    return Exposures(arms={"stable": control, "challenger": treatment})


def look(test: AbTestStep, found: Exposures, now: float = DAY, **kw: object) -> AbTestReport:
    report = analyse(test, found, state(), now, **kw)  # type: ignore[arg-type]
    text = json.dumps(report.as_json(), default=str)
    assert "NaN" not in text and "Infinity" not in text, text
    return report


def test_a_clearly_better_treatment_wins_the_sequential_test() -> None:
    report = look(step(), exposures(binary(2000, 0.30, 1), binary(2000, 0.40, 2)))
    assert report.decision == "winner" and report.winner == "treatment", report.reason
    treatment = report.arms[1]
    assert treatment.p_value is not None and treatment.p_value < 0.05
    assert treatment.ci_low is not None and treatment.ci_low > 0
    assert "treatment better: retained +" in report.reason
    assert report.previous_p["treatment"] == treatment.p_value  # kept for the next look


def test_a_worse_treatment_is_harm() -> None:
    report = look(step(), exposures(binary(2000, 0.40, 1), binary(2000, 0.28, 2)))
    assert report.decision == "harm", report.reason
    assert "treatment worse" in report.reason


def test_equal_arms_keep_running_then_stop_for_no_effect_at_max_duration() -> None:
    found = exposures(binary(500, 0.3, 1), binary(500, 0.3, 2))
    assert look(step(), found).decision == "keep_running"
    late = look(step(), found, now=31 * DAY)
    assert late.decision == "no_effect" and "max_duration reached" in late.reason


def test_a_sample_ratio_mismatch_stops_whatever_the_metric_says() -> None:
    report = look(step(), exposures(binary(5200, 0.3, 1), binary(4800, 0.5, 2)))
    assert report.decision == "sample_ratio_mismatch", report.reason
    assert "the assignment is broken" in report.reason
    assert report.srm.p_value is not None and report.srm.p_value < 0.001


def test_a_failed_guardrail_is_harm() -> None:
    failed = MetricOutcome("error_rate of treatment", "failed", 0.2, 0.0, 0.01, 1e-9, "z-test",
                           "error rate 20% vs 0%")  # fmt: skip
    report = look(step(), exposures(binary(500, 0.3, 1), binary(500, 0.3, 2)), guardrails=[failed])
    assert report.decision == "harm" and "guardrail failed: error rate 20%" in report.reason


@pytest.mark.parametrize("design", ["fixed", "sequential", "bayesian", "bandit"])
def test_an_arm_without_callers_or_outcomes_keeps_running(design: str) -> None:
    waiting = look(step(design), exposures(binary(300, 0.3), ArmCounts(units=300)))
    assert waiting.decision == "keep_running"
    assert "no outcome yet in this arm" in waiting.reason
    lopsided = look(step(design), exposures(binary(300, 0.3), ArmCounts()))
    assert lopsided.decision == "sample_ratio_mismatch"  # 300 against 0 is a broken split
    nothing = look(step(design), Exposures())
    assert nothing.decision == "keep_running"
    assert nothing.srm.mismatch is False


@pytest.mark.parametrize("design", ["fixed", "sequential", "bayesian"])
@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_all_zero_or_all_one_outcomes_give_no_nan(design: str, rate: float) -> None:
    report = look(step(design), exposures(binary(400, rate), binary(400, rate)))
    assert report.decision in ("keep_running", "no_effect"), report.reason


def test_zero_variance_continuous_metric_gives_no_nan() -> None:
    flat = ArmCounts(units=50, values=[5.0] * 50, requests=[1.0] * 50, covariates=[math.nan] * 50)
    report = look(step("fixed", "continuous"), exposures(flat, flat))
    assert report.decision == "keep_running"


def test_the_fixed_design_waits_for_its_planned_sample() -> None:
    early = look(step("fixed"), exposures(binary(200, 0.3, 1), binary(200, 0.45, 2)))
    assert early.decision == "keep_running"
    assert early.needed_per_arm is not None and early.needed_per_arm > 200
    assert f"of the {math.ceil(early.needed_per_arm)} callers per arm" in early.reason
    done = look(step("fixed"), exposures(binary(3000, 0.3, 1), binary(3000, 0.36, 2)))
    assert done.decision == "winner", done.reason


def test_bayesian_winner_and_bandit_shares_within_bounds() -> None:
    found = exposures(binary(1500, 0.30, 1), binary(1500, 0.40, 2))
    bayes = look(step("bayesian"), found)
    assert bayes.decision == "winner" and bayes.arms[1].chance_to_win is not None
    assert bayes.arms[1].chance_to_win > 0.95
    early = look(step("bandit"), exposures(binary(60, 0.30, 1), binary(60, 0.35, 2)))
    assert set(early.shares) == {"stable", "challenger"}
    assert sum(early.shares.values()) == pytest.approx(100, abs=0.05)
    assert min(early.shares.values()) >= 10 - 1e-9  # min_share 0.1 by default


def test_cuped_reduces_the_variance_of_a_continuous_metric() -> None:
    rng = random.Random(3)

    def arm(shift: float) -> ArmCounts:
        covariates = [rng.gauss(10, 3) for _ in range(400)]
        values = [x + shift + rng.gauss(0, 1) for x in covariates]
        return ArmCounts(units=400, values=values, requests=[1.0] * 400, covariates=covariates)

    found = exposures(arm(0.0), arm(0.3))
    plain = look(step("fixed", "continuous", mde=0.3), found)
    assert plain.decision == "keep_running" and plain.needed_per_arm is not None
    assert plain.needed_per_arm > 1000  # sd about 3.2: the plan needs thousands per arm
    test = step("fixed", "continuous", "    cuped: {covariate: tenure}\n", mde=0.3)
    report = look(test, found)
    assert report.cuped_reduction is not None and report.cuped_reduction > 0.8
    assert report.needed_per_arm is not None and report.needed_per_arm < 400
    assert report.decision == "winner", report.reason
