"""MLflow set-up for a run: tracking URI, reachability, experiment, the training's run,
requirements, git commit; and how a training reads in MLflow: descriptions, the trials with the
winner marked, the gate's verdicts as metrics and a table, links into the UI."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

from shipyard.compiler import TrainModelStep
from shipyard.errors import ServiceUnavailable, ShipyardError
from shipyard.processes import http_ok
from shipyard.registry import GATE_METRICS
from shipyard.training.gate import GateVerdict

log = logging.getLogger("shipyard.training.tracking")

NOTE_TAG = "mlflow.note.content"
"""MLflow's description of an experiment or a run (Markdown, shown on its page)."""
KIND_TAG = "mlflow.experimentKind"
MODEL_DEVELOPMENT = "custom_model_development"
"""MLflow 3's kind for classic model training, as opposed to GenAI development."""
PRIMARY_METRIC_TAG = "mlflow.experiment.primaryMetric.name"
PRIMARY_HIGHER_TAG = "mlflow.experiment.primaryMetric.greaterIsBetter"
PARENT_TAG = "mlflow.parentRunId"
BEST_TRIAL_TAG = "shipyard.best_trial"
"""`true` on the trial whose parameters the candidate was fitted with."""
BEST_TRIAL_RUN_TAG = "shipyard.best_trial_run_id"
"""On the training's run: the run id of its winning trial."""
ML_VIEW = "workflowType=machine_learning"
"""MLflow 3.17's UI shows an experiment as model training or as GenAI by a workflow type in
the URL (or the browser's last choice, GenAI at first), whatever the experiment's kind says:
every link Shipyard gives carries it."""

# MLflow retries HTTP calls for minutes by default; a dead server should fail in seconds.
HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def use_tracking(tracking_uri: str, resource: str) -> None:
    """Point MLflow at the tracking URI; an unreachable server is a clear error, not a hang."""
    import mlflow

    for key, value in HTTP_ENV.items():
        os.environ.setdefault(key, value)
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    else:
        require_reachable(tracking_uri, resource)
    mlflow.set_tracking_uri(tracking_uri)


def require_reachable(tracking_uri: str, resource: str) -> None:
    """An http(s) tracking server that does not answer its health check is a clear error."""
    if tracking_uri.startswith(("http://", "https://")) and not _reachable(tracking_uri):
        raise ServiceUnavailable(
            f"the MLflow tracking server at {tracking_uri} is not reachable",
            hint="start it with `shipyard mlflow start` (or check `mlflow.tracking_uri` in the "
            "profile / the MLflow block in the Prefect UI); nothing was trained or registered",
            resource=resource,
        )


def _reachable(uri: str) -> bool:
    from shipyard.retry import retrying

    def check() -> bool:
        if not http_ok(uri.rstrip("/") + "/health", timeout=5):
            raise ConnectionError(uri)
        return True

    try:
        return retrying(
            check,
            what=f"MLflow health at {uri}",
            retry_on=(ConnectionError,),
            attempts=3,
            max_wait=2,
        )
    except ConnectionError:
        return False


def ensure_experiment(
    name: str,
    artifact_root: str | None,
    tracking_uri: str,
    description: str = "",
    primary_metric: tuple[str, bool] | None = None,
) -> str:
    """The experiment's id; with a local store its artifacts go under the state folder.

    The experiment is of MLflow's model-development kind, described by `description` (kept in
    step with the spec), and `primary_metric` (name, higher is better) leads its charts.
    """
    import mlflow

    tags = experiment_tags(description, primary_metric)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        client = mlflow.MlflowClient()
        for key, value in tags.items():
            if experiment.tags.get(key) != value:
                client.set_experiment_tag(experiment.experiment_id, key, value)
        return str(experiment.experiment_id)
    location = None
    if artifact_root and not tracking_uri.startswith(("http://", "https://")):
        root = Path(artifact_root)
        root.mkdir(parents=True, exist_ok=True)
        location = (root / name.replace("/", "_")).as_uri()
    return str(mlflow.create_experiment(name, artifact_location=location, tags=tags))


