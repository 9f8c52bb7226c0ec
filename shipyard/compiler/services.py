"""`services:` -> ServiceStep: what `shipyard build` puts in a Bento and how it serves."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field

from shipyard.compiler.datasets import ColumnType, DatasetStep
from shipyard.compiler.expectations import CompiledExpectation
from shipyard.compiler.features import JOIN_KEY_TYPES, REPO_ID, FeatureRepoStep
from shipyard.compiler.models import TrainModelStep
from shipyard.compiler.plan import FrozenModel, StepBase
from shipyard.compiler.profiles import postgres_url
from shipyard.spec import ServiceSpec, parse_duration
from shipyard.spec.ab_tests import TargetRule
from shipyard.spec.services import (
    RequestChecks,
    Role,
    RouteRule,
    finite_weights,
    service_inputs,
)

if TYPE_CHECKING:
    from shipyard.compiler.compile import CompileContext

STABLE = "stable"
"""The variant that serves the service's `alias` (or pinned `version`)."""


class VariantRef(FrozenModel):
    """A model version a service loads: by registry alias or pinned version."""

    name: str = Field(description="Variant name: `stable`, or the candidate's alias.")
    alias: str | None = None
    version: int | None = None

    @property
    def reference(self) -> str:
        return f"version {self.version}" if self.version is not None else f"alias @{self.alias}"


class ApiKeyPlan(FrozenModel):
    key: str = Field(description="The key, usually a ${secret:NAME} reference.")
    roles: tuple[Role, ...]
    rate_limit: str | None = None


class JwtPlan(FrozenModel):
    algorithm: Literal["HS256", "RS256"]
    key: str = Field(description="HS256 secret or RS256 public key (or their references).")
    audience: str | None = None
    issuer: str | None = None
    roles_claim: str = "roles"
    leeway_seconds: float = 0.0


class AuthPlan(FrozenModel):
    api_keys: dict[str, ApiKeyPlan] = Field(default_factory=dict)
    jwt: JwtPlan | None = None
    rotation_grace_seconds: float = Field(
        3600.0, description="How long a rotated key stays valid beside its successor."
    )


class TlsPlan(FrozenModel):
    """TLS files as absolute paths."""

    certfile: str
    keyfile: str
    ca_certs: str | None = Field(None, description="Set: clients need a certificate (mTLS).")
    min_version: Literal["1.2", "1.3"] = "1.2"


class LogEncryptionPlan(FrozenModel):
    """Fields of the prediction and feedback logs encrypted at rest, and their keys."""

    fields: list[str] = Field(description="Field names or fnmatch patterns (`logging.encrypt`).")
    key: str = Field(description="The encrypting key, a ${secret:NAME} reference.")
    previous_keys: list[str] = Field(
        default_factory=list, description="Keys that still decrypt, ${secret:NAME} each."
    )


class RateLimitPlan(FrozenModel):
    per_key: str | None = None
    global_limit: str | None = None
    storage: str = Field("memory://", description="memory:// or a Redis URL.")


class ExperimentPlan(FrozenModel):
    """An A/B test in force: the callers its target admits are split between its arms."""

    name: str = Field(description="The test, as under `ab_tests:`.")
    salt: str = Field(description="Its own salt: tests split the same callers independently.")
    assign_by: str = Field(description="Request field that keeps a caller in one arm.")
    target: TargetRule | None = Field(None, description="Who enters; None: every caller.")
    arms: dict[str, float] = Field(description="Service variant -> share of the test, in %.")


