"""Key rotation: a new API key or JWT key valid at once, the previous one until its grace period
ends (an injected clock), only digests stored, every rotation audited, bad requests refused with
nothing changed."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from support import MODEL_SPEC, SPEC

from shipyard.audit import AuditLog
from shipyard.compiler import ServiceStep
from shipyard.errors import ShipyardError
from shipyard.serving.auth import Authenticator, AuthError, authenticator_for
from shipyard.serving.keycommands import RotateRequest, list_keys, rotate
from shipyard.serving.keys import (
    MIN_KEY_LENGTH,
    KeyRotationError,
    KeyStore,
    KeyWatcher,
    fingerprint,
)

from .specs import compile_text

pytestmark = pytest.mark.usefixtures("no_state_dir_override")

SERVICE = """
services:
  churn-api:
    model: churn
    auth:
      api_keys:
        app: {{key: "${{secret:unit-app-key}}", roles: [predict]}}
        ops: {{key: "${{secret:unit-ops-key}}", roles: [predict, admin]}}
      jwt: {{algorithm: {algorithm}, {jwt_key}}}
      rotation_grace: 10m
"""
APP_KEY = "app-key-declared-0123456789"
OPS_KEY = "ops-key-declared-0123456789"
JWT_SECRET = "jwt-secret-declared-0123456789-0123456789"
NEW_APP_KEY = "app-key-from-env-0123456789-abcdef"


class Clock:
    """Seconds since the epoch, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def secrets_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("SHIPYARD_SECRET_UNIT_APP_KEY", APP_KEY)
    monkeypatch.setenv("SHIPYARD_SECRET_UNIT_OPS_KEY", OPS_KEY)
    monkeypatch.setenv("SHIPYARD_SECRET_UNIT_JWT_SECRET", JWT_SECRET)


def service_step(tmp_path: Path, algorithm: str = "HS256", public_key: str = "") -> ServiceStep:
    jwt_key = (
        'secret: "${secret:unit-jwt-secret}"'
        if algorithm == "HS256"
        else f"public_key: {json.dumps(public_key)}"
    )
    text = SPEC.format(port=4200) + MODEL_SPEC.format(threshold=">= 0.5")
    text += SERVICE.format(algorithm=algorithm, jwt_key=jwt_key)
    plan = compile_text(tmp_path, text)
    return plan.named(ServiceStep, "churn-api")


@pytest.fixture
def step(tmp_path: Path, secrets_set: None) -> ServiceStep:
    return service_step(tmp_path)


@pytest.fixture
def store(step: ServiceStep, clock: Clock) -> Any:
    keys = KeyStore(step.control_database, clock=clock)
    yield keys
    keys.close()


class Audit:
    """Collects what rotate() records."""

    def __init__(self) -> None:
        self.entries: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, *args: Any, **detail: Any) -> None:
        self.entries.append((args, detail))


def authenticator(step: ServiceStep, clock: Clock) -> Authenticator:
    """The service's authenticator with the stored rotations, on the injected clock."""
    built = authenticator_for(step, watch=False)
    live = Authenticator(
        built._declared,
        built._jwt,
        service=step.service,
        clock=clock,
    )
    watcher = KeyWatcher(step.control_database, step.service)
    try:
        watcher.refresh(live)
    finally:
        watcher.store.close()
    return live


def name_of(auth: Authenticator, key: str) -> str:
    return auth.authenticate(f"Bearer {key}", None).name


def refused(auth: Authenticator, key: str) -> str:
    """Why the key is refused: "retired" (its grace period ended) or "invalid" (unknown)."""
    with pytest.raises(AuthError) as caught:
        auth.authenticate(None, key)
    assert (caught.value.status, caught.value.reason) == (401, "invalid_key")
    return "retired" if "grace period ended" in str(caught.value) else "invalid"


def test_the_plan_carries_the_declared_grace(step: ServiceStep) -> None:
    assert step.auth is not None and step.auth.rotation_grace_seconds == 600


