"""Rules for `datasets:`: every code fires where it should, and a good spec gives none."""

from __future__ import annotations

import pytest

from shipyard.diagnostics import Severity, Span
from shipyard.loader import load_text
from shipyard.validation import validate

from .specs import check, only

GOOD = """\
project: demo
datasets:
  customers:
    path: data/customers.parquet
    key: [customer_id, event_time]
    timestamp: event_time
    schedule: "0 * * * *"
    schema:
      customer_id: int
      event_time: datetime
      signup: date
      region: {category: [north, south]}
      charges: float
      email: str
      churned: bool
    expectations:
      - not_null: [customer_id, region]
      - unique: {columns: [email], mostly: 0.99}
      - unique_together: [customer_id, event_time]
      - between: {column: charges, min: 0, max: 500}
      - between: {column: signup, min: 0}
      - in_set: {column: region, values: [north, south]}
      - regex: {column: email, pattern: "@"}
      - row_count: {min: 1}
      - gx: {type: expect_column_mean_to_be_between, kwargs: {column: charges, min_value: 1}}
  orders:
    path: ./data/orders.csv
    key: order_id
    schema: {order_id: int}
    expectations: [{not_null: order_id}]
"""


def dataset(body: str, name: str = "orders") -> str:
    """A one-dataset spec; `body` is the dataset's keys, indented four spaces."""
    return f"project: demo\ndatasets:\n  {name}:\n{body}"


def test_good_spec_has_no_diagnostics() -> None:
    assert check(GOOD) == []


def test_key_column_not_in_schema_is_e204_with_did_you_mean() -> None:
    d = only(
        dataset(
            "    path: a.csv\n    key: order_idd\n    schema: {order_id: int}\n    "
            "expectations: [{not_null: order_id}]\n"
        )
    )
    assert d.code == "E204"
    assert d.message == "dataset 'orders': key column 'order_idd' is not in its schema"
    assert d.span == Span("spec.yaml", 5, 10, 5, 19)
    assert d.hint == "did you mean 'order_id'?"


def test_each_unknown_column_of_a_compound_key_is_reported_where_written() -> None:
    diagnostics = check(
        dataset(
            "    path: a.csv\n    key: [id, day, shop]\n    schema: {id: int}\n"
            "    expectations: [{not_null: id}]\n"
        )
    )
    assert [(d.code, d.span.col if d.span else 0) for d in diagnostics] == [
        ("E204", 15),
        ("E204", 20),
    ]


@pytest.mark.parametrize(
    "written", ["emial", "[emial]", "{columns: [emial]}", "{columns: [emial], mostly: 0.5}"]
)
def test_unknown_column_is_pointed_at_in_every_shorthand(written: str) -> None:
    d = only(
        dataset(
            f"    path: a.csv\n    schema: {{email: str}}\n"
            f"    expectations:\n      - not_null: {written}\n"
        )
    )
    assert d.code == "E204"
    assert d.span is not None
    assert (d.span.line, d.span.col) == (7, 19 + written.index("emial"))
    assert d.span.end_col - d.span.col == len("emial")


def test_unknown_column_without_a_close_match_says_where_to_add_it() -> None:
    d = only(
        dataset("    path: a.csv\n    schema: {id: int}\n    expectations: [{not_null: zzz}]\n")
    )
    assert d.code == "E204"
    assert d.hint == "add it under `schema:` with its type"


@pytest.mark.parametrize(
    ("rule", "role"),
    [
        ("{not_null: [id, emial]}", "not_null"),
        ("{unique: {columns: [emial], mostly: 0.9}}", "unique"),
        ("{unique_together: [id, emial]}", "unique_together"),
        ("{between: {column: emial, min: 0}}", "between"),
        ("{in_set: {column: emial, values: [a]}}", "in_set"),
        ("{regex: {column: emial, pattern: x}}", "regex"),
    ],
)
def test_every_rule_checks_its_columns_exist(rule: str, role: str) -> None:
    d = only(
        dataset(
            f"    path: a.csv\n    schema: {{id: int, email: str}}\n    expectations: [{rule}]\n"
        )
    )
    assert d.code == "E204"
    assert d.message == f"dataset 'orders': {role} column 'emial' is not in its schema"
    assert d.hint == "did you mean 'email'?"
    assert d.span is not None and d.span.end_col - d.span.col == len("emial")


def test_timestamp_not_in_schema_is_e204() -> None:
    d = only(
        dataset(
            "    path: a.csv\n    timestamp: ts\n    schema: {id: int}\n"
            "    expectations: [{not_null: id}]\n"
        )
    )
    assert (d.code, d.message) == (
        "E204",
        "dataset 'orders': timestamp column 'ts' is not in its schema",
    )


