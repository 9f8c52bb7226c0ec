"""What a service's start is doing, and why it failed, from its log, as `shipyard serve` waits.

Workers log each step of their start as a JSON line with `startup` and their `pid`
(`stage()`); the `bentoml serve` process logs when it listens. `StartWatch` reads the lines
written since the start began, turns them into progress for the person waiting ("worker 1:
loading model churn v3 (stable)", "worker 1 ready (4.2 s)"), and finds the first failure: a
worker whose `__init__` raised, a traceback the serve process printed before it exited, or a
port that was taken. `Failure` says it in a few lines: the exception, the last frames that led
to it, and what to do.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("shipyard.serving.startup")
TRACE_LINES = 8
"""Lines of a traceback a failure shows: its last frames and the exception."""


def stage(message: str, **fields: Any) -> None:
    """One step of this worker's start, for `shipyard serve` to show while it waits."""
    log.info(message, extra={"fields": {"startup": message, "pid": os.getpid(), **fields}})


@dataclass
class Failure:
    """Why the start failed: the exception line, the lines before it, and what to do."""

    cause: str
    trace: list[str] = field(default_factory=list)
    hint: str | None = None

    def text(self) -> str:
        shown = [line for line in self.trace if line.strip()][-TRACE_LINES:]
        return self.cause + "".join(f"\n    {line}" for line in shown)


@dataclass
class _Worker:
    number: int
    message: str = ""
    ready: bool = False


class StartWatch:
    """Reads a service's log from `offset` on, as its start goes: `poll()` returns the new
    progress lines, `failure` is set at the first sign that the start cannot succeed."""

    def __init__(
        self, log_file: Path, offset: int, service: str, bento_dir: Path | None = None
    ) -> None:
        self.log_file, self.offset = log_file, offset
        self.service, self.bento_dir = service, bento_dir
        self.workers: dict[int, _Worker] = {}
        self.failure: Failure | None = None
        self.listening = False
        self.started = time.monotonic()
        self._partial = b""
        self._text: list[str] = []  # lines that are not JSON: a traceback printed as text
        self._fix: str | None = None  # the hint of the ShipyardError a worker failed with

    # -- reading ----------------------------------------------------------------------------

    def poll(self) -> list[str]:
        """Read what was written since the last call; returns the progress to show."""
        try:
            with self.log_file.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            return []
        self.offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        shown: list[str] = []
        for raw in lines:
            line = raw.decode(errors="replace").rstrip()
            if line:
                shown += self._line(line)
        return shown

    def _line(self, line: str) -> list[str]:
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            self._text.append(line)
            if "address already in use" in line.lower() and self.failure is None:
                self.failure = Failure(line.strip(), hint=None)
            return []
        message = str(entry.get("message") or "")
        error = str(entry.get("error") or "")
        if "startup" in entry and isinstance(entry.get("pid"), int):
            return self._stage(entry)
        if entry.get("logger") == "bentoml.serve" and "listening on" in message:
            self.listening = True
            return ["bentoml serve is listening; the workers are loading the service ..."]
        if message == "Initializing service error" and self.failure is None:
            self.failure = self.explain_trace(error.splitlines())
        elif "address already in use" in (message + error).lower() and self.failure is None:
            self.failure = Failure(_last(message.splitlines() or [message]))
        elif error or "Traceback" in message:
            self._text += (error or message).splitlines()
        return []

    def _stage(self, entry: dict[str, Any]) -> list[str]:
        pid = int(entry["pid"])
        worker = self.workers.get(pid)
        if worker is None:
            worker = self.workers[pid] = _Worker(number=len(self.workers) + 1)
        if entry["startup"] == "failed":
            self._fix = str(entry["hint"]) if entry.get("hint") else self._fix
            return []
        if entry["startup"] == "ready":
            worker.ready = True
            return [f"worker {worker.number} ready ({time.monotonic() - self.started:.1f} s)"]
        worker.message = str(entry["startup"])
        return [f"worker {worker.number}: {worker.message} ..."]

    # -- explaining -------------------------------------------------------------------------

    def waiting_for(self) -> str:
        """What the start waits for now, for a line when nothing new was logged for a while."""
        if not self.listening:
            return "bentoml serve is loading the service"
        busy = [w for w in self.workers.values() if not w.ready]
        if not busy:
            return "the workers are importing the service"
        return "; ".join(f"worker {w.number}: {w.message}" for w in busy)

    def exited(self, what: str = "bentoml serve exited without saying why") -> Failure:
        """Why a process of the service exited: the traceback it left in the log, else
        `what`."""
        self.poll()
        if self.failure is not None:
            return self.failure
        trace = _last_traceback(self._text)
        if trace:
            return self.explain_trace(trace)
        return Failure(what, hint=f"its last lines are in {self.log_file}")

    def explain_trace(self, lines: list[str]) -> Failure:
        """A traceback's exception and last frames, with the fix its exception suggests."""
        # not the carets under a frame's code: they only point into the line above
        lines = [line.rstrip() for line in lines if line.strip().strip("^~ ")]
        exception = _exception_line(lines)
        before = lines[: lines.index(exception)] if exception in lines else lines
        hint = self._hint(exception, before) or self._fix
        return Failure(exception, before[-(TRACE_LINES - 1) :], hint)

    def _hint(self, exception: str, frames: list[str]) -> str | None:
        lowered = exception.lower()
        bento = str(self.bento_dir) if self.bento_dir else None
        if "address already in use" in lowered:
            return None  # the caller names the port and the spec key
        if exception.startswith(("ModuleNotFoundError", "ImportError")):
            return (
                "a package the service imports is missing or broken in this environment "
                f"({Path(sys.executable).parent.parent}): reinstall it (`make venv` "
                "builds .venv from requirements.lock)"
            )
        if bento and bento in exception and ("No such file" in exception or "not found" in lowered):
            return (
                f"the Bento is missing files it was built with: delete {bento} and run "
                f"`shipyard serve {self.service}` again, which builds it anew"
            )
        reading_config = any("read_config" in line for line in frames)
        if "service.json" in exception or "ValidationError" in exception or reading_config:
            return (
                "the Bento's service.json does not fit this Shipyard: delete "
                f"{bento or 'the Bento'} and run `shipyard serve {self.service}` again, "
                "which builds it anew"
            )
        return None


def _exception_line(lines: list[str]) -> str:
    """The line that names the exception: the last unindented line of the traceback."""
    for line in reversed(lines):
        if line and not line.startswith((" ", "\t")) and not line.startswith("Traceback"):
            return line.strip()
    return _last(lines)


def _last(lines: list[str]) -> str:
    found = [line.strip() for line in lines if line.strip()]
    return found[-1] if found else "(no message)"


def _last_traceback(lines: list[str]) -> list[str]:
    """The last traceback among the lines (from its last "Traceback" line on), or the last
    lines when none starts with one."""
    starts = [i for i, line in enumerate(lines) if line.lstrip().startswith("Traceback")]
    if starts:
        return lines[starts[-1] :]
    errors = [line for line in lines if re.match(r"^\w*(Error|Exception)\b", line.strip())]
    return lines[-TRACE_LINES:] if errors else []
