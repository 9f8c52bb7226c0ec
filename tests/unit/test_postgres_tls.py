"""`profiles.<name>.postgres`: the TLS parameters every PostgreSQL URL of the plan carries, and
how they reach libpq, asyncpg and Prefect's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.compiler import ServiceStep
from shipyard.databases import (
    libpq_url,
    prefect_database_env,
    tls_hint,
    tls_parameters,
    with_tls,
)
from shipyard.runtime.server import environment_for
from shipyard.spec.profiles import PostgresSettings

from .specs import check, compile_text, replaced

pytestmark = pytest.mark.usefixtures("no_state_dir_override")

REQUIRE = {"sslmode": "require"}
VERIFY = {"sslmode": "verify-full", "sslrootcert": "/etc/ssl/ca.pem"}
TLS_ENV = "PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_"


def test_parameters_are_added_to_postgresql_urls_only() -> None:
    assert with_tls("postgresql://u@db:5432/logs", VERIFY) == (
        "postgresql://u@db:5432/logs?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem"
    )
    assert with_tls("postgresql+asyncpg://u@db/p?x=1", REQUIRE) == (
        "postgresql+asyncpg://u@db/p?x=1&sslmode=require"
    )
    assert with_tls("postgres://u@db/p", REQUIRE) == "postgres://u@db/p?sslmode=require"
    for other in ("sqlite:////state/logs.sqlite", "${secret:log-db-url}", "redis://r:6379/0"):
        assert with_tls(other, REQUIRE) == other
    assert with_tls("postgresql://u@db/p", {}) == "postgresql://u@db/p"


def test_a_url_keeps_its_own_sslmode_and_secret_references() -> None:
    own = "postgresql://u@db/p?sslmode=disable"
    assert with_tls(own, VERIFY) == own + "&sslrootcert=/etc/ssl/ca.pem"
    assert with_tls("postgresql+asyncpg://u@db/p?ssl=prefer", REQUIRE) == (
        "postgresql+asyncpg://u@db/p?ssl=prefer"
    )
    secret = "postgresql://u:${secret:pg-password}@db/p"
    assert with_tls(secret, REQUIRE) == secret + "?sslmode=require"


def test_certificate_files_are_made_absolute_from_the_project(tmp_path: Path) -> None:
    settings = PostgresSettings(
        sslmode="verify-ca", sslrootcert="certs/ca.pem", sslcert="/abs/c.pem", sslkey="c.key"
    )
    assert tls_parameters(settings, tmp_path) == {
        "sslmode": "verify-ca",
        "sslrootcert": str(tmp_path / "certs/ca.pem"),
        "sslcert": "/abs/c.pem",
        "sslkey": str(tmp_path / "c.key"),
    }
    assert tls_parameters(PostgresSettings(), tmp_path) == {}


def test_libpq_reads_sqlalchemy_urls_without_their_driver() -> None:
    assert libpq_url("postgresql+asyncpg://u@db/p?ssl=require") == (
        "postgresql://u@db/p?sslmode=require"
    )
    assert libpq_url("postgresql+psycopg2://u@db/p") == "postgresql://u@db/p"


def test_prefect_gets_ssl_modes_in_the_url_and_certificates_in_its_tls_settings() -> None:
    assert prefect_database_env("postgresql+asyncpg://u@db/p?sslmode=require") == {
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": "postgresql+asyncpg://u@db/p?ssl=require"
    }
    verified = prefect_database_env(with_tls("postgresql+asyncpg://u@db/p", VERIFY))
    assert verified == {
        TLS_ENV + "ENABLED": "true",
        TLS_ENV + "CHECK_HOSTNAME": "true",
        TLS_ENV + "CA_FILE": "/etc/ssl/ca.pem",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": "postgresql+asyncpg://u@db/p",
    }
    client = {"sslmode": "verify-ca", "sslcert": "/c.pem", "sslkey": "/c.key"}
    env = prefect_database_env(with_tls("postgresql+asyncpg://u@db/p", client))
    assert env[TLS_ENV + "CHECK_HOSTNAME"] == "false"
    assert (env[TLS_ENV + "CERT_FILE"], env[TLS_ENV + "KEY_FILE"]) == ("/c.pem", "/c.key")
    plain = "postgresql+asyncpg://u@db/p"
    assert prefect_database_env(plain) == {"PREFECT_SERVER_DATABASE_CONNECTION_URL": plain}


def test_a_failed_tls_connection_gets_a_hint_naming_the_setting() -> None:
    refused = "server does not support SSL, but SSL was required"
    assert "postgres.sslmode" in tls_hint(refused, "fallback")
    assert "sslrootcert" in tls_hint("certificate verify failed", "fallback")
    assert tls_hint("connection refused", "fallback") == "fallback"


SPEC = """\
project: demo
profile: ${PROFILE:-tls}
profiles:
  tls:
    kind: scale-out
    prefect: {database_url: "postgresql+asyncpg://postgres@db:5432/prefect"}
    mlflow: {backend_store_uri: "postgresql://postgres@db:5432/mlflow"}
    serving:
      log_database: postgresql://postgres@db:5432/serving
      control_database: postgresql://postgres@db:5432/control?sslmode=disable
    postgres: {sslmode: verify-full, sslrootcert: certs/ca.pem}
  local: {}
