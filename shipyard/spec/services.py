"""`services:` BentoML services that serve a registered model over HTTP."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from shipyard.spec.base import Duration, Name, SpecModel, parse_duration, spec_rule
from shipyard.spec.features import service_features

Role = Literal["predict", "feedback", "admin"]
ROLES: tuple[Role, ...] = ("predict", "feedback", "admin")
RequestChecks = Literal["reject", "flag", "off"]
"""What a service does with a request row that fails an expectation of its training data."""

if TYPE_CHECKING:
    from shipyard.spec.root import PipelineSpec

RATE_PATTERN = (
    r"^\s*([0-9]+)\s*(?:/|per)\s*(?:([0-9]+)\s*)?(?:second|minute|hour|day|month|year)s?\s*$"
)
_RATE = re.compile(RATE_PATTERN)


def _check_rate(value: str) -> str:
    match = _RATE.match(value)
    if not match:
        raise spec_rule(
            f"'{value}' is not a rate",
            "write a count per period: '200/second', '1000 per minute' or '10 per 2 hours' "
            "(second, minute, hour, day, month, year)",
        )
    count, period = int(match.group(1)), int(match.group(2) or 1)
    if count == 0 or period == 0:
        raise spec_rule(
            f"'{value}' allows nothing" if count == 0 else f"'{value}' has a period of zero",
            "a limit counts at least one request in a period of at least one unit, "
            "e.g. '200/second'; remove the limit to allow any rate",
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
    leeway: Duration = Field("0s", description="Clock skew tolerated on `exp`, e.g. 30s.")

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
    rotation_grace: Duration = Field(
        "1h",
        description="How long `shipyard keys rotate` keeps the previous API key or JWT key "
        "valid beside the new one (unless `--grace` says otherwise), e.g. 1h or 15m.",
    )

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
    """Request and prediction logging, with masking and encryption at rest."""

    requests: bool = Field(True, description="One JSON log line per request.")
    predictions: bool = Field(
        True, description="Write every prediction (inputs, output, variant) to the prediction log."
    )
    mask: list[str] = Field(
        default_factory=list,
        description="Field-name patterns (fnmatch, e.g. email, *_token) never written to logs.",
    )
    encrypt: list[str] = Field(
        default_factory=list,
        description="Field names or patterns (fnmatch, as `mask`) kept in the prediction and "
        "feedback logs but encrypted at rest (Fernet); readers with the key see the values. "
        "Needs `encryption_key`; a field also masked is masked.",
    )
    encryption_key: str | None = Field(
        None,
        description="The key encrypting the `encrypt` fields, as ${secret:NAME} (a random "
        "string of 32+ characters). Resolved when the service starts.",
    )
    previous_keys: list[str] = Field(
        default_factory=list,
        description="Keys replaced by `encryption_key` (${secret:NAME} each), still used to "
        "read the rows they encrypted.",
    )


class TlsSpec(SpecModel):
    """TLS options passed to `bentoml serve`."""

    certfile: str = Field(description="PEM certificate file.")
    keyfile: str = Field(description="PEM private key file.")
    ca_certs: str | None = Field(
        None, description="CA bundle; clients must present a certificate it signed (mutual TLS)."
    )
    min_version: Literal["1.2", "1.3"] = Field(
        "1.2",
        description="Oldest TLS version accepted: 1.2 (default) or 1.3. The port serves HTTPS "
        "only; plain HTTP is refused.",
    )


RouteValue = str | int | float | bool


class RequestMatch(SpecModel):
    """Requests whose row field (or header) matches a value."""

    field: str | None = Field(None, description="A request row field to match.")
    header: str | None = Field(None, description="A request header to match (any case).")
    equals: RouteValue | None = Field(None, description="Match when the value equals this.")
    in_: list[RouteValue] | None = Field(
        None, alias="in", description="Match when the value is one of these."
    )

    @field_validator("header")
    @classmethod
    def _lower_header(cls, header: str | None) -> str | None:
        return header.lower() if header is not None else None

    def _subject(self) -> str:
        """How errors name the rule."""
        return "a rule"

    @model_validator(mode="after")
    def _one_source_one_test(self) -> RequestMatch:
        if (self.field is None) == (self.header is None):
            raise spec_rule(
                f"{self._subject()} needs exactly one of `field` or `header`",
                "match a request field (`field: region`) or a header (`header: x-tenant`)",
            )
        if ("equals" in self.model_fields_set) == (self.in_ is not None):
            raise spec_rule(
                f"{self._subject()} needs exactly one of `equals` or `in`",
                "compare with one value (`equals: north`) or a list (`in: [north, east]`)",
            )
        return self


class RouteRule(RequestMatch):
    """Send requests whose row field (or header) matches a value to one variant."""

    variant: str = Field(description="The variant that answers matching requests.")

    def _subject(self) -> str:
        return f"route rule for variant '{self.variant}'"


def finite_weights(weights: dict[str, float]) -> dict[str, float]:
    bad = [name for name, weight in weights.items() if not (0 <= weight < math.inf)]
    if bad:
        raise spec_rule(
            f"weights of {', '.join(bad)} must be finite numbers >= 0",
            "give each variant a share of traffic, e.g. {stable: 90, challenger: 10}",
        )
    if weights and not any(weight > 0 for weight in weights.values()):
        raise spec_rule(
            "at least one variant needs a weight above 0",
            "e.g. {stable: 100}: every request that no rule matches needs somewhere to go",
        )
    return weights


class RoutingSpec(SpecModel):
    """How requests are assigned to variants until a rollout or A/B test changes it."""

    sticky_key: str | None = Field(
        None, description="Input field that keeps a caller on one variant (e.g. customer_id)."
    )
    weights: Annotated[dict[str, float], AfterValidator(finite_weights)] = Field(
        default_factory=dict,
        description="Variant -> share of traffic (stable, or a candidate alias); "
        "default: everything on stable.",
    )
    rules: list[RouteRule] = Field(
        default_factory=list,
        description="Checked in order before the weights; the first match picks the variant.",
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
    timeout: Duration = Field("10s", description="Request timeout (at least a second), e.g. 10s.")
    batching: BatchingSpec = Field(default_factory=BatchingSpec)
    auth: AuthSpec | None = Field(
        None, description="API keys and JWT with roles; without it anyone may call every endpoint."
    )
    rate_limit: Annotated[RateLimitSpec | None, BeforeValidator(_rate_shorthand)] = Field(
        None, description="Limits per key and global; a bare rate ('200/second') is global."
    )
    logging: LoggingSpec = Field(default_factory=LoggingSpec)
    routing: RoutingSpec = Field(default_factory=RoutingSpec, description=RoutingSpec.__doc__)
    tls: TlsSpec | None = Field(None, description="Serve HTTPS with these files.")
    request_checks: RequestChecks = Field(
        "flag",
        description="Check each request row against the per-row expectations of the model's "
        "training dataset (between, in_set, regex on the request fields): `flag` (default) "
        "answers and lists the failed expectations per row, `reject` answers 400 naming the "
        "rows, fields and rules, `off` does not check.",
    )

    @field_validator("timeout")
    @classmethod
    def _timeout_at_least_a_second(cls, value: str) -> str:
        if parse_duration(value) < 1:
            raise spec_rule(
                f"a request timeout of {value} fails every request",
                "give requests at least a second, e.g. 10s",
            )
        return value


def service_inputs(spec: PipelineSpec, service: ServiceSpec) -> list[str] | None:
    """The request fields of a service: entity keys when it reads features online, else the
    model's feature columns. None when the model or feature service is unknown."""
    model = spec.models.get(service.model)
    if model is None:
        return None
    feature_service = service.features or model.feature_service
    if feature_service is not None:
        if feature_service not in spec.features.services:
            return None
        keys: dict[str, None] = {}
        for view, _ in service_features(spec.features, feature_service):
            entity = spec.features.entities.get(view.entity)
            if entity is not None:
                keys[entity.join_key] = None
        return list(keys)
    return list(model.features) if isinstance(model.features, list) else []
