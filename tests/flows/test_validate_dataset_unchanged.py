"""validate-dataset does not validate a file again that is a version which passed the same rules."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from support import SPEC, compile_spec, free_port, run_flow, task_names

from shipyard.compiler import DatasetStep, Plan
from shipyard.errors import DataValidationFailed

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _run(plan: Plan):  # type: ignore[no-untyped-def]
    from flows.validate_dataset import validate_dataset

    return run_flow(plan, validate_dataset, dataset="customers")


def _project(make_project: Callable[..., Path], spec: str | None = None) -> tuple[Plan, Path]:
    path = make_project(rows=300, spec=spec)
    return compile_spec(path), path.parent / "data" / "customers.parquet"


def _rewrite_plain(data: Path) -> pd.DataFrame:
    """The file again without compression or dictionaries: a changed value keeps its size."""
    frame = pd.read_parquet(data)
    frame.to_parquet(data, compression=None, use_dictionary=False, index=False)
    return frame


def test_a_touched_but_unchanged_file_is_not_validated_again(
    make_project: Callable[..., Path],
) -> None:
    plan, data = _project(make_project)
    first = _run(plan).result()
    assert first.validated_before is None
    again_state = _run(plan)
    again = again_state.result()
    assert again.validated_before is not None
    assert again.validated_before.startswith(
        f"unchanged, validated before as version {first.md5[:10]}"
    )
    assert (again.md5, again.rows, again.expectations) == (
        first.md5,
        first.rows,
        first.expectations,
    )
    assert again.new_version is False
    assert task_names(again_state.state_details.flow_run_id) == []  # neither validate nor version
    # touched: another mtime, the same bytes: hashed, recognised, still not validated
    stat = data.stat()
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 7_000_000_000))
    touched_state = _run(plan)
    touched = touched_state.result()
    assert touched.validated_before is not None and "re-hashed" in touched.validated_before
    assert touched.md5 == first.md5
    assert task_names(touched_state.state_details.flow_run_id) == []


def test_a_same_size_file_with_changed_content_is_validated_again(
    make_project: Callable[..., Path],
) -> None:
    plan, data = _project(make_project)
    frame = _rewrite_plain(data)
    first = _run(plan).result()
    size, mtime = data.stat().st_size, data.stat().st_mtime_ns
    frame.loc[frame.index[len(frame) // 2], "monthly_charges"] = 900.0  # over the rule's 500
    frame.to_parquet(data, compression=None, use_dictionary=False, index=False)
    os.utime(data, ns=(mtime, mtime + 3_000_000_000))
    assert data.stat().st_size == size  # the premise: only the content (and mtime) differ
    state = _run(plan)
    assert state.is_failed()
    with pytest.raises(DataValidationFailed, match="monthly_charges"):
        state.result()
    assert task_names(state.state_details.flow_run_id) == ["validate"]
    assert first.md5 is not None


def test_changed_expectations_validate_again(make_project: Callable[..., Path]) -> None:
    port = free_port()
    plan, _ = _project(make_project, SPEC.format(port=port))
    first = _run(plan).result()
    assert _run(plan).result().validated_before is not None
    stricter = SPEC.format(port=port).replace(
        "      - row_count: {min: 10}\n",
        "      - row_count: {min: 10}\n      - not_null: [region]\n",
    )
    spec = plan.runtime.project_dir
    (Path(spec) / "pipelines.yaml").write_text(stricter)
    changed = compile_spec(Path(spec) / "pipelines.yaml")
    step = changed.named(DatasetStep, "customers")
    assert len(step.expectations) > len(plan.named(DatasetStep, "customers").expectations)
    state = _run(changed)
    result = state.result()
    assert result.validated_before is None
    assert result.md5 == first.md5 and result.new_version is False
    assert task_names(state.state_details.flow_run_id) == ["validate", "version"]
    # and the stricter rules are now the ones it is known to pass
    assert _run(changed).result().validated_before is not None
