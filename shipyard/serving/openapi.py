"""The service's OpenAPI document: BentoML's, completed with what the Gate in front of it does.

BentoML describes the request and response bodies of the APIs (made from the model's fields),
but not the Gate: its credentials, its errors, or the endpoints it answers itself. This module
adds them, from the compiled step, so the document says what the service really does:

- the security schemes the service reads (the `X-API-Key` header, `Authorization: Bearer`
  with an API key or a JWT), required by exactly the endpoints that need a role;
- every error an endpoint can answer, with the JSON body it really has (`error`, `message`,
  `request_id`, `detail` for some), an example per error code and the headers that come with
  it (`WWW-Authenticate`, `Retry-After`);
- every endpoint: `/info`, `GET /admin/routing`, the docs themselves, besides BentoML's.

It is OpenAPI 3.1: BentoML's schemas are pydantic's JSON Schema (`{"type": "null"}` in a
union), which 3.1 takes as it is.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shipyard.compiler.services import ServiceStep

OPENAPI_VERSION = "3.1.0"
ERROR = "#/components/schemas/Error"
API_KEY, BEARER = "ApiKeyHeader", "BearerAuth"
_EXAMPLE_ID = "3e6e9b00d6984dffb0687cf8c40da4ca"
_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Content Too Large",
    429: "Too Many Requests",
    503: "Service Unavailable",
}
_BENTOML_ERRORS = ("InvalidArgument", "NotFound", "InternalServerError", "TaskStatusResponse")
"""BentoML's own error bodies and task status: the Gate answers every error itself, in
Shipyard's shape, and the service has no task endpoints."""


@dataclass(frozen=True)
class _Code:
    status: int
    when: str
    example: str


def _codes(step: ServiceStep) -> dict[str, _Code]:
    """Every error code of the service, with when it is answered and an example message."""
    name = step.service
    keys = ", ".join(f"'{k}'" for k in step.entity_keys) or "the key columns"
    return {
        "invalid_request": _Code(
            400,
            "the body is not JSON, or a field is missing, extra or of the wrong type",
            "rows.0: Field required",
        ),
        "unknown_variant": _Code(
            400,
            "X-Shipyard-Variant names a variant the service does not have",
            "the X-Shipyard-Variant header names variant 'canary', which this service does "
            "not have; the variants are: stable",
        ),
        "failed_expectations": _Code(
            400,
            "a row fails an expectation of the training data (`request_checks: reject`)",
            "rows.0.<field>: below the minimum 0 (between(<field>, 0..) of dataset "
            f"'{step.request_checks.dataset.removeprefix('dataset.')}')",
        ),
        "bad_routing": _Code(
            400, "the routing names an unknown variant", "unknown variant 'canary'"
        ),
        "missing_credentials": _Code(
            401,
            "no credentials in the request",
            "no credentials in the request; send 'Authorization: Bearer <key or token>' or "
            "'X-API-Key: <key>'",
        ),
        "invalid_key": _Code(
            401,
            "the API key is not one of the service's",
            f"the API key is not valid; check it, or ask for a key listed in services.{name}.auth",
        ),
        "invalid_token": _Code(
            401, "the JWT's signature, audience or issuer is wrong", "the bearer token is not valid"
        ),
        "token_expired": _Code(
            401, "the JWT has expired", "the bearer token expired; get a new token from the issuer"
        ),
        "missing_role": _Code(
            403,
            "the key or token lacks the endpoint's role",
            f"key 'app' lacks the role 'admin' (it has: predict); give it the role in "
            f"services.{name}.auth",
        ),
        "unknown_entity": _Code(
            404,
            "the online store has no features for a key (`on_missing: error`)",
            f"no online features for the key ({keys}) in '{step.feature_service}'",
        ),
        "unknown_request_id": _Code(
            404,
            "no prediction of this service has the feedback's request id",
            f"no prediction of service '{name}' has request id 'abc'",
        ),
        "revision_conflict": _Code(
            409,
            "the control state moved past `expected_revision`; nothing was changed",
            "the control state is at revision 4, not 3",
        ),
        "reload_refused": _Code(
            409,
            "the Bento to load takes other request fields: the service needs a restart",
            f"restart it with `shipyard serve {name} --restart`",
        ),
        "batch_too_large": _Code(
            413,
            f"more rows than batching.max_batch_size ({step.max_batch_size})",
            f"101 rows is more than this service accepts in one request ({step.max_batch_size})",
        ),
        "request_too_large": _Code(
            413,
            f"a body larger than batching.max_request_mb ({step.max_request_bytes} bytes)",
            f"the request body is larger than this service reads ({step.max_request_bytes} bytes)",
        ),
        "rate_limited": _Code(
            429, "over a rate limit; Retry-After says when to retry", "rate limit reached for 'app'"
        ),
        "starting": _Code(503, "the models are still loading", "the service is still loading"),
        "feature_store_unavailable": _Code(
            503,
            "the online store does not answer",
            "online lookup failed; try again shortly",
        ),
    }


