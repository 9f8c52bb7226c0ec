"""Progress of long steps (servers starting, trials, builds), in the style of Prefect's CLI.

On a terminal: a rich spinner or bar with the elapsed time, left in place when the step ends.
Elsewhere (CI logs, pipes): one line when the step starts and one when it ends, so a log shows
what took the time without a line per tick.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    with Bar(*columns, console=Console(file=out), transient=False) as bar:
        progress._bar, progress._task = bar, bar.add_task(description, total=total)
        yield progress
