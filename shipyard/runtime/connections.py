"""Loading a flow's connection blocks by the names the plan gives them."""

from __future__ import annotations

from typing import Any

from shipyard.compiler.plan import BLOCK_TYPES, RuntimeContext
from shipyard.errors import ShipyardError
from shipyard.metrics import MetricsSink


def load_block(runtime: RuntimeContext, role: str) -> Any:
    """The saved block for a role (dvc_remote, metrics); a clear error if it was never saved."""
    from blocks.connections import BLOCK_TYPES as BLOCK_CLASSES

    name = runtime.blocks[role]
    slug = BLOCK_TYPES[role]
    try:
        return BLOCK_CLASSES[slug].load(name)
    except ValueError as exc:
        raise ShipyardError(
            f"Prefect block '{slug}/{name}' is not saved on this Prefect server",
            hint="run `shipyard apply` (or `shipyard run`, which saves blocks first)",
        ) from exc


def metrics_sink(runtime: RuntimeContext) -> MetricsSink:
    block = load_block(runtime, "metrics")
    return MetricsSink(
        textfile_dir=block.textfile_dir,
        pushgateway_url=block.pushgateway_url,
        username=block.username,
        password=block.password,
    )
