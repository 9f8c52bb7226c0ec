"""`shipyard keys rotate <service> <key>|--jwt` and `shipyard keys list <service>`."""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.errors import ShipyardError
from shipyard.serving.keys import (
    DECLARED,
    GENERATED_BYTES,
    JWT,
    MIN_JWT_SECRET_BYTES,
    MIN_KEY_LENGTH,
    KeyRecord,
    KeyRotationError,
    KeyStore,
    Rotation,
    fingerprint,
    in_force,
    seal,
    when,
)

if TYPE_CHECKING:
    from shipyard.compiler import Plan, ServiceStep

EXIT_OK = 0


def add_keys_parser(
    add: Callable[..., argparse.ArgumentParser], command: Callable[[argparse.Namespace], int]
) -> None:
    """`keys` with its actions; `command(args)` runs them (with a plan)."""
    keys = add("keys", lambda a: EXIT_OK, "rotate a running service's API keys and JWT key")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    text = (
        "give an API key (or, with --jwt, the JWT key) a new value, valid at once on every "
        "running worker; the previous value stays valid for the grace period"
    )
    p = actions.add_parser("rotate", help=text, description=text)
    p.add_argument("service", help="a service under `services:`")
    p.add_argument("key", nargs="?", help="an API key under its `auth.api_keys`")
    p.add_argument("--jwt", action="store_true", help="rotate the JWT key instead of an API key")
    p.add_argument(
        "--grace", help="how long the previous value stays valid (default: auth.rotation_grace)"
    )
    p.add_argument(
        "--from-env",
        metavar="VAR",
        help="take the new value from this environment variable instead of generating one",
    )
    p.add_argument(
        "--public-key", metavar="FILE", type=Path, help="RS256: the issuer's new public key PEM"
    )
    text = "each key's values and state (active, retiring until, declared in spec), no values"
    p = actions.add_parser("list", help=text, description=text)
    p.add_argument("service", help="a service under `services:`")
    for action in actions.choices.values():
        action.set_defaults(func=command)


def keys_command(plan: Plan, args: argparse.Namespace) -> int:
    from shipyard.compiler import ServiceStep
    from shipyard.serving.commands import _prefect_for_secrets

    step = plan.named(ServiceStep, args.service)
    _prefect_for_secrets(plan)  # resolve the declared keys as `shipyard serve` does
    if args.keys_command == "list":
        print(list_keys(step))
        return EXIT_OK
    request = RotateRequest(
        key=args.key,
        jwt=args.jwt,
        grace=args.grace,
        from_env=args.from_env,
        public_key=args.public_key,
    )
    from shipyard.audit import AuditLog, current_actor
    from shipyard.settings import StateLayout

    audit = AuditLog(StateLayout(plan.runtime.state_dir).catalog)
    rotation, generated = rotate(step, request, current_actor(), audit.record)
    print(rotation_summary(step, request, rotation, generated))
    return EXIT_OK


@dataclass(frozen=True)
class RotateRequest:
    """What `shipyard keys rotate` was asked: which key, the grace, where the value comes from."""

    key: str | None = None
    jwt: bool = False
    grace: str | None = None
    from_env: str | None = None
    public_key: Path | None = None


def rotate(
    step: ServiceStep,
    request: RotateRequest,
    actor: str,
    record: Callable[..., object],
    store: KeyStore | None = None,
) -> tuple[Rotation, str | None]:
    """Rotate one key of the service and audit it (never the value). Returns the rotation and
    the generated value (None when it came from the environment or a file), to show once.

    Raises:
        KeyRotationError: An unknown key, a value too short or used before, a bad grace;
            nothing was changed.
        ShipyardError: A declared secret is not set here, or the store cannot be written.
    """
    name, declared, kind = _target(step, request)
    grace = _grace(step, request.grace)
    value, generated, material = _new_value(step, request, kind)
    owned = store is None
    store = store or KeyStore(step.control_database)
    try:
        taken: dict[str, str] = {}
        if kind == "api_key":
            taken = _other_values(step, name, store.records(step.service))
        rotation = store.rotate(
            step.service,
            name,
            declared=declared,
            new=value,
            grace_seconds=grace,
            actor=actor,
            material=material if kind != "api_key" else None,
            taken=taken,
        )
    finally:
        if owned:
            store.close()
    record(
        "keys.rotate",
        step.id,
        actor=actor,
        key=name,
        grace_seconds=grace,
        previous_valid_until=when(rotation.previous_until),
        source="generated" if generated else (request.from_env or str(request.public_key)),
    )
    return rotation, generated


