"""JSON Schema export of pipelines.yaml (editor completion and the spec reference in docs/)."""

from __future__ import annotations

from typing import Any

from shipyard.spec.root import PipelineSpec

SCHEMA_ID = "https://shipyard.dev/schemas/pipelines.schema.json"


def spec_json_schema() -> dict[str, Any]:
    schema = PipelineSpec.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}
