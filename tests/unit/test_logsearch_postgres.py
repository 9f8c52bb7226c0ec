"""The log search reads the scale-out profile's prediction log in PostgreSQL as it reads SQLite."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support import throwaway_database

from shipyard.logsearch.records import Query
from shipyard.logsearch.sources import read_prediction_log
from shipyard.serving.predlog import PredictionLog

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_request_and_its_rows_are_read_and_like_wildcards_match_nothing_else(
    backend: str, tmp_path: Path
) -> None:
    now = time.time()
    with throwaway_database("shipyard_logsearch", create=True) as database:
        url = (
            f"sqlite:///{tmp_path / 'logs.sqlite'}"
            if backend == "sqlite"
            else f"postgresql://postgres@127.0.0.1:5432/{database}"
        )
        log = PredictionLog(url, "churn-api")
        try:
            log.log_prediction("a_1", "stable", "2", {"plan": "pro"}, {"p": 0.2}, at=now - 9)
            log.log_prediction("ab1", "stable", "2", {"plan": "pro"}, {"p": 0.3}, at=now - 8)
            log.log_feedback(1, request_id="a_1/0", at=now - 7)
            log.log_feedback(0, request_id="ab1/0", at=now - 6)
            log.log_prediction("a_1", "stable", "2", {"plan": "x"}, {"p": 0.4}, at=now - 5)
            other = PredictionLog(url, "other-api")
            other.log_prediction("a_1", "stable", "1", {}, {}, at=now - 4)
            other.close()
            log.flush()
        finally:
            log.close()

        found = list(read_prediction_log(url, "churn-api", Query(request_id="a_1")))
        assert [(e.source, e.fields["request_id"]) for e in found] == [
            ("prediction", "a_1"),
            ("prediction", "a_1"),
            ("feedback", "a_1/0"),
        ]
        assert found[0].fields["output"] == {"p": 0.2} and found[2].fields["outcome"] == 1

        recent = read_prediction_log(url, "churn-api", Query(service="churn-api", since=now - 6.5))
        assert [(e.source, e.fields["request_id"]) for e in recent] == [
            ("prediction", "a_1"),
            ("feedback", "ab1/0"),
        ]
