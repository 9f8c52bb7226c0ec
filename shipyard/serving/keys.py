"""Rotated API keys and JWT keys of a service, kept beside its control state.

`shipyard keys rotate` writes a row per key value in `shipyard_service_keys` (the control
database of the service: SQLite in the state folder or the scale-out PostgreSQL). Every worker's
Authenticator reads these rows twice a second, as it polls its control state, so a new key is
valid on every worker of every replica within a second, with no restart, and the value it
replaces stays valid until its grace period ends.

Only SHA-256 digests of API keys are stored. A worker needs an HS256 secret itself to verify a
token, so a rotated one is stored sealed (AES-GCM) under a key derived from the service's
declared secret, which the workers have and the database does not; an RS256 public key is
stored as it is.

The keys declared in pipelines.yaml stay the base: each row records the fingerprint of the
declared value it replaced, and a row whose fingerprint no longer matches the declared value
(the spec's secret was changed and the service restarted) is ignored, so the declared key
applies again.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shipyard.errors import ShipyardError
from shipyard.serving.control import ControlStore

if TYPE_CHECKING:
    from shipyard.serving.auth import Authenticator

log = logging.getLogger("shipyard.serving.keys")

MIN_KEY_LENGTH = 24
"""Characters an API key needs at least (a generated one has 43)."""
MIN_JWT_SECRET_BYTES = 32
"""Bytes an HS256 secret needs at least (what PyJWT checks, RFC 7518 section 3.2)."""
GENERATED_BYTES = 32
"""Random bytes in a generated key or secret (secrets.token_urlsafe: 43 characters)."""
JWT = "jwt"
"""The name the JWT key's rows are kept under."""
DECLARED = "declared"
ROTATED = "rotated"
POLL_INTERVAL = 0.5
_SEAL_SALT = b"shipyard-jwt-rotation-v1"
_SEAL_PREFIX = "v1:"


def fingerprint(value: str) -> str:
    """The SHA-256 hex digest of a key or secret: what the store keeps instead of the value."""
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class KeyRecord:
    """One value of a key: the declared one being retired, or one a rotation gave.

    Attributes:
        service: The service.
        name: The API key's name, or "jwt".
        origin: "declared" (the value in pipelines.yaml) or "rotated".
        digest: The value's SHA-256 digest.
        material: JWT only: the sealed HS256 secret, or the RS256 public key PEM.
        base: The fingerprint of the declared value the rotation replaced.
        created_at: When it was written (seconds since the epoch).
        retires_at: When it stops being accepted; None while it is the active value.
        actor: Who rotated.
    """

    service: str
    name: str
    origin: str
    digest: str
    material: str | None
    base: str
    created_at: float
    retires_at: float | None
    actor: str


@dataclass(frozen=True)
class Rotation:
    """What a rotation did: the new value's digest and until when the previous one is valid."""

    service: str
    name: str
    digest: str
    previous_until: float
    grace_seconds: float


class KeyRotationError(ShipyardError):
    """A rotation was refused; nothing was changed."""


def in_force(records: Sequence[KeyRecord], name: str, declared: str) -> list[KeyRecord] | None:
    """The values of key `name` a rotation put in force over the declared value `declared`,
    active first, then by how long they stay valid; None when no rotation applies (the declared
    value alone, as pipelines.yaml says). Retired values are kept in the list: the caller
    refuses them, with a message saying so."""
    base = fingerprint(declared)
    rows = [r for r in records if r.name == name and r.base == base]
    if not rows:
        return None
    return sorted(rows, key=lambda r: (r.retires_at is not None, -(r.retires_at or 0.0)))


def _seal_key(declared_secret: str, service: str) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    info = f"service.{service}".encode()
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SEAL_SALT, info=info)
    return hkdf.derive(declared_secret.encode())


def seal(secret: str, declared_secret: str, service: str) -> str:
    """An HS256 secret sealed with AES-GCM under a key derived from the declared secret."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    sealed = AESGCM(_seal_key(declared_secret, service)).encrypt(
        nonce, secret.encode(), service.encode()
    )
    return _SEAL_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(material: str, declared_secret: str, service: str) -> str:
    """The HS256 secret `seal` sealed.

    Raises:
        ValueError: It was sealed under another declared secret, or is damaged.
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not material.startswith(_SEAL_PREFIX):
        raise ValueError("the sealed JWT secret has an unknown format")
    raw = base64.urlsafe_b64decode(material.removeprefix(_SEAL_PREFIX))
    try:
        plain = AESGCM(_seal_key(declared_secret, service)).decrypt(
            raw[:12], raw[12:], service.encode()
        )
    except InvalidTag:
        raise ValueError("the sealed JWT secret does not open with the declared secret") from None
    return plain.decode()


