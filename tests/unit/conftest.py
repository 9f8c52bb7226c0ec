"""Fixtures the unit tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .webhook import Webhook


@pytest.fixture
def no_state_dir_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SHIPYARD_STATE_DIR from the environment: plans put state under the project."""
    monkeypatch.delenv("SHIPYARD_STATE_DIR", raising=False)


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Alert channels: three tries still, without seconds of back-off between them."""
    from shipyard.alerts import channels

    monkeypatch.setattr(channels, "MAX_WAIT", 0.01)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A local webhook taking apprise's json:// posts, stopped after the test."""
    server = Webhook()
    yield server
    server.stop()
