"""`services:` BentoML services that serve a registered model over HTTP."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from shipyard.spec.base import DURATION_PATTERN, Name, SpecModel
from shipyard.spec.models import spec_rule

Role = Literal["predict", "feedback", "admin"]
ROLES: tuple[Role, ...] = ("predict", "feedback", "admin")

RATE_PATTERN = r"^\s*\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day|month|year)s?\s*$"
_RATE = re.compile(RATE_PATTERN)


def _check_rate(value: str) -> str:
    if not _RATE.match(value):
        raise spec_rule(
            f"'{value}' is not a rate",
            "write a count per period: '200/second', '1000 per minute' or '10 per 2 hours' "
            "(second, minute, hour, day, month, year)",
        )
    return value


RateLimit = Annotated[
    str,
    AfterValidator(_check_rate),
    Field(
        description="A rate such as '200/second' or '1000 per minute'.",
        examples=["200/second", "1000/minute"],
        json_schema_extra={"pattern": RATE_PATTERN},
    ),
]


class ApiKeySpec(SpecModel):
    """One API key and the roles it grants."""

    key: str = Field(
        description="The key itself; write a secret reference (${secret:NAME}) so it never "
        "sits in the file. Resolved when the service starts."
    )
    roles: list[Role] = Field(
        default_factory=lambda: list[Role](["predict"]),
        min_length=1,
        description="What the key may do: predict, feedback, admin (routing and reloads).",
    )
    rate_limit: RateLimit | None = Field(
        None, description="This key's own limit, replacing the service's `rate_limit.per_key`."
    )


class JwtSpec(SpecModel):
    """JSON Web Tokens signed by an identity provider; roles come from a claim."""

    algorithm: Literal["HS256", "RS256"] = Field(description="HS256 (shared secret) or RS256.")
    secret: str | None = Field(None, description="HS256 shared secret, as ${secret:NAME}.")
    public_key: str | None = Field(
        None, description="RS256 public key (PEM text or ${secret:NAME})."
    )
    audience: str | None = Field(None, description="Required `aud` claim, when set.")
    issuer: str | None = Field(None, description="Required `iss` claim, when set.")
    roles_claim: str = Field("roles", description="Claim holding the roles (list or string).")
    leeway: Annotated[str, Field(pattern=DURATION_PATTERN)] = Field(
        "0s", description="Clock skew tolerated on `exp`, e.g. 30s."
    )

    @model_validator(mode="after")
    def _key_for_algorithm(self) -> JwtSpec:
        if self.algorithm == "HS256" and not self.secret:
            raise spec_rule(
                "HS256 needs `secret`",
                "add `secret: ${secret:NAME}`, the key the tokens are signed with",
            )
        if self.algorithm == "RS256" and not self.public_key:
            raise spec_rule(
                "RS256 needs `public_key`",
                "add `public_key: ${secret:NAME}` with the issuer's PEM public key",
            )
        return self


class AuthSpec(SpecModel):
    """Who may call the service: API keys and/or JWTs, each with roles."""

    api_keys: dict[Name, ApiKeySpec] = Field(
        default_factory=dict, description="Named API keys (the name shows in logs and limits)."
    )
    jwt: JwtSpec | None = Field(None, description="Accept JWTs (HS256 or RS256).")

    @model_validator(mode="after")
    def _something(self) -> AuthSpec:
        if not self.api_keys and self.jwt is None:
            raise spec_rule(
                "auth declares neither `api_keys` nor `jwt`",
                'add an API key (`api_keys: {ops: {key: "${secret:NAME}", roles: [predict]}}`) '
                "or remove `auth:` to serve without authentication",
            )
        return self


def _rate_shorthand(value: Any) -> Any:
    """`rate_limit: 200/second` is a global limit."""
    return {"global": value} if isinstance(value, str) else value


class RateLimitSpec(SpecModel):
    """Request rate limits; 429 with Retry-After beyond them."""

    per_key: RateLimit | None = Field(None, description="Per API key or token subject.")
    global_: RateLimit | None = Field(None, alias="global", description="For all callers together.")


class BatchingSpec(SpecModel):
    """Batches: the largest request accepted and adaptive batching across requests."""

    max_batch_size: int = Field(
        100, ge=1, le=100_000, description="Most rows in one request; larger requests get 413."
    )
    adaptive: bool = Field(
        True,
        description="Merge rows of concurrent requests for the same model into one predict call.",
    )
    max_latency_ms: float = Field(
        0,
        ge=0,
        le=1000,
        description="How long a batch may wait for more requests; 0 merges only requests "
        "already waiting (no added latency).",
    )
    max_request_mb: float = Field(
        16,
        gt=0,
        le=1024,
        description="Largest request body in MiB; a larger one gets 413 before it is parsed.",
    )


class LoggingSpec(SpecModel):
    """Request and prediction logging, with masking."""

    requests: bool = Field(True, description="One JSON log line per request.")
    predictions: bool = Field(
        True, description="Write every prediction (inputs, output, variant) to the prediction log."
    )
    mask: list[str] = Field(
        default_factory=list,
        description="Field-name patterns (fnmatch, e.g. email, *_token) never written to logs.",
    )


class TlsSpec(SpecModel):
    """TLS options passed to `bentoml serve`."""

    certfile: str = Field(description="PEM certificate file.")
    keyfile: str = Field(description="PEM private key file.")
    ca_certs: str | None = Field(
        None, description="CA bundle; clients must present a certificate it signed (mutual TLS)."
    )


class RoutingSpec(SpecModel):
    """How requests are assigned to variants until a rollout or A/B test changes it."""

    sticky_key: str | None = Field(
        None, description="Input field that keeps a caller on one variant (e.g. customer_id)."
    )


class ServiceSpec(SpecModel):
    """A BentoML service serving a registered model (and candidates) over HTTP."""

    description: str | None = Field(None, description="What the service is for, for people.")
    model: Name = Field(description="A model under `models:`; its registered versions are served.")
    alias: str = Field("champion", description="Registry alias of the stable variant.")
    version: int | None = Field(
        None, ge=1, description="Pin the stable variant to this registry version (beats alias)."
    )
    candidates: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]] = Field(
        default_factory=list,
        description="Registry aliases loaded side by side as extra variants (e.g. challenger); "
        "they get no traffic until routing gives them weight.",
    )
    features: Name | None = Field(
        None,
        description="Feature service read online by entity key; defaults to the one the model "
        "trained on. Requests then carry only entity keys.",
    )
    host: str = Field("127.0.0.1", description="Interface `shipyard serve` binds.")
    port: int = Field(3000, ge=1, le=65535, description="Port `shipyard serve` binds.")
    workers: int = Field(1, ge=1, le=64, description="BentoML worker processes.")
    timeout: Annotated[str, Field(pattern=DURATION_PATTERN)] = Field(
        "10s", description="Request timeout."
    )
    batching: BatchingSpec = Field(default_factory=BatchingSpec)
    auth: AuthSpec | None = Field(
        None, description="API keys and JWT with roles; without it anyone may call every endpoint."
    )
    rate_limit: Annotated[RateLimitSpec | None, BeforeValidator(_rate_shorthand)] = Field(
        None, description="Limits per key and global; a bare rate ('200/second') is global."
    )
    logging: LoggingSpec = Field(default_factory=LoggingSpec)
    routing: RoutingSpec = Field(default_factory=RoutingSpec)
    tls: TlsSpec | None = Field(None, description="Serve HTTPS with these files.")
