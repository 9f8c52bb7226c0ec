"""`shipyard features plan|apply|get`: the compiled Feast repository from the command line."""

from __future__ import annotations

import json
import os
from typing import Any

from shipyard.compiler import FeatureRepoStep, Plan
from shipyard.compiler.features import REPO_ID
from shipyard.diagnostics import did_you_mean, one_of
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
    """`shipyard features get SERVICE KEY=VALUE...`: one row per KEY=VALUE, typed as the
    entity's join key is."""
    from shipyard.features.online import get_online_features

    repo = _repo(plan)
    names = [s.name for s in repo.services]
    if service not in names:
        raise ShipyardError(
            f"feature service '{service}' is not defined",
            hint=did_you_mean(service, names) or one_of(names),
        )
    join_keys = repo.service_keys(service)
    example = ", ".join(f"{k}=<value>" for k in join_keys)
    rows: list[dict[str, Any]] = []
    for key in keys:
        name, sep, value = key.partition("=")
        if not sep:
            raise ShipyardError(
                f"'{key}' is not an entity key",
                hint=f"write {example} (the keys of feature service '{service}')",
            )
        if name not in join_keys:
            raise ShipyardError(
                f"feature service '{service}' is looked up by "
                f"{' and '.join(join_keys)}, not '{name}'",
                hint=did_you_mean(name, join_keys) or f"write {example}",
            )
        if join_keys[name] == "INT64":
            try:
                rows.append({name: int(value)})
            except ValueError:
                raise ShipyardError(
                    f"'{value}' is not a whole number, and {name} is one",
                    hint=f"write {name}=<integer>, e.g. {name}=42",
                ) from None
        else:
            rows.append({name: value})  # a text key stays text: 007 is not 7
    print(json.dumps(get_online_features(service, rows, repo), indent=2, default=str))
    return 0
