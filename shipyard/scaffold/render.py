"""The starter pipelines.yaml as text: every inferred choice with a comment saying why."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal

from shipyard.errors import ShipyardError
from shipyard.scaffold.infer import (
    MARGIN,
    DataProfile,
    Proposal,
    check_target,
    features_for,
    key_columns,
    positive_class,
    propose_expectations,
    suggested_target,
    task_for,
)

WIDTH = 96
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_./\-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}
ESTIMATORS = {
    "classification": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}
GATES = {
    "classification": ("roc_auc", ">= 0.70"),
    "regression": ("r2", ">= 0.30"),
}


@dataclass(frozen=True)
class Names:
    """The names the starter spec gives its resources."""

    project: str
    dataset: str
    data_path: str
    """The data file, relative to pipelines.yaml, POSIX separators."""
    source: str
    """How the user named the data file (for the header comment)."""


def scalar(value: object) -> str:
    """A YAML scalar: plain where that reads back as the same string, else JSON-quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # positional, never 6e-06: YAML 1.1 (PyYAML) reads an exponent without a dot as text
        text = format(Decimal(repr(value)), "f")
        return text if "." in text else text + ".0"
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text)


def flow_list(values: list[object], indent: int, prefix: str) -> str:
    """`prefix[a, b, ...]` wrapped at WIDTH, continuation lines indented under the first item."""
    items = [scalar(v) for v in values]
    if not items:
        return " " * indent + prefix + "[]"
    lines: list[str] = []
    current = " " * indent + prefix + "["
    hang = " " * (indent + len(prefix) + 1)
    for i, item in enumerate(items):
        piece = item + (", " if i < len(items) - 1 else "]")
        if len(current) + len(piece.rstrip()) > WIDTH and current.strip() not in ("", prefix + "["):
            lines.append(current.rstrip())
            current = hang
        current += piece
    lines.append(current)
    return "\n".join(lines)


def _mapping(args: dict[str, object]) -> str:
    return "{" + ", ".join(f"{k}: {scalar(v)}" for k, v in args.items()) + "}"


def _expectation(proposal: Proposal) -> str:
    comment = f"# {proposal.why}"
    if isinstance(proposal.args, list):
        head = f"- {proposal.kind}: "
        text = flow_list(proposal.args, 6, head)
        if "\n" in text or len(text) + len(comment) + 2 > WIDTH:
            return f"      {comment}\n{text}"
        return f"{text}  {comment}"
    return f"      - {proposal.kind}: {_mapping(proposal.args)}  {comment}"


def render_spec(profile: DataProfile, names: Names, target: str | None) -> str:
    """The whole starter spec. With a target it declares a model; without one the model is a
    commented example (for a column named like a label, if there is one)."""
    key = key_columns(profile)
    out: list[str] = [
        f"# A starter spec that `shipyard init` inferred from {names.source} "
        f"({profile.rows} rows, {len(profile.columns)} columns).",
        "# Every rule below passes on that file today: keep what is true of your data, tighten",
        "# the rest. `shipyard validate` checks this file, `shipyard plan --offline` shows what",
        "# it compiles to; docs/spec-reference.md lists every field.",
        f"project: {scalar(names.project)}",
        "profile: ${SHIPYARD_PROFILE:-local}",
        "",
        "profiles:",
        "  local: {}    # embedded: local Prefect server, MLflow, DVC remote, all under .shipyard/",
        "",
        "datasets:",
        f"  {names.dataset}:",
        "    description: "
        + scalar(f"Inferred from {names.source} by shipyard init: say what one row is."),
        f"    path: {scalar(names.data_path)}",
    ]
    if len(key) == 1:
        out.append(
            f"    key: {scalar(key[0])}    # every value present and distinct: the entity key "
            "(checked unique, not null)"
        )
    elif key:
        out.append(
            f"    key: [{', '.join(scalar(k) for k in key)}]    # a row per {key[0]} and "
            f"{key[1]}: unique together, never null"
        )
    dates = [c.name for c in profile.columns if c.type == "datetime"]
    if dates:
        out.append(
            f"    # timestamp: {scalar(dates[0])}    # if this is when each row happened: "
            "time-based splits and point-in-time features"
        )
    out.append("    schema:")
    for column in profile.columns:
        if column.categories is not None:
            values = ", ".join(json.dumps(v) for v in column.categories)
            seen = f"{len(column.categories)} value" + ("s" if len(column.categories) > 1 else "")
            out.append(
                f"      {scalar(column.name)}: {{category: [{values}]}}    "
                f"# {seen} seen; any other value fails validation"
            )
        else:
            out.append(f"      {scalar(column.name)}: {column.type}")
    out.append("    expectations:")
    said_between = False
    for proposal in propose_expectations(profile, key):
        if proposal.kind == "between" and not said_between:
            out.append(
                f"      # between: the range seen, widened by {MARGIN:.0%} of it on each side "
                "(not below 0 where no value is)"
            )
            said_between = True
        out.append(_expectation(proposal))
    out.append("")
    binary = True
    if target is not None:
        out.extend(_model_lines(profile, names, target, key))
        model_name, task, binary = _slug(target), *_task(profile, target)
    else:
        suggestion = suggested_target(profile)
        suggested: list[str] = []
        if suggestion is not None:
            try:
                suggested = _model_lines(profile, names, suggestion, key)
            except ShipyardError:
                suggestion = None  # named like a label, but not one a model can learn
        hint = (
            f"'{suggestion}' looks like the label: `shipyard init {names.source} --target "
            f"{suggestion}` writes this model for it"
            if suggestion
            else "name the label column: `shipyard init DATA --target COLUMN` writes it"
        )
        out.append("# A model needs a target column:")
        out.append(f"# {hint}.")
        if suggestion is not None:
            out.extend(_commented(suggested))
            model_name, task, binary = _slug(suggestion), *_task(profile, suggestion)
        else:
            model_name, task = "my-model", "classification"
    out.append("")
    out.append(
        "# When a version is registered: serve it, roll the next one out, and watch it. Uncomment"
    )
    out.append("# what you need (docs/serving.md, docs/rollouts.md, docs/monitoring.md).")
    out.extend(_commented(examples(model_name, task, binary).splitlines()))
    return "\n".join(out) + "\n"


