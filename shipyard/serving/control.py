"""The control plane of a service: which Bento it serves and how it routes, in one store.

Every change (a deploy, `POST /admin/routing`, later a rollout step) goes through
`ControlStore.change`: a compare-and-swap on the state's revision that writes the new state and
its audit record (who, why, before, after) in one transaction. Two writers racing on the same
revision: one wins, the other gets ControlConflict naming the revision it lost to, and nothing
of its change is applied.

Workers poll the revision twice a second and apply a new state (new models loaded beside the
old ones, then one reference swapped), so a change reaches every worker of every replica within
a second. The store is SQLite in the state folder (embedded profile) or PostgreSQL shared by
every replica (scale-out profile: `serving.control_database`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from shipyard.compiler.plan import FrozenModel
from shipyard.compiler.services import RoutingPlan
from shipyard.databases import tls_hint
from shipyard.errors import ServiceUnavailable, ShipyardError
from shipyard.secrets import redact_url

CONNECT_TIMEOUT = 5

_TABLES = """
CREATE TABLE IF NOT EXISTS shipyard_control (
    service TEXT PRIMARY KEY, revision INTEGER NOT NULL, state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shipyard_control_audit (
    service TEXT NOT NULL, revision INTEGER NOT NULL, changed_at TEXT NOT NULL,
    actor TEXT NOT NULL, action TEXT NOT NULL, reason TEXT NOT NULL,
    before TEXT, after TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS shipyard_control_audit_service
    ON shipyard_control_audit (service, revision);
CREATE TABLE IF NOT EXISTS shipyard_rollouts (
    name TEXT PRIMARY KEY, revision INTEGER NOT NULL, state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shipyard_ab_tests (
    name TEXT PRIMARY KEY, revision INTEGER NOT NULL, state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shipyard_monitors (
    name TEXT PRIMARY KEY, revision INTEGER NOT NULL, state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shipyard_alerts (
    route TEXT NOT NULL, alert_key TEXT NOT NULL, state TEXT NOT NULL, severity TEXT NOT NULL,
    title TEXT NOT NULL, source TEXT NOT NULL, first_at DOUBLE PRECISION NOT NULL,
    last_at DOUBLE PRECISION NOT NULL, last_sent_at DOUBLE PRECISION,
    occurrences INTEGER NOT NULL, PRIMARY KEY (route, alert_key)
);
CREATE TABLE IF NOT EXISTS shipyard_alert_deliveries (
    route TEXT NOT NULL, alert_key TEXT NOT NULL, status TEXT NOT NULL, channel TEXT NOT NULL,
    ok INTEGER NOT NULL, error TEXT, at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS shipyard_alert_deliveries_route
    ON shipyard_alert_deliveries (route, at);
CREATE TABLE IF NOT EXISTS shipyard_service_keys (
    service TEXT NOT NULL, name TEXT NOT NULL, origin TEXT NOT NULL, digest TEXT NOT NULL,
    material TEXT, base TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    retires_at DOUBLE PRECISION, actor TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS shipyard_service_keys_service ON shipyard_service_keys (service);
"""
"""Rollouts and A/B tests keep their state (shipyard/rollouts/state.py) beside the control
state they change; rotated keys (shipyard/serving/keys.py) beside the service they admit to."""


_REACH_HINT = "check `serving.control_database` in the profile and that it is reachable"


class ControlState(FrozenModel):
    """What every worker of a service serves, and how it routes, at one revision."""

    service: str
    revision: int = Field(ge=1, description="Counts the changes; each change adds one.")
    bento: str = Field(description="Tag of the Bento served, e.g. churn-api:m3-1a2b3c4d5e.")
    bundle: str = Field(description="Folder of that Bento on the machine that deployed it.")
    routing: RoutingPlan
    actor: str = Field(description="Who made the change (an API key's name, a user).")
    action: str = Field(description="deploy, routing, rollout, ...")
    reason: str
    changed_at: str = Field(description="When, UTC ISO 8601.")


@dataclass(frozen=True)
class AuditRecord:
    """One change of a service's control state."""

    service: str
    revision: int
    changed_at: str
    actor: str
    action: str
    reason: str
    before: dict[str, Any] | None
    after: dict[str, Any]


@dataclass(frozen=True)
class _Change:
    """What a writer changes, and who and why."""

    actor: str
    action: str
    reason: str
    bento: str | None
    bundle: str | None
    routing: RoutingPlan | None


class ControlConflict(ShipyardError):
    """The state changed since it was read: the change was not applied."""

    def __init__(self, service: str, expected: int, current: int) -> None:
        super().__init__(
            f"service '{service}' is at control revision {current}, not {expected}: someone "
            "else changed it meanwhile, and this change was not applied",
            hint=f"read the current state (revision {current}) and make the change again",
            resource=f"service.{service}",
        )
        self.expected = expected
        self.current = current


class ControlStore:
    """The control states of a project's services, with their audit."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.shown = redact_url(url)
        self._backend = backend_for(url)
        self._local = threading.local()

    # -- reading ------------------------------------------------------------------------------

    def read(self, service: str) -> ControlState | None:
        """The current state, or None before the service was first deployed."""
        row = self._query("SELECT state FROM shipyard_control WHERE service = {p}", [service])
        return ControlState.model_validate_json(row[0][0]) if row else None

    def revision(self, service: str) -> int:
        """The current revision (0 before the first deploy): cheap enough to poll."""
        row = self._query("SELECT revision FROM shipyard_control WHERE service = {p}", [service])
        return int(row[0][0]) if row else 0

    def history(self, service: str, limit: int = 50) -> list[AuditRecord]:
        """The last changes, newest first."""
        rows = self._query(
            "SELECT service, revision, changed_at, actor, action, reason, before, after "
            "FROM shipyard_control_audit WHERE service = {p} ORDER BY revision DESC LIMIT {p}",
            [service, limit],
        )
        return [
            AuditRecord(
                service=r[0],
                revision=int(r[1]),
                changed_at=r[2],
                actor=r[3],
                action=r[4],
                reason=r[5],
                before=json.loads(r[6]) if r[6] else None,
                after=json.loads(r[7]),
            )
            for r in rows
        ]

    # -- writing ------------------------------------------------------------------------------

    def change(
        self,
        service: str,
        *,
        expected_revision: int,
        actor: str,
        action: str,
        reason: str,
        bento: str | None = None,
        bundle: str | None = None,
        routing: RoutingPlan | None = None,
    ) -> ControlState:
        """Replace the state at `expected_revision` (0: there is none yet) with one where the
        given parts changed, and audit it, atomically.

        Raises:
            ControlConflict: The state is at another revision now; nothing was written.
            ValueError: A first state needs a bento, a bundle and routing.
        """
        change = _Change(actor, action, reason, bento, bundle, routing)
        try:
            return self._swap(service, expected_revision, change)
        except self._backend.errors as exc:
            raise ServiceUnavailable(
                f"the control store {self.shown} cannot be written: {exc}; nothing was changed",
                hint=tls_hint(str(exc), _REACH_HINT),
            ) from exc

    def _swap(self, service: str, expected_revision: int, change: _Change) -> ControlState:
        actor, action, reason = change.actor, change.action, change.reason
        bento, bundle, routing = change.bento, change.bundle, change.routing
        with self._backend.transaction() as cursor:
            current_row = self._backend.current(cursor, service)
            current = ControlState.model_validate_json(current_row) if current_row else None
            current_revision = current.revision if current else 0
            if current_revision != expected_revision:
                raise ControlConflict(service, expected_revision, current_revision)
            if current is not None:
                bento, bundle = bento or current.bento, bundle or current.bundle
                routing = routing or current.routing
            if bento is None or bundle is None or routing is None:
                raise ValueError(
                    f"the first control state of '{service}' needs a Bento, a bundle and routing"
                )
            state = ControlState(
                service=service,
                revision=current_revision + 1,
                bento=bento,
                bundle=bundle,
                routing=routing,
                actor=actor,
                action=action,
                reason=reason,
                changed_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            )
            document = state.model_dump_json()
            if not self._backend.swap(cursor, service, current_revision, document):
                raise ControlConflict(service, expected_revision, self.revision(service))
            self._backend.audit(
                cursor,
                (
                    service,
                    state.revision,
                    state.changed_at,
                    actor,
                    action,
                    reason,
                    current.model_dump_json() if current else None,
                    document,
                ),
            )
        return state

    def _query(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        try:
            connection = self._connection()
            cursor = connection.cursor()
            cursor.execute(sql.format(p=self._backend.placeholder), params)
            rows: list[tuple[Any, ...]] = cursor.fetchall()
            connection.rollback()
            return rows
        except self._backend.errors as exc:
            self._drop_connection()
            raise ServiceUnavailable(
                f"the control store {self.shown} cannot be read: {exc}",
                hint=tls_hint(str(exc), _REACH_HINT),
            ) from exc

    def _connection(self) -> Any:
        """One connection per thread (the watcher polls on its own)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._backend.connect()
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with _quietly():
                connection.close()

    def close(self) -> None:
        self._drop_connection()


@contextmanager
def _quietly() -> Iterator[None]:
    try:
        yield
    except Exception:  # closing a broken connection may fail again; nothing to do about it
        return


class _Backend:
    placeholder = "?"
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def connect(self) -> Any:
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        raise NotImplementedError
        yield

    def current(self, cursor: Any, service: str) -> str | None:
        cursor.execute(
            f"SELECT state FROM shipyard_control WHERE service = {self.placeholder}", [service]
        )
        row = cursor.fetchone()
        return str(row[0]) if row else None

    def swap(self, cursor: Any, service: str, revision: int, document: str) -> bool:
        p = self.placeholder
        if revision == 0:
            cursor.execute(
                f"INSERT INTO shipyard_control (service, revision, state) VALUES ({p}, 1, {p}) "
                "ON CONFLICT (service) DO NOTHING",
                [service, document],
            )
        else:
            cursor.execute(
                f"UPDATE shipyard_control SET revision = revision + 1, state = {p} "
                f"WHERE service = {p} AND revision = {p}",
                [document, service, revision],
            )
        return bool(cursor.rowcount == 1)

    def audit(self, cursor: Any, record: tuple[Any, ...]) -> None:
        marks = ", ".join([self.placeholder] * len(record))
        cursor.execute(
            "INSERT INTO shipyard_control_audit (service, revision, changed_at, actor, action, "
            f"reason, before, after) VALUES ({marks})",
            list(record),
        )


class _Sqlite(_Backend):
    def __init__(self, path: Path) -> None:
        self.path = path

    def connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(_TABLES)
        except BaseException:
            connection.close()
            raise
        return connection

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with closing(self.connect()) as connection:
            connection.isolation_level = None  # explicit BEGIN: IMMEDIATE takes the write lock
            cursor = connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")


class _Postgres(_Backend):
    placeholder = "%s"
    _SCHEMA_LOCK = 0x5A1C_C0DE  # advisory lock id: concurrent CREATE TABLE IF NOT EXISTS can race

    def __init__(self, url: str) -> None:
        import psycopg2

        self.url = url
        self.errors = (psycopg2.Error,)

    def connect(self) -> Any:
        import psycopg2

        connection = psycopg2.connect(
            self.url, connect_timeout=CONNECT_TIMEOUT, application_name="shipyard-control"
        )
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (self._SCHEMA_LOCK,))
                cursor.execute(_TABLES)
        except BaseException:
            connection.close()
            raise
        return connection

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with closing(self.connect()) as connection, connection, connection.cursor() as cursor:
            yield cursor  # committed at the end of `with connection`, rolled back on error


def backend_for(url: str) -> _Backend:
    """The SQLite or PostgreSQL backend of a control store URL (shared by the rollout state)."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not path or path == ":memory:":
            raise ValueError(f"control store URL '{url}' names no file")
        return _Sqlite(Path(path))
    if url.startswith(("postgresql://", "postgres://")):
        return _Postgres(url)
    raise ValueError(
        f"control store URL '{redact_url(url)}' is not supported; use sqlite:////absolute/path "
        "or postgresql://user@host:port/database"
    )


def change_routing(
    url: str,
    service: str,
    change: Callable[[RoutingPlan], RoutingPlan],
    *,
    actor: str,
    action: str,
    reason: str,
    resource: str,
) -> ControlState | None:
    """Apply `change` to the service's routing by compare-and-swap, reading again on a
    conflict (someone else's change is kept, never overwritten). Returns the new state, or None
    when the routing already was what `change` gives.

    Raises:
        ShipyardError: The service has no control state, or it kept changing (nothing applied).
    """
    store = ControlStore(url)
    try:
        for _ in range(10):
            current = store.read(service)
            if current is None:
                raise ShipyardError(
                    f"service '{service}' was never deployed, so it has no routing to change",
                    hint=f"`shipyard serve {service}`",
                    resource=resource,
                )
            routing = change(current.routing)
            if routing == current.routing:
                return None
            try:
                return store.change(
                    service,
                    expected_revision=current.revision,
                    actor=actor,
                    action=action,
                    reason=reason,
                    routing=routing,
                )
            except ControlConflict:
                continue
        raise ShipyardError(
            f"the control state of '{service}' kept changing; '{reason}' was not applied",
            hint="try again once the other changes have settled",
            resource=resource,
        )
    finally:
        store.close()


def resolve_bundle(state: ControlState, state_dir: Path) -> Path:
    """The folder of the state's Bento on this machine: the deployed folder when it is here,
    else the Bento of that tag in this machine's Bento store (a replica elsewhere)."""
    deployed = Path(state.bundle)
    if (deployed / "service.json").is_file():
        return deployed
    name, _, version = state.bento.partition(":")
    local = state_dir / "bentoml" / "bentos" / name / version / "src"
    if (local / "service.json").is_file():
        return local
    raise ShipyardError(
        f"Bento {state.bento} (control revision {state.revision}) is not on this machine: "
        f"neither {deployed} nor {local} exists",
        hint=f"build or import it here (`bentoml import`, or `shipyard build {state.service}`)",
        resource=f"service.{state.service}",
    )
