"""The Router under an A/B test: the experiment's split by its own salt, its target, and what
comes before it (forced header, rules) and after it (the service's weights)."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from shipyard.compiler.services import ExperimentPlan, RoutingPlan
from shipyard.serving.router import Router, unit_id
from shipyard.spec.ab_tests import TargetRule, parse_target
from shipyard.spec.services import RouteRule

VARIANTS = ("stable", "challenger", "canary")
SERVICE_SALT = "service.churn-api"
KEYS = [f"customer-{n}" for n in range(20_000)]


def experiment(
    arms: dict[str, float] | None = None,
    target: str | None = None,
    salt: str = "ab_test.churn-test",
    name: str = "churn-test",
) -> ExperimentPlan:
    return ExperimentPlan(
        name=name,
        salt=salt,
        assign_by="customer_id",
        target=parse_target(target) if target else None,
        arms=arms or {"stable": 50.0, "challenger": 50.0},
    )


def routing(
    test: ExperimentPlan | None,
    weights: dict[str, float] | None = None,
    sticky_key: str | None = "customer_id",
    rules: tuple[RouteRule, ...] = (),
) -> RoutingPlan:
    return RoutingPlan(
        weights=weights or {"stable": 100.0},
        sticky_key=sticky_key,
        rules=rules,
        salt=SERVICE_SALT,
        experiment=test,
    )


def router(test: ExperimentPlan | None = None, **state: object) -> Router:
    return Router(routing(test or experiment(), **state), VARIANTS)  # type: ignore[arg-type]


def row(key: object, **fields: object) -> dict[str, object]:
    return {"customer_id": key, **fields}


def arms_of(chooser: Router, keys: list[str] = KEYS, **fields: object) -> dict[str, str]:
    return {key: chooser.choose(row(key, **fields), {}) for key in keys}


def within_binomial(count: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


# --- the split ----------------------------------------------------------------------------------


def test_a_key_keeps_its_arm() -> None:
    chooser = router()
    for key in KEYS[:300]:
        first = chooser.assign(row(key), {})
        assert first[1] is True
        assert all(chooser.assign(row(key), {}) == first for _ in range(5))
    rebuilt = router()  # another worker, or after a restart
    assert arms_of(rebuilt, KEYS[:2_000]) == arms_of(chooser, KEYS[:2_000])
    assert chooser.experiment == "churn-test"


@pytest.mark.parametrize(
    "arms",
    [
        {"stable": 50.0, "challenger": 50.0},
        {"stable": 90.0, "challenger": 10.0},
        {"stable": 20.0, "challenger": 30.0, "canary": 50.0},
        {"challenger": 1.0, "stable": 99.0},
    ],
)
def test_the_split_over_distinct_keys_follows_the_allocation(arms: dict[str, float]) -> None:
    counts = Counter(arms_of(router(experiment(arms))).values())
    assert set(counts) <= set(arms)
    total = sum(arms.values())
    for arm, share in arms.items():
        assert within_binomial(counts[arm], len(KEYS), share / total), (arm, counts)


def test_an_arm_of_share_zero_gets_no_key() -> None:
    chooser = router(experiment({"stable": 0.0, "challenger": 100.0}))
    assert set(arms_of(chooser, KEYS[:2_000]).values()) == {"challenger"}


def test_the_experiment_salt_is_independent_of_the_services_sticky_salt() -> None:
    # the service splits 50/50 by the same key under its own salt
    service = Router(routing(None, weights={"stable": 50.0, "challenger": 50.0}), VARIANTS)
    test = router()
    on_service = {k for k, v in arms_of(service).items() if v == "challenger"}
    on_test = {k for k, v in arms_of(test).items() if v == "challenger"}
    agree = sum((key in on_service) == (key in on_test) for key in KEYS)
    assert within_binomial(agree, len(KEYS), 0.5), agree
    assert within_binomial(len(on_service & on_test), len(KEYS), 0.25)


def test_two_experiments_bucket_the_same_keys_independently() -> None:
    w1, w2 = 0.3, 0.6
    first = router(experiment({"stable": 70.0, "challenger": 30.0}))
    second = router(
        experiment({"stable": 40.0, "challenger": 60.0}, salt="ab_test.other", name="other")
    )
    on_first = {k for k, v in arms_of(first).items() if v == "challenger"}
    on_second = {k for k, v in arms_of(second).items() if v == "challenger"}
    assert within_binomial(len(on_first & on_second), len(KEYS), w1 * w2)
    agree = sum((key in on_first) == (key in on_second) for key in KEYS)
    assert within_binomial(agree, len(KEYS), w1 * w2 + (1 - w1) * (1 - w2))


# --- the target and rows without the key --------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "inside", "outside"),
    [
        ('region == "north"', ["north"], ["south", "east", None, 1]),
        ('region in ["north", "east"]', ["north", "east"], ["south", None, "North"]),
        ('region != "south"', ["north", "east", None], ["south"]),
        ('region not in ["south", "west"]', ["north", None], ["south", "west"]),
        ("items == 3", [3, 3.0], [4, "3"]),
        ("pro == true", [True], [False, "true"]),
    ],
)
def test_rows_the_target_does_not_admit_fall_through_to_the_weights(
    target: str, inside: list[object], outside: list[object]
) -> None:
    field = parse_target(target).field
    # the service's own weights send every unassigned row to canary
    chooser = router(experiment(target=target), weights={"canary": 100.0})
    for value in inside:
        fields = {} if value is None else {field: value}
        for key in KEYS[:200]:
            variant, assigned = chooser.assign(row(key, **fields), {})
            assert assigned is True and variant in ("stable", "challenger"), (value, variant)
    for value in outside:
        fields = {} if value is None else {field: value}
        for key in KEYS[:200]:
            assert chooser.assign(row(key, **fields), {}) == ("canary", False), value


def test_an_unhashable_target_value_is_not_admitted() -> None:
    chooser = router(experiment(target='region in ["north"]'), weights={"canary": 100.0})
    assert chooser.assign(row("c-1", region=["north"]), {}) == ("canary", False)


def test_rows_without_the_key_fall_through_to_the_weights() -> None:
    chooser = router(weights={"canary": 100.0})
    assert chooser.assign({}, {}) == ("canary", False)
    assert chooser.assign(row(None), {}) == ("canary", False)
    assert chooser.unit({}) is None and chooser.unit(row(None)) is None


def test_rows_without_the_key_split_at_random_by_the_service_weights() -> None:
    chooser = router(weights={"stable": 50.0, "challenger": 50.0})
    seen = Counter(chooser.assign({"plan": "pro"}, {}) for _ in range(2_000))
    assert set(seen) == {("stable", False), ("challenger", False)}


# --- precedence ---------------------------------------------------------------------------------


def test_a_forced_variant_wins_over_the_experiment() -> None:
    chooser = router(experiment({"stable": 100.0, "challenger": 0.0}))
    assert chooser.assign(row("c-1"), {}, forced="canary") == ("canary", False)
    assert chooser.assign(row("c-1"), {}, forced="challenger") == ("challenger", False)
    assert chooser.assign(row("c-1"), {}, forced="") == ("stable", True)


def test_rules_win_over_the_experiment() -> None:
    rules = (
        RouteRule(field="plan", equals="pro", variant="canary"),
        RouteRule(header="x-tenant", in_=["beta"], variant="canary"),
    )
    chooser = router(experiment({"stable": 50.0, "challenger": 50.0}), rules=rules)
    for key in KEYS[:200]:
        assert chooser.assign(row(key, plan="pro"), {}) == ("canary", False)
        assert chooser.assign(row(key), {"x-tenant": "beta"}) == ("canary", False)
        assert chooser.assign(row(key, plan="basic"), {})[1] is True


def test_without_an_experiment_nothing_is_assigned() -> None:
    chooser = Router(routing(None, weights={"stable": 50.0, "challenger": 50.0}), VARIANTS)
    assert chooser.experiment is None
    assert chooser.unit(row("c-1")) is None
    assert all(chooser.assign(row(key), {})[1] is False for key in KEYS[:500])


def test_an_experiment_makes_a_single_weight_router_choose() -> None:
    assert Router(routing(None), VARIANTS).sole == "stable"
    assert router().sole is None


# --- the unit id --------------------------------------------------------------------------------


def test_unit_is_stable_per_key_and_differs_across_keys_and_salts() -> None:
    first, again = router(), router()
    other = router(experiment(salt="ab_test.other", name="other"))
    units = {key: first.unit(row(key)) for key in KEYS[:2_000]}
    assert all(isinstance(u, str) and len(u) == 16 for u in units.values())
    assert units == {key: again.unit(row(key)) for key in KEYS[:2_000]}
    assert len(set(units.values())) == len(units)
    assert all(other.unit(row(key)) != units[key] for key in KEYS[:2_000])
    assert first.unit(row("c-1", plan="pro")) == first.unit(row("c-1"))  # only the key counts


def test_unit_does_not_write_the_key() -> None:
    unit = router().unit(row("customer-12345"))
    assert unit is not None and "12345" not in unit


def test_unit_is_the_id_the_analysis_gives_a_feedback_entity() -> None:
    test = experiment()
    assert router(test).unit(row("c-1")) == unit_id(test.salt, "c-1")


# --- for_variants -------------------------------------------------------------------------------


def test_for_variants_keeps_an_experiment_whose_arms_are_all_served() -> None:
    plan = routing(experiment())
    assert plan.for_variants(["stable", "challenger"]).experiment == experiment()


def test_for_variants_drops_an_experiment_whose_arm_is_not_served() -> None:
    plan = routing(experiment({"stable": 50.0, "canary": 50.0}))
    served = plan.for_variants(["stable", "challenger"])
    assert served.experiment is None
    chooser = Router(served, ["stable", "challenger"])
    assert chooser.experiment is None
    assert chooser.assign(row("c-1"), {}) == ("stable", False)


def test_a_router_ignores_an_experiment_with_an_arm_it_does_not_have() -> None:
    chooser = Router(routing(experiment({"stable": 50.0, "shadow": 50.0})), VARIANTS)
    assert chooser.unit(row("c-1")) is None
    assert all(chooser.assign(row(key), {}) == ("stable", False) for key in KEYS[:200])


def test_the_target_rule_type_is_the_specs() -> None:
    assert experiment(target='region == "north"').target == TargetRule(
        field="region", op="==", values=("north",)
    )
