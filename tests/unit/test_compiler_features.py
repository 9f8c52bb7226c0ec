"""compile_plan for `features:`: the Feast repository, its stores, materialize deployments, steps
and the train steps of models that use a feature service."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipyard.compiler import FeatureRepoStep, MaterializeStep, Plan, flow_entrypoint
from shipyard.compiler.features import STATIC_EVENT_TIME, FeatureServicePlan

from .specs import compile_text, replaced, train_step

pytestmark = pytest.mark.usefixtures("no_state_dir_override")

SPEC = """\
project: churn-demo
profile: ${PROFILE:-local}
profiles:
  local: {}
  scale-out:
    kind: scale-out
    feast:
      online_store: redis://127.0.0.1:6379
      registry: postgresql://postgres@127.0.0.1:5432/feast
  elsewhere:
    state_dir: var/state
datasets:
  customers:
    path: data/customers.parquet
    timestamp: event_time
    schema:
      customer_id: int
      event_time: datetime
      plan: {category: [basic, pro]}
      tenure: int
      charges: float
      calls: int
      churned: bool
    expectations: [{not_null: customer_id}]
  accounts:
    path: data/accounts.csv
    timestamp: seen_at
    schema: {account_code: str, seen_at: datetime, balance: float, overdrawn: bool}
    versioning: {enabled: false}
    expectations: [{not_null: account_code}]
  labels:
    path: data/labels.parquet
    timestamp: event_time
    schema: {customer_id: int, event_time: datetime, churned: bool}
    expectations: [{not_null: customer_id}]
features:
  entities:
    customer: {join_key: customer_id}
    account: {join_key: account_code}
  views:
    customer_profile:
      description: Plan and tenure of a customer.
      entity: customer
      source: customers
      features: [plan, tenure]
      ttl: 45d
      schedule: "*/30 * * * *"
    customer_usage:
      entity: customer
      source: customers
      features: [charges, calls]
      ttl: 12h
    account_balance:
      entity: account
      source: accounts
      features: [balance, overdrawn]
      online: false
  services:
    churn_v1: [customer_profile]
    churn_v2: [customer_profile, customer_usage]
    accounts:
      views: [customer_usage]
      features: ["customer_profile:tenure", "account_balance:balance"]
      on_missing: error
models:
  churn:
    task: classification
    dataset: labels
    target: churned
    features: churn_v2
    estimator: {class: sklearn.linear_model.LogisticRegression}
