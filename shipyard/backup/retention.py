"""Which backups a retention rule prunes: pure, over backup ids (sortable UTC timestamps)."""

from __future__ import annotations

from datetime import UTC, datetime

ID_FORMAT = "%Y%m%dT%H%M%SZ"


def new_id(now: datetime | None = None) -> str:
    """A sortable backup id: the UTC time to the second, e.g. 20261202T020000Z."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime(ID_FORMAT)


def id_time(backup_id: str) -> datetime:
    """When the backup was made (an id may carry a `-N` suffix when two share a second)."""
    return datetime.strptime(backup_id.split("-", 1)[0], ID_FORMAT).replace(tzinfo=UTC)


def to_prune(
    ids: list[str],
    keep_last: int | None = None,
    keep_seconds: float | None = None,
    now: datetime | None = None,
) -> list[str]:
    """The ids past retention, oldest first: beyond the newest `keep_last`, or older than
    `keep_seconds`. The newest backup is never pruned, whatever the rule says."""
    ordered = sorted(ids)
    if not ordered:
        return []
    newest = ordered[-1]
    prune: set[str] = set()
    if keep_last is not None:
        prune |= set(ordered[: max(len(ordered) - max(keep_last, 1), 0)])
    if keep_seconds is not None:
        moment = (now or datetime.now(UTC)).timestamp()
        prune |= {i for i in ordered if moment - id_time(i).timestamp() > keep_seconds}
    prune.discard(newest)
    return [i for i in ordered if i in prune]
