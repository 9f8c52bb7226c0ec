"""Resolve ids and the step graph, and compile a frozen Plan (steps, deployments, blocks)."""

from shipyard.compiler.compile import PlanError, compile_plan, flow_entrypoint, spec_digest
from shipyard.compiler.datasets import DatasetStep
from shipyard.compiler.expectations import CompiledExpectation
from shipyard.compiler.features import FeatureRepoStep, MaterializeStep
from shipyard.compiler.models import TrainModelStep
from shipyard.compiler.plan import (
    SCHEMA_VERSION,
    DeploymentPlan,
    EnvironmentPlan,
    Plan,
    RuntimeContext,
    StepBase,
)
from shipyard.compiler.rollouts import RolloutStep
from shipyard.compiler.services import ServiceStep

__all__ = [
    "SCHEMA_VERSION",
    "CompiledExpectation",
    "DatasetStep",
    "DeploymentPlan",
    "EnvironmentPlan",
    "FeatureRepoStep",
    "MaterializeStep",
    "Plan",
    "PlanError",
    "RolloutStep",
    "RuntimeContext",
    "ServiceStep",
    "StepBase",
    "TrainModelStep",
    "compile_plan",
    "flow_entrypoint",
    "spec_digest",
]