def _errors(step: ServiceStep, method: str, path: str) -> list[str]:
    """The error codes `method path` can answer, for this service's settings."""
    protected = path in ("/predict", "/feedback") or path.startswith("/admin")
    codes: list[str] = []
    if protected:
        if method == "post":
            codes.append("invalid_request")
        if path == "/predict":
            codes.append("unknown_variant")
            if step.request_checks.active and step.request_checks.mode == "reject":
                codes.append("failed_expectations")
        if path == "/admin/routing" and method == "post":
            codes.append("bad_routing")
        if step.auth is not None:
            codes += ["missing_credentials", "invalid_key"]
            if step.auth.jwt is not None:
                codes += ["invalid_token", "token_expired"]
            codes.append("missing_role")
        if path == "/predict" and step.feature_service is not None:
            codes.append("unknown_entity")
        if path == "/feedback" and step.log_predictions:
            codes.append("unknown_request_id")
        if path == "/admin/routing" and method == "post":
            codes.append("revision_conflict")
        if path == "/admin/reload":
            codes.append("reload_refused")
        if path == "/predict":
            codes.append("batch_too_large")
        if method == "post":
            codes.append("request_too_large")
        if _rate_limited(step):  # counted per key, or for everyone as one caller
            codes.append("rate_limited")
    if protected or path == "/info":
        codes.append("starting")
    if path == "/predict" and step.feature_service is not None:
        codes.append("feature_store_unavailable")
    return codes


def _rate_limited(step: ServiceStep) -> bool:
    limits = step.rate_limit
    keys = step.auth.api_keys.values() if step.auth else ()
    return bool(limits.per_key or limits.global_limit or any(k.rate_limit for k in keys))


