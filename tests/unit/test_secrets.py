"""Secret references resolve at run time and name the fix when unset."""

from __future__ import annotations

import pytest

from shipyard.errors import ShipyardError
from shipyard.secrets import env_name, resolve


def test_env_name() -> None:
    assert env_name("slack-url") == "SHIPYARD_SECRET_SLACK_URL"


def test_resolve_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_SECRET_DB_PASS", "hunter2")
    assert resolve("postgresql://u:${secret:db-pass}@h/db", use_prefect=False) == (
        "postgresql://u:hunter2@h/db"
    )
    assert resolve("no references", use_prefect=False) == "no references"
    assert resolve(None) is None


def test_unset_secret_names_both_fixes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHIPYARD_SECRET_MISSING", raising=False)
    with pytest.raises(ShipyardError) as info:
        resolve("${secret:missing}", use_prefect=False)
    assert "secret 'missing' is not set" in info.value.message
    assert "SHIPYARD_SECRET_MISSING" in (info.value.hint or "")
    assert "Prefect Secret block" in (info.value.hint or "")


def test_redact_url_hides_only_the_password() -> None:
    from shipyard.secrets import redact_url

    assert redact_url("redis://:s3cret@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redact_url("postgresql://app:pw@db/x") == "postgresql://app:***@db/x"
    assert redact_url("postgresql://app@db/x") == "postgresql://app@db/x"
