"""`alerts:` -> AlertStep: one route's channels, severity floor and cooldown, for every sender."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from shipyard.compiler.plan import StepBase
from shipyard.compiler.services import control_database
from shipyard.spec import parse_duration
from shipyard.spec.alerts import Severity

if TYPE_CHECKING:
    from shipyard.compiler.compile import CompileContext


class AlertStep(StepBase):
    """An alert route. Run by whoever raises an alert (monitors, rollouts, A/B tests, the
    Alertmanager receiver); it has no flow of its own."""

    kind: Literal["alert"] = "alert"
    channels: tuple[str, ...] = Field(
        description="apprise URLs; secret parts stay ${secret:NAME} until an alert is sent."
    )
    min_severity: Severity
    cooldown_seconds: float
    send_resolved: bool
    state_database: str = Field(
        description="Where alert states and the delivery record live (the control database)."
    )

    noun: ClassVar[str] = "alert route"


def compile_alerts(ctx: CompileContext) -> Iterator[AlertStep]:
    for name, route in ctx.spec.alerts.items():
        yield AlertStep(
            id=f"alert.{name}",
            name=name,
            description=route.description or f"alerts to {len(route.channels)} channel(s)",
            tasks=(),
            channels=tuple(route.channels),
            min_severity=route.min_severity,
            cooldown_seconds=parse_duration(route.cooldown),
            send_resolved=route.send_resolved,
            state_database=control_database(ctx),
        )
