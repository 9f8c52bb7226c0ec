"""Loading a flow's connection blocks by the names the plan gives them."""

from __future__ import annotations

from typing import Any

from shipyard.compiler.plan import Plan, Role
from shipyard.errors import ShipyardError
from shipyard.metrics import MetricsSink
from shipyard.runtime.code import import_code


def load_block(plan: Plan, role: Role) -> Any:
    """The saved block for a role (dvc_remote, mlflow, metrics); a clear error if it was never
    saved. Loaded by name, so an operator can repoint a flow in the Prefect UI."""
    BLOCK_TYPES = import_code("blocks.connections").BLOCK_TYPES

    block = plan.blocks.of(role)
    try:
        return BLOCK_TYPES[block.type].load(block.name)
    except ValueError as exc:
        raise ShipyardError(
            f"Prefect block '{block.type}/{block.name}' is not saved on this Prefect server",
            hint="run `shipyard apply` (or `shipyard run`, which applies the plan first)",
        ) from exc


def metrics_sink(plan: Plan) -> MetricsSink:
    block = load_block(plan, "metrics")
    return MetricsSink(
        textfile_dir=block.textfile_dir,
        pushgateway_url=block.pushgateway_url,
        username=block.username,
        password=block.password,
    )
