"""JSON log lines, one vocabulary for flows and services.

Every line is one object: `time`, `level`, `logger`, `message`, then `correlation_id` (the
Prefect flow run id) in flows or `request_id` (the HTTP request being answered) in services,
then the record's extra fields.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from pathlib import Path
from typing import Any

current_request_id: ContextVar[str | None] = ContextVar("shipyard_request_id", default=None)
"""The id of the request a service is answering; the serving Gate sets it for the request's
duration, so every line logged meanwhile (BentoML's and uvicorn's too) carries it."""

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "fields",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the correlation or request id,
    and extra fields: those of `extra={"fields": {...}}` as they are, plain `extra=` keys
    as scalars (anything else as its string)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = current_request_id.get()
        if request_id is not None:
            entry["request_id"] = request_id
        correlation = getattr(record, "flow_run_id", None) or current_flow_run_id()
        if correlation:
            entry["correlation_id"] = str(correlation)
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                scalar = value is None or isinstance(value, str | int | float | bool)
                entry[key] = value if scalar else str(value)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["error"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def current_flow_run_id() -> str | None:
    """The id of the Prefect flow run this code runs in, if any (without importing Prefect)."""
    if "prefect" not in sys.modules:
        return None
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return str(context.flow_run.id) if context and context.flow_run else None


def configure_json_logs(log_dir: Path, level: int = logging.INFO) -> Path:
    """Append `shipyard` logs as JSON lines to <state>/logs/shipyard.jsonl (idempotent)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    target = log_dir / "shipyard.jsonl"
    logger = logging.getLogger("shipyard")
    logger.setLevel(level)
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) == target:
            return target
    handler = logging.FileHandler(target, encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    return target


class _ExpectedErrorsWithoutTraceback(logging.Filter):
    """Prefect logs a failed run's exception with its traceback; for errors Shipyard raises on
    purpose (bad data, missing files) the message already says what to do, so drop the trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        from shipyard.errors import ShipyardError

        if record.exc_info and isinstance(record.exc_info[1], ShipyardError):
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_expected_errors() -> None:
    for name in (
        "prefect.flow_runs",
        "prefect.task_runs",
        "prefect.flow_engine",
        "prefect.task_engine",
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _ExpectedErrorsWithoutTraceback) for f in logger.filters):
            logger.addFilter(_ExpectedErrorsWithoutTraceback())
