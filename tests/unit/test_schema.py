"""The exported JSON Schema: documented everywhere, and it accepts what the loader accepts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard.cli import main
from shipyard.spec.schema import SCHEMA_ID, spec_json_schema

DEMO_SPEC = Path(__file__).resolve().parents[2] / "pipelines.yaml"


def properties(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (location, schema) under a `properties` mapping, anywhere in the schema."""
    if isinstance(node, dict):
        for name, prop in node.get("properties", {}).items():
            yield f"{where}/properties/{name}", prop
        for key, value in node.items():
            yield from properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from properties(value, f"{where}/{i}")


def is_described(prop: dict[str, Any], defs: dict[str, Any]) -> bool:
    if prop.get("description"):
        return True
    # `{"$ref": ...}` alone is described by the definition it points at
    ref = prop.get("$ref")
    return bool(ref and defs[ref.rsplit("/", 1)[-1]].get("description"))


def test_schema_is_draft_2020_12_with_an_id() -> None:
    schema = spec_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID
    assert schema["required"] == ["project"]
    assert set(schema["properties"]) == {"project", "profile", "profiles", "datasets"}


def test_every_property_has_a_description() -> None:
    schema = spec_json_schema()
    found = list(properties(schema))
    assert len(found) > 40  # the walk reached the nested definitions
    undocumented = [where for where, prop in found if not is_described(prop, schema["$defs"])]
    assert undocumented == []


def test_every_definition_has_a_description() -> None:
    defs = spec_json_schema()["$defs"]
    assert [name for name, d in defs.items() if not d.get("description")] == []


def test_schema_uses_the_yaml_spelling_of_aliased_keys() -> None:
    dataset = spec_json_schema()["$defs"]["DatasetSpec"]
    assert "schema" in dataset["properties"] and "columns" not in dataset["properties"]
    assert dataset["additionalProperties"] is False


def test_schema_command_prints_the_same_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == spec_json_schema()


def test_schema_command_writes_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pipelines.schema.json"
    assert main(["schema", "-o", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8")) == spec_json_schema()
    assert f"wrote {out}" in capsys.readouterr().err


# The checks below need the `jsonschema` package (present in the locked environment as a
# dependency of the stack, not of shipyard): they show editors validating with the schema agree
# with `shipyard validate`.
jsonschema = pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = spec_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_demo_spec_validates_against_the_schema(validator: Any) -> None:
    data = yaml.safe_load(DEMO_SPEC.read_text(encoding="utf-8"))
    assert [e.message for e in validator.iter_errors(data)] == []


@pytest.mark.parametrize(
    "text",
    [
        "project: demo\nnot_a_key: 1\n",
        "datasets: {}\n",
        "project: Bad Name\n",
        "project: demo\ndatasets:\n  a: {path: a.csv, schema: {id: integer}}\n",
        "project: demo\ndatasets:\n  a: {path: a.csv, schema: {id: int}, "
        "expectations: [{not_null: {columns: [id], mostly: 2}}]}\n",
        "project: demo\nprofiles:\n  local: {kind: cloud}\n",
    ],
)
def test_schema_rejects_specs_the_loader_rejects(validator: Any, text: str) -> None:
    assert list(validator.iter_errors(yaml.safe_load(text)))