class RoutingPlan(FrozenModel):
    """Which variant answers: forced header, then rules, then an A/B test, then weights."""

    weights: Annotated[dict[str, float], AfterValidator(finite_weights)] = Field(
        description="Variant -> share of traffic (>= 0)."
    )
    sticky_key: str | None = Field(
        None, description="Row field whose value keeps a caller on one variant."
    )
    rules: tuple[RouteRule, ...] = Field(
        default=(), description="Checked in order before weights; first match wins."
    )
    salt: str = Field(
        description="Mixed into sticky hashes: each service, rollout or experiment that splits "
        "traffic splits the same callers independently of the others."
    )
    experiment: ExperimentPlan | None = Field(
        None, description="An A/B test in force (`shipyard abtest start`), checked before weights."
    )

    def for_variants(self, served: Sequence[str]) -> RoutingPlan:
        """This routing for the variants a Bento actually serves: weights and rules of a
        candidate that was not built (no version holds its alias yet) are left out; with no
        weight left, everything goes to stable."""
        weights = {name: w for name, w in self.weights.items() if name in served}
        if not any(w > 0 for w in weights.values()):
            weights = {name: (100.0 if name == STABLE else 0.0) for name in served}
        rules = tuple(rule for rule in self.rules if rule.variant in served)
        experiment = self.experiment
        if experiment is not None and not set(experiment.arms) <= set(served):
            experiment = None  # an arm is no longer served: the test cannot go on
        return self.model_copy(
            update={"weights": weights, "rules": rules, "experiment": experiment}
        )


RowRuleKind = Literal["between", "in_set", "regex"]


class RequestRule(FrozenModel):
    """One per-row expectation of the training data, checked on a request field."""

    rule: str = Field(description="The rule as the dataset writes it, e.g. between(age, 0..120).")
    column: str = Field(description="The request field it checks.")
    kind: RowRuleKind
    min: float | None = None
    max: float | None = None
    strict_min: bool = False
    strict_max: bool = False
    values: list[str | int | float | bool] | None = None
    pattern: str | None = None
    tolerant: bool = Field(
        False,
        description="The dataset lets some rows fail it (`mostly` below 1): a request row "
        "that fails it is flagged, never rejected.",
    )


class RequestChecksPlan(FrozenModel):
    """What a service checks in each request row, and what it does when a row fails."""

    mode: RequestChecks = "flag"
    dataset: str = Field("", description="The dataset the rules come from (dataset.<name>).")
    rules: tuple[RequestRule, ...] = ()

    @property
    def active(self) -> bool:
        return self.mode != "off" and bool(self.rules)


_ROW_RULES: dict[str, RowRuleKind] = {
    "expect_column_values_to_be_between": "between",
    "expect_column_values_to_be_in_set": "in_set",
    "expect_column_values_to_match_regex": "regex",
}
"""Expectations that hold row by row, so one request row can fail them. not_null is left out:
the request schema already refuses null; unique, row counts and custom GX rules are
properties of a whole table."""


def request_rules(
    expectations: Sequence[CompiledExpectation], input_types: dict[str, ColumnType]
) -> list[RequestRule]:
    """The dataset's per-row rules on the request fields. The schema's own categories are
    left out (the request schema enforces them), and `between` only checks numbers."""
    rules = []
    for expectation in expectations:
        kind = _ROW_RULES.get(expectation.type)
        column = expectation.column
        if kind is None or column not in input_types or expectation.rule.startswith("schema("):
            continue
        args = expectation.kwargs
        if kind == "between" and input_types[column] not in ("int", "float"):
            continue
        rules.append(
            RequestRule(
                rule=expectation.rule,
                column=column,
                kind=kind,
                min=args.get("min_value"),
                max=args.get("max_value"),
                strict_min=bool(args.get("strict_min", False)),
                strict_max=bool(args.get("strict_max", False)),
                values=list(args["value_set"]) if kind == "in_set" else None,
                pattern=args.get("regex"),
                tolerant=float(args.get("mostly", 1.0)) < 1.0,
            )
        )
    return rules


