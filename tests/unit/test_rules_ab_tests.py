"""`ab_tests:`: every rule fires where it should, shape errors read well, a good spec is quiet."""

from __future__ import annotations

import pytest
from pydantic_core import PydanticCustomError

from shipyard.diagnostics import Diagnostic
from shipyard.loader import load_text
from shipyard.spec.ab_tests import parse_target
from shipyard.validation import validate

from .specs import check, only, replaced, span_of

GOOD = """\
project: shop
datasets:
  returns:
    path: data/returns.csv
    schema:
      order_id: int
      amount: float
      items: int
      region: {category: [north, east, south]}
      returned: bool
    expectations: [{not_null: order_id}]
models:
  returns:
    task: classification
    dataset: returns
    target: returned
    features: [amount, items, region]
    estimator: {class: sklearn.linear_model.LogisticRegression}
services:
  returns-api:
    model: returns
    candidates: [challenger]
    auth:
      api_keys:
        app: {key: "${secret:returns-api-key}"}
ab_tests:
  returns-test:
    service: returns-api
    variants: {control: champion, treatment: challenger}
    allocation: {control: 50, treatment: 50}
    assign_by: items
    target: 'region in ["north", "east"]'
    metric: {name: returned, type: binary, higher_is_better: false}
    guardrails:
      - {name: error_rate, max: 1%, compare: stable, margin: 0.5%}
      - {name: latency_p99, max: 150ms}
    mde: 0.02
    cuped: {covariate: amount}
"""

AB = "\nab_tests:"
TARGET = """'region in ["north", "east"]'"""
ALLOCATION = "allocation: {control: 50, treatment: 50}"


def variant(*replacements: tuple[str, str]) -> str:
    """GOOD with each (old, new) applied; `old` must occur exactly once."""
    return replaced(GOOD, *replacements)


def e103(text: str) -> Diagnostic:
    d = only(text)
    assert d.code == "E103", d
    return d


# --- a good spec --------------------------------------------------------------------------------


def test_good_spec_has_no_diagnostics() -> None:
    loaded = load_text(GOOD, "spec.yaml", env={})
    assert validate(loaded) == []
    assert loaded.spec is not None
    test = loaded.spec.ab_tests["returns-test"]
    assert test.variants == {"control": "champion", "treatment": "challenger"}
    assert test.shares() == {"control": 50, "treatment": 50}


def test_ab_test_defaults() -> None:
    text = variant(
        (f"    {ALLOCATION}\n", ""),
        (f"    target: {TARGET}\n", ""),
        ("    guardrails:\n", ""),
        ("      - {name: error_rate, max: 1%, compare: stable, margin: 0.5%}\n", ""),
        ("      - {name: latency_p99, max: 150ms}\n", ""),
        ("    cuped: {covariate: amount}\n", ""),
        ("{name: returned, type: binary, higher_is_better: false}", "{name: returned}"),
    )
    loaded = load_text(text, "spec.yaml", env={})
    assert validate(loaded) == []
    assert loaded.spec is not None
    test = loaded.spec.ab_tests["returns-test"]
    assert (test.target, test.guardrails, test.cuped) == (None, [], None)
    assert (test.alpha, test.power, test.design, test.correction) == (
        0.05,
        0.8,
        "sequential",
        "holm",
    )
    assert (test.schedule, test.max_duration, test.on_winner) == ("*/15 * * * *", "30d", "report")
    assert (test.metric.type, test.metric.source, test.metric.higher_is_better) == (
        "binary",
        "feedback",
        True,
    )
    assert (test.bandit.min_share, test.bandit.cadence) == (0.1, "15m")
    assert test.shares() == {"control": 50, "treatment": 50}


def test_three_arms_share_evenly_by_default() -> None:
    text = variant(
        ("candidates: [challenger]", "candidates: [challenger, canary]"),
        ("treatment: challenger}", "treatment: challenger, other: canary}"),
        (f"    {ALLOCATION}\n", ""),
    )
    loaded = load_text(text, "spec.yaml", env={})
    assert validate(loaded) == []
    assert loaded.spec is not None
    shares = loaded.spec.ab_tests["returns-test"].shares()
    assert list(shares) == ["control", "treatment", "other"]
    assert shares["control"] == pytest.approx(100 / 3)


