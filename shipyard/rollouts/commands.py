"""`shipyard rollout start|status|promote|pause|resume|abort <rollout>`.

`start` and `resume` run the roll-out flow here (as `shipyard run roll-out <name>` does).
`pause`, `abort` and `promote` leave a command in the rollout's state: a running controller
acts on it within half a second; when none runs, the flow is started to act on it, so every
change of traffic goes through the controller and is audited the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from shipyard.audit import current_actor
from shipyard.compiler import Plan, RolloutStep, ServiceStep
from shipyard.errors import ShipyardError
from shipyard.processes import owner_gone
from shipyard.rollouts.report import status_text
from shipyard.rollouts.state import Command, RolloutConflict, RolloutState, RolloutStore

EXIT_OK = 0
FOLLOW_SECONDS = 60.0
"""How long a command waits for a running controller to act on it."""


RunFlow = Callable[[str], int]
"""Runs the roll-out flow of a rollout now (the CLI passes `shipyard run`'s)."""


def rollout_command(
    plan: Plan, action: str, name: str, run_flow: RunFlow, reason: str | None = None
) -> int:
    step = plan.named(RolloutStep, name)
    service = plan.steps[step.service]
    assert isinstance(service, ServiceStep)
    store = RolloutStore(service.control_database)
    if action == "status":
        print(status_text(step, store.read(name), _weights(service)))
        return EXIT_OK
    if action in ("start", "resume"):
        state = store.read(name)
        if action == "resume" and (state is None or state.status != "paused"):
            shown = "never started" if state is None else state.status
            raise ShipyardError(
                f"rollout '{name}' is {shown}, not paused: nothing to resume",
                hint=f"`shipyard rollout start {name}` starts it",
                resource=step.id,
            )
        return run_flow(name)
    commands: dict[str, Command] = {"pause": "pause", "abort": "abort", "promote": "promote"}
    return _command(run_flow, store, step, commands[action], reason)


def _command(
    run_flow: RunFlow, store: RolloutStore, step: RolloutStep, action: Command, reason: str | None
) -> int:
    name = step.name
    for _ in range(5):
        state = store.read(name)
        if state is None or not state.active:
            shown = "never started" if state is None else f"{state.status}: {state.outcome}"
            raise ShipyardError(
                f"rollout '{name}' is not running ({shown}); there is nothing to {action}",
                hint=f"`shipyard rollout start {name}` starts a new one",
                resource=step.id,
            )
        if action == "pause" and state.status == "paused":
            print(f"rollout '{name}' is already paused")
            return EXIT_OK
        asked = state.model_copy(
            update={"command": action, "command_by": current_actor(), "command_reason": reason}
        )
        try:
            state = store.save(asked)
            break
        except RolloutConflict:
            continue
    else:
        raise ShipyardError(f"rollout '{name}' kept changing; {action} was not recorded")
    live = bool(state.owner) and not owner_gone(state.owner, state.owner_since)
    if not live:
        if action == "pause":
            paused = state.model_copy(update={"status": "paused", "command": None})
            store.save(paused)
            print(f"rollout '{name}' paused (no controller was running); traffic is as it was")
            return EXIT_OK
        print(f"no controller runs rollout '{name}': starting one to {action}")
        return run_flow(name)
    print(f"asked the controller ({state.owner}) to {action} rollout '{name}' ...")
    ended = _follow(store, name, action)
    print(status_text(step, ended, {}) if ended else f"rollout '{name}': {action} asked")
    return EXIT_OK


def _follow(store: RolloutStore, name: str, action: str) -> RolloutState | None:
    """Wait until the controller has taken the command (and, for abort/promote, finished)."""
    deadline = time.monotonic() + FOLLOW_SECONDS
    state = store.read(name)
    while time.monotonic() < deadline:
        state = store.read(name)
        if state is None:
            return None
        if state.command is None and (action == "pause" or not state.active):
            return state
        time.sleep(0.5)
    return state


def _weights(service: ServiceStep) -> dict[str, float]:
    from shipyard.serving.control import ControlStore

    store = ControlStore(service.control_database)
    try:
        control = store.read(service.service)
    finally:
        store.close()
    return dict(control.routing.weights) if control else {}
