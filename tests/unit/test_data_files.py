"""Reading dataset files with the declared types: text stays text, dates are dates or an error."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from shipyard.compiler import DatasetStep
from shipyard.data.files import read_dataset
from shipyard.errors import ShipyardError


def _step(path: str) -> DatasetStep:
    return DatasetStep(
        id="dataset.accounts",
        name="accounts",
        description="accounts",
        tasks=("validate",),
        path=path,
        format="csv",
        columns={"id": "int", "zip": "str", "opened": "datetime"},
    )


def _read(tmp_path: Path, text: str) -> pd.DataFrame:
    (tmp_path / "a.csv").write_text(text)
    return read_dataset(_step("a.csv"), tmp_path / "a.csv")


def test_text_columns_keep_their_leading_zeros(tmp_path: Path) -> None:
    frame = _read(tmp_path, "id,zip,opened\n1,02139,2024-01-05\n2,,2024-01-06\n")
    assert frame["zip"].iloc[0] == "02139"
    assert pd.isna(frame["zip"].iloc[1])  # an empty field is still missing, not ''


def test_dates_in_mixed_formats_are_each_parsed(tmp_path: Path) -> None:
    frame = _read(
        tmp_path, "id,zip,opened\n1,a,2024-01-05\n2,b,03/04/2024\n3,c,2024-03-01T10:00:00Z\n4,d,\n"
    )
    assert str(frame["opened"].dtype) == "datetime64[ns, UTC]"
    assert frame["opened"].iloc[:3].notna().all() and pd.isna(frame["opened"].iloc[3])
    assert frame["opened"].iloc[1] == pd.Timestamp("2024-03-04", tz="UTC")


def test_values_that_are_no_dates_are_named_with_their_line(tmp_path: Path) -> None:
    with pytest.raises(ShipyardError) as caught:
        _read(tmp_path, "id,zip,opened\n1,a,2024-01-05\n2,b,yesterday\n3,c,soon\n4,d,soon\n")
    assert caught.value.message == (
        "column 'opened' of 'a.csv' has 3 value(s) that are not dates, e.g. 'yesterday', 'soon' "
        "(the first on line 3 of the file)"
    )
    assert "declare 'opened' as `str`" in (caught.value.hint or "")


def test_parquet_reads_as_pandas_does(tmp_path: Path) -> None:
    """Columns freed as they convert, yet the very frame pd.read_parquet gives: text ids keep
    their zeros, aware and naive datetimes, categories, nullable ints, missing values."""
    frame = pd.DataFrame(
        {
            "id": pd.array([1, None, 3], dtype="Int64"),
            "zip": ["02139", None, "00501"],
            "opened": pd.to_datetime(
                ["2024-01-05T00:00:00Z", None, "2024-03-01T10:00:00Z"], utc=True
            ),
            "seen": pd.to_datetime(["2024-01-05", "2024-01-06", None]),
            "plan": pd.Categorical(["basic", "pro", None]),
            "charge": [1.5, float("nan"), 3.0],
            "churned": [True, False, True],
        }
    )
    frame.to_parquet(tmp_path / "a.parquet", index=False)
    step = _step("a.parquet").model_copy(update={"format": "parquet"})
    read = read_dataset(step, tmp_path / "a.parquet")
    expected = pd.read_parquet(tmp_path / "a.parquet")
    pd.testing.assert_frame_equal(read, expected)
    assert read["zip"].iloc[0] == "02139"
    assert read.dtypes.astype(str).tolist() == expected.dtypes.astype(str).tolist()


def test_rows_wider_than_the_header_are_refused_not_shifted(tmp_path: Path) -> None:
    """scikit-learn's wine_data.csv: a first line of counts and class names, 14 fields a row.
    pandas would take the first fields for an index and shift every column by them."""
    with pytest.raises(ShipyardError, match=r"more fields than its header line names \(3: id,"):
        _read(tmp_path, "id,zip,opened\n1,02139,2024-01-05,extra\n")
    frame = _read(tmp_path, "id,zip,opened\n1,02139\n")  # a short row: its last field missing
    assert frame["zip"].iloc[0] == "02139" and pd.isna(frame["opened"].iloc[0])
