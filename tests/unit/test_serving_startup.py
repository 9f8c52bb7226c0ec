"""How `shipyard serve` reads a starting service's log: progress lines and the first failure."""

from __future__ import annotations

import json
from pathlib import Path

from shipyard.serving.startup import StartWatch

BENTO = "/state/bentoml/bentos/churn-api/m1-abc"


def _json(**entry: object) -> str:
    return json.dumps({"time": "2026-01-01T00:00:00.000Z", "level": "info", **entry})


def _watch(tmp_path: Path, *lines: str, before: str = "old line\n") -> StartWatch:
    log = tmp_path / "service.log"
    log.write_text(before)
    watch = StartWatch(log, len(before), "churn-api", Path(BENTO))
    with log.open("a") as handle:
        handle.write("".join(line + "\n" for line in lines))
    return watch


def test_workers_stages_become_numbered_progress_lines(tmp_path: Path) -> None:
    watch = _watch(
        tmp_path,
        _json(logger="bentoml.serve", message="Starting BentoServer listening on x"),
        _json(logger="shipyard.serving.startup", message="starting", startup="starting", pid=41),
        _json(message="loading model m v3 (stable)", startup="loading model m v3 (stable)", pid=41),
        _json(message="starting", startup="starting", pid=42),
        _json(message="ready", startup="ready", pid=41, seconds=1.5),
    )
    lines = watch.poll()
    assert lines[0].startswith("bentoml serve is listening")
    assert lines[1:4] == [
        "worker 1: starting ...",
        "worker 1: loading model m v3 (stable) ...",
        "worker 2: starting ...",
    ]
    assert lines[4].startswith("worker 1 ready (")
    assert watch.waiting_for() == "worker 2: starting"
    assert watch.failure is None
    assert watch.poll() == []  # nothing new


def test_a_line_written_in_two_pieces_is_read_once_whole(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    log.write_text("")
    watch = StartWatch(log, 0, "churn-api")
    line = _json(message="starting", startup="starting", pid=7)
    log.write_text(line[:20])
    assert watch.poll() == []
    log.write_text(line + "\n")
    assert watch.poll() == ["worker 1: starting ..."]


def test_a_worker_init_error_is_its_exception_last_frames_and_the_fix(tmp_path: Path) -> None:
    trace = (
        "Traceback (most recent call last):\n"
        '  File "/x/factory.py", line 409, in __call__\n'
        "    instance = self.inner()\n"
        "               ^^^^^^^^^^^^\n"
        '  File "/x/models.py", line 80, in _load_model\n'
        "    return skops.io.load(model_file)\n"
        f"FileNotFoundError: [Errno 2] No such file or directory: '{BENTO}/src/models/stable/m'"
    )
    watch = _watch(
        tmp_path,
        _json(
            level="error", logger="bentoml.serve", message="Initializing service error", error=trace
        ),
    )
    watch.poll()
    failure = watch.failure
    assert failure is not None
    assert failure.cause.startswith("FileNotFoundError: [Errno 2]")
    text = failure.text()
    assert 'File "/x/models.py", line 80, in _load_model' in text and "^^^" not in text
    assert failure.hint is not None and f"delete {BENTO}" in failure.hint
    assert "shipyard serve churn-api" in failure.hint


def test_a_shipyard_error_a_worker_failed_with_gives_its_own_fix(tmp_path: Path) -> None:
    trace = (
        "Traceback (most recent call last):\n"
        '  File "/x/online.py", line 53, in _registered\n'
        "    raise ShipyardError(\n"
        "shipyard.errors.ShipyardError: feature service 'churn_v2' is not in the feature registry"
    )
    fix = "run `shipyard run materialize-features <view>` here for each view"
    watch = _watch(
        tmp_path,
        _json(message="starting", startup="starting", pid=41),
        _json(message="failed", startup="failed", pid=41, hint=fix),
        _json(
            level="error", logger="bentoml.serve", message="Initializing service error", error=trace
        ),
    )
    assert watch.poll() == ["worker 1: starting ..."]  # the fix is no progress line
    assert watch.failure is not None and "churn_v2" in watch.failure.cause
    assert watch.failure.hint == fix


def test_a_traceback_the_serve_process_printed_as_text_explains_its_exit(tmp_path: Path) -> None:
    watch = _watch(
        tmp_path,
        _json(message="Service loaded"),
        "Traceback (most recent call last):",
        '  File "/b/bentos/service.py", line 12, in <module>',
        "    import nowhere",
        "ModuleNotFoundError: No module named 'nowhere'",
    )
    failure = watch.exited()
    assert failure.cause == "ModuleNotFoundError: No module named 'nowhere'"
    assert "import nowhere" in failure.text()
    assert failure.hint is not None and "make venv" in failure.hint


def test_the_lines_before_the_start_are_not_read(tmp_path: Path) -> None:
    earlier = _json(level="error", message="Initializing service error", error="OldError: x") + "\n"
    watch = _watch(tmp_path, _json(message="starting", startup="starting", pid=3), before=earlier)
    assert watch.poll() == ["worker 1: starting ..."]
    assert watch.failure is None
    assert watch.exited().cause == "bentoml serve exited without saying why"


def test_an_address_in_use_is_a_failure_at_once(tmp_path: Path) -> None:
    watch = _watch(tmp_path, "OSError: [Errno 98] Address already in use")
    watch.poll()
    assert watch.failure is not None and "Address already in use" in watch.failure.cause
