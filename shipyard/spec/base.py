"""Shared building blocks of the spec models: strict base model, names, schedules."""

from __future__ import annotations

import re
import typing
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

NAME_PATTERN = r"^[a-z][a-z0-9_-]*$"

Name = Annotated[
    str,
    StringConstraints(pattern=NAME_PATTERN, max_length=63),
    Field(
        description="A resource name: lowercase letters, digits, '-' and '_', "
        "starting with a letter."
    ),
]


SPEC_RULE = "spec_rule"
"""pydantic error type of the checks below; the loader positions it with its `ctx`."""


def spec_rule(
    message: str, hint: str, at: tuple[str, ...] = (), *, key: bool = False, code: str = "E103"
) -> PydanticCustomError:
    """A validation error for the loader to report at `at` (relative to the value checked).

    `key` points at the key written at `at` rather than its value; `code` is the diagnostic code.
    """
    context = {"message": message, "hint": hint, "at": list(at), "key": key, "code": code}
    return PydanticCustomError(SPEC_RULE, message, context)


class SpecModel(BaseModel):
    """Base of every spec model: unknown keys are errors, instances are immutable, numbers are
    finite and never booleans (`port: true` is a mistake, not port 1)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_not_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name is not None:
            field = cls.model_fields.get(info.field_name)
            if field is not None and _wants_number(field.annotation):
                raise spec_rule(
                    f"{str(value).lower()} is a boolean, not a number",
                    "write a number here: YAML reads true and false as booleans",
                )
        return value


def _wants_number(annotation: Any) -> bool:
    """An int or float field (optional or not) that takes no booleans."""
    found: set[Any] = set()
    stack = [annotation]
    while stack:
        current = stack.pop()
        args = typing.get_args(current)
        if args:
            stack.extend(a for a in args if not isinstance(a, str))
        else:
            found.add(current)
    return bool(found & {int, float}) and bool not in found


_CRON_NICKNAMES = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"}


def _check_cron(value: str) -> str:
    from datetime import datetime

    from cronsim import CronSim, CronSimError

    text = value.strip()
    if text in _CRON_NICKNAMES:
        return text
    try:
        if len(text.split()) != 5:
            raise CronSimError("wrong number of fields")
        CronSim(text, datetime(2020, 1, 1))
    except CronSimError as exc:
        raise ValueError(
            f"'{value}' is not a cron expression ({exc}): expected five fields "
            "(minute hour day-of-month month day-of-week), e.g. '0 3 * * *', or @daily/@hourly"
        ) from None
    return text


Cron = Annotated[
    str,
    AfterValidator(_check_cron),
    Field(
        description="A cron schedule (five fields, e.g. '0 3 * * *', or @hourly/@daily); "
        "the compiled Prefect deployment runs on it.",
        examples=["0 3 * * *", "@hourly"],
    ),
]

DURATION_PATTERN = r"^([0-9]+)(ms|s|m|h|d|w)$"
_DURATION = re.compile(DURATION_PATTERN)
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION_SECONDS = 100 * 365 * 86400
"""Durations past a century are typos (and overflow Feast's and Python's timedeltas)."""


class DurationError(ValueError):
    """A duration that does not parse: `problem` says what is wrong, `hint` how to write it."""

    def __init__(self, problem: str, hint: str) -> None:
        super().__init__(f"{problem}: {hint}")
        self.problem, self.hint = problem, hint


def parse_duration(text: str) -> float:
    """'90s', '10m', '1h', '30d' -> seconds (digits 0-9 only; at most a century)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise DurationError(
            f"'{text}' is not a duration", "use a number and a unit, e.g. 30s, 10m, 1h, 30d"
        )
    seconds = int(match.group(1)) * _DURATION_SECONDS[match.group(2)]
    if seconds > MAX_DURATION_SECONDS:
        raise DurationError(f"'{text}' is longer than a century", "check the number and the unit")
    return seconds


def _check_duration(value: str) -> str:
    try:
        parse_duration(value)
    except DurationError as exc:
        raise spec_rule(exc.problem, exc.hint) from None
    return value


Duration = Annotated[
    str,
    AfterValidator(_check_duration),
    Field(json_schema_extra={"pattern": DURATION_PATTERN}),
]
"""A duration such as 30s, 10m, 1h or 30d (at most a century)."""
