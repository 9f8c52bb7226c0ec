"""YAML parsing with positions: key and value spans, duplicate keys, syntax errors, merge keys."""

from __future__ import annotations

import pytest

from shipyard.diagnostics import Span
from shipyard.loader.source_map import parse_yaml

SPEC = """\
project: demo
datasets:
  customers:
    path: data/customers.csv
    key: [id, ts]
    schema:
      id: int
"""


def codes(text: str) -> list[str]:
    return [d.code for d in parse_yaml(text, "spec.yaml").diagnostics]


def test_data_is_plain_python() -> None:
    parsed = parse_yaml(SPEC, "spec.yaml")
    assert parsed.diagnostics == []
    assert parsed.data == {
        "project": "demo",
        "datasets": {
            "customers": {
                "path": "data/customers.csv",
                "key": ["id", "ts"],
                "schema": {"id": "int"},
            }
        },
    }


def test_value_spans_are_one_based_with_exclusive_end() -> None:
    sm = parse_yaml(SPEC, "spec.yaml").source_map
    assert sm.file == "spec.yaml"
    assert sm.value_span(("project",)) == Span("spec.yaml", 1, 10, 1, 14)
    assert sm.value_span(("datasets", "customers", "path")) == Span("spec.yaml", 4, 11, 4, 29)


def test_list_items_are_addressed_by_index() -> None:
    sm = parse_yaml(SPEC, "spec.yaml").source_map
    assert sm.value_span(("datasets", "customers", "key", 0)) == Span("spec.yaml", 5, 11, 5, 13)
    assert sm.value_span(("datasets", "customers", "key", 1)) == Span("spec.yaml", 5, 15, 5, 17)


def test_key_span_points_at_the_key_not_its_value() -> None:
    sm = parse_yaml(SPEC, "spec.yaml").source_map
    assert sm.key_span(("datasets", "customers")) == Span("spec.yaml", 3, 3, 3, 12)
    assert sm.key_span(("datasets", "customers", "schema", "id")) == Span("spec.yaml", 7, 7, 7, 9)


def test_paths_not_in_the_file_resolve_to_the_closest_ancestor() -> None:
    sm = parse_yaml(SPEC, "spec.yaml").source_map
    # pydantic locations carry union tags that the YAML does not have
    tagged = ("datasets", "customers", "function-after", "path")
    assert sm.value_span(tagged) == sm.value_span(("datasets", "customers", "path"))
    assert sm.nearest_span(("datasets", "customers", "timestamp")) == sm.value_span(
        ("datasets", "customers")
    )


def test_duplicate_key_is_e002_at_the_second_key_naming_the_first_line() -> None:
    parsed = parse_yaml("project: a\nprofile: x\nproject: b\n", "spec.yaml")
    [d] = parsed.diagnostics
    assert d.code == "E002"
    assert "duplicate key 'project'" in d.message
    assert "first defined on line 1" in d.message
    assert d.span == Span("spec.yaml", 3, 1, 3, 8)
    assert parsed.data["project"] == "a"  # the first entry is kept


def test_nested_duplicate_keys_are_reported_too() -> None:
    text = "datasets:\n  a: {path: x.csv}\n  b: {path: y.csv, path: z.csv}\n  a: {}\n"
    parsed = parse_yaml(text, "spec.yaml")
    assert [(d.code, d.span.line if d.span else 0) for d in parsed.diagnostics] == [
        ("E002", 3),
        ("E002", 4),
    ]


def test_syntax_error_is_e001_with_position_and_hint() -> None:
    [d] = parse_yaml("project: demo\n  bad: indent\n", "spec.yaml").diagnostics
    assert d.code == "E001"
    assert d.message.startswith("invalid YAML: ")
    assert d.span is not None and (d.span.line, d.span.col) == (2, 6)  # the colon of `bad:`
    assert d.hint


def test_unclosed_bracket_points_at_where_it_was_opened() -> None:
    [d] = parse_yaml("project: demo\nkey: [a, b\n", "spec.yaml").diagnostics
    assert d.code == "E001"
    assert d.span is not None and (d.span.line, d.span.col) == (2, 6)
    assert d.hint is not None and "never closed" in d.hint


def test_tab_indentation_is_e001_with_a_tab_hint() -> None:
    for text in ("project: demo\ndatasets:\n\ta: 1\n", "a:\n  b: 1\n\tc: 2\n"):
        [d] = parse_yaml(text, "spec.yaml").diagnostics
        assert d.code == "E001"
        assert "tab" in d.message
        assert d.hint == "YAML does not allow tabs for indentation; use spaces"
        assert d.span is not None and d.span.col == 1


def test_syntax_error_returns_no_data() -> None:
    parsed = parse_yaml("a: [\n", "spec.yaml")
    assert parsed.data is None


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_empty_document_says_what_a_spec_starts_with(text: str) -> None:
    parsed = parse_yaml(text, "spec.yaml")
    (d,) = parsed.diagnostics
    assert parsed.data is None
    assert (d.code, d.span.line if d.span else None) == ("E103", 1)
    assert "project:" in d.hint


def test_non_scalar_key_is_e001() -> None:
    assert codes("? [a, b]\n: 1\nproject: x\n") == ["E001"]


def test_scalars_keep_their_yaml_types() -> None:
    data = parse_yaml("a: 1\nb: 1.5\nc: true\nd: null\ne: '1'\nf: 2024-01-02\n", "s").data
    assert data["a"] == 1 and data["b"] == 1.5 and data["c"] is True and data["d"] is None
    assert data["e"] == "1"
    assert str(data["f"]) == "2024-01-02"


def test_non_string_keys_become_strings() -> None:
    assert parse_yaml("1: a\ntrue: b\n", "s").data == {"1": "a", "True": "b"}


MERGE = """\
base: &base
  kind: scale-out
  port: 1
profiles:
  a:
    <<: *base
  b:
    <<: *base
    port: 2
  c: *base
"""


def test_merge_keys_resolve_and_explicit_keys_override_without_e002() -> None:
    parsed = parse_yaml(MERGE, "spec.yaml")
    assert parsed.diagnostics == []
    profiles = parsed.data["profiles"]
    assert profiles["a"] == {"kind": "scale-out", "port": 1}
    assert profiles["b"] == {"kind": "scale-out", "port": 2}
    assert profiles["c"] == {"kind": "scale-out", "port": 1}


def test_merged_values_point_at_the_anchor_and_overrides_at_themselves() -> None:
    sm = parse_yaml(MERGE, "spec.yaml").source_map
    assert sm.value_span(("profiles", "a", "port")) == Span("spec.yaml", 3, 9, 3, 10)
    assert sm.value_span(("profiles", "b", "port")) == Span("spec.yaml", 9, 11, 9, 12)


def test_key_written_twice_next_to_a_merge_is_still_a_duplicate() -> None:
    text = MERGE + "  d:\n    <<: *base\n    port: 3\n    port: 4\n"
    parsed = parse_yaml(text, "spec.yaml")
    [d] = parsed.diagnostics
    assert d.code == "E002" and "first defined on line 13" in d.message


def test_merge_of_a_scalar_is_e001() -> None:
    parsed = parse_yaml("a:\n  <<: 5\n  b: 1\n", "spec.yaml")
    assert [d.code for d in parsed.diagnostics] == ["E001"]
    assert "merge" in parsed.diagnostics[0].message
