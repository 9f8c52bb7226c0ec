"""`shipyard plan`'s comparison with what is applied: added, changed (with the step's changed
fields and schedules) and removed deployments."""

from __future__ import annotations

from pathlib import Path

from shipyard.compiler.diff import AppliedDeployment, changed_fields, diff_plan

from .specs import compile_text, replaced

SPEC = """\
project: shop
datasets:
  orders:
    path: data/orders.parquet
    schema: {order_id: int, amount: float}
    expectations: [{not_null: order_id}, {between: {column: amount, min: 0}}]
  customers:
    path: data/customers.parquet
    schema: {customer_id: int}
    expectations: [{not_null: customer_id}]
"""


def _applied(plan: object) -> dict[str, AppliedDeployment]:
    return {
        name: AppliedDeployment(name, d.version, (d.schedule,) if d.schedule else ())
        for name, d in plan.deployments.items()  # type: ignore[attr-defined]
    }


def test_nothing_changed(tmp_path: Path) -> None:
    plan = compile_text(tmp_path, SPEC)
    diff = diff_plan(plan, _applied(plan), plan)
    assert diff.empty
    assert diff.render("http://prefect/api") == (
        "no changes: the plan is what is applied on http://prefect/api"
    )


def test_added_changed_and_removed_deployments(tmp_path: Path) -> None:
    applied = compile_text(tmp_path, SPEC)
    text = replaced(
        SPEC,
        ("{between: {column: amount, min: 0}}", "{between: {column: amount, min: 1}}"),
        ("  customers:\n", "  customers:\n    schedule: '0 3 * * *'\n"),
    )
    text += "  returns:\n    path: data/returns.parquet\n    schema: {order_id: int}\n"
    text += "    expectations: [{not_null: order_id}]\n"
    servers = _applied(applied) | {
        "validate-dataset/old": AppliedDeployment("validate-dataset/old", "x")
    }
    diff = diff_plan(compile_text(tmp_path, text), servers, applied)
    by_name = {c.full_name: c for c in diff.changes}
    assert by_name["validate-dataset/returns"].change == "added"
    assert by_name["validate-dataset/old"].change == "removed"
    orders = by_name["validate-dataset/orders"]
    assert orders.change == "changed" and orders.fields == ("expectations",)
    customers = by_name["validate-dataset/customers"]
    assert customers.schedule == (None, "0 3 * * *")
    text_out = diff.render("http://prefect/api")
    assert (
        text_out.splitlines()[0]
        == "changes against http://prefect/api (1 added, 2 changed, 1 removed):"
    )
    assert "  ~ validate-dataset/orders  changed: expectations" in text_out
    assert "schedule 'none' -> '0 3 * * *'" in text_out
    assert (
        "  - validate-dataset/old  (no longer in the spec; `shipyard apply` deletes it)" in text_out
    )
    assert {
        "deployment": "validate-dataset/returns",
        "change": "added",
        "fields": [],
        "schedule": None,
    } in diff.to_json()


def test_without_the_applied_plan_a_change_is_still_seen_by_its_version(tmp_path: Path) -> None:
    applied = compile_text(tmp_path, SPEC)
    changed = compile_text(tmp_path, SPEC.replace("min: 0}", "min: 2}"))
    diff = diff_plan(changed, _applied(applied), None)
    [change] = diff.changes
    assert (change.full_name, change.change, change.fields) == (
        "validate-dataset/orders",
        "changed",
        (),
    )


def test_changed_fields_are_dotted_paths() -> None:
    before = {"a": 1, "b": {"c": [1, 2], "d": "x"}, "gone": 0}
    after = {"a": 1, "b": {"c": [1, 3], "d": "x"}, "new": 0}
    assert list(changed_fields(before, after)) == ["b.c", "gone", "new"]
    assert list(changed_fields(1, 2)) == ["(value)"]
