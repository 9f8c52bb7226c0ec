"""The train-model flow on the embedded profile: MLflow tracking, gate, registry, cache."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import MODEL_SPEC, SPEC, compile_spec, free_port, run_flow, task_names

from shipyard.compiler import Plan, TrainModelStep
from shipyard.errors import ServiceUnavailable, ShipyardError

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _project(
    make_project: Callable[..., Path],
    rows: int = 1200,
    threshold: str = ">= 0.6",
    model_spec: str | None = None,
    profile_extra: str = "",
) -> Plan:
    text = SPEC.format(port=free_port()) + (model_spec or MODEL_SPEC.format(threshold=threshold))
    if profile_extra:
        text = text.replace("  local:\n", f"  local:\n{profile_extra}")
    return compile_spec(make_project(rows=rows, spec=text))


def _train(plan: Plan, force: bool = False) -> Any:
    from flows.train_model import train_model

    return run_flow(plan, train_model, model="churn", force=force)


def _client(plan: Plan) -> Any:
    import mlflow

    mlflow.set_tracking_uri(plan.blocks.mlflow.tracking_uri)
    return mlflow.MlflowClient()


def test_first_model_is_tracked_registered_and_champion(make_project: Callable[..., Path]) -> None:
    plan = _project(make_project)
    state = _train(plan)
    assert state.is_completed(), state.result(raise_on_failure=False)
    summary = state.result()
    assert summary.registered_version == "1"
    assert summary.aliases == ["champion"]
    assert summary.semver == "1.0.0"
    assert summary.trials == 2
    assert summary.skipped is False

    client = _client(plan)
    run = client.get_run(summary.run_id)
    assert run.data.tags["shipyard.resource"] == "model.churn"
    assert run.data.tags["shipyard.data_version"] == summary.data_version
    assert run.data.tags["shipyard.spec_digest"] == plan.spec_digest
    assert run.data.tags["shipyard.gate"] == "passed"
    assert {"roc_auc", "accuracy", "f1", "log_loss"} <= set(run.data.metrics)
    assert run.data.params["estimator"] == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert run.data.params["learning_rate"] in ("0.05", "0.2")
    inputs = run.inputs.dataset_inputs
    assert inputs and inputs[0].dataset.digest == summary.data_version
    assert inputs[0].dataset.name == "customers"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/gate.json", "evaluation/evaluation.csv"} <= artifacts
    assert any(p.endswith(".png") for p in artifacts)
    children = client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    assert len(children) == 2
    version = client.get_model_version("test-project.churn", "1")
    assert version.tags["shipyard.semver"] == "1.0.0"
    assert json.loads(version.tags["shipyard.features"])[0] == "region"

    import mlflow

    model = mlflow.pyfunc.load_model("models:/test-project.churn@champion")
    assert model.metadata.signature is not None
    from shipyard.settings import StateLayout

    prom = StateLayout(plan.runtime.state_dir).metrics / "train-model__model.churn.prom"
    text = prom.read_text()
    labels = 'flow="train-model",project="test-project",resource="model.churn"'
    assert f"shipyard_model_gate_passed{{{labels}}} 1.0" in text
    assert f"shipyard_model_trials{{{labels}}} 2.0" in text
    assert f"shipyard_model_roc_auc{{{labels}}} {summary.metrics['roc_auc']}" in text
    # the data's subflow, then the plan's stages as Prefect tasks, in order (trials in `train`)
    names = [n for n in task_names(state.state_details.flow_run_id) if n != "trial"]
    assert names[0] == "validate-dataset"
    names = names[1:]
    assert names == list(plan.step("model.churn", TrainModelStep).tasks)
    assert names == ["train", "evaluate", "gate", "register"]


def test_unchanged_inputs_skip_training_and_force_retrains(
    make_project: Callable[..., Path],
) -> None:
    plan = _project(make_project)
    first = _train(plan).result()
    again_state = _train(plan)
    again = again_state.result()
    assert again.skipped is True
    assert again.run_id == first.run_id
    assert again.registered_version is None  # nothing registered
    assert again.metrics == first.metrics
    # a skip runs no training task and leaves the training's gauges as they were
    assert task_names(again_state.state_details.flow_run_id) == ["validate-dataset"]
    from shipyard.settings import StateLayout

    text = (
        StateLayout(plan.runtime.state_dir).metrics / "train-model__model.churn.prom"
    ).read_text()
    labels = 'flow="train-model",project="test-project",resource="model.churn"'
    assert f"shipyard_model_training_skipped{{{labels}}} 1.0" in text
    assert f"shipyard_model_roc_auc{{{labels}}} {first.metrics['roc_auc']}" in text
    assert f"shipyard_model_trials{{{labels}}} 2.0" in text
    forced = _train(plan, force=True).result()
    assert forced.skipped is False and forced.run_id != first.run_id
    assert forced.registered_version == "2"
    assert forced.aliases == ["challenger"]
    assert forced.semver == "1.0.1"  # same data, same features: a patch
    comparison = forced.gate["comparison"]
    assert comparison["method"] == "delong" and comparison["champion_version"] == "1"
    # the comparison's numbers are the run's metrics too
    metrics = _client(plan).get_run(forced.run_id).data.metrics
    assert metrics["gate/vs_champion/passed"] == float(comparison["passed"])
    assert metrics["gate/vs_champion/champion_version"] == 1.0
    for name in ("improvement", "ci_low", "ci_high", "champion", "candidate"):
        assert metrics[f"gate/vs_champion/{name}"] == pytest.approx(comparison[name]), name


def test_new_data_is_a_minor_version(make_project: Callable[..., Path]) -> None:
    from shipyard.demo_data import write_customers

    plan = _project(make_project)
    assert _train(plan).result().semver == "1.0.0"
    write_customers(Path(plan.runtime.project_dir) / "data" / "customers.parquet", 1500, seed=3)
    assert _train(plan).result().semver == "1.1.0"


def test_failed_gate_registers_nothing(make_project: Callable[..., Path]) -> None:
    from flows.train_model import GateFailed

    plan = _project(make_project, threshold=">= 0.99")
    state = _train(plan)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, GateFailed)
    assert "roc_auc" in error.message and "needs >= 0.99" in error.message
    client = _client(plan)
    assert client.search_model_versions("name = 'test-project.churn'") == []
    runs = client.search_runs(
        [client.get_experiment_by_name("shipyard/test-project/churn").experiment_id],
        "tags.`shipyard.gate` = 'failed'",
    )
    assert len(runs) == 1
    (run,) = runs
    assert run.data.metrics["gate/passed"] == 0.0
    assert run.data.metrics["gate/roc_auc/passed"] == 0.0
    assert run.data.metrics["gate/roc_auc/margin"] == pytest.approx(
        run.data.metrics["roc_auc"] - 0.99
    )
    assert "- gate: gate failed: roc_auc: " in run.data.tags["mlflow.note.content"]
    # the flow's report still says where the run is
    markdown = _artifact_markdown(state.state_details.flow_run_id, "model-churn-evaluation")
    assert f"(`{run.info.run_id}`)" in markdown and "FAILED" in markdown
    assert "Registered" not in markdown


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("sklearn.ensemble.HistGradientBoostingClassifier", "sklearn.ensemble.NoSuchModel"),
            "module 'sklearn.ensemble' has no 'NoSuchModel'",
        ),
        (("{max_iter: 60}", "{max_iters: 60}"), "does not accept parameter(s) max_iters"),
    ],
    ids=["unknown-estimator", "bad-param"],
)
def test_bad_model_settings_fail_clearly(
    make_project: Callable[..., Path], change: tuple[str, str], expected: str
) -> None:
    model_spec = MODEL_SPEC.format(threshold=">= 0.5").replace(*change)
    plan = _project(make_project, model_spec=model_spec)
    state = _train(plan)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, ShipyardError), error
    assert expected in error.message
    assert _client(plan).search_model_versions("name = 'test-project.churn'") == []


def test_one_class_target_is_a_clear_error(make_project: Callable[..., Path]) -> None:
    import pandas as pd

    plan = _project(make_project)
    data = Path(plan.runtime.project_dir) / "data" / "customers.parquet"
    frame = pd.read_parquet(data)
    frame["churned"] = False
    frame.to_parquet(data, index=False)
    error = _train(plan).result(raise_on_failure=False)
    assert isinstance(error, ShipyardError)
    assert "has 1 class" in error.message and "at least two" in error.message


def test_custom_training_function(make_project: Callable[..., Path]) -> None:
    model_spec = MODEL_SPEC.format(threshold=">= 0.5").replace(
        """    estimator:
      class: sklearn.ensemble.HistGradientBoostingClassifier
      params: {max_iter: 60}
    search:
      strategy: grid
      space: {learning_rate: [0.05, 0.2]}""",
        """    train: support_models:train_logistic
    params: {C: 0.5}""",
    )
    plan = _project(make_project, model_spec=model_spec)
    summary = _train(plan).result()
    assert summary.registered_version == "1"
    assert summary.metrics["roc_auc"] > 0.6


def test_unreachable_tracking_server(make_project: Callable[..., Path]) -> None:
    port = free_port()
    plan = _project(
        make_project, profile_extra=f"    mlflow: {{tracking_uri: 'http://127.0.0.1:{port}'}}\n"
    )
    error = _train(plan).result(raise_on_failure=False)
    assert isinstance(error, ServiceUnavailable)
    assert f"127.0.0.1:{port} is not reachable" in error.message
    assert "shipyard mlflow start" in (error.hint or "")


def test_promotion_is_audited(make_project: Callable[..., Path]) -> None:
    from shipyard.audit import AuditLog
    from shipyard.registry import versions
    from shipyard.settings import StateLayout
    from shipyard.training.commands import promote_model

    plan = _project(make_project)
    _train(plan)
    _train(plan, force=True)
    assert promote_model(plan, "churn", "2", "better on holdout") == 0
    found = {v.version: v.aliases for v in versions("test-project.churn")}
    assert found == {"2": ["champion"], "1": ["previous-champion"]}
    entries = AuditLog(StateLayout(plan.runtime.state_dir).catalog).entries("model.churn")
    assert [
        (e.action, e.detail["from_version"], e.detail["to_version"], e.detail["reason"])
        for e in entries
    ] == [("promote", "1", "2", "better on holdout")]
    with pytest.raises(ShipyardError, match="has no version 9"):
        promote_model(plan, "churn", "9", "a reason")


def test_registration_is_rolled_back_when_aliasing_fails(
    make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    plan = _project(make_project)

    def broken(self: Any, name: str, alias: str, version: str) -> None:
        raise MlflowException("registry went away")

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", broken)
    error = _train(plan).result(raise_on_failure=False)
    assert isinstance(error, ShipyardError)
    assert "rolled back" in error.message
    monkeypatch.undo()
    assert _client(plan).search_model_versions("name = 'test-project.churn'") == []


@pytest.mark.parametrize("error_code", ["PERMISSION_DENIED", "INTERNAL_ERROR"])
def test_an_unreadable_champion_stops_the_run_before_anything_is_registered(
    make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, error_code: str
) -> None:
    """Only a definite "no such alias" means there is no champion: a refused or failed lookup
    must not let the candidate skip its comparison and take the champion alias."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from shipyard.registry import RegistryUnavailable

    plan = _project(make_project)
    assert _train(plan).is_completed()
    real = MlflowClient.get_model_version_by_alias

    def refused(self: Any, name: str, alias: str) -> Any:
        if alias == "champion":
            raise MlflowException("no access to this alias", error_code=error_code)
        return real(self, name, alias)

    monkeypatch.setattr(MlflowClient, "get_model_version_by_alias", refused)
    state = _train(plan, force=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, RegistryUnavailable), error
    assert "alias @champion of 'test-project.churn'" in error.message
    assert "nothing was registered" in (error.hint or "")
    monkeypatch.undo()
    client = _client(plan)
    found = client.search_model_versions("name = 'test-project.churn'")
    assert [str(v.version) for v in found] == ["1"]
    assert str(client.get_model_version_by_alias("test-project.churn", "champion").version) == "1"


