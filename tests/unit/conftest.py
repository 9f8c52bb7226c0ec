"""Fixtures the unit tests share."""

from __future__ import annotations

import pytest


@pytest.fixture
def no_state_dir_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SHIPYARD_STATE_DIR from the environment: plans put state under the project."""
    monkeypatch.delenv("SHIPYARD_STATE_DIR", raising=False)