def test_a_continuous_metric_may_have_an_mde_above_one() -> None:
    text = variant(("type: binary", "type: continuous"), ("mde: 0.02", "mde: 5"))
    assert check(text) == []


def test_two_tests_of_disjoint_targets_are_fine() -> None:
    second = (
        "  south-test:\n    service: returns-api\n"
        "    variants: {control: champion, treatment: challenger}\n"
        "    assign_by: items\n    target: 'region == \"south\"'\n"
        "    metric: {name: returned}\n    mde: 0.02\n"
    )
    assert check(GOOD + second) == []


# --- E901-E906 ----------------------------------------------------------------------------------


def test_undefined_service_is_e901_at_the_value_with_did_you_mean() -> None:
    text = variant(("service: returns-api\n    variants", "service: return-api\n    variants"))
    d = only(text)
    assert d.code == "E901"
    assert d.message == (
        "A/B test 'returns-test' splits the callers of service 'return-api', which is not defined"
    )
    assert d.span == span_of(text, "return-api", within=AB)
    assert d.hint == "did you mean 'returns-api'?"


def test_undefined_service_far_from_any_is_e901_listing_the_services() -> None:
    text = variant(("service: returns-api\n    variants", "service: prices\n    variants"))
    d = only(text)
    assert d.code == "E901"
    assert "returns-api" in (d.hint or "")


def test_an_alias_the_service_does_not_serve_is_e902_at_the_arm() -> None:
    text = variant(("treatment: challenger}", "treatment: canary}"))
    d = only(text)
    assert d.code == "E902"
    assert d.message == (
        "A/B test 'returns-test': arm 'treatment' is 'canary', which service 'returns-api' "
        "does not serve"
    )
    assert d.span == span_of(text, "canary", within=AB)
    assert d.hint == (
        "the service serves 'champion', 'challenger'; add 'canary' to "
        "`services.returns-api.candidates`"
    )


def test_a_version_the_service_does_not_serve_is_e902() -> None:
    text = variant(("treatment: challenger}", "treatment: 7}"))
    d = only(text)
    assert d.code == "E902"
    assert d.span == span_of(text, "7", within="treatment: 7")
    assert (d.hint or "").startswith("serve version 7 as a candidate alias")


def test_the_pinned_version_of_the_service_is_served() -> None:
    text = variant(
        ("    candidates: [challenger]\n", "    version: 4\n    candidates: [challenger]\n"),
        ("control: champion", "control: 4"),
    )
    assert check(text) == []


def test_two_arms_of_one_version_is_e903_at_the_variants() -> None:
    text = variant(("control: champion, treatment: challenger", "control: champion, b: champion"))
    text = replaced(text, (f"    {ALLOCATION}\n", ""))
    d = only(text)
    assert d.code == "E903"
    assert d.message == "A/B test 'returns-test': two arms serve the same model version"
    assert d.span == span_of(text, "{control: champion, b: champion}", within=AB)


def test_assign_by_that_is_no_request_field_is_e904_listing_the_fields() -> None:
    text = variant(("assign_by: items", "assign_by: customer"))
    d = only(text)
    assert d.code == "E904"
    assert d.message == (
        "A/B test 'returns-test': assign_by 'customer' is not a request field of service "
        "'returns-api'"
    )
    assert d.span == span_of(text, "customer", within=AB)
    assert d.hint == "expected one of 'amount', 'items', 'region'"


def test_target_field_that_is_no_request_field_is_e904_at_the_target() -> None:
    text = variant((TARGET, """'regio in ["north", "east"]'"""))
    d = only(text)
    assert d.code == "E904"
    assert "the target's field 'regio'" in d.message
    assert d.span == span_of(text, """'regio in ["north", "east"]'""", within=AB)
    assert d.hint == "did you mean 'region'?"


def test_covariate_that_is_no_request_field_is_e904_at_the_covariate() -> None:
    text = variant(("covariate: amount", "covariate: amout"))
    d = only(text)
    assert d.code == "E904"
    assert "covariate 'amout'" in d.message
    assert d.span == span_of(text, "amout", within=AB)
    assert d.hint == "did you mean 'amount'?"


def test_two_tests_of_the_same_callers_is_e905_at_the_second() -> None:
    second = (
        "  second:\n    service: returns-api\n"
        "    variants: {control: champion, treatment: challenger}\n"
        "    assign_by: items\n    target: 'region == \"east\"'\n"
        "    metric: {name: returned}\n    mde: 0.02\n"
    )
    text = GOOD + second
    d = only(text)
    assert d.code == "E905"
    assert d.message.startswith(
        "A/B tests 'returns-test' and 'second' split the same callers of service 'returns-api'"
    )
    assert d.span == span_of(text, "second", within=AB)


