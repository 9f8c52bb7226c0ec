"""The train-model flow on the embedded profile: MLflow tracking, gate, registry, cache."""

from __future__ import annotations

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


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("sklearn.ensemble.HistGradientBoostingClassifier", "sklearn.ensemble.NoSuchModel"),
            "module 'sklearn.ensemble' has no 'NoSuchModel'",
        ),
        (("{max_iter: 60}", "{max_iters: 60}"), "does not accept parameter(s) max_iters"),
        (
            ("target: churned\n    features: [region, ", "target: region\n    features: ["),
            "classes",
        ),
    ],
    ids=["unknown-estimator", "bad-param", "not-binary"],
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
        promote_model(plan, "churn", "9", "")


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