def _target(step: ServiceStep, request: RotateRequest) -> tuple[str, str, str]:
    """(name, declared value, kind) of the key to rotate."""
    auth = step.auth
    declared_keys = sorted(auth.api_keys) if auth else []
    if request.jwt == bool(request.key):
        raise KeyRotationError(
            "name one API key, or give --jwt for the JWT key",
            hint=f"`shipyard keys rotate {step.service} <key>` with a key of "
            f"{_listing(declared_keys)}, or `shipyard keys rotate {step.service} --jwt`",
            resource=step.id,
        )
    if auth is None:
        raise KeyRotationError(
            f"service '{step.service}' declares no `auth`, so it has no keys to rotate",
            hint=f"add services.{step.service}.auth with api_keys or jwt to pipelines.yaml",
            resource=step.id,
        )
    if request.jwt:
        if auth.jwt is None:
            raise KeyRotationError(
                f"service '{step.service}' accepts no JWTs (its API keys: "
                f"{_listing(declared_keys)})",
                hint=f"add services.{step.service}.auth.jwt, or rotate an API key by its name",
                resource=step.id,
            )
        return JWT, _resolved(step, auth.jwt.key, "auth.jwt"), auth.jwt.algorithm
    assert request.key is not None
    if request.key not in auth.api_keys:
        raise KeyRotationError(
            f"service '{step.service}' has no API key '{request.key}'; its keys are "
            f"{_listing(declared_keys)}",
            hint=f"name one of them, or declare '{request.key}' under "
            f"services.{step.service}.auth.api_keys first",
            resource=step.id,
        )
    where = f"auth.api_keys.{request.key}"
    return request.key, _resolved(step, auth.api_keys[request.key].key, where), "api_key"


def _listing(names: list[str]) -> str:
    return ", ".join(names) if names else "none"


def _resolved(step: ServiceStep, value: str, where: str) -> str:
    from shipyard.secrets import resolve

    try:
        return resolve(value) or ""
    except ShipyardError as exc:
        raise ShipyardError(
            f"service '{step.service}': {where} cannot be resolved here: {exc.message}; a "
            "rotation needs the value the service was started with",
            hint=exc.hint,
            resource=step.id,
        ) from None


def _grace(step: ServiceStep, text: str | None) -> float:
    from shipyard.spec.base import parse_duration

    if text is None:
        return step.auth.rotation_grace_seconds if step.auth else 3600.0
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise KeyRotationError(
            f"--grace {text}: {exc}",
            hint="write a number and a unit, e.g. 30s, 15m, 1h or 1d",
            resource=step.id,
        ) from None


def _new_value(step: ServiceStep, request: RotateRequest, kind: str) -> tuple[str, str | None, str]:
    """(value, the generated value or None, what workers verify with)."""
    if kind == "RS256":
        return _public_key(step, request)
    if request.public_key is not None:
        raise KeyRotationError(
            "--public-key is for an RS256 JWT key only",
            hint="leave it out; the new value is generated, or taken from --from-env",
            resource=step.id,
        )
    generated: str | None = None
    if request.from_env:
        value = os.environ.get(request.from_env)
        if value is None:
            raise KeyRotationError(
                f"environment variable {request.from_env} is not set; nothing was changed",
                hint=f"export {request.from_env} with the new value, or leave --from-env out "
                "to generate one",
                resource=step.id,
            )
        value = value.strip()
    else:
        value = generated = secrets.token_urlsafe(GENERATED_BYTES)
    if kind == "api_key" and len(value) < MIN_KEY_LENGTH:
        raise KeyRotationError(
            f"the new API key from {request.from_env} has {len(value)} characters; an API key "
            f"needs at least {MIN_KEY_LENGTH}; nothing was changed",
            hint=f"use a random value of at least {MIN_KEY_LENGTH} characters, or leave "
            "--from-env out to generate one",
            resource=step.id,
        )
    if kind == "HS256" and len(value.encode()) < MIN_JWT_SECRET_BYTES:
        raise KeyRotationError(
            f"the new HS256 secret from {request.from_env} has {len(value.encode())} bytes; it "
            f"needs at least {MIN_JWT_SECRET_BYTES}; nothing was changed",
            hint=f"use a random value of at least {MIN_JWT_SECRET_BYTES} bytes, or leave "
            "--from-env out to generate one",
            resource=step.id,
        )
    material = value
    if kind == "HS256":
        assert step.auth is not None and step.auth.jwt is not None
        material = seal(value, _resolved(step, step.auth.jwt.key, "auth.jwt"), step.service)
    return value, generated, material


