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


def bundle_dir(default: Path) -> Path:
    """The folder of the running service's bundle: $SHIPYARD_SERVICE_BUNDLE, else `default`
    (the root of the Bento the service was loaded from)."""
    configured = os.environ.get(CONFIG_ENV)
    return Path(configured).resolve() if configured else default


def read_config(bundle: Path) -> ServiceConfig:
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
