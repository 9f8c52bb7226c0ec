"""compile_plan: steps and their order, deployments, digest, GX expectations, graph checks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shipyard.compiler import DatasetStep, Plan, StepBase, flow_entrypoint, spec_digest
from shipyard.compiler.expectations import DTYPES
from shipyard.compiler.graph import check_graph, topological_order
from shipyard.compiler.render import render_plan
from shipyard.loader import load_text
from shipyard.spec import PipelineSpec

from .specs import compile_text, dataset_step

pytestmark = pytest.mark.usefixtures("no_state_dir_override")

SPEC = """\
project: shop
profile: ${PROFILE:-local}
profiles:
  local: {}
  scale-out:
    kind: scale-out
    prefect: {work_pool: big-pool, api_url: "http://prefect:4200/api"}
    dvc: {remote: "s3://bucket/shop", options: {access_key_id: "${secret:aws-key}"}}
datasets:
  orders:
    description: Orders placed in the web shop.
    path: data/orders.parquet
    key: [order_id, placed_at]
    timestamp: placed_at
    schedule: "0 3 * * *"
    schema:
      order_id: int
      placed_at: datetime
      status: {category: [open, paid]}
      amount: float
      email: str
    expectations:
      - not_null: {columns: [order_id, email], mostly: 0.9}
      - unique: email
      - unique_together: [order_id, email]
      - between: {column: amount, min: 0}
      - in_set: {column: status, values: [open, paid], mostly: 0.5}
      - regex: {column: email, pattern: "@"}
      - row_count: {min: 10, max: 1000}
      - gx: {type: expect_column_mean_to_be_between, kwargs: {column: amount, max_value: 99}}
  customers:
    path: data/customers.csv
    key: customer_id
    schema: {customer_id: int}
    versioning: {enabled: false}
    expectations: [{not_null: customer_id}]
