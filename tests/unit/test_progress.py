"""Progress of long steps: plain start and end lines in logs, a live display on a terminal."""

from __future__ import annotations

import io
import logging
import re
import time

import pytest
from rich.console import Console

from shipyard import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_one_line_at_the_start_and_one_at_the_end() -> None:
    out = io.StringIO()
    with progress.step("training churn", total=3, stream=out) as shown:
        for _ in range(3):
            shown.advance()
    start, end = out.getvalue().splitlines()
    assert start == "training churn ..."
    assert end.startswith("training churn: done in ") and end.endswith(" s, 3/3")


def test_a_failed_step_says_why_in_its_last_line() -> None:
    out = io.StringIO()
    with progress.step("starting prefect-server", stream=out) as shown:
        shown.fail("it exited")
    assert (
        out.getvalue()
        .splitlines()[-1]
        .startswith("starting prefect-server: failed (it exited) in ")
    )


def test_an_exception_inside_the_step_is_not_reported_as_done() -> None:
    out = io.StringIO()
    with pytest.raises(RuntimeError), progress.step("building churn-api", stream=out):
        raise RuntimeError("boom: the archive is corrupt\nmore detail")
    assert "building churn-api: failed (boom: the archive is corrupt) in " in out.getvalue()
    with pytest.raises(KeyboardInterrupt), progress.step("verifying", stream=out):
        raise KeyboardInterrupt
    assert "verifying: failed (interrupted) in " in out.getvalue()


def test_a_terminal_gets_the_live_display_with_the_count() -> None:
    out = _Terminal()
    with progress.step("trials", total=4, stream=out) as shown:
        shown.advance(4)
        shown.note("best roc_auc 0.91")
    text = out.getvalue()
    assert "trials" in text and "4/4" in text and "best roc_auc 0.91" in text


class _RichConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Prints through a rich console of its own, made with the stream, as Prefect's does."""

    def __init__(self, stream: io.StringIO) -> None:
        super().__init__(stream)
        self.console = Console(file=stream, markup=False)

    def emit(self, record: logging.LogRecord) -> None:
        self.console.print(self.format(record), soft_wrap=True)


def _screen(raw: str) -> list[str]:
    """The lines a terminal ends up showing: colours dropped, each line as last rewritten."""
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)
    return [line.rsplit("\r", 1)[-1] for line in plain.split("\n")]


def test_log_lines_print_whole_above_the_live_display() -> None:
    out = _Terminal()
    plain, rich = logging.StreamHandler(out), _RichConsoleHandler(out)
    logger = logging.getLogger("test.progress.terminal")
    logger.setLevel(logging.INFO)
    logger.addHandler(plain)
    logger.addHandler(rich)
    try:
        with progress.step("trials", total=2, stream=out) as shown:
            time.sleep(0.2)  # the display has drawn itself
            logger.info("Task run 'trial-1' - Finished in state Completed()")
            shown.advance(2)
    finally:
        logger.removeHandler(plain)
        logger.removeHandler(rich)
    screen = _screen(out.getvalue())
    # once from each handler, each a line of its own, never inside the bar's line
    assert screen.count("Task run 'trial-1' - Finished in state Completed()") == 2
    assert "2/2" in screen[-2]
    # afterwards both write to their own stream again
    assert plain.stream is out and rich.console.file is out


def test_a_handler_whose_stream_cannot_be_replaced_is_left_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """logging's last-resort handler writes to `sys.stderr` as it is at the time (a read-only
    `stream` property): it must not make the step fail."""
    out = _Terminal()
    monkeypatch.setattr("sys.stderr", out)
    logger = logging.getLogger("test.progress.last_resort")
    handler = logging._StderrHandler()
    logger.addHandler(handler)
    try:
        with progress.step("trials", total=1, stream=out) as shown:
            shown.advance()
    finally:
        logger.removeHandler(handler)
    assert "1/1" in out.getvalue()
