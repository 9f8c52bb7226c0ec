"""Spec shape errors (pydantic) become coded diagnostics at the right place, with a fix."""

from __future__ import annotations

from pathlib import Path

from shipyard.diagnostics import Diagnostic, Span
from shipyard.loader import load_spec, load_text

GOOD_DATASET = """\
  customers:
    path: data/customers.csv
    schema: {id: int}
    expectations: [{not_null: id}]
"""


def load(text: str) -> list[Diagnostic]:
    return load_text(text, "spec.yaml", env={}).diagnostics


def only(text: str) -> Diagnostic:
    diagnostics = load(text)
    assert len(diagnostics) == 1, diagnostics
    return diagnostics[0]


def spec_with(dataset_body: str) -> str:
    return "project: demo\ndatasets:\n  orders:\n" + dataset_body


def test_valid_spec_has_no_diagnostics() -> None:
    loaded = load_text("project: demo\ndatasets:\n" + GOOD_DATASET, "spec.yaml", env={})
    assert loaded.diagnostics == []
    assert loaded.ok and loaded.spec is not None
    assert list(loaded.spec.datasets) == ["customers"]


def test_unknown_key_is_e101_at_the_key_with_did_you_mean() -> None:
    d = only(spec_with("    path: a.csv\n    schema: {id: int}\n    shedule: '@daily'\n"))
    assert d.code == "E101"
    assert d.message == "datasets.orders: unknown key 'shedule'"
    assert d.span == Span("spec.yaml", 6, 5, 6, 12)
    assert d.hint == "did you mean 'schedule'?"


def test_unknown_key_without_a_close_match_lists_the_allowed_keys() -> None:
    d = only(spec_with("    path: a.csv\n    schema: {id: int}\n    colour: red\n"))
    assert d.code == "E101"
    assert d.hint is not None and d.hint.startswith("expected one of 'description'")
    assert "'versioning'" in d.hint  # eleven keys: all shown, none hidden behind "and 3 more"
    assert "more)" not in d.hint


def test_unknown_root_key_is_e101() -> None:
    d = only("project: demo\ndatasetz: {}\n")
    assert (d.code, d.message, d.hint) == (
        "E101",
        "top level: unknown key 'datasetz'",
        "did you mean 'datasets'?",
    )


def test_misspelt_required_key_is_one_e101_not_also_e102() -> None:
    d = only(spec_with("    pth: a.csv\n    schema: {id: int}\n"))
    assert (d.code, d.hint) == ("E101", "did you mean 'path'?")


def test_misspelt_key_inside_a_union_member_gets_a_hint() -> None:
    d = only(spec_with("    path: a.csv\n    schema:\n      region: {categories: [a, b]}\n"))
    assert d.code == "E101"
    assert d.message == "datasets.orders.schema.region: unknown key 'categories'"
    assert d.hint == "did you mean 'category'?"


def test_missing_key_is_e102_at_the_parent_key() -> None:
    d = only(spec_with("    path: a.csv\n"))
    assert d.code == "E102"
    assert d.message == "datasets.orders: missing required key 'schema'"
    assert d.span == Span("spec.yaml", 3, 3, 3, 9)
    assert d.hint == "add `schema: ...` here"


def test_missing_project_is_e102() -> None:
    d = only("datasets: {}\n")
    assert (d.code, d.message) == ("E102", "top level: missing required key 'project'")


def test_invalid_choice_is_e103_with_did_you_mean() -> None:
    d = only(spec_with("    path: a.csv\n    format: parket\n    schema: {id: int}\n"))
    assert d.code == "E103"
    assert d.message == "datasets.orders.format: invalid value 'parket'"
    assert d.span == Span("spec.yaml", 5, 13, 5, 19)
    assert d.hint == "did you mean 'parquet'?"


def test_invalid_choice_without_a_close_match_lists_the_choices() -> None:
    d = only(spec_with("    path: a.csv\n    format: xlsx\n    schema: {id: int}\n"))
    assert d.hint == "expected 'parquet', 'csv', 'json' or 'jsonl'"


def test_another_systems_column_type_name_is_e103_naming_ours() -> None:
    d = only(spec_with("    path: a.csv\n    schema: {id: integer}\n"))
    assert (d.code, d.message, d.hint) == (
        "E103",
        "datasets.orders.schema.id: invalid value 'integer'",
        "write 'int' (Shipyard's name for integer)",
    )


def test_wrong_type_is_e103_naming_what_was_written() -> None:
    d = only(
        spec_with("    path: a.csv\n    schema: {id: int}\n    versioning: {enabled: maybe}\n")
    )
    assert d.code == "E103"
    assert d.message == "datasets.orders.versioning.enabled: must be true or false"
    assert d.hint == "got 'maybe'"


def test_out_of_range_number_is_e103_in_plain_words() -> None:
    d = only("project: demo\nprofiles:\n  local: {prefect: {port: 70000}}\n")
    assert d.code == "E103"
    assert d.message == "profiles.local.prefect.port: must be at most 65535"
    assert d.span == Span("spec.yaml", 3, 27, 3, 32)


