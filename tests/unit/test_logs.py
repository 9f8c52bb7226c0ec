"""One JSON formatter for flows and services: fields, correlation and request ids, errors."""

from __future__ import annotations

import json
import logging
import warnings
from typing import Any

from shipyard.logs import JsonFormatter, current_request_id


def _line(logger: str = "shipyard.test", **kwargs: Any) -> dict[str, Any]:
    """The JSON object one `info` call on `logger` formats to."""
    record: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, r: logging.LogRecord) -> None:
            record.append(r)

    log = logging.getLogger(logger)
    handler = Keep()
    log.addHandler(handler)
    try:
        log.warning(kwargs.pop("msg", "hello %s"), *kwargs.pop("args", ("world",)), **kwargs)
    finally:
        log.removeHandler(handler)
    text = JsonFormatter().format(record[0])
    assert "\n" not in text
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def test_the_common_fields_come_first() -> None:
    line = _line()
    assert list(line)[:4] == ["time", "level", "logger", "message"]
    assert (line["level"], line["logger"], line["message"]) == (
        "warning",
        "shipyard.test",
        "hello world",
    )
    assert line["time"].endswith("Z") and len(line["time"]) == len("2026-11-26T15:57:02.250Z")
    assert "request_id" not in line and "correlation_id" not in line


def test_extra_fields_and_plain_extras_are_merged() -> None:
    line = _line(extra={"fields": {"status": 200, "variant": None}, "resource": "model.churn"})
    assert line["status"] == 200 and line["variant"] is None
    assert line["resource"] == "model.churn"
    assert "fields" not in line


def test_a_flow_run_id_is_the_correlation_id() -> None:
    line = _line(extra={"flow_run_id": "3f2c"})
    assert line["correlation_id"] == "3f2c"


def test_lines_logged_while_a_request_is_answered_carry_its_id() -> None:
    token = current_request_id.set("req-42")
    try:
        line = _line("bentoml._internal.server.http_app")  # anyone's logger, not just ours
    finally:
        current_request_id.reset(token)
    assert line["request_id"] == "req-42"
    assert "request_id" not in _line()


def test_an_exception_stays_on_its_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        line = _line(exc_info=True)
    assert "ValueError: boom" in line["error"] and "Traceback" in line["error"]


def test_captured_warnings_are_json_lines() -> None:
    # a handler of its own on the warnings logger: other tests' logging set-up (Prefect's,
    # the service's) may have stopped it propagating to caplog's root handler
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("py.warnings")
    handler = Keep(level=logging.WARNING)
    logger.addHandler(handler)
    # an earlier test may have left warnings "captured" while pytest restored the original
    # hook around it: start from released, so that capturing takes effect here
    logging.captureWarnings(False)
    logging.captureWarnings(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("old API", DeprecationWarning, stacklevel=1)
    finally:
        logging.captureWarnings(False)
        logger.removeHandler(handler)
    [record] = records
    line = json.loads(JsonFormatter().format(record))
    assert line["logger"] == "py.warnings" and "DeprecationWarning: old API" in line["message"]