def experiment_tags(description: str, primary_metric: tuple[str, bool] | None) -> dict[str, str]:
    """The tags `ensure_experiment` keeps on a model's experiment."""
    tags = {KIND_TAG: MODEL_DEVELOPMENT}
    if description:
        tags[NOTE_TAG] = description
    if primary_metric is not None:
        tags[PRIMARY_METRIC_TAG] = primary_metric[0]
        tags[PRIMARY_HIGHER_TAG] = str(primary_metric[1])
    return tags


def experiment_name(project: str, model: str) -> str:
    """The MLflow experiment of a model's trainings."""
    return f"shipyard/{project}/{model}"


def start_run(experiment_id: str, name: str, tags: dict[str, str]) -> str:
    """Create the training's MLflow run (RUNNING) before training starts, so that a training
    killed half-way leaves a run the next one finds and ends (`shipyard.training.recovery`)."""
    from mlflow import MlflowClient

    return str(MlflowClient().create_run(experiment_id, run_name=name, tags=tags).info.run_id)


@contextmanager
def failed_on_error(run_id: str) -> Iterator[None]:
    """End the run as FAILED, saying why, when the block raises while the run still runs."""
    try:
        yield
    except BaseException as exc:
        _end_failed(run_id, exc)
        raise


def _end_failed(run_id: str, exc: BaseException) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from shipyard.training.recovery import FAILURE_TAG

    why = exc.message if isinstance(exc, ShipyardError) else f"{type(exc).__name__}: {exc}"
    client = MlflowClient()
    try:
        status = client.get_run(run_id).info.status
        if status == "FINISHED":
            return  # e.g. registered, then something after it failed: the run stands
        client.set_tag(run_id, FAILURE_TAG, why[:5000])
        if status == "RUNNING":  # MLflow ends a run it was inside of as FAILED itself
            client.set_terminated(run_id, "FAILED")
    except (MlflowException, OSError) as error:  # the next run of the model ends it
        log.warning("could not end MLflow run %s as failed: %s", run_id, error)