datasets:
  customers:
    path: data/customers.csv
    schema: {customer_id: int, tenure: int, churned: bool}
    expectations: [{not_null: customer_id}]
models:
  churn:
    task: classification
    dataset: customers
    target: churned
    features: [tenure]
    estimator: {class: sklearn.linear_model.LogisticRegression}
services:
  churn-api:
    model: churn
    auth:
      api_keys:
        app: {key: "${secret:churn-api-key}"}
"""


def test_every_postgresql_url_of_the_plan_carries_the_profile_tls(tmp_path: Path) -> None:
    plan = compile_text(tmp_path, SPEC)
    tls = f"sslmode=verify-full&sslrootcert={tmp_path}/certs/ca.pem"
    step = plan.step("service.churn-api", ServiceStep)
    assert step.log_database == f"postgresql://postgres@db:5432/serving?{tls}"
    assert step.control_database == (  # its own sslmode kept
        f"postgresql://postgres@db:5432/control?sslmode=disable&sslrootcert={tmp_path}/certs/ca.pem"
    )
    assert plan.prefect.database_url == f"postgresql+asyncpg://postgres@db:5432/prefect?{tls}"
    assert plan.mlflow_server is not None
    assert plan.mlflow_server.backend_store_uri == f"postgresql://postgres@db:5432/mlflow?{tls}"
    env = environment_for(plan, plan.prefect.database_url)
    assert env[TLS_ENV + "CA_FILE"] == f"{tmp_path}/certs/ca.pem"
    assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] == (
        "postgresql+asyncpg://postgres@db:5432/prefect"
    )


def test_a_profile_without_postgres_settings_leaves_the_urls_alone(tmp_path: Path) -> None:
    text = replaced(SPEC, ("    postgres: {sslmode: verify-full, sslrootcert: certs/ca.pem}\n", ""))
    step = compile_text(tmp_path, text).step("service.churn-api", ServiceStep)
    assert step.log_database == "postgresql://postgres@db:5432/serving"
    local = compile_text(tmp_path, SPEC, {"PROFILE": "local"})
    assert local.step("service.churn-api", ServiceStep).log_database.startswith("sqlite:///")


def test_a_client_certificate_without_its_key_is_reported() -> None:
    text = replaced(SPEC, ("sslrootcert: certs/ca.pem}", "sslcert: certs/client.pem}"))
    [diagnostic] = check(text)
    assert diagnostic.code == "E103" and "both `sslcert` and `sslkey`" in diagnostic.message
    text = replaced(SPEC, ("sslmode: verify-full", "sslmode: always"))
    assert [d.code for d in check(text)] == ["E103"]


FEAST_SPEC = """\
project: demo
profiles:
  tls:
    kind: scale-out
    feast: {registry: "postgresql://postgres@db:5432/feast"}
    postgres: {sslmode: require}
profile: tls
datasets:
  customers:
    path: data/customers.csv
    timestamp: event_time
    schema: {customer_id: int, event_time: datetime, tenure: int, churned: bool}
    expectations: [{not_null: customer_id}]
features:
  entities:
    customer: {join_key: customer_id}
  views:
    profile: {entity: customer, source: customers, features: [tenure]}
  services:
    churn_v1: [profile]
"""


def test_the_feast_sql_registry_carries_the_profile_tls(tmp_path: Path) -> None:
    from shipyard.compiler import FeatureRepoStep
    from shipyard.compiler.features import SqlRegistry

    [repo] = compile_text(tmp_path, FEAST_SPEC).steps_of(FeatureRepoStep)
    assert isinstance(repo.registry, SqlRegistry)
    assert repo.registry.path == "postgresql+psycopg2://postgres@db:5432/feast?sslmode=require"
