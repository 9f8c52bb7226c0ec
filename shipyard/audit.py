"""The audit log: every promotion, rollback and traffic change, with who, when and why."""

from __future__ import annotations

import getpass
import json
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class AuditEntry:
    time: str
    actor: str
    action: str
    resource: str
    detail: dict[str, Any]


def current_actor() -> str:
    """Who acts: SHIPYARD_ACTOR (set by automation), else the OS user."""
    try:
        return os.environ.get("SHIPYARD_ACTOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class AuditLog:
    """Append-only SQLite table under the state folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path, timeout=30)) as db, db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS audit (time TEXT NOT NULL, actor TEXT NOT NULL, "
                "action TEXT NOT NULL, resource TEXT NOT NULL, detail TEXT NOT NULL)"
            )

    def record(
        self, action: str, resource: str, actor: str | None = None, **detail: Any
    ) -> AuditEntry:
        entry = AuditEntry(
            time=datetime.now(UTC).isoformat(timespec="seconds"),
            actor=actor or current_actor(),
            action=action,
            resource=resource,
            detail=detail,
        )
        with closing(sqlite3.connect(self.path, timeout=30)) as db, db:
            db.execute(
                "INSERT INTO audit VALUES (?,?,?,?,?)",
                (
                    entry.time,
                    entry.actor,
                    entry.action,
                    entry.resource,
                    json.dumps(detail, default=str, sort_keys=True),
                ),
            )
        return entry

    def entries(self, resource: str | None = None) -> list[AuditEntry]:
        query = "SELECT time, actor, action, resource, detail FROM audit"
        args: tuple[str, ...] = ()
        if resource is not None:
            query += " WHERE resource = ?"
            args = (resource,)
        with closing(sqlite3.connect(self.path, timeout=30)) as db:
            rows = db.execute(query + " ORDER BY rowid", args).fetchall()
        return [AuditEntry(t, a, act, r, json.loads(d)) for t, a, act, r, d in rows]
