"""What a data file holds: column types, nulls, ranges and uniqueness, and the dataset, target and
model a starter spec proposes from them. pandas is imported inside the functions that read."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.diagnostics import did_you_mean
from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    import pandas as pd

READABLE = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
MAX_CATEGORIES = 20
"""A text column with at most this many distinct values (each seen several times) is a category."""
MIN_ROWS_PER_CATEGORY = 5
MAX_CLASSES = 10
"""An int target with at most this many distinct values is a class label, not a quantity."""
MARGIN = 0.1
"""`between` bounds lie this fraction of the observed range beyond the observed min and max."""
TARGET_NAMES = (
    "target",
    "label",
    "labels",
    "class",
    "y",
    "outcome",
    "churn",
    "churned",
    "survived",
    "fraud",
    "is_fraud",
    "default",
    "converted",
    "malignant",
    "response",
)
_TRUE_FALSE = {"true", "false"}
_INTEGER = re.compile(r"^[+-]?\d+$")
_LEADING_ZERO = re.compile(r"^[+-]?0\d")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+$"
_ID_NAME = re.compile(r"(^|[_\-\s])id$|[a-z]Id$", re.IGNORECASE)


@dataclass(frozen=True)
class ColumnProfile:
    """One column as the data shows it."""

    name: str
    type: str
    """int, float, str, bool or datetime; a category has type str and its `categories`."""
    categories: tuple[str, ...] | None = None
    nulls: int = 0
    distinct: int = 0
    minimum: float | None = None
    maximum: float | None = None
    email_like: bool = False

    @property
    def numeric(self) -> bool:
        return self.type in ("int", "float")

    @property
    def free_text(self) -> bool:
        return self.type == "str" and self.categories is None

    @property
    def id_like(self) -> bool:
        return bool(_ID_NAME.search(self.name))


@dataclass(frozen=True)
class DataProfile:
    """A data file's rows and columns, in file order."""

    rows: int
    columns: list[ColumnProfile] = field(default_factory=list)
    unique_pairs: list[tuple[str, str]] = field(default_factory=list)
    """(identifier, date) column pairs without nulls whose combination is unique: a row per
    entity and time, e.g. monthly snapshots of each customer."""

    def column(self, name: str) -> ColumnProfile:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def unique(self, column: ColumnProfile) -> bool:
        return self.rows >= 2 and column.nulls == 0 and column.distinct == self.rows


def read_data(path: Path, shown: str) -> pd.DataFrame:
    """The file as a frame, CSV columns as text (their types are inferred, not guessed by pandas:
    an id such as 00123 keeps its leading zeros). Every failure names the file and the fix."""
    import pandas as pd

    fmt = READABLE.get(path.suffix.lower())
    if fmt is None:
        raise ShipyardError(
            f"cannot infer a dataset from '{shown}': '{path.suffix or '(no suffix)'}' is not a "
            "format `shipyard init` reads",
            hint="give a .csv or .parquet file (convert other formats with pandas first)",
        )
    if not path.is_file():
        raise ShipyardError(
            f"data file '{shown}' not found" + (" (it is a folder)" if path.is_dir() else ""),
            hint="give the path of a CSV or Parquet file, e.g. `shipyard init data/train.csv`",
        )
    try:
        header = _header(path, shown) if fmt == "csv" else None
        frame = pd.read_csv(path, dtype=str) if fmt == "csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame()
    except UnicodeDecodeError as exc:
        raise ShipyardError(
            f"cannot read '{shown}' as csv: it is not UTF-8 text (byte {exc.object[exc.start]:#04x}"
            f" at offset {exc.start})",
            hint="give a CSV file saved as UTF-8 (a binary file or a spreadsheet renamed .csv "
            "is not one; re-save it, e.g. with pandas: "
            "pd.read_csv(f, encoding=...).to_csv(f, index=False))",
        ) from exc
    except (OSError, ValueError) as exc:
        raise ShipyardError(
            f"cannot read '{shown}' as {fmt}: {str(exc).strip()}",
            hint=f"check that the file is a complete {fmt} file (not truncated, not another "
            "format with this suffix)",
        ) from exc
    if frame.empty:
        what = "no columns" if len(frame.columns) == 0 else "a header but no rows"
        raise ShipyardError(
            f"data file '{shown}' has {what}: there is nothing to infer a schema from",
            hint="give a file with a header line and at least a few rows of data",
        )
    if header is not None:
        _check_header(header, frame, shown)
    return frame


