"""Resolve ids and the step graph, and compile a frozen Plan (steps, deployments, blocks)."""

from shipyard.compiler.compile import FLOWS, PlanError, compile_plan, spec_digest
from shipyard.compiler.plan import (
    BlockPlan,
    CompiledExpectation,
    DatasetStep,
    DeploymentPlan,
    Plan,
    PlanStep,
    RuntimeContext,
    TrainModelStep,
)

__all__ = [
    "FLOWS",
    "BlockPlan",
    "CompiledExpectation",
    "DatasetStep",
    "DeploymentPlan",
    "Plan",
    "PlanError",
    "PlanStep",
    "RuntimeContext",
    "TrainModelStep",
    "compile_plan",
    "spec_digest",
]