"""


def plan_of(tmp_path: Path, text: str = SPEC, profile: str = "local") -> Plan:
    return compile_text(tmp_path, text, {"PROFILE": profile})


def repo_of(tmp_path: Path, text: str = SPEC, profile: str = "local") -> FeatureRepoStep:
    return plan_of(tmp_path, text, profile).step("features.repo", FeatureRepoStep)


def service(tmp_path: Path, name: str, text: str = SPEC) -> FeatureServicePlan:
    return repo_of(tmp_path, text).service(name)


def edited(*replacements: tuple[str, str]) -> str:
    return replaced(SPEC, *replacements)


# --- the Feast repository ----------------------------------------------------------------------


def test_repo_is_under_the_state_folder_with_a_sanitised_project_name(tmp_path: Path) -> None:
    repo = repo_of(tmp_path)
    assert repo.id == "features.repo"
    assert repo.project == "churn_demo"  # Feast project names take no '-'
    assert repo.repo_dir == str(tmp_path.resolve() / ".shipyard" / "feast")


@pytest.mark.parametrize(("project", "feast"), [("shop-2", "shop_2"), ("a_b-c", "a_b_c")])
def test_project_names_become_feast_identifiers(tmp_path: Path, project: str, feast: str) -> None:
    text = edited(("project: churn-demo", f"project: {project}"))
    assert repo_of(tmp_path, text).project == feast


def test_entities_take_their_value_type_from_the_join_key_column(tmp_path: Path) -> None:
    assert {k: e.model_dump() for k, e in repo_of(tmp_path).entities.items()} == {
        "customer": {"join_key": "customer_id", "value_type": "INT64"},
        "account": {"join_key": "account_code", "value_type": "STRING"},
    }


@pytest.mark.parametrize(
    ("column", "value_type"),
    [
        ("{category: [a1, b2]}", "STRING"),
        ("{category: [1, 2, 3]}", "INT64"),
        ("int", "INT64"),
        ("str", "STRING"),
    ],
)
def test_a_category_join_key_is_a_string_unless_its_categories_are_numbers(
    tmp_path: Path, column: str, value_type: str
) -> None:
    text = edited(("account_code: str,", f"account_code: {column},"))
    assert repo_of(tmp_path, text).entities["account"].value_type == value_type


def test_views_read_their_dataset_file_by_absolute_path(tmp_path: Path) -> None:
    repo = repo_of(tmp_path)
    assert [v.name for v in repo.views] == ["customer_profile", "customer_usage", "account_balance"]
    profile = repo.view("customer_profile")
    assert profile.model_dump() == {
        "name": "customer_profile",
        "entity": "customer",
        "join_key": "customer_id",
        "join_key_type": "INT64",
        "source_dataset": "customers",
        "source_path": str(tmp_path.resolve() / "data" / "customers.parquet"),
        "source_format": "parquet",
        "source_columns": {
            "customer_id": "int",
            "event_time": "datetime",
            "plan": ["basic", "pro"],
            "tenure": "int",
        },
        "offline_path": str(tmp_path.resolve() / "data" / "customers.parquet"),
        "static": False,
        "timestamp": "event_time",
        "features": {"plan": ["basic", "pro"], "tenure": "int"},
        "ttl_seconds": 45 * 86400,
        "online": True,
    }
    assert Path(profile.source_path).is_absolute() and not profile.copied
    balance = repo.view("account_balance")
    assert (balance.join_key, balance.join_key_type, balance.timestamp) == (
        "account_code",
        "STRING",
        "seen_at",
    )
    assert balance.source_path == str(tmp_path.resolve() / "data" / "accounts.csv")
    assert balance.features == {"balance": "float", "overdrawn": "bool"}


def test_a_view_over_a_csv_reads_a_parquet_copy_in_the_feast_repository(tmp_path: Path) -> None:
    balance = repo_of(tmp_path).view("account_balance")
    assert balance.copied and balance.source_format == "csv"
    assert balance.offline_path == str(
        tmp_path.resolve() / ".shipyard" / "feast" / "sources" / "account_balance.parquet"
    )
    assert list(balance.source_columns) == ["account_code", "seen_at", "balance", "overdrawn"]
    assert (balance.static, balance.timestamp, balance.ttl_seconds) == (
        False,
        "seen_at",
        30 * 86400,
    )


@pytest.mark.parametrize("path", ["data/accounts.csv", "data/accounts.parquet"])
def test_a_view_over_a_dataset_without_timestamp_is_static(tmp_path: Path, path: str) -> None:
    text = edited(
        ("path: data/accounts.csv\n    timestamp: seen_at\n", f"path: {path}\n"),
        ("account_code: str, seen_at: datetime,", "account_code: str,"),
    )
    balance = repo_of(tmp_path, text).view("account_balance")
    assert (balance.static, balance.timestamp, balance.ttl_seconds) == (
        True,
        STATIC_EVENT_TIME,
        0,  # Feast: no limit
    )
    assert balance.copied  # a parquet file too: its copy has the event-time column
    assert list(balance.source_columns) == ["account_code", "balance", "overdrawn"]


@pytest.mark.parametrize(
    ("view", "seconds", "online"),
    [
        ("customer_profile", 45 * 86400, True),
        ("customer_usage", 12 * 3600, True),
        ("account_balance", 30 * 86400, False),  # the defaults: 30d, online
    ],
)
def test_view_ttl_in_seconds_and_online_flag(
    tmp_path: Path, view: str, seconds: int, online: bool
) -> None:
    plan_view = repo_of(tmp_path).view(view)
    assert (plan_view.ttl_seconds, plan_view.online) == (seconds, online)


def test_services_list_their_references_in_order(tmp_path: Path) -> None:
    repo = repo_of(tmp_path)
    assert [s.name for s in repo.services] == ["churn_v1", "churn_v2", "accounts"]
    assert repo.service("churn_v1").references == [
        "customer_profile:plan",
        "customer_profile:tenure",
    ]
    v2 = repo.service("churn_v2")
    assert v2.references == [
        "customer_profile:plan",
        "customer_profile:tenure",
        "customer_usage:charges",
        "customer_usage:calls",
    ]
    assert v2.features == ["plan", "tenure", "charges", "calls"]
    # whole views first, then the single features, each in the order written
    accounts = repo.service("accounts")
    assert accounts.references == [
        "customer_usage:charges",
        "customer_usage:calls",
        "customer_profile:tenure",
        "account_balance:balance",
    ]
    assert accounts.features == ["charges", "calls", "tenure", "balance"]


@pytest.mark.parametrize(
    ("name", "base", "version", "on_missing"),
    [
        ("churn_v1", "churn", 1, "null"),
        ("churn_v2", "churn", 2, "null"),
        ("accounts", "accounts", None, "error"),
    ],
)
def test_service_version_is_parsed_from_the_name(
    tmp_path: Path, name: str, base: str, version: int | None, on_missing: str
) -> None:
    plan_service = service(tmp_path, name)
    assert (plan_service.base, plan_service.version, plan_service.on_missing) == (
        base,
        version,
        on_missing,
    )


def test_multi_digit_versions_and_names_with_v_inside(tmp_path: Path) -> None:
    text = edited(("    churn_v1: [customer_profile]\n", "    risk_v12: [customer_profile]\n"))
    plan_service = service(tmp_path, "risk_v12", text)
    assert (plan_service.base, plan_service.version) == ("risk", 12)
    text = edited(("    churn_v1: [customer_profile]\n", "    v_views: [customer_profile]\n"))
    plan_service = service(tmp_path, "v_views", text)
    assert (plan_service.base, plan_service.version) == ("v_views", None)


def test_service_digest_is_stable_and_differs_between_services(tmp_path: Path) -> None:
    repo, again = repo_of(tmp_path), repo_of(tmp_path)
    digests = [s.digest for s in repo.services]
    assert digests == [s.digest for s in again.services]
    assert all(len(d) == 16 and int(d, 16) >= 0 for d in digests)
    assert len(set(digests)) == 3


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("      ttl: 12h\n", "      ttl: 24h\n"),
        ("      features: [charges, calls]\n", "      features: [calls, charges]\n"),
        ("      ttl: 12h\n", "      ttl: 12h\n      online: false\n"),
        ("      charges: float\n", "      charges: int\n"),  # the type it serves
    ],
    ids=["ttl", "feature-order", "online", "column-type"],
)
def test_service_digest_changes_when_a_referenced_view_changes(
    tmp_path: Path, old: str, new: str
) -> None:
    before, after = repo_of(tmp_path), repo_of(tmp_path, edited((old, new)))
    assert after.service("churn_v2").digest != before.service("churn_v2").digest
    # churn_v1 does not include customer_usage
    assert after.service("churn_v1").digest == before.service("churn_v1").digest


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("      online: false\n", ""),  # a view the service does not use
        ("overdrawn: bool}", "overdrawn: int}"),
        ("      description: Plan and tenure of a customer.\n", ""),
        ('      schedule: "*/30 * * * *"\n', '      schedule: "@hourly"\n'),
    ],
    ids=["other-view", "other-column", "description", "schedule"],
)
def test_service_digest_ignores_what_it_does_not_serve(tmp_path: Path, old: str, new: str) -> None:
    before, after = repo_of(tmp_path), repo_of(tmp_path, edited((old, new)))
    assert after.service("churn_v1").digest == before.service("churn_v1").digest


# --- stores: embedded SQLite, or the profile's Redis and SQL registry ---------------------------


def test_embedded_stores_are_sqlite_files_under_the_state_folder(tmp_path: Path) -> None:
    repo = repo_of(tmp_path)
    feast_dir = tmp_path.resolve() / ".shipyard" / "feast"
    assert repo.online_store.model_dump() == {
        "type": "sqlite",
        "path": str(feast_dir / "online.db"),
    }
    assert repo.registry.model_dump() == {
        "registry_type": "file",
        "path": str(feast_dir / "registry.db"),
    }


def test_stores_follow_the_profile_state_dir(tmp_path: Path) -> None:
    repo = repo_of(tmp_path, profile="elsewhere")
    feast_dir = tmp_path.resolve() / "var" / "state" / "feast"
    assert repo.repo_dir == str(feast_dir)
    assert repo.online_store.model_dump()["path"] == str(feast_dir / "online.db")
    assert repo.registry.path == str(feast_dir / "registry.db")


def test_scale_out_stores_are_redis_and_a_sql_registry(tmp_path: Path) -> None:
    repo = repo_of(tmp_path, profile="scale-out")
    assert repo.online_store.model_dump() == {
        "type": "redis",
        "connection_string": "127.0.0.1:6379",
    }
    assert repo.registry.model_dump() == {
        "registry_type": "sql",
        "path": "postgresql+psycopg2://postgres@127.0.0.1:5432/feast",
        "cache_ttl_seconds": 60,
    }
    # the repository folder (definitions, apply record) stays under the state folder
    assert repo.repo_dir == str(tmp_path.resolve() / ".shipyard" / "feast")


def test_a_redis_url_with_a_trailing_slash_is_the_same_address(tmp_path: Path) -> None:
    text = edited(("redis://127.0.0.1:6379", "redis://127.0.0.1:6379/"))
    repo = repo_of(tmp_path, text, profile="scale-out")
    assert repo.online_store.model_dump()["connection_string"] == "127.0.0.1:6379"


# --- materialize-features deployments ----------------------------------------------------------


def test_one_materialize_deployment_per_online_view(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    assert list(plan.deployments) == [
        "validate-dataset/customers",
        "validate-dataset/accounts",
        "validate-dataset/labels",
        "materialize-features/customer_profile",
        "materialize-features/customer_usage",
        "train-model/churn",
    ]
    profile = plan.deployment("materialize-features", "customer_profile")
    assert profile is not None
    assert profile.entrypoint == flow_entrypoint("materialize-features")
    assert profile.entrypoint == "flows/materialize_features.py:materialize_features"
    assert profile.schedule == "*/30 * * * *"
    assert profile.tags == ("shipyard", "project:churn-demo", "feature_view.customer_profile")
    assert profile.step == "feature_view.customer_profile"
    assert profile.description == "Plan and tenure of a customer."
    usage = plan.deployment("materialize-features", "customer_usage")
    assert usage is not None
    assert usage.schedule is None
    assert "feature_view.customer_usage" in usage.tags
    assert usage.description == (
        "Materialize feature view 'customer_usage' incrementally into the online store."
    )


def test_materialize_deployment_parameters_name_the_view_whose_step_names_the_repo(
    tmp_path: Path,
) -> None:
    plan = plan_of(tmp_path)
    deployment = plan.deployment("materialize-features", "customer_usage")
    assert deployment is not None
    assert deployment.parameters == {"view": "customer_usage"}
    step = plan.step(deployment.step, MaterializeStep)
    assert (step.id, step.name, step.repo) == (
        "feature_view.customer_usage",
        "customer_usage",
        "features.repo",
    )
    assert step.tasks == ("materialize",)


def test_the_repo_needs_its_sources_and_each_online_view_needs_the_repo(tmp_path: Path) -> None:
    steps = plan_of(tmp_path).steps
    repo = steps["features.repo"]
    assert repo.tasks == ("apply",)
    # every source once, although two views read customers
    assert repo.needs == ("dataset.customers", "dataset.accounts")
    assert steps["feature_view.customer_profile"].needs == ("features.repo", "dataset.customers")
    assert "feature_view.customer_usage" in steps
    assert "feature_view.account_balance" not in steps  # offline only


def test_every_step_comes_after_the_steps_it_needs(tmp_path: Path) -> None:
    seen: set[str] = set()
    ids = []
    for step in plan_of(tmp_path).steps.values():
        assert set(step.needs) <= seen, step.id
        seen.add(step.id)
        ids.append(step.id)
    assert ids.index("features.repo") < ids.index("feature_view.customer_profile")
    assert ids.index("features.repo") < ids.index("model.churn")


def test_model_on_a_feature_service_builds_its_training_set_first(tmp_path: Path) -> None:
    step = plan_of(tmp_path).steps["model.churn"]
    assert step.tasks == ("training-set", "train", "evaluate", "gate", "register")
    assert step.needs == ("dataset.labels", "features.repo")


def test_plan_with_features_round_trips_through_json(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    assert Plan.model_validate(json.loads(plan.model_dump_json())) == plan


def test_a_spec_without_feature_views_has_no_repo(tmp_path: Path) -> None:
    text = SPEC[: SPEC.index("features:\n")] + (
        "features:\n  entities:\n    customer: {join_key: customer_id}\n"
    )
    plan = plan_of(tmp_path, text)
    assert "features.repo" not in plan.steps
    assert not [d for d in plan.deployments.values() if d.flow_name == "materialize-features"]
    assert not [s for s in plan.steps.values() if s.flow == "materialize-features"]


# --- models trained from a feature service -----------------------------------------------------


def test_train_step_takes_features_and_types_from_the_service(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    step = train_step(plan)
    assert step.feature_service == "churn_v2"
    assert step.features == ["plan", "tenure", "charges", "calls"]
    assert step.feature_types == {
        "plan": ["basic", "pro"],
        "tenure": "int",
        "charges": "float",
        "calls": "int",
    }
    assert "features.repo" in step.needs
    assert step.target == "churned"
    assert step.dataset == "dataset.labels" and step.dataset_name == "labels"


def test_model_listing_columns_has_no_service_repo_or_training_set(tmp_path: Path) -> None:
    text = edited(
        ("    dataset: labels\n", "    dataset: customers\n"),
        ("    features: churn_v2\n", "    features: [plan, tenure, charges, calls]\n"),
    )
    plan = plan_of(tmp_path, text)
    step = train_step(plan)
    assert step.feature_service is None
    assert step.tasks == ("train", "evaluate", "gate", "register")
    assert step.needs == ("dataset.customers",)


def test_schema_digest_differs_from_the_same_model_listing_the_columns(tmp_path: Path) -> None:
    on_customers = edited(("    dataset: labels\n", "    dataset: customers\n"))
    service_step = train_step(plan_of(tmp_path, on_customers))
    columns = on_customers.replace(
        "    features: churn_v2\n", "    features: [plan, tenure, charges, calls]\n"
    )
    column_step = train_step(plan_of(tmp_path, columns))
    # the same features with the same types, read another way: not the same model schema
    assert (service_step.features, service_step.feature_types) == (
        column_step.features,
        column_step.feature_types,
    )
    assert service_step.schema_digest != column_step.schema_digest


def test_schema_digest_changes_with_the_service_version(tmp_path: Path) -> None:
    v2 = train_step(plan_of(tmp_path))
    v1 = train_step(
        plan_of(tmp_path, edited(("    features: churn_v2\n", "    features: churn_v1\n")))
    )
    assert v1.features == ["plan", "tenure"]
    assert v1.schema_digest != v2.schema_digest
    assert v2.schema_digest == train_step(plan_of(tmp_path)).schema_digest


def test_service_digest_changes_when_a_view_becomes_static(tmp_path: Path) -> None:
    static = edited(
        ("path: data/accounts.csv\n    timestamp: seen_at\n", "path: data/accounts.csv\n"),
        ("account_code: str, seen_at: datetime,", "account_code: str,"),
    )
    before, after = repo_of(tmp_path), repo_of(tmp_path, static)
    # `accounts` serves account_balance:balance, now valid forever rather than for 30 days
    assert after.service("accounts").digest != before.service("accounts").digest
    assert after.service("churn_v2").digest == before.service("churn_v2").digest


def test_a_view_of_a_plan_applied_before_sources_were_copied_reads_its_file(
    tmp_path: Path,
) -> None:
    from shipyard.compiler.features import FeatureViewPlan

    fields = ("source_format", "source_columns", "offline_path", "static")
    earlier = {
        k: v
        for k, v in repo_of(tmp_path).view("customer_profile").model_dump().items()
        if k not in fields
    }
    view = FeatureViewPlan.model_validate(earlier)
    assert (view.offline_path, view.static, view.copied) == (earlier["source_path"], False, False)
