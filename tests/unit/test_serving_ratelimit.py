"""Rate limits per caller and per service, in memory and in the shared Redis."""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest
import redis

from shipyard.serving.ratelimit import RateLimiter, RateLimitStorageUnavailable

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def memory_limiter() -> Iterator[RateLimiter]:
    limiter = RateLimiter("5/second", None)
    yield limiter
    limiter.close()


def test_allows_the_limit_then_says_when_to_retry(memory_limiter: RateLimiter) -> None:
    assert [memory_limiter.check("alice") for _ in range(5)] == [None] * 5
    retry = memory_limiter.check("alice")
    assert retry is not None
    assert 0 < retry <= 1
    assert math.ceil(retry) == 1


def test_each_key_has_its_own_budget(memory_limiter: RateLimiter) -> None:
    for _ in range(5):
        memory_limiter.check("alice")
    assert memory_limiter.check("alice") is not None
    assert memory_limiter.check("bob") is None


def test_global_limit_counts_all_keys_together() -> None:
    limiter = RateLimiter(None, "10 per minute")
    try:
        results = [limiter.check(f"caller-{n}") for n in range(11)]
        assert results[:10] == [None] * 10
        retry = results[10]
        assert retry is not None
        assert 0 < retry <= 60
    finally:
        limiter.close()


def test_caller_over_its_own_limit_does_not_use_up_the_global_budget() -> None:
    limiter = RateLimiter("3/minute", "6/minute")
    try:
        outcomes = [limiter.check("greedy") for _ in range(10)]
        assert outcomes.count(None) == 3
        assert [limiter.check("polite") for _ in range(3)] == [None] * 3
    finally:
        limiter.close()


def test_without_limits_everything_is_allowed() -> None:
    limiter = RateLimiter(None, None, storage_uri="redis://127.0.0.1:1/0")
    assert not limiter.enabled
    assert all(limiter.check("anyone") is None for _ in range(1000))
    limiter.close()


@pytest.mark.parametrize("text", ["fast", "5/fortnight", "per second"])
def test_unparsable_limit_names_it_and_shows_the_format(text: str) -> None:
    with pytest.raises(ValueError, match=f"per-key rate limit '{text}'.*'200/second'"):
        RateLimiter(text, None)


def test_unknown_storage_scheme_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"'bogus://x'.*rate_limit_storage"):
        RateLimiter("1/second", None, storage_uri="bogus://x")


def test_unreachable_redis_fails_at_construction_naming_it() -> None:
    with pytest.raises(RateLimitStorageUnavailable, match=r"redis://127\.0\.0\.1:1/0.*start Redis"):
        RateLimiter("1/second", None, storage_uri="redis://127.0.0.1:1/0")


@pytest.fixture
def namespace() -> Iterator[str]:
    """A namespace of our own on the shared Redis; its keys are deleted afterwards."""
    name = f"shipyard-test-{uuid.uuid4().hex}"
    yield name
    client = redis.Redis.from_url(REDIS)
    try:
        keys = list(client.scan_iter(match=f"*{name}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def test_redis_limits_are_shared_by_limiters_in_one_namespace(namespace: str) -> None:
    first = RateLimiter("3/minute", "100/minute", storage_uri=REDIS, namespace=namespace)
    second = RateLimiter("3/minute", "100/minute", storage_uri=REDIS, namespace=namespace)
    other = RateLimiter("3/minute", "100/minute", storage_uri=REDIS, namespace=f"{namespace}-x")
    try:
        assert [first.check("alice"), second.check("alice"), first.check("alice")] == [None] * 3
        retry = second.check("alice")
        assert retry is not None
        assert 0 < retry <= 60
        assert first.check("bob") is None
        assert other.check("alice") is None
        client = redis.Redis.from_url(REDIS)
        keys = [key.decode() for key in client.scan_iter(match=f"*{namespace}/*")]
        client.close()
        assert keys
        assert all(f"/{namespace}/" in key for key in keys)
    finally:
        for limiter in (first, second, other):
            limiter.close()


class RedisProxy:
    """A TCP relay to the shared Redis that can be cut, as if Redis went away."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.uri = f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", 6379))
            self.sockets += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass

    def cut(self) -> None:
        for sock in [self.listener, *self.sockets]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_redis_failing_while_serving_allows_requests_and_warns_once(
    namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = RedisProxy()
    limiter = RateLimiter("1/minute", None, storage_uri=proxy.uri, namespace=namespace)
    try:
        assert limiter.check("alice") is None
        assert limiter.check("alice") is not None
        proxy.cut()
        with caplog.at_level(logging.WARNING, logger="shipyard.serving"):
            assert [limiter.check("alice") for _ in range(3)] == [None] * 3
        warnings = [r for r in caplog.records if r.name == "shipyard.serving"]
        assert len(warnings) == 1
        assert proxy.uri in warnings[0].getMessage()
        assert "check that Redis is running" in warnings[0].getMessage()
    finally:
        limiter.close()
        proxy.cut()


def test_a_key_of_its_own_limit_replaces_the_per_key_limit() -> None:
    limiter = RateLimiter("100/second", None, key_limits={"tight": "2/second"})
    try:
        assert [limiter.check("tight") is None for _ in range(3)] == [True, True, False]
        assert all(limiter.check("roomy") is None for _ in range(10))
    finally:
        limiter.close()


def test_memory_storage_sweeps_at_most_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stock memory storage starts a 10 ms Timer thread whenever the last one ended."""
    import time

    import limits.storage.memory
    from limits.storage import MemoryStorage

    from shipyard.serving.ratelimit import QuietMemoryStorage

    assert hasattr(MemoryStorage, "_MemoryStorage__schedule_expiry"), "limits renamed it"
    started: list[float] = []
    timer = threading.Timer

    def counting_timer(*args: object, **kwargs: object) -> threading.Timer:
        started.append(time.monotonic())
        return timer(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(limits.storage.memory.threading, "Timer", counting_timer)
    limiter = RateLimiter("100000/second", None)
    try:
        assert isinstance(limiter._storage, QuietMemoryStorage)
        deadline = time.monotonic() + 0.3
        hits = 0
        while time.monotonic() < deadline:
            assert limiter.check("app") is None
            hits += 1
            time.sleep(0.002)
        assert hits > 50
        assert len(started) <= 2, started  # the one at construction and at most one sweep
    finally:
        limiter.close()