def _responses(codes: list[str], catalog: dict[str, _Code]) -> dict[str, Any]:
    """One response per status, listing its codes, with the headers the Gate sends."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(catalog[code].status, []).append(code)
    responses: dict[str, Any] = {}
    for status, named in sorted(by_status.items()):
        headers: dict[str, Any] = {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}}
        if status == 401:
            headers["WWW-Authenticate"] = {"$ref": "#/components/headers/WWW-Authenticate"}
        if status == 429:
            headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
        examples = {}
        for code in named:
            body: dict[str, Any] = {"error": code, "message": catalog[code].example}
            if code in ("invalid_request", "failed_expectations"):
                body["detail"] = [{"loc": ["rows", 0], "msg": catalog[code].example}]
            examples[code] = {
                "summary": catalog[code].when,
                "value": {**body, "request_id": _EXAMPLE_ID},
            }
        responses[str(status)] = {
            "description": f"{_REASONS[status]}: "
            + "; ".join(f"`{code}` when {catalog[code].when}" for code in named),
            "headers": headers,
            "content": {"application/json": {"schema": {"$ref": ERROR}, "examples": examples}},
        }
    return responses


def _components(step: ServiceStep) -> dict[str, Any]:
    """The schemas, headers, parameters and security schemes the Gate adds."""
    schemas = {
        "Error": {
            "type": "object",
            "description": "Every error the service answers.",
            "required": ["error", "message", "request_id"],
            "properties": {
                "error": {"type": "string", "description": "A code to branch on."},
                "message": {"type": "string", "description": "What is wrong and what to do."},
                "detail": {
                    "type": "array",
                    "description": "invalid_request and failed_expectations: each problem, "
                    "where it is (`loc`) and what it is (`msg`; `rule` for a failed expectation).",
                    "items": {
                        "type": "object",
                        "required": ["loc", "msg"],
                        "properties": {
                            "loc": {
                                "type": "array",
                                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                            },
                            "msg": {"type": "string"},
                            "type": {"type": "string"},
                            "rule": {"type": "string"},
                        },
                    },
                },
                "request_id": {"type": "string", "description": "As in X-Request-ID."},
            },
            "additionalProperties": False,
        },
        "RoutingState": {
            "description": "The routing in force and the control state's revision.",
            "allOf": [
                {"$ref": "#/components/schemas/RoutingPlan"},
                {
                    "type": "object",
                    "required": ["revision", "request_id"],
                    "properties": {
                        "revision": {"type": "integer"},
                        "request_id": {"type": "string"},
                    },
                },
            ],
        },
        "Info": {
            "type": "object",
            "description": "What this worker serves.",
            "required": ["service", "bento", "variants", "routing", "revision", "request_id"],
            "properties": {
                "service": {"type": "string"},
                "bento": {"type": "string", "description": "The Bento's tag."},
                "bundle": {"type": "string"},
                "built_at": {"type": "string"},
                "variants": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "model": {"type": "string"},
                            "version": {"type": "string"},
                            "semver": {"type": "string"},
                            "weight": {"type": "number"},
                        },
                    },
                },
                "routing": {"$ref": "#/components/schemas/RoutingPlan"},
                "revision": {"type": "integer"},
                "reload_error": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "worker": {"type": "integer", "description": "The process that answered."},
                "request_id": {"type": "string"},
            },
        },
    }
    components: dict[str, Any] = {
        "schemas": schemas,
        "headers": {
            "X-Request-ID": {
                "description": "The request's id: the caller's X-Request-ID, or a new one.",
                "schema": {"type": "string"},
            },
            "WWW-Authenticate": {
                "schema": {"type": "string", "example": 'Bearer realm="shipyard"'}
            },
            "Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 1},
            },
        },
        "parameters": {
            "X-Request-ID": {
                "name": "X-Request-ID",
                "in": "header",
                "required": False,
                "description": "A correlation id (up to 128 characters) for the logs; "
                "one is made when left out.",
                "schema": {"type": "string", "maxLength": 128},
            },
            "X-Shipyard-Variant": {
                "name": "X-Shipyard-Variant",
                "in": "header",
                "required": False,
                "description": "Force the variant that answers (e.g. stable); routing "
                "otherwise chooses.",
                "schema": {"type": "string"},
            },
        },
    }
    auth = step.auth
    if auth is not None:
        schemes: dict[str, Any] = {}
        where = f"services.{step.service}.auth"
        if auth.api_keys:
            schemes[API_KEY] = {
                "type": "apiKey",
                "in": "header",
                "name": "X-API-Key",
                "description": f"One of the API keys of {where}.api_keys.",
            }
        bearer: dict[str, Any] = {"type": "http", "scheme": "bearer"}
        if auth.jwt is not None:
            bearer["bearerFormat"] = "JWT"
            bearer["description"] = (
                f"A JWT ({auth.jwt.algorithm}, roles in its '{auth.jwt.roles_claim}' claim"
                + (f", audience '{auth.jwt.audience}'" if auth.jwt.audience else "")
                + ")"
                + (" or an API key" if auth.api_keys else "")
                + "."
            )
        else:
            bearer["description"] = f"One of the API keys of {where}.api_keys, as a bearer."
        schemes[BEARER] = bearer
        components["securitySchemes"] = schemes
    return components


def _operation(summary: str, ok: dict[str, Any], tag: str, **extra: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "tags": [tag],
        "responses": {"200": ok},
        **extra,
    }


def _json(ref: str, description: str = "Successful Response") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


def complete(base: dict[str, Any], step: ServiceStep, version: str) -> dict[str, Any]:
    """BentoML's document `base` for the service of `step`, with the Gate's part added."""
    document = copy.deepcopy(base)
    document["openapi"] = OPENAPI_VERSION
    info = document.setdefault("info", {})
    info.pop("contact", None)  # BentoML's team is no contact for this service
    info["title"] = step.service
    info["version"] = version
    info["description"] = step.description + (
        " Send credentials as `Authorization: Bearer <key or token>` or `X-API-Key: <key>`."
        if step.auth is not None
        else " The service has no `auth:`: every endpoint answers without credentials."
    )
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in _BENTOML_ERRORS:
        schemas.pop(name, None)
    added = _components(step)
    schemas.update(added.pop("schemas"))
    components.update(added)
    paths: dict[str, Any] = document.setdefault("paths", {})
    app, infra = "Service APIs", "Infrastructure"
    paths.setdefault("/admin/routing", {})["get"] = _operation(
        "The routing in force and its revision (role admin).",
        _json("#/components/schemas/RoutingState"),
        app,
        operationId=f"{step.service}__admin_routing_get",
    )
    paths["/info"] = {
        "get": _operation(
            "The Bento, variants, versions, weights, routing and last reload error.",
            _json("#/components/schemas/Info"),
            infra,
        )
    }
    paths["/docs.json"] = {
        "get": _operation(
            "This document.",
            {"description": "OpenAPI 3.1", "content": {"application/json": {}}},
            infra,
        )
    }
    page = {"description": "Swagger UI over /docs.json", "content": {"text/html": {}}}
    paths["/docs"] = {"get": _operation("The API's documentation page.", page, infra)}
    paths["/"] = {"get": _operation("The API's documentation page, as /docs.", page, infra)}
    catalog = _codes(step)
    schemes = [API_KEY, BEARER] if step.auth and step.auth.api_keys else [BEARER]
    security: list[dict[str, list[str]]] = [{scheme: []} for scheme in schemes]
    for path, item in paths.items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = {
                status: response
                for status, response in operation["responses"].items()
                if not str(status).startswith(("4", "5"))  # BentoML's, not the Gate's
            }
            responses.update(_responses(_errors(step, method, path), catalog))
            operation["responses"] = responses
            protected = path in ("/predict", "/feedback") or path.startswith("/admin")
            if step.auth is not None:
                operation["security"] = security if protected else []
            if method in ("get", "post") and (protected or path == "/info"):
                parameters = [{"$ref": "#/components/parameters/X-Request-ID"}]
                if path == "/predict":
                    parameters.append({"$ref": "#/components/parameters/X-Shipyard-Variant"})
                operation["parameters"] = parameters
    _accept_one_row(paths)
    return document


def _accept_one_row(paths: dict[str, Any]) -> None:
    """/predict takes one row as it is, or a batch `{"rows": [...]}`: say both."""
    content = paths.get("/predict", {}).get("post", {}).get("requestBody", {}).get("content", {})
    media = content.get("application/json")
    if media is None or "schema" not in media:
        return
    batch = media["schema"]
    batch.pop("root_input", None)  # BentoML's marker, no JSON Schema keyword
    media["schema"] = {
        "description": "One row, or a batch of rows.",
        "anyOf": [{"$ref": "#/components/schemas/PredictRow"}, batch],
    }


class OpenApiDocument:
    """The completed document, made once per Bento served (a reload may change the auth)."""

    def __init__(self, generate: Callable[[], dict[str, Any]]) -> None:
        """Args:
        generate: BentoML's document for the service, as a dict.
        """
        self._generate = generate
        self._made: tuple[str, bytes] | None = None

    def render(self, step: ServiceStep, bento: str) -> bytes:
        """The document as JSON bytes, for the Bento `bento` built from `step`."""
        import json

        made = self._made
        if made is None or made[0] != bento:
            version = bento.partition(":")[2] or bento
            body = json.dumps(complete(self._generate(), step, version)).encode()
            made = self._made = (bento, body)
        return made[1]
