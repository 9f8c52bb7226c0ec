"""Databases Shipyard's servers need: created on first use, with a clear error when unreachable."""

from __future__ import annotations

from shipyard.errors import ServiceUnavailable


def ensure_postgres_database(url: str, purpose: str) -> None:
    """Create a server's PostgreSQL database if it does not exist yet."""
    import asyncio
    from urllib.parse import urlsplit

    parts = urlsplit(url.replace("+asyncpg", "").replace("+psycopg2", ""))
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
            hint="check the database URL in the profile and that PostgreSQL is running",
        ) from exc
