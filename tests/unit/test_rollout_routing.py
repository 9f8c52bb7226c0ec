"""The Router under a rollout's routing: {stable: 100-w, candidate: w}, salted by the rollout."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from shipyard.compiler import RolloutStep
from shipyard.compiler.services import RoutingPlan
from shipyard.serving.router import Router
from shipyard.spec.services import RouteRule

from .specs import compile_text

VARIANTS = ("stable", "challenger")
SALT = "rollout.churn-api"
KEYS = [f"customer-{n}" for n in range(20_000)]


def routing(
    weight: float,
    salt: str = SALT,
    rules: tuple[RouteRule, ...] = (),
    candidate: str = "challenger",
) -> RoutingPlan:
    return RoutingPlan(
        weights={"stable": 100.0 - weight, candidate: weight},
        sticky_key="customer_id",
        rules=rules,
        salt=salt,
    )


def router(weight: float, salt: str = SALT, rules: tuple[RouteRule, ...] = ()) -> Router:
    return Router(routing(weight, salt, rules), VARIANTS)


def on_candidate(chooser: Router, keys: list[str] = KEYS) -> set[str]:
    return {key for key in keys if chooser.choose({"customer_id": key}, {}) == "challenger"}


def within_binomial(count: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_at_a_fixed_weight_a_sticky_key_always_gets_the_same_variant() -> None:
    chooser = router(25)
    for key in KEYS[:300]:
        first = chooser.choose({"customer_id": key}, {})
        assert all(chooser.choose({"customer_id": key}, {}) == first for _ in range(5))
    rebuilt = router(25)  # another worker, or after a restart
    assert on_candidate(rebuilt, KEYS[:2_000]) == on_candidate(chooser, KEYS[:2_000])


def test_as_the_weight_grows_every_candidate_key_stays_on_the_candidate() -> None:
    previous: set[str] = set()
    for weight in (10, 30, 60, 100):
        now = on_candidate(router(weight))
        assert previous <= now, f"{len(previous - now)} keys went back to stable at {weight}%"
        assert len(now) > len(previous)
        previous = now
    assert previous == set(KEYS)


def test_the_split_over_distinct_keys_follows_the_weight() -> None:
    for weight in (1, 10, 30, 60, 95):
        count = len(on_candidate(router(weight)))
        assert within_binomial(count, len(KEYS), weight / 100), (weight, count)


def test_two_salts_bucket_the_same_keys_independently() -> None:
    w1, w2 = 0.3, 0.6
    first = on_candidate(router(100 * w1, "rollout.churn-api"))
    second = on_candidate(router(100 * w2, "rollout.churn-b"))
    agree = sum((key in first) == (key in second) for key in KEYS)
    expected = w1 * w2 + (1 - w1) * (1 - w2)
    assert within_binomial(agree, len(KEYS), expected), (agree, len(KEYS) * expected)
    both = len(first & second)
    assert within_binomial(both, len(KEYS), w1 * w2), both


def test_the_rollout_salt_is_independent_of_the_services() -> None:
    rollout = on_candidate(router(50, "rollout.churn-api"))
    service = on_candidate(router(50, "service.churn-api"))
    agree = sum((key in rollout) == (key in service) for key in KEYS)
    assert within_binomial(agree, len(KEYS), 0.5)


def test_rules_send_matching_rows_to_the_candidate_even_at_weight_0() -> None:
    rules = (
        RouteRule.model_validate({"field": "plan", "equals": "pro", "variant": "challenger"}),
        RouteRule.model_validate(
            {"header": "x-tenant", "in": ["beta", "internal"], "variant": "challenger"}
        ),
    )
    chooser = router(0, rules=rules)
    assert chooser.sole is None  # the rules still choose
    for key in KEYS[:500]:
        assert chooser.choose({"customer_id": key, "plan": "pro"}, {}) == "challenger"
        assert chooser.choose({"customer_id": key, "plan": "basic"}, {}) == "stable"
        assert chooser.choose({"customer_id": key}, {"x-tenant": "beta"}) == "challenger"
        assert chooser.choose({"customer_id": key}, {"x-tenant": "acme"}) == "stable"
    assert {chooser.choose({"plan": "basic"}, {}) for _ in range(500)} == {"stable"}


def test_weight_0_without_rules_sends_everything_to_stable() -> None:
    chooser = router(0)
    assert chooser.sole == "stable"
    assert on_candidate(chooser) == set()
    assert chooser.choose({"customer_id": "x"}, {}, forced="challenger") == "challenger"


def test_weight_100_sends_everything_to_the_candidate_and_stable_needs_no_weight() -> None:
    chooser = router(100)
    assert chooser.sole == "challenger"
    assert on_candidate(chooser) == set(KEYS)
    assert chooser.choose({"customer_id": "x"}, {}, forced="stable") == "stable"


def test_no_weight_above_0_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one variant needs a weight above 0"):
        RoutingPlan(weights={"stable": 0.0, "challenger": 0.0}, salt=SALT)
    only_unknown_weight = RoutingPlan(weights={"stable": 0.0, "shadow": 10.0}, salt=SALT)
    with pytest.raises(ValueError, match="variant 'shadow'"):  # UnknownVariant
        Router(only_unknown_weight, VARIANTS)


def test_rows_without_the_sticky_key_split_at_random_by_the_weight() -> None:
    chooser = router(30)
    counts = Counter(chooser.choose({}, {}) for _ in range(20_000))
    assert within_binomial(counts["challenger"], 20_000, 0.3)


def test_the_compiled_rollouts_routing_drives_the_router(tmp_path: Path) -> None:
    text = """\
project: churn-demo
datasets:
  customers:
    path: data/customers.parquet
    timestamp: event_time
    schema: {customer_id: int, event_time: datetime, plan: str, churned: bool}
models:
  churn:
    task: classification
    dataset: customers
    target: churned
    features: [customer_id, plan]
    estimator: {class: sklearn.linear_model.LogisticRegression}
services:
  churn-api:
    model: churn
    candidates: [challenger]
    routing: {sticky_key: customer_id}
rollouts:
  churn-api:
    candidate: 7
    rules: [{field: plan, in: [pro]}]
"""
    step = compile_text(tmp_path, text).named(RolloutStep, "churn-api")
    weight = step.stages[0].weight
    plan = RoutingPlan(
        weights={"stable": 100 - weight, step.candidate.name: weight},
        sticky_key=step.sticky_key,
        rules=step.rules,
        salt=step.salt,
    )
    chooser = Router(plan, ("stable", "challenger", step.candidate.name))
    keys = list(range(20_000))
    chosen = Counter(chooser.choose({"customer_id": key, "plan": "basic"}, {}) for key in keys)
    assert set(chosen) == {"stable", "v7"}
    assert within_binomial(chosen["v7"], len(keys), weight / 100)
    assert chooser.choose({"customer_id": 1, "plan": "pro"}, {}) == "v7"
