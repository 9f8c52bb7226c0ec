"""What a classification target may be: its label type, its classes and its positive class.

The one rule that spec validation (from the column type the dataset declares) and training (from
the labels in the data) both apply, so that the two never disagree. A target holds `bool`,
`int` or `str` labels, or the values of a category. Two classes make it binary, and a binary
target needs to know which class is the positive one (its probability is the score; roc_auc,
pr_auc, f1, precision and recall are about it): `True` for booleans, `1` for 0/1 labels,
otherwise the model's `positive_class`. More than two classes make it multiclass, where no class
is the positive one. Pure and imported by `shipyard validate`: nothing heavy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from shipyard.diagnostics import did_you_mean

Label = bool | int | str
"""One class of a classification target."""
TargetKind = Literal["binary", "multiclass"]
LABEL_TYPES = ("bool", "int", "str")
"""The scalar column types that hold labels (besides a category)."""
DeclaredType = str | Sequence[str | int]
"""A column type as the compiled plan writes it: a type name, or the category's values."""


@dataclass(frozen=True)
class ClassificationTarget:
    """A classification target as far as it is known.

    Attributes:
        classes: The classes in the order models see them (sorted, as scikit-learn's
            `classes_`), or None while only the data can tell (an `int` or `str` column).
        kind: "binary", "multiclass", or None while the classes are unknown.
        positive: The positive class of a binary target; None otherwise, or while unknown.
    """

    classes: tuple[Label, ...] | None
    kind: TargetKind | None
    positive: Label | None = None

    @property
    def negative(self) -> Label | None:
        """The other class of a binary target."""
        if self.kind != "binary" or self.classes is None:
            return None
        return next(c for c in self.classes if not same_label(c, self.positive))

    def describe(self) -> str:
        """'binary, positive class 'yes'' or '3 classes: a, b, c'."""
        if self.classes is None:
            return "classes known once the data is read"
        if self.kind == "binary":
            return f"binary, positive class {show(self.positive)}"
        return f"{len(self.classes)} classes: {', '.join(map(show, self.classes))}"


@dataclass(frozen=True)
class TargetProblem:
    """Why a column cannot be the target, or its positive class is wrong or missing.

    Attributes:
        code: E506 (labels of the wrong type or too few classes), E509 (a binary target
            without a positive class), E510 (a `positive_class` that is not one of its classes).
        message: What is wrong, naming the target, e.g. "target 'x' has type 'float'".
        hint: The fix.
        at: Where the fix goes: the model's `target` or its `positive_class`.
    """

    code: str
    message: str
    hint: str
    at: Literal["target", "positive_class"]


def declared_target(
    target: str, column_type: DeclaredType, positive: Label | None
) -> ClassificationTarget | TargetProblem:
    """The target as its declared column type tells, for validation and the compiled plan.

    Args:
        target: The target column's name (for messages).
        column_type: Its declared type: a type name or a category's values.
        positive: The model's `positive_class`, or None when not written.
    """
    label_type = _label_type(column_type)
    if label_type is None:
        return TargetProblem(
            "E506",
            f"classification target '{target}' has type '{column_type}'",
            "a classification target is bool, int, str or a category; "
            "use `task: regression` for numbers",
            "target",
        )
    if label_type == "bool":
        return _resolve(target, "bool", (False, True), positive)
    if isinstance(column_type, str):
        return _resolve(target, label_type, None, positive)
    return _resolve(target, label_type, tuple(column_type), positive)


def observed_target(
    target: str, column_type: DeclaredType, positive: Label | None, labels: Iterable[Label]
) -> ClassificationTarget | TargetProblem:
    """The target as training finds it: the declared rule, with the classes of the data.

    A declared category keeps its kind (a three-class category stays multiclass when the data
    holds two of them); an `int` or `str` column gets its classes from the data.

    Args:
        target: The target column's name.
        column_type: Its declared type.
        positive: The model's `positive_class`, or None.
        labels: The distinct labels in the training data (Python values, no missing ones).
    """
    declared = declared_target(target, column_type, positive)
    if isinstance(declared, TargetProblem):
        return declared
    found = sort_labels(set(labels))
    if len(found) < 2:
        shown = f" ({show(found[0])})" if found else ""
        return TargetProblem(
            "E506",
            f"target '{target}' has {len(found)} class{shown} in the data; "
            "a classifier needs at least two",
            "check the data (or the target column named in pipelines.yaml)",
            "target",
        )
    if declared.classes is not None and declared.kind == "multiclass":
        return ClassificationTarget(found, "multiclass")
    if declared.classes is not None and declared.kind == "binary":
        # the data holds both declared classes (validate-dataset checks category values)
        return ClassificationTarget(declared.classes, "binary", declared.positive)
    return _resolve(target, _label_type(column_type) or "str", found, positive)


