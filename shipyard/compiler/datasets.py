"""`datasets:` -> DatasetStep: columns, keys and the rules compiled to Great Expectations."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from shipyard.compiler.expectations import CompiledExpectation, compile_expectations
from shipyard.compiler.plan import StepBase
from shipyard.spec.datasets import CategoryType
from shipyard.spec.datasets import ColumnType as ColumnTypeSpec

if TYPE_CHECKING:
    from shipyard.compiler.compile import CompileContext

ColumnType = str | list[str | int]
"""A declared column type: a type name (int, float, str, bool, datetime, date) or categories."""


def column_type(declared: ColumnTypeSpec) -> ColumnType:
    return list(declared.category) if isinstance(declared, CategoryType) else declared


class DatasetStep(StepBase):
    """validate-dataset: one data file checked against its expectations, then versioned."""

    kind: Literal["dataset"] = "dataset"
    path: str = Field(description="File path relative to the project folder.")
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
        yield DatasetStep(
            id=f"dataset.{name}",
            name=name,
            description=dataset.description
            or f"Validate dataset '{name}' with Great Expectations, then version it with DVC.",
            tasks=("validate", "version") if dataset.versioning.enabled else ("validate",),
            schedule=dataset.schedule,
            path=dataset.path,
            format=dataset.resolved_format or "parquet",
            columns={column: column_type(t) for column, t in dataset.columns.items()},
            key=dataset.key_columns,
            timestamp=dataset.timestamp,
            expectations=compile_expectations(dataset),
            version=dataset.versioning.enabled,
        )
