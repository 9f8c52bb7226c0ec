"""Hostile specs found by fuzzing the validator: each gets one positioned diagnostic, fast, and
never a traceback, a hang or gigabytes of memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.diagnostics import render_text
from shipyard.loader import load_spec

BILLION_LAUGHS = (
    "project: x\na: &a ["
    + ",".join(['"lol"'] * 9)
    + "]\n"
    + "".join(
        f"{b}: &{b} [{','.join([f'*{a}'] * 9)}]\n"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    )
)


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "pipelines.yaml"
    path.write_text(text, encoding="utf-8")
    return load_spec(path, env={})


def _only(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    result = _load(tmp_path, text)
    assert result.spec is None
    (d,) = result.diagnostics
    return d


@pytest.mark.parametrize(
    ("text", "code", "line", "words"),
    [
        (BILLION_LAUGHS, "E001", None, "aliases expand"),
        ("project: x\ndatasets: " + "[" * 5000 + "\n", "E001", 2, "deeper than 64"),
        ("project: x\ndatasets: &a\n  a: *a\n", "E001", 2, "the collection it is in"),
        ("project: x\x01\n", "E001", 1, "U+0001"),
        ("project: x\u2028\ndatasets: {}\n", "E001", 1, "U+2028"),
        ("project: x\ndatasets: {}\x85\n", "E001", 2, "U+0085 (NEL)"),
        ("project: x\x7f\n", "E001", 1, "U+007F"),
        ("project: x\n\n# \x9b\n", "E001", 3, "U+009B"),
        ("project: x\uffff\n", "E001", 1, "U+FFFF"),
        ("project: x\ufeff\n", "E104", 1, "'x\\ufeff'"),
        ("", "E103", 1, "empty"),
        ("# nothing but a comment\n", "E103", 1, "empty"),
        ("~\n", "E103", 1, "must be a mapping"),
        ("---\n", "E103", 1, "must be a mapping"),
    ],
    ids=[
        "alias-bomb",
        "deep",
        "self-alias",
        "control",
        "line-separator",
        "nel",
        "del",
        "c1",
        "uffff",
        "bom-inside",
        "empty",
        "comment",
        "null",
        "dashes",
    ],
)
def test_hostile_document_is_one_positioned_diagnostic(
    tmp_path: Path, text: str, code: str, line: int | None, words: str
) -> None:
    d = _only(tmp_path, text)
    assert d.code == code
    assert words in d.message
    assert d.span is not None
    if line is not None:
        assert d.span.line == line
    assert d.hint


def test_a_leading_byte_order_mark_is_allowed(tmp_path: Path) -> None:
    result = _load(tmp_path, "\ufeffproject: x\n")
    assert result.spec is not None, result.diagnostics


NUMBERS = """\
project: x
profiles:
  local:
    prefect: {port: true}
datasets:
  a:
    path: a.csv
    schema: {id: int, v: float}
    expectations: [{between: {column: v, min: .nan, max: .inf}}]
models:
  m:
    task: regression
    dataset: a
    target: v
    features: [id]
    estimator: {class: sklearn.linear_model.Ridge}
    search: {strategy: random, space: {alpha: {uniform: [0.1, .inf]}}}
services:
  api:
    model: m
    timeout: 0s
    rate_limit: "200/0 seconds"
    auth: {api_keys: {app: {key: "${secret:k}", rate_limit: "\u0661\u0660/second"}}}
