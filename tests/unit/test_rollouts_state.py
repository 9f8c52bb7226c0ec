"""RolloutStore: compare-and-swap on the revision, a stale write changes nothing, replace() starts
over (SQLite in the state folder; PostgreSQL shared by replicas)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.compiler.services import RoutingPlan
from shipyard.errors import ServiceUnavailable
from shipyard.rollouts.state import (
    Decision,
    Interval,
    Measurement,
    RolloutConflict,
    RolloutState,
    RolloutStore,
)

BEFORE = RoutingPlan(weights={"stable": 100.0, "challenger": 0.0}, salt="service.churn-api")


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)],
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RolloutStore]:
    if request.param == "sqlite":
        yield RolloutStore(f"sqlite:///{tmp_path / 'control.sqlite'}")
        return
    from support import throwaway_database

    with throwaway_database("shipyard_rollouts", create=True) as database:
        yield RolloutStore(f"postgresql://postgres@127.0.0.1:5432/{database}")


def new_state(rollout: str = "churn-api", **changes: object) -> RolloutState:
    state = RolloutState(
        name=rollout,
        service="churn-api",
        strategy="canary",
        started_at=1000.0,
        updated_at=1000.0,
        owner="host:1",
        owner_since=1000.0,
        candidate_variant="challenger",
        candidate_version="8",
        stable_version="7",
        champion_version="7",
        before=BEFORE,
    )
    return state.model_copy(update=changes)


def interval() -> Interval:
    return Interval(
        stage=0,
        at=1060.0,
        seconds=60.0,
        weight=10.0,
        requests={"stable": 900.0, "challenger": 100.0},
        errors={"stable": 1.0, "challenger": 0.0},
        measurements=[
            Measurement(
                name="error_rate",
                outcome="successful",
                value=0.0,
                baseline=0.0011,
                threshold=0.01,
                p_value=0.9,
                method="fisher",
                evidence="error rate 0% (0/100) vs stable 0.111% (1/900): ok",
            )
        ],
    )


def test_nothing_before_the_first_save(store: RolloutStore) -> None:
    assert store.read("churn-api") is None


def test_the_first_save_is_at_revision_0_and_gives_revision_1(store: RolloutStore) -> None:
    saved = store.save(new_state())
    assert saved.revision == 1
    assert saved.updated_at > 1000.0
    read = store.read("churn-api")
    assert read == saved
    assert read is not None and read.before == BEFORE and read.active


def test_the_next_save_is_at_revision_1(store: RolloutStore) -> None:
    first = store.save(new_state())
    moved = first.model_copy(
        update={
            "phase": "stages",
            "stage": 1,
            "intervals": [interval()],
            "decisions": [
                Decision(
                    at=1060.0,
                    stage=0,
                    action="advance",
                    outcome="successful",
                    reason="all metrics ok",
                    actor="controller",
                )
            ],
        }
    )
    second = store.save(moved)
    assert second.revision == 2
    read = store.read("churn-api")
    assert read == second
    assert read is not None and read.intervals == [interval()] and read.stage == 1


def test_a_stale_save_is_a_conflict_and_writes_nothing(store: RolloutStore) -> None:
    first = store.save(new_state())
    winner = store.save(first.model_copy(update={"status": "paused", "command": "pause"}))
    with pytest.raises(RolloutConflict, match="changed while this change was being made") as raised:
        store.save(first.model_copy(update={"status": "rolled_back"}))
    assert raised.value.resource == "rollout.churn-api"
    assert raised.value.hint == "see `shipyard rollout status churn-api` and try again"
    assert store.read("churn-api") == winner


def test_a_second_first_save_is_a_conflict(store: RolloutStore) -> None:
    first = store.save(new_state(owner="host:1"))
    with pytest.raises(RolloutConflict):
        store.save(new_state(owner="host:2"))
    assert store.read("churn-api") == first


def test_a_save_from_the_future_is_a_conflict(store: RolloutStore) -> None:
    first = store.save(new_state())
    with pytest.raises(RolloutConflict):
        store.save(first.model_copy(update={"revision": 5}))
    with pytest.raises(RolloutConflict):  # nothing stored yet at revision 3 of another rollout
        store.save(new_state("other", revision=3))
    assert store.read("churn-api") == first and store.read("other") is None


def test_replace_starts_over(store: RolloutStore) -> None:
    first = store.save(new_state())
    ended = store.save(first.model_copy(update={"status": "promoted", "phase": "done"}))
    assert ended.revision == 2 and not ended.active
    again = store.replace(new_state(candidate_version="9", revision=17, intervals=[interval()]))
    assert again.revision == 1
    read = store.read("churn-api")
    assert read == again
    assert read is not None and read.candidate_version == "9" and read.status == "running"
    assert store.save(again).revision == 2


def test_replace_without_a_stored_state_is_a_first_save(store: RolloutStore) -> None:
    assert store.replace(new_state()).revision == 1


def test_rollouts_are_independent(store: RolloutStore) -> None:
    store.save(new_state("churn-api"))
    other = store.save(new_state("churn-b", service="churn-b"))
    assert other.revision == 1
    store.replace(new_state("churn-api"))
    assert store.read("churn-b") == other


def test_the_state_lives_next_to_the_control_state(tmp_path: Path) -> None:
    from shipyard.serving.control import ControlStore

    url = f"sqlite:///{tmp_path / 'control.sqlite'}"
    control = ControlStore(url)
    assert control.read("churn-api") is None
    control.close()
    rollouts = RolloutStore(url)
    assert rollouts.save(new_state()).revision == 1
    assert RolloutStore(url).read("churn-api") is not None


def test_an_unreachable_database_is_service_unavailable(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite").mkdir()  # a folder: SQLite cannot open it
    store = RolloutStore(f"sqlite:///{tmp_path / 'dir.sqlite'}")
    with pytest.raises(ServiceUnavailable, match="cannot be read"):
        store.read("churn-api")
    with pytest.raises(ServiceUnavailable, match="nothing was changed"):
        store.save(new_state())


def test_an_unsupported_url_is_refused() -> None:
    with pytest.raises(ValueError, match="not supported"):
        RolloutStore("mysql://127.0.0.1/control")
