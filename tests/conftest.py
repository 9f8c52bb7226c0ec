"""Test-wide environment: telemetry off, nothing written outside temporary folders."""

from __future__ import annotations

import os
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import SPEC, free_port

from shipyard.settings import TELEMETRY_OFF

os.environ.update(TELEMETRY_OFF)
for _var in ("PREFECT_API_URL", "SHIPYARD_STATE_DIR", "SHIPYARD_SPEC", "SHIPYARD_PROFILE"):
    os.environ.pop(_var, None)
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="shipyard-tests-"))
os.environ["PREFECT_HOME"] = str(_SESSION_HOME / "prefect")
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_SESSION_HOME / 'mlflow.db'}"
os.environ["BENTOML_HOME"] = str(_SESSION_HOME / "bentoml")
Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Path]:
    """A project folder with pipelines.yaml and demo data; returns the spec path."""

    def make(rows: int = 200, spec: str | None = None, port: int | None = None) -> Path:
        from shipyard.demo_data import write_customers

        text = spec if spec is not None else SPEC.format(port=port or free_port())
        (tmp_path / "pipelines.yaml").write_text(textwrap.dedent(text))
        if rows:
            write_customers(tmp_path / "data" / "customers.parquet", rows=rows)
        return tmp_path / "pipelines.yaml"

    return make


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test harness (a temporary server and database) for the whole session: the
    flow and fault tests share it."""
    # Prefect sets up its logging handlers when `prefect.main` is first imported, bound to
    # sys.stderr as it is then: import it here, with the session's stderr, not inside a test
    # using capsys, whose buffer is closed after that test (every later log line would fail).
    import prefect.main  # noqa: F401
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
