"""The root of pipelines.yaml, and the registry of its sections.

Every field of `PipelineSpec` after `project`, `profile` and `profiles` is a section of the
life cycle. A section is registered by adding its field here, once; the other phases find
their part of it by name:

    shipyard/spec/<section>.py          the pydantic models of its entries
    shipyard/validation/<section>.py    check_<section>(spec, source_map) -> diagnostics
    shipyard/compiler/<section>.py      compile_<section>(ctx) -> steps (each step names its flow)
    flows/<verb>.py                     the Prefect flow that runs those steps

The loader salvages the valid entries of every section alike, so a shape error in one section
never hides the errors of another; the tests check that each section has all of its parts.
"""

from __future__ import annotations

from pydantic import Field

from shipyard.spec.ab_tests import AbTestSpec
from shipyard.spec.alerts import AlertRouteSpec
from shipyard.spec.base import Name, SpecModel
from shipyard.spec.datasets import DatasetSpec
from shipyard.spec.environments import EnvironmentSpec
from shipyard.spec.features import FeaturesSpec
from shipyard.spec.models import ModelSpec
from shipyard.spec.monitoring import MonitorSpec
from shipyard.spec.profiles import ProfileSpec
from shipyard.spec.rollouts import RolloutSpec
from shipyard.spec.services import ServiceSpec

NOUNS = {"ab_tests": "A/B test", "alerts": "alert route", "monitoring": "monitor"}
"""What `shipyard validate` counts in a section whose name is not its noun plus an s."""
CORE_FIELDS = ("project", "profile", "profiles", "environments")
"""Fields of the root that are not sections: where the project runs, not what it does."""


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
    environments: list[EnvironmentSpec] = Field(
        default_factory=list,
        description="Profiles a release is promoted through, in order (e.g. staging, then "
        "production): `shipyard promote` moves what passed in one to the next.",
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
    alerts: dict[Name, AlertRouteSpec] = Field(
        default_factory=dict,
        description="Named routes of apprise channels that monitors, rollouts, A/B tests and "
        "Prometheus alert rules send alerts to.",
    )
    rollouts: dict[Name, RolloutSpec] = Field(
        default_factory=dict,
        description="Canary, blue-green and rolling deliveries of a candidate model version to "
        "a service, with statistical analysis, promotion and rollback.",
    )
    ab_tests: dict[Name, AbTestSpec] = Field(
        default_factory=dict,
        description="Experiments between model versions of a service: targeting, sticky "
        "assignment, a business metric from feedback, guardrails, sequential, Bayesian or "
        "bandit designs.",
    )
    monitoring: dict[Name, MonitorSpec] = Field(
        default_factory=dict,
        description="Service -> what its monitor watches in production (drift, data quality, "
        "performance, freshness), how often, and what it does when the service drifts.",
    )

    @classmethod
    def sections(cls) -> tuple[str, ...]:
        """The life-cycle sections, in the order they are checked and compiled."""
        return tuple(name for name in cls.model_fields if name not in CORE_FIELDS)

    def counts(self) -> dict[str, int]:
        """What the spec declares, by noun, for `shipyard validate`: a mapping section counts
        its entries (`datasets` -> 'dataset'); a section of several mappings says what it
        counts (`FeaturesSpec.counts`)."""
        counts: dict[str, int] = {}
        for section in self.sections():
            value = getattr(self, section)
            if isinstance(value, dict):
                counts[NOUNS.get(section, section.removesuffix("s"))] = len(value)
            else:
                counts.update(value.counts())
        return {noun: n for noun, n in counts.items() if n}

    @property
    def active_profile(self) -> ProfileSpec:
        return self.profiles.get(self.profile) or ProfileSpec()
