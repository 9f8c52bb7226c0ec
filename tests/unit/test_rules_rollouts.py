"""`rollouts:`: every rule fires where it should, shape errors read well, a good spec is quiet."""

from __future__ import annotations

import pytest

from shipyard.diagnostics import Diagnostic
from shipyard.loader import load_text
from shipyard.validation import validate

from .specs import check, only, replaced, span_of

GOOD = """\
project: demo
datasets:
  customers:
    path: data/customers.parquet
    timestamp: event_time
    schema:
      customer_id: int
      event_time: datetime
      plan: {category: [basic, pro]}
      tenure: int
      charges: float
      churned: bool
    expectations: [{not_null: customer_id}]
models:
  churn:
    task: classification
    dataset: customers
    target: churned
    features: [plan, tenure, charges]
    estimator: {class: sklearn.linear_model.LogisticRegression}
services:
  churn-api:
    model: churn
    candidates: [challenger]
    auth:
      api_keys:
        app: {key: "${secret:app-key}"}
    routing: {sticky_key: tenure}
  churn-b:
    model: churn
    port: 3001
    auth:
      api_keys:
        app: {key: "${secret:app-key}"}
rollouts:
  churn-api:
    candidate: challenger
    steps:
      - {weight: 10, duration: 5m}
      - {weight: 25, min_requests: 500}
      - {weight: 50, duration: 10m, min_requests: 1000}
    sticky_key: plan
    rules:
      - {field: plan, equals: pro}
      - {header: x-tenant, in: [beta, internal]}
    analysis:
      interval: 2m
      metrics:
        - {name: error_rate, max: 1%, compare: stable, margin: 0.5%}
        - {name: latency_p99, max: 150ms}
        - {name: prediction_shift, max_psi: 0.2}
"""

ROLLOUTS = "\nrollouts:"
PROMETHEUS = "profiles:\n  local: {prometheus: {url: 'http://127.0.0.1:9090'}}\n"
SHIFT = "{name: prediction_shift, max_psi: 0.2}"


def variant(*replacements: tuple[str, str]) -> str:
    """GOOD with each (old, new) applied; `old` must occur exactly once."""
    return replaced(GOOD, *replacements)


def line(d: Diagnostic) -> int:
    assert d.span is not None
    return d.span.line


# --- a good spec -------------------------------------------------------------------------------


def test_good_spec_has_no_diagnostics() -> None:
    loaded = load_text(GOOD, "spec.yaml", env={})
    assert validate(loaded) == []
    assert loaded.spec is not None
    assert list(loaded.spec.rollouts) == ["churn-api"]


def test_rollout_defaults() -> None:
    loaded = load_text(GOOD + "  churn-b: {}\n", "spec.yaml", env={})
    assert validate(loaded) == []
    assert loaded.spec is not None
    rollout = loaded.spec.rollouts["churn-b"]
    assert (rollout.service, rollout.strategy, rollout.candidate) == (None, "canary", "challenger")
    assert (rollout.steps, rollout.rules, rollout.sticky_key) == ([], [], None)
    assert (rollout.on_success, rollout.on_failure, rollout.smoke_requests) == (
        "promote",
        "rollback",
        5,
    )
    analysis = rollout.analysis
    assert (analysis.interval, analysis.failure_limit, analysis.inconclusive_limit) == ("1m", 0, 0)
    assert (analysis.inconclusive, analysis.alpha, analysis.min_requests) == ("pause", 0.05, 50)
    assert [(m.name, m.max, m.compare) for m in analysis.metrics] == [
        ("error_rate", "1%", "stable"),
        ("latency_p99", "500ms", "stable"),
    ]


def test_a_spec_without_rollouts_is_fine() -> None:
    text = GOOD[: GOOD.index("rollouts:")]
    loaded = load_text(text, "spec.yaml", env={})
    assert validate(loaded) == []
    assert loaded.spec is not None and not loaded.spec.rollouts


def test_a_query_metric_with_a_prometheus_is_fine() -> None:
    text = variant(
        ("project: demo\n", "project: demo\n" + PROMETHEUS),
        (SHIFT, "{query: 'sum(rate(x[1m]))', max: 0.05}"),
    )
    assert check(text) == []


def test_another_service_by_name_and_a_pinned_candidate_are_fine() -> None:
    text = GOOD + "  blue:\n    service: churn-b\n    strategy: blue_green\n    candidate: 7\n"
    assert check(text) == []


