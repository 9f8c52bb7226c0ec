"""`${VAR}` interpolation, defaults, escapes and `${secret:name}` references."""

from __future__ import annotations

from typing import Any

from shipyard.diagnostics import Diagnostic, Span
from shipyard.loader import load_text
from shipyard.loader.interpolate import interpolate
from shipyard.loader.source_map import parse_yaml


def run(yaml_text: str, env: dict[str, str]) -> tuple[Any, list[Diagnostic], set[str]]:
    parsed = parse_yaml(yaml_text, "spec.yaml")
    return interpolate(parsed.data, env, parsed.source_map)


def test_variable_is_substituted() -> None:
    data, problems, _ = run("url: http://${HOST}:${PORT}/api\n", {"HOST": "db", "PORT": "4200"})
    assert data == {"url": "http://db:4200/api"}
    assert problems == []


def test_default_is_used_only_when_unset() -> None:
    text = "a: ${PROFILE:-local}\nb: ${EMPTY:-x}\n"
    assert run(text, {})[0] == {"a": "local", "b": "x"}
    assert run(text, {"PROFILE": "prod", "EMPTY": ""})[0] == {"a": "prod", "b": ""}


def test_default_may_contain_colons_and_slashes() -> None:
    data, _, _ = run("remote: ${REMOTE:-s3://bucket/path}\n", {})
    assert data == {"remote": "s3://bucket/path"}


def test_nested_lists_and_mappings_are_walked() -> None:
    data, _, _ = run("a:\n  - {b: '${X}'}\n  - ${X}-2\n", {"X": "1"})
    assert data == {"a": [{"b": "1"}, "1-2"]}


def test_non_strings_are_left_alone() -> None:
    data, problems, _ = run("port: 4200\nflag: true\n", {})
    assert data == {"port": 4200, "flag": True} and problems == []


def test_missing_variable_is_e010_at_the_value() -> None:
    _, problems, _ = run("project: demo\nprofile: ${SHIPYARD_TEST_UNSET}\n", {})
    [d] = problems
    assert d.code == "E010"
    assert "'SHIPYARD_TEST_UNSET' is not set" in d.message
    assert d.span == Span("spec.yaml", 2, 10, 2, 32)
    assert d.hint is not None and "${SHIPYARD_TEST_UNSET:-value}" in d.hint


def test_each_missing_variable_is_reported_where_it_is_written() -> None:
    _, problems, _ = run("a: ${ONE}/${TWO}\n", {})
    assert [(d.code, d.message) for d in problems] == [
        ("E010", "environment variable 'ONE' is not set"),
        ("E010", "environment variable 'TWO' is not set"),
    ]
    assert [d.span for d in problems] == [
        Span("spec.yaml", 1, 4, 1, 10),
        Span("spec.yaml", 1, 11, 1, 17),
    ]


def test_reference_inside_a_quoted_value_is_pointed_at() -> None:
    _, problems, _ = run("a: 'x ${ONE}'\n", {})
    assert [d.span for d in problems] == [Span("spec.yaml", 1, 7, 1, 13)]


def test_value_with_escapes_is_pointed_at_as_a_whole() -> None:
    # the offset of the reference inside "\t\t${ONE}" is not known from the parsed text
    _, problems, _ = run('a: "\\t\\t${ONE}"\n', {})
    assert [d.span for d in problems] == [Span("spec.yaml", 1, 4, 1, 16)]


def test_double_dollar_escapes_a_literal_reference() -> None:
    data, problems, secrets = run("a: cost $${PRICE} and ${X}\n", {"X": "1", "PRICE": "9"})
    assert data == {"a": "cost ${PRICE} and 1"}
    assert problems == [] and secrets == set()


def test_secret_reference_is_kept_and_collected() -> None:
    text = "a: ${secret:aws-key}\nb: user:${secret:db-pass}@host\nc: ${secret:aws-key}\n"
    data, problems, secrets = run(text, {"secret": "not-an-environment-lookup"})
    assert data == {
        "a": "${secret:aws-key}",
        "b": "user:${secret:db-pass}@host",
        "c": "${secret:aws-key}",
    }
    assert problems == []
    assert secrets == {"aws-key", "db-pass"}


def test_bad_secret_name_is_e011_and_not_collected() -> None:
    _, problems, secrets = run("a: ${secret:AWS_KEY}\nb: ${secret:}\n", {})
    assert [d.code for d in problems] == ["E011", "E011"]
    assert "'${secret:AWS_KEY}'" in problems[0].message
    assert secrets == set()


def test_malformed_variable_name_is_e012() -> None:
    _, problems, _ = run("a: ${1ABC}\nb: ${}\n", {})
    assert [d.code for d in problems] == ["E012", "E012"]


def test_load_text_interpolates_before_validating_and_keeps_secrets() -> None:
    text = (
        "project: ${NAME:-demo}\n"
        "profiles:\n"
        "  local:\n"
        "    dvc: {options: {key: '${secret:aws-key}'}}\n"
    )
    loaded = load_text(text, "spec.yaml", env={})
    assert loaded.ok
    assert loaded.spec is not None and loaded.spec.project == "demo"
    assert loaded.secrets == {"aws-key"}
    assert loaded.spec.profiles["local"].dvc.options == {"key": "${secret:aws-key}"}


def test_load_text_reads_the_process_environment_by_default(monkeypatch: Any) -> None:
    monkeypatch.setenv("SHIPYARD_TEST_PROJECT", "from-env")
    loaded = load_text("project: ${SHIPYARD_TEST_PROJECT}\n", "spec.yaml")
    assert loaded.spec is not None and loaded.spec.project == "from-env"
