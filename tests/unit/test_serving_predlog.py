"""The prediction log writes off the request path, survives a dead database and reads back."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support import throwaway_database

from shipyard.serving.predlog import BATCH, PredictionLog

DEAD_POSTGRES = "postgresql://postgres@127.0.0.1:1/nowhere"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'logs' / 'predictions.sqlite'}"


@pytest.fixture
def predlog(sqlite_url: str) -> Iterator[PredictionLog]:
    log = PredictionLog(sqlite_url, "churn-api", flush_interval=0.05)
    yield log
    log.close()


def test_predictions_and_feedback_read_back_decoded(predlog: PredictionLog) -> None:
    predlog.log_prediction("r1", "champion", "3", {"plan": "pro"}, {"churn": 0.2}, at=100.0)
    predlog.log_prediction("r2", "challenger", "4", [1, 2], 0.7, at=101.5)
    predlog.log_feedback(True, request_id="r1", at=200.0)
    predlog.log_feedback({"churned": False}, entity={"customer_id": 7}, at=201.0)
    predlog.flush()
    assert predlog.written == 4
    assert predlog.predictions() == [
        {
            "request_id": "r1",
            "time": 100.0,
            "service": "churn-api",
            "variant": "champion",
            "model_version": "3",
            "inputs": {"plan": "pro"},
            "output": {"churn": 0.2},
        },
        {
            "request_id": "r2",
            "time": 101.5,
            "service": "churn-api",
            "variant": "challenger",
            "model_version": "4",
            "inputs": [1, 2],
            "output": 0.7,
        },
    ]
    assert predlog.feedback() == [
        {
            "request_id": "r1",
            "time": 200.0,
            "service": "churn-api",
            "entity": None,
            "outcome": True,
        },
        {
            "request_id": None,
            "time": 201.0,
            "service": "churn-api",
            "entity": {"customer_id": 7},
            "outcome": {"churned": False},
        },
    ]


def test_since_and_limit_keep_the_most_recent(predlog: PredictionLog) -> None:
    for n in range(10):
        predlog.log_prediction(f"r{n}", "champion", "1", n, n, at=1000.0 + n)
        predlog.log_feedback(n, request_id=f"r{n}", at=1000.0 + n)
    predlog.flush()
    assert [row["request_id"] for row in predlog.predictions(since=1007.0)] == ["r7", "r8", "r9"]
    assert [row["request_id"] for row in predlog.predictions(limit=2)] == ["r8", "r9"]
    assert [row["outcome"] for row in predlog.feedback(since=1008.0)] == [8, 9]


def test_values_json_cannot_encode_are_stored_as_text(predlog: PredictionLog) -> None:
    loop: dict[str, object] = {}
    loop["self"] = loop
    moment = datetime(2025, 1, 2, tzinfo=UTC)
    predlog.log_prediction("r1", "champion", "1", {"at": moment}, loop)
    predlog.flush()
    (row,) = predlog.predictions()
    assert row["inputs"] == {"at": "2025-01-02T00:00:00+00:00"}  # ISO 8601
    assert row["output"] == "{'self': {...}}"
    assert row["time"] == pytest.approx(time.time(), abs=60)


def test_services_sharing_a_database_read_only_their_rows(sqlite_url: str) -> None:
    first = PredictionLog(sqlite_url, "a")
    second = PredictionLog(sqlite_url, "b")
    try:
        first.log_prediction("r1", "v", "1", {}, 1)
        second.log_prediction("r2", "v", "1", {}, 2)
        first.flush()
        second.flush()
        assert [row["request_id"] for row in first.predictions()] == ["r1"]
        assert [row["request_id"] for row in second.predictions()] == ["r2"]
    finally:
        first.close()
        second.close()


def test_logging_from_many_threads_loses_nothing(predlog: PredictionLog) -> None:
    def log_many(thread: int) -> None:
        for n in range(300):
            predlog.log_prediction(f"{thread}-{n}", "champion", "1", {"n": n}, n)

    threads = [threading.Thread(target=log_many, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    predlog.flush()
    assert predlog.written == 1200
    assert len({row["request_id"] for row in predlog.predictions()}) == 1200


def test_close_writes_what_is_pending_and_is_idempotent(sqlite_url: str) -> None:
    log = PredictionLog(sqlite_url, "churn-api", flush_interval=60)
    log.log_prediction("r1", "champion", "1", {}, 1)
    log.close()
    log.close()
    log.log_prediction("r2", "champion", "1", {}, 1)
    assert log.written == 1
    assert log.dropped == 1
    assert [row["request_id"] for row in log.predictions()] == ["r1"]


def test_unknown_url_scheme_is_rejected_with_the_supported_ones() -> None:
    with pytest.raises(ValueError, match=r"'mysql://x/y'.*sqlite:////.*postgresql://"):
        PredictionLog("mysql://x/y", "churn-api")


def test_dead_database_keeps_rows_pending_and_close_is_bounded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = PredictionLog(DEAD_POSTGRES, "churn-api", flush_interval=0.01)
    for n in range(3):
        log.log_prediction(f"r{n}", "champion", "1", {}, n)
    log.log_feedback(True, request_id="r0")
    log.flush(timeout=0.3)
    assert log.pending == 4
    assert (log.written, log.dropped) == (0, 0)
    assert any(
        "cannot write to" in r.getMessage() and DEAD_POSTGRES in r.getMessage()
        for r in caplog.records
    )
    started = time.monotonic()
    log.close(timeout=5)
    assert time.monotonic() - started < 5
    assert log.dropped == 4


def test_writer_recovers_when_the_database_becomes_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-yet"
    blocker.write_text("a file where the database folder should be")
    log = PredictionLog(f"sqlite:///{blocker / 'predictions.sqlite'}", "churn-api")
    try:
        log.log_prediction("r1", "champion", "1", {}, 1)
        log.flush(timeout=0.2)
        assert (log.pending, log.written) == (1, 0)
        blocker.unlink()
        log.flush(timeout=30)
        assert (log.pending, log.written) == (0, 1)
        assert [row["request_id"] for row in log.predictions()] == ["r1"]
    finally:
        log.close()


def test_rows_beyond_max_queue_are_dropped_and_counted() -> None:
    log = PredictionLog(DEAD_POSTGRES, "churn-api", max_queue=5)
    try:
        for n in range(12):
            log.log_prediction(f"r{n}", "champion", "1", {}, n)
        assert log.pending <= 5
        assert log.pending + log.dropped == 12
    finally:
        log.close(timeout=5)


def test_password_in_url_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    log = PredictionLog("postgresql://postgres:hunter2@127.0.0.1:1/x", "churn-api")
    log.log_prediction("r1", "champion", "1", {}, 1)
    log.flush(timeout=0.3)
    log.close(timeout=5)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "postgres:***@127.0.0.1:1" in text
    assert "hunter2" not in text


@pytest.mark.integration
def test_postgresql_workers_write_concurrently_and_read_back() -> None:
    with throwaway_database("shipyard_predlog", create=True) as db:
        url = f"postgresql://postgres@127.0.0.1:5432/{db}"
        # Two workers starting together both create the tables: that must not fail either.
        workers = [PredictionLog(url, "churn-api", flush_interval=0.05) for _ in range(2)]
        try:
            for number, worker in enumerate(workers):
                for n in range(600):
                    worker.log_prediction(f"w{number}-{n}", "champion", "7", {"n": n}, n / 10)
                worker.log_feedback({"churned": True}, entity={"customer_id": number})
            for worker in workers:
                worker.flush()
            rows = workers[0].predictions()
            assert len(rows) == 1200
            assert {row["model_version"] for row in rows} == {"7"}
            by_id = {row["request_id"]: row for row in rows}
            assert (by_id["w1-5"]["inputs"], by_id["w1-5"]["output"]) == ({"n": 5}, 0.5)
            assert sorted(f["entity"]["customer_id"] for f in workers[1].feedback()) == [0, 1]
            assert [row["time"] for row in rows] == sorted(row["time"] for row in rows)
        finally:
            for worker in workers:
                worker.close()


def test_a_batch_is_one_record_read_back_as_one_prediction_per_row(predlog: PredictionLog) -> None:
    rows = {BATCH: 1, "columns": ["plan"], "rows": [["pro"], ["basic"]]}
    outputs = {BATCH: 1, "row": [0, 2], "prediction": [1, 0]}
    predlog.log_prediction("batch-1", "stable", "3", rows, outputs)
    predlog.flush()
    read = predlog.predictions()
    assert [(r["request_id"], r["inputs"], r["output"]) for r in read] == [
        ("batch-1/0", {"plan": "pro"}, {"prediction": 1}),
        ("batch-1/2", {"plan": "basic"}, {"prediction": 0}),
    ]
    assert {r["variant"] for r in read} == {"stable"}


def test_a_batch_names_masked_columns_and_reads_them_back_as_the_mask(
    predlog: PredictionLog,
) -> None:
    rows = {
        BATCH: 1,
        "columns": ["plan", "email", "tenure"],
        "masked": ["email"],
        "rows": [("pro", 12), ("basic", 3)],  # tuples, as the engine queues them
    }
    outputs = {BATCH: 1, "row": [0, 1], "prediction": [1, 0]}
    predlog.log_prediction("batch-2", "stable", "3", rows, outputs)
    predlog.flush()
    read = predlog.predictions()
    assert [r["inputs"] for r in read] == [
        {"plan": "pro", "email": "***", "tenure": 12},
        {"plan": "basic", "email": "***", "tenure": 3},
    ]
    assert [list(r["inputs"]) for r in read] == [["plan", "email", "tenure"]] * 2


# -- crash safety: the spool, and a database that becomes unwritable ---------------------------

_CHILD = """
import os, sys, time
from pathlib import Path
from shipyard.serving.predlog import PredictionLog
url, spool, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
log = PredictionLog(url, "churn-api", flush_interval=60.0, spool_dir=spool)
for i in range(count):
    log.log_prediction(f"r{i}", "stable", "1", {"i": i}, {"p": 0.5})
