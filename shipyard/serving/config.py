"""What a built service carries: the compiled step plus the exact model versions it serves.

`shipyard build` writes this as `service.json` next to the generic service in the Bento; the
service reads it at import (for its request schema) and at start (for everything else).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shipyard.compiler import FeatureRepoStep, ServiceStep

CONFIG_FILE = "service.json"
CONFIG_ENV = "SHIPYARD_SERVICE_BUNDLE"
"""Folder holding service.json and models/, when the service runs outside a Bento (tests)."""
STATE_ENV = "SHIPYARD_STATE_DIR"
"""The state folder of the environment a worker serves in (set by `shipyard serve`)."""
TAG_BENTO = "shipyard.bento"
"""On a model version promoted from another environment: the Bento that passed there, which
this environment serves as it is (see `Environment`)."""
RELEASE_FIELDS = (
    "model",
    "registered_name",
    "task",
    "inputs",
    "input_types",
    "entity_keys",
    "request_checks",
    "features",
    "feature_service",
)
"""What a Bento holds of its service, not of its environment: a Bento promoted into another
environment must agree with that environment's service on every one of them."""


class ServedVariant(BaseModel):
    """One registered model version loaded by the service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="stable, or the candidate alias.")
    registered_name: str
    version: str = Field(description="MLflow registry version.")
    semver: str = ""
    run_id: str | None = None
    aliases: list[str] = Field(default_factory=list)
    path: str = Field(description="Model folder relative to the bundle, e.g. models/stable.")


class ModelInput(BaseModel):
    """One column of the model signature."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: str = Field(description="int, float, str, bool or datetime.")


class ServiceConfig(BaseModel):
    """service.json: everything the generic BentoML service is configured from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: ServiceStep
    feature_repo: FeatureRepoStep | None = Field(
        None, description="The Feast repository, when the service reads features online."
    )
    bento_tag: str
    built_at: str
    variants: list[ServedVariant]
    model_inputs: list[ModelInput] = Field(
        description="The model's input columns from its MLflow signature (training order)."
    )
    request_fields: list[ModelInput] = Field(description="The fields a /predict row carries.")
    input_buckets: dict[str, list[float]] = Field(
        default_factory=dict,
        description="Numeric feature -> histogram bucket edges (training-data deciles), so the "
        "input metrics can be compared with training for drift.",
    )

    @property
    def name(self) -> str:
        return self.step.service

    def variant(self, name: str) -> ServedVariant:
        return next(v for v in self.variants if v.name == name)

    def request_schema_digest(self) -> str:
        """Changes when the request schema changes (a reload cannot apply that; a restart can)."""
        return json.dumps([f.model_dump() for f in self.request_fields], sort_keys=True)


class Environment(BaseModel):
    """What an environment sets around a Bento promoted into it: its own service settings
    (ports, databases, keys, state folder), online store, and the registry versions there of
    the models the Bento carries. Kept outside the Bento, so the Bento stays byte for byte
    the one that passed the environment before."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: ServiceStep
    feature_repo: FeatureRepoStep | None = None
    variants: list[ServedVariant]

    def around(self, config: ServiceConfig) -> ServiceConfig:
        """`config` (the Bento's own) as this environment serves it: every model file, schema
        and bucket from the Bento, the settings and registry versions from here."""
        paths = {v.name: v.path for v in config.variants}
        variants = [v.model_copy(update={"path": paths[v.name]}) for v in self.variants]
        return config.model_copy(
            update={"step": self.step, "feature_repo": self.feature_repo, "variants": variants}
        )


def environment_file(state_dir: Path | str, bento_tag: str) -> Path:
    """Where an environment keeps its settings around a promoted Bento."""
    name, _, version = bento_tag.partition(":")
    return Path(state_dir) / "serving" / "environments" / name / f"{version}.json"


def release_differences(bento: ServiceStep, here: ServiceStep) -> list[str]:
    """The release fields on which a Bento's service and this environment's disagree."""
    return [f for f in RELEASE_FIELDS if getattr(bento, f) != getattr(here, f)]


def bundle_dir(default: Path) -> Path:
    """The folder of the running service's bundle: $SHIPYARD_SERVICE_BUNDLE, else `default`
    (the root of the Bento the service was loaded from)."""
    configured = os.environ.get(CONFIG_ENV)
    return Path(configured).resolve() if configured else default


def read_config(bundle: Path, state_dir: Path | str | None = None) -> ServiceConfig:
    """The bundle's service.json, as the environment of `state_dir` (default: the worker's,
    $SHIPYARD_STATE_DIR) serves it: a Bento promoted there gets that environment's settings."""
    config = read_bundle(bundle)
    state = state_dir or os.environ.get(STATE_ENV)
    if not state:
        return config
    around = environment_file(state, config.bento_tag)
    if around.is_file():
        return Environment.model_validate_json(around.read_text()).around(config)
    if state_dir is None and Path(state).resolve() != Path(config.step.state_dir).resolve():
        from shipyard.errors import ShipyardError

        # a worker must never serve with another environment's databases and keys
        raise ShipyardError(
            f"Bento {config.bento_tag} was built for the state folder {config.step.state_dir}, "
            f"and this environment ({state}) has no settings for it",
            hint=f"run `shipyard build {config.step.service}` with this environment's profile: "
            f"it writes them ({around}) for a promoted Bento, or builds one for here",
        )
    return config


def read_bundle(bundle: Path) -> ServiceConfig:
    """The bundle's own service.json, as it was built (no environment's settings)."""
    path = bundle / CONFIG_FILE
    try:
        data: Any = json.loads(path.read_text())
    except FileNotFoundError:
        from shipyard.errors import ShipyardError

        raise ShipyardError(
            f"{path} is missing: this folder is not a built service",
            hint="build one with `shipyard build <service>`",
        ) from None
    return ServiceConfig.model_validate(data)


def write_config(bundle: Path, config: ServiceConfig) -> Path:
    path = bundle / CONFIG_FILE
    path.write_text(config.model_dump_json(indent=2))
    return path
