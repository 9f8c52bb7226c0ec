"""train-model: validate data -> train (with search) -> evaluate -> gate -> register in MLflow."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext

from flows.validate_dataset import validate_dataset
from shipyard.compiler.plan import TrainModelStep
from shipyard.data.files import dataset_file, read_dataset
from shipyard.errors import ShipyardError
from shipyard.logs import configure_json_logs, current_flow_run_id, quiet_expected_errors
from shipyard.metrics import monitored_run
from shipyard.runtime.connections import load_block, metrics_sink
from shipyard.settings import StateLayout
from shipyard.training import estimators, registry, tracking
from shipyard.training.gate import GateVerdict, judge
from shipyard.training.search import trial_params
from shipyard.training.split import Split, split_frame, validation_split

log = logging.getLogger("shipyard.flows.train_model")
quiet_expected_errors()
CODE_FILES = [
    Path(__file__),
    *sorted((Path(__file__).resolve().parents[1] / "shipyard" / "training").glob("*.py")),
    *sorted((Path(__file__).resolve().parents[1] / "shipyard" / "features").glob("*.py")),
]


class GateFailed(ShipyardError):
    """The candidate did not pass its gate; nothing was registered."""


def _feature_service_tags(step: TrainModelStep) -> dict[str, str]:
    if not step.feature_service or step.feature_repo is None:
        return {}
    service = step.feature_repo.service(step.feature_service)
    return {
        "shipyard.feature_service": service.name,
        "shipyard.feature_service_version": str(service.version or ""),
        "shipyard.feature_service_digest": service.digest,
    }


def _feature_inputs(step: TrainModelStep) -> str:
    """Cache-key part for a feature service: its definition and its source files' content."""
    if not step.feature_service or step.feature_repo is None:
        return ""
    service = step.feature_repo.service(step.feature_service)
    sources = sorted(
        {
            v.source_path
            for v in step.feature_repo.views
            if any(r.startswith(f"{v.name}:") for r in service.references)
        }
    )
    digests = [hashlib.md5(Path(p).read_bytes()).hexdigest() for p in sources]
    return f"{service.digest}:{','.join(digests)}"


def _cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    return str(parameters["cache_key"])


@task(name="trial", cache_policy=NO_CACHE, persist_result=False)
def run_trial(step: TrainModelStep, params: dict[str, Any], data: Split) -> dict[str, Any]:
    """Fit one parameter set on the fit rows and score it on the validation rows."""
    from shipyard.training.evaluation import metrics_for

    started = time.perf_counter()
    try:
        model = estimators.fit_model(step, data.x_train, data.y_train, params)
        y_pred, y_score = estimators.predict(step, model, data.x_test)
        scores = metrics_for(step.task, data.y_test, y_pred, y_score, step.metrics)
        return {
            "params": params,
            "metrics": scores,
            "error": None,
            "seconds": time.perf_counter() - started,
        }
    except ShipyardError as exc:
        return {
            "params": params,
            "metrics": {},
            "error": exc.message,
            "seconds": time.perf_counter() - started,
        }


def _task_runner(step: TrainModelStep) -> Any:
    runner = step.trial_runner
    if runner.get("kind") == "dask":
        from prefect_dask import DaskTaskRunner

        if runner.get("address"):
            return DaskTaskRunner(address=runner["address"])
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": runner.get("n_workers", 2),
                "threads_per_worker": runner.get("threads_per_worker", 1),
                "processes": True,
                "dashboard_address": None,
            }
        )
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=2)


def search(step: TrainModelStep, split: Split) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run every trial in parallel on the profile's task runner; the best parameters win."""
    from shipyard.training.compare import HIGHER_IS_BETTER

    assert step.search is not None
    trials = trial_params(step.search, step.seed)
    data = validation_split(split, step)
    runner_name = step.trial_runner.get("kind", "threads")
    log.info(
        "%s: %d %s-search trials on %s; %s",
        step.id,
        len(trials),
        step.search["strategy"],
        "a Dask cluster" if runner_name == "dask" else "a thread pool",
        data.description,
    )
    with _task_runner(step) as runner:
        futures = [
            runner.submit(run_trial, parameters={"step": step, "params": p, "data": data})
            for p in trials
        ]
        results = [f.result() for f in futures]
    metric = step.search.get("metric") or step.metrics[0]
    scored = [r for r in results if r["error"] is None and metric in r["metrics"]]
    if not scored:
        errors = "; ".join(sorted({r["error"] for r in results if r["error"]}))
        raise ShipyardError(
            f"every one of {len(results)} trials failed: {errors}",
            hint="fix the search space in pipelines.yaml",
            resource=step.id,
        )
    sign = 1 if HIGHER_IS_BETTER.get(metric, True) else -1
    best = max(scored, key=lambda r: sign * r["metrics"][metric])
    return best["params"], results


