"""SQL datasets: a database table or query validated in place through Great Expectations' SQL
execution, read for training, and versioned by a content hash or a parquet snapshot.

Great Expectations runs the checks as SQL on the dataset's own connection (a table asset or a
query asset): the database computes each metric and only the results, with a few sample bad
values, come back; the rows are never downloaded to validate them.

A version is either a content hash of the result (`versioning.mode: hash`), computed in the
database on PostgreSQL as an order-independent sum of the md5 of each row's text and by
streaming the rows elsewhere (SQLite), or the result exported as parquet and pushed to the DVC
remote like a dataset file (`mode: snapshot`). Nothing is versioned when anything fails.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from shipyard.compiler import CompiledExpectation, DatasetStep
from shipyard.compiler.datasets import SqlSource
from shipyard.data.quality import QualityReport, check_batch
from shipyard.data.versioning import DataVersion, DvcStore, VersionCatalog, version_file
from shipyard.databases import is_postgres
from shipyard.errors import ServiceUnavailable, ShipyardError
from shipyard.retry import retrying
from shipyard.secrets import redact_url, resolve

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("shipyard.data.sql")
T = TypeVar("T")

CONNECT_TIMEOUT = 10
"""Seconds one connection attempt may take (the attempts are retried with back-off)."""
CHUNK_ROWS = 50_000
"""Rows fetched at a time when the result is streamed (snapshot, SQLite hash, reads)."""

POSTGRES_TYPES: dict[str, list[str]] = {
    "int": ["SMALLINT", "INTEGER", "BIGINT"],
    "float": ["REAL", "DOUBLE PRECISION", "NUMERIC", "SMALLINT", "INTEGER", "BIGINT"],
    "str": ["TEXT", "VARCHAR", "CHAR"],
    "bool": ["BOOLEAN"],
    "datetime": ["TIMESTAMP WITHOUT TIME ZONE", "TIMESTAMP WITH TIME ZONE"],
    "date": ["DATE"],
}
"""PostgreSQL's type names (as SQLAlchemy writes them) accepted for each declared column type.
GX compares them with the column's type as text, so a type with parameters (VARCHAR(40),
NUMERIC(10, 2)) counts as its base name: `sql_expectations` adds the parameterized names a
result actually has."""
SQL_TYPES: dict[str, list[str]] = {
    "int": ["SMALLINT", "INTEGER", "BIGINT"],
    "float": ["REAL", "FLOAT", "NUMERIC", "SMALLINT", "INTEGER", "BIGINT"],
    "str": ["TEXT", "VARCHAR", "CHAR"],
    "bool": ["BOOLEAN"],
    "datetime": ["TIMESTAMP", "DATETIME"],
    "date": ["DATE"],
}
"""SQLAlchemy type class names accepted for each declared column type on other databases (GX
checks the column's reflected type is an instance of one; a name a dialect lacks is skipped)."""
SQLITE_QUERY_TYPES: dict[str, list[str]] = {
    "bool": ["INTEGER", "NUMERIC"],
    "datetime": ["NUMERIC", "TEXT"],
    "date": ["NUMERIC", "TEXT"],
}
"""Also accepted on a SQLite query: its result is typed by SQLite's column affinities only
(INTEGER, REAL, NUMERIC, TEXT), so booleans and dates cannot show their declared types."""


@dataclass(frozen=True)
class Shape:
    """What the database reports of a result before it is validated."""

    columns: list[str]
    rows: int
    types: dict[str, str]
    """Column -> its type as SQLAlchemy writes it for the dialect (e.g. VARCHAR(40))."""


@dataclass(frozen=True)
class ContentHash:
    """A SQL result's version: the digest, its row count and its size as text (bytes)."""

    digest: str
    rows: int
    size: int


class SqlDataset:
    """One SQL dataset on its connection: the place every database call of this module goes
    through, so each failure becomes the same clear error naming the dataset and the database."""

    def __init__(self, step: DatasetStep, profile: str) -> None:
        assert step.sql is not None, step.id
        self.step = step
        self.sql: SqlSource = step.sql
        self.profile = profile
        written = resolve(self.sql.url) or ""
        self.url = _sqlalchemy_url(written)
        self.shown = redact_url(written)
        """The database as the spec gives it, password hidden: what messages name."""

    # -- connections and errors -----------------------------------------------------------

    def engine(self) -> Engine:
        import sqlalchemy as sa

        connect_args: dict[str, Any] = {}
        if is_postgres(self.url):
            connect_args["connect_timeout"] = CONNECT_TIMEOUT
        elif self.url.startswith("sqlite"):
            connect_args["timeout"] = CONNECT_TIMEOUT
        try:
            return sa.create_engine(self.url, connect_args=connect_args)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise ShipyardError(
                f"dataset '{self.step.name}' (engine sql): '{self.shown}' is not a database URL "
                f"Shipyard can open: {exc}",
                hint=self._fix_connection(),
                resource=self.step.id,
            ) from exc

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection, attempts retried with back-off while the database refuses them; a
        database that stays unreachable is a ServiceUnavailable naming it and the fix."""
        import sqlalchemy as sa

        engine = self.engine()
        try:
            try:
                connection = retrying(
                    engine.connect,
                    what=f"connect to {self.shown}",
                    retry_on=(sa.exc.OperationalError,),
                )
            except sa.exc.OperationalError as exc:
                raise ServiceUnavailable(
                    f"dataset '{self.step.name}' (engine sql): cannot connect to the database "
                    f"{self.shown}: {_db_message(exc)}",
                    hint=f"start the database, or fix {self._fix_connection()}",
                    resource=self.step.id,
                ) from exc
            with connection:
                yield connection
        finally:
            engine.dispose()

    def _fix_connection(self) -> str:
        connection = self.sql.connection
        if "://" in connection:
            return f"`sql.connection` of dataset '{self.step.name}' in pipelines.yaml"
        return f"`profiles.{self.profile}.databases.{connection}` in pipelines.yaml"

    def run(self, what: str, call: Callable[[Connection], T]) -> T:
        """`call` on a connection; a database error (bad SQL, a missing table) names the
        dataset, the engine, the database and the database's own message."""
        import sqlalchemy as sa

        with self.connect() as connection:
            try:
                return call(connection)
            except sa.exc.DBAPIError as exc:
                raise ShipyardError(
                    f"dataset '{self.step.name}' (engine sql, database {self.shown}): {what} "
                    f"failed: {_db_message(exc)}",
                    hint=f"fix `datasets.{self.step.name}.sql` in pipelines.yaml (or the "
                    "database); nothing was versioned",
                    resource=self.step.id,
                ) from exc

    # -- the result as SQL ----------------------------------------------------------------

    def relation(self, connection: Connection) -> str:
        """The dataset as something to select from: the quoted table, or the query as a
        subquery."""
        if self.sql.table is not None:
            quote = connection.dialect.identifier_preparer.quote
            return ".".join(quote(part) for part in self.sql.table.split("."))
        return f"({_bare(self.sql.query or '')}) AS shipyard_result"

    def shape(self) -> Shape:
        """The result's columns, their types and its row count, from the database; a result
        without rows is a refusal."""
        import sqlalchemy as sa

        def probe(connection: Connection) -> Shape:
            relation = self.relation(connection)
            columns = list(connection.execute(_text(f"SELECT * FROM {relation} LIMIT 0")).keys())
            rows = connection.execute(_text(f"SELECT count(*) FROM {relation}")).scalar_one()
            if self.sql.table is not None:
                schema, _, table = self.sql.table.rpartition(".")
                reflected = sa.inspect(connection).get_columns(table, schema=schema or None)
            else:  # a query's types: those of a temporary view of it, gone with the rollback
                try:
                    connection.execute(
                        _text(
                            f"CREATE TEMPORARY VIEW shipyard_probe AS {_bare(self.sql.query or '')}"
                        )
                    )
                    reflected = sa.inspect(connection).get_columns("shipyard_probe")
                finally:
                    connection.rollback()  # the probe's statements only read; the view goes
            types = {
                str(c["name"]): str(c["type"].compile(dialect=connection.dialect))
                for c in reflected
            }
            return Shape(columns, int(rows), types)

        shape = self.run(f"reading the {self.sql.what}", probe)
        if shape.rows == 0:
            raise ShipyardError(
                f"dataset '{self.step.name}' (engine sql, database {self.shown}): the "
                f"{self.sql.what} returned no rows",
                hint="check that the table is loaded and the query's conditions; an empty "
                "dataset is neither validated nor versioned",
                resource=self.step.id,
            )
        return shape

    # -- validate -------------------------------------------------------------------------

    def validate(self) -> QualityReport:
        """Every expectation in one Great Expectations validation computed in the database."""
        shape = self.shape()
        dialect = "postgresql" if is_postgres(self.url) else self.url.split(":", 1)[0]
        expectations = sql_expectations(self.step, dialect, self.sql.query is not None, shape)

        def sql_batch(context: Any) -> Any:
            source = self._data_source(context)
            if self.sql.table is not None:
                schema, _, table = self.sql.table.rpartition(".")
                # `schema_name` only when given: GX deprecates it (warning even for None)
                where = {"schema_name": schema} if schema else {}
                asset = source.add_table_asset(self.step.name, table_name=table, **where)
            else:
                asset = source.add_query_asset(self.step.name, query=_bare(self.sql.query or ""))
            return asset.add_batch_definition_whole_table("all").get_batch()

        try:
            return check_batch(sql_batch, expectations, self.step.name, shape.columns, shape.rows)
        except ShipyardError:
            raise
        except Exception as exc:  # GX wraps the driver's errors in its own types
            raise ShipyardError(
                f"dataset '{self.step.name}' (engine sql, database {self.shown}): Great "
                f"Expectations could not validate the {self.sql.what}: {_db_message(exc)}",
                hint=f"check `datasets.{self.step.name}.sql` in pipelines.yaml; nothing was "
                "versioned",
                resource=self.step.id,
            ) from exc

    def _data_source(self, context: Any) -> Any:
        # a query is materialized as a temporary table in the database for the validation:
        # GX reports no column types of a bare query asset (its type checks would all error)
        temp = self.sql.query is not None
        if is_postgres(self.url):
            return context.data_sources.add_postgres(
                "shipyard",
                connection_string=self.url,
                create_temp_table=temp,
                kwargs={"connect_args": {"connect_timeout": CONNECT_TIMEOUT}},
            )
        if self.url.startswith("sqlite"):
            return context.data_sources.add_sqlite(
                "shipyard", connection_string=self.url, create_temp_table=temp
            )
        return context.data_sources.add_sql(
            "shipyard", connection_string=self.url, create_temp_table=temp
        )

    # -- read -----------------------------------------------------------------------------

    def select(self, connection: Connection, ordered: bool = False) -> str:
        """SELECT of the whole result; `ordered` sorts it (by the key columns, else by every
        column) so the same content always streams in the same order."""
        relation = self.relation(connection)
        sql = f"SELECT * FROM {relation}"
        if ordered:
            quote = connection.dialect.identifier_preparer.quote
            if self.step.key:
                sql += " ORDER BY " + ", ".join(quote(c) for c in self.step.key)
            else:
                width = len(connection.execute(_text(f"{sql} LIMIT 0")).keys())
                sql += " ORDER BY " + ", ".join(str(i) for i in range(1, width + 1))
        return sql

    def frames(self, ordered: bool = False) -> Iterator[pd.DataFrame]:
        """The result in chunks of CHUNK_ROWS rows, declared dates parsed as UTC datetimes."""
        import pandas as pd

        dates = {
            c: {"utc": True} for c, t in self.step.columns.items() if t in ("datetime", "date")
        }
        with self.connect() as connection:
            import sqlalchemy as sa

            try:
                streamed = connection.execution_options(stream_results=True)
                yield from pd.read_sql(
                    _text(self.select(connection, ordered)),
                    streamed,
                    parse_dates=dates or None,
                    chunksize=CHUNK_ROWS,
                )
            except sa.exc.DBAPIError as exc:
                raise ShipyardError(
                    f"dataset '{self.step.name}' (engine sql, database {self.shown}): reading "
                    f"the {self.sql.what} failed: {_db_message(exc)}",
                    hint=f"fix `datasets.{self.step.name}.sql` in pipelines.yaml (or the database)",
                    resource=self.step.id,
                ) from exc

    def read(self) -> pd.DataFrame:
        """The whole result as one frame."""
        import pandas as pd

        chunks = list(self.frames())
        if not chunks or not sum(len(c) for c in chunks):
            raise ShipyardError(
                f"dataset '{self.step.name}' (engine sql, database {self.shown}): the "
                f"{self.sql.what} returned no rows",
                hint="check that the table is loaded and the query's conditions",
                resource=self.step.id,
            )
        return pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]

    # -- version --------------------------------------------------------------------------

    def content_hash(self) -> ContentHash:
        """The result's content hash: in the database on PostgreSQL, streamed elsewhere."""
        if is_postgres(self.url):
            return self.run("hashing the result", self._postgres_hash)
        return self.run("hashing the result", self._streamed_hash)

    def _postgres_hash(self, connection: Connection) -> ContentHash:
        # each row's md5 split into two signed 64-bit halves, summed: the same rows in any order
        # give the same sums, and the database returns three numbers whatever the table's size
        relation = self.relation(connection)
        halves = "('x' || substr(md5(r::text), {0}, 16))::bit(64)::bigint::numeric"
        row = connection.execute(
            _text(
                f"SELECT count(*), coalesce(sum(length(r::text)), 0), "
                f"coalesce(sum({halves.format(1)}), 0), coalesce(sum({halves.format(17)}), 0) "
                f"FROM (SELECT * FROM {relation}) AS r"
            )
        ).one()
        columns = self._described_columns(connection)
        return _digest(columns, int(row[0]), int(row[1]), (int(row[2]), int(row[3])))

    def _streamed_hash(self, connection: Connection) -> ContentHash:
        rows = size = 0
        sums = [0, 0]
        result = connection.execution_options(stream_results=True).execute(
            _text(self.select(connection))
        )
        for chunk in iter(lambda: result.fetchmany(CHUNK_ROWS), []):
            for record in chunk:
                text = json.dumps(list(record), default=str, ensure_ascii=False)
                digest = hashlib.md5(text.encode(), usedforsecurity=False).digest()
                sums[0] += int.from_bytes(digest[:8], "big", signed=True)
                sums[1] += int.from_bytes(digest[8:], "big", signed=True)
                rows += 1
                size += len(text)
        return _digest(self._described_columns(connection), rows, size, (sums[0], sums[1]))

    def _described_columns(self, connection: Connection) -> list[str]:
        result = connection.execute(_text(f"SELECT * FROM {self.relation(connection)} LIMIT 0"))
        return list(result.keys())

    def write_snapshot(self, file: Path) -> int:
        """Export the result, sorted, as parquet (streamed chunk by chunk) into `file`;
        returns its rows. A failed export leaves no file behind."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        file.parent.mkdir(parents=True, exist_ok=True)
        rows = 0
        writer: pq.ParquetWriter | None = None
        try:
            for chunk in self.frames(ordered=True):
                table = pa.Table.from_pandas(chunk, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(file, table.schema)
                writer.write_table(table.cast(writer.schema))
                rows += len(chunk)
        except BaseException:
            if writer is not None:
                writer.close()
            file.unlink(missing_ok=True)
            raise
        if writer is not None:
            writer.close()
        if rows == 0:
            file.unlink(missing_ok=True)
            raise ShipyardError(
                f"dataset '{self.step.name}' (engine sql, database {self.shown}): the "
                f"{self.sql.what} returned no rows",
                hint="nothing was versioned",
                resource=self.step.id,
            )
        return rows

    def describe(self) -> str:
        """`postgresql://user@host/db table 'customers'` (or `... query`), password hidden."""
        return f"{self.shown} {self.sql.what}"


def sql_expectations(
    step: DatasetStep, dialect: str, is_query: bool, shape: Shape
) -> list[CompiledExpectation]:
    """The dataset's expectations with each column type check naming the dialect's SQL types
    instead of the pandas dtypes the plan holds."""
    out = []
    for expectation in step.expectations:
        declared = step.columns.get(expectation.column or "")
        if expectation.type == "expect_column_values_to_be_in_type_list" and isinstance(
            declared, str
        ):
            if dialect == "postgresql":
                names = list(POSTGRES_TYPES[declared])
                actual = shape.types.get(expectation.column or "", "")
                if actual.partition("(")[0].strip() in names:  # VARCHAR(40) is a VARCHAR
                    names.append(actual)
            else:
                names = list(SQL_TYPES[declared])
                if dialect == "sqlite" and is_query:
                    names += SQLITE_QUERY_TYPES.get(declared, [])
            kwargs = {**expectation.kwargs, "type_list": list(dict.fromkeys(names))}
            expectation = expectation.model_copy(update={"kwargs": kwargs})
        out.append(expectation)
    return out


def version_sql(
    step: DatasetStep,
    profile: str,
    store: DvcStore,
    catalog: VersionCatalog,
    snapshot: Path | None,
    validated_rows: int,
    flow_run_id: str | None = None,
) -> tuple[DataVersion, bool]:
    """Record the version of a validated SQL dataset: its content hash in the catalog, or (with
    `snapshot`, the file to write) its parquet snapshot tracked and pushed by DVC. A result whose
    row count is no longer the validated one changed meanwhile: refused, nothing recorded."""
    dataset = SqlDataset(step, profile)
    if snapshot is not None:
        # the last snapshot stays whole until the new one is complete and has the validated rows
        partial = snapshot.with_name(f".{snapshot.name}.partial")
        rows = dataset.write_snapshot(partial)
        if rows != validated_rows:
            partial.unlink(missing_ok=True)
            raise _changed(dataset, validated_rows, rows)
        partial.replace(snapshot)
        return version_file(store, catalog, step.name, snapshot, rows, flow_run_id)
    found = dataset.content_hash()
    if found.rows != validated_rows:
        raise _changed(dataset, validated_rows, found.rows)
    version = DataVersion(
        dataset=step.name,
        md5=found.digest,
        size=found.size,
        rows=found.rows,
        path=dataset.describe(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        flow_run_id=flow_run_id,
        remote=dataset.shown,
        pointer=json.dumps(
            {
                "engine": "sql",
                "mode": "hash",
                "database": dataset.shown,
                "table": step.sql.table if step.sql else None,
                "query": step.sql.query if step.sql else None,
            }
        ),
    )
    is_new = catalog.record(version)
    if not is_new:
        version = next(v for v in catalog.versions(step.name) if v.md5 == version.md5)
    return version, is_new


def _changed(dataset: SqlDataset, validated: int, now: int) -> ShipyardError:
    return ShipyardError(
        f"dataset '{dataset.step.name}' (engine sql, database {dataset.shown}): the "
        f"{dataset.sql.what} changed while it was validated ({validated} rows validated, "
        f"{now} rows now)",
        hint="run validate-dataset again once the writes are done; nothing was versioned",
        resource=dataset.step.id,
    )


def read_snapshot(step: DatasetStep, file: Path) -> pd.DataFrame:
    """A SQL dataset's last snapshot, the rows that were validated and versioned."""
    import pandas as pd

    if not file.exists():
        raise ShipyardError(
            f"dataset '{step.name}' has no snapshot yet ({file} is missing)",
            hint=f"run `shipyard run validate-dataset {step.name}`: it validates the result and "
            "writes the snapshot",
            resource=step.id,
        )
    return pd.read_parquet(file)