@pytest.mark.parametrize(("written", "shown"), [("str", "str"), ("{category: [a]}", "a category")])
def test_timestamp_that_is_not_a_date_is_e203(written: str, shown: str) -> None:
    d = only(
        dataset(
            f"    path: a.csv\n    timestamp: ts\n    schema: {{ts: {written}}}\n"
            "    expectations: [{not_null: ts}]\n"
        )
    )
    assert d.code == "E203"
    assert d.message == f"dataset 'orders': timestamp column 'ts' is {shown}, not datetime or date"
    assert d.hint == "declare it as `ts: datetime` in the schema"


@pytest.mark.parametrize("timestamp_type", ["datetime", "date"])
def test_datetime_and_date_timestamps_are_fine(timestamp_type: str) -> None:
    text = dataset(
        f"    path: a.csv\n    timestamp: ts\n    schema: {{ts: {timestamp_type}}}\n"
        "    expectations: [{not_null: ts}]\n"
    )
    assert check(text) == []


def test_unknown_format_is_e205() -> None:
    d = only(
        dataset(
            "    path: data/orders.dat\n    schema: {id: int}\n    expectations: [{not_null: id}]\n"
        )
    )
    assert d.code == "E205"
    assert "cannot tell the format of 'data/orders.dat'" in d.message
    assert d.hint == "add `format: parquet` (or csv, json, jsonl)"


def test_explicit_format_silences_e205() -> None:
    text = dataset(
        "    path: data/orders.dat\n    format: csv\n    schema: {id: int}\n"
        "    expectations: [{not_null: id}]\n"
    )
    assert check(text) == []


def test_two_datasets_on_one_file_is_e206_at_the_second() -> None:
    text = (
        "project: demo\ndatasets:\n"
        "  a: {path: data/x.csv, schema: {id: int}, expectations: [{not_null: id}]}\n"
        "  b: {path: ./data/x.csv, schema: {id: int}, expectations: [{not_null: id}]}\n"
    )
    d = only(text)
    assert d.code == "E206"
    assert d.message == "datasets 'a' and 'b' use the same file './data/x.csv'"
    assert d.span is not None and d.span.line == 4


@pytest.mark.parametrize(
    ("column_type", "shown"), [("str", "str"), ("bool", "bool"), ("{category: [a]}", "a category")]
)
def test_between_on_a_non_numeric_column_is_e207(column_type: str, shown: str) -> None:
    d = only(
        dataset(
            f"    path: a.csv\n    schema: {{c: {column_type}}}\n"
            "    expectations: [{between: {column: c, min: 0}}]\n"
        )
    )
    assert d.code == "E207"
    assert (
        d.message == f"dataset 'orders': `between` needs a numeric or date column, 'c' is {shown}"
    )


def test_regex_on_a_non_string_column_is_e207() -> None:
    d = only(
        dataset(
            "    path: a.csv\n    schema: {c: int}\n"
            "    expectations: [{regex: {column: c, pattern: x}}]\n"
        )
    )
    assert d.code == "E207"
    assert d.message == "dataset 'orders': `regex` needs a str column, 'c' is int"


@pytest.mark.parametrize("path", ["/srv/data/orders.csv", "../orders.csv", "data/../../o.csv"])
def test_path_outside_the_project_is_e209(path: str) -> None:
    d = only(
        dataset(
            f"    path: {path}\n    schema: {{id: int}}\n    expectations: [{{not_null: id}}]\n"
        )
    )
    assert d.code == "E209"
    assert d.message == f"dataset 'orders': path '{path}' is outside the project folder"


def test_dataset_without_expectations_is_warning_w201_not_an_error() -> None:
    loaded = load_text(dataset("    path: a.csv\n    schema: {id: int}\n"), "spec.yaml", env={})
    [d] = validate(loaded)
    assert d.code == "W201"
    assert d.severity is Severity.WARNING and not d.is_error
    assert d.span == Span("spec.yaml", 3, 3, 3, 9)
    assert loaded.ok  # warnings do not fail the spec


def test_rules_still_check_valid_datasets_when_another_is_broken() -> None:
    text = (
        "project: demo\ndatasets:\n"
        "  broken: {path: 3}\n"
        "  fine: {path: a.csv, key: idd, schema: {id: int}, expectations: [{not_null: id}]}\n"
    )
    assert sorted(d.code for d in check(text)) == ["E102", "E103", "E204"]


def test_diagnostics_come_sorted_by_position() -> None:
    text = dataset("    path: /abs.dat\n    key: nope\n    schema: {id: int}\n")
    lines = [(d.span.line, d.span.col) for d in check(text) if d.span]
    assert lines == sorted(lines)
    assert len(lines) == 4  # W201 at the name, E209 and E205 at the path, E204 at the key
