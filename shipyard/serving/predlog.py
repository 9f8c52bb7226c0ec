"""The prediction and feedback log of a service, written to SQL by a background thread."""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, suppress
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import psycopg2
import psycopg2.extras

from shipyard.databases import tls_hint
from shipyard.errors import ServiceUnavailable
from shipyard.secrets import redact_url
from shipyard.serving import spool as spooling
from shipyard.serving.masking import MASK

if TYPE_CHECKING:
    from shipyard.serving.crypto import FieldCipher

log = logging.getLogger("shipyard.serving")

_BATCH = 500  # rows per INSERT; also written at once when this many are pending
_WARN_EVERY = 30.0  # seconds between two warnings about an unwritable database
_MAX_BACKOFF = 30.0  # seconds between retries when the database keeps failing
_CONNECT_TIMEOUT = 5  # seconds; a dead PostgreSQL host must not stall the writer for long
_STOP = object()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    request_id TEXT, time {real}, service TEXT, variant TEXT, model_version TEXT,
    inputs TEXT, output TEXT
);
CREATE INDEX IF NOT EXISTS predictions_service_time ON predictions (service, time);
CREATE INDEX IF NOT EXISTS predictions_request_id ON predictions (request_id);
CREATE TABLE IF NOT EXISTS feedback (
    request_id TEXT NULL, time {real}, service TEXT, entity TEXT NULL, outcome TEXT
);
CREATE INDEX IF NOT EXISTS feedback_service_time ON feedback (service, time);
CREATE INDEX IF NOT EXISTS feedback_request_id ON feedback (request_id);
"""
BATCH = "$batch"
"""Marks a columnar batch record (a key no feature or output field can have)."""


def _is_batch(value: Any) -> bool:
    return isinstance(value, dict) and value.get(BATCH) == 1


_PREDICTION_COLUMNS = "request_id, time, service, variant, model_version, inputs, output"
_FEEDBACK_COLUMNS = "request_id, time, service, entity, outcome"

# A row as queued: (True, request_id, time, variant, model_version, inputs, output) for a
# prediction, (False, request_id, time, entity, outcome) for feedback. Encoded to JSON later.
_Row = tuple[Any, ...]


class PredictionLog:
    """Predictions and feedback of one service, queued on the request path and written in batches.

    Logging never blocks and never raises: rows go to an in-memory queue that one daemon thread
    writes with multi-row INSERTs every `flush_interval` seconds or every 500 rows. When the
    database fails, whatever the error, rows stay pending (at most `max_queue`; beyond that new
    rows are dropped and counted in `dropped`) and the writer retries with back-off, warning at
    most every 30 s.

    With a `spool_dir`, every row is also appended to a local spool file before it is queued
    (`shipyard/serving/spool.py`), so a process that dies loses none of the rows it answered:
    the next log started on that folder writes them.

    With a `cipher` (`shipyard/serving/crypto.py`), the fields it lists are encrypted before a
    row is spooled or queued, so their plain values never reach a disk; `predictions()` and
    `feedback()` decrypt them.

    Values are JSON-encoded by the caller (orjson: microseconds per row): a writer thread doing
    CPU work while holding the GIL would delay the event loop by up to the interpreter's
    switch interval (5 ms), which shows in the service's tail latency. The writer only inserts.

    Attributes:
        service: The service whose rows this log writes and reads.
        written: Rows written so far.
        dropped: Rows given up on: the queue was full, the log was closed, or close() could not
            write them (with a spool, those stay in it for the next log on that folder).
    """

    def __init__(
        self,
        url: str,
        service: str,
        flush_interval: float = 0.2,
        max_queue: int = 100_000,
        spool_dir: Path | None = None,
        cipher: FieldCipher | None = None,
    ) -> None:
        """Start the writer thread; the database is connected (and tables created) there.

        Args:
            url: "sqlite:////abs/path.sqlite" (parent folders are created) or
                "postgresql://user@host:port/db" (the database must exist).
            service: The service name stored with every row.
            flush_interval: Longest time in seconds a row waits before it is written.
            max_queue: Most rows held in memory while the database is slow or down.
            spool_dir: Folder of the write-ahead spool (local, one per service), or None.
            cipher: Encrypts the fields of `logging.encrypt` (and decrypts them on reading).

        Raises:
            ValueError: The URL is neither SQLite nor PostgreSQL.
        """
        self._db: _Database = _database(url)
        self.service = service
        self.written = 0
        self.dropped = 0
        self._flush_interval = flush_interval
        self._max_queue = max_queue
        self._cipher = cipher
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending: deque[_Row] = deque()
        self._oldest_at = 0.0  # monotonic time the oldest pending row arrived
        self._received = 0  # rows the writer took from the queue
        self._resolved = 0  # rows the writer wrote or dropped
        self._flushes: list[tuple[int, threading.Event]] = []
        self._connection: Any = None
        self._backoff = 0.0
        self._retry_at = 0.0
        self._warned_at = -_WARN_EVERY
        self._closed = False
        self._lock = threading.Lock()
        self._reading = threading.Lock()  # the reader connection of knows(), any thread
        self._reader: Any = None
        self._spool = spooling.Spool(spool_dir, service) if spool_dir is not None else None
        self._queued = 0  # rows queued through the spool (under its lock)
        self._sealed: list[tuple[int, spooling.Segment]] = []  # (rows queued before, segment)
        self._recovered: deque[_Row] = deque()  # rows of dead processes' segments
        self._taken: list[spooling.Segment] = []  # those segments, to delete once written
        self._thread = threading.Thread(
            target=self._run, name=f"shipyard-predlog-{service}", daemon=True
        )
        self._thread.start()

    @property
    def pending(self) -> int:
        """Rows logged but not yet written."""
        return self._queue.qsize() + len(self._pending)

    def log_prediction(
        self,
        request_id: str,
        variant: str,
        model_version: str,
        inputs: Any,
        output: Any,
        at: float | None = None,
    ) -> None:
        """Queue one prediction; `at` is the epoch time, now by default.

        A batch is one columnar record: `inputs` {BATCH: 1, "columns": [...], "rows": [[...]]},
        where rows leave out the columns listed under "masked" (if any), and `output`
        {BATCH: 1, "row": [positions in the request], <field>: [one per row]}. Reading
        explodes it into one prediction per row, with request id "<request id>/<row>".
        """
        if self._closed or self.pending >= self._max_queue:
            self._drop(1)
            return
        when = time.time() if at is None else at
        cipher = self._cipher
        if cipher is not None and isinstance(inputs, dict):
            inputs = cipher.seal_batch(inputs) if _is_batch(inputs) else cipher.seal_flat(inputs)
        encoded = (_encode(inputs), _encode(output))
        self._put((True, request_id, when, variant, model_version, *encoded))

    def log_feedback(
        self,
        outcome: Any,
        request_id: str | None = None,
        entity: Mapping[str, Any] | None = None,
        at: float | None = None,
    ) -> None:
        """Queue one observed outcome, tied to a request id and/or an entity (e.g. a customer)."""
        if self._closed or self.pending >= self._max_queue:
            self._drop(1)
            return
        when = time.time() if at is None else at
        if self._cipher is not None:  # `entity` and `outcome` may be named themselves, as in masks
            sealed = self._cipher.seal({"entity": entity, "outcome": outcome})
            entity, outcome = None if entity is None else sealed["entity"], sealed["outcome"]
        encoded = None if entity is None else _encode(entity)
        self._put((False, request_id, when, encoded, _encode(outcome)))

    def _put(self, row: _Row) -> None:
        spool = self._spool
        if spool is None:
            self._queue.put(row)
            return
        line = spooling.encode(row)
        with spool.lock:  # the queue's order is the spool's: see _seal
            spool.append(line)
            self._queue.put(row)
            self._queued += 1

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every row logged so far is written, or `timeout` seconds have passed."""
        if self._closed:
            return
        done = threading.Event()
        self._queue.put(done)
        if not done.wait(timeout):
            log.warning(
                "prediction log of service.%s: %d rows still pending after %.1f s; "
                "check that %s is reachable",
                self.service,
                self.pending,
                timeout,
                self._db.shown,
            )

    def close(self, timeout: float = 10.0) -> None:
        """Write what is pending (one last attempt) and stop the writer; idempotent.

        Returns after at most `timeout` seconds even if the database hangs; rows not written by
        then are counted in `dropped`.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning(
                "prediction log of service.%s: the writer did not stop within %.1f s; "
                "%d rows may be lost; check that %s is reachable",
                self.service,
                timeout,
                self.pending,
                self._db.shown,
            )

    def predictions(
        self, since: float | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Written predictions of this service at or after `since`, oldest first.

        With `limit`, only the most recent `limit` of them. `inputs` and `output` are decoded.
        """
        sql = f"SELECT {_PREDICTION_COLUMNS} FROM predictions WHERE service = {{p}}"
        params: list[Any] = [self.service]
        if since is not None:
            sql += " AND time >= {p}"
            params.append(since)
        sql += " ORDER BY time DESC"
        if limit is not None:
            sql += " LIMIT {p}"
            params.append(limit)
        rows = self._opened(self._db.select(sql, params))
        out: list[dict[str, Any]] = []
        for request_id, at, service, variant, model_version, inputs, output in reversed(rows):
            record = {
                "time": at,
                "service": service,
                "variant": variant,
                "model_version": model_version,
            }
            decoded_inputs, decoded_output = json.loads(inputs), json.loads(output)
            if _is_batch(decoded_inputs) and _is_batch(decoded_output):
                columns = decoded_inputs["columns"]
                masked = set(decoded_inputs.get("masked", ()))
                shown = [c for c in columns if c not in masked]
                fields = [k for k in decoded_output if k not in (BATCH, "row")]
                for n, (position, values) in enumerate(
                    zip(decoded_output["row"], decoded_inputs["rows"], strict=False)
                ):
                    row = dict(zip(shown, values, strict=False))
                    out.append(
                        {
                            "request_id": f"{request_id}/{position}",
                            **record,
                            "inputs": {c: MASK if c in masked else row.get(c) for c in columns},
                            "output": {f: decoded_output[f][n] for f in fields},
                        }
                    )
            else:
                out.append(
                    {
                        "request_id": request_id,
                        **record,
                        "inputs": decoded_inputs,
                        "output": decoded_output,
                    }
                )
        return out[-limit:] if limit is not None else out

    def knows(self, request_ids: Sequence[str]) -> bool | None:
        """Whether this service logged a prediction under one of `request_ids`: in a spool
        file on this machine (rows on their way to the database), else in the database. None
        when the database cannot be read."""
        if self._spool is not None and self._spool.holds_prediction(request_ids):
            return True
        with self._reading:
            try:
                reader = self._reader or self._db.reader()
                if reader is None:
                    return False  # no database file yet: nothing was ever written
                try:
                    return self._db.has_prediction(reader, self.service, request_ids)
                finally:
                    if self._db.keeps_reader:
                        self._reader = reader
                    else:
                        reader.close()
            except Exception as exc:  # down, locked, unreadable: the caller cannot tell
                log.warning(
                    "prediction log of service.%s cannot be read at %s (%s)",
                    self.service,
                    self._db.shown,
                    str(exc).strip() or type(exc).__name__,
                )
                reader, self._reader = self._reader, None
                if reader is not None:
                    with suppress(Exception):
                        reader.close()
                return None

    def feedback(self, since: float | None = None) -> list[dict[str, Any]]:
        """Written feedback of this service at or after `since`, oldest first, decoded."""
        sql = f"SELECT {_FEEDBACK_COLUMNS} FROM feedback WHERE service = {{p}}"
        params: list[Any] = [self.service]
        if since is not None:
            sql += " AND time >= {p}"
            params.append(since)
        rows = self._opened(self._db.select(sql + " ORDER BY time", params))
        return [
            {
                "request_id": request_id,
                "time": at,
                "service": service,
                "entity": None if entity is None else json.loads(entity),
                "outcome": json.loads(outcome),
            }
            for request_id, at, service, entity, outcome in rows
        ]

    def _opened(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        cipher = self._cipher
        return rows if cipher is None else [cipher.open_row(row) for row in rows]

    def _drop(self, count: int) -> None:
        with self._lock:
            self.dropped += count

    # The writer thread: everything below runs there only.

    def _run(self) -> None:
        if self._spool is not None:
            try:
                rows, self._taken = self._spool.recover(self._max_queue)
                self._recovered.extend(rows)
            except Exception as exc:  # a spool that cannot be read must not stop the log
                log.warning("cannot read the spool %s: %s", self._spool.folder, exc)
        stopping = False
        while not stopping:
            stopping = self._collect()
            due = self._write_due()
            if (self._pending or self._recovered) and (
                stopping or (due is not None and time.monotonic() >= due)
            ):
                self._seal()
                self._write_pending()
            self._release_flushes()
        unwritten = len(self._pending)
        # Rows that raced with close() and were queued after the stop marker are lost too.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, threading.Event):
                item.set()
            else:
                unwritten += 1
        if unwritten:
            self._drop(unwritten)
            log.warning(
                "prediction log of service.%s closed with %d rows not written to %s%s",
                self.service,
                unwritten,
                self._db.shown,
                f"; they stay in the spool {self._spool.folder} for the next start"
                if self._spool is not None
                else "",
            )
        if self._spool is not None:
            self._spool.close(written=not unwritten and self._resolved >= self._queued)
            for _, segment in self._sealed:
                segment.release()
            for segment in self._taken:
                segment.release()
        self._pending.clear()
        self._disconnect()
        with self._reading:
            reader, self._reader = self._reader, None
        if reader is not None:
            with suppress(Exception):
                reader.close()
        for _, done in self._flushes:
            done.set()

    def _write_due(self) -> float | None:
        """The monotonic time the pending rows should be written at; None when none are."""
        if not self._pending:
            return self._retry_at if self._recovered else None
        if self._flushes or self._recovered or len(self._pending) >= _BATCH:
            return self._retry_at
        return max(self._oldest_at + self._flush_interval, self._retry_at)

    def _collect(self) -> bool:
        """Move queued rows to pending until a write is due; True when close() was called."""
        while True:
            due = self._write_due()
            wait = None if due is None else due - time.monotonic()
            if wait is not None and wait <= 0:
                return False
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                return False
            if item is _STOP:
                return True
            if isinstance(item, threading.Event):
                self._flushes.append((self._received, item))
                if not self._pending:
                    return False
                continue
            if not self._pending:
                self._oldest_at = time.monotonic()
            self._pending.append(item)
            self._received += 1
            if len(self._pending) > self._max_queue:
                self._pending.popleft()
                self._resolved += 1
                self._drop(1)

    def _seal(self) -> None:
        """Start a new spool segment, so the one the pending rows are in can be deleted once
        every row queued before now is written."""
        spool = self._spool
        if spool is None:
            return
        with spool.lock:
            sealed, queued = spool.seal(), self._queued
        if sealed is not None:
            self._sealed.append((queued, sealed))

    def _write_pending(self) -> None:
        # rows taken over from a dead process's spool first: they are the oldest
        for rows, counted in ((self._recovered, False), (self._pending, True)):
            while rows:
                batch = list(islice(rows, _BATCH))
                try:
                    self._insert(batch)
                # Whatever the database or driver raises, the writer must survive and retry.
                except Exception as exc:
                    self._write_failed(exc)
                    return
                for _ in batch:
                    rows.popleft()
                self.written += len(batch)
                if counted:
                    self._resolved += len(batch)
            self._discard_spooled()
        self._backoff = 0.0
        self._retry_at = 0.0

    def _discard_spooled(self) -> None:
        """Delete the spool segments whose rows are all written (or given up on)."""
        if not self._recovered and self._taken:
            for segment in self._taken:
                segment.discard()
            self._taken = []
        while self._sealed and self._sealed[0][0] <= self._resolved:
            self._sealed.pop(0)[1].discard()

    def _insert(self, batch: list[_Row]) -> None:
        if self._connection is None:
            self._connection = self._db.connect()
        service = self.service
        predictions = [
            (row[1], row[2], service, row[3], row[4], row[5], row[6]) for row in batch if row[0]
        ]
        feedback = [(row[1], row[2], service, row[3], row[4]) for row in batch if not row[0]]
        self._db.insert(self._connection, predictions, feedback)

    def _write_failed(self, error: Exception) -> None:
        self._disconnect()
        self._backoff = min(max(0.5, self._backoff * 2), _MAX_BACKOFF)
        now = time.monotonic()
        self._retry_at = now + self._backoff
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning(
                "prediction log of service.%s cannot write to %s (%s); keeping %d rows pending "
                "(at most %d) and retrying; check that the database is running and writable",
                self.service,
                self._db.shown,
                str(error).strip() or type(error).__name__,
                len(self._pending),
                self._max_queue,
            )

    def _release_flushes(self) -> None:
        if not self._flushes:
            return
        waiting = []
        for target, done in self._flushes:
            if self._resolved >= target:
                done.set()
            else:
                waiting.append((target, done))
        self._flushes = waiting

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # Closing a broken connection may fail too; it is gone either way.
            with suppress(Exception):
                connection.close()


class _Database:
    """The SQL dialect and connection of one backend."""

    placeholder = "?"
    real = "REAL"
    keeps_reader = False
    """Whether knows() keeps its connection open (connecting costs more than the query)."""

    def __init__(self, shown: str) -> None:
        self.shown = shown  # the URL without password, for messages

    def connect(self) -> Any:
        """A new connection, with the tables created if missing."""
        raise NotImplementedError

    def insert(
        self, connection: Any, predictions: list[tuple[Any, ...]], feedback: list[tuple[Any, ...]]
    ) -> None:
        """Insert both kinds of rows in one transaction."""
        raise NotImplementedError

    def reader(self) -> Any:
        """A connection for has_prediction(), kept open; None when there is no database yet."""
        raise NotImplementedError

    def has_prediction(self, connection: Any, service: str, request_ids: Sequence[str]) -> bool:
        """Whether `service` has a prediction under one of `request_ids` (one indexed query)."""
        marks = ", ".join([self.placeholder] * len(request_ids))
        cursor = connection.cursor()
        try:
            cursor.execute(
                f"SELECT 1 FROM predictions WHERE request_id IN ({marks}) AND service = "
                f"{self.placeholder} LIMIT 1",
                [*request_ids, service],
            )
            return cursor.fetchone() is not None
        finally:
            cursor.close()

    def select(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        """Run a query (with `{p}` placeholders) on a short-lived connection."""
        with closing(self.connect()) as connection:
            cursor = connection.cursor()
            cursor.execute(sql.format(p=self.placeholder), params)
            rows: list[tuple[Any, ...]] = cursor.fetchall()
            connection.rollback()
            return rows


class _Sqlite(_Database):
    def __init__(self, path: Path, shown: str) -> None:
        super().__init__(shown)
        self.path = path

    def connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The timeout is SQLite's busy timeout: other worker processes may hold the write lock.
        connection = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
        try:
            # large pages: a batch record is a JSON document of tens of kilobytes, which 4 KiB
            # pages would spread over overflow chains (3x the insert cost); applies to new files
            connection.execute("PRAGMA page_size=65536")
            # A rollback journal, not WAL: WAL maps its -shm file into memory, and a write
            # through that mapping to a file that became unwritable (read-only, full disk,
            # truncated) is a SIGBUS that kills the worker. A journal's failures are errors the
            # writer retries. Commits come a few times a second, from the writer thread only.
            mode = connection.execute("PRAGMA journal_mode=TRUNCATE").fetchone()
            if not mode or str(mode[0]).lower() != "truncate":
                raise sqlite3.OperationalError(
                    f"journal mode is {mode[0] if mode else '?'}, not truncate (another "
                    "process may hold the database in WAL mode)"
                )
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(_SCHEMA.format(real=self.real))
        except BaseException:
            connection.close()
            raise
        return connection

    def reader(self) -> sqlite3.Connection | None:
        if not self.path.exists():
            return None
        # read-only, in autocommit, and opened per query: it holds no lock between queries
        # and always reads the file now at the path
        return sqlite3.connect(
            f"file:{self.path}?mode=ro",
            uri=True,
            timeout=10.0,
            check_same_thread=False,
            isolation_level=None,
        )

    def insert(
        self, connection: Any, predictions: list[tuple[Any, ...]], feedback: list[tuple[Any, ...]]
    ) -> None:
        with connection:  # one transaction: committed, or rolled back on error
            if predictions:
                connection.executemany(
                    f"INSERT INTO predictions ({_PREDICTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    predictions,
                )
            if feedback:
                connection.executemany(
                    f"INSERT INTO feedback ({_FEEDBACK_COLUMNS}) VALUES (?, ?, ?, ?, ?)", feedback
                )


class _Postgres(_Database):
    placeholder = "%s"
    real = "DOUBLE PRECISION"
    keeps_reader = True
    _SCHEMA_LOCK = 0x5A1C_7A2D  # advisory lock id: concurrent CREATE TABLE IF NOT EXISTS can race

    def __init__(self, url: str, shown: str) -> None:
        super().__init__(shown)
        self.url = url

    def connect(self) -> Any:
        connection = psycopg2.connect(
            self.url, connect_timeout=_CONNECT_TIMEOUT, application_name="shipyard-predlog"
        )
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (self._SCHEMA_LOCK,))
                cursor.execute(_SCHEMA.format(real=self.real))
        except BaseException:
            connection.close()
            raise
        return connection

    def reader(self) -> Any:
        connection = psycopg2.connect(
            self.url, connect_timeout=_CONNECT_TIMEOUT, application_name="shipyard-predlog"
        )
        connection.autocommit = True  # no transaction left open between queries
        return connection

    def insert(
        self, connection: Any, predictions: list[tuple[Any, ...]], feedback: list[tuple[Any, ...]]
    ) -> None:
        # execute_values sends one multi-row INSERT per batch, where executemany sends one
        # statement per row.
        with connection, connection.cursor() as cursor:
            if predictions:
                psycopg2.extras.execute_values(
                    cursor,
                    f"INSERT INTO predictions ({_PREDICTION_COLUMNS}) VALUES %s",
                    predictions,
                    page_size=_BATCH,
                )
            if feedback:
                psycopg2.extras.execute_values(
                    cursor,
                    f"INSERT INTO feedback ({_FEEDBACK_COLUMNS}) VALUES %s",
                    feedback,
                    page_size=_BATCH,
                )


def check_database(url: str, service: str) -> None:
    """Connect to a log database once (creating its tables), as the writer will.

    Raises:
        ServiceUnavailable: It cannot be reached or written.
        ValueError: The URL is neither SQLite nor PostgreSQL.
    """
    database = _database(url)
    try:
        database.connect().close()
    except Exception as exc:  # sqlite3, psycopg2 and OS errors alike
        raise ServiceUnavailable(
            f"service '{service}': the prediction log database {database.shown} cannot be "
            f"opened for writing: {str(exc).strip() or type(exc).__name__}",
            hint=tls_hint(
                str(exc),
                "check that it runs and is writable, or fix `serving.log_database` in the profile",
            ),
            resource=f"service.{service}",
        ) from exc


def _database(url: str) -> _Database:
    shown = redact_url(url)
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not path or path == ":memory:":
            raise ValueError(
                f"prediction log URL '{shown}' names no file; use sqlite:////absolute/path.sqlite"
            )
        return _Sqlite(Path(path), shown)
    if url.startswith(("postgresql://", "postgres://")):
        return _Postgres(url, shown)
    raise ValueError(
        f"prediction log URL '{shown}' is not supported; use sqlite:////absolute/path.sqlite "
        "or postgresql://user@host:port/database"
    )


_ORJSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _encode(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str, option=_ORJSON).decode()
    except TypeError:  # keys orjson cannot write (e.g. tuples): the standard library can
        pass
    try:
        return json.dumps(value, default=str, separators=(",", ":"))
    except (ValueError, RecursionError):  # circular or too deep: keep a readable trace
        return json.dumps(str(value))


CHUNK = 5_000
"""Rows a LogReader fetches from the log at a time."""


class LogReader:
    """Cursor streams over the prediction log (SQLite file or PostgreSQL), read-only: rows
    arrive `CHUNK` at a time, so a reader's memory grows with what it keeps, not the log.

    With the service's `cipher`, encrypted fields arrive decrypted (text columns are JSON with
    each token replaced by its value); without it they arrive as their `$enc:` markers."""

    def __init__(self, url: str, cipher: FieldCipher | None = None) -> None:
        self.url = url
        self.cipher = cipher

    def stream(self, sql: str, params: list[Any]) -> Iterator[tuple[Any, ...]]:
        rows = self._rows(sql, params)
        if self.cipher is None:
            yield from rows
        else:
            yield from map(self.cipher.open_row, rows)

    def _rows(self, sql: str, params: list[Any]) -> Iterator[tuple[Any, ...]]:
        try:
            if self.url.startswith("sqlite:///"):
                yield from self._sqlite(sql.format(p="?"), params)
            else:
                yield from self._postgres(sql.format(p="%s"), params)
        except (sqlite3.Error, OSError) as exc:
            raise ServiceUnavailable(
                f"the prediction log {redact_url(self.url)} cannot be read: {exc}",
                hint=tls_hint(
                    str(exc), "check `serving.log_database` in the profile and that it is reachable"
                ),
            ) from exc

    def _sqlite(self, sql: str, params: list[Any]) -> Iterator[tuple[Any, ...]]:
        path = self.url.removeprefix("sqlite:///")
        try:
            connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        except sqlite3.OperationalError:
            return  # no log yet: nothing was ever predicted
        with closing(connection):
            try:
                cursor = connection.execute(sql, params)
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return
                raise
            while rows := cursor.fetchmany(CHUNK):
                yield from rows

    def _postgres(self, sql: str, params: list[Any]) -> Iterator[tuple[Any, ...]]:
        import psycopg2

        try:
            connection = psycopg2.connect(self.url, connect_timeout=5)
        except psycopg2.Error as exc:
            raise OSError(str(exc).strip()) from exc
        try:
            with closing(connection), connection.cursor(name="shipyard_log_reader") as cursor:
                cursor.itersize = CHUNK  # a server-side cursor: rows arrive CHUNK at a time
                cursor.execute(sql, params)
                yield from cursor
        except psycopg2.Error as exc:  # the server went away, or the table is not there
            raise OSError(str(exc).strip()) from exc