def _task(profile: DataProfile, target: str) -> tuple[str, bool]:
    """The task, and whether a classification target has two classes."""
    column = check_target(profile, target)
    return task_for(column), column.distinct <= 2


def _model_lines(
    profile: DataProfile, names: Names, target: str | None, key: list[str]
) -> list[str]:
    if target is None:
        return []
    column = check_target(profile, target)
    task = task_for(column)
    used, left_out = features_for(profile, target, key)
    if not used:
        reasons = ", ".join(f"{name} ({why})" for name, why in left_out.items())
        raise ShipyardError(
            f"--target '{target}' leaves no column to learn from"
            + (f": the others are left out, {reasons}" if reasons else ": it is the only one"),
            hint="give a file with at least one feature column beside the target (numbers, "
            "booleans or categories), or run `shipyard init` without --target for the "
            "dataset alone",
        )
    classes = (
        f"{len(column.categories)} classes"
        if column.categories is not None
        else ("two classes" if column.type == "bool" else f"{column.distinct} distinct values")
    )
    why = f"'{target}' is {column.type}: {classes}"
    lines = [
        "models:",
        f"  {_slug(target)}:",
        f"    description: Predicts {target} from the other columns of {names.dataset}.",
        f"    task: {task}    # {why}",
        f"    dataset: {names.dataset}",
        f"    target: {scalar(target)}",
    ]
    positive = positive_class(column) if task == "classification" else None
    if positive is not None:
        lines.append(
            f"    positive_class: {json.dumps(positive)}    # the class the model detects: check it"
        )
    if left_out:
        by_reason: dict[str, list[str]] = {}
        for name, reason in left_out.items():
            by_reason.setdefault(reason, []).append(name)
        lines.append("    # every other column is a feature, except:")
        lines += [f"    #   {', '.join(cols)}: {reason}" for reason, cols in by_reason.items()]
    lines.append(flow_list(list(used), 4, "features: "))
    metric, condition = GATES[task]
    lines += [
        "    estimator:    # any scikit-learn compatible class by import path",
        f"      class: {ESTIMATORS[task]}",
        "      params: {max_iter: 100}",
        "    gate:    # a version is registered only when it passes",
        f'      {metric}: "{condition}"    # a floor that catches a broken model; raise it once '
        "you know what good is",
        f"      vs_champion: {{metric: {metric}, min_delta: -0.01}}    # and no worse than the "
        "champion",
    ]
    return lines


def examples(model: str, task: str, binary: bool = True) -> str:
    """A service, a canary rollout and a monitor for the model, as YAML (the spec comments them
    out; the tests check that uncommented they validate)."""
    service = f"{model}-api"
    if task == "regression":
        performance = "{metric: r2, min: 0.30, labels: feedback}"
    elif binary:
        performance = "{metric: roc_auc, min: 0.70, labels: feedback}"
    else:
        performance = "{metric: accuracy, min: 0.50, labels: feedback}"
    return f"""\
services:
  {service}:
    model: {model}
    candidates: [challenger]    # serve the newest gated version beside the champion
    port: 3000
    auth:
      api_keys:
        app: {{key: "${{secret:{service}-key}}", roles: [predict, feedback]}}
    rate_limit: {{per_key: 100/second, global: 500/second}}
rollouts:
  {service}:
    strategy: canary
    candidate: challenger
    steps: [{{weight: 20, duration: 10m}}, {{weight: 50, duration: 10m}}]
    analysis:
      interval: 1m
      metrics:
        - {{name: error_rate, max: 1%, compare: stable}}
        - {{name: latency_p99, max: 500ms, compare: stable, margin: 1.2}}
    on_success: promote
    on_failure: rollback
monitoring:
  {service}:
    window: 1h
    drift: {{inputs: psi, threshold: 0.2}}
    quality: expectations    # the dataset's expectations, on live inputs
    performance: {performance}    # needs labels sent to /feedback
"""


def _commented(lines: list[str]) -> list[str]:
    """Each line commented out, including the continuation lines of a wrapped flow list."""
    return [f"# {line}" if line else "#" for line in "\n".join(lines).splitlines()]


def _slug(name: str) -> str:
    """A resource name (lowercase letters, digits, - and _, starting with a letter)."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
    if not slug or not slug[0].isalpha():
        slug = "m-" + slug
    return slug[:63]


slug = _slug