def test_a_model_whose_champion_alias_was_removed_has_no_champion(
    make_project: Callable[..., Path],
) -> None:
    """MLflow answers an alias missing on an existing model with INVALID_PARAMETER_VALUE: read
    back from the model's aliases, that is a definite "no champion", not an unreadable one."""
    plan = _project(make_project)
    assert _train(plan).is_completed()
    _client(plan).delete_registered_model_alias("test-project.churn", "champion")
    state = _train(plan, force=True)
    assert state.is_completed(), state.result(raise_on_failure=False)
    summary = state.result()
    assert (summary.registered_version, summary.aliases) == ("2", ["champion"])
    assert summary.gate["comparison"] is None


class _Interrupted(BaseException):
    """Stands for the process being killed: no `except Exception` catches it."""


def test_a_registration_interrupted_after_its_alias_was_set_is_kept_and_counts(
    make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The policy's other half (tests/faults has the killed-before-the-alias half): a version
    that already holds its alias is kept, its bookkeeping finished, nothing moved."""
    from shipyard import registry
    from shipyard.audit import AuditLog
    from shipyard.settings import StateLayout

    plan = _project(make_project)

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise _Interrupted

    monkeypatch.setattr(registry, "_complete", interrupted)
    with pytest.raises(_Interrupted):
        _train(plan)
    monkeypatch.undo()
    client = _client(plan)
    left = client.get_model_version("test-project.churn", "1")
    assert (left.aliases, left.tags["shipyard.pending"]) == (["champion"], "champion")
    [attempt] = client.search_runs(
        [client.get_experiment_by_name("shipyard/test-project/churn").experiment_id],
        "tags.`shipyard.registration` = 'pending'",
    )

    again = _train(plan)  # settles the registration first: it counts, so nothing retrains
    assert again.is_completed(), again.result(raise_on_failure=False)
    assert again.result().skipped is True and again.result().run_id == attempt.info.run_id
    kept = client.get_model_version("test-project.churn", "1")
    assert kept.aliases == ["champion"] and "shipyard.pending" not in kept.tags
    assert len(client.search_model_versions("name = 'test-project.churn'")) == 1
    run = client.get_run(attempt.info.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["shipyard.outcome"] == "registered"
    assert run.data.tags["shipyard.registered_version"] == "1"
    [entry] = AuditLog(StateLayout(plan.runtime.state_dir).catalog).entries("model.churn")
    assert (entry.action, entry.detail["outcome"], entry.detail["aliases"]) == (
        "repair",
        "registered",
        ["champion"],
    )


def _with_labels(plan: Plan, values: tuple[str, str]) -> None:
    """The customers file with its churned flag also written as words: (churned, stayed)."""
    import numpy as np
    import pandas as pd

    data = Path(plan.runtime.project_dir) / "data" / "customers.parquet"
    frame = pd.read_parquet(data)
    frame["status"] = np.where(frame["churned"], *values)
    frame.to_parquet(data, index=False)


def test_a_binary_target_of_words_scores_its_positive_class(
    make_project: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`status` holds 'churned'/'stayed' with `positive_class: churned` (which sorts first): the
    same model trained on the same rows scores exactly as with the bool `churned`, its tables
    and plots name the classes, and serving gives the positive class's probability."""
    import mlflow
    import pandas as pd

    from shipyard.demo_data import write_customers
    from shipyard.serving.models import _positive_column

    words = MODEL_SPEC.format(threshold=">= 0.5").replace(
        "    target: churned\n", "    target: status\n    positive_class: churned\n"
    )
    text = SPEC.format(port=free_port()).replace(
        "      churned: bool\n",
        "      churned: bool\n      status: {category: [churned, stayed]}\n",
    )
    plan = compile_spec(make_project(rows=1200, spec=text + words))
    _with_labels(plan, ("churned", "stayed"))
    state = _train(plan)
    assert state.is_completed(), state.result(raise_on_failure=False)
    by_word = state.result()

    other = tmp_path_factory.mktemp("by-flag")
    (other / "pipelines.yaml").write_text(
        SPEC.format(port=free_port()) + MODEL_SPEC.format(threshold=">= 0.5")
    )
    write_customers(other / "data" / "customers.parquet", rows=1200)
    by_flag = _train(compile_spec(other / "pipelines.yaml")).result()
    assert by_word.metrics == pytest.approx(by_flag.metrics, rel=1e-9)

    client = _client(plan)
    folder = Path(
        mlflow.artifacts.download_artifacts(run_id=by_word.run_id, artifact_path="evaluation")
    )
    table = pd.read_csv(folder / "evaluation.csv")
    assert list(table["group"])[:2] == ["class stayed", "class churned"]
    version = client.get_model_version("test-project.churn", "1")
    assert json.loads(version.tags["shipyard.positive_class"]) == "churned"
    assert json.loads(version.tags["shipyard.classes"]) == ["churned", "stayed"]
    model_dir = Path(mlflow.artifacts.download_artifacts("models:/test-project.churn@champion"))
    assert _positive_column(model_dir, ["churned", "stayed"]) == 0


def test_a_champion_of_another_target_is_not_compared(make_project: Callable[..., Path]) -> None:
    """The target changed from the bool `churned` to the words of `status`: the champion's
    labels and scores mean something else, so the run stops rather than compare them."""
    plan = _project(make_project)
    assert _train(plan).is_completed()
    words = MODEL_SPEC.format(threshold=">= 0.5").replace(
        "    target: churned\n", "    target: status\n    positive_class: churned\n"
    )
    text = SPEC.format(port=free_port()).replace(
        "      churned: bool\n",
        "      churned: bool\n      status: {category: [churned, stayed]}\n",
    )
    plan = compile_spec(make_project(rows=0, spec=text + words))
    _with_labels(plan, ("churned", "stayed"))
    error = _train(plan).result(raise_on_failure=False)
    assert isinstance(error, ShipyardError), error
    assert error.message == (
        "champion v1 predicts classes false, true, and target 'status' now has 'churned', "
        "'stayed', so they cannot be compared on the same holdout"
    )
    assert [
        str(v.version) for v in _client(plan).search_model_versions("name = 'test-project.churn'")
    ] == ["1"]


def test_a_multiclass_target_trains_gates_against_its_champion_and_registers(
    make_project: Callable[..., Path],
) -> None:
    """`plan` has three classes: one-vs-rest roc_auc, f1_macro and log_loss, a table and plots
    by class name, and a champion comparison by paired bootstrap."""
    import mlflow

    model_spec = (
        MODEL_SPEC.format(threshold=">= 0.5")
        .replace(
            "    target: churned\n    features: [region, plan, ",
            "    target: plan\n    features: [region, ",
        )
        .replace(
            "metrics: [roc_auc, accuracy, f1, log_loss]", "metrics: [roc_auc, f1_macro, log_loss]"
        )
        .replace('roc_auc: ">= 0.5"', 'log_loss: "< 5"')
        .replace("{metric: roc_auc, min_delta: -0.05}", "{metric: log_loss, min_delta: -0.5}")
    )
    plan = _project(make_project, model_spec=model_spec)
    first = _train(plan)
    assert first.is_completed(), first.result(raise_on_failure=False)
    summary = first.result()
    assert set(summary.metrics) == {"roc_auc", "f1_macro", "log_loss"}
    folder = Path(
        mlflow.artifacts.download_artifacts(run_id=summary.run_id, artifact_path="evaluation")
    )
    assert sorted(p.name for p in folder.glob("*.png")) == [
        "confusion_matrix.png",
        "pr_curve.png",
        "roc_curve.png",
    ]
    import pandas as pd

    groups = list(pd.read_csv(folder / "evaluation.csv")["group"])
    assert groups == ["class basic", "class plus", "class pro", "macro avg", "weighted avg"]
    loaded = mlflow.sklearn.load_model("models:/test-project.churn@champion")
    assert list(loaded.classes_) == ["basic", "plus", "pro"]
    info = mlflow.models.Model.load("models:/test-project.churn@champion")
    assert info.metadata["shipyard"]["kind"] == "multiclass"

    again = _train(plan, force=True)
    assert again.is_completed(), again.result(raise_on_failure=False)
    comparison = again.result().gate["comparison"]
    assert comparison["method"] == "bootstrap" and comparison["champion_version"] == "1"
    assert comparison["improvement"] == pytest.approx(0.0)  # the same model, the same rows


DESCRIBED = MODEL_SPEC.format(threshold=">= 0.6").replace(
    "  churn:\n    task:",
    "  churn:\n    description: Which customers cancel next month.\n    task:",
)


def _artifact_markdown(flow_run_id: object, key: str) -> str:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    (mine,) = [a for a in found if a.flow_run_id == flow_run_id]
    return str(mine.data)


def test_mlflow_shows_a_described_model_development_experiment_with_its_best_trial_marked(
    make_project: Callable[..., Path],
) -> None:
    import mlflow

    from shipyard.registry import versions

    plan = _project(make_project, model_spec=DESCRIBED)
    state = _train(plan)
    summary = state.result()
    client = _client(plan)
    experiment = client.get_experiment(summary.experiment_id)
    # the UI's model-training kind, not GenAI; described from the spec; led by the search metric
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert experiment.tags["mlflow.note.content"].startswith("Which customers cancel next month.")
    assert "registered as `test-project.churn`" in experiment.tags["mlflow.note.content"]
    assert experiment.tags["mlflow.experiment.primaryMetric.name"] == "roc_auc"
    assert experiment.tags["mlflow.experiment.primaryMetric.greaterIsBetter"] == "True"

    run = client.get_run(summary.run_id)
    note = run.data.tags["mlflow.note.content"]
    assert note.startswith("Which customers cancel next month.")
    assert f"version `{summary.data_version[:10]}`" in note
    assert "- search: 2 of 2 grid-search trials scored on roc_auc; the best, trial-" in note
    assert f"- holdout: roc_auc {summary.metrics['roc_auc']:.4f}" in note
    assert "- gate: gate passed (roc_auc, vs champion (roc_auc))" in note

    # the winner is marked: named, tagged, ranked first, its parameters are the candidate's
    children = client.search_runs(
        [summary.experiment_id], f"tags.mlflow.parentRunId = '{summary.run_id}'"
    )
    (best,) = [c for c in children if c.data.tags.get("shipyard.best_trial") == "true"]
    (other,) = [c for c in children if c is not best]
    assert best.info.run_name.endswith(" (best)") and "best" not in other.info.run_name
    assert run.data.tags["shipyard.best_trial_run_id"] == best.info.run_id
    assert (best.data.tags["shipyard.trial_rank"], other.data.tags["shipyard.trial_rank"]) == (
        "1",
        "2",
    )
    assert best.data.metrics["roc_auc"] >= other.data.metrics["roc_auc"]
    assert best.data.params["learning_rate"] == run.data.params["learning_rate"]
    assert best.data.tags["mlflow.note.content"].count("**Best trial**") == 1
    # trials are timed as they ran, and the training's run spans all of its work
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.info.end_time > child.info.start_time >= run.info.start_time
        assert child.info.end_time <= run.info.end_time
    model_version = client.get_model_version("test-project.churn", "1")
    assert run.info.start_time < model_version.creation_timestamp <= run.info.end_time

    # the gate's verdicts as metrics and as a table
    metrics = run.data.metrics
    assert metrics["gate/passed"] == 1.0
    assert metrics["gate/roc_auc/passed"] == 1.0
    assert metrics["gate/roc_auc/margin"] == pytest.approx(summary.metrics["roc_auc"] - 0.6)
    assert metrics["gate/vs_champion/passed"] == 1.0  # no champion yet: nothing to compare
    assert "evaluation/gate_table.json" in run.data.tags["mlflow.loggedArtifacts"]
    table = mlflow.artifacts.load_dict(f"runs:/{summary.run_id}/evaluation/gate_table.json")
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    assert rows == [
        {
            "check": c["name"],
            "observed": c["observed"],
            "required": c["required"],
            "result": "passed",
            "evidence": c["detail"],
        }
        for c in summary.gate["checks"]
    ]

    # the registered model and its version are described
    registered = client.get_registered_model("test-project.churn")
    assert registered.description.startswith("Which customers cancel next month.")
    assert "`@champion` is the version services serve" in registered.description
    assert model_version.description.startswith("1.0.0 (first version) of `model.churn`")
    assert summary.run_id in model_version.description
    assert "Gate passed (roc_auc, vs champion (roc_auc))." in model_version.description
    # `shipyard models show` keeps to the holdout metrics and shows the description
    (shown,) = versions("test-project.churn")
    assert set(shown.metrics) == set(summary.metrics)
    assert shown.description == model_version.description


def test_the_evaluation_artifact_links_to_the_mlflow_run_and_its_plots(
    make_project: Callable[..., Path],
) -> None:
    from shipyard.runtime.mlflow_server import browse_command

    plan = _project(make_project)
    state = _train(plan)
    summary = state.result()
    markdown = _artifact_markdown(state.state_details.flow_run_id, "model-churn-evaluation")
    assert markdown.startswith("## In MLflow")
    # a SQLite store has no UI: the run id, the command that serves one, the page to open there
    assert f"(`{summary.run_id}`) in experiment `shipyard/test-project/churn`" in markdown
    assert f"start one with `{browse_command(plan.blocks.mlflow.tracking_uri)}`" in markdown
    page = (
        f"http://127.0.0.1:5000/#/experiments/{summary.experiment_id}/runs/{summary.run_id}"
        "?workflowType=machine_learning"
    )
    assert f"then open {page}" in markdown
    assert "- Registered: `test-project.churn` version 1" in markdown
    # the plots: where the store keeps them, every one MLflow has, each a PNG
    (plot_line,) = [line for line in markdown.splitlines() if line.startswith("- Plots: ")]
    paths = [Path(p.strip("`")) for p in plot_line.removeprefix("- Plots: ").split(", ")]
    logged = _client(plan).list_artifacts(summary.run_id, "evaluation")
    assert sorted(p.name for p in paths) == sorted(
        Path(a.path).name for a in logged if a.path.endswith(".png")
    )
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    # then the evaluation and the gate, once each
    assert markdown.count("## Evaluation") == 1 and markdown.count("## Gate of") == 1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_trials_show_their_progress_and_best_score_without_garbling_prefects_lines(
    make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal: a bar for the trials noting the best score so far, with Prefect's lines
    printed whole above it (Prefect's console handler keeps a stream of its own)."""
    import logging
    import re

    from prefect.logging.handlers import PrefectConsoleHandler

    plan = _project(make_project)
    terminal = _Terminal()
    handler = PrefectConsoleHandler(stream=terminal)
    prefect_log = logging.getLogger("prefect.task_runs")
    prefect_log.addHandler(handler)
    monkeypatch.setattr("sys.stderr", terminal)
    try:
        summary = _train(plan).result()
    finally:
        prefect_log.removeHandler(handler)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal.getvalue())
    screen = [line.rsplit("\r", 1)[-1] for line in plain.split("\n")]
    finished = [line for line in screen if "Finished in state Completed()" in line]
    assert len(finished) >= 2  # the trials' own lines at least
    whole = re.compile(r"(\d\d:\d\d:\d\d\.\d+ \| INFO +\| .* - )?Finished in state Completed\(\)")
    assert all(whole.fullmatch(line) for line in finished), finished  # none inside the bar
    (bar,) = [
        line for line in screen if line.lstrip("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ").startswith("model.churn: 2 trials")
    ]
    assert "2/2" in bar
    children = _client(plan).search_runs(
        [summary.experiment_id], f"tags.mlflow.parentRunId = '{summary.run_id}'"
    )
    best = max(c.data.metrics["roc_auc"] for c in children)
    assert f"best roc_auc {best:.4f}" in bar


def test_trials_show_a_start_and_an_end_line_in_a_log(
    make_project: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    plan = _project(make_project)
    _train(plan)
    lines = capsys.readouterr().err.splitlines()
    assert "model.churn: 2 trials ..." in lines
    (end,) = [line for line in lines if line.startswith("model.churn: 2 trials: ")]
    assert end.startswith("model.churn: 2 trials: done in ") and end.endswith(" s, 2/2")
