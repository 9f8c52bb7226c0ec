"""Helpers the rule and compiler tests share: edit a spec text, validate it, compile it."""

from __future__ import annotations

from pathlib import Path

from shipyard.compiler import DatasetStep, Plan, TrainModelStep, compile_plan
from shipyard.diagnostics import Diagnostic, Span
from shipyard.loader import load_text
from shipyard.validation import validate


def replaced(text: str, *replacements: tuple[str, str]) -> str:
    """`text` with each (old, new) applied; `old` must occur exactly once."""
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


ENVIRONMENTS_SPEC = """
project: shop
profile: staging
profiles:
  staging: {state_dir: .shipyard-staging}
  production: {state_dir: .shipyard-production, serving: {port_offset: 10}}
environments:
  - profile: staging
  - profile: production
    approval: true
    rollouts: {shop-api: shop-api-careful}
datasets:
  orders:
    path: data/orders.csv
    schema: {order_id: int, amount: float, items: int, returned: bool}
    expectations: [{not_null: order_id}]
models:
  returns:
    task: classification
    dataset: orders
    target: returned
    features: [amount, items]
    estimator: {class: sklearn.linear_model.LogisticRegression}
services:
  shop-api: {model: returns, port: 3100}
rollouts:
  shop-api: {strategy: canary, candidate: challenger}
  shop-api-careful:
    service: shop-api
    strategy: blue_green
    candidate: challenger
"""
"""A project with two environments (staging, then production with an approval and a rollout of
its own): environments, promotion and the rendered CI pipelines read it."""


# --- validation --------------------------------------------------------------------------------


def check(text: str, env: dict[str, str] | None = None) -> list[Diagnostic]:
    """The diagnostics of a spec text, loaded as `spec.yaml`."""
    return validate(load_text(text, "spec.yaml", env=env or {}))


def only(text: str) -> Diagnostic:
    """The one diagnostic of a spec text."""
    diagnostics = check(text)
    assert len(diagnostics) == 1, diagnostics
    return diagnostics[0]


def span_of(text: str, needle: str, within: str, nth: int = 1) -> Span:
    """The span of the nth `needle` (on one line) from the first occurrence of `within`."""
    at = text.index(within) - 1
    for _ in range(nth):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at) + 1
    col = at - (text.rfind("\n", 0, at) + 1) + 1
    return Span("spec.yaml", line, col, line, col + len(needle))


# --- compilation -------------------------------------------------------------------------------


def compile_text(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Plan:
    """The plan of a valid spec text, loaded as `pipelines.yaml` in the project `tmp_path`."""
    loaded = load_text(text, "pipelines.yaml", env=env or {})
    assert loaded.spec is not None, loaded.diagnostics
    return compile_plan(loaded.spec, tmp_path, loaded.secrets)


def dataset_step(plan: Plan, dataset: str) -> DatasetStep:
    """The step a dataset's validate-dataset deployment runs."""
    deployment = plan.deployment("validate-dataset", dataset)
    assert deployment is not None and deployment.parameters == {"dataset": dataset}
    return plan.step(deployment.step, DatasetStep)


def train_step(plan: Plan, model: str = "churn") -> TrainModelStep:
    """The step a model's train-model deployment runs."""
    deployment = plan.deployment("train-model", model)
    assert deployment is not None and deployment.parameters == {"model": model}
    return plan.step(deployment.step, TrainModelStep)