def _digest(columns: list[str], rows: int, size: int, sums: tuple[int, int]) -> ContentHash:
    text = json.dumps({"columns": columns, "rows": rows, "size": size, "sums": list(sums)})
    return ContentHash(hashlib.md5(text.encode(), usedforsecurity=False).hexdigest(), rows, size)


def _sqlalchemy_url(url: str) -> str:
    """The URL SQLAlchemy opens synchronously: a PostgreSQL URL without a driver, or with an
    async one (asyncpg, which Prefect's URLs name), through psycopg2 (the driver installed;
    SQLAlchemy 2.1's default is psycopg 3)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    base, _, driver = scheme.partition("+")
    if base in ("postgres", "postgresql"):
        keep = driver and driver not in ("asyncpg", "psycopg_async")
        scheme = "postgresql+" + (driver if keep else "psycopg2")
    if base == "sqlite" and driver == "aiosqlite":
        scheme = "sqlite"
    return f"{scheme}{sep}{rest}"


def _bare(query: str) -> str:
    """The query without the trailing semicolon a subquery cannot have."""
    return query.strip().rstrip(";").strip()


def _text(sql: str) -> Any:
    import sqlalchemy as sa

    return sa.text(sql)


def _db_message(exc: BaseException) -> str:
    """The database's own message (the driver's, without SQLAlchemy's statement dump)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return " ".join(lines[:3]) if lines else type(exc).__name__
