"""Who is calling a service and what they may do: API keys and JWTs mapped to roles."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

if TYPE_CHECKING:
    from shipyard.compiler.services import ServiceStep
    from shipyard.serving.keys import KeyRecord

log = logging.getLogger("shipyard.serving.auth")

ROLES = ("predict", "feedback", "admin")
ALGORITHMS = ("HS256", "RS256")
_CACHE_SIZE = 4096
_HOW_TO_SEND = "send 'Authorization: Bearer <key or token>' or 'X-API-Key: <key>'"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: its name (key name or token subject), roles and credential kind."""

    name: str
    roles: frozenset[str]
    kind: str  # "api_key" | "jwt" | "anonymous"


ANONYMOUS = Principal("anonymous", frozenset(ROLES), "anonymous")


class AuthError(Exception):
    """A request is not authenticated (status 401) or not allowed (status 403).

    Attributes:
        status: The HTTP status to answer with.
        reason: A short machine-readable code, e.g. "invalid_key" or "missing_role".
    """

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class ApiKey:
    """A static API key with a name (shown in logs and errors, never the key) and its roles."""

    name: str
    key: str
    roles: frozenset[str]


@dataclass(frozen=True)
class JwtSettings:
    """How to verify bearer JWTs.

    Attributes:
        algorithm: "HS256" or "RS256".
        key: The HS256 shared secret (at least 32 bytes), or the RS256 public key in PEM.
        audience: The required `aud` claim, if any.
        issuer: The required `iss` claim, if any.
        roles_claim: The claim holding the roles: a list of strings or a space-separated string.
        leeway_seconds: Clock skew tolerated on `exp` and `nbf`.
    """

    algorithm: str
    key: str
    audience: str | None = None
    issuer: str | None = None
    roles_claim: str = "roles"
    leeway_seconds: float = 0


