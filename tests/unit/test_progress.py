"""Progress of long steps: plain start and end lines in logs, a live display on a terminal."""

from __future__ import annotations

import io

import pytest

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
        raise RuntimeError("boom")
    assert "failed (interrupted)" in out.getvalue()


def test_a_terminal_gets_the_live_display_with_the_count() -> None:
    out = _Terminal()
    with progress.step("trials", total=4, stream=out) as shown:
        shown.advance(4)
        shown.note("best roc_auc 0.91")
    text = out.getvalue()
    assert "trials" in text and "4/4" in text and "best roc_auc 0.91" in text