log.log_feedback(float(count), entity={"customer_id": 7})
os._exit(0)  # a crash: no close(), the writer never ran its batch
"""


def _crash_after_logging(url: str, spool: Path, count: int) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _CHILD, url, str(spool), str(count)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_a_process_that_dies_loses_no_row_to_the_next_log_on_its_spool(
    sqlite_url: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    _crash_after_logging(sqlite_url, spool, 5)
    assert list(spool.glob("*.spool")), "the dead process left its spool segment"
    log = PredictionLog(sqlite_url, "churn-api", flush_interval=0.05, spool_dir=spool)
    try:
        assert _eventually(lambda: len(log.predictions()) == 5)
        assert [p["inputs"] for p in log.predictions()] == [{"i": i} for i in range(5)]
        assert _eventually(lambda: log.feedback())
        assert log.feedback()[0]["outcome"] == 5.0 and log.feedback()[0]["entity"] == {
            "customer_id": 7
        }
        log.log_prediction("after", "stable", "1", {}, {})
        log.flush()
    finally:
        log.close()
    assert not list(spool.glob("*.spool")), "written segments are deleted"


def test_a_live_log_keeps_its_spool_segment(sqlite_url: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    first = PredictionLog(DEAD_POSTGRES, "churn-api", spool_dir=spool)
    first.log_prediction("mine", "stable", "1", {}, {})
    second = PredictionLog(sqlite_url, "churn-api", flush_interval=0.05, spool_dir=spool)
    try:
        second.log_prediction("yours", "stable", "1", {}, {})
        second.flush()
        assert [p["request_id"] for p in second.predictions()] == ["yours"]
    finally:
        second.close()
        first.close(timeout=1.0)


def _eventually(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


_UNWRITABLE = """
import subprocess, sys
from pathlib import Path
from shipyard.serving.predlog import PredictionLog
folder = Path(sys.argv[1])
log = PredictionLog(f"sqlite:///{folder}/logs.sqlite", "churn-api", flush_interval=0.05)
log.log_prediction("before", "stable", "1", {}, {})
log.flush()
files = [folder, *folder.glob("logs.sqlite*")]
subprocess.run(["chattr", "+i", *map(str, files)], check=True)
try:
    for i in range(3):
        log.log_prediction(f"during{i}", "stable", "1", {}, {})
        log.flush(timeout=0.5)
