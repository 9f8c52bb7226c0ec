"""Databases Shipyard's servers need: created on first use, with a clear error when unreachable;
and the TLS parameters (`profiles.<name>.postgres`) every PostgreSQL URL carries.

The profile's TLS settings are written into each PostgreSQL URL as libpq query parameters
(`?sslmode=require&sslrootcert=...`) when the plan is compiled (`with_tls`), so every connection
made from the plan (psycopg2, asyncpg, SQLAlchemy for MLflow and Feast, pg_dump) uses them.
Prefect's server reads its database through SQLAlchemy and asyncpg, which take TLS differently:
`prefect_database_env` translates the parameters into Prefect's settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

from shipyard.errors import ServiceUnavailable

if TYPE_CHECKING:
    from shipyard.spec.profiles import PostgresSettings

TLS_PARAMETERS = ("sslmode", "sslrootcert", "sslcert", "sslkey")
"""The libpq connection parameters `profiles.<name>.postgres` sets."""
_FILES = ("sslrootcert", "sslcert", "sslkey")
_VERIFYING = ("verify-ca", "verify-full")


def is_postgres(url: str) -> bool:
    """Whether a database URL is PostgreSQL's (postgresql://, postgres://, postgresql+driver://)."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    return scheme.split("+", 1)[0] in ("postgresql", "postgres")


def tls_parameters(settings: PostgresSettings, project_dir: Path) -> dict[str, str]:
    """The libpq parameters of the profile's `postgres:` block, files made absolute (relative
    paths are relative to the project folder, where pipelines.yaml is)."""
    out: dict[str, str] = {}
    for name in TLS_PARAMETERS:
        value = getattr(settings, name)
        if value is None:
            continue
        if name in _FILES:
            path = Path(value).expanduser()
            value = str(path if path.is_absolute() else project_dir / path)
        out[name] = value
    return out


def with_tls(url: str, parameters: Mapping[str, str]) -> str:
    """A PostgreSQL URL with the TLS `parameters` it does not set itself added to its query;
    any other URL (SQLite, a whole-URL ${secret:...} reference) as it is.

    A URL's own parameter wins: `?sslmode=disable` stays disable whatever the profile says
    (asyncpg's `ssl=` counts as an sslmode).
    """
    if not parameters or not is_postgres(url):
        return url
    base, _, query = url.partition("?")
    present = {key for key, _ in parse_qsl(query, keep_blank_values=True)}
    if "ssl" in present:
        present.add("sslmode")
    added = {key: value for key, value in parameters.items() if key not in present}
    if not added:
        return url
    extra = urlencode(added, safe="/")
    return f"{base}?{query}&{extra}" if query else f"{base}?{extra}"


def libpq_url(url: str) -> str:
    """A PostgreSQL URL as libpq and asyncpg's own parser read it: no SQLAlchemy driver
    suffix, and SQLAlchemy-asyncpg's `ssl=<mode>` written as `sslmode=<mode>`."""
    scheme, sep, rest = url.partition("://")
    base, _, query = rest.partition("?")
    pairs = [("sslmode" if k == "ssl" else k, v) for k, v in parse_qsl(query, True)]
    url = f"{scheme.split('+', 1)[0]}{sep}{base}"
    return f"{url}?{urlencode(pairs)}" if pairs else url


def prefect_database_env(url: str) -> dict[str, str]:
    """The PREFECT_SERVER_DATABASE_* variables that make a Prefect server use `url` with its TLS
    parameters.

    Prefect connects through SQLAlchemy's asyncpg dialect, which passes the URL's query on as
    keyword arguments: libpq's `sslmode` becomes asyncpg's `ssl=<mode>` (the same modes), and
    certificate files go to Prefect's own TLS settings
    (PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_*). Those always verify the server's
    certificate, so `require` with a certificate file is as strict as `verify-ca`.
    """
    base, _, query = url.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    tls = {key: value for key, value in pairs if key in TLS_PARAMETERS}
    kept = [(key, value) for key, value in pairs if key not in TLS_PARAMETERS]
    mode = tls.get("sslmode")
    files = {key: tls[key] for key in _FILES if tls.get(key)}
    env: dict[str, str] = {}
    if mode in _VERIFYING or (files and mode not in ("disable", "allow", "prefer")):
        prefix = "PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_"
        env[prefix + "ENABLED"] = "true"
        env[prefix + "CHECK_HOSTNAME"] = "true" if mode == "verify-full" else "false"
        for key, setting in (("sslrootcert", "CA_FILE"), ("sslcert", "CERT_FILE")):
            if key in files:
                env[prefix + setting] = files[key]
        if "sslkey" in files:
            env[prefix + "KEY_FILE"] = files["sslkey"]
    elif mode is not None and not any(key == "ssl" for key, _ in kept):
        kept.append(("ssl", mode))
    env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = f"{base}?{urlencode(kept)}" if kept else base
    return env


def tls_hint(error: str, fallback: str) -> str:
    """The hint for a failed connection: about `postgres.sslmode` when TLS is what failed."""
    lowered = error.lower()
    if "ssl" not in lowered and "tls" not in lowered and "certificate" not in lowered:
        return fallback
    if "does not support ssl" in lowered or "rejected ssl" in lowered:
        return (
            "the server does not accept TLS but the connection requires it: enable ssl on the "
            "server, or set `profiles.<profile>.postgres.sslmode` (or the URL's ?sslmode=) to "
            "prefer or disable"
        )
    return (
        "TLS to the server failed: check `profiles.<profile>.postgres` (sslmode, sslrootcert, "
        "sslcert, sslkey) or the URL's ?sslmode=, and the server's certificate"
    )


def ensure_postgres_database(url: str, purpose: str) -> None:
    """Create a server's PostgreSQL database if it does not exist yet (with the URL's TLS)."""
    import asyncio
    from urllib.parse import urlsplit

    parts = urlsplit(libpq_url(url))
    name = parts.path.lstrip("/")

    async def create() -> None:
        import asyncpg

        admin = parts._replace(path="/postgres").geturl()
        connection = await asyncpg.connect(admin, timeout=10)
        try:
            exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname=$1", name)
            if not exists:
                await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    try:
        asyncio.run(create())
    except (OSError, Exception) as exc:  # asyncpg raises its own hierarchy plus OSError
        raise ServiceUnavailable(
            f"cannot reach PostgreSQL for the {purpose} database '{name}': {exc}",
            hint=tls_hint(
                str(exc), "check the database URL in the profile and that PostgreSQL is running"
            ),
        ) from exc
