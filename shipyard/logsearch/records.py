"""What a log search asks for (`Query`) and what it finds (`Entry`), with both output formats."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Source = Literal["flow", "shipyard", "service", "prediction", "feedback"]
SOURCES: tuple[Source, ...] = ("flow", "shipyard", "service", "prediction", "feedback")
LEVELS = ("debug", "info", "warning", "error", "critical")
_ALIASES = {"warn": "warning", "fatal": "critical", "exception": "error", "trace": "debug"}
_FIELDS_SHOWN_FIRST = ("time", "source", "level", "logger", "message")


def level_rank(level: str) -> int:
    """debug 0 .. critical 4; an unknown level counts as info (it is shown unless filtered)."""
    name = _ALIASES.get(level.lower(), level.lower())
    return LEVELS.index(name) if name in LEVELS else 1


def prefect_level(number: int) -> str:
    """The name of a Python/Prefect numeric level (10 debug ... 50 critical)."""
    index = max(0, min(len(LEVELS) - 1, number // 10 - 1))
    return LEVELS[index]


def parse_time(text: Any) -> float | None:
    """Epoch seconds of a log line's `time` (ISO 8601, `Z` or an offset), or None."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # Shipyard and BentoML lines are UTC
    return parsed.timestamp()


def format_time(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Query:
    """What to find: one request, one flow run or one service, narrowed by time, level, text.

    Attributes:
        request_id: A request's id (`X-Request-ID`); a batch's rows are `<id>/<row>`.
        flow_run: A Prefect flow run id.
        service: A service name (under `services:`).
        since: Epoch seconds; older lines are left out.
        level: The lowest level shown.
        grep: Text every line shown contains (case-insensitive), after redaction.
        limit: The most recent lines shown, at most.
    """

    request_id: str | None = None
    flow_run: str | None = None
    service: str | None = None
    since: float | None = None
    level: str = "debug"
    grep: str | None = None
    limit: int = 1000

    def wants_time(self, at: float) -> bool:
        return self.since is None or at >= self.since

    def wants_request(self, request_id: Any) -> bool:
        """Whether a line of `request_id` belongs to the request asked for (or no request was)."""
        if self.request_id is None:
            return True
        if not isinstance(request_id, str):
            return False
        return request_id in self.request_ids or request_id.startswith(self.request_id + "/")

    @property
    def request_ids(self) -> tuple[str, ...]:
        """The ids a line of the request asked for is under: its own, and for one row of a
        batch (`<id>/<row>`) the batch's (the service logs a batch under one id)."""
        if self.request_id is None:
            return ()
        parent, slash, row = self.request_id.rpartition("/")
        return (
            (self.request_id, parent) if slash and parent and row.isdigit() else (self.request_id,)
        )


@dataclass
class Entry:
    """One line found: when, from which source, its level, logger and message, and the rest
    of its fields (request id, correlation id, status, inputs, ...)."""

    time: float
    source: Source
    level: str
    logger: str
    message: str
    fields: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "time": format_time(self.time),
            "source": self.source,
            "level": self.level,
            "logger": self.logger,
            "message": self.message,
            **{k: v for k, v in self.fields.items() if k not in _FIELDS_SHOWN_FIRST},
        }

    def text(self) -> str:
        """`<time> <source> <level> <logger>: <message> key=value ...`, one line."""
        extra = " ".join(
            f"{key}={_scalar(value)}"
            for key, value in self.fields.items()
            if key not in _FIELDS_SHOWN_FIRST and key != "error"
        )
        line = (
            f"{format_time(self.time)} {self.source:<10} {self.level:<8} "
            f"{self.logger}: {self.message}" + (f"  {extra}" if extra else "")
        )
        error = self.fields.get("error")
        if error:
            line += "\n" + "\n".join("    " + row for row in str(error).splitlines())
        return line

    def haystack(self) -> str:
        """The text --grep looks in: the message and every field."""
        return json.dumps(self.to_json(), default=str, ensure_ascii=False).lower()


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value if value and " " not in value else json.dumps(value)
    return json.dumps(value, default=str, separators=(",", ":"))
