"""Sending one message to one apprise channel: secrets resolved at the last moment, retries,
and an error text that names the channel without revealing its secrets.

apprise reports a failed notification as a false result whose log entries say why; those go
into the delivery record.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Literal

import apprise

from shipyard.errors import ShipyardError
from shipyard.retry import retrying
from shipyard.secrets import SECRET_REFERENCE, redact_url, secret_value

# apprise imports `imghdr` (deprecated since Python 3.11) when it first sends: a warning in
# every run that alerts, which nobody here can act on
warnings.filterwarnings("ignore", message="'imghdr' is deprecated", category=DeprecationWarning)

ATTEMPTS = 3
"""Tries per channel and message; a monitor flow waits for them, so few and short."""
MAX_WAIT = 2.0
"""Longest back-off between two tries, seconds."""
APPRISE_URLS = "https://github.com/caronc/apprise/wiki"

Tone = Literal["info", "warning", "critical", "resolved"]
_NOTIFY_TYPES = {
    "info": apprise.NotifyType.INFO,
    "warning": apprise.NotifyType.WARNING,
    "critical": apprise.NotifyType.FAILURE,
    "resolved": apprise.NotifyType.SUCCESS,
}
_ASSET = apprise.AppriseAsset(app_id="Shipyard", app_desc="Shipyard alerts")
_PROBLEMS = ("WARNING", "ERROR", "CRITICAL")
"""Levels of apprise's log entries that say why a notification failed."""


@dataclass(frozen=True)
class Message:
    """What every channel of a route is sent: apprise's title, body and notification type."""

    title: str
    body: str
    tone: Tone


class _NotDelivered(Exception):
    """apprise said no; the message is what its log said about it."""


def ensure_readable(channel: str, route: str) -> None:
    """Raise a ShipyardError naming the route when apprise cannot read a channel's URL (one
    with a `${secret:...}` part is checked when it is resolved, at send time)."""
    if SECRET_REFERENCE.search(channel):
        return
    if apprise.Apprise.instantiate(channel) is None:
        raise ShipyardError(
            f"channel '{redact_url(channel)}' of alert route '{route}' is not a URL apprise "
            "can send to",
            hint=f"fix it under `alerts: {route}: channels:` in the spec; each service's URL "
            f"form is at {APPRISE_URLS} (e.g. mailto://user:pass@host?to=ops@example.com, "
            "json://host:port/path), and secret parts go in ${secret:NAME}",
            resource=f"alert.{route}",
        )


def send(channel: str, message: Message) -> str | None:
    """Send `message` to `channel` (as written in the plan, secrets unresolved), retrying
    with back-off. Never raises: returns None when delivered, else why not, naming the
    channel redacted and without any secret's value."""
    shown = redact_url(channel)
    try:
        url, secrets = _resolved(channel)
    except ShipyardError as exc:
        return f"{shown}: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")
    except Exception as exc:  # a Prefect server that fails to answer: this channel fails
        return f"{shown}: its secret cannot be read: {str(exc) or type(exc).__name__}"
    if apprise.Apprise.instantiate(url) is None:
        return f"{shown}: the URL this channel's secret gives is not one apprise can send to"

    tries = 0

    def attempt() -> None:
        nonlocal tries
        tries += 1
        # a new notifier each try: apprise throttles a notifier's second send by seconds (5 s
        # for mail), and the back-off between tries already spaces them
        notifier = apprise.Apprise(asset=_ASSET)
        notifier.add(url)
        result = notifier.notify(
            title=message.title, body=message.body, notify_type=_NOTIFY_TYPES[message.tone]
        )
        if not result:
            said = [e.message for e in result.logs() if e.level in _PROBLEMS]
            raise _NotDelivered("; ".join(dict.fromkeys(said)) or "apprise reported a failure")

    try:
        retrying(
            attempt,
            what=f"alert to {shown}",
            retry_on=(_NotDelivered, OSError),
            attempts=ATTEMPTS,
            max_wait=MAX_WAIT,
        )
    except Exception as exc:  # any failure of a channel is a failed delivery, never the caller's
        after = f"after {tries} tries" if tries > 1 else "at the first try"
        text = f"{shown}: {str(exc) or type(exc).__name__} ({after})"
        return _scrubbed(text, url, shown, secrets)
    return None


def _resolved(channel: str) -> tuple[str, list[str]]:
    """The channel's URL with its secrets' values, and those values (to scrub from errors)."""
    values: list[str] = []

    def value(match: re.Match[str]) -> str:
        secret = secret_value(match.group(1))
        values.append(secret)
        return secret

    return SECRET_REFERENCE.sub(value, channel), values


def _scrubbed(text: str, url: str, shown: str, secrets: list[str]) -> str:
    text = text.replace(url, shown)
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
