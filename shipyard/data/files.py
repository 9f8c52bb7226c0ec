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
    return Path(runtime.project_dir) / step.path


def read_dataset(step: DatasetStep, path: Path) -> pd.DataFrame:
    """Read the dataset's file; a missing or unreadable file is a ShipyardError naming the fix."""
    import pandas as pd

    if not path.exists():
        raise ShipyardError(
            f"file '{step.path}' not found (looked in {path.parent})",
            hint="create the file, fix `path:` in pipelines.yaml, or restore a version with "
            f"`shipyard data restore {step.name} <version>`",
            resource=step.id,
        )
    dates = [c for c, t in step.columns.items() if t in ("datetime", "date")]
    try:
        if step.format == "parquet":
            return pd.read_parquet(path)
        if step.format == "csv":
            frame = pd.read_csv(path)
            for column in dates:
                if column in frame:
                    frame[column] = pd.to_datetime(frame[column], errors="coerce", utc=True)
            return frame
        return pd.read_json(path, lines=step.format == "jsonl", convert_dates=dates)
    except (OSError, ValueError) as exc:
        raise ShipyardError(
            f"cannot read '{step.path}' as {step.format}: {exc}",
            hint="check the file is not truncated, or set `format:` to its real format",
            resource=step.id,
        ) from exc
