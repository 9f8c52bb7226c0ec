"""Parquet copies of feature-view sources: Feast's file store reads parquet with an event time.

A view over a CSV or JSON dataset, and a static view (its dataset has no timestamp), read a copy
of the dataset in the Feast repository's `sources/` folder instead of the dataset file. The copy
keeps the columns the view reads, typed as the schema declares them, plus a constant event time
for a static view. It is written at run time, where Feast is applied, atomically, and again only
when the dataset file or what the view reads of it changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.compiler import DatasetStep
from shipyard.compiler.features import STATIC_EVENT_TIME, FeatureViewPlan
from shipyard.compiler.plan import digest
from shipyard.data.files import read_dataset
from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("shipyard.features.sources")

STATIC_EVENT_AT = datetime(1970, 1, 1, tzinfo=UTC)
"""The event time of every row of a static view, and of label rows that have none: the epoch,
so any label row comes after it. (Feast's Redis store compares a row's event time with the one
stored and skips a row that is not newer, unless the stored time is the epoch: a static view's
changed rows are written again on every materialization.)"""

COPY_FORMAT = 1
"""Bump when the way copies are made changes, so existing copies are written again."""


def prepare_sources(views: Iterable[FeatureViewPlan]) -> list[str]:
    """Write or refresh the copy of each view that reads one; the views whose copy was written."""
    return [view.name for view in views if view.copied and refresh_copy(view)]


def refresh_copy(view: FeatureViewPlan) -> bool:
    """Write the view's parquet copy unless it is up to date; True when it was written.

    Up to date: the dataset file has the size and modification time recorded beside the copy,
    or the same md5 (a file touched, not changed), and the view reads it the same way.
    """
    source, target = Path(view.source_path), Path(view.offline_path)
    stamp_path = target.with_name(target.name + ".json")
    recorded = _read_stamp(stamp_path)
    how = _how_copied(view)
    # the file's size and time are taken before its content: a file that changes meanwhile
    # differs from the stamp next time, and is compared by md5 again
    stat = source.stat() if source.is_file() else None
    if stat is not None and target.is_file() and recorded.get("how") == how:
        if (recorded.get("size"), recorded.get("mtime_ns")) == (stat.st_size, stat.st_mtime_ns):
            return False
        if recorded.get("md5") == _md5(source):
            _write_stamp(stamp_path, view, stat, recorded["md5"], how)
            return False
    md5 = _md5(source) if stat is not None else ""
    frame = source_frame(view)  # a missing file: read_dataset's error, naming the fix
    stat = stat or source.stat()  # the file appeared meanwhile; its md5 is unknown ("")
    _replace(target, lambda tmp: frame.to_parquet(tmp, index=False))
    _write_stamp(stamp_path, view, stat, md5, how)
    log.info("feature_view.%s: wrote %d rows of %s to %s", view.name, len(frame), source, target)
    return True


def source_frame(view: FeatureViewPlan) -> pd.DataFrame:
    """The rows Feast reads for the view: its columns typed as declared, one row per entity and
    a constant event time when the view is static."""
    import pandas as pd

    source = Path(view.source_path)
    frame = read_dataset(_dataset_step(view), source)
    missing = [c for c in view.source_columns if c not in frame.columns]
    if missing:
        raise ShipyardError(
            f"feature view '{view.name}': {', '.join(map(repr, missing))} "
            f"{'is' if len(missing) == 1 else 'are'} not in {source}; the file has: "
            f"{', '.join(map(str, frame.columns))}",
            hint=f"fix the file or the schema of dataset '{view.source_dataset}'; "
            f"`shipyard run validate-dataset {view.source_dataset}` checks it",
            resource=f"feature_view.{view.name}",
        )
    frame = pd.DataFrame({c: _typed(view, c, frame[c]) for c in view.source_columns})
    if view.static:
        _ensure_one_row_per_entity(view, frame)
        frame[STATIC_EVENT_TIME] = pd.Timestamp(STATIC_EVENT_AT)
    return frame


def _dataset_step(view: FeatureViewPlan) -> DatasetStep:
    """What `read_dataset` reads the view's dataset by: its format and the declared types."""
    return DatasetStep(
        id=f"dataset.{view.source_dataset}",
        name=view.source_dataset,
        description=f"The source of feature view '{view.name}'.",
        tasks=(),
        path=view.source_path,
        format=view.source_format,
        columns=view.source_columns,
    )


