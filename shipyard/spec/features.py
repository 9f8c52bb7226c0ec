"""`features:` entities, feature views over datasets, and versioned feature services (Feast)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from shipyard.spec.base import Cron, Name, SpecModel, parse_duration

SERVICE_VERSION = re.compile(r"^(?P<base>[a-z][a-z0-9_-]*?)_v(?P<version>\d+)$")


class EntitySpec(SpecModel):
    """Something features describe (a customer), identified by its join key column."""

    join_key: str = Field(description="Column that identifies the entity, e.g. customer_id.")
    description: str | None = Field(None, description="What the entity is, for people.")


class FeatureViewSpec(SpecModel):
    """Features of one entity read from a dataset with an event timestamp."""

    entity: str = Field(description="The entity (under `features.entities`) rows describe.")
    source: str = Field(description="The dataset the features come from; it needs `timestamp`.")
    features: list[str] = Field(min_length=1, description="Columns of the source to serve.")
    ttl: str = Field(
        "30d",
        description="How old a feature row may be and still be served, e.g. 30d, 12h.",
    )
    online: bool = Field(True, description="Materialize to the online store for serving.")
    schedule: Cron | None = Field(
        None, description="Cron schedule of the materialize-features deployment."
    )
    description: str | None = Field(None, description="What the view holds, for people.")

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: str) -> str:
        parse_duration(value)
        return value


class FeatureServiceSpec(SpecModel):
    """A named, versioned set of features a model is trained on and served with."""

    views: list[str] = Field(
        default_factory=list, description="Views whose features are all included."
    )
    features: list[str] = Field(
        default_factory=list, description="Single features as `view:feature`."
    )
    on_missing: Literal["null", "error"] = Field(
        "null",
        description="Online lookups of an unknown entity key: null values, or an error.",
    )
    description: str | None = Field(None, description="What the set is for, for people.")

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {"views": value}
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> FeatureServiceSpec:
        if not self.views and not self.features:
            raise ValueError("a feature service needs `views` or `features`")
        return self


class FeaturesSpec(SpecModel):
    """The feature store: compiled into a Feast repository under the state folder."""

    entities: dict[Name, EntitySpec] = Field(default_factory=dict, description="Entities.")
    views: dict[Name, FeatureViewSpec] = Field(default_factory=dict, description="Feature views.")
    services: dict[Name, FeatureServiceSpec] = Field(
        default_factory=dict,
        description="Feature services, versioned by name (churn_v1, churn_v2): a model names one.",
    )


def service_version(name: str) -> tuple[str, int | None]:
    """'churn_v2' -> ('churn', 2); names without a version suffix -> (name, None)."""
    match = SERVICE_VERSION.match(name)
    return (match.group("base"), int(match.group("version"))) if match else (name, None)


FeatureStoreKind = Literal["sqlite", "redis"]