def pip_requirements(extra: tuple[str, ...] = ()) -> list[str]:
    """Pinned requirements of a logged model, so MLflow does not spend seconds inferring them."""
    names = ("scikit-learn", "pandas", "numpy", "scipy", "cloudpickle", *extra)
    out = []
    for name in names:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit(folder: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def code_version(paths: list[Path], libraries: tuple[str, ...] = ("scikit-learn",)) -> str:
    """Digest of the training code and library versions: changes when the code changes."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    for name in libraries:
        try:
            digest.update(f"{name}=={metadata.version(name)}".encode())
        except metadata.PackageNotFoundError:
            continue
    return digest.hexdigest()


def serialization(model: Any) -> dict[str, Any]:
    """How MLflow stores the model: skops (no arbitrary code on load) for scikit-learn objects,
    trusting exactly the types of the model this process just fitted; cloudpickle otherwise
    (custom training functions may return anything)."""
    try:
        import skops.io as sio

        trusted = sio.get_untrusted_types(data=sio.dumps(model))
    except Exception:  # skops refuses objects it cannot represent: fall back to cloudpickle
        return {"serialization_format": "cloudpickle"}
    return {"serialization_format": "skops", "skops_trusted_types": trusted}


# --- how a training reads in MLflow ----------------------------------------------------------

GATE_TABLE = "evaluation/gate_table.json"
"""The gate's checks as an MLflow table artifact (one row per check)."""
LOCAL_UI = "http://127.0.0.1:5000"
"""Where `mlflow ui` serves by default."""


def primary_metric(step: TrainModelStep) -> tuple[str, bool]:
    """The metric that ranks the model's candidates, and whether higher is better: the search's,
    else the first gate threshold's, else the first metric."""
    from shipyard.stats.metrics import lookup_metric

    if step.search is not None:
        name = step.search.metric
    elif step.thresholds:
        name = step.thresholds[0].metric
    else:
        name = step.metrics[0]
    return name, lookup_metric(name).higher_is_better


def experiment_description(step: TrainModelStep) -> str:
    """The experiment's description: the model's, from the spec, then what its runs are."""
    return (
        f"{step.description}\n\n"
        f"Trainings of `{step.id}` from pipelines.yaml: one run per training, its search trials "
        f"nested under it; candidates that pass the gate are registered as "
        f"`{step.registered_name}`."
    )


def run_description(step: TrainModelStep, data_version: str, findings: Sequence[str] = ()) -> str:
    """A training run's description: the model's, its data, then (once known) its findings."""
    lines = [
        step.description,
        "",
        f"Training of `{step.id}` on dataset `{step.dataset_name}`, version `{data_version[:10]}`.",
    ]
    if findings:
        lines += ["", *(f"- {line}" for line in findings)]
    return "\n".join(lines)


def findings(
    step: TrainModelStep,
    split: str,
    trials: list[dict[str, Any]],
    best_params: dict[str, Any],
    metrics: dict[str, float],
    verdict: GateVerdict,
) -> list[str]:
    """What a training found, one line each: split, search, holdout metrics, gate."""
    lines = [f"split: {split}"]
    if step.search is not None and trials:
        metric = step.search.metric
        scored = [t for t in trials if t["error"] is None and metric in t["metrics"]]
        best = next(i for i, t in enumerate(trials) if _is_best(t, best_params))
        lines.append(
            f"search: {len(scored)} of {len(trials)} {step.search.strategy}-search trials "
            f"scored on {metric}; the best, trial-{best} "
            f"({_params_text(best_params)}), scored {trials[best]['metrics'][metric]:.4f}"
        )
    else:
        lines.append("search: none; the declared parameters")
    lines.append("holdout: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    lines.append(f"gate: {verdict.summary()}")
    return lines


def describe_run(run_id: str, description: str) -> None:
    """Set a run's description (MLflow shows it on the run's page)."""
    from mlflow import MlflowClient

    MlflowClient().set_tag(run_id, NOTE_TAG, description)


def model_description(step: TrainModelStep) -> str:
    """The registered model's description: the model's, from the spec, and what its aliases
    mean."""
    return (
        f"{step.description}\n\n"
        f"Registered by Shipyard from `{step.id}` in pipelines.yaml. `@champion` is the version "
        "services serve; `@challenger` passed its gate and waits for `shipyard models promote`."
    )


def version_description(
    step: TrainModelStep,
    semver: str,
    why: str,
    data_version: str,
    run: tuple[str, str],
    metrics: dict[str, float],
    verdict: GateVerdict,
) -> str:
    """A registered version's description: its semantic version, data, run, holdout, gate."""
    run_name, run_id = run
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    return (
        f"{semver} ({why}) of `{step.id}`: trained on `{step.dataset_name}` version "
        f"`{data_version[:10]}` by run `{run_name}` (`{run_id}`).\n\n"
        f"Holdout: {shown}.\n\n{verdict.summary().capitalize()}."
    )


def trial_name(index: int, best: bool) -> str:
    return f"trial-{index} (best)" if best else f"trial-{index}"


def trial_ranks(
    trials: list[dict[str, Any]], metric: str, higher_is_better: bool
) -> list[int | None]:
    """Each trial's rank by `metric` (1 is the best), None for a trial that was not scored.
    Ties keep the trials' order, as the search's choice of the best does."""
    sign = 1 if higher_is_better else -1
    scored = [i for i, t in enumerate(trials) if t["error"] is None and metric in t["metrics"]]
    ordered = sorted(scored, key=lambda i: -sign * trials[i]["metrics"][metric])
    ranks: list[int | None] = [None] * len(trials)
    for rank, i in enumerate(ordered, start=1):
        ranks[i] = rank
    return ranks


def log_trials(
    experiment_id: str,
    parent_run_id: str,
    step: TrainModelStep,
    trials: list[dict[str, Any]],
    best_params: dict[str, Any],
) -> str | None:
    """Every trial as a run nested under the training's, timed as it ran and ranked by the
    search metric; the winner, whose parameters the candidate was fitted with, is named and
    tagged best (and named on the training's run). Returns the winner's run id."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    if step.search is None or not trials:
        return None
    metric, higher_is_better = step.search.metric, primary_metric(step)[1]
    ranks = trial_ranks(trials, metric, higher_is_better)
    client = MlflowClient()
    winner = None
    for i, trial in enumerate(trials):
        best = _is_best(trial, best_params)
        started = int(trial["started"] * 1000)
        ended = started + int(trial["seconds"] * 1000)
        tags = {
            PARENT_TAG: parent_run_id,
            "shipyard.resource": step.id,
            NOTE_TAG: _trial_description(step, i, len(trials), trial, ranks[i], best),
        }
        if ranks[i] is not None:
            tags["shipyard.trial_rank"] = str(ranks[i])
        if best:
            tags[BEST_TRIAL_TAG] = "true"
        if trial["error"]:
            tags["shipyard.trial_error"] = trial["error"][:5000]
        run_id = client.create_run(
            experiment_id, start_time=started, tags=tags, run_name=trial_name(i, best)
        ).info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), ended, 0) for k, v in trial["metrics"].items()],
            params=[Param(k, str(v)) for k, v in trial["params"].items()],
        )
        client.set_terminated(run_id, "FAILED" if trial["error"] else "FINISHED", end_time=ended)
        if best:
            winner = run_id
    if winner is not None:
        client.set_tag(parent_run_id, BEST_TRIAL_RUN_TAG, winner)
    return winner


def _is_best(trial: dict[str, Any], best_params: dict[str, Any]) -> bool:
    return trial["error"] is None and trial["params"] == best_params


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "no parameters"


def _trial_description(
    step: TrainModelStep,
    index: int,
    total: int,
    trial: dict[str, Any],
    rank: int | None,
    best: bool,
) -> str:
    assert step.search is not None
    metric = step.search.metric
    head = (
        f"Trial {index} of {total} of `{step.id}` ({step.search.strategy} search, ranked by "
        f"{metric}): {_params_text(trial['params'])}."
    )
    if trial["error"]:
        return f"{head}\n\nFailed: {trial['error']}"
    if rank is None:
        return f"{head}\n\nNot scored on {metric}."
    score = f"{metric} {trial['metrics'][metric]:.4f} on the validation rows, rank {rank}"
    if best:
        return (
            f"{head}\n\n**Best trial**: {score}. The candidate was fitted with these parameters "
            "on all training rows."
        )
    return f"{head}\n\n{score}."


def gate_metrics(
    verdict: GateVerdict, step: TrainModelStep, metrics: dict[str, float]
) -> dict[str, float]:
    """The gate's verdicts as run metrics: `gate/passed`; per threshold `gate/<metric>/passed`
    and `gate/<metric>/margin` (how far it clears the threshold; negative: by how much it
    misses); for the champion comparison `gate/vs_champion/passed` and its numbers
    (`improvement`, `ci_low`, `ci_high`, ...)."""
    out = {f"{GATE_METRICS}passed": float(verdict.passed)}
    thresholds = {t.metric: t for t in step.thresholds}
    for check in verdict.checks:
        threshold = thresholds.get(check.name)
        if threshold is None:  # the one other check is the comparison with the champion
            out[f"{GATE_METRICS}vs_champion/passed"] = float(check.passed)
            continue
        observed = metrics[threshold.metric]
        margin = (
            observed - threshold.value
            if threshold.op in (">=", ">")
            else threshold.value - observed
        )
        out[f"{GATE_METRICS}{threshold.metric}/passed"] = float(check.passed)
        out[f"{GATE_METRICS}{threshold.metric}/margin"] = margin
    for name, value in (verdict.comparison or {}).items():
        if name == "champion_version" and str(value).isdigit():
            value = int(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[f"{GATE_METRICS}vs_champion/{name}"] = float(value)
    return out


def gate_table(verdict: GateVerdict) -> dict[str, list[str]]:
    """The gate's checks as columns, one row per check (MLflow shows it as a table)."""
    checks = verdict.checks
    return {
        "check": [c.name for c in checks],
        "observed": [c.observed for c in checks],
        "required": [c.required for c in checks],
        "result": ["passed" if c.passed else "failed" for c in checks],
        "evidence": [c.detail for c in checks],
    }


def log_gate(
    run_id: str, verdict: GateVerdict, step: TrainModelStep, metrics: dict[str, float]
) -> None:
    """The gate's verdicts on the run: as metrics (`gate_metrics`) and as a table."""
    import mlflow
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    mlflow.MlflowClient().log_batch(
        run_id,
        metrics=[Metric(k, v, now, 0) for k, v in gate_metrics(verdict, step, metrics).items()],
    )
    if verdict.checks:
        mlflow.log_table(gate_table(verdict), artifact_file=GATE_TABLE, run_id=run_id)


@dataclass(frozen=True)
class RunLinks:
    """Where a training is in MLflow: its run, its plots and the version it registered."""

    tracking_uri: str
    experiment_id: str
    experiment_name: str
    run_id: str
    run_name: str
    plots: dict[str, str] = field(default_factory=dict)
    """Plot file name -> its URL on the tracking server, or where the local store keeps it."""
    registered_name: str | None = None
    version: str | None = None

    @property
    def ui(self) -> str | None:
        """The tracking server's UI; None for a store without one (SQLite, a folder)."""
        return ui_base(self.tracking_uri)

    def run_url(self, ui: str) -> str:
        """The run's page on the UI at `ui`, in its model-training view."""
        return f"{ui}/#/experiments/{self.experiment_id}/runs/{self.run_id}?{ML_VIEW}"

    def markdown(self, browse: str) -> str:
        """The links as a Markdown section; `browse` is the command that serves a UI over a
        store without one."""
        where = f"(`{self.run_id}`) in experiment `{self.experiment_name}`"
        if self.ui is not None:
            lines = [f"- Run: [{self.run_name}]({self.run_url(self.ui)}) {where}"]
            if self.version is not None and self.registered_name:
                model = quote(self.registered_name, safe="")
                url = f"{self.ui}/#/models/{model}/versions/{self.version}?{ML_VIEW}"
                lines.append(
                    f"- Registered: [{self.registered_name} version {self.version}]({url})"
                )
            shown = [f"[{Path(name).stem}]({url})" for name, url in self.plots.items()]
        else:
            lines = [
                f"- Run: `{self.run_name}` {where} of `{self.tracking_uri}`, a store without a "
                f"web UI of its own: start one with `{browse}`, then open "
                f"{self.run_url(LOCAL_UI)}"
            ]
            if self.version is not None:
                lines.append(f"- Registered: `{self.registered_name}` version {self.version}")
            shown = [f"`{path}`" for path in self.plots.values()]
        if shown:
            lines.append("- Plots: " + ", ".join(shown))
        return "\n".join(["## In MLflow", "", *lines]) + "\n"


def ui_base(tracking_uri: str) -> str | None:
    """The web UI of a tracking URI: the server itself; None for SQLite or a folder."""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return None


def plot_links(
    tracking_uri: str, run_id: str, artifact_uri: str, names: list[str]
) -> dict[str, str]:
    """Each plot (a file under the run's `evaluation/`) as a URL the tracking server serves,
    or, for a local store, its path."""
    ui = ui_base(tracking_uri)
    if ui is not None:
        return {
            n: f"{ui}/get-artifact?path={quote(f'evaluation/{n}', safe='')}&run_uuid={run_id}"
            for n in names
        }
    parsed = urlparse(artifact_uri)
    root = unquote(parsed.path) if parsed.scheme == "file" else artifact_uri.rstrip("/")
    return {n: f"{root}/evaluation/{n}" for n in names}