"""


def test_numbers_are_finite_digits_and_never_booleans(tmp_path: Path) -> None:
    result = _load(tmp_path, NUMBERS)
    found = {
        (d.span.line if d.span else 0, d.message.split(": ", 1)[1]) for d in result.diagnostics
    }
    assert found == {
        (4, "true is a boolean, not a number"),
        (9, "must be a finite number, not .inf or .nan"),
        (17, "uniform bounds must be two finite numbers [lo, hi]"),
        (21, "a request timeout of 0s fails every request"),
        (22, "'200/0 seconds' has a period of zero"),
        (23, "'\u0661\u0660/second' is not a rate"),
    }, result.diagnostics


def test_yaml_1_1_words_stay_words(tmp_path: Path) -> None:
    """`on`, `off`, `yes`, `no` are strings (YAML 1.2), so an enum value `on` is not `true`."""
    result = _load(tmp_path, "project: no\n")
    assert result.spec is not None, result.diagnostics
    assert result.spec.project == "no"


def test_category_words_stay_as_written(tmp_path: Path) -> None:
    """`{category: [no, yes]}` is the words no and yes, not [False, True] (issue: every row then
    failed at run time although validate said ok)."""
    text = (
        "project: x\ndatasets:\n  a:\n    path: a.csv\n"
        "    schema: {id: int, answer: {category: [no, yes, on, off, y, n]}, flag: bool}\n"
        "    expectations: [{in_set: {column: answer, values: [no, yes]}}]\n"
    )
    result = _load(tmp_path, text)
    assert result.spec is not None, result.diagnostics
    columns = result.spec.datasets["a"].columns
    assert columns["answer"].category == ["no", "yes", "on", "off", "y", "n"]  # type: ignore[union-attr]


def test_durations_past_a_century_are_refused(tmp_path: Path) -> None:
    text = (
        "project: x\ndatasets:\n  a:\n    path: a.csv\n    timestamp: ts\n"
        "    schema: {id: int, v: float, ts: datetime}\n"
        "features:\n  entities: {e: {join_key: id}}\n"
        "  views: {v1: {entity: e, source: a, features: [v], ttl: 99999999d}}\n"
    )
    d = _only(tmp_path, text)
    assert d.message.endswith("'99999999d' is longer than a century")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("${HOME", "unclosed '${'"),
        ("${A:-${B}}", "a reference inside a reference '${A:-${B}'"),
    ],
)
def test_broken_references_are_e012(tmp_path: Path, value: str, message: str) -> None:
    d = _only(tmp_path, f'project: x\ndatasets: {{a: {{path: "{value}", schema: {{id: int}}}}}}\n')
    assert (d.code, d.message) == ("E012", message)
    assert d.span is not None and d.span.line == 2


def test_many_errors_render_each_once(tmp_path: Path) -> None:
    """A file with thousands of mistakes reports each one (the rendering is near-linear)."""
    body = "".join(f"  d{i}: {{path: a.csv, schema: {{id: intt}}}}\n" for i in range(2000))
    text = "project: x\ndatasets:\n" + body
    result = _load(tmp_path, text)
    assert len(result.diagnostics) == 2000
    rendered = render_text(result.diagnostics, {str(tmp_path / "pipelines.yaml"): text})
    assert rendered.count("invalid value 'intt'") == 2000


def test_a_very_long_line_is_shown_around_the_error(tmp_path: Path) -> None:
    text = "project: x\nunknown: " + "a" * 100_000 + "\n"
    result = _load(tmp_path, text)
    assert result.diagnostics
    rendered = render_text(result.diagnostics, {str(tmp_path / "pipelines.yaml"): text})
    assert max(len(line) for line in rendered.splitlines()) < 400


@pytest.mark.parametrize("quote", ['"', "'"])
def test_a_quote_left_open_is_reported_where_it_opens(tmp_path: Path, quote: str) -> None:
    text = (
        f"project: x\ndatasets:\n  a:\n    path: {quote}a.csv\n    schema: {{id: int}}\n"
        f"  b:\n    path: {quote}b.csv{quote}\n    schema: {{id: int}}\n"
    )
    d = _only(tmp_path, text)
    assert d.span is not None and (d.span.line, d.span.col) == (4, 11)
    assert d.message == (
        f"invalid YAML: the {quote} opened on line 4 is not closed on that line, "
        "so the string runs on to line 7"
    )
