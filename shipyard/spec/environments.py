"""`environments:` the profiles a release passes through, in order (e.g. staging, production).

An environment is a profile with its own state folder: its own registry, Bento store, data
remote and services. `shipyard promote <service> --from staging --to production` moves exactly
what passed in one environment to the next: the same model files, the same data version, the
same code; then the next environment's rollout runs with it as the candidate.
"""

from __future__ import annotations

from pydantic import Field

from shipyard.spec.base import Name, SpecModel


class EnvironmentSpec(SpecModel):
    """One step of the path to production: a profile, and how a release enters it."""

    profile: str = Field(description="A profile under `profiles:` (its own state folder).")
    approval: bool = Field(
        False,
        description="A person approves each promotion into this environment: `shipyard "
        "promote` needs `--approved-by`, and rendered CI pipelines wait for a reviewer.",
    )
    rollouts: dict[Name, Name] = Field(
        default_factory=dict,
        description="Service -> the rollout (under `rollouts:`) a promotion into this "
        "environment runs. Default: the rollout whose service it is, if there is one; "
        "otherwise the promoted version becomes the champion and the service serves its "
        "promoted Bento.",
    )
