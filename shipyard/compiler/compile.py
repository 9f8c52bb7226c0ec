"""compile_plan: a validated spec -> a frozen Plan (steps, their graph, deployments, blocks)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from shipyard.compiler.expectations import compile_expectations
from shipyard.compiler.graph import check_graph, topological_order
from shipyard.compiler.plan import (
    BlockPlan,
    DatasetStep,
    DeploymentPlan,
    Plan,
    PlanStep,
    RuntimeContext,
)
from shipyard.diagnostics import Diagnostic
from shipyard.settings import TELEMETRY_OFF, state_dir_for
from shipyard.spec import DatasetSpec, PipelineSpec

CODE_DIR = Path(__file__).resolve().parents[2]
"""Where flows/ and blocks/ live: the deployments' source folder."""

FLOWS = {
    "validate-dataset": "flows/validate_dataset.py:validate_dataset",
}


class PlanError(Exception):
    """The spec validated but its step graph is not executable (unknown step, cycle)."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("; ".join(d.message for d in diagnostics))
        self.diagnostics = diagnostics


def spec_digest(spec: PipelineSpec) -> str:
    canonical = json.dumps(spec.model_dump(mode="json", by_alias=True), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def compile_plan(spec: PipelineSpec, project_dir: Path, secrets: set[str] | None = None) -> Plan:
    """Compile a validated spec. Pure: reads no files and imports no Prefect."""
    project_dir = project_dir.resolve()
    profile = spec.active_profile
    state_dir = state_dir_for(project_dir, profile.state_dir)
    digest = spec_digest(spec)
    blocks = _blocks(spec, state_dir)
    runtime = RuntimeContext(
        project=spec.project,
        profile=spec.profile,
        profile_kind=profile.kind,
        project_dir=str(project_dir),
        state_dir=str(state_dir),
        spec_digest=digest,
        blocks={role: block.name for role, block in blocks.items()},
    )
    job_variables = {
        "working_dir": str(project_dir),
        "env": {
            **TELEMETRY_OFF,
            "SHIPYARD_STATE_DIR": str(state_dir),
            "PREFECT_LOGGING_EXTRA_LOGGERS": "shipyard",
        },
    }
    steps: list[PlanStep] = []
    deployments: list[DeploymentPlan] = []
    for name, dataset in spec.datasets.items():
        step = _dataset_step(name, dataset, runtime)
        steps.append(
            PlanStep(
                id=f"{step.id}/validate",
                resource=step.id,
                action="validate",
                flow="validate-dataset",
            )
        )
        if step.version:
            steps.append(
                PlanStep(
                    id=f"{step.id}/version",
                    resource=step.id,
                    action="version",
                    needs=(f"{step.id}/validate",),
                    flow="validate-dataset",
                )
            )
        deployments.append(
            DeploymentPlan(
                flow_name="validate-dataset",
                name=name,
                source=str(CODE_DIR),
                entrypoint=FLOWS["validate-dataset"],
                description=dataset.description
                or f"Validate dataset '{name}' with Great Expectations, then version it with DVC.",
                parameters={"step": step.model_dump(mode="json")},
                schedule=dataset.schedule,
                work_pool=profile.prefect.work_pool,
                tags=("shipyard", f"project:{spec.project}", step.id),
                job_variables=job_variables,
                resource=step.id,
            )
        )
    problems = list(check_graph(steps))
    if problems:
        raise PlanError(problems)
    order = {step_id: i for i, step_id in enumerate(topological_order(steps))}
    steps.sort(key=lambda s: order[s.id])
    return Plan(
        project=spec.project,
        profile=spec.profile,
        spec_digest=digest,
        prefect_api_url=profile.prefect.api_url or f"http://127.0.0.1:{profile.prefect.port}/api",
        prefect_local=profile.prefect.api_url is None,
        prefect_database_url=profile.prefect.database_url,
        work_pool=profile.prefect.work_pool,
        runtime=runtime,
        steps=tuple(steps),
        deployments=tuple(deployments),
        blocks=tuple(blocks.values()),
        secrets=tuple(sorted(secrets or ())),
    )


def _dataset_step(name: str, dataset: DatasetSpec, runtime: RuntimeContext) -> DatasetStep:
    columns = {
        column: (t if isinstance(t, str) else list(t.category))
        for column, t in dataset.columns.items()
    }
    return DatasetStep(
        id=f"dataset.{name}",
        dataset=name,
        path=dataset.path,
        format=dataset.resolved_format or "parquet",
        columns=columns,
        key=dataset.key_columns,
        timestamp=dataset.timestamp,
        expectations=compile_expectations(dataset),
        version=dataset.versioning.enabled,
        runtime=runtime,
    )


def _blocks(spec: PipelineSpec, state_dir: Path) -> dict[str, BlockPlan]:
    profile = spec.active_profile
    blocks = {
        "dvc_remote": BlockPlan(
            type="shipyard-dvc-remote",
            name=f"{spec.project}-{spec.profile}-dvc".replace("_", "-"),
            fields={
                "url": profile.dvc.remote or str(state_dir / "dvc-remote"),
                "options": dict(profile.dvc.options),
            },
        )
    }
    blocks["metrics"] = BlockPlan(
        type="shipyard-metrics-sink",
        name=f"{spec.project}-{spec.profile}-metrics".replace("_", "-"),
        fields={
            "pushgateway_url": profile.prometheus.pushgateway,
            "username": profile.prometheus.username,
            "password": profile.prometheus.password,
            "textfile_dir": str(state_dir / "metrics"),
        },
    )
    return blocks
