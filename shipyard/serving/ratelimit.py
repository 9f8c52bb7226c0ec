"""Request rate limits per caller and per service, counted in memory or in a shared Redis."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import limits
from limits.errors import ConfigurationError, StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from shipyard.secrets import redact_url

log = logging.getLogger("shipyard.serving")

_WARN_EVERY = 30.0  # seconds between two warnings about an unreachable storage
_SKIP_FOR = 1.0  # seconds the storage is not asked again after it failed
_REDIS_TIMEOUT = 0.5  # seconds; a slow Redis must not stall the request path
_SWEEP_EVERY = 1.0  # seconds between two sweeps of expired in-memory counters


class QuietMemoryStorage(MemoryStorage):
    """limits' in-memory storage, sweeping expired counters at most once a second.

    The stock storage starts a new 10 ms `threading.Timer` on a hit whenever the previous one
    has ended, so under steady load it creates about a hundred threads a second (some 2% of a
    worker's CPU). Its counters already expire when read; the sweep only frees idle keys.
    """

    _next_sweep = 0.0

    def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + _SWEEP_EVERY
            super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]


class RateLimitStorageUnavailable(Exception):
    """The rate limit storage (Redis) cannot be reached when the service starts."""


class RateLimiter:
    """Fixed-window rate limits: one per caller (principal name) and one for the whole service.

    Fixed windows cost one atomic increment per limit and request and O(1) memory per caller,
    where a moving window keeps one entry per request in the window (1000 for "1000/minute").
    The price is that up to twice the limit can pass around a window boundary, which is fine
    for protecting a service from overload.

    Counters are shared by all workers when the storage is Redis; with "memory://" each worker
    process counts on its own. If Redis fails while serving, requests are allowed (fail open)
    and a warning is logged at most every 30 seconds.
    """

    def __init__(
        self,
        per_key: str | None,
        global_limit: str | None,
        storage_uri: str = "memory://",
        namespace: str = "shipyard",
        key_limits: Mapping[str, str] | None = None,
    ) -> None:
        """Parse the limits and connect to the storage.

        Args:
            per_key: The limit per caller, e.g. "200/second" or "10 per second"; None for none.
            global_limit: The limit for all callers together; None for none.
            storage_uri: "memory://" or "redis://host:port/db".
            namespace: Prefix of every counter, so services sharing a Redis do not collide.
            key_limits: Caller name -> its own limit, replacing `per_key` for that caller.

        Raises:
            ValueError: A limit or the storage URI cannot be parsed.
            RateLimitStorageUnavailable: Redis does not answer.
        """
        self._per_key = _parse(per_key, "per-key")
        self._global = _parse(global_limit, "global")
        self._key_limits = {
            name: item
            for name, text in (key_limits or {}).items()
            if (item := _parse(text, f"key '{name}'")) is not None
        }
        self._enabled = (
            self._per_key is not None or self._global is not None or bool(self._key_limits)
        )
        self._namespace = namespace
        self._global_ids = (namespace, "global")
        self._uri = redact_url(storage_uri)
        self._skip_until = 0.0
        self._warned_at = -_WARN_EVERY
        self._storage: Storage | None = None
        self._limiter: FixedWindowRateLimiter | None = None
        if not self._enabled:
            return
        self._storage = _connect(storage_uri, self._uri)
        self._limiter = FixedWindowRateLimiter(self._storage)

    @property
    def enabled(self) -> bool:
        """Whether any limit is set."""
        return self._enabled

    def check(self, key: str) -> float | None:
        """Count one request by `key` (the principal name) against the limits.

        Returns:
            None if the request is allowed, else the seconds until a retry can succeed (> 0;
            round up for a Retry-After header).
        """
        limiter = self._limiter
        if limiter is None:
            return None
        if self._skip_until and time.monotonic() < self._skip_until:
            return None
        try:
            # Per caller first: a caller over its own limit does not use up the global budget.
            own = self._key_limits.get(key, self._per_key)
            if own is not None:
                ids = (self._namespace, "key", key)
                if not limiter.hit(own, *ids):
                    return _retry_after(limiter, own, ids)
            if self._global is not None and not limiter.hit(self._global, *self._global_ids):
                return _retry_after(limiter, self._global, self._global_ids)
        except StorageError as exc:
            self._storage_failed(exc.storage_error)
            return None
        self._skip_until = 0.0
        return None

    def close(self) -> None:
        """Release the storage connection (or the memory storage's timer)."""
        storage, self._storage, self._limiter = self._storage, None, None
        if isinstance(storage, RedisStorage):
            storage.storage.close()
        elif isinstance(storage, MemoryStorage):
            storage.timer.cancel()

    def _storage_failed(self, error: Exception) -> None:
        now = time.monotonic()
        self._skip_until = now + _SKIP_FOR
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning(
                "rate limit storage %s failed (%s); allowing requests without limits until it "
                "answers again; check that Redis is running",
                self._uri,
                error,
            )


def check_storage(uri: str) -> None:
    """Connect to a rate limit storage once, as a worker does when it starts.

    Raises:
        ValueError: The URI is not a storage this service can use.
        RateLimitStorageUnavailable: Redis does not answer.
    """
    storage = _connect(uri, redact_url(uri))
    if isinstance(storage, RedisStorage):
        storage.storage.close()


def _parse(text: str | None, which: str) -> limits.RateLimitItem | None:
    if text is None or not text.strip():
        return None
    try:
        return limits.parse(text)
    except ValueError:
        raise ValueError(
            f"the {which} rate limit '{text}' cannot be parsed; write it like '200/second', "
            "'1000/minute' or '10 per second'"
        ) from None


def _connect(uri: str, shown: str) -> Storage:
    redis = uri.startswith(("redis://", "rediss://", "redis+unix://"))
    options: dict[str, float | str | bool] = {}
    if redis:
        options = {"socket_timeout": _REDIS_TIMEOUT, "socket_connect_timeout": _REDIS_TIMEOUT}
    try:
        if uri == "memory://":
            return QuietMemoryStorage(wrap_exceptions=True)
        storage = storage_from_string(uri, wrap_exceptions=True, **options)
    except ConfigurationError as exc:
        raise ValueError(
            f"rate limit storage '{shown}' is not usable ({exc}); use 'memory://' or "
            "'redis://host:port/db' in profiles.<profile>.serving.rate_limit_storage"
        ) from None
    if not isinstance(storage, Storage):
        raise ValueError(
            f"rate limit storage '{shown}' is asynchronous; use 'memory://' or "
            "'redis://host:port/db' in profiles.<profile>.serving.rate_limit_storage"
        )
    if redis and not storage.check():
        raise RateLimitStorageUnavailable(
            f"rate limit storage {shown} does not answer; start Redis there, or fix "
            "profiles.<profile>.serving.rate_limit_storage"
        )
    return storage


def _retry_after(
    limiter: FixedWindowRateLimiter, item: limits.RateLimitItem, ids: tuple[str, ...]
) -> float:
    reset_time, _ = limiter.get_window_stats(item, *ids)
    # Redis reports whole seconds left, which can round to 0 just before the window ends.
    return max(reset_time - time.time(), 0.01)
