"""The applied plan: what `shipyard apply` registered, read by every flow run of the project."""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import Field


class ShipyardPlan(Block):
    """The compiled plan a project's deployments run: each flow run reads its step from here.

    Example:
        ```python
        from blocks.plan import ShipyardPlan

        applied = ShipyardPlan.load("churn-demo-local-plan")
        print(applied.spec_digest, sorted(applied.plan["steps"]))
        ```
    """

    _block_type_name = "Shipyard Plan"
    _block_type_slug = "shipyard-plan"
    _description = (
        "The plan `shipyard apply` registered: every step of the project, typed and resolved. "
        "Change it with `shipyard apply`, not here."
    )

    schema_version: int = Field(description="Version of the plan's format.")
    spec_digest: str = Field(description="Digest of the pipelines.yaml the plan compiles.")
    digest: str = Field(description="Digest of the whole plan.")
    applied_at: str = Field(description="When it was applied (UTC, ISO 8601).")
    applied_by: str = Field(description="Who applied it (SHIPYARD_ACTOR or the OS user).")
    plan: dict[str, Any] = Field(description="The plan itself, as `shipyard plan --json` prints.")
