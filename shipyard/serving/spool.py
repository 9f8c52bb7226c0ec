"""The prediction log's write-ahead spool: rows on local disk before their request is answered.

The log writes to its database from memory, a batch every fraction of a second, so a worker that
dies (OOM, SIGKILL, a segfault) would lose what it held. The spool bounds that loss to nothing:
each row is appended to this process's segment file (one `write` call, no fsync: the kernel
keeps it when the process dies, though not when the machine does) before the row is queued.
Once every row of a segment is in the database, the segment is deleted. A log that starts (a
restarted worker, the next start of the service) takes over the segments of processes that
died and writes their rows.

A segment is locked (`flock`) by the process writing it for as long as it lives, so a live
worker's segment is never taken over, whatever its pid; the kernel drops the lock when the
process dies. Rows are written at least once: a crash between a database commit and the
deletion of its segment writes those rows again.

A line is `[1, request_id, time, variant, model_version]<TAB>inputs<TAB>output` for a
prediction, `[0, request_id, time, has_entity]<TAB>entity<TAB>outcome` for feedback, where the
JSON fields are the log's encoded values: JSON as written by orjson or json, which escape every
tab and newline inside strings, so neither appears in a field.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Sequence
from itertools import count
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("shipyard.serving")

SUFFIX = ".spool"
_WARN_EVERY = 30.0  # seconds between two warnings about a spool that cannot be written
_sequence = count()


def encode(row: tuple[Any, ...]) -> bytes:
    """One queued row of the log (see predlog._Row) as a spool line."""
    if row[0]:
        head = orjson.dumps([1, row[1], row[2], row[3], row[4]])
        return b"\t".join((head, row[5].encode(), row[6].encode())) + b"\n"
    entity = row[3]
    head = orjson.dumps([0, row[1], row[2], entity is not None])
    return b"\t".join((head, (entity or "").encode(), row[4].encode())) + b"\n"


def decode(line: bytes) -> tuple[Any, ...] | None:
    """A spool line back as a queued row; None for a line that is not one (a torn write)."""
    try:
        head, first, second = line.rstrip(b"\n").split(b"\t", 2)
        fields = orjson.loads(head)
        kind, request_id, at, *rest = fields
        if not isinstance(request_id, str | None) or not isinstance(at, float | int):
            return None
        if kind == 1 and len(rest) == 2 and all(isinstance(f, str) for f in rest):
            return (True, request_id, at, *rest, first.decode(), second.decode())
        if kind == 0 and len(rest) == 1:
            entity = first.decode() if rest[0] else None
            return (False, request_id, at, entity, second.decode())
    except (ValueError, TypeError):  # orjson.JSONDecodeError is a ValueError
        return None
    return None


class Segment:
    """One spool file, locked by this process while it is open."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd
        self.bytes = 0

    def discard(self) -> None:
        """Delete the file (its rows are in the database), then let go of it."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:  # a read-only folder: taken over and written again later
            log.warning("cannot delete spool segment %s: %s", self.path, exc)
        self.release()

    def release(self) -> None:
        """Close the file (and so drop its lock), keeping it on disk."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


class Spool:
    """The segments of one process's log in `folder`; `append` is called on the request path.

    Callers hold `lock` around `append` and queueing the row, so rows reach the queue in the
    order of the segments, and `seal` sees every row appended before it.
    """

    def __init__(self, folder: Path, service: str) -> None:
        self.folder = folder
        self.service = service
        self.lock = threading.Lock()
        self.failures = 0  # rows that could not be spooled (they are still in memory)
        self._warned_at = -_WARN_EVERY
        self._current: Segment | None = self._open()

    def append(self, line: bytes) -> None:
        """Write one row to the current segment; never raises (a failure is counted, warned)."""
        segment = self._current
        if segment is None:
            self.failures += 1
            return
        try:
            os.write(segment.fd, line)
            segment.bytes += len(line)
        except OSError as exc:
            self.failures += 1
            self._warn("cannot append to spool segment %s (%s)", segment.path, exc)

    def seal(self) -> Segment | None:
        """Start a new segment; returns the previous one when rows were written to it. Called
        with `lock` held."""
        old = self._current
        if old is not None and old.bytes == 0:
            return None
        self._current = self._open()
        return old

    def recover(self, limit: int) -> tuple[list[tuple[Any, ...]], list[Segment]]:
        """Take over the segments of processes that are gone: their rows (at most about
        `limit`) and the segments, locked, to discard once those rows are written."""
        rows: list[tuple[Any, ...]] = []
        taken: list[Segment] = []
        try:
            paths = sorted(self.folder.glob(f"*{SUFFIX}"))
        except OSError:
            return rows, taken
        own = self._current.path if self._current else None
        for path in paths:
            if len(rows) >= limit:
                break
            if path == own:
                continue
            segment = _claim(path)
            if segment is None:
                continue
            try:
                data = os.pread(segment.fd, os.fstat(segment.fd).st_size, 0)
            except OSError as exc:
                log.warning("cannot read spool segment %s: %s", path, exc)
                segment.release()
                continue
            found = [row for line in data.splitlines(keepends=True) if (row := decode(line))]
            rows.extend(found)
            taken.append(segment)
        if rows:
            log.info(
                "prediction log of service.%s: %d rows of a process that stopped before "
                "writing them were found in %s; writing them now",
                self.service,
                len(rows),
                self.folder,
            )
        return rows, taken

    def holds_prediction(self, request_ids: Sequence[str]) -> bool:
        """Whether a segment in the folder (this process's or another live one's) holds a
        prediction logged under one of `request_ids`: rows not yet in the database. A segment
        is deleted only after its rows are committed, so a row looked for here first and in
        the database next is found in one of them."""
        heads = [b"[1," + orjson.dumps(request_id) + b"," for request_id in request_ids]
        try:
            paths = list(self.folder.glob(f"*{SUFFIX}"))
        except OSError:
            return False
        for path in paths:
            try:
                data = path.read_bytes()
            except OSError:  # written and deleted meanwhile: its rows are in the database
                continue
            if any(data.startswith(head) or b"\n" + head in data for head in heads):
                return True
        return False

    def close(self, written: bool) -> None:
        """Let go of the current segment: deleted if `written` (every row is in the database),
        else kept for the next start to write."""
        segment, self._current = self._current, None
        if segment is None:
            return
        if written or segment.bytes == 0:
            segment.discard()
        else:
            segment.release()

    def _open(self) -> Segment | None:
        name = f"{os.getpid()}-{time.time_ns()}-{next(_sequence)}{SUFFIX}"
        path = self.folder / name
        fd = -1
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if fd >= 0:
                os.close(fd)
            self._warn("cannot create a spool segment in %s (%s)", self.folder, exc)
            return None
        return Segment(path, fd)

    def _warn(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning(
                message + "; prediction log rows of service.%s are held in memory only until it "
                "works again, so a crash of this worker could lose them",
                *args,
                self.service,
            )


def _claim(path: Path) -> Segment | None:
    """The segment at `path`, locked, if no live process holds it and it is still there."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # another process may have written and deleted it between our open and our lock
        if os.stat(path).st_ino != os.fstat(fd).st_ino:
            raise FileNotFoundError(path)
    except OSError:
        os.close(fd)
        return None
    return Segment(path, fd)
