"""Alert states and the delivery record, in the control database beside routing and rollouts.

`shipyard_alerts` holds one row per (route, key): firing or resolved, its severity, when it
first fired and when it was last sent. Every change is a compare-and-swap on the row's
occurrence count, so two senders raising the same alert at once (two receiver threads, two
replicas) send it once. `shipyard_alert_deliveries` records every send attempt.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from shipyard.alerts.alert import Alert, Delivery, Status, rank
from shipyard.errors import ServiceUnavailable, ShipyardError
from shipyard.secrets import redact_url
from shipyard.serving.control import backend_for
from shipyard.spec.alerts import Severity

T = TypeVar("T")
_COLUMNS = (
    "route, alert_key, state, severity, title, source, first_at, last_at, last_sent_at, occurrences"
)
_ATTEMPTS = 20
"""Compare-and-swap attempts before giving up on a row others keep changing (each lost one
means another sender's change went through)."""


@dataclass(frozen=True)
class AlertState:
    """The state of one alert key on one route."""

    route: str
    key: str
    state: Status
    severity: Severity
    title: str
    source: str
    first_at: float
    last_at: float
    last_sent_at: float | None
    occurrences: int


@dataclass(frozen=True)
class Claim:
    """The right to send an alert now, taken in the store; given back if no channel took it."""

    state: AlertState
    previous_sent_at: float | None


class _Conflict(Exception):
    """Someone else changed the row between the read and the write: read it again."""


class AlertStore:
    """The alert states and deliveries of one control database."""

    def __init__(self, url: str) -> None:
        self.shown = redact_url(url)
        try:
            self._backend = backend_for(url)
        except ValueError as exc:
            raise ShipyardError(
                str(exc), hint="set `serving.control_database` in the profile"
            ) from None
        self._p = self._backend.placeholder

    # -- alert states -------------------------------------------------------------------------

    def state(self, route: str, key: str) -> AlertState | None:
        return self._run(lambda cursor: self._select(cursor, route, key), "read")

    def fire(self, route: str, alert: Alert, now: float, cooldown: float) -> Claim | None:
        """Count one occurrence of `alert` on `route`; a Claim when it is to be sent now: it
        was not firing, its severity went up, or `cooldown` seconds passed since its last send.
        """

        def work(cursor: Any) -> Claim | None:
            old = self._select(cursor, route, alert.key)
            if old is None or old.state == "resolved":
                new = AlertState(
                    route, alert.key, "firing", alert.severity, alert.title, alert.source,
                    now, now, now, 1,
                )  # fmt: skip
                self._put(cursor, old, new)
                return Claim(new, None)
            escalated = rank(alert.severity) > rank(old.severity)
            due = old.last_sent_at is None or now - old.last_sent_at >= cooldown
            send = escalated or due
            new = AlertState(
                route, alert.key, "firing", alert.severity, alert.title, alert.source,
                old.first_at, now, now if send else old.last_sent_at, old.occurrences + 1,
            )  # fmt: skip
            self._put(cursor, old, new)
            return Claim(new, old.last_sent_at) if send else None

        return self._swapping(work, f"alert '{alert.key}' of route '{route}'")

    def give_back(self, claim: Claim) -> None:
        """Undo a claim's send time (no channel took the message), so the next occurrence of
        the alert is sent instead of waiting out the cooldown; unless it was sent again since."""
        p = self._p
        self._run(
            lambda cursor: cursor.execute(
                f"UPDATE shipyard_alerts SET last_sent_at = {p} "
                f"WHERE route = {p} AND alert_key = {p} AND last_sent_at = {p}",
                [
                    claim.previous_sent_at,
                    claim.state.route,
                    claim.state.key,
                    claim.state.last_sent_at,
                ],
            ),
            "write",
        )

    def resolve(self, route: str, key: str, now: float) -> AlertState | None:
        """Mark a firing alert resolved; its state as it fired, or None when it was not firing."""

        def work(cursor: Any) -> AlertState | None:
            old = self._select(cursor, route, key)
            if old is None or old.state != "firing":
                return None
            self._put(cursor, old, dataclasses.replace(old, state="resolved", last_at=now))
            return old

        return self._swapping(work, f"alert '{key}' of route '{route}'")

    def _select(self, cursor: Any, route: str, key: str) -> AlertState | None:
        cursor.execute(
            f"SELECT {_COLUMNS} FROM shipyard_alerts WHERE route = {self._p} "
            f"AND alert_key = {self._p}",
            [route, key],
        )
        row = cursor.fetchone()
        if row is None:
            return None
        return AlertState(
            route=row[0],
            key=row[1],
            state=row[2],
            severity=row[3],
            title=row[4],
            source=row[5],
            first_at=float(row[6]),
            last_at=float(row[7]),
            last_sent_at=None if row[8] is None else float(row[8]),
            occurrences=int(row[9]),
        )

    def _put(self, cursor: Any, old: AlertState | None, new: AlertState) -> None:
        """Write `new` where `old` was read; _Conflict when the row changed meanwhile."""
        p = self._p
        values = [
            new.state, new.severity, new.title, new.source, new.first_at, new.last_at,
            new.last_sent_at, new.occurrences,
        ]  # fmt: skip
        if old is None:
            cursor.execute(
                f"INSERT INTO shipyard_alerts ({_COLUMNS}) VALUES ({', '.join([p] * 10)}) "
                "ON CONFLICT (route, alert_key) DO NOTHING",
                [new.route, new.key, *values],
            )
        else:
            cursor.execute(
                f"UPDATE shipyard_alerts SET state = {p}, severity = {p}, title = {p}, "
                f"source = {p}, first_at = {p}, last_at = {p}, last_sent_at = {p}, "
                f"occurrences = {p} WHERE route = {p} AND alert_key = {p} AND state = {p} "
                f"AND occurrences = {p}",
                [*values, new.route, new.key, old.state, old.occurrences],
            )
        if cursor.rowcount != 1:
            raise _Conflict

    # -- the delivery record ------------------------------------------------------------------

    def record(self, deliveries: Sequence[Delivery]) -> None:
        p = self._p

        def work(cursor: Any) -> None:
            for d in deliveries:
                cursor.execute(
                    "INSERT INTO shipyard_alert_deliveries (route, alert_key, status, channel, "
                    f"ok, error, at) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})",
                    [d.route, d.key, d.status, d.channel, int(d.ok), d.error, d.at],
                )

        if deliveries:
            self._run(work, "write")

    def deliveries(
        self, route: str | None = None, key: str | None = None, limit: int = 50
    ) -> list[Delivery]:
        """The last deliveries, newest first, of a route and/or a key (both: every one)."""
        where: list[str] = []
        params: list[str] = []
        for column, value in (("route", route), ("alert_key", key)):
            if value is not None:
                where.append(f"{column} = {self._p}")
                params.append(value)
        sql = (
            "SELECT route, channel, alert_key, status, ok, error, at "
            "FROM shipyard_alert_deliveries"
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY at DESC LIMIT {self._p}"
        )

        def work(cursor: Any) -> list[tuple[Any, ...]]:
            cursor.execute(sql, [*params, limit])
            return cast(list[tuple[Any, ...]], cursor.fetchall())

        return [
            Delivery(
                route=r[0],
                channel=r[1],
                key=r[2],
                status=r[3],
                ok=bool(r[4]),
                error=r[5],
                at=float(r[6]),
            )
            for r in self._run(work, "read")
        ]

    # -- transactions -------------------------------------------------------------------------

    def _swapping(self, work: Callable[[Any], T], what: str) -> T:
        for _ in range(_ATTEMPTS):
            try:
                return self._run(work, "write")
            except _Conflict:
                continue
        raise ShipyardError(
            f"{what} kept changing while it was being recorded ({_ATTEMPTS} tries)",
            hint="something raises this alert in a tight loop; raise it less often",
        )

    def _run(self, work: Callable[[Any], T], verb: str) -> T:
        unreachable: tuple[type[BaseException], ...] = (*self._backend.errors, OSError)
        try:  # OSError: SQLite's folder cannot be made
            with self._backend.transaction() as cursor:
                return work(cursor)
        except unreachable as exc:
            written = verb == "write"
            raise ServiceUnavailable(
                f"alert states cannot be {'written' if written else 'read'} in the control "
                f"database {self.shown}: {exc}",
                hint="check `serving.control_database` in the profile and that it is reachable",
            ) from exc