_SKLEARN = (
    " (scikit-learn's own CSV files start with a line of counts and class names: write the data"
    " with load_*(as_frame=True).frame.to_csv(f, index=False) instead)"
)
_CONVERT = "rewrite it with pandas: pd.read_csv(f, {}).to_csv(f, index=False)"


def _header(path: Path, shown: str) -> list[str] | None:
    """The CSV file's first line as the cells it holds, read as Shipyard reads it (UTF-8,
    comma-separated); None for an empty file. A comment line, or a line that another separator
    splits, is refused here: Shipyard reads comma-separated files only (no `sep:` in the spec)."""
    import csv

    with path.open(encoding="utf-8-sig", newline="") as text:
        first = next(csv.reader(text), None)
    if first is None or not any(cell.strip() for cell in first):
        return None
    if first[0].lstrip().startswith("#"):
        raise ShipyardError(
            f"the first line of '{shown}' is a comment ({_cut(','.join(first))}), not a "
            "header of column names",
            hint="delete the comment lines at the top of the file (Shipyard reads the first "
            "line as the column names), or " + _CONVERT.format("comment='#'"),
        )
    if len(first) == 1:
        for sep, called, shown_sep in (
            (";", "semicolons", ";"),
            ("\t", "tabs", "\\t"),
            ("|", "'|'", "|"),
        ):
            if sep in first[0]:
                raise ShipyardError(
                    f"'{shown}' is separated by {called}, not commas: its header line "
                    f"{_cut(first[0])} would be one column",
                    hint="Shipyard reads comma-separated files: "
                    + _CONVERT.format(f"sep='{shown_sep}'"),
                )
    return first


def _check_header(header: list[str], frame: pd.DataFrame, shown: str) -> None:
    """Refuse a first line that is not one distinct name per column: pandas would turn it into
    columns named "150", "Unnamed: 2" or "a.1", or drop fields into the index, and the spec
    would describe a file that is not there."""
    names = [cell.strip() for cell in header]
    if frame.index.nlevels > 1:
        # one unnamed leading field is row names (as R writes them) and reads back the same
        fields = len(names) + frame.index.nlevels
        raise ShipyardError(
            f"the rows of '{shown}' have {fields} fields but its first line names "
            f"{len(names)} ({_cut(', '.join(names))}): it is not a header of column names",
            hint="make the first line one name per field" + _SKLEARN,
        )
    empty = [i + 1 for i, name in enumerate(names) if not name]
    if empty:
        raise ShipyardError(
            f"column {', '.join(map(str, empty))} of '{shown}' has no name in its header line",
            hint="name every column in the first line; for a pandas index written along (the "
            "usual unnamed first column), " + _CONVERT.format("index_col=0"),
        )
    twice = [name for name, count in Counter(names).items() if count > 1]
    if twice:
        raise ShipyardError(
            f"the header line of '{shown}' names {', '.join(map(repr, twice))} more than once",
            hint="give every column its own name in the first line",
        )
    numeric = _numbers(names)
    if len(numeric) == len(names):
        raise ShipyardError(
            f"the first line of '{shown}' holds only numbers ({_cut(', '.join(names))}): it "
            "looks like data, not a header of column names",
            hint="add a first line with one name per column",
        )
    if numeric and numeric == list(range(len(numeric))):
        raise ShipyardError(
            f"the first line of '{shown}' starts with numbers "
            f"({', '.join(names[i] for i in numeric)}) before names: it looks like a line of "
            "counts, not a header of column names",
            hint="make the first line one name per column" + _SKLEARN,
        )


