"""`profiles.<name>.postgres.sslmode` against the real local PostgreSQL (127.0.0.1:5432): the
modes that allow a plain connection connect; `require` on a server without SSL fails, and the
error names the database and the setting. (On a server with SSL on, `require` connects.)"""

from __future__ import annotations

import pytest
from support import psql, throwaway_database

from shipyard.databases import ensure_postgres_database, with_tls
from shipyard.errors import ServiceUnavailable
from shipyard.serving.control import ControlStore
from shipyard.serving.predlog import check_database

pytestmark = pytest.mark.integration

SERVER_SSL = psql("SHOW ssl").stdout.strip() == "on"


def url(database: str, sslmode: str, driver: str = "") -> str:
    base = f"postgresql{driver}://postgres@127.0.0.1:5432/{database}"
    return with_tls(base, {"sslmode": sslmode})


@pytest.mark.parametrize("sslmode", ["disable", "prefer"])
def test_modes_that_allow_plain_connections_connect(sslmode: str) -> None:
    with throwaway_database("shipyard_tls") as database:
        ensure_postgres_database(url(database, sslmode, "+asyncpg"), "Prefect")  # asyncpg
        assert psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}'").stdout.strip()
        check_database(url(database, sslmode), "churn-api")  # psycopg2: tables created
        store = ControlStore(url(database, sslmode))
        try:
            assert store.revision("churn-api") == 0
        finally:
            store.close()


@pytest.mark.skipif(SERVER_SSL, reason="the server accepts SSL: require connects")
def test_require_on_a_server_without_ssl_names_the_database_and_the_setting() -> None:
    with throwaway_database("shipyard_tls", create=True) as database:
        with pytest.raises(ServiceUnavailable) as prefect:
            ensure_postgres_database(url(database, "require", "+asyncpg"), "Prefect")
        assert f"Prefect database '{database}'" in str(prefect.value)
        assert "postgres.sslmode" in (prefect.value.hint or "")

        with pytest.raises(ServiceUnavailable) as log:
            check_database(url(database, "require"), "churn-api")
        assert f"/{database}?sslmode=require" in str(log.value)
        assert "does not support SSL" in str(log.value)
        assert "postgres.sslmode" in (log.value.hint or "")

        store = ControlStore(url(database, "require"))
        try:
            with pytest.raises(ServiceUnavailable) as control:
                store.revision("churn-api")
        finally:
            store.close()
        assert database in str(control.value) and "postgres.sslmode" in (control.value.hint or "")


@pytest.mark.skipif(not SERVER_SSL, reason="the server has SSL off")
def test_require_connects_to_a_server_with_ssl() -> None:
    with throwaway_database("shipyard_tls", create=True) as database:
        check_database(url(database, "require"), "churn-api")
