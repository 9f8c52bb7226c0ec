"""train-model: validate data -> train (with search) -> evaluate -> gate -> register in MLflow."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from pydantic import BaseModel

from flows.validate_dataset import validate_dataset
from shipyard import progress, registry
from shipyard.audit import AuditLog
from shipyard.compiler import DatasetStep, FeatureRepoStep, TrainModelStep
from shipyard.compiler.features import REPO_ID
from shipyard.compiler.models import DaskTrials
from shipyard.compiler.monitoring import PROFILE_ARTIFACT, is_categorical
from shipyard.data import engines
from shipyard.errors import ShipyardError
from shipyard.logs import quiet_expected_errors
from shipyard.processes import owner_gone
from shipyard.runtime.flow_run import StepRun, begin, run_name
from shipyard.runtime.mlflow_server import browse_command
from shipyard.settings import StateLayout
from shipyard.training import estimators, store_read, tracking
from shipyard.training.champion import champion_scores
from shipyard.training.evaluation import Evaluation
from shipyard.training.gate import ChampionScores, GateVerdict, judge
from shipyard.training.holdout import TAG as HOLDOUT_TAG
from shipyard.training.recovery import OWNER_TAG, recover
from shipyard.training.search import trial_params
from shipyard.training.split import Split, split_frame, validation_split
from shipyard.training.targets import (
    class_metadata,
    class_tags,
    describe,
    holdout_metrics,
    metric_names,
)

log = logging.getLogger("shipyard.flows.train_model")
quiet_expected_errors()
CODE_FILES = [
    Path(__file__),
    *sorted((Path(__file__).resolve().parents[1] / "shipyard" / "training").glob("*.py")),
    *sorted((Path(__file__).resolve().parents[1] / "shipyard" / "features").glob("*.py")),
]
OUTCOME_TAG = "shipyard.outcome"
"""Set on an MLflow run when its training finished: `registered` or `gate_failed`."""


class GateFailed(ShipyardError):
    """The candidate did not pass its gate; nothing was registered."""


class TrainModelResult(BaseModel):
    """What a train-model run did: its MLflow run, holdout metrics, gate and registration."""

    model: str
    skipped: bool
    run_id: str
    experiment_id: str
    data_version: str
    metrics: dict[str, float]
    gate_passed: bool
    gate_summary: str
    gate: dict[str, Any]
    registered_version: str | None = None
    aliases: list[str] = []
    semver: str | None = None
    trials: int = 0
    training_seconds: float = 0.0
    tracking_uri: str


@dataclass
class Trained:
    """The fitted candidate and what it was fitted on."""

    model: Any
    split: Split
    frame: Any
    params: dict[str, Any]
    trials: list[dict[str, Any]]


@dataclass
class Evaluated:
    evaluation: Evaluation
    y_pred: Any
    y_score: Any
    out_dir: Path


def _feature_service_tags(step: TrainModelStep, repo: FeatureRepoStep | None) -> dict[str, str]:
    if not step.feature_service or repo is None:
        return {}
    service = repo.service(step.feature_service)
    return {
        "shipyard.feature_service": service.name,
        "shipyard.feature_service_version": str(service.version or ""),
        "shipyard.feature_service_digest": service.digest,
    }


def _feature_inputs(step: TrainModelStep, repo: FeatureRepoStep | None) -> str:
    """Cache-key part for a feature service: its definition and its source files' content."""
    if not step.feature_service or repo is None:
        return ""
    service = repo.service(step.feature_service)
    sources = repo.service_sources(service.name)
    digests = [
        hashlib.md5(Path(p).read_bytes(), usedforsecurity=False).hexdigest() for p in sources
    ]
    return f"{service.digest}:{','.join(digests)}"


@task(name="trial", cache_policy=NO_CACHE, persist_result=False)
def run_trial(step: TrainModelStep, params: dict[str, Any], data: Split) -> dict[str, Any]:
    """Fit one parameter set on the fit rows and score it on the validation rows."""
    from shipyard.training.evaluation import metrics_for

    started_at, started = time.time(), time.perf_counter()
    try:
        target = data.target
        model = estimators.fit_model(step, data.x_train, data.y_train, params)
        y_pred, y_score = estimators.predict(step, model, data.x_test, target)
        scores = metrics_for(
            step.task,
            data.y_test,
            y_pred,
            y_score,
            holdout_metrics(step, target),
            classes=target.classes if target else None,
            positive=target.positive if target else None,
        )
        return {
            "params": params,
            "metrics": scores,
            "error": None,
            "started": started_at,
            "seconds": time.perf_counter() - started,
        }
    except ShipyardError as exc:
        return {
            "params": params,
            "metrics": {},
            "error": exc.message,
            "started": started_at,
            "seconds": time.perf_counter() - started,
        }


