"""SQL datasets on the real PostgreSQL: the validate-dataset flow checks a table or a query in
the database, versions it by content hash or parquet snapshot, refuses bad input with nothing
versioned, and train-model reads the dataset through the same engine."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from support import MODEL_SPEC, SPEC, compile_spec, free_port, psql, run_flow, throwaway_database

from shipyard.compiler import DatasetStep, Plan
from shipyard.data.versioning import VersionCatalog
from shipyard.errors import DataValidationFailed, ServiceUnavailable, ShipyardError
from shipyard.settings import StateLayout

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]
ROWS = 400


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throw-away database with the demo customers in table `customers`; its URL."""
    if psql("SELECT 1", check=False).returncode != 0:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    import sqlalchemy as sa

    from shipyard.demo_data import write_customers

    data = tmp_path_factory.mktemp("warehouse") / "customers.parquet"
    write_customers(data, rows=ROWS)
    with throwaway_database("shipyard_sql", create=True) as name:
        engine = sa.create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}")
        try:
            pd.read_parquet(data).to_sql("customers", engine, index=False)
        finally:
            engine.dispose()
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"


def _spec(sql: str, database: str, versioning: str = "", extra: str = "") -> str:
    """The test spec with dataset `customers` read from `sql:` (YAML flow mapping body)."""
    text = SPEC.format(port=free_port())
    text = text.replace("    path: data/customers.parquet\n", f"    sql: {{{sql}}}\n{versioning}")
    return text.replace("  local:\n", f"  local:\n    databases: {{warehouse: '{database}'}}\n") + (
        extra
    )


def _plan(make_project: Callable[..., Path], text: str) -> Plan:
    return compile_spec(make_project(rows=0, spec=text))


def _validate(plan: Plan) -> Any:
    from flows.validate_dataset import validate_dataset

    return run_flow(plan, validate_dataset, dataset="customers")


def _versions(plan: Plan) -> list[Any]:
    return VersionCatalog(StateLayout(plan.runtime.state_dir).catalog).versions("customers")


def _copy(warehouse: str, table: str) -> str:
    """A copy of the customers table for one test to change."""
    database = warehouse.rsplit("/", 1)[1]
    psql(
        f'DROP TABLE IF EXISTS "{table}"; CREATE TABLE "{table}" AS SELECT * FROM customers',
        database,
    )
    return database


def _failure(state: Any) -> ShipyardError:
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, ShipyardError), error
    return error


def test_a_table_is_validated_in_the_database_and_versioned_by_content_hash(
    make_project: Callable[..., Path], warehouse: str, capsys: pytest.CaptureFixture[str]
) -> None:
    database = _copy(warehouse, "customers_hash")
    plan = _plan(make_project, _spec("connection: warehouse, table: customers_hash", warehouse))

    first = _validate(plan)

    assert first.is_completed(), first.result(raise_on_failure=False)
    summary = first.result()
    assert summary.rows == ROWS and summary.new_version is True
    [version] = _versions(plan)
    assert version.md5 == summary.md5 and version.rows == ROWS
    assert version.path.endswith("table 'customers_hash'")
    assert version.remote == warehouse
    # no copy of the data anywhere: the hash is the version
    assert not (Path(plan.runtime.project_dir) / ".shipyard-snapshots").exists()

    again = _validate(plan).result()
    assert again.md5 == summary.md5 and again.new_version is False
    # listed like file versions; a hash is no copy, so it cannot be restored
    from shipyard.data.versioning import print_versions, restore_command

    print_versions(plan, "customers")
    assert version.short in capsys.readouterr().out
    with pytest.raises(ShipyardError, match="versioned by the content hash"):
        restore_command(plan, "customers", version.short)

    # the same rows in another order are the same content; one changed value is a new version
    psql(
        "WITH moved AS (DELETE FROM customers_hash WHERE customer_id % 2 = 0 RETURNING *) "
        "INSERT INTO customers_hash SELECT * FROM moved",
        database,
    )
    reordered = _validate(plan).result()
    assert reordered.md5 == summary.md5 and reordered.new_version is False
    psql(
        "UPDATE customers_hash SET monthly_charges = monthly_charges + 1 WHERE customer_id = "
        "(SELECT min(customer_id) FROM customers_hash)",
        database,
    )
    changed = _validate(plan).result()
    assert changed.md5 != summary.md5 and changed.new_version is True
    assert len(_versions(plan)) == 2


def test_a_failed_rule_is_reported_with_sample_values_computed_in_sql(
    make_project: Callable[..., Path], warehouse: str
) -> None:
    database = _copy(warehouse, "customers_bad")
    psql(
        "UPDATE customers_bad SET monthly_charges = -12.5 WHERE customer_id IN "
        "(SELECT customer_id FROM customers_bad ORDER BY customer_id LIMIT 3)",
        database,
    )
    plan = _plan(make_project, _spec("connection: warehouse, table: customers_bad", warehouse))

    error = _failure(_validate(plan))

    assert isinstance(error, DataValidationFailed)
    assert "between(monthly_charges, 0.0..500.0)" in error.message and "-12.5" in error.message
    assert f"{warehouse} table 'customers_bad' ({ROWS} rows)" in error.message
    assert _versions(plan) == []


