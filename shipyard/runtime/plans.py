"""The plan a flow run executes: the applied one (the `shipyard-plan` block), or one handed over
in-process by `shipyard run` and tests.

Deployments carry only ids (`{"model": "churn"}`); the step itself comes from the plan applied
on the Prefect server, named by the SHIPYARD_PLAN variable of the deployment's job variables.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shipyard.compiler.plan import SCHEMA_VERSION, Plan
from shipyard.compiler.profiles import PLAN_ENV, plan_block_name
from shipyard.errors import ShipyardError
from shipyard.runtime.code import import_code

_CURRENT: ContextVar[Plan | None] = ContextVar("shipyard_plan", default=None)


@dataclass(frozen=True)
class AppliedPlan:
    """The plan on the Prefect server, with when and by whom it was applied."""

    plan: Plan
    applied_at: str
    applied_by: str


@contextmanager
def using(plan: Plan) -> Iterator[Plan]:
    """Run flows in this block on `plan` instead of the applied one (in-process runs, tests)."""
    token = _CURRENT.set(plan)
    try:
        yield plan
    finally:
        _CURRENT.reset(token)


def current_plan() -> Plan:
    """The plan of this flow run: handed over in-process, else the applied one."""
    plan = _CURRENT.get()
    if plan is not None:
        return plan
    name = os.environ.get(PLAN_ENV)
    if not name:
        raise ShipyardError(
            "this flow runs a step of a Shipyard plan, and no plan was given",
            hint="start it from its deployment (`prefect deployment run <flow>/<name>`, after "
            "`shipyard apply`) or with `shipyard run <flow> <name>`",
        )
    applied = load_applied(name)
    if applied is None:
        raise ShipyardError(
            f"the plan block 'shipyard-plan/{name}' is not on this Prefect server",
            hint="run `shipyard apply` for this project and profile",
        )
    _CURRENT.set(applied.plan)  # subflows of this run read the same plan
    return applied.plan


def save_applied(plan: Plan, actor: str) -> None:
    """Record `plan` as the project's applied plan (the block every flow run reads)."""
    ShipyardPlan = import_code("blocks.plan").ShipyardPlan
    ShipyardPlan.register_type_and_schema()
    ShipyardPlan(
        schema_version=plan.schema_version,
        spec_digest=plan.spec_digest,
        digest=plan.digest,
        applied_at=datetime.now(UTC).isoformat(timespec="seconds"),
        applied_by=actor,
        plan=plan.model_dump(mode="json"),
    ).save(plan_block_name(plan.project, plan.profile), overwrite=True)


def load_applied(name: str) -> AppliedPlan | None:
    """The plan saved under `name`, or None when there is none; a plan of another schema
    version is refused with both versions named."""
    ShipyardPlan = import_code("blocks.plan").ShipyardPlan
    try:
        block: Any = ShipyardPlan.load(name)
    except ValueError:
        return None
    if block.schema_version != SCHEMA_VERSION:
        raise ShipyardError(
            f"the applied plan 'shipyard-plan/{name}' has schema version "
            f"{block.schema_version}; this Shipyard reads schema version {SCHEMA_VERSION}",
            hint="apply the project again with this Shipyard: `shipyard apply`",
        )
    return AppliedPlan(Plan.model_validate(block.plan), block.applied_at, block.applied_by)


def applied_plan_of(plan: Plan) -> AppliedPlan | None:
    return load_applied(plan_block_name(plan.project, plan.profile))