def same_label(a: Label | None, b: Label | None) -> bool:
    """Equal and of the same type: `True` is not the class `1`, `1` is not the class '1'."""
    return type(a) is type(b) and a == b


def sort_labels(labels: Iterable[Label]) -> tuple[Label, ...]:
    """Classes in scikit-learn's order (sorted); numbers before words if they are mixed."""
    return tuple(sorted(labels, key=lambda v: (isinstance(v, str), v)))


def show(label: Label | None) -> str:
    """A class as the spec writes it: 'yes', 1, true."""
    if isinstance(label, bool):
        return "true" if label else "false"
    return f"'{label}'" if isinstance(label, str) else str(label)


def _label_type(column_type: DeclaredType) -> str | None:
    if isinstance(column_type, str):
        return column_type if column_type in LABEL_TYPES else None
    values = list(column_type)
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "int"
    return "str"


def _resolve(
    target: str, label_type: str, classes: tuple[Label, ...] | None, positive: Label | None
) -> ClassificationTarget | TargetProblem:
    if positive is not None and not _of_type(positive, label_type):
        example = {"bool": "true", "int": "1", "str": "yes"}[label_type]
        return TargetProblem(
            "E510",
            f"positive_class {show(positive)} is not a {label_type}, but target '{target}' "
            f"holds {label_type} labels",
            f"write the class as the data holds it, e.g. `positive_class: {example}`",
            "positive_class",
        )
    if classes is None:
        return ClassificationTarget(None, None, positive)
    classes = sort_labels(classes)
    if len(classes) < 2:
        return TargetProblem(
            "E506",
            f"classification target '{target}' has one category, {show(classes[0])}; "
            "a classifier needs at least two classes",
            "list every class under the column's `category:`",
            "target",
        )
    listed = ", ".join(map(show, classes))
    if len(classes) > 2:
        if positive is not None:
            return TargetProblem(
                "E510",
                f"positive_class {show(positive)} is for a binary target, but target "
                f"'{target}' has {len(classes)} classes ({listed})",
                "remove `positive_class`: a multiclass model scores every class",
                "positive_class",
            )
        return ClassificationTarget(classes, "multiclass")
    if positive is None:
        if classes in ((False, True), (0, 1)):
            return ClassificationTarget(classes, "binary", classes[1])
        return TargetProblem(
            "E509",
            f"binary target '{target}' has classes {listed}, and no `positive_class` says "
            "which one the model detects",
            f"add `positive_class: {_written(classes[-1])}` (or {_written(classes[0])}) to "
            "the model: its probability is the score, and roc_auc, f1, precision and recall "
            "are about it",
            "target",
        )
    if not any(same_label(positive, c) for c in classes):
        words = [c for c in classes if isinstance(c, str)]
        close = did_you_mean(positive, words) if isinstance(positive, str) else None
        return TargetProblem(
            "E510",
            f"positive_class {show(positive)} is not a class of target '{target}' ({listed})",
            close or f"use one of {listed}",
            "positive_class",
        )
    return ClassificationTarget(classes, "binary", positive)


def _of_type(value: Label, label_type: str) -> bool:
    if label_type == "bool":
        return isinstance(value, bool)
    if label_type == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, str)


def _written(label: Label) -> str:
    """A class as YAML would keep it: words that YAML reads as something else are quoted."""
    if isinstance(label, str) and (
        label.lower() in ("true", "false", "null", "~", "")
        or label.lstrip("+-").replace(".", "", 1).isdigit()
    ):
        return f"'{label}'"
    return str(label).lower() if isinstance(label, bool) else str(label)
