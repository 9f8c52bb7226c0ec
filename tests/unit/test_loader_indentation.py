"""Blocks indented too little: one E106 naming the lines to indent, and no error that follows
from the misplaced lines."""

from __future__ import annotations

from pathlib import Path

from shipyard.loader import load_spec

DATASET = """\
  t:
    path: data/t.csv
    schema: {id: int, x: float, y: int}
    expectations: [{not_null: id}]
"""
MODEL = """\
  m:
    task: classification
    dataset: t
    target: y
    features: [x]
    estimator: {class: sklearn.linear_model.LogisticRegression}
"""


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "pipelines.yaml"
    path.write_text(text, encoding="utf-8")
    return load_spec(path, env={})


def _errors(tmp_path: Path, text: str) -> list[tuple[int, str, str]]:
    result = _load(tmp_path, text)
    return [
        (d.span.line if d.span else 0, d.message, d.hint) for d in result.diagnostics if d.is_error
    ]


def _dedent(block: str, lines: slice) -> str:
    rows = block.splitlines(keepends=True)
    return "".join(r[2:] if i in range(len(rows))[lines] else r for i, r in enumerate(rows))


def test_fields_of_a_dataset_written_at_its_level(tmp_path: Path) -> None:
    text = "project: p\ndatasets:\n" + _dedent(DATASET, slice(1, 4)) + "models:\n" + MODEL
    assert _errors(tmp_path, text) == [
        (
            4,
            "`path`, `schema` and `expectations` are indented too little: they are keys of "
            "dataset 't' on line 3",
            "indent lines 4-6 by 2 more spaces",
        )
    ]


def test_fields_of_a_model_after_some_indented_right(tmp_path: Path) -> None:
    text = "project: p\ndatasets:\n" + DATASET + "models:\n" + _dedent(MODEL, slice(3, 6))
    (error,) = _errors(tmp_path, text)
    assert error == (
        11,
        "`target`, `features` and `estimator` are indented too little: they are keys of "
        "model 'm' on line 8",
        "indent lines 11-13 by 2 more spaces",
    )
    result = _load(tmp_path, text)
    assert result.partial is not None and result.partial.models["m"].target == "y"


def test_an_entry_written_at_the_top_level(tmp_path: Path) -> None:
    model = "".join(line[2:] for line in MODEL.splitlines(keepends=True))
    text = "project: p\ndatasets:\n" + DATASET + "models:\n" + model
    assert _errors(tmp_path, text) == [
        (
            8,
            "`m` is indented too little: it is an entry of `models:` on line 7",
            "indent lines 8-13 by 2 more spaces",
        )
    ]


def test_a_field_of_a_nested_mapping_left_empty(tmp_path: Path) -> None:
    service = "services:\n  api:\n    model: m\n    batching:\n    max_batch_size: 10\n"
    text = "project: p\ndatasets:\n" + DATASET + "models:\n" + MODEL + service
    assert _errors(tmp_path, text) == [
        (
            18,
            "`max_batch_size` is indented too little: it is a key of `batching:` on line 17",
            "indent line 18 by 2 more spaces",
        )
    ]


def test_an_entry_named_like_a_field_is_left_alone(tmp_path: Path) -> None:
    """A dataset may be called `path`: it is one if it is a valid dataset by itself."""
    text = "project: p\ndatasets:\n" + DATASET + DATASET.replace("  t:", "  path:")
    result = _load(tmp_path, text)
    assert result.spec is not None, result.diagnostics
    assert set(result.spec.datasets) == {"t", "path"}