# --- E801-E807 ---------------------------------------------------------------------------------


def test_undefined_service_is_e801_at_the_value_with_did_you_mean() -> None:
    text = variant(
        ("    candidate: challenger\n", "    service: churn-apx\n    candidate: challenger\n")
    )
    d = only(text)
    assert d.code == "E801"
    assert d.message == "rollout 'churn-api' rolls out service 'churn-apx', which is not defined"
    assert d.span == span_of(text, "churn-apx", within=ROLLOUTS)
    assert d.hint == "did you mean 'churn-api'?"


def test_rollout_named_after_no_service_is_e801_listing_the_services() -> None:
    text = variant(("rollouts:\n  churn-api:", "rollouts:\n  prices:"))
    d = only(text)
    assert d.code == "E801"
    assert d.message == "rollout 'prices' rolls out service 'prices', which is not defined"
    assert d.hint == "expected one of 'churn-api', 'churn-b'; or set `rollouts.prices.service`"


def test_rollout_named_after_no_service_is_e801_at_its_name() -> None:
    text = variant(("rollouts:\n  churn-api:", "rollouts:\n  churn-apii:"))
    d = only(text)
    assert d.code == "E801"
    assert d.span == span_of(text, "churn-apii", within=ROLLOUTS)


def test_candidate_that_is_stable_is_e802_at_the_candidate() -> None:
    text = variant(("candidate: challenger\n    steps", "candidate: champion\n    steps"))
    d = only(text)
    assert d.code == "E802"
    assert d.message == (
        "rollout 'churn-api': candidate 'champion' is what service 'churn-api' already serves "
        "as stable"
    )
    assert d.span == span_of(text, "champion", within=ROLLOUTS)
    assert d.hint is not None and "challenger" in d.hint


def test_candidate_version_the_service_pins_is_e802() -> None:
    text = variant(
        ("    candidates: [challenger]\n", "    candidates: [challenger]\n    version: 4\n"),
        ("candidate: challenger\n    steps", "candidate: 4\n    steps"),
    )
    d = only(text)
    assert d.code == "E802"
    assert d.message.startswith("rollout 'churn-api': candidate 4 is what service")
    assert d.span == span_of(text, "4", within="    candidate: 4")


def test_steps_on_a_blue_green_rollout_is_e803_at_the_steps_key() -> None:
    text = variant(
        ("    candidate: challenger\n", "    candidate: challenger\n    strategy: blue_green\n")
    )
    d = only(text)
    assert d.code == "E803"
    assert d.message == "rollout 'churn-api' is blue_green, which has no weight steps"
    assert d.span == span_of(text, "steps", within=ROLLOUTS)
    assert d.hint == "remove `steps`, or use `strategy: canary`"


def test_steps_on_a_rolling_rollout_is_e803() -> None:
    text = variant(
        ("    candidate: challenger\n", "    candidate: challenger\n    strategy: rolling\n")
    )
    d = only(text)
    assert (d.code, d.message) == (
        "E803",
        "rollout 'churn-api' is rolling, which has no weight steps",
    )


def test_a_step_not_above_the_one_before_is_e804_at_its_weight() -> None:
    text = variant(("{weight: 25, min_requests: 500}", "{weight: 10, min_requests: 500}"))
    d = only(text)
    assert d.code == "E804"
    assert d.message == (
        "rollout 'churn-api': step 2 has weight 10, not more than the step before (10)"
    )
    assert d.span == span_of(text, "10", within="{weight: 10, min_requests")
    assert d.hint is not None and "larger share" in d.hint


def test_every_decreasing_step_is_e804_against_the_highest_before() -> None:
    text = variant(
        ("{weight: 25, min_requests: 500}", "{weight: 5, min_requests: 500}"),
        ("{weight: 50, duration: 10m", "{weight: 8, duration: 10m"),
    )
    diagnostics = check(text)
    assert [d.code for d in diagnostics] == ["E804", "E804"]
    assert diagnostics[0].message.endswith(
        "step 2 has weight 5, not more than the step before (10)"
    )
    assert diagnostics[1].message.endswith(
        "step 3 has weight 8, not more than the step before (10)"
    )
    assert diagnostics[1].span == span_of(text, "8", within="{weight: 8, duration")


