"""Reading the model registry without importing MLflow, for the read-only commands.

`shipyard models list` and `shipyard models show` only read the registry, and importing MLflow
(about two seconds) would be most of their time. So they read it directly, and answer exactly
what `shipyard.registry.versions` answers through the MLflow client:

- an http(s) tracking URI through MLflow's REST API (`/api/2.0/mlflow/...`), with httpx;
- the embedded profile's SQLite store (or a PostgreSQL one) through its tables, read-only, only
  when its schema revision (`alembic_version`) is one these queries were checked against.

Anything else answers None and the caller uses the MLflow client: another kind of store, a
schema revision not in `VERIFIED_REVISIONS` (a newer MLflow may have moved things), MLflow
workspaces or a separate registry URI in the environment, a driver that is not installed, or a
request that failed for another reason than an HTTP error status (the client then decides, with
its own retries and errors, as it always did).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from shipyard.registry import GATE_METRICS, VersionInfo

VERIFIED_REVISIONS = frozenset({"dc11669786a5"})
"""alembic revisions of MLflow's tracking schema whose registry tables the queries below were
checked against (dc11669786a5: MLflow 3.17). Add one only after comparing `shipyard models show
--json` on both paths (tests/unit/test_registry_read.py does)."""
STAGE_DELETED_INTERNAL = "Deleted_Internal"
"""MLflow's stage of a version being deleted: its searches leave these out."""
DEFAULT_WORKSPACE = "default"
MAX_RESULTS = 10000
"""MLflow's SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT: one page, as the client reads it."""
CLIENT_ONLY_ENV = ("MLFLOW_REGISTRY_URI", "MLFLOW_WORKSPACE", "MLFLOW_WORKSPACE_STORE_URI")
"""Set, these change where or how the client reads the registry: leave it to the client."""


def read_versions(tracking_uri: str, name: str) -> list[VersionInfo] | None:
    """Every version of `name`, newest first, with its run's metrics (as `registry.versions`);
    None when this store cannot be read here and the MLflow client must answer."""
    if client_only():
        return None
    scheme = urlparse(tracking_uri).scheme
    if scheme in ("http", "https"):
        return _rest_versions(tracking_uri, name)
    if scheme == "sqlite":
        return _sqlite_versions(tracking_uri, name)
    if scheme.split("+")[0] in ("postgresql", "postgres"):
        return _postgres_versions(tracking_uri, name)
    return None


def client_only() -> bool:
    """The environment changes where or how MLflow's client reads: only it can answer."""
    return any(os.environ.get(key) for key in CLIENT_ONLY_ENV) or _truthy(
        os.environ.get("MLFLOW_ENABLE_WORKSPACES")
    )


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


# -- REST --------------------------------------------------------------------------------------


def _rest_versions(uri: str, name: str) -> list[VersionInfo] | None:
    import httpx

    api = uri.rstrip("/") + "/api/2.0/mlflow"
    headers = _auth_headers()
    try:
        with httpx.Client(timeout=30, headers=headers, verify=_verify()) as http:

            def get(path: str, **params: Any) -> dict[str, Any] | None:
                """The JSON answer, or None for an HTTP error (the client's MlflowException)."""
                response = http.get(f"{api}/{path}", params=params)
                if response.status_code in (401, 403):
                    raise PermissionError  # the client's own auth may differ: let it answer
                if response.is_error:
                    return None
                data: dict[str, Any] = response.json()
                return data

            found = get("model-versions/search", filter=f"name = '{name}'", max_results=MAX_RESULTS)
            if found is None:
                return []
            model = get("registered-models/get", name=name)
            aliases = {
                a["alias"]: str(a["version"])
                for a in ((model or {}).get("registered_model") or {}).get("aliases", [])
            }

            def run_metrics(run_id: str) -> dict[str, float] | None:
                run = get("runs/get", run_id=run_id)
                if run is None:
                    return None
                metrics = run.get("run", {}).get("data", {}).get("metrics", [])
                return {m["key"]: float(m.get("value", 0.0)) for m in metrics}

            return _assemble(
                [
                    {
                        "name": v.get("name", name),
                        "version": v["version"],
                        "created": v.get("creation_timestamp"),
                        "run_id": v.get("run_id", ""),
                        "description": v.get("description", ""),
                        "tags": {t["key"]: t.get("value", "") for t in v.get("tags", [])},
                    }
                    for v in found.get("model_versions", [])
                ],
                aliases,
                run_metrics,
            )
    except (httpx.HTTPError, PermissionError, ValueError, KeyError):
        return None


def _auth_headers() -> dict[str, str]:
    """The credentials MLflow's client takes from the environment (token or basic auth)."""
    if token := os.environ.get("MLFLOW_TRACKING_TOKEN"):
        return {"Authorization": f"Bearer {token}"}
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        import base64

        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {basic}"}
    return {}


