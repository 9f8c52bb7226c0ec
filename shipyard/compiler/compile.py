"""compile_plan: a validated spec -> a frozen Plan (steps, their graph, deployments, blocks)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from shipyard.compiler.expectations import compile_expectations
from shipyard.compiler.graph import check_graph, topological_order
from shipyard.compiler.plan import (
    BLOCK_TYPES,
    BlockPlan,
    ChampionGate,
    DatasetStep,
    DeploymentPlan,
    FeatureRepoStep,
    FeatureServicePlan,
    FeatureViewPlan,
    GateThreshold,
    MaterializeStep,
    Plan,
    PlanStep,
    RuntimeContext,
    ServiceStep,
    TrainModelStep,
    VariantRef,
)
from shipyard.diagnostics import Diagnostic
from shipyard.settings import TELEMETRY_OFF, state_dir_for
from shipyard.spec import DatasetSpec, ModelSpec, PipelineSpec, ProfileSpec, ServiceSpec
from shipyard.spec.base import parse_duration
from shipyard.spec.datasets import CategoryType
from shipyard.spec.models import parse_condition

CODE_DIR = Path(__file__).resolve().parents[2]
"""Where flows/ and blocks/ live: the deployments' source folder."""

FLOWS = {
    "validate-dataset": "flows/validate_dataset.py:validate_dataset",
    "train-model": "flows/train_model.py:train_model",
    "materialize-features": "flows/materialize_features.py:materialize_features",
    "build-service": "flows/build_service.py:build_service_flow",
}