def test_a_query_without_prometheus_is_e805_at_the_query() -> None:
    text = variant((SHIFT, "{query: 'sum(up)', max: 0.05}"))
    d = only(text)
    assert d.code == "E805"
    assert d.message == (
        "rollout 'churn-api': metric 3 is a PromQL query, but profile 'local' names no "
        "Prometheus to run it"
    )
    assert d.span == span_of(text, "'sum(up)'", within=ROLLOUTS)
    assert d.hint is not None and d.hint.startswith("set `profiles.local.prometheus.url`")


def test_two_rollouts_of_one_service_is_e806_at_the_second() -> None:
    text = GOOD + "  second:\n    service: churn-api\n    candidate: shadow\n"
    d = only(text)
    assert d.code == "E806"
    assert d.message == (
        "rollouts 'churn-api' and 'second' both roll out service 'churn-api'; a service has "
        "one rollout, or their traffic shifts would fight"
    )
    assert d.span == span_of(text, "second", within=ROLLOUTS)
    assert d.hint == "remove one, or point `rollouts.second.service` at another service"


def test_sticky_key_that_is_no_request_field_is_e807_with_did_you_mean() -> None:
    text = variant(("sticky_key: plan", "sticky_key: plann"))
    d = only(text)
    assert d.code == "E807"
    assert d.message == "rollout 'churn-api': 'plann' is not a request field of service 'churn-api'"
    assert d.span == span_of(text, "plann", within=ROLLOUTS)
    assert d.hint == "did you mean 'plan'?"


def test_rule_field_that_is_no_request_field_is_e807_listing_the_fields() -> None:
    text = variant(("{field: plan, equals: pro}", "{field: region, equals: EU}"))
    d = only(text)
    assert d.code == "E807"
    assert d.message == (
        "rollout 'churn-api': 'region' is not a request field of service 'churn-api'"
    )
    assert d.span == span_of(text, "region", within=ROLLOUTS)
    assert d.hint == "expected one of 'plan', 'tenure', 'charges'"


def test_header_rules_are_not_request_fields() -> None:
    text = variant(("{header: x-tenant, in: [beta, internal]}", "{header: region, equals: EU}"))
    assert check(text) == []


# --- the shape of a rollout (E103, E101) -------------------------------------------------------


def test_a_step_that_never_ends_is_e103_at_the_step() -> None:
    text = variant(("{weight: 25, min_requests: 500}", "{weight: 25}"))
    d = only(text)
    assert d.code == "E103"
    assert d.message == "rollouts.churn-api.steps.1: the step at weight 25 never ends"
    assert d.span == span_of(text, "{weight: 25}", within=ROLLOUTS)
    assert d.hint is not None and "`duration`" in d.hint and "`min_requests`" in d.hint


@pytest.mark.parametrize(
    "metric",
    ["{name: error_rate, query: 'sum(up)', max: 1%}", "{max: 3}"],
    ids=["both", "neither"],
)
def test_a_metric_needs_exactly_one_of_name_or_query(metric: str) -> None:
    text = variant((SHIFT, metric))
    d = only(text)
    assert d.code == "E103"
    assert d.message == (
        "rollouts.churn-api.analysis.metrics.2: a metric needs exactly one of `name` or `query`"
    )
    assert d.span == span_of(text, metric, within=ROLLOUTS)


def test_prediction_shift_without_max_psi_is_e103() -> None:
    text = variant((SHIFT, "{name: prediction_shift}"))
    d = only(text)
    assert d.code == "E103"
    assert d.message == "rollouts.churn-api.analysis.metrics.2: prediction_shift needs `max_psi`"
    assert d.span == span_of(text, "{name: prediction_shift}", within=ROLLOUTS)
    assert d.hint is not None and "max_psi: 0.2" in d.hint


def test_error_rate_without_max_is_e103() -> None:
    text = variant(("{name: error_rate, max: 1%, compare", "{name: error_rate, compare"))
    d = only(text)
    assert d.code == "E103"
    assert d.message == "rollouts.churn-api.analysis.metrics.0: error_rate needs `max`"
    assert line(d) == span_of(text, "{name: error_rate", within=ROLLOUTS).line


def test_a_query_without_max_or_min_is_e103() -> None:
    text = variant(("project: demo\n", "project: demo\n" + PROMETHEUS), (SHIFT, "{query: up}"))
    d = only(text)
    assert (d.code, d.message) == (
        "E103",
        "rollouts.churn-api.analysis.metrics.2: a query metric needs `max` or `min`",
    )


