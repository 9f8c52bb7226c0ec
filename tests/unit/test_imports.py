"""The pure phases (load, validate, compile) and the CLI import none of the heavy stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("prefect", "mlflow", "bentoml", "feast", "great_expectations", "dvc")
DEMO_SPEC = Path(__file__).resolve().parents[2] / "pipelines.yaml"

PROBE = """
import contextlib, io, json, sys
import shipyard.cli, shipyard.loader, shipyard.validation, shipyard.compiler
{run}
heavy = {heavy!r}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""


def heavy_modules_after(run: str) -> list[str]:
    code = PROBE.format(run=run, heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_pure_phases_imports_no_heavy_library() -> None:
    assert heavy_modules_after("") == []


@pytest.mark.parametrize("command", ["validate", "plan", "schema"])
def test_pure_commands_import_no_heavy_library(command: str) -> None:
    run = (
        "with contextlib.redirect_stdout(io.StringIO()), "
        "contextlib.redirect_stderr(io.StringIO()):\n"
        f"    code = shipyard.cli.main(['-f', {str(DEMO_SPEC)!r}, {command!r}])\n"
        "assert code == 0, code"
    )
    assert heavy_modules_after(run) == []


def test_probe_would_notice_a_heavy_import() -> None:
    # guards the test above against a probe that can never fail
    assert heavy_modules_after("import dvc") != []
