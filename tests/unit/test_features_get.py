"""`shipyard features get`: keys named and typed as the feature service's entities are, and
Shipyard's own message (naming the service's real keys) when they are not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import FEATURE_SPEC, compile_spec

from shipyard.compiler import Plan
from shipyard.errors import ShipyardError
from shipyard.features import commands


@pytest.fixture
def plan(make_project: Callable[..., Path]) -> Plan:
    return compile_spec(make_project(rows=0, spec=FEATURE_SPEC.format(port=4999, profile="")))


@pytest.fixture
def looked_up(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []

    def lookup(service: str, rows: list[dict[str, Any]], repo: Any) -> list[dict[str, Any]]:
        calls.append((service, rows))
        return rows

    import shipyard.features.online

    monkeypatch.setattr(shipyard.features.online, "get_online_features", lookup)
    return calls


def test_keys_are_typed_as_the_entity_is(plan: Plan, looked_up: list[Any]) -> None:
    assert commands.get_command(plan, "profile_v1", ["customer_id=42", "customer_id=-7"]) == 0
    assert looked_up == [("profile_v1", [{"customer_id": 42}, {"customer_id": -7}])]


@pytest.mark.parametrize(
    ("service", "keys", "message", "hint"),
    [
        (
            "profile_v1",
            ["account=42"],
            "feature service 'profile_v1' is looked up by customer_id, not 'account'",
            "write customer_id=<value>",
        ),
        (
            "profile_v1",
            ["customer_ids=42"],
            "feature service 'profile_v1' is looked up by customer_id, not 'customer_ids'",
            "did you mean 'customer_id'?",
        ),
        (
            "profile_v1",
            ["customer_id=forty-two"],
            "'forty-two' is not a whole number, and customer_id is one",
            "write customer_id=<integer>, e.g. customer_id=42",
        ),
        (
            "profile_v1",
            ["42"],
            "'42' is not an entity key",
            "write customer_id=<value> (the keys of feature service 'profile_v1')",
        ),
        (
            "profile_v2",
            ["customer_id=42"],
            "feature service 'profile_v2' is not defined",
            "did you mean 'profile_v1'?",
        ),
    ],
    ids=["other-name", "near-name", "not-a-number", "no-equals", "unknown-service"],
)
def test_a_wrong_key_gets_shipyards_message(
    plan: Plan, looked_up: list[Any], service: str, keys: list[str], message: str, hint: str
) -> None:
    with pytest.raises(ShipyardError) as caught:
        commands.get_command(plan, service, keys)
    assert (caught.value.message, caught.value.hint) == (message, hint)
    assert looked_up == []  # nothing reached Feast