def test_a_query_is_validated_and_versioned_as_a_parquet_snapshot_on_the_dvc_remote(
    make_project: Callable[..., Path], warehouse: str
) -> None:
    query = "query: \"SELECT * FROM customers WHERE region <> 'west'\", connection: warehouse"
    plan = _plan(make_project, _spec(query, warehouse, "    versioning: {mode: snapshot}\n"))
    expected = int(
        psql(
            "SELECT count(*) FROM customers WHERE region <> 'west'", warehouse.rsplit("/", 1)[1]
        ).stdout
    )

    state = _validate(plan)

    assert state.is_completed(), state.result(raise_on_failure=False)
    summary = state.result()
    assert summary.rows == expected < ROWS
    snapshot = Path(plan.runtime.project_dir) / ".shipyard-snapshots" / "customers.parquet"
    frame = pd.read_parquet(snapshot)
    assert len(frame) == expected and set(frame["region"]) <= {"north", "south", "east"}
    assert frame["customer_id"].is_monotonic_increasing  # sorted by the key: stable bytes
    [version] = _versions(plan)
    assert version.md5 == summary.md5 and version.path == ".shipyard-snapshots/customers.parquet"
    remote = StateLayout(plan.runtime.state_dir).dvc_remote
    assert any(p.name == summary.md5[2:] for p in remote.rglob("*"))
    # the same result again is the same snapshot, byte for byte
    assert _validate(plan).result().new_version is False


def test_a_failing_query_names_the_dataset_the_engine_and_the_database_and_versions_nothing(
    make_project: Callable[..., Path], warehouse: str
) -> None:
    query = 'query: "SELECT customer_id, no_such_column FROM customers", connection: warehouse'
    plan = _plan(make_project, _spec(query, warehouse, "    versioning: {mode: snapshot}\n"))

    error = _failure(_validate(plan))

    assert "dataset 'customers' (engine sql, database " + warehouse in error.message
    assert 'column "no_such_column" does not exist' in error.message
    assert error.resource == "dataset.customers"
    assert _versions(plan) == []
    assert not (Path(plan.runtime.project_dir) / ".shipyard-snapshots").exists()


def test_a_query_without_rows_is_refused_and_nothing_is_versioned(
    make_project: Callable[..., Path], warehouse: str
) -> None:
    query = 'query: "SELECT * FROM customers WHERE customer_id < 0", connection: warehouse'
    plan = _plan(make_project, _spec(query, warehouse))

    error = _failure(_validate(plan))

    assert "the query returned no rows" in error.message and "engine sql" in error.message
    assert _versions(plan) == []


def test_a_table_without_a_declared_column_gets_the_missing_columns_report(
    make_project: Callable[..., Path], warehouse: str
) -> None:
    database = _copy(warehouse, "customers_narrow")
    psql("ALTER TABLE customers_narrow DROP COLUMN email", database)
    plan = _plan(make_project, _spec("connection: warehouse, table: customers_narrow", warehouse))

    error = _failure(_validate(plan))

    assert isinstance(error, DataValidationFailed)
    first = error.message.splitlines()[0]
    assert first.startswith(f"column 'email' is not in {warehouse} table 'customers_narrow'; ")
    assert "the table has: customer_id, event_time" in first
    assert _versions(plan) == []


def test_a_database_that_is_down_is_named_with_the_fix_and_its_password_hidden(
    make_project: Callable[..., Path], warehouse: str
) -> None:
    password = secrets.token_hex(8)  # made here: no credential in the repository
    down = f"postgresql://postgres:{password}@127.0.0.1:{free_port()}/nothing"
    plan = _plan(make_project, _spec("connection: warehouse, table: customers", down))

    error = _failure(_validate(plan))

    assert isinstance(error, ServiceUnavailable)
    assert "dataset 'customers' (engine sql): cannot connect to the database" in error.message
    assert "Connection refused" in error.message or "connection refused" in error.message
    assert password not in error.message and "postgres:***@127.0.0.1" in error.message
    assert error.hint and "`profiles.local.databases.warehouse`" in error.hint
    assert _versions(plan) == []


def test_train_model_reads_the_sql_dataset_and_records_its_hash_as_the_data_version(
    make_project: Callable[..., Path], warehouse: str
) -> None:
    import mlflow

    from flows.train_model import train_model

    text = _spec("connection: warehouse, table: customers", warehouse)
    plan = _plan(make_project, text + MODEL_SPEC.format(threshold=">= 0.5"))
    step = plan.named(DatasetStep, "customers")
    assert step.sql is not None and step.sql.table == "customers"

    state = run_flow(plan, train_model, model="churn")

    assert state.is_completed(), state.result(raise_on_failure=False)
    summary = state.result()
    [version] = _versions(plan)
    assert summary.data_version == version.md5
    mlflow.set_tracking_uri(plan.blocks.mlflow.tracking_uri)
    run = mlflow.MlflowClient().get_run(summary.run_id)
    assert run.data.tags["shipyard.data_version"] == version.md5
    [logged] = run.inputs.dataset_inputs
    assert logged.dataset.digest == version.md5[: len(logged.dataset.digest)]
    assert "table 'customers'" in logged.dataset.source
