"""Choosing a variant: forced header, rules, sticky and random weights."""

from __future__ import annotations

from collections import Counter

import pytest
from pydantic import ValidationError

from shipyard.compiler.services import RoutingPlan
from shipyard.serving.router import Router, UnknownVariant
from shipyard.spec.services import RouteRule

VARIANTS = ("champion", "challenger", "shadow")


def routing(**state: object) -> RoutingPlan:
    return RoutingPlan.model_validate({"salt": "service.churn-api", **state})


def router(**state: object) -> Router:
    return Router(routing(**state), VARIANTS)


def test_random_choices_follow_the_weights() -> None:
    chooser = router(weights={"champion": 3, "challenger": 1})
    counts = Counter(chooser.choose({}, {}) for _ in range(20_000))
    assert abs(counts["champion"] / 20_000 - 0.75) < 0.03
    assert abs(counts["challenger"] / 20_000 - 0.25) < 0.03


def test_variant_with_weight_zero_or_no_weight_is_never_chosen() -> None:
    chooser = router(weights={"champion": 1, "challenger": 0})
    assert {chooser.choose({}, {}) for _ in range(2_000)} == {"champion"}
    sticky = router(weights={"champion": 0, "challenger": 1}, sticky_key="customer_id")
    assert {sticky.choose({"customer_id": n}, {}) for n in range(2_000)} == {"challenger"}


def test_same_sticky_value_always_gets_the_same_variant() -> None:
    chooser = router(weights={"champion": 1, "challenger": 1}, sticky_key="customer_id")
    for customer in range(200):
        first = chooser.choose({"customer_id": customer}, {})
        assert all(chooser.choose({"customer_id": customer}, {}) == first for _ in range(5))
    rebuilt = router(weights={"champion": 1, "challenger": 1}, sticky_key="customer_id")
    assert all(
        rebuilt.choose({"customer_id": c}, {}) == chooser.choose({"customer_id": c}, {})
        for c in range(200)
    )


def test_sticky_values_spread_by_the_weights() -> None:
    chooser = router(weights={"champion": 9, "challenger": 1}, sticky_key="customer_id")
    counts = Counter(chooser.choose({"customer_id": f"c-{n}"}, {}) for n in range(20_000))
    assert abs(counts["challenger"] / 20_000 - 0.10) < 0.02


def test_row_without_the_sticky_value_falls_back_to_random() -> None:
    chooser = router(weights={"champion": 1, "challenger": 1}, sticky_key="customer_id")
    assert {chooser.choose({"customer_id": None}, {}) for _ in range(500)} == {
        "champion",
        "challenger",
    }


def test_rules_match_fields_and_headers_before_weights_first_match_wins() -> None:
    chooser = router(
        weights={"champion": 1},
        rules=[
            {"header": "X-Tenant", "equals": "beta", "variant": "challenger"},
            {"field": "plan", "in": ["pro", "plus"], "variant": "shadow"},
            {"field": "plan", "equals": "pro", "variant": "challenger"},
        ],
    )
    assert chooser.choose({"plan": "pro"}, {}) == "shadow"
    assert chooser.choose({"plan": "basic"}, {"x-tenant": "beta"}) == "challenger"
    assert chooser.choose({"plan": "basic"}, {"x-tenant": "alpha"}) == "champion"
    assert chooser.choose({"plan": ["unhashable"]}, {}) == "champion"


def test_header_rules_compare_numbers_and_booleans_as_header_text() -> None:
    chooser = router(
        weights={"champion": 1},
        rules=[
            {"header": "x-canary", "equals": True, "variant": "challenger"},
            {"header": "x-shard", "in": [3, 4], "variant": "shadow"},
        ],
    )
    assert chooser.choose({}, {"x-canary": "true"}) == "challenger"
    assert chooser.choose({}, {"x-shard": "4"}) == "shadow"


def test_forced_variant_wins_even_with_weight_zero() -> None:
    chooser = router(
        weights={"champion": 1}, rules=[{"field": "a", "equals": 1, "variant": "challenger"}]
    )
    assert chooser.choose({"a": 1}, {}, forced="shadow") == "shadow"


def test_unknown_forced_variant_lists_the_known_ones() -> None:
    with pytest.raises(UnknownVariant, match="champion, challenger, shadow"):
        router(weights={"champion": 1}).choose({}, {}, forced="nope")