def _task_runner(step: TrainModelStep) -> Any:
    runner = step.trial_runner
    if isinstance(runner, DaskTrials):
        from prefect_dask.task_runners import DaskTaskRunner

        if runner.address:
            return DaskTaskRunner(address=runner.address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": runner.n_workers,
                "threads_per_worker": runner.threads_per_worker,
                "processes": True,
                "dashboard_address": None,
            }
        )
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=runner.max_workers)


def search(step: TrainModelStep, split: Split) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run every trial in parallel on the profile's task runner; the best parameters win."""
    from shipyard.stats.metrics import lookup_metric

    assert step.search is not None
    metric = step.search.metric
    higher_is_better = lookup_metric(metric).higher_is_better  # unknown: an error, not a guess
    trials = trial_params(step.search, step.seed)
    data = validation_split(split, step)
    log.info(
        "%s: %d %s-search trials on %s; %s",
        step.id,
        len(trials),
        step.search.strategy,
        "a Dask cluster" if isinstance(step.trial_runner, DaskTrials) else "a thread pool",
        data.description,
    )
    sign = 1 if higher_is_better else -1
    shown = progress.step(f"{step.id}: {len(trials)} trials", total=len(trials))
    with _task_runner(step) as runner, shown as trial_progress:
        futures = [
            runner.submit(run_trial, parameters={"step": step, "params": p, "data": data})
            for p in trials
        ]
        best_so_far: float | None = None
        for future in as_completed(futures):
            score = future.result()["metrics"].get(metric)
            trial_progress.advance()
            if score is not None and (best_so_far is None or sign * score > sign * best_so_far):
                best_so_far = score
                trial_progress.note(f"best {metric} {score:.4f}")
        results = [f.result() for f in futures]
    scored = [r for r in results if r["error"] is None and metric in r["metrics"]]
    if not scored:
        distinct = sorted({r["error"] for r in results if r["error"]})
        raise ShipyardError(
            f"every one of {len(results)} trials failed: {'; '.join(distinct)}",
            hint="fix the search space in pipelines.yaml"
            if len(distinct) > 1
            else "every trial failed alike, so the cause is what the error names (the data, "
            "the estimator or its fixed parameters) more likely than the search space",
            resource=step.id,
        )
    best = max(scored, key=lambda r: sign * r["metrics"][metric])
    log.info(
        "%s: best of %d trials: %s %.4f with %s",
        step.id,
        len(results),
        metric,
        best["metrics"][metric],
        ", ".join(f"{k}={v}" for k, v in best["params"].items()) or "no parameters",
    )
    return best["params"], results


@task(name="training-set", cache_policy=NO_CACHE, persist_result=False)
def training_set(step: TrainModelStep, repo: FeatureRepoStep, labels: Any) -> Any:
    """The label rows joined point-in-time with the feature service's features (Feast)."""
    from shipyard.features.training import training_frame

    return training_frame(step, repo, labels)


@task(name="train", cache_policy=NO_CACHE, persist_result=False)
def train(step: TrainModelStep, frame: Any) -> Trained:
    """Cut the holdout, search the declared space (if any), then fit the candidate."""
    split = split_frame(frame, step)
    if split.target is not None:
        log.info("%s: target '%s': %s", step.id, step.target, describe(split.target))
    log.info("%s: %s", step.id, split.description)
    params: dict[str, Any] = {}
    trials: list[dict[str, Any]] = []
    if step.search:
        params, trials = search(step, split)
    model = estimators.fit_model(step, split.x_train, split.y_train, params)
    return Trained(model, split, frame, params, trials)


