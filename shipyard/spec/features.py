"""`features:` entities, feature views over datasets, and versioned feature services (Feast)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from shipyard.spec.base import (
    DURATION_PATTERN,
    Cron,
    DurationError,
    Name,
    SpecModel,
    parse_duration,
    spec_rule,
)

SERVICE_VERSION = re.compile(r"^(?P<base>[a-z][a-z0-9_-]*?)_v(?P<version>\d+)$")


class EntitySpec(SpecModel):
    """Something features describe (a customer), identified by its join key column."""

    join_key: str = Field(description="Column that identifies the entity, e.g. customer_id.")
    description: str | None = Field(None, description="What the entity is, for people.")


def _ttl_not_number(value: Any) -> Any:
    """`ttl: 30` (no unit) is the usual slip: say what is missing."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise spec_rule(
            f"{value} is not a duration", f"add a unit, e.g. {value}d (days) or {value}h (hours)"
        )
    return value


class FeatureViewSpec(SpecModel):
    """Features of one entity from a dataset: over time, or static if it has no `timestamp`."""

    entity: str = Field(description="The entity (under `features.entities`) rows describe.")
    source: str = Field(
        description="The dataset the features come from (parquet, csv, json or jsonl). With a "
        "`timestamp`, its rows are the features' history; without, the view is static: one "
        "row per entity, valid forever."
    )
    features: list[str] = Field(min_length=1, description="Columns of the source to serve.")
    ttl: Annotated[
        str,
        BeforeValidator(_ttl_not_number),
        WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
    ] = Field(
        "30d",
        description="How old a feature row may be and still be served: a number and a unit "
        "(s, m, h, d, w), e.g. 12h, 30d. Not for a static view: its rows never expire.",
    )
    online: bool = Field(True, description="Materialize to the online store for serving.")
    schedule: Cron | None = Field(
        None, description="Cron schedule of the materialize-features deployment."
    )
    description: str | None = Field(None, description="What the view holds, for people.")

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: str) -> str:
        try:
            seconds = parse_duration(value)
        except DurationError as exc:
            raise spec_rule(
                exc.problem,
                "write a number and a unit (s, m, h, d, w) with no space, e.g. 12h, 30d or 2w",
            ) from None
        if seconds < 1:
            raise spec_rule(
                f"'{value}' is shorter than a second",
                "Feast counts ttl in whole seconds (0 would mean no limit), e.g. 12h or 30d",
            )
        return value


def _null_is_the_null_policy(value: Any) -> Any:
    """`on_missing: null` reads as YAML null: it means the policy named 'null'."""
    return "null" if value is None else value


def _list_shorthand_schema(schema: dict[str, Any]) -> None:
    """The schema accepts what the loader accepts: a mapping, or the list of views."""
    mapping = {k: v for k, v in schema.items() if k not in ("description", "title")}
    for key in mapping:
        del schema[key]
    mapping["anyOf"] = [{"required": ["views"]}, {"required": ["features"]}]
    schema["anyOf"] = [
        mapping,
        {
            "type": "array",
            "items": {"type": "string"},
            "minItems": 1,
            "description": "its views, e.g. `churn_v1: [customer_profile]` "
            "(short for `views: [customer_profile]`).",
        },
    ]


class FeatureServiceSpec(SpecModel):
    """A named, versioned set of features a model is trained on and served with."""

    model_config = ConfigDict(json_schema_extra=_list_shorthand_schema)

    views: list[str] = Field(
        default_factory=list, description="Views whose features are all included."
    )
    features: list[str] = Field(
        default_factory=list, description="Single features as `view:feature`."
    )
    on_missing: Annotated[
        Literal["null", "error"],
        BeforeValidator(_null_is_the_null_policy),
        WithJsonSchema({"enum": ["null", "error", None]}),
    ] = Field(
        "null",
        description="Online lookups of an unknown entity key: null values, or an error.",
    )
    description: str | None = Field(None, description="What the set is for, for people.")

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {"views": value}
        if isinstance(value, str):
            raise spec_rule(
                f"'{value}' is not a list of views",
                f"write the views as a list, e.g. [{value}], or a mapping with `views:`",
            )
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> FeatureServiceSpec:
        if not self.views and not self.features:
            raise spec_rule(
                "a feature service needs `views` or `features`",
                "list whole views, e.g. [customer_profile], or single features as "
                "`features: [view:feature]`",
                key=True,
            )
        return self


class FeaturesSpec(SpecModel):
    """The feature store: compiled into a Feast repository under the state folder."""

    entities: dict[Name, EntitySpec] = Field(default_factory=dict, description="Entities.")
    views: dict[Name, FeatureViewSpec] = Field(default_factory=dict, description="Feature views.")
    services: dict[Name, FeatureServiceSpec] = Field(
        default_factory=dict,
        description="Feature services, versioned by name (churn_v1, churn_v2): a model names one.",
    )

    def counts(self) -> dict[str, int]:
        """What `shipyard validate` counts of the feature store."""
        return {"feature view": len(self.views)}


def service_version(name: str) -> tuple[str, int | None]:
    """'churn_v2' -> ('churn', 2); names without a version suffix -> (name, None)."""
    match = SERVICE_VERSION.match(name)
    return (match.group("base"), int(match.group("version"))) if match else (name, None)


FeatureStoreKind = Literal["sqlite", "redis"]


def service_features(features: FeaturesSpec, service: str) -> list[tuple[FeatureViewSpec, str]]:
    """(view, feature) pairs of a service, in declaration order; unknown references skipped."""
    declared = features.services[service]
    out: list[tuple[FeatureViewSpec, str]] = []
    for view_name in declared.views:
        view = features.views.get(view_name)
        if view is not None:
            out += [(view, f) for f in view.features]
    for reference in declared.features:
        view_name, _, feature = reference.partition(":")
        view = features.views.get(view_name)
        if view is not None and feature in view.features:
            out.append((view, feature))
    seen: set[str] = set()
    unique = []
    for view, feature in out:
        if feature not in seen:
            seen.add(feature)
            unique.append((view, feature))
    return unique


def service_references(features: FeaturesSpec, service: str) -> list[str]:
    """`view:feature` references of a service (what Feast asks for)."""
    names = {id(v): n for n, v in features.views.items()}
    return [f"{names[id(view)]}:{feature}" for view, feature in service_features(features, service)]