def test_compare_on_prediction_shift_is_e103() -> None:
    text = variant((SHIFT, "{name: prediction_shift, max_psi: 0.2, compare: stable}"))
    d = only(text)
    assert d.code == "E103"
    assert d.message == (
        "rollouts.churn-api.analysis.metrics.2: `compare: stable` applies to error_rate and "
        "latency, not prediction_shift"
    )


def test_unknown_metric_name_is_e103_at_the_name() -> None:
    text = variant((SHIFT, "{name: latency_p42, max: 1s}"))
    d = only(text)
    assert d.code == "E103"
    assert line(d) == span_of(text, "latency_p42", within=ROLLOUTS).line


def test_candidate_alias_with_uppercase_is_e103_at_the_candidate() -> None:
    text = variant(("candidate: challenger\n    steps", "candidate: Challenger\n    steps"))
    d = only(text)
    assert d.code == "E103"
    assert d.message == "rollouts.churn-api: candidate 'Challenger' is not a registry alias"
    assert d.span == span_of(text, "Challenger", within=ROLLOUTS)
    assert d.hint == "write an alias (lowercase, e.g. challenger) or a version number"


def test_candidate_version_0_is_e103_at_the_candidate() -> None:
    text = variant(("candidate: challenger\n    steps", "candidate: 0\n    steps"))
    d = only(text)
    assert d.code == "E103"
    assert d.message == "rollouts.churn-api: candidate version 0 does not exist"
    assert d.span == span_of(text, "0", within="    candidate: 0")
    assert d.hint == "registry versions start at 1"


def test_a_rate_that_is_no_rate_is_e103() -> None:
    text = variant(("max: 1%, compare", "max: abc%, compare"))
    d = only(text)
    assert d.code == "E103"
    assert d.message == "rollouts.churn-api.analysis.metrics.0: 'abc%' is not a rate"
    assert line(d) == span_of(text, "abc%", within=ROLLOUTS).line
    assert d.hint == "write a percentage ('1%') or a fraction (0.01)"


def test_a_latency_that_is_no_duration_is_e103() -> None:
    text = variant(("max: 150ms", "max: fast"))
    d = only(text)
    assert d.code == "E103"
    assert d.message == "rollouts.churn-api.analysis.metrics.1: 'fast' is not a duration"
    assert line(d) == span_of(text, "fast", within=ROLLOUTS).line
    assert d.hint == "write a latency such as 150ms or 1s"


def test_a_rule_needs_one_source_and_one_test() -> None:
    both = variant(("{field: plan, equals: pro}", "{field: plan, header: x-plan, equals: pro}"))
    assert only(both).message == (
        "rollouts.churn-api.rules.0: a rollout rule needs exactly one of `field` or `header`"
    )
    neither = variant(("{field: plan, equals: pro}", "{field: plan}"))
    assert only(neither).message == (
        "rollouts.churn-api.rules.0: a rollout rule needs exactly one of `equals` or `in`"
    )


def test_weight_out_of_range_is_e103() -> None:
    text = variant(("{weight: 50, duration: 10m", "{weight: 150, duration: 10m"))
    d = only(text)
    assert d.code == "E103"
    assert line(d) == span_of(text, "150", within=ROLLOUTS).line


def test_unknown_key_is_e101_at_the_key() -> None:
    text = variant(("    sticky_key: plan\n", "    sticky_key: plan\n    surprise: 1\n"))
    d = only(text)
    assert d.code == "E101"
    assert d.message == "rollouts.churn-api: unknown key 'surprise'"
    assert d.span == span_of(text, "surprise", within=ROLLOUTS)


def test_unknown_key_in_a_step_is_e101() -> None:
    text = variant(("{weight: 10, duration: 5m}", "{weight: 10, duration: 5m, pause: true}"))
    d = only(text)
    assert d.code == "E101"
    assert d.message.startswith("rollouts.churn-api.steps.0: unknown key 'pause'")
    assert d.span == span_of(text, "pause", within=ROLLOUTS)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("max: 1%, compare: stable, margin: 0.5%", "max: 2, compare: stable, margin: 0.5%"),
        ("max: 1%, compare: stable, margin: 0.5%", "max: 1%, compare: stable, margin: 1"),
        ("{name: latency_p99, max: 150ms}", "{name: latency_p99, max: -1}"),
    ],
    ids=["error-rate-max-2", "error-rate-margin-1", "latency-max-negative"],
)
def test_limits_the_analysis_cannot_take_are_e103(old: str, new: str) -> None:
    d = only(variant((old, new)))
    assert d.code == "E103"