@pytest.mark.parametrize(
    "other", ['region != "south"', 'region not in ["south"]', "items == 3", None]
)
def test_targets_not_provably_disjoint_are_e905(other: str | None) -> None:
    target = "" if other is None else f"    target: '{other}'\n"
    second = (
        "  second:\n    service: returns-api\n"
        "    variants: {control: champion, treatment: challenger}\n"
        f"    assign_by: items\n{target}    metric: {{name: returned}}\n    mde: 0.02\n"
    )
    assert [d.code for d in check(GOOD + second)] == ["E905"]


def test_an_mde_above_one_on_a_binary_metric_is_e906_at_the_mde() -> None:
    text = variant(("mde: 0.02", "mde: 2"))
    d = only(text)
    assert d.code == "E906"
    assert d.message.startswith("A/B test 'returns-test': an MDE of 2 on a binary metric")
    assert d.span == span_of(text, "2", within="    mde: 2")


# --- the shape of an A/B test (E103) ------------------------------------------------------------


def test_allocation_not_summing_to_100_is_e103_at_the_allocation() -> None:
    text = variant(("treatment: 50}", "treatment: 40}"))
    d = e103(text)
    assert d.message == "ab_tests.returns-test: allocation sums to 90, not 100"
    assert d.span == span_of(text, "{control: 50, treatment: 40}", within=AB)


def test_allocation_arm_that_is_no_variant_is_e103_at_its_key() -> None:
    text = variant((ALLOCATION, "allocation: {control: 50, treatmnt: 50}"))
    d = e103(text)
    assert d.message == (
        "ab_tests.returns-test: allocation names arm 'treatmnt', which `variants` does not have"
    )
    assert d.span == span_of(text, "treatmnt", within=AB)
    assert d.hint == "the arms are control, treatment"


def test_allocation_leaving_out_an_arm_is_e103() -> None:
    text = variant((ALLOCATION, "allocation: {control: 100}"))
    d = e103(text)
    assert d.message == "ab_tests.returns-test: allocation gives arm 'treatment' no share"
    assert d.span == span_of(text, "{control: 100}", within=AB)


def test_allocation_with_a_zero_share_is_e103() -> None:
    text = variant((ALLOCATION, "allocation: {control: 100, treatment: 0}"))
    d = e103(text)
    assert d.message == "ab_tests.returns-test: every arm needs a share above 0"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("region ~ north", "target 'region ~ north' is not a comparison of a request field"),
        ("region in north", "target 'region in north': north is not a value"),
        ("plan == {a: 1}", "target 'plan == {a: 1}': {a: 1} is not a value"),
        ("region in []", "target 'region in []': `in` needs a non-empty list"),
        ('region == ["a"]', """target 'region == ["a"]' compares with a list, object or null"""),
        ("region == null", "target 'region == null' compares with a list, object or null"),
        ('region in["north"]', """target 'region in["north"]' is not a comparison"""),
    ],
)
def test_a_target_that_does_not_parse_is_e103_at_the_target(target: str, message: str) -> None:
    text = variant((TARGET, f"'{target}'"))
    d = e103(text)
    assert d.message.startswith(f"ab_tests.returns-test.target: {message}"), d.message
    assert d.span == span_of(text, f"'{target}'", within=AB)


def test_a_guardrail_that_is_not_built_in_is_e103_at_its_name() -> None:
    text = variant(("{name: latency_p99, max: 150ms}", "{name: throughput, max: 150ms}"))
    d = e103(text)
    assert d.message.startswith("ab_tests.returns-test.guardrails.1.name: does not match")
    assert d.span == span_of(text, "throughput", within=AB)


def test_prediction_shift_is_no_guardrail() -> None:
    guardrail = "{name: prediction_shift, max_psi: 0.2}"
    text = variant(("{name: latency_p99, max: 150ms}", guardrail))
    d = e103(text)
    assert d.message == (
        "ab_tests.returns-test.guardrails.1: prediction_shift is a rollout check, not a "
        "guardrail of an A/B test"
    )
    assert d.span == span_of(text, guardrail, within=AB)