@task(name="evaluate", cache_policy=NO_CACHE, persist_result=False)
def evaluate(step: TrainModelStep, trained: Trained) -> Evaluated:
    """Holdout metrics, the evaluation table and the plots."""
    from shipyard.training.evaluation import evaluate as evaluate_holdout

    target = trained.split.target
    y_pred, y_score = estimators.predict(step, trained.model, trained.split.x_test, target)
    out_dir = Path(tempfile.mkdtemp(prefix="shipyard-eval-"))
    evaluation = evaluate_holdout(
        step.task,
        trained.split.y_test,
        y_pred,
        y_score,
        holdout_metrics(step, target),
        out_dir,
        title=step.registered_name,
        classes=target.classes if target else None,
        positive=target.positive if target else None,
    )
    return Evaluated(evaluation, y_pred, y_score, out_dir)


@task(name="gate", cache_policy=NO_CACHE, persist_result=False)
def gate(step: TrainModelStep, trained: Trained, evaluated: Evaluated) -> GateVerdict:
    """Thresholds, then the paired comparison with the champion on the same holdout rows."""
    return judge(
        step,
        evaluated.evaluation.metrics,
        trained.split.y_test,
        evaluated.y_pred,
        evaluated.y_score,
        _champion_on(step, trained.split),
        trained.split.target,
    )


def _champion_on(step: TrainModelStep, split: Split) -> Any:
    """A loader of the champion's predictions on the same holdout rows (None if no champion)."""

    def load() -> ChampionScores | None:
        import mlflow

        version = registry.champion_version(step.registered_name)
        if version is None:
            return None
        model = mlflow.sklearn.load_model(f"models:/{step.registered_name}@champion")
        return champion_scores(step, split, version, model)

    return load


def reference_profile(
    step: TrainModelStep, trained: Trained, evaluated: Evaluated, folder: Path
) -> Path:
    """What the service's monitor compares production with: the training features and the
    model's output on the holdout (shipyard/monitoring/reference.py)."""
    # scipy (the drift statistics) is imported by a training only, not by a skipped run
    from shipyard.monitoring.reference import build_reference, prediction_values, write_reference

    x = trained.split.x_train
    features = {f: x[f] for f in step.features if f in x.columns and _profiled(step, f)}
    categorical = [f for f in features if is_categorical(step.feature_types[f])]
    profile = build_reference(
        features, categorical, prediction_values(evaluated.y_pred, evaluated.y_score)
    )
    return write_reference(profile, folder)


def _profiled(step: TrainModelStep, feature: str) -> bool:
    return step.feature_types[feature] not in ("datetime", "date")


@dataclass
class Registration:
    run_id: str
    version: str | None
    aliases: list[str]
    semver: str | None
    run_name: str
    artifact_uri: str


