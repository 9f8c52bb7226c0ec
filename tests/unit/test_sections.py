"""The section registry: every section of the root spec has its parts, and one section's shape
errors never hide another section's errors ("all errors in one pass")."""

from __future__ import annotations

import copy
import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard.compiler import StepBase, flow_entrypoint
from shipyard.loader import load_text
from shipyard.spec import PipelineSpec
from shipyard.validation import validate

ROOT = Path(__file__).resolve().parents[2]

BASE: dict[str, Any] = {
    "project": "sections",
    "datasets": {
        "customers": {
            "path": "data/customers.parquet",
            "key": "customer_id",
            "timestamp": "event_time",
            "schema": {
                "customer_id": "int",
                "event_time": "datetime",
                "tenure": "int",
                "plan": "str",
                "churned": "bool",
            },
            "expectations": [{"not_null": ["customer_id"]}],
        }
    },
    "features": {
        "entities": {"customer": {"join_key": "customer_id"}},
        "views": {"profile": {"entity": "customer", "source": "customers", "features": ["tenure"]}},
        "services": {"profile_v1": ["profile"]},
    },
    "models": {
        "churn": {
            "task": "classification",
            "dataset": "customers",
            "target": "churned",
            "features": ["tenure", "plan"],
            "estimator": {"class": "sklearn.linear_model.LogisticRegression"},
        }
    },
    "services": {
        "churn-api": {
            "model": "churn",
            "candidates": ["challenger"],
            "auth": {"api_keys": {"app": {"key": "${secret:k}"}}},
        },
    },
    "rollouts": {
        "churn-api": {"candidate": "challenger", "steps": [{"weight": 20, "duration": "5m"}]},
    },
    "ab_tests": {
        "churn-test": {
            "service": "churn-api",
            "variants": {"control": "champion", "treatment": "challenger"},
            "assign_by": "tenure",
            "metric": {"name": "retained"},
            "mde": 0.02,
        },
    },
    "alerts": {"oncall": {"channels": ["json://127.0.0.1:9/hook"]}},
    "monitoring": {"churn-api": {"alerts": ["oncall"]}},
}

# section -> (the path of one of its entries, a key to set there, the value, the code it causes)
SEMANTIC: dict[str, tuple[tuple[str, ...], str, Any, str]] = {
    "datasets": (("datasets", "customers"), "key", "customer_idd", "E204"),
    "features": (("features", "views", "profile"), "entity", "custmer", "E601"),
    "models": (("models", "churn"), "target", "churnd", "E502"),
    "services": (("services", "churn-api"), "routing", {"sticky_key": "tenur"}, "E703"),
    "rollouts": (("rollouts", "churn-api"), "service", "churn-apii", "E801"),
    "ab_tests": (("ab_tests", "churn-test"), "service", "churn-apii", "E901"),
    "alerts": (("alerts", "oncall"), "channels", ["ops@example.com"], "E1001"),
    "monitoring": (("monitoring", "churn-api"), "alerts", ["oncal"], "E1002"),
}
# section -> an entry of it to give an unknown key (a shape error)
SHAPE: dict[str, tuple[str, ...]] = {
    "datasets": ("datasets", "customers"),
    "features": ("features", "views", "profile"),
    "models": ("models", "churn"),
    "services": ("services", "churn-api"),
    "rollouts": ("rollouts", "churn-api"),
    "ab_tests": ("ab_tests", "churn-test"),
    "alerts": ("alerts", "oncall"),
    "monitoring": ("monitoring", "churn-api"),
}


def _at(data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for key in path:
        data = data[key]
    return data


def _codes(data: dict[str, Any]) -> list[str]:
    text = yaml.safe_dump(data, sort_keys=False)
    return [d.code for d in validate(load_text(text, "pipelines.yaml", env={}))]


def test_the_tables_cover_every_section() -> None:
    assert set(SEMANTIC) == set(SHAPE) == set(PipelineSpec.sections())


def test_the_base_spec_is_valid() -> None:
    assert _codes(BASE) == []


@pytest.mark.parametrize("section", PipelineSpec.sections())
def test_every_section_has_a_spec_a_rule_and_a_compiler_module(section: str) -> None:
    importlib.import_module(f"shipyard.spec.{section}")
    rules = importlib.import_module(f"shipyard.validation.{section}")
    assert callable(getattr(rules, f"check_{section}"))
    compiler = importlib.import_module(f"shipyard.compiler.{section}")
    assert callable(getattr(compiler, f"compile_{section}"))


def test_every_step_that_names_a_flow_has_that_flow_file() -> None:
    kinds = [cls for cls in _subclasses(StepBase) if cls.flow is not None]
    assert kinds, "no step class names a flow"
    for kind in kinds:
        assert kind.flow is not None
        path, function = flow_entrypoint(kind.flow).split(":")
        source = (ROOT / path).read_text()
        assert f"def {function}(" in source, (kind.__name__, path)
        assert f'name="{kind.flow}"' in source, (kind.__name__, path)


def _subclasses(cls: type[StepBase]) -> list[type[StepBase]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


@pytest.mark.parametrize("section", PipelineSpec.sections())
def test_a_shape_error_in_another_section_does_not_hide_this_sections_errors(
    section: str,
) -> None:
    data = copy.deepcopy(BASE)
    path, key, value, code = SEMANTIC[section]
    _at(data, path)[key] = value
    assert code in _codes(data), "the semantic error itself is reported"
    for other in PipelineSpec.sections():
        if other != section:
            _at(data, SHAPE[other])["surprise"] = 1  # unknown key: the spec no longer validates
    codes = _codes(data)
    assert codes.count("E101") == len(PipelineSpec.sections()) - 1, codes
    assert code in codes, f"{section}'s {code} hidden by the other sections' shape errors"