def _verify() -> bool | str:
    if _truthy(os.environ.get("MLFLOW_TRACKING_INSECURE_TLS")):
        return False
    return os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True


# -- SQL stores --------------------------------------------------------------------------------

_VERSIONS = (
    "SELECT name, version, creation_time, run_id, description FROM model_versions "
    "WHERE workspace = {p} AND name = {p} AND (current_stage IS NULL OR current_stage != {p})"
)
_TAGS = "SELECT version, key, value FROM model_version_tags WHERE workspace = {p} AND name = {p}"
_ALIASES = (
    "SELECT alias, version FROM registered_model_aliases WHERE workspace = {p} AND name = {p}"
)
_METRICS = "SELECT key, value, is_nan FROM latest_metrics WHERE run_uuid = {p}"
_RUN = "SELECT run_uuid FROM runs WHERE run_uuid = {p}"


def _sqlite_versions(uri: str, name: str) -> list[VersionInfo] | None:
    path = uri.removeprefix("sqlite:///")  # as `tracking.use_tracking` reads it
    if path in ("", ":memory:") or "?" in path or "%" in path:
        return None
    if not Path(path).exists():
        return []  # no store yet: no model (the client would create an empty one)
    try:
        connection = sqlite3.connect(
            f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=30
        )
    except sqlite3.Error:
        return None
    with closing(connection) as db:
        try:
            return _sql_versions(lambda sql, args: db.execute(sql.format(p="?"), args), name)
        except sqlite3.Error:
            return None


def _postgres_versions(uri: str, name: str) -> list[VersionInfo] | None:
    try:
        import psycopg2
    except ImportError:
        return None
    parsed = urlparse(uri)
    if parsed.scheme not in ("postgresql", "postgres", "postgresql+psycopg2"):
        return None  # another driver's options: the client knows them
    dsn = parsed._replace(scheme="postgresql").geturl()
    try:
        connection = psycopg2.connect(dsn, connect_timeout=10)
    except psycopg2.Error:
        return None
    try:
        connection.set_session(readonly=True, autocommit=True)
        with connection.cursor() as cursor:

            def query(sql: str, args: Sequence[Any]) -> Any:
                cursor.execute(sql.format(p="%s"), args)
                return cursor.fetchall()

            return _sql_versions(query, name)
    except psycopg2.Error:
        return None
    finally:
        connection.close()


def _sql_versions(
    query: Callable[[str, Sequence[Any]], Any], name: str
) -> list[VersionInfo] | None:
    revision = list(query("SELECT version_num FROM alembic_version", ()))
    if len(revision) != 1 or revision[0][0] not in VERIFIED_REVISIONS:
        return None
    ws = DEFAULT_WORKSPACE
    rows = list(query(_VERSIONS, (ws, name, STAGE_DELETED_INTERNAL)))
    tags: dict[str, dict[str, Any]] = {}
    for version, key, value in query(_TAGS, (ws, name)):
        tags.setdefault(str(version), {})[key] = value
    aliases = {alias: str(version) for alias, version in query(_ALIASES, (ws, name))}

    def run_metrics(run_id: str) -> dict[str, float] | None:
        if not list(query(_RUN, (run_id,))):
            return None  # the client's get_run fails: no metrics
        return {
            key: float("nan") if is_nan else float(value)
            for key, value, is_nan in query(_METRICS, (run_id,))
        }

    return _assemble(
        [
            {
                "name": row[0],
                "version": row[1],
                "created": row[2],
                "run_id": row[3],
                "description": row[4],
                "tags": tags.get(str(row[1]), {}),
            }
            for row in rows
        ],
        aliases,
        run_metrics,
    )


# -- both --------------------------------------------------------------------------------------


def _assemble(
    found: list[dict[str, Any]],
    aliases: dict[str, str],
    run_metrics: Callable[[str], dict[str, float] | None],
) -> list[VersionInfo]:
    """`registry.versions`'s answer from the raw rows: newest first, aliases per version, the
    run's metrics without the gate's."""
    by_version: dict[str, list[str]] = {}
    for alias, number in aliases.items():
        by_version.setdefault(str(number), []).append(alias)
    out = []
    for v in sorted(found, key=lambda v: int(v["version"]), reverse=True):
        run_id = v["run_id"]
        metrics: dict[str, float] = {}
        if run_id:
            run = run_metrics(run_id) or {}
            metrics = {k: m for k, m in run.items() if not k.startswith(GATE_METRICS)}
        out.append(
            VersionInfo(
                name=v["name"],
                version=str(v["version"]),
                aliases=sorted(by_version.get(str(v["version"]), [])),
                tags=dict(v["tags"]),
                run_id=run_id,
                created=int(v["created"] or 0),
                metrics=metrics,
                description=v["description"] or "",
            )
        )
    return out
