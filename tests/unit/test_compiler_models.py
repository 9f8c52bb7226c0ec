"""compile_plan for `models:`: the train-model deployment, its steps, split, gate and digests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipyard.compiler import Plan, TrainModelStep, flow_entrypoint
from shipyard.compiler.models import ChampionGate, DaskTrials, GateThreshold

from .specs import compile_text, dataset_step, replaced, train_step

pytestmark = pytest.mark.usefixtures("no_state_dir_override")

SPEC = """\
project: shop
profile: ${PROFILE:-local}
profiles:
  local: {}
  cluster:
    kind: scale-out
    prefect: {work_pool: big-pool, api_url: "http://prefect:4200/api"}
    dask: {n_workers: 2}
  remote-dask:
    kind: scale-out
    dask: {address: "tcp://scheduler:8786"}
datasets:
  customers:
    path: data/customers.parquet
    key: [customer_id, event_time]
    timestamp: event_time
    schema:
      customer_id: int
      event_time: datetime
      plan: {category: [basic, pro]}
      tenure: int
      charges: float
      email: str
      churned: bool
      upgraded: bool
    expectations: [{not_null: customer_id}]
  stores:
    path: data/stores.csv
    schema: {store_id: int, area: float, staff: int, footfall: float}
    versioning: {enabled: false}
    expectations: [{not_null: store_id}]
models:
  churn:
    description: Will the customer leave this month?
    task: classification
    dataset: customers
    target: churned
    features: [plan, tenure, charges]
    estimator:
      class: sklearn.ensemble.HistGradientBoostingClassifier
      params: {max_iter: 150, early_stopping: false}
    split: {test_size: 0.25, seed: 7}
    search:
      strategy: random
      trials: 4
      metric: roc_auc
      space:
        learning_rate: {loguniform: [0.02, 0.3]}
        max_depth: [3, 5, null]
    metrics: [roc_auc, pr_auc, log_loss]
    gate:
      roc_auc: ">= 0.70"
      log_loss: " < 0.6 "
      vs_champion: {metric: roc_auc, min_delta: -0.01}
    schedule: "0 3 * * *"
  footfall:
    task: regression
    dataset: stores
    target: footfall
    features: [area, staff]
    train: shop_models:fit_footfall
    params: {alpha: 0.5}