finally:
    subprocess.run(["chattr", "-i", *map(str, files)], check=True)
log.flush(timeout=10)
print(log.written)
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("chattr"), reason="needs root and chattr")
def test_a_database_whose_files_become_unwritable_never_kills_the_process(tmp_path: Path) -> None:
    """SQLite's WAL maps its -shm file: writing through the mapping once the file is immutable
    is a SIGBUS. The log uses a rollback journal, so this is an error it retries."""
    import subprocess
    import sys

    folder = tmp_path / "logs"
    folder.mkdir()
    try:
        done = subprocess.run(
            [sys.executable, "-c", _UNWRITABLE, str(folder)], capture_output=True, text=True
        )
    finally:
        subprocess.run(["chattr", "-R", "-i", str(folder)], check=False)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.split() == ["4"]  # the row before, and the three during, once it could
    assert "cannot write" in done.stderr


# --- knows(): whether a request id was predicted, for feedback ----------------------------------


def test_a_request_id_is_known_from_the_spool_before_it_is_written(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Another worker's rows wait in its spool until its writer commits them: found there
    before the database has them, and in the database after."""
    spool = tmp_path / "spool"
    writer = PredictionLog(DEAD_POSTGRES, "churn-api", spool_dir=spool)  # never writes
    reader = PredictionLog(sqlite_url, "churn-api", flush_interval=0.05, spool_dir=spool)
    try:
        writer.log_prediction("pending-1", "stable", "1", {}, {})
        writer.log_feedback(1, request_id="feedback-only")
        assert reader.knows(["pending-1"]) is True
        assert reader.knows(["feedback-only"]) is False  # a feedback row is no prediction
        assert reader.knows(["pending"]) is False  # ids match whole, never a prefix
        reader.log_prediction("written-1", "stable", "1", {}, {})
        reader.flush()
        assert not [p for p in spool.glob("*.spool") if p.read_bytes().count(b"written-1")]
        assert reader.knows(["nope", "written-1"]) is True  # from the database now
        assert reader.knows(["never"]) is False
    finally:
        reader.close()
        writer.close(timeout=1.0)


def test_a_request_id_of_another_service_is_not_known(sqlite_url: str) -> None:
    ours = PredictionLog(sqlite_url, "churn-api", flush_interval=0.05)
    theirs = PredictionLog(sqlite_url, "other-api", flush_interval=0.05)
    try:
        theirs.log_prediction("theirs-1", "stable", "1", {}, {})
        theirs.flush()
        assert ours.knows(["theirs-1"]) is False and theirs.knows(["theirs-1"]) is True
    finally:
        ours.close()
        theirs.close()


def test_knows_cannot_tell_when_the_database_cannot_be_read(tmp_path: Path) -> None:
    log = PredictionLog(DEAD_POSTGRES, "churn-api")
    try:
        assert log.knows(["any"]) is None
    finally:
        log.close(timeout=1.0)
    fresh = PredictionLog(f"sqlite:///{tmp_path / 'none' / 'logs.sqlite'}", "churn-api")
    try:
        assert fresh.knows(["any"]) is False  # no file: nothing was ever predicted
    finally:
        fresh.close()


@pytest.mark.integration
def test_postgresql_knows_a_predicted_request_id_on_a_kept_connection() -> None:
    with throwaway_database("shipyard_predlog", create=True) as db:
        url = f"postgresql://postgres@127.0.0.1:5432/{db}"
        writer = PredictionLog(url, "churn-api", flush_interval=0.05)
        reader = PredictionLog(url, "churn-api", flush_interval=0.05)
        try:
            writer.log_prediction("pg-1", "stable", "1", {}, {})
            writer.flush()
            assert reader.knows(["pg-1"]) is True
            assert reader.knows(["pg-2"]) is False  # the same connection, asked again
            writer.log_prediction("pg-2", "stable", "1", {}, {})
            writer.flush()
            assert reader.knows(["pg-2"]) is True  # autocommit: no stale snapshot
        finally:
            writer.close()
            reader.close()