@task(name="register", cache_policy=NO_CACHE, persist_result=False)
def register(
    run: StepRun[TrainModelStep],
    trained: Trained,
    evaluated: Evaluated,
    verdict: GateVerdict,
    source: tuple[str, str, str, str],
) -> Registration:
    """Log the training to its MLflow run (always); register the model only if its gate passed.

    The registration happens inside the run, so a process killed while registering leaves the
    run RUNNING with its registration pending, which the next run of the model settles.
    """
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    step = run.step
    path, data_version, run_id, experiment_id = source
    repo = run.plan.steps.get(REPO_ID)
    repo = repo if isinstance(repo, FeatureRepoStep) else None
    semver, why = registry.next_semver(step.registered_name, step.schema_digest, data_version)
    evaluation, split = evaluated.evaluation, trained.split
    found = tracking.findings(
        step, split.description, trained.trials, trained.params, evaluation.metrics, verdict
    )
    with mlflow.start_run(run_id=run_id) as active:
        run_name, artifact_uri = active.info.run_name or run_id, active.info.artifact_uri
        mlflow.set_tags(
            {
                "shipyard.split": split.description,
                **({HOLDOUT_TAG: split.holdout.to_tag()} if split.holdout else {}),
                "shipyard.gate": "passed" if verdict.passed else "failed",
                "shipyard.gate_summary": verdict.summary()[:4500],
                "shipyard.trials": str(len(trained.trials)),
                tracking.NOTE_TAG: tracking.run_description(step, data_version, found),
                **_feature_service_tags(step, repo),
            }
        )
        mlflow.log_params(
            {
                **step.estimator_params,
                **step.train_params,
                **trained.params,
                "estimator": step.estimator_class or step.train_function,
                "split_by": step.split_by,
                "test_size": step.test_size,
                "seed": step.seed,
                "features": ",".join(step.features),
            }
        )
        mlflow.log_metrics({k: float(v) for k, v in evaluation.metrics.items()})
        with warnings.catch_warnings():
            # MLflow's generic advice about integer columns and local paths, not actionable here
            warnings.filterwarnings("ignore", message=".*Inferred schema contains integer")
            warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways")
            dataset = from_pandas(
                trained.frame,
                source=_mlflow_source(path),
                targets=step.target,
                name=step.dataset_name,
                digest=data_version,
            )
            mlflow.log_input(dataset, context="training")
            info = mlflow.sklearn.log_model(
                trained.model,
                name="model",
                input_example=split.x_test.head(5),
                metadata=class_metadata(split.target),
                pip_requirements=tracking.pip_requirements(),
                **tracking.serialization(trained.model),
            )
        out_dir = evaluated.out_dir
        evaluation.table.to_csv(out_dir / "evaluation.csv", index=False)
        (out_dir / "gate.json").write_text(json.dumps(verdict.to_json(), indent=2, default=str))
        mlflow.log_artifacts(str(out_dir), artifact_path="evaluation")
        profile_dir = Path(tempfile.mkdtemp(prefix="shipyard-profile-"))
        mlflow.log_artifact(
            str(reference_profile(step, trained, evaluated, profile_dir)),
            artifact_path=str(Path(PROFILE_ARTIFACT).parent),
        )
        tracking.log_gate(run_id, verdict, step, evaluation.metrics)
        tracking.log_trials(experiment_id, run_id, step, trained.trials, trained.params)
        if not verdict.passed:
            mlflow.MlflowClient().set_tag(run_id, OUTCOME_TAG, "gate_failed")
            return Registration(run_id, None, [], None, run_name, artifact_uri)
        tags = {
            registry.TAG_SEMVER: semver,
            registry.TAG_SCHEMA: step.schema_digest,
            registry.TAG_DATA: data_version,
            "shipyard.features": json.dumps(step.features),
            "shipyard.gate": json.dumps(verdict.to_json(), default=str)[:4500],
            "shipyard.semver_reason": why,
            "shipyard.resource": step.id,
            **({HOLDOUT_TAG: split.holdout.to_tag()} if split.holdout else {}),
            **class_tags(split.target),
            **_feature_service_tags(step, repo),
        }
        described = tracking.version_description(
            step, semver, why, data_version, (run_name, run_id), evaluation.metrics, verdict
        )
        version, aliases = registry.register(
            step.registered_name,
            info.model_uri,
            run_id,
            tags,
            step.id,
            done_tags={OUTCOME_TAG: "registered"},
            descriptions=(tracking.model_description(step), described),
        )
    # from here on the registration counts, whatever happens to the Prefect server
    run.settle(
        f"registered version {version} ({semver}) of '{step.registered_name}' as "
        f"@{', @'.join(aliases)}"
    )
    return Registration(run_id, version, aliases, semver, run_name, artifact_uri)


def _mlflow_source(source: str) -> Any:
    """The training data's source for MLflow: a file path as it is; a SQL dataset's database
    and table or query (MLflow resolves no database URL) as a source tagged with them."""
    if "://" not in source:
        return source
    from mlflow.data.code_dataset_source import CodeDatasetSource

    return CodeDatasetSource(tags={"shipyard.source": source})