class PlanError(Exception):
    """The spec validated but its step graph is not executable (unknown step, cycle)."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("; ".join(d.message for d in diagnostics))
        self.diagnostics = diagnostics


def spec_digest(spec: PipelineSpec) -> str:
    return _digest(spec.model_dump(mode="json", by_alias=True))


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

    def deploy(flow: str, name: str, step: Any, schedule: str | None, description: str) -> None:
        deployments.append(
            DeploymentPlan(
                flow_name=flow,
                name=name,
                source=str(CODE_DIR),
                entrypoint=FLOWS[flow],
                description=description,
                parameters={"step": step.model_dump(mode="json")},
                schedule=schedule,
                work_pool=profile.prefect.work_pool,
                tags=("shipyard", f"project:{spec.project}", step.id),
                job_variables=job_variables,
                resource=step.id,
            )
        )

    dataset_steps: dict[str, DatasetStep] = {}
    for name, dataset in spec.datasets.items():
        step = dataset_steps[name] = _dataset_step(name, dataset, runtime)
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
        deploy(
            "validate-dataset",
            name,
            step,
            dataset.schedule,
            dataset.description
            or f"Validate dataset '{name}' with Great Expectations, then version it with DVC.",
        )
    repo = _feature_repo(spec, runtime, state_dir) if spec.features.views else None
    if repo is not None:
        steps.append(
            PlanStep(
                id=f"{repo.id}/apply",
                resource=repo.id,
                action="apply",
                needs=tuple(
                    dict.fromkeys(
                        f"{dataset_steps[v.source_dataset].id}/validate" for v in repo.views
                    )
                ),
                flow="materialize-features",
            )
        )
        for view in repo.views:
            if not view.online:
                continue
            materialize = MaterializeStep(id=f"feature_view.{view.name}", view=view.name, repo=repo)
            source_step = dataset_steps[view.source_dataset]
            steps.append(
                PlanStep(
                    id=f"{materialize.id}/materialize",
                    resource=materialize.id,
                    action="materialize",
                    needs=(
                        f"{repo.id}/apply",
                        f"{source_step.id}/{'version' if source_step.version else 'validate'}",
                    ),
                    flow="materialize-features",
                )
            )
            view_spec = spec.features.views[view.name]
            deploy(
                "materialize-features",
                view.name,
                materialize,
                view_spec.schedule,
                view_spec.description
                or f"Materialize feature view '{view.name}' incrementally into the online store.",
            )
    for name, model in spec.models.items():
        data_step = dataset_steps[model.dataset]
        train = _train_step(spec, name, model, data_step, runtime, repo)
        data_done = f"{data_step.id}/{'version' if data_step.version else 'validate'}"
        previous = data_done
        if model.feature_service and repo is not None:
            steps.append(
                PlanStep(
                    id=f"{train.id}/training-set",
                    resource=train.id,
                    action="training-set",
                    needs=(data_done, f"{repo.id}/apply"),
                    flow="train-model",
                )
            )
            previous = f"{train.id}/training-set"
        for action in ("train", "evaluate", "gate", "register"):
            steps.append(
                PlanStep(
                    id=f"{train.id}/{action}",
                    resource=train.id,
                    action=action,
                    needs=(previous,),
                    flow="train-model",
                )
            )
            previous = f"{train.id}/{action}"
        deploy(
            "train-model",
            name,
            train,
            model.schedule,
            model.description
            or f"Train model '{name}' on dataset '{model.dataset}', gate it and register it.",
        )
    services: list[ServiceStep] = []
    for name, service in spec.services.items():
        train_step = next(
            d for d in deployments if d.flow_name == "train-model" and d.name == service.model
        )
        served = _service_step(spec, name, service, TrainModelStep(**train_step.parameters["step"]))
        services.append(served)
        steps.append(
            PlanStep(
                id=f"{served.id}/build",
                resource=served.id,
                action="build",
                needs=(f"model.{service.model}/register",),
                flow="build-service",
            )
        )
        steps.append(
            PlanStep(
                id=f"{served.id}/deploy",
                resource=served.id,
                action="deploy",
                needs=(f"{served.id}/build",),
                flow="build-service",
            )
        )
        deploy(
            "build-service",
            name,
            served,
            None,
            service.description
            or f"Build service '{name}' into a Bento from model '{service.model}' and start or "
            "hot-reload it locally.",
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
        features=repo,
        services=tuple(services),
        mlflow_server={
            "port": profile.mlflow.port,
            "backend_store_uri": profile.mlflow.backend_store_uri,
            "artifact_root": profile.mlflow.artifact_root
            or str(state_dir / "mlflow" / "artifacts"),
        }
        if profile.mlflow.backend_store_uri and not profile.mlflow.tracking_uri
        else None,
    )


def _train_step(
    spec: PipelineSpec,
    name: str,
    model: ModelSpec,
    data: DatasetStep,
    runtime: RuntimeContext,
    repo: FeatureRepoStep | None = None,
) -> TrainModelStep:
    dataset = spec.datasets[model.dataset]
    split_by = model.split.by
    if split_by == "auto":
        split_by = "time" if dataset.timestamp else "random"
    if model.feature_service is not None:
        from shipyard.features.resolve import service_features

        pairs = service_features(spec, model.feature_service)
        features = [f for _, f in pairs]
        feature_types = {
            f: _column_type(spec.datasets[view.source].columns[f]) for view, f in pairs
        }
    else:
        features = list(model.features)
        feature_types = {f: data.columns[f] for f in features}
    # a list of pairs, not a dict: the digest must change when the feature order changes
    schema = {
        "features": [[f, feature_types[f]] for f in features],
        "target": [model.target, data.columns[model.target]],
        "feature_service": model.feature_service,
    }
    profile = spec.active_profile
    return TrainModelStep(
        id=f"model.{name}",
        model=name,
        registered_name=f"{spec.project}.{name}",
        task=model.task,
        target=model.target,
        features=features,
        feature_types=feature_types,
        feature_service=model.feature_service,
        feature_repo=repo if model.feature_service else None,
        estimator_class=model.estimator.class_ if model.estimator else None,
        estimator_params=dict(model.estimator.params) if model.estimator else {},
        train_function=model.train,
        train_params=dict(model.params),
        split_by=split_by,
        test_size=model.split.test_size,
        seed=model.split.seed,
        search=model.search.model_dump(mode="json") if model.search else None,
        metrics=model.all_metrics,
        thresholds=[
            GateThreshold(metric=metric, op=op, value=value)
            for metric, (op, value) in (
                (m, parse_condition(c)) for m, c in model.gate.thresholds.items()
            )
        ],
        vs_champion=ChampionGate(**model.gate.vs_champion.model_dump())
        if model.gate.vs_champion
        else None,
        model_digest=_digest(
            {
                "model": model.model_dump(mode="json", by_alias=True),
                "dataset": dataset.model_dump(mode="json", by_alias=True),
            }
        ),
        schema_digest=_digest(schema),
        dataset=data,
        trial_runner=_trial_runner(profile),
        runtime=runtime,
    )


def _service_step(
    spec: PipelineSpec, name: str, service: ServiceSpec, train: TrainModelStep
) -> ServiceStep:
    from shipyard.validation.services import service_inputs

    profile = spec.active_profile
    state_dir = Path(train.runtime.state_dir)
    feature_service = service.features or train.feature_service
    inputs = service_inputs(spec, service) or []
    if feature_service is None:
        input_types = {f: train.feature_types[f] for f in inputs}
    else:
        repo = _feature_repo(spec, train.runtime, state_dir)
        join_types = {view.join_key: view.join_key_type for view in repo.views}
        input_types = {key: _JOIN_KEY_TYPES[join_types[key]] for key in inputs}
    log_database = profile.serving.log_database or (
        f"sqlite:///{state_dir / 'serving' / name / 'logs.sqlite'}"
    )
    variants = [
        VariantRef(
            name="stable",
            alias=None if service.version is not None else service.alias,
            version=service.version,
        )
    ] + [VariantRef(name=alias, alias=alias) for alias in service.candidates]
    return ServiceStep(
        id=f"service.{name}",
        service=name,
        model=service.model,
        registered_name=train.registered_name,
        task=train.task,
        variants=variants,
        inputs=inputs,
        input_types=input_types,
        features=train.features,
        data_files=list(
            dict.fromkeys(
                [str(Path(train.runtime.project_dir) / train.dataset.path)]
                + [v.source_path for v in (train.feature_repo.views if train.feature_repo else [])]
            )
        ),
        feature_service=feature_service,
        feature_repo=_feature_repo(spec, train.runtime, state_dir) if feature_service else None,
        host=service.host,
        port=service.port,
        workers=service.workers,
        timeout_seconds=parse_duration(service.timeout),
        max_batch_size=service.batching.max_batch_size,
        adaptive_batching=service.batching.adaptive,
        max_latency_ms=service.batching.max_latency_ms,
        max_request_bytes=int(service.batching.max_request_mb * 1024 * 1024),
        auth=service.auth.model_dump(mode="json") if service.auth else None,
        rate_limit={
            "per_key": service.rate_limit.per_key if service.rate_limit else None,
            "global": service.rate_limit.global_ if service.rate_limit else None,
        },
        rate_limit_storage=profile.serving.rate_limit_storage or "memory://",
        log_database=log_database,
        log_requests=service.logging.requests,
        log_predictions=service.logging.predictions,
        mask=list(service.logging.mask),
        sticky_key=service.routing.sticky_key,
        tls=service.tls.model_dump(mode="json") if service.tls else None,
        runtime=train.runtime,
    )


FEAST_TYPES = {"int": "Int64", "float": "Float64", "str": "String", "bool": "Bool"}
_JOIN_KEY_TYPES = {"STRING": "str", "INT64": "int"}


def _column_type(column_type: Any) -> Any:
    return list(column_type.category) if hasattr(column_type, "category") else column_type


def _feature_repo(spec: PipelineSpec, runtime: RuntimeContext, state_dir: Path) -> FeatureRepoStep:
    from shipyard.features.resolve import service_features, service_references
    from shipyard.spec.features import service_version

    profile = spec.active_profile
    repo_dir = state_dir / "feast"
    online: dict[str, Any] = {"type": "sqlite", "path": str(repo_dir / "online.db")}
    if profile.feast.online_store:
        address = profile.feast.online_store.removeprefix("redis://").rstrip("/")
        online = {"type": "redis", "connection_string": address}
    registry: dict[str, Any] = {"path": str(repo_dir / "registry.db")}
    if profile.feast.registry:
        url = profile.feast.registry
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg2://" + url.removeprefix("postgresql://")
        registry = {"registry_type": "sql", "path": url, "cache_ttl_seconds": 60}
    entities = {}
    for name, entity in spec.features.entities.items():
        # a category key is a string unless all its categories are numbers
        key_types = {
            (
                ("str" if any(isinstance(c, str) for c in key_type.category) else "int")
                if isinstance(key_type, CategoryType)
                else key_type
            )
            for v in spec.features.views.values()
            if v.entity == name and v.source in spec.datasets
            for key_type in [spec.datasets[v.source].columns.get(entity.join_key, "int")]
        }
        entities[name] = {
            "join_key": entity.join_key,
            "value_type": "STRING" if "str" in key_types else "INT64",
        }
    views = []
    for name, view in spec.features.views.items():
        source = spec.datasets[view.source]
        views.append(
            FeatureViewPlan(
                name=name,
                entity=view.entity,
                join_key=spec.features.entities[view.entity].join_key,
                join_key_type=entities[view.entity]["value_type"],
                source_dataset=view.source,
                source_path=str(Path(runtime.project_dir) / source.path),
                timestamp=source.timestamp or "",
                features={f: _column_type(source.columns[f]) for f in view.features},
                ttl_seconds=int(parse_duration(view.ttl)),
                online=view.online,
            )
        )
    services = []
    for name, service in spec.features.services.items():
        base, version = service_version(name)
        references = service_references(spec, name)
        services.append(
            FeatureServicePlan(
                name=name,
                base=base,
                version=version,
                references=references,
                features=[f for _, f in service_features(spec, name)],
                on_missing=service.on_missing,
                digest=_digest(
                    {
                        "references": references,
                        "views": {
                            # what the view serves: not its description nor its schedule
                            r.split(":")[0]: spec.features.views[r.split(":")[0]].model_dump(
                                mode="json", exclude={"description", "schedule"}
                            )
                            for r in references
                        },
                        # a column whose type changes changes what the service serves
                        "types": {
                            r: _column_type(spec.datasets[spec.features.views[v].source].columns[f])
                            for r in references
                            for v, f in [r.split(":", 1)]
                        },
                    }
                )[:16],
            )
        )
    project = "".join(c if c.isalnum() else "_" for c in spec.project)
    return FeatureRepoStep(
        project=project,
        repo_dir=str(repo_dir),
        online_store=online,
        registry=registry,
        entities=entities,
        views=views,
        services=services,
        runtime=runtime,
    )


def _trial_runner(profile: ProfileSpec) -> dict[str, Any]:
    if profile.dask is None:
        return {"kind": "threads"}
    return {"kind": "dask", **profile.dask.model_dump()}


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


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
            type=BLOCK_TYPES["dvc_remote"],
            name=f"{spec.project}-{spec.profile}-dvc".replace("_", "-"),
            fields={
                "url": profile.dvc.remote or str(state_dir / "dvc-remote"),
                "options": dict(profile.dvc.options),
            },
        )
    }
    mlflow = profile.mlflow
    layout_mlflow = state_dir / "mlflow"
    if mlflow.tracking_uri:
        tracking_uri = mlflow.tracking_uri
    elif mlflow.backend_store_uri:
        tracking_uri = f"http://127.0.0.1:{mlflow.port}"
    else:
        tracking_uri = f"sqlite:///{layout_mlflow / 'mlflow.db'}"
    blocks["mlflow"] = BlockPlan(
        type=BLOCK_TYPES["mlflow"],
        name=f"{spec.project}-{spec.profile}-mlflow".replace("_", "-"),
        fields={
            "tracking_uri": tracking_uri,
            "artifact_root": mlflow.artifact_root or str(layout_mlflow / "artifacts"),
        },
    )
    blocks["metrics"] = BlockPlan(
        type=BLOCK_TYPES["metrics"],
        name=f"{spec.project}-{spec.profile}-metrics".replace("_", "-"),
        fields={
            "pushgateway_url": profile.prometheus.pushgateway,
            "username": profile.prometheus.username,
            "password": profile.prometheus.password,
            "textfile_dir": str(state_dir / "metrics"),
        },
    )
    return blocks