def _champion_on(step: TrainModelStep, split: Split) -> Any:
    """A loader of the champion's predictions on the same holdout rows (None if no champion)."""

    def load() -> tuple[Any, Any, str] | None:
        import mlflow

        version = registry.champion_version(step.registered_name)
        if version is None:
            return None
        features = json.loads((version.tags or {}).get("shipyard.features", "null") or "null")
        features = features or step.features
        rows = split.test_rows if split.test_rows is not None else split.x_test
        missing = [f for f in features if f not in rows.columns]
        if missing:
            raise ShipyardError(
                f"champion v{version.version} needs columns {', '.join(missing)} that the "
                "data no longer has, so it cannot be compared on the same holdout",
                hint="promote explicitly with `shipyard models promote` after review",
                resource=step.id,
            )
        model = mlflow.sklearn.load_model(f"models:/{step.registered_name}@champion")
        prediction, score = estimators.predict(step, model, rows[features])
        return prediction, score, str(version.version)

    return load


@task(name="train-evaluate-gate-register", cache_key_fn=_cache_key, persist_result=True)
def train_gate_register(step: TrainModelStep, data_version: str, cache_key: str) -> dict[str, Any]:
    """Everything after the data is validated; cached on data version, spec and code."""
    import mlflow

    from shipyard.training.evaluation import evaluate

    started = time.perf_counter()
    block = load_block(step.runtime, "mlflow")
    tracking.use_tracking(block.tracking_uri, step.id)
    experiment_id = tracking.ensure_experiment(
        f"shipyard/{step.runtime.project}/{step.model}", block.artifact_root, block.tracking_uri
    )
    path = dataset_file(step.dataset)
    if hashlib.md5(path.read_bytes()).hexdigest() != data_version:
        raise ShipyardError(
            f"'{step.dataset.path}' changed after it was validated",
            hint="run train-model again: it validates and versions the new file first",
            resource=step.id,
        )
    frame = read_dataset(step.dataset)
    if step.feature_service:
        from shipyard.features.training import training_frame

        frame = training_frame(step, frame)
    split = split_frame(frame, step)
    log.info("%s: %s", step.id, split.description)
    best_params: dict[str, Any] = {}
    trials: list[dict[str, Any]] = []
    if step.search:
        best_params, trials = search(step, split)
    model = estimators.fit_model(step, split.x_train, split.y_train, best_params)
    y_pred, y_score = estimators.predict(step, model, split.x_test)
    out_dir = Path(tempfile.mkdtemp(prefix="shipyard-eval-"))
    evaluation = evaluate(
        step.task, split.y_test, y_pred, y_score, step.metrics, out_dir, title=step.registered_name
    )
    verdict: GateVerdict = judge(
        step, evaluation.metrics, split.y_test, y_pred, y_score, _champion_on(step, split)
    )
    semver, why = registry.next_semver(step.registered_name, step.schema_digest, data_version)
    commit = tracking.git_commit(step.runtime.project_dir)
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"{step.model}-{data_version[:8]}"
    ) as run:
        mlflow.set_tags(
            {
                "shipyard.resource": step.id,
                "shipyard.spec_digest": step.runtime.spec_digest,
                "shipyard.model_digest": step.model_digest,
                "shipyard.data_version": data_version,
                "shipyard.cache_key": cache_key,
                "shipyard.split": split.description,
                "shipyard.gate": "passed" if verdict.passed else "failed",
                "shipyard.flow_run_id": current_flow_run_id() or "",
                **_feature_service_tags(step),
                **({"mlflow.source.git.commit": commit} if commit else {}),
            }
        )
        mlflow.log_params(
            {
                **step.estimator_params,
                **step.train_params,
                **best_params,
                "estimator": step.estimator_class or step.train_function,
                "split_by": step.split_by,
                "test_size": step.test_size,
                "seed": step.seed,
                "features": ",".join(step.features),
            }
        )
        mlflow.log_metrics({k: float(v) for k, v in evaluation.metrics.items()})
        mlflow.log_metric("training_seconds", time.perf_counter() - started)
        with warnings.catch_warnings():
            # MLflow's generic advice about integer columns and local paths, not actionable here
            warnings.filterwarnings("ignore", message=".*Inferred schema contains integer")
            warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways")
            dataset = mlflow.data.from_pandas(
                frame,
                source=str(path),
                targets=step.target,
                name=step.dataset.dataset,
                digest=data_version,
            )
            mlflow.log_input(dataset, context="training")
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                input_example=split.x_test.head(5),
                pip_requirements=tracking.pip_requirements(),
                **tracking.serialization(model),
            )
        evaluation.table.to_csv(out_dir / "evaluation.csv", index=False)
        (out_dir / "gate.json").write_text(json.dumps(verdict.to_json(), indent=2, default=str))
        mlflow.log_artifacts(str(out_dir), artifact_path="evaluation")
        for i, trial in enumerate(trials):
            with mlflow.start_run(experiment_id=experiment_id, run_name=f"trial-{i}", nested=True):
                mlflow.log_params(trial["params"])
                if trial["metrics"]:
                    mlflow.log_metrics({k: float(v) for k, v in trial["metrics"].items()})
                mlflow.set_tag("shipyard.trial_error", trial["error"] or "")
        run_id = run.info.run_id
    version, aliases = None, []
    if verdict.passed:
        tags = {
            registry.TAG_SEMVER: semver,
            registry.TAG_SCHEMA: step.schema_digest,
            registry.TAG_DATA: data_version,
            "shipyard.features": json.dumps(step.features),
            "shipyard.gate": json.dumps(verdict.to_json(), default=str)[:4500],
            "shipyard.semver_reason": why,
            "shipyard.resource": step.id,
            **_feature_service_tags(step),
        }
        version, aliases = registry.register(
            step.registered_name, info.model_uri, run_id, tags, step.id
        )
    create_markdown_artifact(
        key=f"model-{step.model.replace('_', '-')}-evaluation",
        markdown=evaluation.markdown() + "\n\n" + verdict.markdown(step.registered_name),
        description=f"Holdout evaluation and gate of {step.id}",
    )
    return {
        "model": step.registered_name,
        "run_id": run_id,
        "experiment_id": experiment_id,
        "data_version": data_version,
        "metrics": evaluation.metrics,
        "gate": verdict.to_json(),
        "gate_summary": verdict.summary(),
        "registered_version": version,
        "aliases": aliases,
        "semver": semver if version else None,
        "trials": len(trials),
        "training_seconds": round(time.perf_counter() - started, 2),
        "tracking_uri": block.tracking_uri,
    }


