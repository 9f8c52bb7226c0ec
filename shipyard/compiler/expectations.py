"""Spec expectation rules -> Great Expectations expectation configurations (plain dicts)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import Field

from shipyard.compiler.plan import FrozenModel
from shipyard.spec import DatasetSpec
from shipyard.spec.datasets import (
    Between,
    CategoryType,
    Gx,
    InSet,
    NotNull,
    Regex,
    RowCount,
    Unique,
    UniqueTogether,
)


class CompiledExpectation(FrozenModel):
    """One Great Expectations expectation, traced back to the rule written in the spec."""

    type: str
    kwargs: dict[str, Any] = Field(description="The expectation's arguments, as GX names them.")
    rule: str = Field(description="The rule as written in the spec, e.g. not_null(customer_id).")
    column: str | None = None

    def columns(self) -> list[str]:
        """The columns the expectation reads (one, a list, or a pair; none for a table rule)."""
        kwargs = self.kwargs
        columns = [self.column] if self.column else []
        columns += [str(c) for c in kwargs.get("column_list") or ()]
        columns += [str(kwargs[k]) for k in ("column_A", "column_B") if k in kwargs]
        return columns


# pandas dtypes accepted for each declared column type
DTYPES: dict[str, list[str]] = {
    "int": [
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "Int8",
        "Int16",
        "Int32",
        "Int64",
    ],
    "float": [
        "float16",
        "float32",
        "float64",
        "Float32",
        "Float64",
        "int8",
        "int16",
        "int32",
        "int64",
        "Int64",
    ],
    "str": ["object", "string", "str", "large_string"],
    "bool": ["bool", "boolean"],
    "datetime": [
        "datetime64[ns]",
        "datetime64[us]",
        "datetime64[ms]",
        "datetime64[s]",
        "datetime64[ns, UTC]",
        "datetime64[us, UTC]",
        "datetime64[ms, UTC]",
        "datetime64[s, UTC]",
    ],
    "date": [
        "object",
        "datetime64[ns]",
        "datetime64[us]",
        "datetime64[ms]",
        "datetime64[s]",
    ],
}


def compile_expectations(dataset: DatasetSpec) -> list[CompiledExpectation]:
    """Schema checks first (columns exist, types, categories, keys), then the declared rules."""
    return list(_schema_expectations(dataset)) + [
        e for rule in dataset.expectations for e in _rule_expectations(rule)
    ]


def _e(type_: str, rule: str, column: str | None = None, **kwargs: Any) -> CompiledExpectation:
    if column is not None:
        kwargs = {"column": column, **kwargs}
    clean = {k: v for k, v in kwargs.items() if v is not None}
    return CompiledExpectation(type=type_, kwargs=clean, rule=rule, column=column)


def _schema_expectations(dataset: DatasetSpec) -> Iterator[CompiledExpectation]:
    for column, column_type in dataset.columns.items():
        yield _e("expect_column_to_exist", f"schema({column})", column)
        if isinstance(column_type, CategoryType):
            yield _e(
                "expect_column_values_to_be_in_set",
                f"schema({column}: category)",
                column,
                value_set=list(column_type.category),
            )
        else:
            yield _e(
                "expect_column_values_to_be_in_type_list",
                f"schema({column}: {column_type})",
                column,
                type_list=DTYPES[column_type],
            )
    for column in dataset.key_columns:
        yield _e("expect_column_values_to_not_be_null", f"key({column})", column)
    if len(dataset.key_columns) == 1:
        yield _e(
            "expect_column_values_to_be_unique",
            f"key({dataset.key_columns[0]})",
            dataset.key_columns[0],
        )
    elif dataset.key_columns:
        yield _e(
            "expect_compound_columns_to_be_unique",
            f"key({', '.join(dataset.key_columns)})",
            None,
            column_list=dataset.key_columns,
        )


def _rule_expectations(rule: object) -> Iterator[CompiledExpectation]:
    match rule:
        case NotNull(not_null=sel):
            for column in sel.columns:
                yield _e(
                    "expect_column_values_to_not_be_null",
                    f"not_null({column})",
                    column,
                    mostly=sel.mostly,
                )
        case Unique(unique=sel):
            for column in sel.columns:
                yield _e(
                    "expect_column_values_to_be_unique",
                    f"unique({column})",
                    column,
                    mostly=sel.mostly,
                )
        case UniqueTogether(unique_together=columns):
            yield _e(
                "expect_compound_columns_to_be_unique",
                f"unique_together({', '.join(columns)})",
                None,
                column_list=columns,
            )
        case Between(between=a):
            bounds = f"{'' if a.min is None else a.min}..{'' if a.max is None else a.max}"
            yield _e(
                "expect_column_values_to_be_between",
                f"between({a.column}, {bounds})",
                a.column,
                min_value=a.min,
                max_value=a.max,
                mostly=a.mostly,
            )
        case InSet(in_set=a):
            yield _e(
                "expect_column_values_to_be_in_set",
                f"in_set({a.column})",
                a.column,
                value_set=list(a.values),
                mostly=a.mostly,
            )
        case Regex(regex=a):
            yield _e(
                "expect_column_values_to_match_regex",
                f"regex({a.column}, {a.pattern})",
                a.column,
                regex=a.pattern,
                mostly=a.mostly,
            )
        case RowCount(row_count=a):
            yield _e(
                "expect_table_row_count_to_be_between",
                f"row_count({a.min}..{a.max})",
                None,
                min_value=a.min,
                max_value=a.max,
            )
        case Gx(gx=a):
            gx_column = a.kwargs.get("column")
            yield CompiledExpectation(
                type=a.type,
                kwargs=dict(a.kwargs),
                rule=f"gx({a.type})",
                column=gx_column if isinstance(gx_column, str) else None,
            )
