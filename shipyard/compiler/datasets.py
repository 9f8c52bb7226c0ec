"""`datasets:` -> DatasetStep: columns, keys and the rules compiled to Great Expectations."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from shipyard.compiler.expectations import CompiledExpectation, compile_expectations
from shipyard.compiler.plan import FrozenModel, StepBase
from shipyard.compiler.profiles import SparkPlan, compile_spark, postgres_url
from shipyard.spec.datasets import CategoryType, DatasetSpec, SqlSourceSpec
from shipyard.spec.datasets import ColumnType as ColumnTypeSpec

if TYPE_CHECKING:
    from shipyard.compiler.compile import CompileContext

ColumnType = str | list[str | int]
"""A declared column type: a type name (int, float, str, bool, datetime, date) or categories."""


def column_type(declared: ColumnTypeSpec) -> ColumnType:
    return list(declared.category) if isinstance(declared, CategoryType) else declared


class SqlSource(FrozenModel):
    """Where a SQL dataset is read: the database and a table or a query in it."""

    connection: str = Field(
        description="The connection as written: a name under the profile's `databases:`, or a URL."
    )
    url: str = Field(
        description="The database's SQLAlchemy URL (TLS parameters added; secrets still "
        "${secret:...} references, resolved at run time)."
    )
    table: str | None = Field(None, description="The table (or view) read whole.")
    query: str | None = Field(None, description="The SELECT whose result is the dataset.")

    @property
    def what(self) -> str:
        """`table 'x'` or `query`, for messages."""
        return f"table '{self.table}'" if self.table else "query"


class DatasetStep(StepBase):
    """validate-dataset: one data file or SQL result checked against its expectations, then
    versioned."""

    kind: Literal["dataset"] = "dataset"
    path: str | None = Field(
        None, description="File path relative to the project folder (None: a SQL dataset)."
    )
    sql: SqlSource | None = Field(None, description="The database table or query (SQL datasets).")
    engine: Literal["auto", "pandas", "spark"] = Field(
        "auto", description="The engine that validates and reads a file dataset."
    )
    spark: SparkPlan | None = Field(
        None, description="The profile's Spark, for a file dataset that may be read on it."
    )
    version_mode: Literal["hash", "snapshot"] = Field(
        "hash",
        description="How a SQL dataset is versioned: a content hash of the result, or a "
        "parquet snapshot pushed to the DVC remote.",
    )
    format: str
    columns: dict[str, ColumnType] = Field(description="Column -> type name, or categories.")
    key: list[str] = Field(default_factory=list)
    timestamp: str | None = None
    expectations: list[CompiledExpectation] = Field(default_factory=list)
    version: bool = Field(True, description="Version the file with DVC after it validates.")

    flow: ClassVar[str | None] = "validate-dataset"
    parameter: ClassVar[str] = "dataset"
    noun: ClassVar[str] = "dataset"

    @property
    def done(self) -> str:
        """The task after which the dataset's file can be read by other steps."""
        return self.tasks[-1]


def compile_datasets(ctx: CompileContext) -> Iterator[DatasetStep]:
    for name, dataset in ctx.spec.datasets.items():
        what = "its query result" if dataset.sql else "it"
        yield DatasetStep(
            id=f"dataset.{name}",
            name=name,
            description=dataset.description
            or f"Validate dataset '{name}' with Great Expectations, then version {what}"
            + (" with DVC." if dataset.sql is None else "."),
            tasks=("validate", "version") if dataset.versioning.enabled else ("validate",),
            schedule=dataset.schedule,
            path=dataset.path,
            sql=compile_sql_source(ctx, dataset.sql) if dataset.sql else None,
            engine=dataset.engine,
            spark=_spark_of(ctx, dataset),
            version_mode=dataset.versioning.mode,
            format=dataset.resolved_format or "parquet",
            columns={column: column_type(t) for column, t in dataset.columns.items()},
            key=dataset.key_columns,
            timestamp=dataset.timestamp,
            expectations=compile_expectations(dataset),
            version=dataset.versioning.enabled,
        )


def _spark_of(ctx: CompileContext, dataset: DatasetSpec) -> SparkPlan | None:
    """The Spark a file dataset may run on: the profile's; for `engine: spark` without one, a
    local Spark; none for SQL and pandas datasets."""
    if dataset.path is None or dataset.engine == "pandas":
        return None
    spark = compile_spark(ctx.profile)
    if spark is None and dataset.engine == "spark":
        return SparkPlan()
    return spark


def compile_sql_source(ctx: CompileContext, sql: SqlSourceSpec) -> SqlSource:
    """The dataset's connection resolved through the profile's `databases:` (validation made
    sure a name is there), with the profile's PostgreSQL TLS settings."""
    url = ctx.profile.databases.get(sql.connection, sql.connection)
    return SqlSource(
        connection=sql.connection,
        url=postgres_url(ctx.spec, ctx.project_dir, url),
        table=sql.table,
        query=sql.query,
    )
