"""Who may read a service's logs: with `auth:`, callers whose key or token has the admin role.

The key is checked as the service checks it (`shipyard/serving/auth.py`), against the keys
the plan gives the service, their `${secret:NAME}` values resolved as the service resolves them.
"""

from __future__ import annotations

from shipyard.compiler import ServiceStep
from shipyard.errors import ShipyardError
from shipyard.serving.auth import Authenticator, AuthError, authenticator_for

ROLE = "admin"
API_KEY_ENV = "SHIPYARD_API_KEY"


class AccessRefused(ShipyardError):
    """The caller may not read a service's logs."""


def authenticator_of(step: ServiceStep) -> Authenticator:
    """The service's authenticator, built from the plan as the running service builds it.

    Raises:
        ShipyardError: A key's secret is not set here, or the auth settings are unusable.
    """
    try:
        return authenticator_for(step)
    except ValueError as exc:
        raise ShipyardError(str(exc), resource=f"service.{step.service}") from None


def check_admin(step: ServiceStep, credential: str | None) -> None:
    """Pass when the service has no auth, or `credential` (an API key or a JWT) has the admin
    role; raise AccessRefused naming the role and how to get it otherwise."""
    if step.auth is None or not (step.auth.api_keys or step.auth.jwt):
        return
    admins = sorted(n for n, k in step.auth.api_keys.items() if ROLE in k.roles)
    how = (
        f"use a key with it (here: {', '.join(admins)}), "
        if admins
        else f"give a key the role under services.{step.service}.auth.api_keys, "
    ) + f"with --api-key or ${API_KEY_ENV}"
    if not credential:
        raise AccessRefused(
            f"the logs of service '{step.service}' need the role '{ROLE}', and no API key "
            "was given",
            hint=how,
            resource=f"service.{step.service}",
        )
    try:
        authenticator = authenticator_of(step)
    except ShipyardError as exc:
        raise AccessRefused(
            f"the API key cannot be checked against service '{step.service}': {exc.message}",
            hint=exc.hint,
            resource=f"service.{step.service}",
        ) from None
    try:
        principal = authenticator.authenticate(f"Bearer {credential.strip()}", None)
        authenticator.authorize(principal, ROLE)
    except AuthError as exc:
        raise AccessRefused(
            f"the logs of service '{step.service}' need the role '{ROLE}': {exc}",
            hint=how,
            resource=f"service.{step.service}",
        ) from None
