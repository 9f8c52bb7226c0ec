"""The public API of `shipyard`: exactly what `__all__` lists, each name importable."""

from __future__ import annotations

import subprocess
import sys

import shipyard

PUBLIC = [
    "Diagnostic",
    "PipelineSpec",
    "Plan",
    "Project",
    "ShipyardError",
    "SpecError",
    "StepBase",
    "__version__",
    "compile_plan",
    "load_project",
    "load_spec",
    "read_plan",
    "validate",
    "write_plan",
]


def test_all_is_pinned_and_sorted() -> None:
    assert shipyard.__all__ == PUBLIC == sorted(PUBLIC)


def test_every_public_name_resolves() -> None:
    for name in PUBLIC:
        assert getattr(shipyard, name) is not None, name


def test_unknown_names_are_attribute_errors() -> None:
    try:
        shipyard.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_the_facade_loads_validates_and_compiles() -> None:
    project = shipyard.load_project(shipyard_demo_spec())
    assert project.ok and project.plan is not None
    assert isinstance(project.plan, shipyard.Plan)
    assert project.counts() == {
        "dataset": 1,
        "feature view": 2,
        "model": 1,
        "service": 1,
        "alert route": 1,
        "rollout": 1,
        "A/B test": 1,
        "monitor": 1,
    }


def shipyard_demo_spec() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parents[2] / "pipelines.yaml")


def test_importing_shipyard_loads_nothing_until_a_name_is_used() -> None:
    code = "import shipyard, sys; print(sorted(m for m in sys.modules if m.startswith('shipyard')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['shipyard']"