def _numbers(names: list[str]) -> list[int]:
    """The positions of the header cells that are numbers."""
    return [i for i, name in enumerate(names) if _NUMBER.match(name)]


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _cut(text: str, width: int = 60) -> str:
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def profile_frame(frame: pd.DataFrame) -> DataProfile:
    """Each column's type and statistics. Text columns (all of a CSV's) are typed by what every
    present value parses as: true/false -> bool, whole numbers -> int (unless one has a leading
    zero: an identifier), numbers -> float, ISO dates -> datetime, else text; text with few
    distinct values, each seen several times, is a category."""
    columns = [_profile(str(name), frame[name]) for name in frame.columns]
    pairs = [
        (entity.name, time.name)
        for entity in columns
        if entity.id_like and entity.type in ("int", "str") and entity.nulls == 0
        for time in columns
        if time.type == "datetime"
        and time.nulls == 0
        and not frame.duplicated(subset=[entity.name, time.name]).any()
    ]
    return DataProfile(rows=len(frame), columns=columns, unique_pairs=pairs)


def _profile(name: str, series: pd.Series) -> ColumnProfile:
    import pandas as pd

    present = series.dropna()
    nulls = int(series.isna().sum())
    kind, values = _typed(present)
    distinct = int(values.nunique())
    if kind in ("int", "float"):
        numbers = values.astype(float)
        low = float(numbers.min()) if len(numbers) else None
        high = float(numbers.max()) if len(numbers) else None
        return ColumnProfile(name, kind, None, nulls, distinct, low, high)
    if kind != "str":
        return ColumnProfile(name, kind, None, nulls, distinct)
    text = values.astype(str)
    few = 0 < distinct <= MAX_CATEGORIES and distinct * MIN_ROWS_PER_CATEGORY <= len(text)
    categories = tuple(sorted(pd.unique(text))) if few else None
    email = len(text) > 0 and bool(text.map(lambda v: bool(_EMAIL.match(v))).all())
    return ColumnProfile(name, "str", categories, nulls, distinct, email_like=email)


def _typed(present: pd.Series) -> tuple[str, pd.Series]:
    """The column's type and its present values converted to it."""
    import pandas as pd
    from pandas.api import types

    if types.is_bool_dtype(present):
        return "bool", present
    if types.is_integer_dtype(present):
        return "int", present
    if types.is_float_dtype(present):
        return "float", present
    if types.is_datetime64_any_dtype(present):
        return "datetime", present
    if len(present) == 0:
        return "str", present
    text = present.astype(str).str.strip()
    if set(text.str.lower().unique()) <= _TRUE_FALSE:
        return "bool", text.str.lower() == "true"
    numbers = pd.to_numeric(text, errors="coerce")
    if not numbers.isna().any() and not text.str.match(_LEADING_ZERO).any():
        whole = bool(text.str.match(_INTEGER).all())
        return ("int" if whole else "float"), numbers
    if text.str.contains(r"\d", regex=True).all() and text.str.contains(r"[-/:]").all():
        try:
            return "datetime", pd.to_datetime(text, format="ISO8601", utc=True)
        except (ValueError, TypeError):
            pass
    return "str", text


# -- proposals --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    """One expectation for the spec, with why it was proposed."""

    kind: str
    args: Any
    why: str


def key_columns(profile: DataProfile) -> list[str]:
    """The entity key: the first column named like an identifier whose values are all present
    and distinct, else the first identifier that is unique together with a date; or none."""
    for column in profile.columns:
        if column.id_like and column.type in ("int", "str") and profile.unique(column):
            return [column.name]
    if profile.unique_pairs:
        return list(profile.unique_pairs[0])
    return []


