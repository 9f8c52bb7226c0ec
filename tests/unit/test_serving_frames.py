"""The model's input frame: the numpy fast path gives the frame `from_records` would."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from shipyard.serving.config import ModelInput
from shipyard.serving.models import FrameBuilder


def _inputs(**types: str) -> list[ModelInput]:
    return [ModelInput(name=name, type=kind) for name, kind in types.items()]


def test_all_float_rows_take_the_numpy_path_and_match_from_records() -> None:
    build = FrameBuilder(_inputs(b="float", a="float", c="float"))
    assert build.values is not None
    rows = [{"a": 1.5, "b": 2.0, "c": -3.25}, {"c": 0.0, "a": 4.0, "b": 1e9}]
    frame = build(rows)
    assert list(frame.columns) == ["b", "a", "c"]  # signature order, not row order
    pd.testing.assert_frame_equal(frame, pd.DataFrame.from_records(rows, columns=["b", "a", "c"]))


def test_a_missing_float_is_nan() -> None:
    frame = FrameBuilder(_inputs(a="float", b="float"))([{"a": None, "b": 1.0}])
    assert math.isnan(frame.loc[0, "a"]) and frame.loc[0, "b"] == 1.0


@pytest.mark.parametrize(
    ("types", "rows"),
    [
        ({"plan": "str", "x": "float"}, [{"plan": "pro", "x": 1.0}]),
        ({"n": "int", "m": "int"}, [{"n": 1, "m": None}, {"n": 2, "m": 3}]),
        ({"x": "float"}, [{"x": 2.5}]),
    ],
    ids=["mixed", "int-with-null", "one-column"],
)
def test_other_signatures_build_what_from_records_builds(
    types: dict[str, str], rows: list[dict[str, object]]
) -> None:
    build = FrameBuilder(_inputs(**types))
    assert build.values is None
    expected = pd.DataFrame.from_records(rows, columns=list(types))
    pd.testing.assert_frame_equal(build(rows), expected)


def test_a_value_numpy_cannot_read_falls_back() -> None:
    rows = [{"a": 1.0, "b": {"nested": 1}}]
    frame = FrameBuilder(_inputs(a="float", b="float"))(rows)
    assert frame.loc[0, "b"] == {"nested": 1}
