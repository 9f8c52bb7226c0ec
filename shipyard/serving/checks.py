"""Request rows checked against the per-row expectations of the model's training data.

The schema admits any number of the right type; the dataset's rules say which values the model
was trained on (`between: {column: tenure, min: 0}`). A service checks every request row
against those rules, as compiled into its step (`RequestChecksPlan`), and either answers with
the failed rules listed per row (`flag`) or refuses the request (`reject`). The cost is one
pass per rule over the column's values (min and max, a set inclusion), on values already parsed;
only a column that fails is walked row by row to say which rows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from shipyard.compiler.services import RequestChecksPlan, RequestRule


@dataclass(frozen=True)
class Failure:
    """One request row failing one rule."""

    row: int
    rule: RequestRule
    problem: str
    """What is wrong, without the value (the field may be one the logs mask)."""


def _bound(value: float) -> str:
    return str(int(value)) if value.is_integer() else str(value)


def _tests(
    rule: RequestRule,
) -> tuple[Callable[[Sequence[Any]], bool], Callable[[Any], str | None]]:
    """Two functions for a rule: whether a whole column of values passes (one C-level pass:
    min/max, a set inclusion, a map), and what is wrong with one value (None if nothing),
    called only for a column that does not pass."""
    if rule.kind == "between":
        low = -math.inf if rule.min is None else rule.min
        high = math.inf if rule.max is None else rule.max
        below = (
            f"not above {_bound(low)}" if rule.strict_min else f"below the minimum {_bound(low)}"
        )
        above = (
            f"not below {_bound(high)}" if rule.strict_max else f"above the maximum {_bound(high)}"
        )
        strict_min, strict_max = rule.strict_min, rule.strict_max

        def column_between(values: Sequence[Any]) -> bool:
            least: float = min(values)
            most: float = max(values)
            return (least > low if strict_min else least >= low) and (
                most < high if strict_max else most <= high
            )

        def between(value: Any) -> str | None:
            if value < low or (strict_min and value == low):
                return below
            if value > high or (strict_max and value == high):
                return above
            return None

        return column_between, between
    if rule.kind == "in_set":
        allowed = frozenset(rule.values or ())
        shown = ", ".join(map(str, rule.values or ()))

        def in_set(value: Any) -> str | None:
            return None if value in allowed else f"not one of {shown}"

        return allowed.issuperset, in_set
    pattern = re.compile(rule.pattern or "")

    def column_matches(values: Sequence[Any]) -> bool:
        return all(map(pattern.search, map(str, values)))

    def regex(value: Any) -> str | None:
        return None if pattern.search(str(value)) else f"does not match {pattern.pattern}"

    return column_matches, regex


class RequestChecker:
    """The compiled rules of one service, ready to run on request rows."""

    def __init__(self, plan: RequestChecksPlan) -> None:
        self.plan = plan
        self.rejects = plan.mode == "reject"
        self._tests = [(rule, *_tests(rule)) for rule in plan.rules]
        columns = [rule.column for rule in plan.rules]
        # every checked value of a row in one C call; a batch's columns in one transposition
        self._values: Callable[[Mapping[str, Any]], tuple[Any, ...]] = (
            (itemgetter(*columns) if len(columns) > 1 else lambda row: (row[columns[0]],))
            if columns
            else lambda row: ()
        )

    def check(self, rows: Sequence[Mapping[str, Any]]) -> list[Failure]:
        """Every failure of every row, in rule order. Request rows carry every request field,
        typed by the request schema (`between` is compiled for numbers only)."""
        failures = []
        if len(rows) == 1:
            for (rule, _, test), value in zip(self._tests, self._values(rows[0]), strict=True):
                if (problem := test(value)) is not None:
                    failures.append(Failure(0, rule, problem))
            return failures
        columns = zip(*map(self._values, rows), strict=True)
        for (rule, column_passes, test), values in zip(self._tests, columns, strict=True):
            if column_passes(values):
                continue
            for index, value in enumerate(values):
                if (problem := test(value)) is not None:
                    failures.append(Failure(index, rule, problem))
        return failures

    def refusing(self, failures: Sequence[Failure]) -> list[Failure]:
        """The failures that refuse the request: none when flagging; with `reject`, those of
        rules the training data holds without exception (`mostly` unset)."""
        if not self.rejects:
            return []
        return [f for f in failures if not f.rule.tolerant]


def rejection(failures: Sequence[Failure], dataset: str, service: str) -> tuple[str, list[Any]]:
    """The message and detail of a 400 for `failures`: the row, field and rule of each."""
    name = dataset.removeprefix("dataset.")
    lines = [
        f"rows.{f.row}.{f.rule.column}: {f.problem} ({f.rule.rule} of dataset '{name}')"
        for f in failures
    ]
    detail = [
        {"loc": ["rows", f.row, f.rule.column], "rule": f.rule.rule, "msg": f.problem}
        for f in failures
    ]
    message = "; ".join(lines) + (
        f"; send values the model was trained on, or set services.{service}.request_checks: "
        "flag to answer such rows with the failed rules listed"
    )
    return message, detail