def propose_expectations(profile: DataProfile, key: list[str]) -> list[Proposal]:
    """Rules the data passes today and a broken export would likely fail (the key's own rules,
    unique and not null, come with `key:`)."""
    proposals: list[Proposal] = []
    complete = [c.name for c in profile.columns if c.nulls == 0 and c.name not in key]
    if complete:
        proposals.append(
            Proposal("not_null", complete, "no value is missing in these columns today")
        )
    for column in profile.columns:
        if column.id_like:
            continue  # a range of identifiers says nothing about the data
        if column.numeric and column.minimum is not None and column.maximum is not None:
            low, high = bounds(column.minimum, column.maximum, column.type == "int")
            proposals.append(
                Proposal(
                    "between",
                    {"column": column.name, "min": low, "max": high},
                    f"seen {_number(column.minimum)}..{_number(column.maximum)}",
                )
            )
    for column in profile.columns:
        if column.name in key or not profile.unique(column):
            continue
        if column.id_like or column.free_text:
            proposals.append(Proposal("unique", [column.name], "every value is distinct today"))
    for column in profile.columns:
        if column.email_like:
            proposals.append(
                Proposal(
                    "regex",
                    {"column": column.name, "pattern": EMAIL_PATTERN},
                    "every value looks like an e-mail address",
                )
            )
    floor = max(1, profile.rows // 2)
    proposals.append(
        Proposal(
            "row_count",
            {"min": floor},
            f"this file has {profile.rows} rows; one with fewer than half as many is more "
            "likely a broken export than new data",
        )
    )
    return proposals


def bounds(low: float, high: float, whole: bool) -> tuple[float | int, float | int]:
    """[low, high] widened by MARGIN of the range (at least 1 step), rounded outwards to a
    round step; a column that is never negative keeps a floor of 0 at most."""
    span = high - low
    margin = span * MARGIN if span > 0 else max(abs(high) * MARGIN, 1.0)
    exponent = math.floor(math.log10(margin))
    step = 10.0**exponent
    digits = max(0, -exponent)
    lower = round(math.floor((low - margin) / step) * step, digits)
    upper = round(math.ceil((high + margin) / step) * step, digits)
    if low >= 0:
        lower = max(lower, 0.0)
    if whole:
        return math.floor(lower), math.ceil(upper)
    return lower, upper


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else f"{value:.6g}"


def suggested_target(profile: DataProfile) -> str | None:
    """A column whose name says it is the label (only ever offered as a suggestion)."""
    for column in profile.columns:
        lowered = column.name.lower()
        if lowered in TARGET_NAMES or lowered.endswith(("_label", "_target")):
            return column.name
    return None


def check_target(profile: DataProfile, target: str) -> ColumnProfile:
    """The target's column, or an error naming the columns there are."""
    try:
        column = profile.column(target)
    except KeyError:
        raise ShipyardError(
            f"--target '{target}' is not a column of the data file",
            hint=did_you_mean(target, profile.names) or f"its columns: {', '.join(profile.names)}",
        ) from None
    if column.type == "datetime":
        raise ShipyardError(
            f"--target '{target}' holds dates: Shipyard predicts a class or a number",
            hint="pick a label column, or derive one from the dates first",
        )
    if column.free_text:
        raise ShipyardError(
            f"--target '{target}' is text with {column.distinct} distinct values: neither a "
            "few classes nor a number",
            hint="pick a label column (a few classes) or a numeric one",
        )
    if column.distinct < 2:
        raise ShipyardError(
            f"--target '{target}' has fewer than two distinct values: there is nothing to learn",
            hint="pick a column whose value varies from row to row",
        )
    return column


def task_for(target: ColumnProfile) -> str:
    """classification for bool, category and int labels with few values; else regression."""
    if target.type == "float" or (target.type == "int" and target.distinct > MAX_CLASSES):
        return "regression"
    return "classification"


def positive_class(target: ColumnProfile) -> str | None:
    """The class a binary classifier detects, where Shipyard has no default (E509): not a bool,
    not 0/1. The later of the two in sorted order stands in (yes over no, true over false);
    the spec's comment asks the user to check it."""
    if target.categories is None or len(target.categories) != 2:
        return None
    return target.categories[-1]


def features_for(
    profile: DataProfile, target: str, key: list[str]
) -> tuple[list[str], dict[str, str]]:
    """The model's input columns, and the columns left out with why."""
    used: list[str] = []
    left_out: dict[str, str] = {}
    for column in profile.columns:
        if column.name == target:
            continue
        if column.name in key and column.type != "datetime":
            left_out[column.name] = "the key"
        elif column.type == "datetime":
            left_out[column.name] = "dates (E507: derive numbers from them first)"
        elif column.id_like and column.type in ("str", "int"):
            left_out[column.name] = "identifiers"
        elif column.free_text:
            left_out[column.name] = "free text"
        else:
            used.append(column.name)
    return used, left_out
