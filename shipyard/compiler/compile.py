"""compile_plan: a validated spec -> a frozen Plan (steps, their graph, deployments, blocks).

Each section of the spec is compiled by its own module, `shipyard/compiler/<section>.py`,
whose `compile_<section>(ctx)` yields that section's steps. Sections compile in the order the
root spec declares them, so a section's compiler can read the steps of the sections before it
(`ctx.step("dataset.customers", DatasetStep)`). Deployments are derived from the steps: one
per step whose class names a flow.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from shipyard.compiler.backup import compile_backup
from shipyard.compiler.graph import check_graph, topological_order
from shipyard.compiler.plan import DeploymentPlan, JobVariables, Plan, StepBase, digest
from shipyard.compiler.profiles import (
    compile_blocks,
    compile_environments,
    compile_job_variables,
    compile_kubernetes,
    compile_mlflow_server,
    compile_prefect,
    compile_runtime,
)
from shipyard.diagnostics import Diagnostic
from shipyard.settings import state_dir_for
from shipyard.spec import PipelineSpec, ProfileSpec

CODE_DIR = Path(__file__).resolve().parents[2]
"""Where flows/ and blocks/ live: the deployments' source folder."""

StepT = TypeVar("StepT", bound=StepBase)
SectionCompiler = Callable[["CompileContext"], Iterable[StepBase]]


class PlanError(Exception):
    """The spec validated but its step graph is not executable (unknown step, cycle)."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("; ".join(d.message for d in diagnostics))
        self.diagnostics = diagnostics


@dataclass
class CompileContext:
    """What the section compilers share: the spec, where the project lives, earlier steps."""

    spec: PipelineSpec
    project_dir: Path
    state_dir: Path
    steps: dict[str, StepBase] = field(default_factory=dict)

    @property
    def profile(self) -> ProfileSpec:
        return self.spec.active_profile

    def step(self, step_id: str, kind: type[StepT]) -> StepT:
        """A step compiled by an earlier section (validation guarantees it exists)."""
        step = self.steps[step_id]
        assert isinstance(step, kind), (step_id, type(step).__name__)
        return step


def section_compiler(section: str) -> SectionCompiler:
    """`compile_<section>` of `shipyard.compiler.<section>`."""
    module = importlib.import_module(f"shipyard.compiler.{section}")
    compiler: SectionCompiler = getattr(module, f"compile_{section}")
    return compiler


def flow_entrypoint(flow: str) -> str:
    """`train-model` -> `flows/train_model.py:train_model` (one flow per file, named alike)."""
    name = flow.replace("-", "_")
    return f"flows/{name}.py:{name}"


def spec_digest(spec: PipelineSpec) -> str:
    return digest(spec.model_dump(mode="json", by_alias=True))


def compile_plan(
    spec: PipelineSpec,
    project_dir: Path,
    secrets: set[str] | None = None,
    spec_file: str = "pipelines.yaml",
) -> Plan:
    """Compile a validated spec. Pure: reads no files and imports no Prefect."""
    project_dir = project_dir.resolve()
    state_dir = state_dir_for(project_dir, spec.active_profile.state_dir)
    spec_hash = spec_digest(spec)
    ctx = CompileContext(spec, project_dir, state_dir)
    for section in spec.sections():
        for step in section_compiler(section)(ctx):
            ctx.steps[step.id] = step
    for backup in compile_backup(ctx):  # the profile's, after every section
        ctx.steps[backup.id] = backup
    problems = list(check_graph(ctx.steps.values()))
    if problems:
        raise PlanError(problems)
    steps = {step_id: ctx.steps[step_id] for step_id in topological_order(ctx.steps.values())}
    job_variables = compile_job_variables(spec, project_dir, state_dir)
    return Plan(
        project=spec.project,
        profile=spec.profile,
        spec_digest=spec_hash,
        runtime=compile_runtime(spec, project_dir, spec_file, state_dir, spec_hash),
        prefect=compile_prefect(spec, project_dir),
        mlflow_server=compile_mlflow_server(spec, state_dir, project_dir),
        blocks=compile_blocks(spec, state_dir),
        job_variables=job_variables,
        secrets=tuple(sorted(secrets or ())),
        steps=steps,
        deployments={
            d.full_name: d
            for d in (_deployment(spec, step, job_variables) for step in ctx.steps.values())
            if d is not None
        },
        kubernetes=compile_kubernetes(spec),
        environments=compile_environments(spec, project_dir),
    )


def _deployment(
    spec: PipelineSpec, step: StepBase, job_variables: JobVariables
) -> DeploymentPlan | None:
    if step.flow is None:
        return None
    deployment = {
        "flow_name": step.flow,
        "name": step.name,
        "step": step.id,
        "source": str(CODE_DIR),
        "entrypoint": flow_entrypoint(step.flow),
        "description": step.description,
        "parameters": {step.parameter: step.name},
        "schedule": step.schedule,
        "tags": ("shipyard", f"project:{spec.project}", step.id),
    }
    version = digest(
        {
            "deployment": deployment,
            "step": step.model_dump(mode="json"),
            "job_variables": job_variables.model_dump(mode="json"),
            "work_pool": spec.active_profile.prefect.work_pool,
        }
    )[:12]
    return DeploymentPlan.model_validate({**deployment, "version": version})
