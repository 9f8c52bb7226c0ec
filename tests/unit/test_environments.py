"""`environments:` compile into the plan in promotion order, each with its rollouts resolved."""

from __future__ import annotations

import textwrap
from pathlib import Path

from shipyard.project import load_project

from .specs import ENVIRONMENTS_SPEC as SPEC


def _plan(tmp_path: Path, profile: str | None = None, text: str = SPEC):  # type: ignore[no-untyped-def]
    (tmp_path / "pipelines.yaml").write_text(textwrap.dedent(text))
    return load_project(tmp_path / "pipelines.yaml", profile=profile).require_plan()


def test_environments_in_order_with_their_rollouts(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    staging, production = plan.environments
    assert (staging.profile, staging.position, staging.approval) == ("staging", 0, False)
    assert (production.profile, production.position, production.approval) == (
        "production",
        1,
        True,
    )
    assert staging.rollouts == {"shop-api": "shop-api"}  # the service's own rollout
    assert production.rollouts == {"shop-api": "shop-api-careful"}  # the environment's choice
    assert staging.state_dir == str(tmp_path / ".shipyard-staging")
    assert plan.environment("production") == production
    assert plan.environment("local") is None


def test_each_environment_compiles_for_its_own_folder_and_ports(tmp_path: Path) -> None:
    staging, production = (_plan(tmp_path, p) for p in ("staging", "production"))
    assert staging.runtime.state_dir != production.runtime.state_dir
    port = {p.profile: p.steps["service.shop-api"].port for p in (staging, production)}  # type: ignore[attr-defined]
    assert port == {"staging": 3100, "production": 3110}


def test_a_spec_without_environments_has_none(tmp_path: Path) -> None:
    text = SPEC.split("environments:")[0] + "datasets:" + SPEC.split("datasets:")[1]
    text = text.split("  shop-api-careful:")[0]  # one rollout per service, as E806 wants
    assert _plan(tmp_path, text=text).environments == ()


def test_a_rollout_chosen_by_an_environment_shares_its_service(tmp_path: Path) -> None:
    """E806 (one rollout per service) counts the rollouts no environment chooses."""
    text = SPEC.replace("\n    rollouts: {shop-api: shop-api-careful}", "")
    (tmp_path / "pipelines.yaml").write_text(textwrap.dedent(text))
    project = load_project(tmp_path / "pipelines.yaml")
    assert [d.code for d in project.errors] == ["E806"]
