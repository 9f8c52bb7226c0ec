"""`shipyard features plan|apply|get`: the compiled Feast repository from the command line."""

from __future__ import annotations

import json
import os
from typing import Any

from shipyard.compiler import FeatureRepoStep, Plan
from shipyard.compiler.features import REPO_ID
from shipyard.errors import ShipyardError
from shipyard.settings import TELEMETRY_OFF


def _repo(plan: Plan) -> FeatureRepoStep:
    repo = plan.steps.get(REPO_ID)
    if not isinstance(repo, FeatureRepoStep):
        raise ShipyardError(
            "pipelines.yaml declares no feature views",
            hint="add `features:` with entities, views and services",
        )
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)
    return repo


def plan_command(plan: Plan) -> int:
    from shipyard.features.repo import plan_repo

    repo = _repo(plan)
    print(f"Feast repository {repo.repo_dir} (project {repo.project})")
    print(plan_repo(repo))
    return 0


def apply_command(plan: Plan) -> int:
    from shipyard.features.repo import apply_repo

    repo = _repo(plan)
    changes = apply_repo(repo)
    print(f"applied the feature repository {repo.repo_dir} (project {repo.project})")
    for line in changes or ["no changes"]:
        print(f"  {line}")
    return 0


def get_command(plan: Plan, service: str, keys: list[str]) -> int:
    from shipyard.features.online import get_online_features

    repo = _repo(plan)
    rows: list[dict[str, Any]] = []
    for key in keys:
        name, sep, value = key.partition("=")
        if not sep:
            raise ShipyardError(
                f"'{key}' is not an entity key", hint="write join_key=value, e.g. customer_id=10042"
            )
        rows.append({name: int(value) if value.lstrip("-").isdigit() else value})
    print(json.dumps(get_online_features(service, rows, repo), indent=2, default=str))
    return 0
