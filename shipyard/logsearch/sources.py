"""The places a log search reads, each as a stream of `Entry`s oldest first (or nearly so).

- Shipyard's JSON lines (`<state>/logs/shipyard.jsonl`, `correlation_id` = flow run id) and a
  service's (`<state>/logs/service-<name>.log`, `request_id` while a request is answered):
  files, read line by line.
- The prediction log (predictions and feedback; SQLite or PostgreSQL): cursors, a few
  thousand rows at a time, as `shipyard/abtests/exposure.py` reads it.
- A flow run's logs on the Prefect server, a page at a time.

Nothing here starts, creates or writes anything.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import ServiceUnavailable, ShipyardError
from shipyard.logsearch.records import Entry, Query, Source, parse_time, prefect_level
from shipyard.secrets import redact_url
from shipyard.serving.predlog import LogReader

if TYPE_CHECKING:
    from shipyard.serving.crypto import FieldCipher

CHUNK = 5_000
"""Rows fetched from the prediction log at a time."""
PREFECT_PAGE = 200
"""Logs per call to the Prefect API (its own maximum)."""
_LINE_KEYS = ("time", "level", "logger", "message")


def read_json_lines(path: Path, source: Source, query: Query) -> Iterator[Entry]:
    """The lines of a JSON-lines log that the query asks for.

    A line that is not JSON (a traceback printed before logging was set up) belongs to the
    JSON line before it: it is kept, as that line's `error`, when that line is.
    """
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    with handle:
        held: Entry | None = None
        for raw in handle:
            line = raw.rstrip("\n")
            if not line.strip():
                continue
            record = _json_object(line)
            if record is None:
                if held is not None:
                    error = held.fields.get("error")
                    held.fields["error"] = f"{error}\n{line}" if error else line
                continue
            if held is not None:
                yield held
            held = _entry_of(record, source, query)
        if held is not None:
            yield held


def _json_object(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _entry_of(record: dict[str, Any], source: Source, query: Query) -> Entry | None:
    at = parse_time(record.get("time"))
    if at is None or not query.wants_time(at):
        return None
    if query.request_id is not None and not query.wants_request(record.get("request_id")):
        return None
    if query.flow_run is not None and record.get("correlation_id") != query.flow_run:
        return None
    return Entry(
        time=at,
        source=source,
        level=str(record.get("level") or "info").lower(),
        logger=str(record.get("logger") or ""),
        message=str(record.get("message") or ""),
        fields={k: v for k, v in record.items() if k not in _LINE_KEYS},
    )


# -- the prediction log ----------------------------------------------------------------------


def read_prediction_log(
    url: str, service: str, query: Query, cipher: FieldCipher | None = None
) -> Iterator[Entry]:
    """The service's predictions and feedback the query asks for, each stream by time; the
    fields of `logging.encrypt` decrypted with `cipher`, else shown as their `$enc:` markers.

    Raises:
        ServiceUnavailable: The database cannot be read.
    """
    yield from _predictions(url, service, query, cipher)
    yield from _feedback(url, service, query, cipher)


def _where(service: str, query: Query) -> tuple[str, list[Any]]:
    sql = " WHERE service = {p}"
    params: list[Any] = [service]
    if query.request_id is not None:
        # a batch is one record under the request's id; feedback names one of its rows
        ids = query.request_ids
        sql += f" AND (request_id IN ({', '.join(['{p}'] * len(ids))})"
        sql += " OR request_id LIKE {p} ESCAPE '\\')"
        escaped = query.request_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params += [*ids, escaped + "/%"]
    if query.since is not None:
        sql += " AND time >= {p}"
        params.append(query.since)
    return sql, params


def _predictions(
    url: str, service: str, query: Query, cipher: FieldCipher | None
) -> Iterator[Entry]:
    where, params = _where(service, query)
    sql = (
        "SELECT request_id, time, variant, model_version, inputs, output FROM predictions"
        + where
        + " ORDER BY time"
    )
    rows = _stream(url, sql, params, cipher)
    for request_id, at, variant, model_version, inputs, output in rows:
        yield Entry(
            time=float(at),
            source="prediction",
            level="info",
            logger=f"service.{service}",
            message=f"prediction by {variant} (model version {model_version})",
            fields={
                "request_id": request_id,
                "variant": variant,
                "model_version": model_version,
                "inputs": _decoded(inputs),
                "output": _decoded(output),
            },
        )


def _feedback(url: str, service: str, query: Query, cipher: FieldCipher | None) -> Iterator[Entry]:
    where, params = _where(service, query)
    sql = "SELECT request_id, time, entity, outcome FROM feedback" + where + " ORDER BY time"
    for request_id, at, entity, outcome in _stream(url, sql, params, cipher):
        fields: dict[str, Any] = {"request_id": request_id} if request_id else {}
        if entity:
            fields["entity"] = _decoded(entity)
        fields["outcome"] = _decoded(outcome)
        yield Entry(
            time=float(at),
            source="feedback",
            level="info",
            logger=f"service.{service}",
            message="feedback",
            fields=fields,
        )


def _decoded(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _stream(
    url: str, sql: str, params: list[Any], cipher: FieldCipher | None
) -> Iterator[tuple[Any, ...]]:
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ShipyardError(
            f"the prediction log URL '{redact_url(url)}' is neither sqlite:/// nor postgresql://",
            hint="check `serving.log_database` in the profile",
        )
    yield from LogReader(url, cipher).stream(sql, params)


# -- Prefect ---------------------------------------------------------------------------------


def flow_run_uuid(flow_run: str) -> uuid.UUID:
    """The flow run id as a UUID, or a ShipyardError saying what one looks like."""
    try:
        return uuid.UUID(flow_run)
    except ValueError:
        raise ShipyardError(
            f"'{flow_run}' is not a flow run id",
            hint="a flow run id is a UUID, e.g. 0f8e1c2a-5b7d-4e3f-9a1b-2c3d4e5f6a7b "
            "(`shipyard run` prints the run's URL; the id ends it)",
        ) from None


def read_flow_logs(api_url: str, flow_run: str, query: Query) -> Iterator[Entry]:
    """The flow run's logs on the Prefect server at `api_url`, oldest first.

    Raises:
        ServiceUnavailable: The server stopped answering.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId, LogFilterTimestamp
    from prefect.client.schemas.sorting import LogSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    run_id = flow_run_uuid(flow_run)
    log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))
    if query.since is not None:
        from datetime import UTC, datetime

        log_filter.timestamp = LogFilterTimestamp(after_=datetime.fromtimestamp(query.since, UTC))
    offset = 0
    try:
        with (
            temporary_settings(updates={PREFECT_API_URL: api_url}),
            get_client(sync_client=True) as client,
        ):
            while True:
                page = client.read_logs(
                    log_filter=log_filter,
                    limit=PREFECT_PAGE,
                    offset=offset,
                    sort=LogSort.TIMESTAMP_ASC,
                )
                for log in page:
                    fields: dict[str, Any] = {"flow_run_id": str(log.flow_run_id)}
                    if log.task_run_id:
                        fields["task_run_id"] = str(log.task_run_id)
                    yield Entry(
                        time=log.timestamp.timestamp(),
                        source="flow",
                        level=prefect_level(log.level),
                        logger=log.name,
                        message=log.message,
                        fields=fields,
                    )
                if len(page) < PREFECT_PAGE:
                    return
                offset += len(page)
    except ShipyardError:
        raise
    except Exception as exc:  # httpx and Prefect's own errors alike: the server is gone
        raise ServiceUnavailable(
            f"the Prefect server at {api_url} stopped answering ({type(exc).__name__}: {exc})",
        ) from exc
