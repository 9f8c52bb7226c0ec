"""The root of pipelines.yaml."""

from __future__ import annotations

from pydantic import Field

from shipyard.spec.base import Name, SpecModel
from shipyard.spec.datasets import DatasetSpec
from shipyard.spec.features import FeaturesSpec
from shipyard.spec.models import ModelSpec
from shipyard.spec.profiles import ProfileSpec
from shipyard.spec.services import ServiceSpec


class PipelineSpec(SpecModel):
    """pipelines.yaml: one declarative file for the whole ML life cycle."""

    project: Name = Field(description="Project name; prefixes deployments, blocks and metrics.")
    profile: str = Field(
        "local",
        description="The active profile, usually ${SHIPYARD_PROFILE:-local}.",
    )
    profiles: dict[str, ProfileSpec] = Field(
        default_factory=lambda: {"local": ProfileSpec()},
        description="Named deployment targets; `local: {}` is the embedded default.",
    )
    datasets: dict[Name, DatasetSpec] = Field(
        default_factory=dict, description="Data files with schema, expectations and versioning."
    )
    features: FeaturesSpec = Field(
        default_factory=FeaturesSpec,
        description="Entities, feature views and versioned feature services (Feast).",
    )
    models: dict[Name, ModelSpec] = Field(
        default_factory=dict,
        description="Models trained on a dataset, tracked in MLflow, gated and registered.",
    )
    services: dict[Name, ServiceSpec] = Field(
        default_factory=dict,
        description="BentoML services serving registered models, with auth, limits and logs.",
    )

    @property
    def active_profile(self) -> ProfileSpec:
        return self.profiles.get(self.profile) or ProfileSpec()
