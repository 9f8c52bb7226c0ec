"""Progress of long steps (servers starting, trials, builds), in the style of Prefect's CLI.

On a terminal: a rich spinner or bar with the elapsed time, left in place when the step ends;
log lines written meanwhile (Prefect's among them) print above it, whole. Elsewhere (CI logs,
pipes): one line when the step starts and one when it ends, so a log shows what took the time
without a line per tick.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, TextIO


class Progress:
    """One step's progress: `advance()` counts done units, `note()` says what is going on."""

    def __init__(self, description: str, total: int | None, stream: TextIO) -> None:
        self.description, self.total, self.stream = description, total, stream
        self.done = 0
        self.failure: str | None = None
        self.started = time.monotonic()
        self._bar: Any = None
        self._task: Any = None

    def advance(self, units: int = 1) -> None:
        self.done += units
        if self._bar is not None:
            self._bar.update(self._task, advance=units)

    def note(self, text: str) -> None:
        """A short status beside the description (the live display only)."""
        if self._bar is not None:
            self._bar.update(self._task, description=f"{self.description} [dim]{text}[/dim]")

    def fail(self, reason: str) -> None:
        """The step did not succeed (without raising from inside the block)."""
        self.failure = reason
        if self._bar is not None:
            self._bar.update(self._task, description=f"{self.description} [red]{reason}[/red]")

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


@contextmanager
def step(
    description: str, total: int | None = None, stream: TextIO | None = None
) -> Iterator[Progress]:
    """Show `description` while the block runs (a bar when `total` units are known)."""
    out = stream if stream is not None else sys.stderr
    progress = Progress(description, total, out)
    if not out.isatty():
        print(f"{description} ...", file=out, flush=True)
        ok = False
        try:
            yield progress
            ok = progress.failure is None
        except BaseException as exc:
            progress.failure = progress.failure or _reason(exc)
            raise
        finally:
            counted = f", {progress.done}/{total}" if total else ""
            outcome = "done" if ok else f"failed ({progress.failure or 'interrupted'})"
            print(f"{description}: {outcome} in {progress.elapsed:.1f} s{counted}", file=out)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as Bar

    columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn()]
    columns.append(TimeElapsedColumn())
    with Bar(*columns, console=Console(file=out), transient=False) as bar, _logs_above(bar.console):
        progress._bar, progress._task = bar, bar.add_task(description, total=total)
        try:
            yield progress
        except BaseException as exc:
            progress.fail(progress.failure or _reason(exc))
            raise


def _reason(exc: BaseException) -> str:
    """Why a step's block raised, short: its message's first line (the error itself prints
    in full after the step's line)."""
    if isinstance(exc, KeyboardInterrupt | GeneratorExit):
        return "interrupted"
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return first if len(first) <= 80 else first[:77] + "..."


@contextmanager
def _logs_above(console: Any) -> Iterator[None]:
    """While the live display runs, logging handlers that write to a terminal write through its
    console, so their lines print above the display instead of into it. Rich redirects
    `sys.stderr`, but handlers keep the stream they were made with, and Prefect's prints
    through a rich console of its own."""
    with ExitStack() as restore:
        for handler in _stream_handlers():
            inner = getattr(handler, "console", None)  # Prefect's console handler
            if inner is not None and _is_terminal(inner.file):
                previous = inner.file
                inner.file = _LinesAbove(console, previous)
                restore.callback(setattr, inner, "file", previous)
            elif inner is None and _is_terminal(handler.stream):
                try:
                    previous = handler.setStream(_LinesAbove(console, handler.stream))
                except AttributeError:  # a stream fixed by its class (logging's lastResort
                    continue  # writes to sys.stderr as it is, which the live display redirects)
                restore.callback(handler.setStream, previous)
        yield


class _LinesAbove:
    """A terminal stream whose whole lines print above a live display, through its console.

    (Not rich's FileProxy: a rich console given one as its file sees through it, to the
    terminal below.)"""

    def __init__(self, console: Any, terminal: TextIO) -> None:
        self._console, self._terminal, self._partial = console, terminal, ""

    def write(self, text: str) -> int:
        from rich.text import Text

        *lines, self._partial = (self._partial + text).split("\n")
        if lines:
            self._console.print(Text("\n").join(Text.from_ansi(line) for line in lines))
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self.write("\n")

    def isatty(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._terminal, name)


def _stream_handlers() -> list[logging.StreamHandler[Any]]:
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    found: dict[int, logging.StreamHandler[Any]] = {}
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler):
                found.setdefault(id(handler), handler)
    return list(found.values())


def _is_terminal(stream: Any) -> bool:
    if stream is None or isinstance(stream, _LinesAbove):
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
