"""One generic BentoML service, configured by the `service.json` beside it in the Bento.

`shipyard build <service>` copies this package, the `shipyard` package, `service.json` and the
model folders into a Bento. The request schema is made from `service.json` when this module
is imported, so `/docs.json` describes the exact fields of the model being served.
"""

from __future__ import annotations

import gc
import math
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import bentoml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    create_model,
    field_validator,
    model_validator,
)
from starlette.responses import JSONResponse, Response

from shipyard.compiler.services import RoutingPlan
from shipyard.errors import ShipyardError
from shipyard.serving.config import ModelInput, bundle_dir, read_config
from shipyard.serving.gate import EngineHolder, Gate
from shipyard.serving.openapi import OpenApiDocument
from shipyard.serving.startup import stage
from shipyard.serving.telemetry import configure_logging
from shipyard.spec.services import RouteRule

configure_logging()  # before anything below logs or warns: BentoML's lines become JSON too
BUNDLE = bundle_dir(Path(__file__).resolve().parents[1])
CONFIG = read_config(BUNDLE)
STEP = CONFIG.step
INT64 = (-(2**63), 2**63 - 1)
ENTITY_EXAMPLE = (
    "{" + ", ".join(f'"{key}": ...' for key in STEP.entity_keys) + "}"
    if STEP.entity_keys
    else "its key columns and their values"
)
"""How this service's entities are named, for hints: its own key columns."""
# Strict, so a client's mistake is a 400 naming the field, never a silent coercion: `true` is no
# integer (lax pydantic reads it as 1), an integer is 64-bit (the model's frame and the online
# store's keys are int64: a 30-digit id would fail there, as a 5xx), a number is finite (NaN
# would reach the model and the log, which writes it as null). JSON integers are numbers.
Int64 = Annotated[int, Field(strict=True, ge=INT64[0], le=INT64[1])]
Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
TYPES: dict[str, Any] = {
    "int": Int64,
    "float": Finite,
    "str": str,
    "bool": StrictBool,
    "datetime": datetime,
}


def _field_type(field: ModelInput) -> Any:
    categories = STEP.input_types.get(field.name)
    if isinstance(categories, list) and categories:
        return Literal[tuple(categories)]
    return TYPES.get(field.type, str)


def _tls_at_least(version: str) -> None:
    """Accept no TLS older than `version` ("1.2" or "1.3"). `bentoml serve` has no option for
    it, and uvicorn builds each worker's context from those options when its server starts,
    after this module is loaded: wrap uvicorn's builder so the context it returns says so."""
    import ssl

    import uvicorn.config

    build = uvicorn.config.create_ssl_context
    oldest = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2

    def create_ssl_context(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        context = build(*args, **kwargs)
        context.minimum_version = oldest
        return context

    uvicorn.config.create_ssl_context = create_ssl_context


if STEP.tls is not None:
    _tls_at_least(STEP.tls.min_version)


Row = create_model(  # type: ignore[call-overload]
    "PredictRow",
    __config__=ConfigDict(extra="forbid", protected_namespaces=()),
    **{f.name: (_field_type(f), ...) for f in CONFIG.request_fields},
)


# A bare row object is a batch of one: the Gate wraps such a body in {"rows": [...]} before
# BentoML reads it, so the request model validates straight from JSON (a "before" validator
# here would make pydantic build Python objects first, which doubles the cost of a batch).
class PredictRequest(BaseModel):
    """One row (its fields at the top level) or a batch: {"rows": [row, ...]}."""

    model_config = ConfigDict(extra="forbid")

    rows: list[Row] = Field(min_length=1, description="The rows to score.")


class Prediction(BaseModel):
    prediction: int | float | str | bool
    probability: float | None = Field(
        None,
        description="Binary: the positive class's probability; multiclass: the predicted class's.",
    )
    variant: str
    model_version: str
    failed_expectations: list[str] = Field(
        default_factory=list,
        description="Only when the row fails expectations of the training data "
        "(`request_checks: flag`): the rules it fails, as the dataset writes them.",
    )
    missing_features: list[str] = Field(
        default_factory=list,
        description="Only when the online store has no value for some of the row's features: "
        "those features, which the model was given as null.",
    )
    experiment: str | None = Field(
        None,
        description="Only when the caller is in an A/B test: the test's name (`variant` is the "
        "arm's variant, kept for this caller for the whole test).",
    )


class PredictResponse(BaseModel):
    request_id: str
    predictions: list[Prediction]


def _unstorable(value: Any, path: str = "") -> str | None:
    """Why `value` (a decoded JSON value) cannot be stored faithfully, or None. The message
    names where, never the value: it is logged, and the field may be one the logs mask."""
    where = f" at {path}" if path else ""
    if isinstance(value, float) and not math.isfinite(value):
        return f"not a finite number{where}; send a number, or leave the field out"
    if isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]:
        return f"an integer outside the 64-bit range{where}; send it as a string"
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        if (problem := _unstorable(item, f"{path}.{key}" if path else str(key))) is not None:
            return problem
    return None