def test_a_rotated_key_is_valid_at_once_and_the_old_one_until_the_grace_ends(
    step: ServiceStep, store: KeyStore, clock: Clock
) -> None:
    before = authenticator(step, clock)
    assert name_of(before, APP_KEY) == "app"

    rotation, generated = rotate(step, RotateRequest(key="app"), "alice", Audit(), store)
    assert generated is not None and len(generated) >= 43
    assert rotation.previous_until == clock.now + 600  # rotation_grace: 10m

    auth = authenticator(step, clock)
    assert name_of(auth, generated) == "app"
    assert auth.authenticate(None, generated).roles == frozenset({"predict"})
    clock.now += 599
    assert name_of(auth, APP_KEY) == "app"  # within the grace period
    clock.now += 1
    assert refused(auth, APP_KEY) == "retired"
    assert name_of(auth, generated) == "app"
    assert name_of(auth, OPS_KEY) == "ops"  # another key is untouched


def test_a_second_rotation_retires_the_first_new_key_not_the_declared_ones_end(
    step: ServiceStep, store: KeyStore, clock: Clock
) -> None:
    _, first = rotate(step, RotateRequest(key="app", grace="1h"), "alice", Audit(), store)
    clock.now += 60
    _, second = rotate(step, RotateRequest(key="app", grace="2m"), "bob", Audit(), store)
    assert first and second
    auth = authenticator(step, clock)
    assert {name_of(auth, k) for k in (APP_KEY, first, second)} == {"app"}
    clock.now += 120
    assert refused(auth, first) == "retired"  # its own grace: 2m from the second rotation
    assert name_of(auth, APP_KEY) == "app"  # the declared one keeps its hour
    clock.now += 3600
    assert refused(auth, APP_KEY) == "retired"
    assert name_of(auth, second) == "app"