"""


def spec_of(text: str = SPEC, env: dict[str, str] | None = None) -> PipelineSpec:
    loaded = load_text(text, "pipelines.yaml", env=env or {})
    assert loaded.spec is not None, loaded.diagnostics
    return loaded.spec


def plan_of(tmp_path: Path, text: str = SPEC, env: dict[str, str] | None = None) -> Plan:
    return compile_text(tmp_path, text, env)


def test_steps_are_keyed_by_resource_id_and_run_their_tasks_in_order(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    assert list(plan.steps) == ["dataset.orders", "dataset.customers"]
    orders, customers = plan.steps.values()
    assert isinstance(orders, DatasetStep) and orders.kind == "dataset"
    assert orders.tasks == ("validate", "version")
    assert customers.tasks == ("validate",)  # versioning disabled
    assert orders.needs == ()


def test_every_step_comes_after_the_steps_it_needs(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    position = {step_id: i for i, step_id in enumerate(plan.steps)}
    for step in plan.steps.values():
        assert all(position[need] < position[step.id] for need in step.needs)


def test_one_deployment_per_dataset_with_entrypoint_schedule_tags_and_version(
    tmp_path: Path,
) -> None:
    plan = plan_of(tmp_path)
    assert list(plan.deployments) == ["validate-dataset/orders", "validate-dataset/customers"]
    orders = plan.deployments["validate-dataset/orders"]
    assert orders.entrypoint == flow_entrypoint("validate-dataset")
    assert orders.entrypoint == "flows/validate_dataset.py:validate_dataset"
    assert orders.schedule == "0 3 * * *"
    assert orders.tags == ("shipyard", "project:shop", "dataset.orders")
    assert orders.step == "dataset.orders"
    assert orders.description == "Orders placed in the web shop."
    customers = plan.deployments["validate-dataset/customers"]
    assert customers.schedule is None
    assert "Validate dataset 'customers'" in customers.description
    assert len(orders.version) == 12 and orders.version != customers.version


def test_deployment_parameters_are_the_resource_name_and_the_step_is_in_the_plan(
    tmp_path: Path,
) -> None:
    plan = plan_of(tmp_path)
    deployment = plan.deployments["validate-dataset/orders"]
    assert deployment.parameters == {"dataset": "orders"}
    step = dataset_step(plan, "orders")
    assert step.id == "dataset.orders" and step.name == "orders"
    assert step.path == "data/orders.parquet" and step.format == "parquet"
    assert step.key == ["order_id", "placed_at"] and step.timestamp == "placed_at"
    assert step.columns["status"] == ["open", "paid"] and step.columns["amount"] == "float"
    assert step.version is True
    assert dataset_step(plan, "customers").format == "csv"
    assert dataset_step(plan, "customers").version is False


def test_a_deployment_version_changes_exactly_when_what_it_runs_changes(tmp_path: Path) -> None:
    before = plan_of(tmp_path).deployments
    after = plan_of(tmp_path, SPEC.replace("min: 0}", "min: 1}")).deployments
    assert after["validate-dataset/orders"].version != before["validate-dataset/orders"].version
    assert (
        after["validate-dataset/customers"].version == before["validate-dataset/customers"].version
    )


def test_the_runtime_context_is_in_the_plan_once(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    text = plan.model_dump_json()
    assert text.count(plan.runtime.state_dir) <= 8  # blocks and job variables name it too
    assert '"runtime"' not in json.dumps(json.loads(text)["steps"])


def test_job_variables_run_flows_from_the_project_with_telemetry_off(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    variables = plan.job_variables
    assert variables.working_dir == str(tmp_path.resolve())
    assert variables.env["SHIPYARD_STATE_DIR"] == str(tmp_path.resolve() / ".shipyard")
    assert variables.env["DO_NOT_TRACK"] == "true"
    assert variables.env["SHIPYARD_PLAN"] == "shop-local-plan"


def test_active_profile_sets_pool_api_url_blocks_and_secrets(tmp_path: Path) -> None:
    local = plan_of(tmp_path)
    assert local.profile == "local"
    assert local.prefect.api_url == "http://127.0.0.1:4200/api" and local.prefect.local
    dvc = local.blocks.dvc_remote
    assert dvc.name == "shop-local-dvc"
    assert dvc.url == str(tmp_path.resolve() / ".shipyard" / "dvc-remote")

    scale = plan_of(tmp_path, env={"PROFILE": "scale-out"})
    assert scale.profile == "scale-out"
    assert scale.prefect.work_pool == "big-pool"
    assert scale.prefect.api_url == "http://prefect:4200/api" and not scale.prefect.local
    dvc = scale.blocks.dvc_remote
    assert (dvc.url, dvc.options) == (
        "s3://bucket/shop",
        {"access_key_id": "${secret:aws-key}"},  # a reference, never the value
    )
    assert scale.secrets == ("aws-key",)
    assert [b.name for b in scale.blocks.all()] == [
        "shop-scale-out-dvc",
        "shop-scale-out-mlflow",
        "shop-scale-out-metrics",
    ]


def test_spec_digest_is_stable(tmp_path: Path) -> None:
    assert spec_digest(spec_of()) == spec_digest(spec_of())
    assert plan_of(tmp_path).spec_digest == plan_of(tmp_path).spec_digest == spec_digest(spec_of())
    assert len(spec_digest(spec_of())) == 64


def test_spec_digest_ignores_comments_and_dataset_order() -> None:
    orders_first = SPEC.index("  orders:")
    customers_first = SPEC.index("  customers:")
    reordered = SPEC[:orders_first] + SPEC[customers_first:] + SPEC[orders_first:customers_first]
    assert spec_digest(spec_of(reordered)) == spec_digest(spec_of())
    assert spec_digest(spec_of("# a comment\n" + SPEC)) == spec_digest(spec_of())


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("min: 0}", "min: 1}"),
        ('"0 3 * * *"', '"0 4 * * *"'),
        ("versioning: {enabled: false}", "versioning: {enabled: true}"),
    ],
)
def test_spec_digest_changes_when_the_spec_changes(old: str, new: str) -> None:
    assert old in SPEC
    assert spec_digest(spec_of(SPEC.replace(old, new))) != spec_digest(spec_of())


def test_schema_and_key_expectations_come_first(tmp_path: Path) -> None:
    step = dataset_step(plan_of(tmp_path), "orders")
    first = [(e.type, e.column) for e in step.expectations[:10]]
    assert first == [
        ("expect_column_to_exist", "order_id"),
        ("expect_column_values_to_be_in_type_list", "order_id"),
        ("expect_column_to_exist", "placed_at"),
        ("expect_column_values_to_be_in_type_list", "placed_at"),
        ("expect_column_to_exist", "status"),
        ("expect_column_values_to_be_in_set", "status"),
        ("expect_column_to_exist", "amount"),
        ("expect_column_values_to_be_in_type_list", "amount"),
        ("expect_column_to_exist", "email"),
        ("expect_column_values_to_be_in_type_list", "email"),
    ]
    by_rule = {e.rule: e for e in step.expectations}
    assert by_rule["schema(order_id: int)"].kwargs == {
        "column": "order_id",
        "type_list": DTYPES["int"],
    }
    assert by_rule["schema(status: category)"].kwargs == {
        "column": "status",
        "value_set": ["open", "paid"],
    }
    assert by_rule["key(order_id, placed_at)"].type == "expect_compound_columns_to_be_unique"
    assert by_rule["key(order_id, placed_at)"].kwargs == {"column_list": ["order_id", "placed_at"]}
    assert by_rule["key(placed_at)"].type == "expect_column_values_to_not_be_null"


def test_single_column_key_compiles_to_unique_and_not_null(tmp_path: Path) -> None:
    step = dataset_step(plan_of(tmp_path), "customers")
    keyed = [(e.type, e.kwargs) for e in step.expectations if e.rule == "key(customer_id)"]
    assert keyed == [
        ("expect_column_values_to_not_be_null", {"column": "customer_id"}),
        ("expect_column_values_to_be_unique", {"column": "customer_id"}),
    ]


def test_each_rule_kind_compiles_to_its_gx_expectation(tmp_path: Path) -> None:
    step = dataset_step(plan_of(tmp_path), "orders")
    declared = [
        (e.rule, e.type, e.kwargs)
        for e in step.expectations
        if not e.rule.startswith(("schema(", "key("))
    ]
    assert declared == [
        (
            "not_null(order_id)",
            "expect_column_values_to_not_be_null",
            {"column": "order_id", "mostly": 0.9},
        ),
        (
            "not_null(email)",
            "expect_column_values_to_not_be_null",
            {"column": "email", "mostly": 0.9},
        ),
        ("unique(email)", "expect_column_values_to_be_unique", {"column": "email"}),
        (
            "unique_together(order_id, email)",
            "expect_compound_columns_to_be_unique",
            {"column_list": ["order_id", "email"]},
        ),
        (
            "between(amount, 0.0..)",
            "expect_column_values_to_be_between",
            {"column": "amount", "min_value": 0.0},  # an unset bound is left out, not None
        ),
        (
            "in_set(status)",
            "expect_column_values_to_be_in_set",
            {"column": "status", "value_set": ["open", "paid"], "mostly": 0.5},
        ),
        (
            "regex(email, @)",
            "expect_column_values_to_match_regex",
            {"column": "email", "regex": "@"},
        ),
        (
            "row_count(10..1000)",
            "expect_table_row_count_to_be_between",
            {"min_value": 10, "max_value": 1000},
        ),
        (
            "gx(expect_column_mean_to_be_between)",
            "expect_column_mean_to_be_between",
            {"column": "amount", "max_value": 99},
        ),
    ]
    gx = step.expectations[-1]
    assert gx.column == "amount"


def test_plan_round_trips_through_json(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, env={"PROFILE": "scale-out"})
    again = Plan.model_validate_json(plan.model_dump_json())
    assert again == plan
    assert again.model_dump_json() == plan.model_dump_json()
    assert isinstance(again.steps["dataset.orders"], DatasetStep)
    assert again.schema_version == 2


def test_plan_file_round_trips_and_other_versions_are_refused(tmp_path: Path) -> None:
    from shipyard.compiler.plan import read_plan, write_plan
    from shipyard.errors import ShipyardError

    plan = plan_of(tmp_path)
    path = tmp_path / "plan.json"
    write_plan(plan, path)
    assert read_plan(path) == plan
    data = json.loads(path.read_text())
    data["schema_version"] = 1
    path.write_text(json.dumps(data))
    with pytest.raises(
        ShipyardError, match="schema version 1; this Shipyard reads plans of schema version 2"
    ):
        read_plan(path)
    path.write_text("{not json")
    with pytest.raises(ShipyardError, match="is not a plan file"):
        read_plan(path)
    with pytest.raises(ShipyardError, match="not found"):
        read_plan(tmp_path / "missing.json")
    data["schema_version"] = 2
    data["steps"]["dataset.orders"]["kind"] = "teleporter"
    path.write_text(json.dumps(data))
    with pytest.raises(ShipyardError, match="unknown step kind 'teleporter'"):
        read_plan(path)


def test_plan_is_frozen(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    with pytest.raises(ValueError, match="frozen"):
        plan.project = "other"  # type: ignore[misc]


def test_graph_of_a_compiled_plan_is_clean(tmp_path: Path) -> None:
    assert list(check_graph(plan_of(tmp_path).steps.values())) == []


def step(step_id: str, *needs: str) -> StepBase:
    return StepBase(
        kind="test", id=f"{step_id}.x", name=step_id, description="", needs=needs, tasks=("x",)
    )


def test_check_graph_reports_a_cycle_as_e301_naming_its_steps() -> None:
    steps = [step("a", "c.x"), step("b", "a.x"), step("c", "b.x"), step("d")]
    [d] = check_graph(steps)
    assert d.code == "E301"
    assert d.message.startswith("dependency cycle: ")
    assert {"a.x", "b.x", "c.x"} <= set(d.message.removeprefix("dependency cycle: ").split(" -> "))
    assert "d.x" not in d.message
    assert d.hint == "remove one of the references that close the loop"


def test_check_graph_reports_a_self_dependency() -> None:
    [d] = check_graph([step("a", "a.x")])
    assert d.code == "E301" and "a.x -> a.x" in d.message


def test_check_graph_reports_an_unknown_dependency_as_e302() -> None:
    [d] = check_graph([step("a", "ghost.x")])
    assert d.code == "E302"
    assert d.message == "step 'a.x' depends on unknown step 'ghost.x'"


def test_topological_order_puts_needs_first() -> None:
    order = topological_order([step("c", "b.x"), step("b", "a.x"), step("a")])
    assert order == ["a.x", "b.x", "c.x"]


def test_render_plan_lists_steps_tasks_deployments_blocks_and_secrets(tmp_path: Path) -> None:
    text = render_plan(plan_of(tmp_path, env={"PROFILE": "scale-out"}))
    assert "project shop  profile scale-out" in text
    assert "steps (2, in dependency order; each runs its tasks in order):" in text
    assert re.search(r"dataset.orders +validate -> version +\[validate-dataset/orders\]", text)
    assert re.search(
        r"validate-dataset/orders +flows/validate_dataset.py:validate_dataset\(dataset=orders\)",
        text,
    )
    assert "schedule '0 3 * * *'" in text and "on demand" in text
    assert "secret/aws-key" in text
