"""The control store: compare-and-swap on the revision, the audit written with each change, and
two writers racing (SQLite in the state folder; PostgreSQL shared by replicas)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.compiler.services import RoutingPlan
from shipyard.errors import ShipyardError
from shipyard.serving.control import ControlConflict, ControlStore, resolve_bundle

STABLE = RoutingPlan(weights={"stable": 100.0}, salt="service.api")
SPLIT = RoutingPlan(weights={"stable": 90.0, "challenger": 10.0}, salt="service.api")


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)],
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ControlStore]:
    if request.param == "sqlite":
        control = ControlStore(f"sqlite:///{tmp_path / 'control.sqlite'}")
        yield control
        control.close()
        return
    from support import throwaway_database

    with throwaway_database("shipyard_control", create=True) as database:
        control = ControlStore(f"postgresql://postgres@127.0.0.1:5432/{database}")
        yield control
        control.close()


def _deploy(store: ControlStore, expected: int = 0, bento: str = "api:v1") -> object:
    return store.change(
        "api",
        expected_revision=expected,
        actor="ci",
        action="deploy",
        reason=f"deploy {bento}",
        bento=bento,
        bundle=f"/bentos/{bento}",
        routing=STABLE,
    )


def test_nothing_before_the_first_deploy(store: ControlStore) -> None:
    assert store.read("api") is None
    assert store.revision("api") == 0
    assert store.history("api") == []


def test_a_first_state_needs_a_bento_and_routing(store: ControlStore) -> None:
    with pytest.raises(ValueError, match="needs a Bento"):
        store.change("api", expected_revision=0, actor="a", action="routing", reason="r")
    assert store.read("api") is None


def test_each_change_adds_one_revision_and_keeps_what_it_does_not_change(
    store: ControlStore,
) -> None:
    first = _deploy(store)
    assert store.revision("api") == 1
    routed = store.change(
        "api", expected_revision=1, actor="ops", action="routing", reason="10%", routing=SPLIT
    )
    assert (routed.revision, routed.bento, routed.routing) == (2, "api:v1", SPLIT)
    assert store.read("api") == routed
    assert first != routed


def test_a_stale_revision_is_a_conflict_and_changes_nothing(store: ControlStore) -> None:
    _deploy(store)
    store.change("api", expected_revision=1, actor="a", action="routing", reason="r", routing=SPLIT)
    with pytest.raises(ControlConflict) as raised:
        store.change(
            "api", expected_revision=1, actor="b", action="routing", reason="late", routing=STABLE
        )
    assert isinstance(raised.value, ShipyardError)
    assert "revision 2, not 1" in raised.value.message
    assert (raised.value.expected, raised.value.current) == (1, 2)
    state = store.read("api")
    assert state is not None and state.routing == SPLIT and state.revision == 2
    assert [r.reason for r in store.history("api")] == ["r", "deploy api:v1"]


def test_two_writers_racing_on_one_revision_one_wins(store: ControlStore) -> None:
    _deploy(store)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def write(n: int) -> None:
        routing = RoutingPlan(weights={"stable": float(n + 1)}, salt="service.api")
        barrier.wait()
        try:
            store.change(
                "api",
                expected_revision=1,
                actor=f"writer-{n}",
                action="routing",
                reason=f"writer {n}",
                routing=routing,
            )
            outcomes.append("won")
        except ControlConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 7 + ["won"]
    state = store.read("api")
    assert state is not None and state.revision == 2
    [change, _] = store.history("api")
    assert change.after["routing"]["weights"] == state.routing.weights  # audit = what won
    assert change.actor == state.actor


def test_the_audit_records_before_and_after(store: ControlStore) -> None:
    _deploy(store)
    store.change(
        "api", expected_revision=1, actor="ops", action="routing", reason="canary", routing=SPLIT
    )
    latest, first = store.history("api")
    assert (latest.revision, latest.actor, latest.action, latest.reason) == (
        2,
        "ops",
        "routing",
        "canary",
    )
    assert latest.before is not None and latest.before["routing"]["weights"] == {"stable": 100.0}
    assert latest.after["routing"]["weights"] == {"stable": 90.0, "challenger": 10.0}
    assert first.before is None and first.action == "deploy"


def test_services_have_their_own_states(store: ControlStore) -> None:
    _deploy(store)
    assert store.read("other") is None and store.revision("other") == 0


def test_an_unsupported_url_is_refused() -> None:
    with pytest.raises(ValueError, match="not supported"):
        ControlStore("mysql://db/control")


def test_an_unreachable_store_is_a_clear_error(tmp_path: Path) -> None:
    from support import free_port

    store = ControlStore(f"postgresql://postgres@127.0.0.1:{free_port()}/nope")
    with pytest.raises(ShipyardError, match=r"control store .* cannot be read"):
        store.revision("api")


def test_a_bundle_found_by_its_tag_on_another_machine(tmp_path: Path) -> None:
    store = ControlStore(f"sqlite:///{tmp_path / 'control.sqlite'}")
    state = _deploy(store, bento="api:m1-abc")
    local = tmp_path / "bentoml" / "bentos" / "api" / "m1-abc" / "src"
    with pytest.raises(ShipyardError, match="is not on this machine"):
        resolve_bundle(state, tmp_path)  # type: ignore[arg-type]
    local.mkdir(parents=True)
    (local / "service.json").write_text("{}")
    assert resolve_bundle(state, tmp_path) == local  # type: ignore[arg-type]
