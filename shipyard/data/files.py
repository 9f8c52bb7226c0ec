"""Reading dataset files into pandas with the column types the spec declares."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.compiler import DatasetStep
from shipyard.compiler.plan import RuntimeContext
from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    import pandas as pd


def dataset_file(runtime: RuntimeContext, step: DatasetStep) -> Path:
    """The dataset's file: its path is relative to the project folder."""
    if step.path is None:
        raise ShipyardError(
            f"dataset '{step.name}' is a SQL dataset: it has no file",
            hint="read it through shipyard.data.engines (read_frame), which knows its database",
            resource=step.id,
        )
    return Path(runtime.project_dir) / step.path


def require_file(step: DatasetStep, path: Path) -> None:
    """A missing dataset file is a ShipyardError naming the fix, whichever engine reads it."""
    if not path.exists():
        raise ShipyardError(
            f"file '{step.path}' not found (looked in {path.parent})",
            hint="create the file, fix `path:` in pipelines.yaml, or restore a version with "
            f"`shipyard data restore {step.name} <version>`",
            resource=step.id,
        )


def _read_csv(step: DatasetStep, path: Path, text: dict[str, type[str]]) -> pd.DataFrame:
    """The CSV file's rows under its header line. pandas takes the leading fields of rows
    wider than the header for an index, so every column would hold its neighbour's values:
    such a file is refused instead, naming the header and the fix."""
    import warnings

    import pandas as pd

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        frame = pd.read_csv(path, dtype=text, index_col=False)
    if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught):
        header = ", ".join(str(c) for c in frame.columns[:8])
        raise ShipyardError(
            f"rows of '{step.path}' have more fields than its header line names "
            f"({len(frame.columns)}: {header}{', ...' if len(frame.columns) > 8 else ''}): "
            "read as they are, every column would hold another column's values",
            hint="give the file a header line that names every field (a first line of counts "
            "or class names is no header), or remove the separator at the end of each row",
            resource=step.id,
        )
    return frame


def read_dataset(step: DatasetStep, path: Path) -> pd.DataFrame:
    """Read the dataset's file; a missing or unreadable file is a ShipyardError naming the fix."""
    import pandas as pd

    require_file(step, path)
    dates = [c for c, t in step.columns.items() if t in ("datetime", "date")]
    try:
        if step.format == "parquet":
            return _read_parquet(path)
        if step.format == "csv":
            # text columns stay text: an id such as 00123 keeps its leading zeros
            text = {c: str for c, t in step.columns.items() if t == "str"}
            frame = _read_csv(step, path, text)
            for column in dates:
                if column in frame:
                    frame[column] = _dates(frame[column], step, column)
            return frame
        return pd.read_json(path, lines=step.format == "jsonl", convert_dates=dates)
    except (OSError, ValueError) as exc:
        raise ShipyardError(
            f"cannot read '{step.path}' as {step.format}: {exc}",
            hint="check the file is not truncated, or set `format:` to its real format",
            resource=step.id,
        ) from exc


def _read_parquet(path: Path) -> pd.DataFrame:
    """The frame `pd.read_parquet` gives (same dtypes: pandas' own metadata in the file), with
    each Arrow column freed once it is converted: the file is in memory once, not twice."""
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pandas(split_blocks=True, self_destruct=True)


SHOWN_BAD_DATES = 5


def _dates(values: pd.Series, step: DatasetStep, column: str) -> pd.Series:
    """A CSV column of dates as UTC datetimes: ISO 8601 fast, else each value parsed on its own
    (a column that mixes formats); values that are no date at all are an error naming them,
    never silently empty."""
    import pandas as pd

    try:
        return pd.to_datetime(values, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        parsed = pd.to_datetime(values, utc=True, format="mixed", errors="coerce")
    bad = values[parsed.isna() & values.notna()]
    if len(bad):
        shown = ", ".join(repr(str(v)) for v in bad.unique()[:SHOWN_BAD_DATES])
        raise ShipyardError(
            f"column '{column}' of '{step.path}' has {len(bad)} value(s) that are not dates, "
            f"e.g. {shown} (the first on line {int(bad.index[0]) + 2} of the file)",
            hint="fix them in the file (ISO 8601, e.g. 2024-05-31 or 2024-05-31T12:00:00Z, is "
            f"safest), or declare '{column}' as `str` in the dataset's schema",
            resource=step.id,
        )
    return parsed