def test_cross_field_check_is_e103_with_its_own_message() -> None:
    d = only(
        spec_with(
            "    path: a.csv\n    schema: {x: int}\n"
            "    expectations: [{between: {column: x, min: 5, max: 1}}]\n"
        )
    )
    assert d.code == "E103"
    assert d.message.endswith("between: min (5.0) is greater than max (1.0)")


def test_bad_cron_is_e103_explaining_the_format() -> None:
    d = only(spec_with("    path: a.csv\n    schema: {x: int}\n    schedule: every day\n"))
    assert d.code == "E103"
    assert "'every day' is not a cron expression" in d.message
    assert "'0 3 * * *'" in d.message


def test_invalid_dataset_name_is_e104_at_the_key() -> None:
    d = only("project: demo\ndatasets:\n  Customers:\n    path: a.csv\n    schema: {id: int}\n")
    assert d.code == "E104"
    assert d.message == "datasets: invalid name 'Customers'"
    assert d.span == Span("spec.yaml", 3, 3, 3, 12)
    assert d.hint is not None and "lowercase" in d.hint


def test_invalid_project_name_is_e104() -> None:
    d = only("project: Churn Demo\n")
    assert (d.code, d.message) == ("E104", "project: invalid name 'Churn Demo'")
    assert d.span == Span("spec.yaml", 1, 10, 1, 20)


def test_unknown_expectation_is_e105_with_did_you_mean() -> None:
    d = only(
        spec_with("    path: a.csv\n    schema: {id: int}\n    expectations:\n      - uniq: id\n")
    )
    assert d.code == "E105"
    assert d.message == "datasets.orders.expectations.0: unknown expectation 'uniq'"
    assert d.span == Span("spec.yaml", 7, 9, 7, 13)
    assert d.hint == "did you mean 'unique'?"


def test_expectation_that_is_not_a_one_key_mapping_is_e105() -> None:
    d = only(
        spec_with(
            "    path: a.csv\n    schema: {id: int}\n    expectations:\n"
            "      - {not_null: id, unique: id}\n"
        )
    )
    assert d.code == "E105"
    assert d.hint is not None and "one rule per list item" in d.hint


def test_gx_type_must_look_like_an_expectation_type() -> None:
    d = only(
        spec_with(
            "    path: a.csv\n    schema: {id: int}\n    expectations:\n"
            "      - gx: {type: column_mean}\n"
        )
    )
    assert d.code == "E103"
    assert "'column_mean' is not a Great Expectations expectation type" in d.message


def test_spec_that_is_not_a_mapping_is_e103() -> None:
    d = only("- a\n- b\n")
    assert d.code == "E103" and "must be a mapping" in d.message


def test_all_errors_are_reported_in_one_pass() -> None:
    text = "project: Bad Name\nprofile: 3\ndatasets:\n  a: {schema: {}}\n  B: {}\n"
    found = [(d.code, d.span.line if d.span else 0) for d in load(text)]
    assert sorted(found) == [
        ("E102", 5),  # B: schema (a missing `path:` or `sql:` is a rule, E210)
        ("E103", 2),  # profile: 3
        ("E103", 4),  # a: empty schema
        ("E104", 1),  # project name
        ("E104", 5),  # dataset name B
    ]


def test_empty_list_or_mapping_is_e103_must_not_be_empty() -> None:
    d = only(spec_with("    path: a.csv\n    schema: {}\n"))
    assert (d.code, d.message) == ("E103", "datasets.orders.schema: must not be empty")


def test_too_short_list_says_how_many_entries_are_needed() -> None:
    d = only(
        spec_with(
            "    path: a.csv\n    schema: {id: int}\n    expectations: [{unique_together: [id]}]\n"
        )
    )
    assert d.message.endswith("unique_together: needs at least 2 entries, has 1")


def test_valid_datasets_survive_in_the_partial_spec() -> None:
    text = "project: demo\ndatasets:\n" + GOOD_DATASET + "  broken: {path: 3}\n"
    loaded = load_text(text, "spec.yaml", env={})
    assert loaded.spec is None and not loaded.ok
    assert loaded.partial is not None and list(loaded.partial.datasets) == ["customers"]


def test_missing_file_is_e003(tmp_path: Path) -> None:
    loaded = load_spec(tmp_path / "nope.yaml")
    [d] = loaded.diagnostics
    assert d.code == "E003" and "not found" in d.message and d.hint
    assert loaded.spec is None


def test_load_spec_reads_the_file(tmp_path: Path) -> None:
    spec = tmp_path / "pipelines.yaml"
    spec.write_text("project: demo\ndatasets:\n" + GOOD_DATASET, encoding="utf-8")
    loaded = load_spec(spec, env={})
    assert loaded.ok and loaded.root_dir == tmp_path.resolve()


def test_file_that_is_not_utf8_is_e003(tmp_path: Path) -> None:
    spec = tmp_path / "pipelines.yaml"
    spec.write_bytes(b"project: \xff\xfe\n")
    [d] = load_spec(spec, env={}).diagnostics
    assert d.code == "E003" and "UTF-8" in (d.hint or "")
