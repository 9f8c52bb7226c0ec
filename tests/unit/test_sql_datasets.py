"""SQL datasets without a server: the spec's rules (E210-E212, E610), the compiled step, the
SQL type names of the column type checks, and the streamed content hash on SQLite."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from shipyard.compiler import CompiledExpectation, DatasetStep
from shipyard.compiler.datasets import SqlSource
from shipyard.data.quality import QualityReport
from shipyard.data.sql import Shape, SqlDataset, _sqlalchemy_url, sql_expectations
from shipyard.errors import ShipyardError

from .specs import check, compile_text, dataset_step, only


def spec(sql: str, profile: str = "", extra: str = "") -> str:
    return (
        "project: shop\n"
        + (f"profiles:\n  local:\n{profile}" if profile else "")
        + "datasets:\n  orders:\n"
        + sql
        + "    schema: {order_id: int, amount: float}\n"
        + "    expectations: [{not_null: order_id}]\n"
        + extra
    )


WAREHOUSE = "    databases: {warehouse: 'postgresql://app@db:5432/shop'}\n"


def test_a_table_or_a_select_on_a_named_or_written_database_is_valid() -> None:
    assert check(spec("    sql: {connection: warehouse, table: orders}\n", WAREHOUSE)) == []
    query = "    sql: {connection: 'sqlite:///shop.db', query: 'select * from orders'}\n"
    assert check(spec(query)) == []


def test_both_path_and_sql_is_e210_and_neither_is_e210_too() -> None:
    both = only(spec("    path: data/o.csv\n    sql: {connection: 'sqlite:///x.db', table: o}\n"))
    assert (both.code, both.message) == ("E210", "dataset 'orders' gives both `path:` and `sql:`")
    neither = only(spec(""))
    assert (neither.code, neither.message) == (
        "E210",
        "dataset 'orders' has neither `path:` nor `sql:`",
    )


def test_a_misspelt_path_is_only_the_unknown_key() -> None:
    assert [d.code for d in check(spec("    pth: data/o.csv\n"))] == ["E101"]


@pytest.mark.parametrize(
    "sql",
    [
        "{connection: 'sqlite:///x.db'}",
        "{connection: 'sqlite:///x.db', table: o, query: 'SELECT 1'}",
    ],
)
def test_sql_needs_exactly_one_of_table_and_query(sql: str) -> None:
    found = only(spec(f"    sql: {sql}\n"))
    assert found.code == "E211" and "exactly one of `table:` and `query:`" in found.message


def test_a_query_that_is_no_select_is_e211_at_the_query() -> None:
    found = only(spec("    sql: {connection: 'sqlite:///x.db', query: 'DELETE FROM o'}\n"))
    assert found.code == "E211" and found.message.endswith("the `sql.query` is not a SELECT")
    assert found.span is not None and found.span.line == 4


def test_an_unknown_connection_name_is_e212_naming_the_profiles_databases() -> None:
    found = only(spec("    sql: {connection: wharehouse, table: orders}\n", WAREHOUSE))
    assert found.code == "E212"
    assert found.message == (
        "dataset 'orders': connection 'wharehouse' is not a database of profile 'local' "
        "(its databases: warehouse)"
    )
    assert found.hint == "did you mean 'warehouse'?"
    bare = only(spec("    sql: {connection: warehouse, table: orders}\n"))
    assert bare.code == "E212" and "(its databases: none)" in bare.message
    assert bare.hint is not None and "`profiles.local.databases:`" in bare.hint


def test_a_feature_view_on_a_sql_dataset_is_e610() -> None:
    features = (
        "features:\n  entities:\n    customer: {join_key: order_id}\n"
        "  views:\n    basket: {entity: customer, source: orders, features: [amount]}\n"
    )
    found = only(spec("    sql: {connection: 'sqlite:///x.db', table: o}\n", extra=features))
    assert found.code == "E610" and "a SQL dataset" in found.message


def test_the_step_carries_the_profiles_database_with_its_tls_and_the_version_mode(
    tmp_path: Path,
) -> None:
    profile = WAREHOUSE + "    postgres: {sslmode: require}\n"
    text = spec(
        "    sql: {connection: warehouse, table: orders}\n    versioning: {mode: snapshot}\n",
        profile,
    )
    step = dataset_step(compile_text(tmp_path, text), "orders")
    assert step.path is None and step.version_mode == "snapshot"
    assert step.sql == SqlSource(
        connection="warehouse",
        url="postgresql://app@db:5432/shop?sslmode=require",
        table="orders",
    )
    assert step.tasks == ("validate", "version")


def test_a_file_dataset_keeps_its_path_and_hash_mode(tmp_path: Path) -> None:
    step = dataset_step(compile_text(tmp_path, spec("    path: data/o.csv\n")), "orders")
    assert (step.path, step.sql, step.version_mode) == ("data/o.csv", None, "hash")


def _step(sql: SqlSource, key: tuple[str, ...] = ()) -> DatasetStep:
    return DatasetStep(
        id="dataset.orders",
        name="orders",
        description="orders",
        tasks=("validate", "version"),
        sql=sql,
        format="parquet",
        columns={"order_id": "int", "name": "str", "placed": "datetime", "paid": "bool"},
        key=list(key),
        expectations=[
            CompiledExpectation(
                type="expect_column_values_to_be_in_type_list",
                kwargs={"column": c, "type_list": ["int64"]},
                rule=f"schema({c})",
                column=c,
            )
            for c in ("order_id", "name", "placed", "paid")
        ],
    )


def _types(expectations: list[CompiledExpectation]) -> dict[str, list[str]]:
    return {str(e.column): list(e.kwargs["type_list"]) for e in expectations}


def test_type_checks_name_postgresql_types_and_a_parameterized_type_counts_as_its_base() -> None:
    step = _step(SqlSource(connection="w", url="postgresql://db/x", table="orders"))
    shape = Shape(["order_id", "name"], 3, {"order_id": "BIGINT", "name": "VARCHAR(40)"})
    types = _types(sql_expectations(step, "postgresql", False, shape))
    assert types["order_id"] == ["SMALLINT", "INTEGER", "BIGINT"]
    assert types["name"] == ["TEXT", "VARCHAR", "CHAR", "VARCHAR(40)"]
    assert types["placed"] == ["TIMESTAMP WITHOUT TIME ZONE", "TIMESTAMP WITH TIME ZONE"]
    # a parameterized type of another family is not let in
    shape = Shape(["order_id"], 3, {"order_id": "NUMERIC(10, 2)"})
    assert (
        "NUMERIC(10, 2)"
        not in _types(sql_expectations(step, "postgresql", False, shape))["order_id"]
    )


def test_a_sqlite_query_also_accepts_the_affinity_its_dates_and_booleans_get() -> None:
    step = _step(SqlSource(connection="w", url="sqlite:///x.db", query="SELECT * FROM o"))
    shape = Shape([], 1, {})
    assert _types(sql_expectations(step, "sqlite", True, shape))["paid"] == [
        "BOOLEAN",
        "INTEGER",
        "NUMERIC",
    ]
    assert _types(sql_expectations(step, "sqlite", False, shape))["paid"] == ["BOOLEAN"]


def test_postgresql_urls_open_through_psycopg2() -> None:
    assert _sqlalchemy_url("postgresql://a@h/d") == "postgresql+psycopg2://a@h/d"
    assert _sqlalchemy_url("postgres://a@h/d") == "postgresql+psycopg2://a@h/d"
    assert _sqlalchemy_url("postgresql+asyncpg://a@h/d") == "postgresql+psycopg2://a@h/d"
    assert _sqlalchemy_url("postgresql+pg8000://a@h/d") == "postgresql+pg8000://a@h/d"
    assert _sqlalchemy_url("sqlite+aiosqlite:///x.db") == "sqlite:///x.db"


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    db = tmp_path / "shop.db"
    with closing(sqlite3.connect(db)) as connection, connection:
        connection.execute("CREATE TABLE orders (order_id INTEGER, name TEXT)")
        connection.executemany(
            "INSERT INTO orders VALUES (?, ?)", [(i, f"n{i}") for i in range(1, 101)]
        )
    return db


def test_the_streamed_hash_ignores_row_order_and_sees_every_change(shop: Path) -> None:
    url = f"sqlite:///{shop}"
    table = SqlDataset(_step(SqlSource(connection=url, url=url, table="orders")), "local")
    first = table.content_hash()
    assert first.rows == 100 and first.size > 0
    reversed_ = SqlDataset(
        _step(SqlSource(connection=url, url=url, query="SELECT * FROM orders ORDER BY 1 DESC")),
        "local",
    )
    assert reversed_.content_hash() == first
    with closing(sqlite3.connect(shop)) as connection, connection:
        connection.execute("UPDATE orders SET name = 'changed' WHERE order_id = 7")
    assert table.content_hash().digest != first.digest


def test_an_empty_result_and_a_bad_query_are_refusals_naming_the_dataset(shop: Path) -> None:
    url = f"sqlite:///{shop}"
    empty = SqlSource(connection=url, url=url, query="SELECT * FROM orders WHERE order_id < 0")
    with pytest.raises(ShipyardError, match="the query returned no rows") as refused:
        SqlDataset(_step(empty), "local").shape()
    assert refused.value.resource == "dataset.orders"
    bad = SqlSource(connection=url, url=url, table="nothing_here")
    with pytest.raises(ShipyardError, match=r"\(engine sql, database sqlite:///.*no such table"):
        SqlDataset(_step(bad), "local").shape()


def test_the_snapshot_is_sorted_by_the_key_and_a_failed_export_leaves_no_file(
    shop: Path, tmp_path: Path
) -> None:
    import pandas as pd

    url = f"sqlite:///{shop}"
    query = SqlSource(connection=url, url=url, query="SELECT * FROM orders ORDER BY 1 DESC")
    out = tmp_path / "snap.parquet"
    assert SqlDataset(_step(query, key=("order_id",)), "local").write_snapshot(out) == 100
    assert pd.read_parquet(out)["order_id"].tolist() == list(range(1, 101))
    broken = SqlSource(connection=url, url=url, table="nothing_here")
    with pytest.raises(ShipyardError):
        SqlDataset(_step(broken), "local").write_snapshot(tmp_path / "broken.parquet")
    assert not (tmp_path / "broken.parquet").exists()


def test_the_missing_columns_report_names_what_holds_the_columns() -> None:
    report = QualityReport(dataset="orders", rows=1, missing_columns=["x"], file_columns=["a"])
    assert report.missing_text("db table 'orders'", "the table") == (
        "column 'x' is not in db table 'orders'; the table has: a"
    )
    assert (
        report.missing_text("'data/o.csv'") == "column 'x' is not in 'data/o.csv'; the file has: a"
    )