class FeedbackRequest(BaseModel):
    """An outcome, keyed by the prediction's request id or by entity key."""

    model_config = ConfigDict(extra="forbid")

    outcome: bool | int | float | str | dict[str, Any] = Field(
        description="What happened: a label, a number, a string or an object."
    )
    request_id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="The prediction's: a /predict response's request_id, or "
        "<request_id>/<row> for a row of a batch.",
    )
    entity: dict[str, int | float | str | bool] | None = Field(
        None, description=f"Instead of request_id, the entity by its key columns: {ENTITY_EXAMPLE}."
    )

    @field_validator("outcome", "entity")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        """What the log stores as JSON: finite numbers (NaN would be stored as null) and
        64-bit integers, at any depth."""
        if (problem := _unstorable(value)) is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _keyed(self) -> FeedbackRequest:
        if self.request_id is None and not self.entity:
            raise ValueError(
                "feedback needs `request_id` (from the /predict response) or `entity` "
                f"({ENTITY_EXAMPLE})"
            )
        return self


class FeedbackResponse(BaseModel):
    request_id: str
    accepted: bool


class RoutingRequest(BaseModel):
    """New routing for the variants; takes effect on every worker within a second."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    weights: dict[str, float] = Field(description="Variant -> weight (>= 0).")
    sticky_key: str | None = Field(
        None,
        description="A request field; left out: the served spec's; null: no stickiness.",
    )
    rules: list[RouteRule] = Field(default_factory=list)
    reason: str = Field(min_length=1, max_length=500, description="Why; kept in the audit log.")
    expected_revision: int | None = Field(
        None,
        ge=0,
        description="Apply only if the control state is still at this revision (from /info); "
        "otherwise 409 and nothing changes. Unset: the revision this worker serves.",
    )


class RoutingResponse(BaseModel):
    revision: int
    routing: RoutingPlan
    actor: str
    reason: str


class ReloadRequest(BaseModel):
    """No fields: the control state says what to apply."""


class ReloadResponse(BaseModel):
    bento: str
    variants: list[str]


HOLDER = EngineHolder()


def _error(
    ctx: bentoml.Context,
    status: int,
    error: str,
    message: str,
    request_id: str,
    detail: list[Any] | None = None,
) -> JSONResponse:
    ctx.response.status_code = status  # BentoML copies the context's status onto the response
    body: dict[str, Any] = {"error": error, "message": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse({**body, "request_id": request_id}, status_code=status)


def _info(ctx: bentoml.Context) -> dict[str, Any]:
    info: dict[str, Any] = ctx.request.scope.get("shipyard") or {}
    if "request_id" not in info:
        info["request_id"] = uuid.uuid4().hex
    return info


try:
    import orjson

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value)
except ImportError:  # pragma: no cover - orjson ships with the stack
    import json

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()


@bentoml.service(
    name=STEP.service,
    workers=STEP.workers,
    traffic={"timeout": STEP.timeout_seconds},
    logging={"access": {"enabled": False}},
)
class ShipyardService:
    """Predictions, feedback and the admin API of one `services:` entry."""

    def __init__(self) -> None:
        from shipyard.serving.engine import ServiceEngine

        started = time.perf_counter()
        stage("starting")
        try:
            self.engine = ServiceEngine(BUNDLE)
        except ShipyardError as exc:  # its fix, for `shipyard serve` to show with the trace
            stage("failed", hint=exc.hint)
            raise
        HOLDER.engine = self.engine
        _quiet_tracing()
        gc.collect()
        gc.freeze()  # the loaded models and libraries never need scanning again
        # requests allocate many short-lived objects (frames, dicts): collect the young
        # generation less often, and the old ones rarely (the heap above is frozen)
        gc.set_threshold(20_000, 20, 50)
        self.engine_ready_in = time.perf_counter() - started
        stage("ready", seconds=round(self.engine_ready_in, 2))

    def __is_ready__(self) -> bool:
        return HOLDER.engine is not None

    # Each API takes its body as one positional-only model (BentoML's "root input"): BentoML
    # hands the parsed model over as it is. With keyword fields it would read `model_fields`
    # from the model instance on every request, which pydantic deprecates (a warning each).
    # (BentoML's SDK ships no type information: its decorators are untyped to mypy.)
    @bentoml.api(route="/predict", output_spec=PredictResponse)  # type: ignore[untyped-decorator]
    async def predict(self, request: PredictRequest, /, ctx: bentoml.Context) -> Response:
        """Score one row or a batch; the variant and model version come back per row."""
        from shipyard.serving.engine import RequestError

        info = _info(ctx)
        request_id = info["request_id"]
        headers = info.get("headers", {})
        try:
            results = await self.engine.predict(
                [row.__dict__ for row in request.rows],
                headers,
                request_id,
                headers.get("x-shipyard-variant"),
            )
        except RequestError as exc:
            info["variant"], info["model_version"] = exc.variant, exc.model_version
            return _error(ctx, exc.status, exc.error, str(exc), request_id, exc.detail)
        info["variant"] = results[0]["variant"]
        info["model_version"] = results[0]["model_version"]
        return Response(
            _dumps({"request_id": request_id, "predictions": results}),
            media_type="application/json",
        )

    @bentoml.api(route="/feedback", output_spec=FeedbackResponse)  # type: ignore[untyped-decorator]
    async def feedback(self, request: FeedbackRequest, /, ctx: bentoml.Context) -> Response:
        """Record an outcome for a prediction (by request id) or an entity."""
        from shipyard.serving.engine import RequestError

        info = _info(ctx)
        try:
            await self.engine.feedback(request.outcome, request.request_id, request.entity)
        except RequestError as exc:
            return _error(ctx, exc.status, exc.error, str(exc), info["request_id"])
        return Response(
            _dumps({"request_id": info["request_id"], "accepted": True}),
            media_type="application/json",
        )

    @bentoml.api(route="/admin/routing", output_spec=RoutingResponse)  # type: ignore[untyped-decorator]
    async def admin_routing(self, request: RoutingRequest, /, ctx: bentoml.Context) -> Response:
        """Change variant weights, sticky key and rules (role admin; audited; compare-and-swap)."""
        import anyio
        from pydantic import ValidationError

        from shipyard.serving.control import ControlConflict
        from shipyard.serving.router import UnknownVariant

        info = _info(ctx)
        try:
            # left out: the sticky key of the spec being served now (after hot reloads, not
            # the one this worker was started from)
            sticky_key = (
                request.sticky_key
                if "sticky_key" in request.model_fields_set
                else self.engine.config.step.routing.sticky_key
            )
            routing = RoutingPlan(
                weights=request.weights,
                sticky_key=sticky_key,
                rules=tuple(request.rules),
                salt=self.engine.router.state.salt,
            )
            state = await anyio.to_thread.run_sync(
                lambda: self.engine.set_routing(
                    routing,
                    actor=info.get("principal") or "anonymous",
                    reason=request.reason,
                    expected_revision=request.expected_revision,
                )
            )
        except ControlConflict as exc:
            return _error(ctx, 409, "revision_conflict", exc.message, info["request_id"])
        except ValidationError as exc:
            problems = "; ".join(e["msg"] for e in exc.errors(include_url=False))
            return _error(ctx, 400, "bad_routing", problems, info["request_id"])
        except (UnknownVariant, ValueError) as exc:
            return _error(ctx, 400, "bad_routing", str(exc), info["request_id"])
        body = RoutingResponse(
            revision=state.revision, routing=state.routing, actor=state.actor, reason=state.reason
        )
        return Response(_dumps(body.model_dump(mode="json")), media_type="application/json")

    @bentoml.api(route="/admin/reload", output_spec=ReloadResponse)  # type: ignore[untyped-decorator]
    async def admin_reload(self, request: ReloadRequest, /, ctx: bentoml.Context) -> Response:
        """Apply the control state now (new bundle or routing) instead of within half a second."""
        import anyio

        info = _info(ctx)
        await anyio.to_thread.run_sync(lambda: self.engine.check_control(force=True))
        if self.engine.reload_error:
            return _error(ctx, 409, "reload_refused", self.engine.reload_error, info["request_id"])
        body = {
            "bento": self.engine.config.bento_tag,
            "variants": list(self.engine.models.variants),
        }
        return Response(_dumps(body), media_type="application/json")


DOCS = OpenApiDocument(lambda: ShipyardService.openapi_spec.asdict())  # type: ignore[attr-defined]


def _document(engine: Any) -> bytes:
    """/docs.json: of the Bento this worker serves now (a reload may change its auth)."""
    config = engine.config if engine is not None else CONFIG
    return DOCS.render(config.step, config.bento_tag)


ShipyardService.add_asgi_middleware(Gate, holder=HOLDER, document=_document)  # type: ignore[attr-defined]


def _quiet_tracing() -> None:
    """With no trace exporter and sample rate 0, BentoML still records a span per request;
    those spans are what makes its garbage-collection pauses long. Record none instead."""
    try:
        from bentoml._internal.configuration.containers import BentoMLContainer
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

        if BentoMLContainer.config.tracing.sample_rate.get():
            return
        sampler = BentoMLContainer.tracer_provider.get().sampler
        for attribute in ("_root", "_remote_parent_not_sampled", "_local_parent_not_sampled"):
            if hasattr(sampler, attribute):
                setattr(sampler, attribute, ALWAYS_OFF)
    except Exception:  # an internal layout change must never stop the service
        return
