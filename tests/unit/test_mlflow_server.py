"""The local MLflow server's commands: what a profile without one is told."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.errors import ShipyardError
from shipyard.runtime import mlflow_server

SPEC = """\
project: p
datasets:
  customers:
    path: customers.csv
    schema: {customer_id: int}
"""


def test_a_profile_without_a_server_is_given_the_command_that_browses_its_store(
    tmp_path: Path,
) -> None:
    from .specs import compile_text

    plan = compile_text(tmp_path, SPEC)
    with pytest.raises(ShipyardError) as raised:
        mlflow_server.start(plan)
    store = f"sqlite:///{tmp_path}/.shipyard/mlflow/mlflow.db"
    assert raised.value.message.endswith(f"it tracks to {store}")
    assert raised.value.hint is not None
    assert raised.value.hint.endswith(f"`{mlflow_server.browse_command(store)}`")
