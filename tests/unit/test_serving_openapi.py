"""The OpenAPI document follows the service's settings: its auth, limits, checks and features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from shipyard.compiler import ServiceStep
from shipyard.serving.openapi import complete

from .specs import compile_text, replaced

pytestmark = pytest.mark.usefixtures("no_state_dir_override")

SPEC = """\
project: shop
datasets:
  orders:
    path: data/orders.csv
    key: order_id
    schema: {order_id: int, amount: float, items: int, returned: bool}
    expectations: [{not_null: order_id}, {between: {column: amount, min: 0}}]
models:
  returns:
    task: classification
    dataset: orders
    target: returned
    features: [amount, items]
    estimator: {class: sklearn.linear_model.LogisticRegression}
services:
  returns-api:
    model: returns
    auth:
      api_keys:
        app: {key: "${secret:returns-api-key}", roles: [predict, feedback]}
      jwt: {algorithm: HS256, secret: "${secret:jwt}", audience: returns}
    rate_limit: 100/second
"""
OK = {"description": "Successful Response", "content": {"application/json": {"schema": {}}}}
BENTOML_ERROR = {"description": "Bad Request", "content": {"application/json": {"schema": {}}}}


def bentoml_document() -> dict[str, Any]:
    """The shape BentoML generates: its API routes, infra endpoints and error bodies."""

    def api(name: str) -> dict[str, Any]:
        return {
            "post": {
                "responses": {"200": OK, "400": BENTOML_ERROR, "404": BENTOML_ERROR},
                "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                "operationId": f"returns-api__{name}",
            }
        }

    return {
        "openapi": "3.0.2",
        "info": {"title": "returns-api", "version": "None", "contact": {"name": "BentoML Team"}},
        "components": {
            "schemas": {
                "PredictRow": {"type": "object"},
                "RoutingPlan": {"type": "object"},
                "InvalidArgument": {"type": "object"},
            }
        },
        "paths": {
            "/livez": {"get": {"responses": {"200": {"description": "ok"}}}},
            "/predict": api("predict"),
            "/feedback": api("feedback"),
            "/admin/routing": api("admin_routing"),
            "/admin/reload": api("admin_reload"),
        },
    }


def step_of(tmp_path: Path, text: str = SPEC) -> ServiceStep:
    return compile_text(tmp_path, text).named(ServiceStep, "returns-api")


def statuses(document: dict[str, Any], method: str, path: str) -> list[str]:
    return sorted(document["paths"][path][method]["responses"])


def codes(document: dict[str, Any], method: str, path: str, status: str) -> list[str]:
    response = document["paths"][path][method]["responses"][status]
    return list(response["content"]["application/json"]["examples"])


def test_the_document_is_valid_openapi_with_every_endpoint(tmp_path: Path) -> None:
    document = complete(bentoml_document(), step_of(tmp_path), "m1-abc")
    assert list(OpenAPIV31SpecValidator(document).iter_errors()) == []
    assert document["info"] == {
        "title": "returns-api",
        "version": "m1-abc",
        "description": document["info"]["description"],
    }
    assert {"/info", "/docs.json", "/docs", "/"} <= set(document["paths"])
    assert set(document["paths"]["/admin/routing"]) == {"get", "post"}
    assert "InvalidArgument" not in document["components"]["schemas"]  # BentoML's error body


def test_both_schemes_guard_exactly_the_endpoints_with_a_role(tmp_path: Path) -> None:
    document = complete(bentoml_document(), step_of(tmp_path), "m1-abc")
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "One of the API keys of services.returns-api.auth.api_keys.",
    }
    assert schemes["BearerAuth"]["scheme"] == "bearer"
    assert schemes["BearerAuth"]["bearerFormat"] == "JWT"
    either: list[dict[str, list[str]]] = [{"ApiKeyHeader": []}, {"BearerAuth": []}]
    for method, path in [("post", "/predict"), ("post", "/feedback"), ("get", "/admin/routing")]:
        assert document["paths"][path][method]["security"] == either
    for path in ("/info", "/livez", "/docs.json"):
        assert document["paths"][path]["get"]["security"] == []


def test_each_endpoint_lists_the_errors_it_can_answer(tmp_path: Path) -> None:
    document = complete(bentoml_document(), step_of(tmp_path), "m1-abc")
    assert statuses(document, "post", "/predict") == [
        "200",
        "400",
        "401",
        "403",
        "413",
        "429",
        "503",
    ]
    assert statuses(document, "post", "/feedback") == [
        "200",
        "400",
        "401",
        "403",
        "404",
        "413",
        "429",
        "503",
    ]
    assert codes(document, "post", "/feedback", "404") == ["unknown_request_id"]
    assert codes(document, "post", "/predict", "401") == [
        "missing_credentials",
        "invalid_key",
        "invalid_token",
        "token_expired",
    ]
    assert codes(document, "post", "/predict", "413") == ["batch_too_large", "request_too_large"]
    assert statuses(document, "get", "/info") == ["200", "503"]
    unauthorized = document["paths"]["/predict"]["post"]["responses"]["401"]
    assert set(unauthorized["headers"]) == {"X-Request-ID", "WWW-Authenticate"}
    limited = document["paths"]["/predict"]["post"]["responses"]["429"]
    assert set(limited["headers"]) == {"X-Request-ID", "Retry-After"}


def test_a_service_without_auth_or_limits_declares_no_scheme_and_no_401(tmp_path: Path) -> None:
    text = SPEC[: SPEC.index("    auth:")]
    document = complete(bentoml_document(), step_of(tmp_path, text), "m1-abc")
    assert "securitySchemes" not in document["components"]
    assert "security" not in document["paths"]["/predict"]["post"]
    assert statuses(document, "post", "/predict") == ["200", "400", "413", "503"]


def test_reject_adds_its_400_and_feature_services_their_404_and_503(tmp_path: Path) -> None:
    text = replaced(SPEC, ("    rate_limit: 100/second\n", "    request_checks: reject\n"))
    document = complete(bentoml_document(), step_of(tmp_path, text), "m1-abc")
    assert codes(document, "post", "/predict", "400") == [
        "invalid_request",
        "unknown_variant",
        "failed_expectations",
    ]
    assert "429" not in document["paths"]["/predict"]["post"]["responses"]
    online = step_of(tmp_path).model_copy(update={"feature_service": "returns_v1"})
    document = complete(bentoml_document(), online, "m1-abc")
    assert codes(document, "post", "/predict", "404") == ["unknown_entity"]
    assert codes(document, "post", "/predict", "503") == ["starting", "feature_store_unavailable"]


def test_predict_takes_one_row_or_a_batch(tmp_path: Path) -> None:
    document = complete(bentoml_document(), step_of(tmp_path), "m1-abc")
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["anyOf"][0] == {"$ref": "#/components/schemas/PredictRow"}
