"""Shared building blocks of the spec models: strict base model, names, schedules."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

NAME_PATTERN = r"^[a-z][a-z0-9_-]*$"

Name = Annotated[
    str,
    StringConstraints(pattern=NAME_PATTERN, max_length=63),
    Field(
        description="A resource name: lowercase letters, digits, '-' and '_', "
        "starting with a letter."
    ),
]


class SpecModel(BaseModel):
    """Base of every spec model: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


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

DURATION_PATTERN = r"^(\d+)(ms|s|m|h|d|w)$"
_DURATION = re.compile(DURATION_PATTERN)
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """'90s', '10m', '1h', '30d' -> seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(
            f"'{text}' is not a duration: use a number and a unit, e.g. 30s, 10m, 1h, 30d"
        )
    return int(match.group(1)) * _DURATION_SECONDS[match.group(2)]