"""


def plan_of(tmp_path: Path, text: str = SPEC, profile: str = "local") -> Plan:
    return compile_text(tmp_path, text, {"PROFILE": profile})


def compiled(tmp_path: Path, text: str = SPEC, model: str = "churn") -> TrainModelStep:
    return train_step(plan_of(tmp_path, text), model)


def edited(old: str, new: str) -> str:
    return replaced(SPEC, (old, new))


# --- deployments and steps ---------------------------------------------------------------------


def test_one_train_model_deployment_per_model(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    assert list(plan.deployments) == [
        "validate-dataset/customers",
        "validate-dataset/stores",
        "train-model/churn",
        "train-model/footfall",
    ]
    churn = plan.deployments["train-model/churn"]
    assert churn.entrypoint == flow_entrypoint("train-model") == "flows/train_model.py:train_model"
    assert churn.schedule == "0 3 * * *"
    assert churn.tags == ("shipyard", "project:shop", "model.churn")
    assert churn.step == "model.churn" and churn.parameters == {"model": "churn"}
    assert churn.description == "Will the customer leave this month?"
    footfall = plan.deployments["train-model/footfall"]
    assert footfall.schedule is None
    assert footfall.tags == ("shipyard", "project:shop", "model.footfall")
    assert footfall.description == (
        "Train model 'footfall' on dataset 'stores', gate it and register it."
    )


def test_train_model_deployments_use_the_profile_work_pool(tmp_path: Path) -> None:
    assert plan_of(tmp_path, profile="cluster").prefect.work_pool == "big-pool"
    assert plan_of(tmp_path).prefect.work_pool == "shipyard-process"


def test_a_model_step_needs_its_dataset_and_runs_train_evaluate_gate_register(
    tmp_path: Path,
) -> None:
    plan = plan_of(tmp_path)
    assert list(plan.steps) == [
        "dataset.customers",
        "dataset.stores",
        "model.churn",
        "model.footfall",
    ]
    churn, footfall = plan.steps["model.churn"], plan.steps["model.footfall"]
    assert churn.needs == ("dataset.customers",) and footfall.needs == ("dataset.stores",)
    assert churn.tasks == footfall.tasks == ("train", "evaluate", "gate", "register")


def test_train_step_names_its_dataset_step(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    step = train_step(plan, "churn")
    assert plan.steps[step.dataset] == dataset_step(plan, "customers")
    assert step.timestamp == dataset_step(plan, "customers").timestamp
    assert (step.id, step.name, step.task, step.target) == (
        "model.churn",
        "churn",
        "classification",
        "churned",
    )
    assert step.features == ["plan", "tenure", "charges"]
    assert step.feature_types == {"plan": ["basic", "pro"], "tenure": "int", "charges": "float"}


def test_plan_with_models_round_trips_through_json(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    assert Plan.model_validate(json.loads(plan.model_dump_json())) == plan


# --- what the train step says ------------------------------------------------------------------


def test_registered_name_is_project_dot_model(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    assert train_step(plan, "churn").registered_name == "shop.churn"
    assert train_step(plan, "footfall").registered_name == "shop.footfall"


def test_estimator_model_has_class_and_params_and_no_train_function(tmp_path: Path) -> None:
    step = compiled(tmp_path)
    assert step.estimator_class == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert step.estimator_params == {"max_iter": 150, "early_stopping": False}
    assert (step.train_function, step.train_params) == (None, {})


def test_train_function_model_has_function_and_params_and_no_estimator(tmp_path: Path) -> None:
    step = compiled(tmp_path, model="footfall")
    assert (step.train_function, step.train_params) == ("shop_models:fit_footfall", {"alpha": 0.5})
    assert (step.estimator_class, step.estimator_params) == (None, {})


def test_split_by_auto_is_time_with_a_timestamp_else_random(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    churn, footfall = train_step(plan, "churn"), train_step(plan, "footfall")
    assert (churn.split_by, churn.test_size, churn.seed) == ("time", 0.25, 7)
    assert (footfall.split_by, footfall.test_size, footfall.seed) == ("random", 0.2, 42)


@pytest.mark.parametrize("by", ["time", "random"])
def test_explicit_split_by_is_kept(tmp_path: Path, by: str) -> None:
    text = edited("split: {test_size: 0.25, seed: 7}", f"split: {{by: {by}}}")
    assert compiled(tmp_path, text).split_by == by


def test_gate_thresholds_are_parsed_in_order(tmp_path: Path) -> None:
    step = compiled(tmp_path)
    assert step.thresholds == [
        GateThreshold(metric="roc_auc", op=">=", value=0.7),
        GateThreshold(metric="log_loss", op="<", value=0.6),
    ]
    assert [str(t) for t in step.thresholds] == ["roc_auc >= 0.7", "log_loss < 0.6"]
    roc_auc = step.thresholds[0]
    assert roc_auc.holds(0.7) and roc_auc.holds(0.9) and not roc_auc.holds(0.69)
    assert step.vs_champion == ChampionGate(
        metric="roc_auc", min_delta=-0.01, confidence=0.95, method="auto"
    )


def test_explicit_thresholds_compile_like_inline_ones(tmp_path: Path) -> None:
    text = edited(
        '      roc_auc: ">= 0.70"\n      log_loss: " < 0.6 "\n',
        '      thresholds: {roc_auc: ">= 0.70", log_loss: "< 0.6"}\n',
    )
    assert compiled(tmp_path, text).thresholds == compiled(tmp_path).thresholds


def test_model_without_gate_has_no_thresholds(tmp_path: Path) -> None:
    step = compiled(tmp_path, model="footfall")
    assert (step.thresholds, step.vs_champion) == ([], None)


def test_declared_metrics_are_kept_and_missing_ones_default_by_task(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    assert train_step(plan, "churn").metrics == ["roc_auc", "pr_auc", "log_loss"]
    assert train_step(plan, "footfall").metrics == ["rmse", "mae", "r2"]
    text = edited("    metrics: [roc_auc, pr_auc, log_loss]\n", "").replace(
        'log_loss: " < 0.6 "', 'f1: "> 0.5"'
    )
    assert compiled(tmp_path, text).metrics == ["roc_auc", "accuracy", "f1", "log_loss"]


def test_search_is_passed_with_its_defaults(tmp_path: Path) -> None:
    search = compiled(tmp_path).search
    assert search is not None
    assert search.model_dump() == {
        "strategy": "random",
        "trials": 4,
        "metric": "roc_auc",
        "space": {
            "learning_rate": {"distribution": "loguniform", "low": 0.02, "high": 0.3},
            "max_depth": [3, 5, None],
        },
    }
    assert compiled(tmp_path, model="footfall").search is None


# --- digests -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("features: [plan, tenure, charges]", "features: [plan, tenure]"),
        ("features: [plan, tenure, charges]", "features: [tenure, plan, charges]"),
        ("      charges: float\n", "      charges: int\n"),
        ("plan: {category: [basic, pro]}", "plan: {category: [basic, pro, max]}"),
        ("    target: churned\n", "    target: upgraded\n"),
    ],
    ids=["feature-dropped", "feature-order", "feature-type", "categories", "target"],
)
def test_schema_digest_changes_with_features_their_types_or_the_target(
    tmp_path: Path, old: str, new: str
) -> None:
    assert compiled(tmp_path, edited(old, new)).schema_digest != compiled(tmp_path).schema_digest


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("{max_iter: 150, early_stopping: false}", "{max_iter: 300, early_stopping: false}"),
        ("{max_iter: 150, early_stopping: false}", "{max_iter: 150}"),
    ],
    ids=["param-value", "param-dropped"],
)
def test_estimator_params_change_the_model_digest_not_the_schema_digest(
    tmp_path: Path, old: str, new: str
) -> None:
    before, after = compiled(tmp_path), compiled(tmp_path, edited(old, new))
    assert after.model_digest != before.model_digest
    assert after.schema_digest == before.schema_digest


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("      email: str\n", "      email: {category: [a, b]}\n"),  # a column not used
        ('      roc_auc: ">= 0.70"\n', '      roc_auc: ">= 0.75"\n'),
        ('    schedule: "0 3 * * *"\n', ""),
    ],
    ids=["other-column", "gate", "schedule"],
)
def test_schema_digest_ignores_what_is_not_the_model_schema(
    tmp_path: Path, old: str, new: str
) -> None:
    assert compiled(tmp_path, edited(old, new)).schema_digest == compiled(tmp_path).schema_digest


def test_digests_are_stable_and_differ_between_models(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    churn, again = train_step(plan, "churn"), compiled(tmp_path)
    assert (churn.model_digest, churn.schema_digest) == (again.model_digest, again.schema_digest)
    footfall = train_step(plan, "footfall")
    assert footfall.model_digest != churn.model_digest
    assert footfall.schema_digest != churn.schema_digest


# --- where trials run --------------------------------------------------------------------------


def test_trials_run_on_threads_without_dask(tmp_path: Path) -> None:
    assert compiled(tmp_path).trial_runner.model_dump() == {"kind": "threads", "max_workers": 2}


def test_trials_run_on_a_local_dask_cluster_from_the_profile(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, profile="cluster")
    assert train_step(plan, "churn").trial_runner.model_dump() == {
        "kind": "dask",
        "address": None,
        "n_workers": 2,
        "threads_per_worker": 1,
    }
    assert train_step(plan, "footfall").trial_runner == train_step(plan, "churn").trial_runner


def test_trials_run_on_an_existing_dask_cluster_by_address(tmp_path: Path) -> None:
    runner = train_step(plan_of(tmp_path, profile="remote-dask"), "churn").trial_runner
    assert isinstance(runner, DaskTrials)
    assert runner.address == "tcp://scheduler:8786"


def test_dask_on_the_embedded_profile_is_used_too(tmp_path: Path) -> None:
    text = edited("  local: {}\n", "  local: {dask: {n_workers: 3}}\n")
    runner = compiled(tmp_path, text).trial_runner
    assert isinstance(runner, DaskTrials) and runner.n_workers == 3