@pytest.mark.parametrize(
    "state",
    [
        {"weights": {"champion": 1, "ghost": 1}},
        {"weights": {"champion": 1}, "rules": [{"field": "a", "equals": 1, "variant": "ghost"}]},
    ],
    ids=["weights", "rules"],
)
def test_unknown_variant_in_state_is_rejected_listing_known_ones(state: dict[str, object]) -> None:
    with pytest.raises(UnknownVariant, match=r"'ghost'.*champion, challenger, shadow"):
        router(**state)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"variant": "a", "equals": 1}, "exactly one of `field` or `header`"),
        ({"variant": "a", "field": "f", "header": "h", "equals": 1}, "`field` or `header`"),
        ({"variant": "a", "field": "f"}, "exactly one of `equals` or `in`"),
        ({"variant": "a", "field": "f", "equals": 1, "in": [1]}, "`equals` or `in`"),
        ({"variant": "a", "field": "f", "equals": 1, "typo": 2}, "Extra inputs"),
    ],
)
def test_malformed_rules_are_rejected(rule: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RouteRule.model_validate(rule)


def test_equals_null_is_an_explicit_test() -> None:
    rule = RouteRule.model_validate({"field": "region", "equals": None, "variant": "shadow"})
    chooser = Router(routing(weights={"champion": 1}, rules=[rule]), VARIANTS)
    assert chooser.choose({}, {}) == "shadow"
    assert chooser.choose({"region": "north"}, {}) == "champion"


@pytest.mark.parametrize("weights", [{"champion": 0}, {"champion": -1}, {"champion": "inf"}])
def test_weights_need_one_positive_and_none_negative(weights: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        routing(weights=weights)


def test_routing_without_any_weight_is_refused_by_the_router() -> None:
    with pytest.raises(ValueError, match="at least one variant needs a weight above 0"):
        router(weights={})


def test_router_keeps_its_own_copy_of_the_routing() -> None:
    state = routing(weights={"champion": 1, "challenger": 0})
    chooser = Router(state, VARIANTS)
    state.weights["challenger"] = 100
    chooser.state.weights["challenger"] = 100
    assert chooser.state.weights == {"champion": 1, "challenger": 0}
    assert {chooser.choose({}, {}) for _ in range(200)} == {"champion"}


def test_each_salt_splits_the_same_callers_independently() -> None:
    def split(salt: str) -> list[str]:
        chooser = Router(
            routing(weights={"champion": 1, "challenger": 1}, sticky_key="id", salt=salt),
            VARIANTS,
        )
        return [chooser.choose({"id": n}, {}) for n in range(2_000)]

    service, experiment = split("service.churn-api"), split("abtest.churn-v2")
    assert split("abtest.churn-v2") == experiment  # sticky: the same salt, the same split
    agree = sum(a == b for a, b in zip(service, experiment, strict=True)) / len(service)
    assert 0.4 < agree < 0.6  # independent halves agree about half the time


def test_sole_variant_only_when_nothing_is_left_to_choose() -> None:
    two = ["stable", "canary"]
    assert Router(routing(weights={"stable": 100, "canary": 0}), two).sole == "stable"
    assert Router(routing(weights={"stable": 90, "canary": 10}), two).sole is None
    ruled = routing(
        weights={"stable": 100},
        rules=[RouteRule.model_validate({"header": "x-beta", "equals": "1", "variant": "canary"})],
    )
    assert Router(ruled, two).sole is None


def test_routing_for_the_variants_a_bento_serves() -> None:
    declared = routing(
        weights={"stable": 90, "challenger": 10},
        rules=[{"header": "x-beta", "equals": "1", "variant": "challenger"}],
    )
    built_without_challenger = declared.for_variants(["stable"])
    assert built_without_challenger.weights == {"stable": 90}
    assert built_without_challenger.rules == ()
    assert Router(built_without_challenger, ["stable"]).sole == "stable"
    only_candidates = routing(weights={"challenger": 100}).for_variants(["stable", "shadow"])
    assert only_candidates.weights == {"stable": 100.0, "shadow": 0.0}
    assert declared.for_variants(["stable", "challenger"]) == declared