class ServiceStep(StepBase):
    """build-service: build the Bento from the registry, then start or hot-reload it."""

    kind: Literal["service"] = "service"
    project: str
    project_dir: str = Field(description="The project folder: relative TLS paths start here.")
    state_dir: str = Field(description="The project's state folder (Bento store, logs, pids).")
    model: str = Field(description="The model (under `models:`) the service serves.")
    registered_name: str = Field(description="Name of the model in the MLflow registry.")
    task: Literal["classification", "regression"]
    variants: list[VariantRef] = Field(description="The stable variant first, then candidates.")
    inputs: list[str] = Field(
        description="Request fields: entity keys with a feature service, else model features."
    )
    input_types: dict[str, ColumnType] = Field(description="Request field -> declared type.")
    entity_keys: list[str] = Field(
        default_factory=list,
        description="The columns that name an entity, for feedback by `entity`: the feature "
        "service's join keys, else the training dataset's key columns (without its timestamp).",
    )
    request_checks: RequestChecksPlan = Field(
        default_factory=RequestChecksPlan,
        description="The training data's per-row rules checked on each request row.",
    )
    features: list[str] = Field(description="The model's input columns, in training order.")
    data_files: list[str] = Field(
        default_factory=list,
        description="Files holding the training data's columns (input histogram buckets).",
    )
    feature_service: str | None = None
    feature_repo: str | None = Field(None, description="Id of the feature repository step.")
    host: str
    port: int
    workers: int
    timeout_seconds: float
    max_batch_size: int
    adaptive_batching: bool
    max_latency_ms: float
    max_request_bytes: int
    auth: AuthPlan | None = Field(
        None, description="API keys and JWT settings; secrets stay ${secret:NAME} references."
    )
    rate_limit: RateLimitPlan
    log_database: str = Field(description="sqlite:///... or postgresql://... for the logs.")
    control_database: str = Field(
        description="Where the control state lives (bundle and routing, with their audit): "
        "sqlite:///... in the state folder, or a PostgreSQL URL shared by every replica."
    )
    log_requests: bool
    log_predictions: bool
    mask: list[str] = Field(default_factory=list)
    log_encryption: LogEncryptionPlan | None = Field(
        None, description="`logging.encrypt` and its keys (references, never their values)."
    )
    routing: RoutingPlan
    tls: TlsPlan | None = None

    flow: ClassVar[str | None] = "build-service"
    parameter: ClassVar[str] = "service"
    noun: ClassVar[str] = "service"

    @property
    def service(self) -> str:
        """The service's name (as under `services:`)."""
        return self.name


def control_database(ctx: CompileContext, log_database: str | None = None) -> str:
    """Where control state lives (routing, rollouts, A/B tests, alerts): the profile's control
    database, else a PostgreSQL log database, else control.sqlite in the state folder."""
    serving = ctx.profile.serving
    log_database = log_database or serving.log_database or ""
    return (
        postgres_url(ctx.spec, ctx.project_dir, serving.control_database or "")
        or (
            postgres_url(ctx.spec, ctx.project_dir, log_database)
            if log_database.startswith("postgresql")
            else None
        )
        or f"sqlite:///{ctx.state_dir / 'serving' / 'control.sqlite'}"
    )


def compile_services(ctx: CompileContext) -> Iterator[ServiceStep]:
    for name, service in ctx.spec.services.items():
        train = ctx.step(f"model.{service.model}", TrainModelStep)
        repo = ctx.steps.get(REPO_ID)
        yield service_step(
            ctx, name, service, train, repo if isinstance(repo, FeatureRepoStep) else None
        )


