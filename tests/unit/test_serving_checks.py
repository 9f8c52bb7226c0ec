"""Request rows against the training data's per-row rules: what fails, what refuses, what a
400 says."""

from __future__ import annotations

from typing import Any

from shipyard.compiler.services import RequestChecksPlan, RequestRule
from shipyard.serving.checks import RequestChecker, rejection
from shipyard.spec.services import RequestChecks

TENURE = RequestRule(
    rule="between(tenure, 0.0..240.0)", column="tenure", kind="between", min=0, max=240
)
CHARGES = RequestRule(
    rule="between(charges, 0.0..)", column="charges", kind="between", min=0, tolerant=True
)
PLAN = RequestRule(rule="in_set(plan)", column="plan", kind="in_set", values=["basic", "pro"])
EMAIL = RequestRule(
    rule="regex(email, ^[^@]+@[^@]+$)", column="email", kind="regex", pattern="^[^@]+@[^@]+$"
)
ROW: dict[str, Any] = {"tenure": 12, "charges": 20.5, "plan": "pro", "email": "a@b.c"}


def checker(mode: RequestChecks = "flag", *rules: RequestRule) -> RequestChecker:
    return RequestChecker(
        RequestChecksPlan(
            mode=mode, dataset="dataset.customers", rules=rules or (TENURE, CHARGES, PLAN, EMAIL)
        )
    )


def test_a_row_within_every_rule_passes() -> None:
    assert checker().check([ROW, {**ROW, "tenure": 0}, {**ROW, "tenure": 240}]) == []


def test_each_failure_names_the_row_rule_and_problem_without_the_value() -> None:
    rows = [ROW, {**ROW, "tenure": -5, "plan": "gold"}, {**ROW, "charges": -1.5, "email": "nope"}]
    failures = checker().check(rows)
    assert [(f.row, f.rule.column, f.problem) for f in failures] == [
        (1, "tenure", "below the minimum 0"),
        (2, "charges", "below the minimum 0"),
        (1, "plan", "not one of basic, pro"),
        (2, "email", "does not match ^[^@]+@[^@]+$"),
    ]
    assert not any("-5" in f.problem or "gold" in f.problem for f in failures)
    above = checker().check([{**ROW, "tenure": 241}])
    assert [f.problem for f in above] == ["above the maximum 240"]


def test_strict_bounds_refuse_the_bound_itself() -> None:
    strict = TENURE.model_copy(update={"strict_min": True, "min": 0.0})
    failures = checker("flag", strict).check([{"tenure": 0}, {"tenure": 1}])
    assert [(f.row, f.problem) for f in failures] == [(0, "not above 0")]


def test_flag_never_refuses_and_reject_refuses_all_but_tolerant_rules() -> None:
    rows = [{**ROW, "tenure": -5, "charges": -1.0}]
    assert checker("flag").refusing(checker("flag").check(rows)) == []
    rejecting = checker("reject")
    refusing = rejecting.refusing(rejecting.check(rows))
    assert [f.rule.column for f in refusing] == ["tenure"]  # charges has `mostly`: flagged only
    only_tolerant = rejecting.check([{**ROW, "charges": -1.0}])
    assert only_tolerant and rejecting.refusing(only_tolerant) == []


def test_the_400_names_row_field_rule_and_dataset_and_how_to_flag_instead() -> None:
    failures = checker("reject").check([ROW, {**ROW, "tenure": -5}])
    message, detail = rejection(failures, "dataset.customers", "churn-api")
    assert message == (
        "rows.1.tenure: below the minimum 0 (between(tenure, 0.0..240.0) of dataset 'customers'); "
        "send values the model was trained on, or set services.churn-api.request_checks: flag "
        "to answer such rows with the failed rules listed"
    )
    assert detail == [
        {
            "loc": ["rows", 1, "tenure"],
            "rule": "between(tenure, 0.0..240.0)",
            "msg": "below the minimum 0",
        }
    ]
