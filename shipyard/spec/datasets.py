"""`datasets:` files with a schema, expectations (Great Expectations) and DVC versioning."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Discriminator, Field, Tag, WithJsonSchema, model_validator

from shipyard.spec.base import Cron, SpecModel

ScalarType = Literal["int", "float", "str", "bool", "datetime", "date"]
SCALAR_TYPES: tuple[str, ...] = ("int", "float", "str", "bool", "datetime", "date")
FORMATS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "jsonl"}


class CategoryType(SpecModel):
    """A categorical column: every value must be one of the listed categories."""

    category: list[str | int] = Field(min_length=1, description="The allowed values.")


def _column_type_tag(value: Any) -> str | None:
    if isinstance(value, str | CategoryType):
        return "scalar" if isinstance(value, str) else "category"
    if isinstance(value, dict):
        return "category"
    return None


ColumnType = Annotated[
    Annotated[ScalarType, Tag("scalar")] | Annotated[CategoryType, Tag("category")],
    Discriminator(
        _column_type_tag,
        custom_error_type="column_type",
        custom_error_message="a column type is one of int, float, str, bool, datetime, date "
        "or {category: [values]}",
    ),
]


class ColumnSelection(SpecModel):
    """One column, several columns, or {columns: [...], mostly: 0.95}."""

    columns: list[str] = Field(min_length=1, description="Column names.")
    mostly: float | None = Field(
        None, gt=0, le=1, description="Fraction of rows that must pass (1.0 when unset)."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"columns": [value]}
        if isinstance(value, list):
            return {"columns": value}
        if not isinstance(value, dict):
            raise ValueError(
                "expected a column name, a list of column names, or {columns: [...], mostly: 0.95}"
            )
        return value


Columns = Annotated[
    ColumnSelection,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
                {
                    "type": "object",
                    "properties": {
                        "columns": {
                            "type": "array",
                            "items": {"type": "string"},
                            "minItems": 1,
                            "description": "Column names.",
                        },
                        "mostly": {
                            "type": "number",
                            "exclusiveMinimum": 0,
                            "maximum": 1,
                            "description": "Fraction of rows that must pass (1.0 when unset).",
                        },
                    },
                    "required": ["columns"],
                    "additionalProperties": False,
                },
            ]
        }
    ),
]


class _ColumnCheck(SpecModel):
    column: str = Field(description="The column checked.")
    mostly: float | None = Field(None, gt=0, le=1, description="Fraction of rows that must pass.")


class BetweenArgs(_ColumnCheck):
    """Arguments of `between`: the column and its bounds."""

    min: float | None = Field(None, description="Smallest allowed value (inclusive).")
    max: float | None = Field(None, description="Largest allowed value (inclusive).")

    @model_validator(mode="after")
    def _bounds(self) -> BetweenArgs:
        if self.min is None and self.max is None:
            raise ValueError("give at least one of min and max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class InSetArgs(_ColumnCheck):
    """Arguments of `in_set`: the column and its allowed values."""

    values: list[str | int | float | bool] = Field(min_length=1, description="Allowed values.")


class RegexArgs(_ColumnCheck):
    """Arguments of `regex`: the column and the pattern."""

    pattern: str = Field(description="Regular expression every value must match.")


class RowCountArgs(SpecModel):
    """Arguments of `row_count`: the bounds on the number of rows."""

    min: int | None = Field(None, ge=0, description="Fewest rows allowed.")
    max: int | None = Field(None, ge=0, description="Most rows allowed.")


GX_TYPE_PATTERN = r"^expect_[a-z0-9_]+$"


class GxArgs(SpecModel):
    """Arguments of `gx`: a Great Expectations expectation type and its keyword arguments."""

    type: str = Field(
        pattern=GX_TYPE_PATTERN,
        description="Any Great Expectations expectation type, "
        "e.g. expect_column_mean_to_be_between.",
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Its keyword arguments.")


class NotNull(SpecModel):
    """`- not_null: [a, b]`: the columns have no missing values."""

    not_null: Columns = Field(description="These columns have no missing values.")


class Unique(SpecModel):
    """`- unique: [a]`: each column has no repeated values."""

    unique: Columns = Field(description="Each of these columns has no repeated values.")


class UniqueTogether(SpecModel):
    """`- unique_together: [a, b]`: the combination of the columns is unique."""

    unique_together: list[str] = Field(
        min_length=2, description="The combination of these columns is unique."
    )


class Between(SpecModel):
    """`- between: {column: a, min: 0, max: 9}`: values lie within the bounds."""

    between: BetweenArgs = Field(description="Values lie within [min, max].")


class InSet(SpecModel):
    """`- in_set: {column: a, values: [x, y]}`: values are drawn from a fixed set."""

    in_set: InSetArgs = Field(description="Values are drawn from a fixed set.")


class Regex(SpecModel):
    """`- regex: {column: a, pattern: ...}`: string values match a regular expression."""

    regex: RegexArgs = Field(description="String values match a regular expression.")


class RowCount(SpecModel):
    """`- row_count: {min: 100}`: the number of rows lies within the bounds."""

    row_count: RowCountArgs = Field(description="The number of rows lies within [min, max].")


class Gx(SpecModel):
    """`- gx: {type: expect_..., kwargs: {...}}`: any Great Expectations expectation."""

    gx: GxArgs = Field(description="A Great Expectations expectation by its type name.")


EXPECTATION_KINDS: dict[str, type[SpecModel]] = {
    "not_null": NotNull,
    "unique": Unique,
    "unique_together": UniqueTogether,
    "between": Between,
    "in_set": InSet,
    "regex": Regex,
    "row_count": RowCount,
    "gx": Gx,
}


def _expectation_tag(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        return str(next(iter(value)))
    if isinstance(value, SpecModel):
        return next(iter(type(value).model_fields))
    return None


Expectation = Annotated[
    Annotated[NotNull, Tag("not_null")]
    | Annotated[Unique, Tag("unique")]
    | Annotated[UniqueTogether, Tag("unique_together")]
    | Annotated[Between, Tag("between")]
    | Annotated[InSet, Tag("in_set")]
    | Annotated[Regex, Tag("regex")]
    | Annotated[RowCount, Tag("row_count")]
    | Annotated[Gx, Tag("gx")],
    Discriminator(
        _expectation_tag,
        custom_error_type="expectation",
        custom_error_message="an expectation is a mapping with one key, e.g. `- not_null: [id]`",
    ),
]


class VersioningSpec(SpecModel):
    """Versioning of the dataset after it validates: its file with DVC, or a SQL result."""

    enabled: bool = Field(True, description="Version the dataset after it validates.")
    mode: Literal["hash", "snapshot"] = Field(
        "hash",
        description="SQL datasets only. hash: record a content hash of the result, computed in "
        "the database. snapshot: export the result as parquet and push it to the DVC remote.",
    )


class SqlSourceSpec(SpecModel):
    """A dataset read from a database: one table, or the result of one query."""

    connection: str = Field(
        min_length=1,
        description="A name under the active profile's `databases:`, or a SQLAlchemy URL "
        "(postgresql://user@host:5432/db, sqlite:///file.db).",
    )
    table: str | None = Field(
        None, min_length=1, description="The table (or view) read whole; `schema.table` allowed."
    )
    query: str | None = Field(
        None, min_length=1, description="A SELECT whose result is the dataset."
    )


class DatasetSpec(SpecModel):
    """A data file with its schema, quality expectations and versioning."""

    salvage_stand_ins: ClassVar[dict[str, Any]] = {"format": "parquet"}
    """An invalid `format` (already reported) stands in as parquet, so E205 stays quiet."""
    salvage_item_stand_ins: ClassVar[dict[str, Any]] = {"expectations": {"row_count": {}}}
    """An invalid expectation stands in as one that names no column, so rules stay quiet."""
    salvage_entry_stand_ins: ClassVar[dict[str, Any]] = {"schema": "float"}
    """A column of an invalid type (already reported) stands in as a float, so the dataset and
    its columns are still defined for the rules that refer to them."""

    description: str | None = Field(None, description="What the data is, for people.")
    path: str | None = Field(
        None,
        description="File path, relative to pipelines.yaml (a file dataset; or give `sql:`).",
        min_length=1,
    )
    sql: SqlSourceSpec | None = Field(
        None, description="The database table or query the dataset is (instead of `path:`)."
    )
    engine: Literal["auto", "pandas", "spark"] = Field(
        "auto",
        description="File datasets: the engine that validates and reads the file. auto: spark "
        "when the profile's `spark.min_size` is set and the file is at least that big, else "
        "pandas.",
    )
    format: Literal["parquet", "csv", "json", "jsonl"] | None = Field(
        None, description="File format; inferred from the file suffix when unset."
    )
    key: str | list[str] | None = Field(
        None, description="Entity key column(s): unique and never null."
    )
    timestamp: str | None = Field(
        None, description="Event-time column (datetime); used for time-based splits and features."
    )
    columns: dict[str, ColumnType] = Field(
        alias="schema",
        min_length=1,
        description="Column name -> type (int, float, str, bool, datetime, date, "
        "{category: [...]}). Columns not listed are allowed; listed ones must exist.",
    )
    expectations: list[Expectation] = Field(
        default_factory=list, description="Data-quality rules checked with Great Expectations."
    )
    versioning: VersioningSpec = Field(
        default_factory=VersioningSpec, description=VersioningSpec.__doc__
    )
    schedule: Cron | None = Field(
        None, description="Cron schedule of the validate-dataset deployment (unset: on demand)."
    )

    @property
    def resolved_format(self) -> str | None:
        if self.path is None:
            return self.format
        return self.format or FORMATS.get(PurePosixPath(self.path).suffix.lower())

    @property
    def key_columns(self) -> list[str]:
        if self.key is None:
            return []
        return [self.key] if isinstance(self.key, str) else list(self.key)
