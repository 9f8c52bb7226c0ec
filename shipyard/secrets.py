"""Run-time resolution of `${secret:NAME}` references: Prefect Secret blocks, then the environment.

Secret values are never logged, printed or written into plans; only their names are.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from shipyard.errors import ShipyardError

log = logging.getLogger("shipyard.secrets")
SECRET_REFERENCE = re.compile(r"\$\{secret:([a-z0-9][a-z0-9-]*)\}")


def env_name(secret: str) -> str:
    """The environment variable that can supply a secret: slack-url -> SHIPYARD_SECRET_SLACK_URL."""
    return "SHIPYARD_SECRET_" + secret.upper().replace("-", "_")


def secret_value(name: str, use_prefect: bool = True) -> str:
    """The value of one secret, from its Prefect Secret block or its environment variable."""
    if use_prefect and os.environ.get("PREFECT_API_URL"):
        try:
            from prefect.blocks.system import Secret

            block: Any = Secret.load(name, _sync=True)  # type: ignore[call-arg]
            value = block.get()
            return str(value)
        except ValueError:
            log.debug("no Prefect Secret block named %s; trying the environment", name)
    value = os.environ.get(env_name(name))
    if value is None:
        raise ShipyardError(
            f"secret '{name}' is not set",
            hint=f"create the Prefect Secret block '{name}' (UI, or `shipyard apply` with "
            f"{env_name(name)} exported), or export {env_name(name)} where the flow runs",
        )
    return value


def resolve(value: str | None, use_prefect: bool = True) -> str | None:
    """Replace every `${secret:NAME}` in a string with the secret's value."""
    if value is None or "${secret:" not in value:
        return value
    return SECRET_REFERENCE.sub(lambda m: secret_value(m.group(1), use_prefect), value)


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (
        f":{parts.port}" if parts.port else ""
    )
    return urlunsplit(parts._replace(netloc=netloc))
