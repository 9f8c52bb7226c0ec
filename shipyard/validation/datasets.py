"""Rules for `datasets:`: columns named anywhere exist in the schema and suit their checks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import PurePosixPath

from shipyard.diagnostics import Diagnostic, Severity, did_you_mean
from shipyard.loader.source_map import Path, SourceMap
from shipyard.spec import DatasetSpec, PipelineSpec
from shipyard.spec.datasets import (
    Between,
    InSet,
    NotNull,
    Regex,
    Unique,
    UniqueTogether,
)

NUMERIC = {"int", "float", "datetime", "date"}


def check_datasets(spec: PipelineSpec, sm: SourceMap) -> Iterator[Diagnostic]:
    seen_paths: dict[str, str] = {}
    for name, dataset in spec.datasets.items():
        base: Path = ("datasets", name)
        yield from check_dataset(name, dataset, sm)
        yield from check_sql(name, dataset, spec, sm)
        yield from check_engine(name, dataset, sm)
        if dataset.path is None:
            continue
        normalized = str(PurePosixPath(dataset.path))
        if normalized in seen_paths:
            yield Diagnostic(
                "E206",
                f"datasets '{seen_paths[normalized]}' and '{name}' use the same file "
                f"'{dataset.path}'",
                sm.value_span((*base, "path")),
                "each dataset versions its own file; point one of them elsewhere",
            )
        else:
            seen_paths[normalized] = name


def check_engine(name: str, dataset: DatasetSpec, sm: SourceMap) -> Iterator[Diagnostic]:
    """`engine:` chooses how a file is read; a SQL dataset is always validated in place."""
    if dataset.sql is not None and dataset.engine != "auto":
        yield Diagnostic(
            "E214",
            f"dataset '{name}' is a SQL dataset: `engine: {dataset.engine}` does not apply",
            sm.value_span(("datasets", name, "engine")),
            "remove `engine:`: the database runs the checks of a SQL dataset; pandas or "
            "Spark read files (`path:`)",
        )


def check_dataset(name: str, dataset: DatasetSpec, sm: SourceMap) -> Iterator[Diagnostic]:
    base: Path = ("datasets", name)
    columns = dataset.columns

    def unknown(column: str, at: Path, role: str) -> Diagnostic:
        return Diagnostic(
            "E204",
            f"dataset '{name}': {role} column '{column}' is not in its schema",
            sm.value_span(at),
            did_you_mean(column, columns) or "add it under `schema:` with its type",
        )

    path = PurePosixPath(dataset.path or ".")
    if path.is_absolute() or ".." in path.parts:
        yield Diagnostic(
            "E209",
            f"dataset '{name}': path '{dataset.path}' is outside the project folder",
            sm.value_span((*base, "path")),
            "DVC versions files inside the project; "
            "copy the file under the folder of pipelines.yaml",
        )
    if dataset.path is not None and dataset.resolved_format is None:
        yield Diagnostic(
            "E205",
            f"dataset '{name}': cannot tell the format of '{dataset.path}' from its suffix",
            sm.value_span((*base, "path")),
            "add `format: parquet` (or csv, json, jsonl)",
        )
    keys = dataset.key_columns
    for i, column in enumerate(keys):
        key_at: Path = (*base, "key") if isinstance(dataset.key, str) else (*base, "key", i)
        if column not in columns:
            yield unknown(column, key_at, "key")
    if dataset.timestamp is not None:
        ts_at: Path = (*base, "timestamp")
        if dataset.timestamp not in columns:
            yield unknown(dataset.timestamp, ts_at, "timestamp")
        elif columns[dataset.timestamp] not in ("datetime", "date"):
            yield Diagnostic(
                "E203",
                f"dataset '{name}': timestamp column '{dataset.timestamp}' is "
                f"{_type_name(columns[dataset.timestamp])}, not datetime or date",
                sm.value_span(ts_at),
                f"declare it as `{dataset.timestamp}: datetime` in the schema",
            )
    if not dataset.expectations:
        yield Diagnostic(
            "W201",
            f"dataset '{name}' has no expectations; only its schema is checked",
            sm.key_span(base),
            "add rules such as `- not_null: [...]` under `expectations:`",
            severity=Severity.WARNING,
        )
    for i, rule in enumerate(dataset.expectations):
        at: Path = (*base, "expectations", i)
        for column, column_at, kind in _columns_of(rule, at):
            if column not in columns:
                yield unknown(column, column_at, kind)
                continue
            column_type = columns[column]
            if kind == "between" and not _is_numeric(column_type):
                yield Diagnostic(
                    "E207",
                    f"dataset '{name}': `between` needs a numeric or date column, "
                    f"'{column}' is {_type_name(column_type)}",
                    sm.value_span(column_at),
                    "use `in_set` for categories, or fix the column type",
                )
            if kind == "regex" and column_type != "str":
                yield Diagnostic(
                    "E207",
                    f"dataset '{name}': `regex` needs a str column, "
                    f"'{column}' is {_type_name(column_type)}",
                    sm.value_span(column_at),
                    "declare the column as `str`, or use another rule",
                )


def check_sql(
    name: str, dataset: DatasetSpec, spec: PipelineSpec, sm: SourceMap
) -> Iterator[Diagnostic]:
    """A dataset is a file or a SQL table/query, and its connection is a known database."""
    base: Path = ("datasets", name)
    if (dataset.path is None) == (dataset.sql is None) and not _unknown_keys(base, sm):
        both = dataset.path is not None
        yield Diagnostic(
            "E210",
            f"dataset '{name}' gives both `path:` and `sql:`"
            if both
            else f"dataset '{name}' has neither `path:` nor `sql:`",
            sm.key_span((*base, "sql")) if both else sm.key_span(base),
            "a dataset is one file (`path:`) or one database table or query (`sql:`); "
            + ("remove one of them" if both else "add one of them"),
        )
    sql = dataset.sql
    if sql is None:
        return
    at: Path = (*base, "sql")
    if (sql.table is None) == (sql.query is None):
        yield Diagnostic(
            "E211",
            f"dataset '{name}': `sql:` needs exactly one of `table:` and `query:`",
            sm.key_span(at),
            "name the table (`table: customers`) or give the query (`query: SELECT ...`)",
        )
    elif sql.query is not None and not re.match(r"(?is)\s*select\s", sql.query):
        yield Diagnostic(
            "E211",
            f"dataset '{name}': the `sql.query` is not a SELECT",
            sm.value_span((*at, "query")),
            "the query is validated as a subquery: start it with SELECT (a WITH query can be "
            "a view, named with `table:`)",
        )
    undefined_profile = bool(spec.profiles) and spec.profile not in spec.profiles  # E401's
    if "://" not in sql.connection and not undefined_profile:
        databases = spec.active_profile.databases
        if sql.connection not in databases:
            known = ", ".join(sorted(databases)) or "none"
            yield Diagnostic(
                "E212",
                f"dataset '{name}': connection '{sql.connection}' is not a database of profile "
                f"'{spec.profile}' (its databases: {known})",
                sm.value_span((*at, "connection")),
                did_you_mean(sql.connection, databases)
                or f"add it under `profiles.{spec.profile}.databases:` "
                "(name: postgresql://user@host:5432/db), or give a URL",
            )


def _unknown_keys(base: Path, sm: SourceMap) -> bool:
    """The dataset has a key the spec does not define (E101, often a misspelt `path:`)."""
    known = {f.alias or n for n, f in DatasetSpec.model_fields.items()}
    return any(
        len(at) == len(base) + 1 and at[: len(base)] == base and at[-1] not in known
        for at in sm.values
    )


def _is_numeric(column_type: object) -> bool:
    # a category type is a (frozen, list-holding) model: unhashable, so no `in NUMERIC` on it
    return isinstance(column_type, str) and column_type in NUMERIC


def _type_name(column_type: object) -> str:
    return column_type if isinstance(column_type, str) else "a category"


def _columns_of(rule: object, at: Path) -> Iterator[tuple[str, Path, str]]:
    """(column, where it is written, rule kind) for each column a rule names."""
    match rule:
        case NotNull(not_null=sel) | Unique(unique=sel):
            kind = "not_null" if isinstance(rule, NotNull) else "unique"
            # written as `kind: name`, `kind: [names]` or `kind: {columns: [names]}`: the source
            # map skips the parts of this path a shorter form does not have
            for j, column in enumerate(sel.columns):
                yield column, (*at, kind, "columns", j), kind
        case UniqueTogether(unique_together=columns):
            for j, column in enumerate(columns):
                yield column, (*at, "unique_together", j), "unique_together"
        case Between(between=args) | InSet(in_set=args) | Regex(regex=args):
            kind = next(iter(type(rule).model_fields))
            yield args.column, (*at, kind, "column"), kind