def service_step(
    ctx: CompileContext,
    name: str,
    service: ServiceSpec,
    train: TrainModelStep,
    repo: FeatureRepoStep | None,
) -> ServiceStep:
    spec, profile = ctx.spec, ctx.profile
    feature_service = service.features or train.feature_service
    inputs = service_inputs(spec, service) or []
    if feature_service is None or repo is None:
        input_types = {f: train.feature_types[f] for f in inputs}
    else:
        join_types = {view.join_key: view.join_key_type for view in repo.views}
        input_types = {key: JOIN_KEY_TYPES[join_types[key]] for key in inputs}
    serving = ctx.state_dir / "serving"
    log_database = profile.serving.log_database or f"sqlite:///{serving / name / 'logs.sqlite'}"
    log_database = postgres_url(spec, ctx.project_dir, log_database)
    variants = [
        VariantRef(
            name=STABLE,
            alias=None if service.version is not None else service.alias,
            version=service.version,
        )
    ] + [VariantRef(name=alias, alias=alias) for alias in service.candidates]
    data = ctx.step(train.dataset, DatasetStep)
    if feature_service is not None and repo is not None:
        entity_keys = list(inputs)
    else:
        entity_keys = [k for k in data.key if k != data.timestamp]
    sources = [v.source_path for v in repo.views] if repo and train.feature_service else []
    routing = service.routing
    auth = service.auth
    return ServiceStep(
        id=f"service.{name}",
        name=name,
        description=service.description
        or f"Build service '{name}' into a Bento from model '{service.model}' and start or "
        "hot-reload it locally.",
        needs=(train.id, REPO_ID) if feature_service and repo else (train.id,),
        tasks=("build", "deploy"),
        project=spec.project,
        project_dir=str(ctx.project_dir),
        state_dir=str(ctx.state_dir),
        model=service.model,
        registered_name=train.registered_name,
        task=train.task,
        variants=variants,
        inputs=inputs,
        input_types=input_types,
        entity_keys=entity_keys,
        request_checks=RequestChecksPlan(
            mode=service.request_checks,
            dataset=data.id,
            rules=tuple(request_rules(data.expectations, input_types)),
        ),
        features=train.features,
        data_files=list(
            dict.fromkeys([*([str(ctx.project_dir / data.path)] if data.path else []), *sources])
        ),
        feature_service=feature_service,
        feature_repo=REPO_ID if feature_service and repo else None,
        host=service.host,
        port=service.port + ctx.profile.serving.port_offset,
        workers=service.workers,
        timeout_seconds=parse_duration(service.timeout),
        max_batch_size=service.batching.max_batch_size,
        adaptive_batching=service.batching.adaptive,
        max_latency_ms=service.batching.max_latency_ms,
        max_request_bytes=int(service.batching.max_request_mb * 1024 * 1024),
        auth=None
        if auth is None
        else AuthPlan(
            api_keys={
                key_name: ApiKeyPlan(key=key.key, roles=tuple(key.roles), rate_limit=key.rate_limit)
                for key_name, key in auth.api_keys.items()
            },
            jwt=None
            if auth.jwt is None
            else JwtPlan(
                algorithm=auth.jwt.algorithm,
                key=(auth.jwt.secret if auth.jwt.algorithm == "HS256" else auth.jwt.public_key)
                or "",
                audience=auth.jwt.audience,
                issuer=auth.jwt.issuer,
                roles_claim=auth.jwt.roles_claim,
                leeway_seconds=parse_duration(auth.jwt.leeway),
            ),
            rotation_grace_seconds=parse_duration(auth.rotation_grace),
        ),
        rate_limit=RateLimitPlan(
            per_key=service.rate_limit.per_key if service.rate_limit else None,
            global_limit=service.rate_limit.global_ if service.rate_limit else None,
            storage=profile.serving.rate_limit_storage or "memory://",
        ),
        log_database=log_database,
        control_database=control_database(ctx, log_database),
        log_requests=service.logging.requests,
        log_predictions=service.logging.predictions,
        mask=list(service.logging.mask),
        log_encryption=LogEncryptionPlan(
            fields=list(service.logging.encrypt),
            key=service.logging.encryption_key,
            previous_keys=list(service.logging.previous_keys),
        )
        if service.logging.encrypt and service.logging.encryption_key
        else None,
        routing=RoutingPlan(
            weights=dict(routing.weights)
            or {v.name: (100.0 if v.name == STABLE else 0.0) for v in variants},
            sticky_key=routing.sticky_key,
            rules=tuple(routing.rules),
            salt=f"service.{name}",
        ),
        tls=None
        if service.tls is None
        else TlsPlan(
            certfile=str(_absolute(ctx.project_dir, service.tls.certfile)),
            keyfile=str(_absolute(ctx.project_dir, service.tls.keyfile)),
            ca_certs=str(_absolute(ctx.project_dir, service.tls.ca_certs))
            if service.tls.ca_certs
            else None,
            min_version=service.tls.min_version,
        ),
    )


def _absolute(project_dir: Path, path: str) -> Path:
    """A path from the spec, which gives them relative to the project folder."""
    return project_dir / path