def _public_key(step: ServiceStep, request: RotateRequest) -> tuple[str, str | None, str]:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if request.public_key is None or request.from_env:
        raise KeyRotationError(
            f"service '{step.service}' verifies RS256 tokens: the new key is the issuer's "
            "public key, from a file",
            hint=f"`shipyard keys rotate {step.service} --jwt --public-key new-public.pem`",
            resource=step.id,
        )
    try:
        pem = request.public_key.read_text()
        key = load_pem_public_key(pem.encode())
    except (OSError, ValueError) as exc:
        raise KeyRotationError(
            f"--public-key {request.public_key} is not a readable PEM public key: {exc}",
            hint="give the issuer's RSA public key in PEM (-----BEGIN PUBLIC KEY-----)",
            resource=step.id,
        ) from None
    if not isinstance(key, RSAPublicKey):
        raise KeyRotationError(
            f"--public-key {request.public_key} is not an RSA public key",
            hint="RS256 tokens are verified with the issuer's RSA public key",
            resource=step.id,
        )
    return pem, None, pem


def _other_values(step: ServiceStep, name: str, records: list[KeyRecord]) -> dict[str, str]:
    """Digest -> name of every other API key's values in force: a new value may be none."""
    assert step.auth is not None
    taken: dict[str, str] = {}
    for other, api_key in step.auth.api_keys.items():
        if other == name:
            continue
        declared = _resolved(step, api_key.key, f"auth.api_keys.{other}")
        rows = in_force(records, other, declared)
        for digest in [r.digest for r in rows] if rows else [fingerprint(declared)]:
            taken[digest] = other
    return taken


def rotation_summary(
    step: ServiceStep, request: RotateRequest, rotation: Rotation, generated: str | None
) -> str:
    what = "the JWT key" if rotation.name == JWT else f"API key '{rotation.name}'"
    lines = [
        f"{what} of service '{step.service}' rotated: the new value is valid now on every "
        "running worker (within a second)",
        f"  previous value  valid until {when(rotation.previous_until)} "
        f"(grace {rotation.grace_seconds:g} s), then refused with 401",
    ]
    if generated is not None:
        lines.append(f"  new value       {generated}")
        lines.append("  (shown once: store it now; only its digest is kept)")
    elif request.from_env:
        lines.append(f"  new value       from ${request.from_env} (not shown)")
    else:
        lines.append(f"  new value       {request.public_key}")
    return "\n".join(lines)


def list_keys(step: ServiceStep, store: KeyStore | None = None) -> str:
    """Every key of the service with the state of each of its values, never a value."""
    auth = step.auth
    if auth is None:
        return f"service '{step.service}' declares no `auth`: anyone may call it"
    owned = store is None
    store = store or KeyStore(step.control_database)
    try:
        records = store.records(step.service)
        now = store.clock()
        shown = store.shown
    finally:
        if owned:
            store.close()
    names: list[tuple[str, str, str]] = [
        (name, ",".join(key.roles), key.key) for name, key in sorted(auth.api_keys.items())
    ]
    if auth.jwt is not None:
        names.append((JWT, auth.jwt.algorithm, auth.jwt.key))
    lines = [f"keys of service '{step.service}' (rotations in {shown}):"]
    for name, what, reference in names:
        lines.append(f"  {name}  ({what})")
        rows, note = _rows_in_force(step, records, name, reference)
        if rows is None:
            lines.append(f"    declared in spec  active{note}")
            continue
        for row in rows:
            origin = "declared in spec" if row.origin == DECLARED else "rotated"
            if row.retires_at is None:
                state = "active"
            elif row.retires_at > now:
                state = f"retiring until {when(row.retires_at)}"
            else:
                state = f"retired at {when(row.retires_at)}"
            since = "" if row.origin == DECLARED else f" {when(row.created_at)} by {row.actor}"
            lines.append(f"    {origin}{since}  {state}{note}")
    return "\n".join(lines)


def _rows_in_force(
    step: ServiceStep, records: list[KeyRecord], name: str, reference: str
) -> tuple[list[KeyRecord] | None, str]:
    """The rows in force for a key, and a note when the declared value is not known here (the
    rows of the newest rotation are shown then)."""
    try:
        return in_force(records, name, _resolved(step, reference, name)), ""
    except ShipyardError:
        rows = [r for r in records if r.name == name]
        if not rows:
            return None, ""
        newest = rows[-1].base
        note = " (declared value not set here: shown as last rotated)"
        return _by_base(rows, newest), note


def _by_base(rows: list[KeyRecord], base: str) -> list[KeyRecord]:
    chosen = [r for r in rows if r.base == base]
    return sorted(chosen, key=lambda r: (r.retires_at is not None, -(r.retires_at or 0.0)))