class Authenticator:
    """Turns request headers into a Principal and checks its roles.

    With no API keys and no JWT settings, authentication is disabled and every request is the
    anonymous principal with all roles. Rotations (`apply_rotations`) replace a declared key's
    value, keeping the previous value valid until its grace period ends.
    """

    def __init__(
        self,
        api_keys: Sequence[ApiKey],
        jwt: JwtSettings | None,
        service: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Index the keys and prepare the JWT key once.

        Args:
            api_keys: The accepted API keys; their roles must be among ROLES.
            jwt: How to verify JWTs, or None to accept API keys only.
            service: The service name, used in error messages to point at its `auth` settings.
            clock: Seconds since the epoch, for the end of grace periods (tests inject one).

        Raises:
            ValueError: A key has an unknown role, is empty or is listed twice, or the JWT
                settings are unusable.
        """
        self._where = f"services.{service or '<name>'}.auth"
        self._service = service or ""
        self._clock = clock
        self._declared = list(api_keys)
        # digest -> (digest, principal, end of its grace period or None)
        self._keys: dict[bytes, tuple[bytes, Principal, float | None]] = {}
        for api_key in api_keys:
            self._add_key(api_key)
        self._jwt = jwt
        self._jwt_key: Any = _prepare_jwt_key(jwt, self._where) if jwt else None
        # the keys tokens may be signed with: (prepared key, end of its grace period or None)
        self._jwt_keys: list[tuple[Any, float | None]] = [(self._jwt_key, None)] if jwt else []
        self._cache: dict[str, tuple[Principal, float, float | None]] = {}
        self._cache_lock = threading.Lock()
        self._enabled = bool(self._keys) or jwt is not None

    def _add_key(self, api_key: ApiKey) -> None:
        unknown = sorted(api_key.roles - set(ROLES))
        if unknown:
            raise ValueError(
                f"API key '{api_key.name}' has unknown role(s) {', '.join(unknown)}; "
                f"use only {', '.join(ROLES)} in {self._where}"
            )
        if not api_key.key:
            raise ValueError(f"API key '{api_key.name}' is empty; set a key in {self._where}")
        digest = hashlib.sha256(api_key.key.encode()).digest()
        if digest in self._keys:
            other = self._keys[digest][1].name
            raise ValueError(
                f"API keys '{other}' and '{api_key.name}' have the same key; give each its own "
                f"key in {self._where}"
            )
        self._keys[digest] = (digest, Principal(api_key.name, api_key.roles, "api_key"), None)

    def apply_rotations(self, records: Sequence[KeyRecord]) -> None:
        """Accept the values rotations gave the declared keys (and the JWT key) instead of the
        declared values; a record of a key no longer declared, or of a declared value since
        changed, is ignored. The new index replaces the old one in one assignment, so a
        request sees either."""
        from shipyard.serving.keys import JWT, ROTATED, in_force

        keys: dict[bytes, tuple[bytes, Principal, float | None]] = {}
        for api_key in self._declared:
            principal = Principal(api_key.name, api_key.roles, "api_key")
            rows = in_force(records, api_key.name, api_key.key)
            values = (
                [(bytes.fromhex(r.digest), r.retires_at) for r in rows]
                if rows is not None
                else [(hashlib.sha256(api_key.key.encode()).digest(), None)]
            )
            for digest, until in values:
                if digest in keys:
                    log.error(
                        "rotated key '%s' of %s has the value of key '%s'; ignored",
                        api_key.name,
                        self._where,
                        keys[digest][1].name,
                    )
                    continue
                keys[digest] = (digest, principal, until)
        jwt_keys = self._jwt_keys
        if self._jwt is not None:
            declared = self._jwt
            rows = in_force(records, JWT, declared.key)
            if rows is None:
                jwt_keys = [(self._jwt_key, None)]
            else:
                jwt_keys = []
                for row in rows:
                    key = self._jwt_key if row.origin != ROTATED else self._rotated_jwt_key(row)
                    if key is not None:
                        jwt_keys.append((key, row.retires_at))
        self._keys, self._jwt_keys = keys, jwt_keys
        with self._cache_lock:
            self._cache.clear()

    def _rotated_jwt_key(self, row: KeyRecord) -> Any:
        """The prepared key of a rotated JWT key, or None (logged) when it is unusable."""
        from shipyard.serving.keys import unseal

        settings = self._jwt
        assert settings is not None
        try:
            material = row.material or ""
            if settings.algorithm == "HS256":
                material = unseal(material, settings.key, self._service)
            return _prepare_jwt_key(
                JwtSettings(algorithm=settings.algorithm, key=material), self._where
            )
        except ValueError as exc:
            log.error("rotated JWT key of %s is unusable: %s", self._where, exc)
            return None

    @property
    def enabled(self) -> bool:
        """Whether requests need credentials."""
        return self._enabled

    def authenticate(self, authorization: str | None, api_key_header: str | None) -> Principal:
        """The principal behind the `Authorization` and `X-API-Key` header values.

        `Authorization: Bearer <value>` wins over `X-API-Key`. A bearer value with two dots is
        verified as a JWT when JWTs are configured, otherwise looked up as an API key.

        Raises:
            AuthError: 401 when credentials are missing, unknown, invalid or expired.
        """
        if not self._enabled:
            return ANONYMOUS
        if authorization:
            scheme, _, value = authorization.strip().partition(" ")
            value = value.strip()
            if scheme.lower() == "bearer" and value:
                if self._jwt is not None and value.count(".") == 2:
                    return self._from_token(value)
                return self._from_key(value)
            if not api_key_header:
                raise AuthError(
                    401,
                    "missing_credentials",
                    f"the Authorization header is not 'Bearer <credential>' "
                    f"(scheme '{scheme}'); {_HOW_TO_SEND}",
                )
        if api_key_header:
            return self._from_key(api_key_header.strip())
        raise AuthError(
            401, "missing_credentials", f"no credentials in the request; {_HOW_TO_SEND}"
        )

    def authorize(self, principal: Principal, role: str) -> None:
        """Check that the principal has the role.

        Raises:
            AuthError: 403 naming the principal, the role and where to grant it.
            ValueError: The role is not one of ROLES (a programming error).
        """
        if role in principal.roles:
            return
        if role not in ROLES:
            raise ValueError(f"unknown role '{role}'; the roles are {', '.join(ROLES)}")
        has = ", ".join(sorted(principal.roles)) or "no roles"
        if principal.kind == "jwt":
            assert self._jwt is not None
            subject = f"token for '{principal.name}'"
            fix = f"add it to the token's '{self._jwt.roles_claim}' claim"
        else:
            subject = f"key '{principal.name}'"
            fix = f"give it the role in {self._where}"
        raise AuthError(
            403, "missing_role", f"{subject} lacks the role '{role}' (it has: {has}); {fix}"
        )

    def _from_key(self, key: str) -> Principal:
        digest = hashlib.sha256(key.encode()).digest()
        found = self._keys.get(digest)
        # The lookup compares digests, which reveals nothing usable about the key; the explicit
        # constant-time compare guards against a future change of the index.
        if found is None or not hmac.compare_digest(found[0], digest):
            raise AuthError(
                401,
                "invalid_key",
                f"the API key is not valid; check it, or ask for a key listed in {self._where}",
            )
        until = found[2]
        if until is not None and self._clock() >= until:
            raise AuthError(
                401,
                "invalid_key",  # the code clients know; the message says which case it is
                f"the API key was replaced by a rotation and its grace period ended at "
                f"{_iso(until)}; use the new key (`shipyard keys list {self._service}`)",
            )
        return found[1]

    def _from_token(self, token: str) -> Principal:
        settings = self._jwt
        assert settings is not None
        now = self._clock()
        cached = self._cache.get(token)
        if cached is not None:
            principal, expires, retires = cached
            if retires is not None and now >= retires:
                with self._cache_lock:
                    self._cache.pop(token, None)
                raise _signed_with_retired_key(retires)
            if time.time() - settings.leeway_seconds < expires:
                return principal
            with self._cache_lock:
                self._cache.pop(token, None)
            raise _expired(expires)
        try:
            claims, retires = self._verify(token, now)
        except pyjwt.ExpiredSignatureError:
            claims = pyjwt.decode(token, options={"verify_signature": False})
            raise _expired(float(claims["exp"])) from None
        except pyjwt.InvalidTokenError as exc:
            raise AuthError(
                401,
                "invalid_token",
                f"the bearer token is not valid: {exc}; get a new token from the issuer",
            ) from None
        principal = Principal(
            str(claims.get("sub") or "jwt"),
            _roles(claims.get(settings.roles_claim), settings),
            "jwt",
        )
        with self._cache_lock:
            if len(self._cache) >= _CACHE_SIZE:
                del self._cache[next(iter(self._cache))]
            self._cache[token] = (principal, float(claims["exp"]), retires)
        return principal

    def _verify(self, token: str, now: float) -> tuple[dict[str, Any], float | None]:
        """The token's claims, verified with the first key in force that signed it (the
        active one first, then those in their grace period), and when that key retires.

        Raises:
            pyjwt.InvalidTokenError: No key in force signed it, or a claim is wrong.
        """
        settings = self._jwt
        assert settings is not None
        keys = [(key, until) for key, until in self._jwt_keys if until is None or now < until]
        for index, (key, until) in enumerate(keys):
            try:
                claims: dict[str, Any] = pyjwt.decode(
                    token,
                    key,
                    algorithms=[settings.algorithm],
                    audience=settings.audience,
                    issuer=settings.issuer,
                    leeway=settings.leeway_seconds,
                    options={"require": ["exp"]},
                )
            except pyjwt.InvalidSignatureError:
                if index == len(keys) - 1:
                    raise
                continue
            return claims, until
        raise pyjwt.InvalidSignatureError("Signature verification failed")


def authenticator_for(step: ServiceStep, watch: bool = True) -> Authenticator:
    """The service's authenticator, from its plan: API keys and JWT settings with their
    `${secret:NAME}` values resolved from the environment (as the service's workers have them),
    with the rotations in the service's control database applied (`shipyard keys rotate`), and
    with `watch`, applied again as they change, twice a second.

    Raises:
        ValueError: The settings are unusable (an empty key, a JWT key of the wrong kind).
        ShipyardError: The control database, which holds the rotated keys, cannot be read.
    """
    from shipyard.secrets import resolve
    from shipyard.serving.keys import KeyWatcher

    auth = step.auth
    if auth is None:
        return Authenticator([], None, service=step.service)
    keys = [
        ApiKey(
            name=name,
            key=resolve(api_key.key, use_prefect=False) or "",
            roles=frozenset(api_key.roles),
        )
        for name, api_key in auth.api_keys.items()
    ]
    settings = None
    if auth.jwt is not None:
        settings = JwtSettings(
            algorithm=auth.jwt.algorithm,
            key=resolve(auth.jwt.key, use_prefect=False) or "",
            audience=auth.jwt.audience,
            issuer=auth.jwt.issuer,
            roles_claim=auth.jwt.roles_claim,
            leeway_seconds=auth.jwt.leeway_seconds,
        )
    authenticator = Authenticator(keys, settings, service=step.service)
    watcher = KeyWatcher(step.control_database, step.service)
    if watch:
        watcher.start(authenticator)
    else:
        try:
            watcher.refresh(authenticator)
        finally:
            watcher.store.close()
    return authenticator


def _prepare_jwt_key(settings: JwtSettings, where: str) -> Any:
    if settings.algorithm not in ALGORITHMS:
        raise ValueError(
            f"JWT algorithm '{settings.algorithm}' is not supported; use one of "
            f"{', '.join(ALGORITHMS)} in {where}"
        )
    algorithm = pyjwt.PyJWS().get_algorithm_by_name(settings.algorithm)
    try:
        key = algorithm.prepare_key(settings.key)
    except (pyjwt.InvalidKeyError, ValueError, TypeError) as exc:
        expected = "a shared secret" if settings.algorithm == "HS256" else "an RSA public key PEM"
        raise ValueError(
            f"the JWT key is not usable for {settings.algorithm} ({exc}); give {expected} "
            f"in {where}"
        ) from None
    if isinstance(key, RSAPrivateKey):
        raise ValueError(
            f"the JWT key is an RSA private key; give the issuer's public key in {where}"
        )
    too_short = algorithm.check_key_length(key)
    if too_short:
        raise ValueError(f"the JWT secret is too short: {too_short}; set a longer one in {where}")
    return key


def _roles(claim: Any, settings: JwtSettings) -> frozenset[str]:
    names: Iterable[Any]
    if claim is None:
        names = ()
    elif isinstance(claim, str):
        names = claim.split()
    elif isinstance(claim, list):
        names = claim
    else:
        raise AuthError(
            401,
            "invalid_token",
            f"the token's '{settings.roles_claim}' claim is a {type(claim).__name__}; the issuer "
            "must send a list of strings or a space-separated string",
        )
    # Roles this service does not know are ignored: tokens are often shared across services.
    return frozenset(name for name in names if name in ROLES)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def _expired(expires: float) -> AuthError:
    return AuthError(
        401,
        "token_expired",
        f"the bearer token expired at {_iso(expires)}; get a new token from the issuer",
    )


def _signed_with_retired_key(until: float) -> AuthError:
    return AuthError(
        401,
        "invalid_token",
        f"the bearer token is signed with a key whose grace period ended at {_iso(until)}; "
        "get a new token from the issuer",
    )
