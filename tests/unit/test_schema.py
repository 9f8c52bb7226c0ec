"""The exported JSON Schema: documented everywhere, and it accepts what the loader accepts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard.cli import main
from shipyard.loader import load_text
from shipyard.spec import PipelineSpec
from shipyard.spec.root import CORE_FIELDS
from shipyard.spec.schema import SCHEMA_ID, spec_json_schema

DEMO_SPEC = Path(__file__).resolve().parents[2] / "pipelines.yaml"

MODEL_SPEC = """\
project: demo
datasets:
  customers:
    path: data/customers.csv
    schema: {id: int, spend: float, churned: bool}
    expectations: [{not_null: id}]
models:
  churn:
    task: classification
    dataset: customers
    target: churned
    features: [spend]
"""


def model(body: str) -> str:
    """MODEL_SPEC with `body` (keys of the model, indented four spaces) added to the model."""
    return MODEL_SPEC + body


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
    # the root's properties are the core fields and every registered section
    assert list(schema["properties"]) == list(PipelineSpec.model_fields)
    assert set(CORE_FIELDS) | set(PipelineSpec.sections()) == set(schema["properties"])


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


def test_gate_takes_inline_thresholds_of_the_conditions_the_loader_parses() -> None:
    from shipyard.spec.models import _CONDITION

    gate = spec_json_schema()["$defs"]["GateSpec"]
    assert set(gate["properties"]) == {"thresholds", "vs_champion"}
    # `roc_auc: '>= 0.80'` next to vs_champion: any other key is a metric with a condition
    inline = gate["additionalProperties"]
    assert inline["type"] == "string"
    assert inline["pattern"] == _CONDITION.pattern
    assert inline["description"]
    assert gate["properties"]["thresholds"]["additionalProperties"]["pattern"] == _CONDITION.pattern


def test_model_requires_what_the_loader_requires() -> None:
    defs = spec_json_schema()["$defs"]
    assert defs["ModelSpec"]["required"] == ["task", "dataset", "target", "features"]
    assert defs["ModelSpec"]["additionalProperties"] is False
    assert "class" in defs["EstimatorSpec"]["properties"]  # the YAML spelling, not class_
    assert defs["SearchSpec"]["required"] == ["strategy", "space"]


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
        model("    estimator: {class: a.B}\n    metircs: [roc_auc]\n"),
        model("    estimator: {class: LogisticRegression}\n"),
        model("    estimator: {class: a.B, parms: {}}\n"),
        model("    train: my_module.train\n"),
        model("    estimator: {class: a.B}\n    split: {by: tiem}\n"),
        model("    estimator: {class: a.B}\n    split: {test_size: 1.5}\n"),
        model("    estimator: {class: a.B}\n    gate: {roc_auc: about 0.8}\n"),
        model("    estimator: {class: a.B}\n    gate: {roc_auc: 0.8}\n"),
        model("    estimator: {class: a.B}\n    gate: {thresholds: {roc_auc: '=> 0.8'}}\n"),
        model("    estimator: {class: a.B}\n    gate: {vs_champoin: {metric: roc_auc}}\n"),
        model(
            "    estimator: {class: a.B}\n    gate: {vs_champion: {metric: f1, confidence: 2}}\n"
        ),
        model("    estimator: {class: a.B}\n    search: {strategy: grid}\n"),
        model("    estimator: {class: a.B}\n    search: {strategy: best, space: {C: [1]}}\n"),
    ],
)
def test_schema_rejects_specs_the_loader_rejects(validator: Any, text: str) -> None:
    assert [d.code for d in load_text(text, "spec.yaml", env={}).diagnostics]
    assert list(validator.iter_errors(yaml.safe_load(text)))


@pytest.mark.parametrize(
    "body",
    [
        "    estimator: {class: a.B}\n",
        "    train: my_project.training:fit\n    params: {C: 1.0}\n",
        "    estimator: {class: a.B}\n    gate: {roc_auc: '>= 0.80', log_loss: '< 0.5'}\n",
        "    estimator: {class: a.B}\n    gate: {roc_auc: ' > -1 '}\n",
        "    estimator: {class: a.B}\n    gate: {thresholds: {f1: '<= 1'}}\n",
        "    estimator: {class: a.B}\n    gate: {roc_auc: '>= 0.7', vs_champion: {metric: f1}}\n",
        "    estimator: {class: a.B}\n    split: {by: time, test_size: 0.25, seed: 1}\n",
        "    estimator: {class: a.B}\n    search: {strategy: random, space: {C: {int: [1, 9]}}}\n",
    ],
)
def test_schema_accepts_model_specs_the_loader_accepts(validator: Any, body: str) -> None:
    text = model(body)
    assert load_text(text, "spec.yaml", env={}).ok
    assert [e.message for e in validator.iter_errors(yaml.safe_load(text))] == []


FEATURES_SPEC = """\
project: demo
datasets:
  customers:
    path: data/customers.csv
    timestamp: at
    schema: {id: int, at: datetime, spend: float, calls: int, churned: bool}
    expectations: [{not_null: id}]
features:
  entities:
    customer: {join_key: id}
  views:
    usage: {entity: customer, source: customers, features: [spend, calls]%s}
  services:
    churn_v1: %s
"""


@pytest.mark.parametrize(
    ("view", "service"),
    [
        ("", "[usage]"),
        (", ttl: 12h, online: false", "{views: [usage], on_missing: error}"),
        (", schedule: '*/30 * * * *'", "{features: ['usage:spend'], on_missing: null}"),
    ],
)
def test_schema_accepts_feature_specs_the_loader_accepts(
    validator: Any, view: str, service: str
) -> None:
    text = FEATURES_SPEC % (view, service)
    assert load_text(text, "spec.yaml", env={}).ok
    assert [e.message for e in validator.iter_errors(yaml.safe_load(text))] == []


@pytest.mark.parametrize(
    ("view", "service"),
    [
        (", ttl: 30 days", "[usage]"),
        (", ttl: 30", "[usage]"),
        (", tll: 30d", "[usage]"),
        ("", "[]"),
        ("", "{}"),
        ("", "usage"),
        ("", "{views: [usage], on_missing: skip}"),
        ("", "{veiws: [usage]}"),
    ],
)
def test_schema_rejects_feature_specs_the_loader_rejects(
    validator: Any, view: str, service: str
) -> None:
    text = FEATURES_SPEC % (view, service)
    assert [d.code for d in load_text(text, "spec.yaml", env={}).diagnostics]
    assert list(validator.iter_errors(yaml.safe_load(text)))


@pytest.mark.parametrize("features", ["[]", "''", "5"])
def test_schema_rejects_model_features_the_loader_rejects(validator: Any, features: str) -> None:
    text = MODEL_SPEC.replace("features: [spend]", f"features: {features}") + (
        "    estimator: {class: a.B}\n"
    )
    assert [d.code for d in load_text(text, "spec.yaml", env={}).diagnostics] == ["E103"]
    assert list(validator.iter_errors(yaml.safe_load(text)))


def test_reference_shows_the_feature_service_keys_and_its_list_form() -> None:
    from shipyard.spec.reference import spec_reference_markdown

    text = spec_reference_markdown()
    section = text[text.index("## FeatureServiceSpec") : text.index("## FeatureViewSpec")]
    assert "Also written as a list of string" in section
    assert "| `views` | list of string |" in section
    assert '| `on_missing` | `null` \\| `error` | `"null"` |' in section
