"""The pure phases (load, validate, compile) and the CLI import none of the heavy stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("prefect", "mlflow", "bentoml", "feast", "great_expectations", "dvc")
DEMO_SPEC = Path(__file__).resolve().parents[2] / "pipelines.yaml"
FEATURE_ERRORS_SPEC = Path(__file__).resolve().parents[1] / "golden" / "specs" / "features.yaml"

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


@pytest.mark.parametrize(
    ("spec", "command", "exit_code"),
    [
        (DEMO_SPEC, "validate", 0),
        (DEMO_SPEC, "plan", 0),
        (DEMO_SPEC, "schema", 0),
        # every feature rule and the Feast-related model rules report, still without Feast
        (FEATURE_ERRORS_SPEC, "validate", 1),
        (FEATURE_ERRORS_SPEC, "plan", 1),
    ],
    ids=["validate", "plan", "schema", "validate-feature-errors", "plan-feature-errors"],
)
def test_pure_commands_import_no_heavy_library(spec: Path, command: str, exit_code: int) -> None:
    run = (
        "with contextlib.redirect_stdout(io.StringIO()), "
        "contextlib.redirect_stderr(io.StringIO()):\n"
        f"    code = shipyard.cli.main(['-f', {str(spec)!r}, {command!r}])\n"
        f"assert code == {exit_code}, code"
    )
    assert heavy_modules_after(run) == []


def test_the_demo_spec_exercises_the_feature_store() -> None:
    # the commands above import no Feast *with* features: views, services and a model on one
    from shipyard.loader import load_spec

    loaded = load_spec(DEMO_SPEC, env={})
    assert loaded.spec is not None
    assert loaded.spec.features.views and loaded.spec.features.services
    assert any(m.feature_service for m in loaded.spec.models.values())


def test_probe_would_notice_a_heavy_import() -> None:
    # guards the test above against a probe that can never fail
    assert heavy_modules_after("import dvc") != []


def test_the_rollout_status_path_imports_no_statistics_stack() -> None:
    # `rollout status` reads a stored state: scipy (most of a second) only when judging
    run = "import shipyard.rollouts.commands, shipyard.rollouts.report"
    code = (
        PROBE.format(run=run, heavy=HEAVY).rsplit("heavy =", 1)[0]
        + "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