def when(seconds: float) -> str:
    """Seconds since the epoch as UTC ISO 8601."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


class KeyStore(ControlStore):
    """The rotated keys of a project's services, in their control database."""

    def __init__(self, url: str, clock: Callable[[], float] = time.time) -> None:
        super().__init__(url)
        self.clock = clock

    def records(self, service: str) -> list[KeyRecord]:
        """Every stored value of the service's keys, oldest first."""
        rows = self._query(
            "SELECT service, name, origin, digest, material, base, created_at, retires_at, "
            "actor FROM shipyard_service_keys WHERE service = {p} ORDER BY created_at, name",
            [service],
        )
        return [
            KeyRecord(
                service=r[0],
                name=r[1],
                origin=r[2],
                digest=r[3],
                material=r[4],
                base=r[5],
                created_at=float(r[6]),
                retires_at=None if r[7] is None else float(r[7]),
                actor=r[8],
            )
            for r in rows
        ]

    def rotate(
        self,
        service: str,
        name: str,
        *,
        declared: str,
        new: str,
        grace_seconds: float,
        actor: str,
        material: str | None = None,
        taken: dict[str, str] | None = None,
    ) -> Rotation:
        """Make `new` the value of key `name` at once, and keep the value in force now valid
        for `grace_seconds` more, atomically.

        Args:
            service: The service.
            name: The API key's name, or JWT.
            declared: The value pipelines.yaml declares for it (as the service resolves it).
            new: The new value; only its digest is stored.
            grace_seconds: How long the value it replaces stays valid.
            actor: Who rotates.
            material: JWT only: what workers verify with (sealed secret or public key).
            taken: Digest -> name of the other keys' values in force: `new` may be none.

        Raises:
            KeyRotationError: `new` is a value this key or another had; nothing was written.
        """
        now = self.clock()
        digest, base = fingerprint(new), fingerprint(declared)
        until = now + grace_seconds
        try:
            with self._backend.transaction() as cursor:
                p = self._backend.placeholder
                if p == "%s":  # PostgreSQL: one rotation of a service at a time
                    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [service])
                cursor.execute(
                    f"SELECT digest, retires_at FROM shipyard_service_keys WHERE service = {p} "
                    f"AND name = {p} AND base = {p}",
                    [service, name, base],
                )
                rows = cursor.fetchall()
                used = {str(row[0]) for row in rows} | {base}
                if digest in used:
                    raise KeyRotationError(
                        f"the new value of key '{name}' of service '{service}' is one it had "
                        "before; nothing was changed",
                        hint="give a value never used before, or leave --from-env out to "
                        "generate one",
                        resource=f"service.{service}",
                    )
                if taken and digest in taken:
                    raise KeyRotationError(
                        f"the new value of key '{name}' of service '{service}' is the value "
                        f"of key '{taken[digest]}'; nothing was changed",
                        hint="every key needs a value of its own",
                        resource=f"service.{service}",
                    )
                if not rows:  # the first rotation: the declared value retires
                    declared_row = (DECLARED, base, None, until)
                    self._insert(cursor, service, name, declared_row, base, now, actor)
                else:  # the active value retires; values already retiring keep their end
                    cursor.execute(
                        f"UPDATE shipyard_service_keys SET retires_at = {p} WHERE service = {p} "
                        f"AND name = {p} AND base = {p} AND retires_at IS NULL",
                        [until, service, name, base],
                    )
                new_row = (ROTATED, digest, material, None)
                self._insert(cursor, service, name, new_row, base, now, actor)
        except self._backend.errors as exc:
            self._unavailable(exc)
        return Rotation(service, name, digest, until, grace_seconds)

    def _insert(
        self,
        cursor: Any,
        service: str,
        name: str,
        row: tuple[str, str, str | None, float | None],
        base: str,
        now: float,
        actor: str,
    ) -> None:
        """Insert one value: row is (origin, digest, material, retires_at)."""
        origin, digest, material, retires_at = row
        p = self._backend.placeholder
        cursor.execute(
            "INSERT INTO shipyard_service_keys (service, name, origin, digest, material, base, "
            f"created_at, retires_at, actor) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})",
            [service, name, origin, digest, material, base, now, retires_at, actor],
        )

    def _unavailable(self, exc: BaseException) -> None:
        from shipyard.errors import ServiceUnavailable

        raise ServiceUnavailable(
            f"the control store {self.shown} cannot be written: {exc}; no key was changed",
            hint="check `serving.control_database` in the profile and that it is reachable",
        ) from exc


class KeyWatcher:
    """Applies a service's stored rotations to an Authenticator now and twice a second after.

    The thread holds the authenticator weakly: when the engine replaces it (a hot reload), the
    old one is collected and its watcher ends.
    """

    def __init__(self, url: str, service: str, interval: float = POLL_INTERVAL) -> None:
        self.store = KeyStore(url)
        self.service = service
        self.interval = interval
        self._seen: tuple[KeyRecord, ...] | None = None

    def refresh(self, authenticator: Authenticator) -> None:
        """Read the rows and apply them when they changed.

        Raises:
            ServiceUnavailable: The control store cannot be read.
        """
        records = tuple(self.store.records(self.service))
        if records != self._seen:
            authenticator.apply_rotations(records)
            self._seen = records

    def start(self, authenticator: Authenticator) -> None:
        """Apply the rotations now (raising when the store cannot be read), then keep them
        applied from a daemon thread."""
        try:
            self.refresh(authenticator)
        finally:
            self.store.close()  # this thread's connection; the watcher opens its own
        target = weakref.ref(authenticator)
        threading.Thread(
            target=self._run, args=(target,), name=f"shipyard-keys-{self.service}", daemon=True
        ).start()

    def _run(self, target: weakref.ref[Authenticator]) -> None:
        stop = threading.Event()
        try:
            while not stop.wait(self.interval):
                authenticator = target()
                if authenticator is None:
                    return
                try:
                    self.refresh(authenticator)
                except ShipyardError as exc:  # keep the keys in force; retired ones still end
                    log.error("rotated keys of %s unreadable: %s", self.service, exc)
                del authenticator
        finally:
            self.store.close()