def _finished_run(experiment_id: str, cache_key: str) -> Any | None:
    """The last MLflow run that finished training on exactly these inputs, if any."""
    import mlflow

    found = mlflow.MlflowClient().search_runs(
        [experiment_id],
        f"tags.`shipyard.cache_key` = '{cache_key}' and tags.`{OUTCOME_TAG}` != ''",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return found[0] if found else None


@flow(name="train-model", flow_run_name=run_name("train-model", "model"), description=__doc__)
def train_model(model: str, force: bool = False) -> TrainModelResult:
    """Validate and version the data, then train, evaluate, gate and register the model.

    A run whose data version, spec and code are unchanged is recognised (by the MLflow run that
    trained on them) and skipped: it registers nothing and leaves the last training's gauges
    alone. `force=True` retrains. Before anything else, it settles what killed runs of the
    model left behind (`shipyard.training.recovery`).
    """
    run = begin("train-model", TrainModelStep, model)
    step, plan = run.step, run.plan
    data_step = plan.step(step.dataset, DatasetStep)
    repo = plan.steps.get(REPO_ID)
    repo = repo if isinstance(repo, FeatureRepoStep) else None
    with run.monitored() as metrics:
        started = time.perf_counter()
        block = run.block("mlflow")
        experiment = tracking.experiment_name(plan.project, step.name)
        description = tracking.experiment_description(step)
        primary = tracking.primary_metric(step)
        # an experiment MLflow's path would leave as it is (no tag to set, no killed run to
        # settle) is read without MLflow: a cache hit then never imports it
        quiet = (
            None
            if force
            else store_read.quiet_experiment(
                block.tracking_uri, experiment, tracking.experiment_tags(description, primary)
            )
        )
        if quiet is not None:
            experiment_id = quiet
        else:
            tracking.use_tracking(block.tracking_uri, step.id)
            experiment_id = tracking.ensure_experiment(
                experiment,
                block.artifact_root,
                block.tracking_uri,
                description=description,
                primary_metric=primary,
            )
            # before anything else: what killed runs of this model left behind
            recovered = recover(
                experiment_id,
                step.registered_name,
                step.id,
                owner_gone,
                AuditLog(StateLayout(plan.runtime.state_dir).catalog),
                by=f"flow run {run.flow_run_id or '(none)'}",
            )
            for line in recovered.lines:
                log.warning(line, extra={"resource": step.id})
        data = validate_dataset(dataset=data_step.name)
        source = engines.source_of(plan, data_step)  # the file, or the database and table
        data_version = data.md5 or engines.data_version(plan, data_step)
        cache_key = hashlib.sha256(
            "|".join(
                [
                    data_version,
                    step.model_digest,
                    tracking.code_version(CODE_FILES),
                    _feature_inputs(step, repo),
                    step.registered_name,
                ]
            ).encode()
        ).hexdigest()
        earlier: Any = None
        if not force:
            earlier = (
                store_read.finished_run(block.tracking_uri, experiment_id, cache_key, OUTCOME_TAG)
                if quiet is not None
                else False
            )
            if earlier is False:  # not readable here: MLflow answers
                if quiet is not None:
                    tracking.use_tracking(block.tracking_uri, step.id)
                    quiet = None
                earlier = _finished_run(experiment_id, cache_key)
        if quiet is not None and earlier is None:  # training after all: MLflow from here on
            tracking.use_tracking(block.tracking_uri, step.id)
        if earlier is not None:
            metrics.observe(
                "model_training_skipped",
                1.0,
                "1 if inputs were unchanged and training was skipped.",
            )
            return _skipped(step, earlier, experiment_id, data_version, block.tracking_uri)
        if engines.data_version(plan, data_step) != data_version:
            raise ShipyardError(
                f"'{data_step.path or source}' changed after it was validated",
                hint="run train-model again: it validates and versions the new data first",
                resource=step.id,
            )
        run_id = tracking.start_run(
            experiment_id,
            f"{step.name}-{data_version[:8]}",
            _run_tags(run, data_version, cache_key),
        )
        with tracking.failed_on_error(run_id):
            frame = engines.read_frame(plan, data_step)
            if step.feature_service:
                assert repo is not None
                frame = training_set(step, repo, frame)
            trained = train(step, frame)
            evaluated = evaluate(step, trained)
            verdict = gate(step, trained, evaluated)
            registered = register(
                run, trained, evaluated, verdict, (source, data_version, run_id, experiment_id)
            )
        links = tracking.RunLinks(
            tracking_uri=block.tracking_uri,
            experiment_id=experiment_id,
            experiment_name=experiment,
            run_id=registered.run_id,
            run_name=registered.run_name,
            plots=tracking.plot_links(
                block.tracking_uri,
                registered.run_id,
                registered.artifact_uri,
                [path.name for path in evaluated.evaluation.plots.values()],
            ),
            registered_name=step.registered_name,
            version=registered.version,
        )
        _publish_evaluation(step, evaluated, verdict, links)
        result = TrainModelResult(
            model=step.registered_name,
            skipped=False,
            run_id=registered.run_id,
            experiment_id=experiment_id,
            data_version=data_version,
            metrics=evaluated.evaluation.metrics,
            gate_passed=verdict.passed,
            gate_summary=verdict.summary(),
            gate=verdict.to_json(),
            registered_version=registered.version,
            aliases=registered.aliases,
            semver=registered.semver,
            trials=len(trained.trials),
            training_seconds=round(time.perf_counter() - started, 2),
            tracking_uri=block.tracking_uri,
        )
        _observe(metrics, result)
        if not verdict.passed:
            raise GateFailed(
                f"candidate of '{step.registered_name}' was not registered: {result.gate_summary}",
                hint="see the gate table in the flow's artifacts or the MLflow run "
                f"{result.run_id}; improve the model or revisit the gate in pipelines.yaml",
                resource=step.id,
            )
        log.info(
            "%s: %s; registered version %s (%s) as %s",
            step.id,
            result.gate_summary,
            result.registered_version,
            result.semver,
            ", ".join(result.aliases),
        )
        return result


def _run_tags(run: StepRun[TrainModelStep], data_version: str, cache_key: str) -> dict[str, str]:
    """The training's identity, set when its MLflow run is created (before training starts)."""
    commit = tracking.git_commit(run.plan.runtime.project_dir)
    return {
        tracking.NOTE_TAG: tracking.run_description(run.step, data_version),
        "shipyard.resource": run.step.id,
        "shipyard.spec_digest": run.plan.spec_digest,
        "shipyard.model_digest": run.step.model_digest,
        "shipyard.data_version": data_version,
        "shipyard.cache_key": cache_key,
        "shipyard.flow_run_id": run.flow_run_id or "",
        OWNER_TAG: run.owner,
        **({"mlflow.source.git.commit": commit} if commit else {}),
    }


def _publish_evaluation(
    step: TrainModelStep, evaluated: Evaluated, verdict: GateVerdict, links: tracking.RunLinks
) -> None:
    """Where the training is in MLflow (its run, plots and version), then the evaluation and
    gate, as a Prefect artifact: a report of what MLflow already holds, so a Prefect server
    that cannot take it is logged, never a failed run."""
    try:
        create_markdown_artifact(
            key=f"model-{step.name.replace('_', '-')}-evaluation",
            markdown=links.markdown(browse_command(links.tracking_uri))
            + "\n"
            + evaluated.evaluation.markdown()
            + "\n\n"
            + verdict.markdown(step.registered_name),
            description=f"Holdout evaluation and gate of {step.id}",
        )
    except Exception as exc:  # any failure of the report, never the training's
        log.warning(
            "%s: the evaluation artifact was not published (%s: %s); the MLflow run has it",
            step.id,
            type(exc).__name__,
            exc,
            extra={"resource": step.id},
        )


def _observe(metrics: Any, result: TrainModelResult) -> None:
    metrics.observe(
        "model_training_seconds",
        result.training_seconds,
        "Seconds spent training, evaluating and registering.",
    )
    metrics.observe("model_trials", result.trials, "Hyper-parameter trials run.")
    metrics.observe(
        "model_gate_passed",
        1.0 if result.gate_passed else 0.0,
        "1 if the candidate passed its gate.",
    )
    metrics.observe(
        "model_training_skipped", 0.0, "1 if inputs were unchanged and training was skipped."
    )
    for name, value in result.metrics.items():
        metrics.observe(f"model_{name}", float(value), f"Holdout {name} of the candidate.")


def _skipped(
    step: TrainModelStep, earlier: Any, experiment_id: str, data_version: str, tracking_uri: str
) -> TrainModelResult:
    """The result of a skipped run: what the run that trained on the same inputs found."""
    tags = earlier.data.tags
    passed = tags.get(OUTCOME_TAG) == "registered"
    summary = tags.get("shipyard.gate_summary", "")
    log.info(
        "%s: data %s, spec and code unchanged since run %s; skipped, nothing registered "
        "(run with --force to retrain)",
        step.id,
        data_version[:10],
        earlier.info.run_id,
    )
    if not passed:
        raise GateFailed(
            f"candidate of '{step.registered_name}' was not registered: unchanged since run "
            f"{earlier.info.run_id}, whose candidate failed its gate: {summary}",
            hint="change the data, the model or its gate in pipelines.yaml, or run with --force",
            resource=step.id,
        )
    return TrainModelResult(
        model=step.registered_name,
        skipped=True,
        run_id=earlier.info.run_id,
        experiment_id=experiment_id,
        data_version=data_version,
        metrics={k: v for k, v in earlier.data.metrics.items() if k in metric_names(step)},
        gate_passed=True,
        gate_summary=summary,
        gate={"passed": True, "checks": [], "comparison": None},
        trials=int(tags.get("shipyard.trials", "0") or 0),
        tracking_uri=tracking_uri,
    )