def test_only_digests_are_stored_and_the_audit_never_has_the_key(
    step: ServiceStep, store: KeyStore, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    monkeypatch.setenv("NEW_APP_KEY", NEW_APP_KEY)
    audit = Audit()
    rotation, generated = rotate(
        step, RotateRequest(key="app", from_env="NEW_APP_KEY"), "alice", audit, store
    )
    assert generated is None
    database = step.control_database.removeprefix("sqlite:///")
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT * FROM shipyard_service_keys").fetchall()
        dump = "\n".join(db.iterdump())
    assert len(rows) == 2  # the declared value, retiring, and the new one
    assert NEW_APP_KEY not in dump and APP_KEY not in dump
    assert fingerprint(NEW_APP_KEY) in dump and rotation.digest == fingerprint(NEW_APP_KEY)
    [(args, detail)] = audit.entries
    assert args == ("keys.rotate", "service.churn-api")
    assert detail["actor"] == "alice" and detail["key"] == "app"
    assert detail["grace_seconds"] == 600
    assert detail["previous_valid_until"].startswith("2027-01-15T")  # clock + 10 minutes
    assert detail["source"] == "NEW_APP_KEY"
    assert NEW_APP_KEY not in repr(audit.entries)


def test_the_audit_log_records_each_rotation(
    step: ServiceStep, store: KeyStore, tmp_path: Path
) -> None:
    log = AuditLog(tmp_path / "audit.sqlite")
    rotate(step, RotateRequest(key="app"), "alice", log.record, store)
    rotate(step, RotateRequest(jwt=True, grace="5m"), "bob", log.record, store)
    entries = log.entries("service.churn-api")
    assert [(e.action, e.actor, e.detail["key"]) for e in entries] == [
        ("keys.rotate", "alice", "app"),
        ("keys.rotate", "bob", "jwt"),
    ]
    assert entries[1].detail["grace_seconds"] == 300


@pytest.mark.parametrize("value", ["short", "x" * (MIN_KEY_LENGTH - 1)])
def test_a_short_key_is_refused_saying_the_rule_and_nothing_changes(
    step: ServiceStep, store: KeyStore, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("NEW_APP_KEY", value)
    with pytest.raises(KeyRotationError, match=f"needs at least {MIN_KEY_LENGTH}") as caught:
        rotate(step, RotateRequest(key="app", from_env="NEW_APP_KEY"), "a", Audit(), store)
    assert f"has {len(value)} characters" in caught.value.message
    assert store.records(step.service) == []


def test_a_missing_variable_a_reused_or_anothers_value_is_refused(
    step: ServiceStep, store: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = RotateRequest(key="app", from_env="NEW_APP_KEY")
    monkeypatch.delenv("NEW_APP_KEY", raising=False)
    with pytest.raises(KeyRotationError, match="NEW_APP_KEY is not set"):
        rotate(step, from_env, "a", Audit(), store)
    monkeypatch.setenv("NEW_APP_KEY", OPS_KEY)
    with pytest.raises(KeyRotationError, match="is the value of key 'ops'"):
        rotate(step, from_env, "a", Audit(), store)
    monkeypatch.setenv("NEW_APP_KEY", APP_KEY)
    with pytest.raises(KeyRotationError, match="one it had before"):
        rotate(step, from_env, "a", Audit(), store)
    assert store.records(step.service) == []


def test_unknown_service_key_or_missing_jwt_name_what_is_declared(
    tmp_path: Path, step: ServiceStep, store: KeyStore
) -> None:
    with pytest.raises(KeyRotationError, match="no API key 'apps'; its keys are app, ops"):
        rotate(step, RotateRequest(key="apps"), "a", Audit(), store)
    with pytest.raises(KeyRotationError, match="name one API key, or give --jwt"):
        rotate(step, RotateRequest(), "a", Audit(), store)
    with pytest.raises(KeyRotationError, match="not a duration"):
        rotate(step, RotateRequest(key="app", grace="soon"), "a", Audit(), store)
    no_jwt = step.model_copy(update={"auth": step.auth.model_copy(update={"jwt": None})})  # type: ignore[union-attr]
    with pytest.raises(KeyRotationError, match=r"accepts no JWTs \(its API keys: app, ops\)"):
        rotate(no_jwt, RotateRequest(jwt=True), "a", Audit(), store)
    plan = compile_text(
        tmp_path, SPEC.format(port=4200) + MODEL_SPEC.format(threshold=">= 0.5") + SERVICE_BARE
    )
    with pytest.raises(ShipyardError, match="service 'churn' is not defined") as caught:
        plan.named(ServiceStep, "churn")
    assert "churn-api" in str(caught.value.hint)
    with pytest.raises(KeyRotationError, match="declares no `auth`"):
        rotate(plan.named(ServiceStep, "churn-api"), RotateRequest(key="app"), "a", Audit())
    assert store.records(step.service) == []


SERVICE_BARE = """
services:
  churn-api:
    model: churn
"""


def test_hs256_rotation_accepts_old_tokens_until_the_grace_ends(
    step: ServiceStep, store: KeyStore, clock: Clock
) -> None:
    def token(secret: str) -> str:
        claims = {"sub": "app-user", "roles": ["predict"], "exp": int(time.time()) + 600}
        return jwt.encode(claims, secret, algorithm="HS256")

    old = token(JWT_SECRET)
    _, secret = rotate(step, RotateRequest(jwt=True, grace="30s"), "alice", Audit(), store)
    assert secret is not None
    database = step.control_database.removeprefix("sqlite:///")
    with sqlite3.connect(database) as db:
        assert secret not in "\n".join(db.iterdump())  # sealed, never plain
    auth = authenticator(step, clock)
    new = token(secret)
    assert auth.authenticate(f"Bearer {new}", None).name == "app-user"
    assert auth.authenticate(f"Bearer {old}", None).name == "app-user"
    clock.now += 30
    with pytest.raises(AuthError) as caught:
        auth.authenticate(f"Bearer {old}", None)  # cached from before: refused all the same
    assert caught.value.reason == "invalid_token"
    assert "signed with a key whose grace period ended" in str(caught.value)
    fresh = token(JWT_SECRET)
    with pytest.raises(AuthError) as caught:
        auth.authenticate(f"Bearer {fresh}", None)
    assert caught.value.reason == "invalid_token"
    assert auth.authenticate(f"Bearer {new}", None).name == "app-user"


def test_a_short_hs256_secret_is_refused(
    step: ServiceStep, store: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEW_SECRET", "s" * 31)
    with pytest.raises(KeyRotationError, match="has 31 bytes; it needs at least 32"):
        rotate(step, RotateRequest(jwt=True, from_env="NEW_SECRET"), "a", Audit(), store)
    assert store.records(step.service) == []


def _rsa() -> tuple[Any, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, pem.decode()


def test_rs256_rotation_takes_the_new_public_key_from_a_file(
    tmp_path: Path, secrets_set: None, clock: Clock
) -> None:
    old_key, old_pem = _rsa()
    new_key, new_pem = _rsa()
    step = service_step(tmp_path, "RS256", old_pem)
    store = KeyStore(step.control_database, clock=clock)
    try:
        with pytest.raises(KeyRotationError, match="public key, from a file"):
            rotate(step, RotateRequest(jwt=True), "a", Audit(), store)
        (tmp_path / "not.pem").write_text("hello")
        with pytest.raises(KeyRotationError, match="not a readable PEM public key"):
            rotate(step, RotateRequest(jwt=True, public_key=tmp_path / "not.pem"), "a", Audit())
        (tmp_path / "new.pem").write_text(new_pem)
        request = RotateRequest(jwt=True, grace="1m", public_key=tmp_path / "new.pem")
        rotate(step, request, "alice", Audit(), store)
    finally:
        store.close()
    claims = {"sub": "svc", "roles": ["predict"], "exp": int(time.time()) + 600}
    auth = authenticator(step, clock)
    for signer in (old_key, new_key):
        signed = jwt.encode(claims, signer, algorithm="RS256")
        assert auth.authenticate(f"Bearer {signed}", None).name == "svc"
    clock.now += 60
    with pytest.raises(AuthError):
        auth.authenticate(f"Bearer {jwt.encode(claims, old_key, algorithm='RS256')}", None)


def test_a_changed_declared_secret_wins_over_an_earlier_rotation(
    step: ServiceStep, store: KeyStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, generated = rotate(step, RotateRequest(key="app"), "alice", Audit(), store)
    assert generated is not None
    monkeypatch.setenv("SHIPYARD_SECRET_UNIT_APP_KEY", "app-key-declared-anew-0123456789")
    auth = authenticator(step, clock)  # as a worker restarted with the new secret
    assert name_of(auth, "app-key-declared-anew-0123456789") == "app"
    assert refused(auth, generated) == "invalid"
    assert refused(auth, APP_KEY) == "invalid"
    assert "declared in spec  active" in list_keys(step, store).split("  app  ")[1]


def test_list_shows_each_keys_state_and_never_a_value(
    step: ServiceStep, store: KeyStore, clock: Clock
) -> None:
    _, generated = rotate(step, RotateRequest(key="app", grace="1h"), "alice", Audit(), store)
    assert generated is not None
    shown = list_keys(step, store)
    assert generated not in shown and APP_KEY not in shown
    app, rest = shown.split("  app  (predict)\n")[1].split("  ops  ")
    assert "rotated " in app and "by alice  active" in app
    assert "declared in spec  retiring until 2027-01-15T" in app
    assert "declared in spec  active" in rest  # ops, and the JWT key
    clock.now += 3600
    assert "declared in spec  retired at" in list_keys(step, store)


def test_a_running_authenticator_takes_a_rotation_without_a_restart(
    step: ServiceStep, store: KeyStore
) -> None:
    auth = authenticator_for(step)  # watching, as every worker's is
    assert name_of(auth, APP_KEY) == "app"
    _, generated = rotate(step, RotateRequest(key="app"), "alice", Audit(), store)
    assert generated is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            assert name_of(auth, generated) == "app"
            break
        except AuthError:
            time.sleep(0.05)
    assert name_of(auth, generated) == "app"
    assert name_of(auth, APP_KEY) == "app"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def control_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'control.sqlite'}"
        return
    from support import throwaway_database

    with throwaway_database("shipyard_keys", create=True) as database:
        yield f"postgresql://postgres@127.0.0.1:5432/{database}"


def test_rotations_racing_on_one_key_leave_exactly_one_active_value(control_url: str) -> None:
    values = [f"racing-value-{n:02d}-0123456789abcdef" for n in range(8)]

    def rotate_to(value: str) -> None:
        store = KeyStore(control_url)
        try:
            store.rotate("api", "app", declared=APP_KEY, new=value, grace_seconds=60, actor="race")
        finally:
            store.close()

    threads = [threading.Thread(target=rotate_to, args=(value,)) for value in values]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store = KeyStore(control_url)
    try:
        records = store.records("api")
    finally:
        store.close()
    assert sorted(r.origin for r in records) == ["declared"] + ["rotated"] * 8
    assert {r.digest for r in records if r.origin == "rotated"} == {fingerprint(v) for v in values}
    assert len([r for r in records if r.retires_at is None]) == 1
    assert {r.base for r in records} == {fingerprint(APP_KEY)}