def _typed(view: FeatureViewPlan, column: str, values: pd.Series) -> Any:
    """The column as Feast is told it is: CSV and JSON leave types to pandas' guesses (a code
    of digits read as a number, booleans with gaps as objects). The join key has its entity's
    value type; categories are strings, as Feast serves them online, so training sees what
    serving will."""
    import pandas as pd

    declared = view.source_columns[column]
    if column == view.join_key:
        kind = "str" if view.join_key_type == "STRING" else "int"
    else:
        kind = "str" if isinstance(declared, list) else str(declared)
    # nullable types only where there are gaps: a join key typed as the label rows' keys are
    dtypes = {"str": "string", "int": "int64", "float": "float64", "bool": "bool"}
    if values.isna().any():
        dtypes.update(int="Int64", bool="boolean")
    try:
        if kind in ("datetime", "date"):
            return pd.to_datetime(values, utc=True)
        if kind == "int":  # through the nullable type, which refuses 1.5 rather than cut it to 1
            return values.astype("Int64").astype(dtypes[kind])
        if kind == "bool" and not _booleans(values):
            # astype(bool) would read any text, 'no' too, as True
            raise ValueError("its values are not all true or false")
        return values.astype(dtypes[kind])
    except (TypeError, ValueError) as exc:
        raise ShipyardError(
            f"feature view '{view.name}': column '{column}' of {view.source_path} is not "
            f"{kind}: {exc}",
            hint=f"`shipyard run validate-dataset {view.source_dataset}` shows the rows that do "
            "not match the schema",
            resource=f"feature_view.{view.name}",
        ) from exc


def _booleans(values: pd.Series) -> bool:
    """Every value is true, false (or 1, 0) or missing."""
    import pandas as pd

    present = values.dropna()
    if pd.api.types.is_bool_dtype(present):
        return True
    return bool(present.map(lambda v: pd.api.types.is_bool(v) or v in (0, 1)).all())


def _ensure_one_row_per_entity(view: FeatureViewPlan, frame: pd.DataFrame) -> None:
    """A static view holds one row per entity: with two, training and serving could pick
    different ones (they share one event time)."""
    keys = frame[view.join_key]
    repeated = keys[keys.duplicated()].unique()
    if len(repeated):
        sample = ", ".join(str(k) for k in repeated[:3])
        raise ShipyardError(
            f"static feature view '{view.name}': {len(repeated)} {view.join_key} value"
            f"{'s repeat' if len(repeated) > 1 else ' repeats'} in {view.source_path} "
            f"(e.g. {sample}); a static view holds one row per entity",
            hint=f"keep one row per {view.join_key} and declare `key: {view.join_key}` on dataset "
            f"'{view.source_dataset}' so validate-dataset checks it, or give the dataset a "
            "`timestamp:` to keep the rows as history",
            resource=f"feature_view.{view.name}",
        )


def _how_copied(view: FeatureViewPlan) -> str:
    """Changes when the copy of an unchanged file would differ."""
    return digest(
        {
            "copy_format": COPY_FORMAT,
            "format": view.source_format,
            "columns": view.source_columns,
            "join_key": view.join_key,
            "static": view.static,
        }
    )[:16]


def _md5(path: Path) -> str:
    md5 = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            md5.update(block)
    return md5.hexdigest()


def _read_stamp(path: Path) -> dict[str, Any]:
    try:
        stamp = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def _write_stamp(
    path: Path, view: FeatureViewPlan, stat: os.stat_result, md5: str, how: str
) -> None:
    """Record which file the copy was made from, beside the copy (after it: a crash in between
    leaves an old stamp, and the next run writes the copy again)."""
    stamp = {
        "source": view.source_path,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "md5": md5,
        "how": how,
    }
    _replace(path, lambda tmp: tmp.write_text(json.dumps(stamp, indent=2)))


def _replace(target: Path, write: Callable[[Path], object]) -> None:
    """Write `target` through a temporary file beside it: readers see the old file or the new
    one, never half of one (flows of one project may run at once)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # a name of its own (not mkstemp's file, which is private to its owner): the copy gets the
    # permissions any file written here gets
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(temporary)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