def test_a_query_guardrail_is_e103() -> None:
    text = variant(("{name: latency_p99, max: 150ms}", "{query: 'sum(up)', max: 1}"))
    d = e103(text)
    assert "a guardrail is a built-in service metric" in d.message


def test_fewer_than_two_variants_is_e103_at_the_variants() -> None:
    text = variant(
        ("{control: champion, treatment: challenger}", "{control: champion}"),
        (f"    {ALLOCATION}\n", ""),
    )
    d = e103(text)
    assert d.message.startswith("ab_tests.returns-test.variants:")
    assert d.span == span_of(text, "{control: champion}", within=AB)


def test_a_bad_cron_schedule_is_e103_at_the_schedule() -> None:
    text = variant(("mde: 0.02", "mde: 0.02\n    schedule: 'every 15 minutes'"))
    d = e103(text)
    assert d.message.startswith(
        "ab_tests.returns-test.schedule: 'every 15 minutes' is not a cron expression"
    )
    assert d.span == span_of(text, "'every 15 minutes'", within=AB)


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ("type: binary", "type: count", "metric.type"),
        ("mde: 0.02", "mde: 0", "mde"),
        ("mde: 0.02", "mde: 0.02\n    design: adaptive", "design"),
        ("mde: 0.02", "mde: 0.02\n    alpha: 0.5", "alpha"),
        ("mde: 0.02", "mde: 0.02\n    power: 0.4", "power"),
        ("mde: 0.02", "mde: 0.02\n    bandit: {min_share: 0.5}", "bandit.min_share"),
        ("mde: 0.02", "mde: 0.02\n    on_winner: ship", "on_winner"),
    ],
)
def test_values_out_of_range_are_e103(old: str, new: str, path: str) -> None:
    d = e103(variant((old, new)))
    assert d.message.startswith(f"ab_tests.returns-test.{path}:"), d.message


def test_an_unknown_key_is_e101() -> None:
    d = only(variant(("mde: 0.02", "mde: 0.02\n    mde_pct: 2")))
    assert d.code == "E101"


def test_a_missing_metric_is_e102() -> None:
    d = only(variant(("    metric: {name: returned, type: binary, higher_is_better: false}\n", "")))
    assert d.code == "E102"


# --- parse_target -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "op", "values"),
    [
        ('plan == "pro"', "plan", "==", ("pro",)),
        ('plan=="pro"', "plan", "==", ("pro",)),
        ("tenure_months != 0", "tenure_months", "!=", (0,)),
        ("tenure_months!=0", "tenure_months", "!=", (0,)),
        ('region in ["north", "east"]', "region", "in", ("north", "east")),
        ('region not in ["south"]', "region", "not in", ("south",)),
        ("amount == 2.5", "amount", "==", (2.5,)),
        ("items in [1, 2, 3]", "items", "in", (1, 2, 3)),
        ("is_pro == true", "is_pro", "==", (True,)),
        ("is_pro != false", "is_pro", "!=", (False,)),
        ('  region   ==   "north"  ', "region", "==", ("north",)),
        ('index in ["a"]', "index", "in", ("a",)),
        ('notes not in ["x"]', "notes", "not in", ("x",)),
    ],
)
def test_parse_target(text: str, field: str, op: str, values: tuple[object, ...]) -> None:
    rule = parse_target(text)
    assert (rule.field, rule.op, rule.values) == (field, op, values)
    assert [type(v) for v in rule.values] == [type(v) for v in values]


@pytest.mark.parametrize(
    "text",
    [
        "region ~ north",
        "region in north",
        "plan == {a: 1}",
        "region in []",
        'region in "north"',
        "region == null",
        'region == ["a"]',
        'region in [["a"]]',
        'region in["north"]',
        '1region == "a"',
        '== "a"',
        "region ==",
        'region <= "a"',
    ],
)
def test_parse_target_refuses(text: str) -> None:
    with pytest.raises(PydanticCustomError):
        parse_target(text)


def test_a_target_that_does_not_parse_causes_no_e905() -> None:
    second = (
        "  south-test:\n    service: returns-api\n"
        "    variants: {control: champion, treatment: challenger}\n"
        "    assign_by: items\n    target: 'region ~ south'\n"
        "    metric: {name: returned}\n    mde: 0.02\n"
    )
    assert [d.code for d in check(GOOD + second)] == ["E103"]