def _run_exists(tracking_uri: str, run_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    tracking.use_tracking(tracking_uri, "model")
    try:
        return _mlflow_client().get_run(run_id) is not None
    except MlflowException:
        return False


def _mlflow_client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


@flow(name="train-model", description=__doc__)
def train_model(step: TrainModelStep, force: bool = False) -> dict[str, Any]:
    """Validate and version the data, then train, evaluate, gate and register the model.

    A run whose data version, spec and code are unchanged is recognised and skipped (Prefect's
    cache); `force=True` retrains.
    """
    configure_json_logs(StateLayout(step.runtime.state_dir).logs)
    with monitored_run(
        "train-model",
        step.id,
        step.runtime.project,
        metrics_sink(step.runtime),
        current_flow_run_id(),
    ) as metrics:
        data = validate_dataset(step.dataset)
        data_version = (
            data.get("md5") or hashlib.md5(dataset_file(step.dataset).read_bytes()).hexdigest()
        )
        tracking_uri = load_block(step.runtime, "mlflow").tracking_uri
        cache_key = hashlib.sha256(
            "|".join(
                [
                    data_version,
                    step.model_digest,
                    tracking.code_version(CODE_FILES),
                    _feature_inputs(step),
                    step.registered_name,
                    tracking_uri,
                    step.runtime.state_dir,
                ]
            ).encode()
        ).hexdigest()
        state = train_gate_register.with_options(refresh_cache=force)(
            step, data_version, cache_key, return_state=True
        )
        summary: dict[str, Any] = state.result()
        cached = state.name == "Cached"
        if cached and not _run_exists(tracking_uri, summary["run_id"]):
            log.warning(
                "%s: the cached run %s is gone from %s; training again",
                step.id,
                summary["run_id"],
                tracking_uri,
            )
            state = train_gate_register.with_options(refresh_cache=True)(
                step, data_version, cache_key, return_state=True
            )
            summary, cached = state.result(), False
        summary["skipped"] = cached
        if cached:
            log.info(
                "%s: data %s, spec and code unchanged since run %s; skipped "
                "(run with --force to retrain)",
                step.id,
                data_version[:10],
                summary["run_id"],
            )
        metrics.observe(
            "model_training_seconds",
            summary["training_seconds"],
            "Seconds spent training, evaluating and registering.",
        )
        metrics.observe("model_trials", summary["trials"], "Hyper-parameter trials run.")
        metrics.observe(
            "model_gate_passed",
            1.0 if summary["gate"]["passed"] else 0.0,
            "1 if the candidate passed its gate.",
        )
        metrics.observe(
            "model_training_skipped",
            1.0 if cached else 0.0,
            "1 if inputs were unchanged and training was skipped.",
        )
        for name, value in summary["metrics"].items():
            metrics.observe(f"model_{name}", float(value), f"Holdout {name} of the candidate.")
        if not summary["gate"]["passed"]:
            raise GateFailed(
                f"candidate of '{step.registered_name}' was not registered: "
                f"{summary['gate_summary']}",
                hint="see the gate table in the flow's artifacts or the MLflow run "
                f"{summary['run_id']}; improve the model or revisit the gate in pipelines.yaml",
                resource=step.id,
            )
        log.info(
            "%s: %s; registered version %s (%s) as %s",
            step.id,
            summary["gate_summary"],
            summary["registered_version"],
            summary["semver"],
            ", ".join(summary["aliases"]),
        )
        return summary
