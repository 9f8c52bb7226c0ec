"""Runtime errors a person can act on: what failed, for which resource, and what to do next."""

from __future__ import annotations


class ShipyardError(Exception):
    """An expected failure with a message for people; the CLI prints it without a traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, resource: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.resource = resource

    def render(self) -> str:
        prefix = f"{self.resource}: " if self.resource else ""
        text = f"error: {prefix}{self.message}"
        if self.hint:
            text += f"\n  = hint: {self.hint}"
        return text


class SpecError(ShipyardError):
    """The spec does not validate; carries the rendered diagnostics."""


class ServiceUnavailable(ShipyardError):
    """A server Shipyard needs (Prefect, Pushgateway, a DVC remote) cannot be reached."""


class DataValidationFailed(ShipyardError):
    """A dataset failed its expectations."""
