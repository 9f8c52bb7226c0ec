"""Check a data frame against the compiled expectations with Great Expectations."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from shipyard.compiler import CompiledExpectation
from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("shipyard.data.quality")
SAMPLE_SIZE = 5


@dataclass(frozen=True)
class ExpectationOutcome:
    rule: str
    type: str
    column: str | None
    success: bool
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    sample: tuple[Any, ...] = ()
    observed: Any = None
    error: str | None = None


@dataclass
class QualityReport:
    """The outcome of one validation: which rules held and, for the rest, sample bad values."""

    dataset: str
    rows: int
    outcomes: list[ExpectationOutcome] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    """Columns the rules name that the file does not have (their rules fail without running)."""
    file_columns: list[str] = field(default_factory=list)

    def missing_text(self, path: str, holder: str = "the file") -> str | None:
        """ "column 'x' is not in data/t.csv; the file has: a, b", or None (`holder` names
        what has the columns: the file, the table, the query)."""
        if not self.missing_columns:
            return None
        named = ", ".join(f"'{c}'" for c in self.missing_columns)
        which = f"column {named} is" if len(self.missing_columns) == 1 else f"columns {named} are"
        has = ", ".join(self.file_columns[:30]) + (
            f" (and {len(self.file_columns) - 30} more)" if len(self.file_columns) > 30 else ""
        )
        return f"{which} not in {path}; {holder} has: {has or 'no columns'}"

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def table_rows(self, only_failed: bool = False) -> list[dict[str, Any]]:
        chosen = self.failed if only_failed else self.outcomes
        return [
            {
                "rule": o.rule,
                "column": o.column or "(table)",
                "result": "passed" if o.success else "FAILED",
                "unexpected": "" if o.unexpected_count is None else o.unexpected_count,
                "unexpected %": ""
                if o.unexpected_percent is None
                else round(o.unexpected_percent, 3),
                "sample values": o.error or _show(o.sample, o.observed),
                "expectation": o.type,
            }
            for o in chosen
        ]

    def markdown(self) -> str:
        status = "passed" if self.success else f"FAILED ({len(self.failed)} rules)"
        lines = [
            f"## Data quality: dataset `{self.dataset}` {status}",
            "",
            f"{self.rows} rows, {len(self.outcomes)} expectations, {len(self.failed)} failed.",
            "",
            "| rule | column | result | unexpected | sample values |",
            "|---|---|---|---|---|",
        ]
        for row in sorted(self.table_rows(), key=lambda r: r["result"] != "FAILED"):
            lines.append(
                f"| `{row['rule']}` | {row['column']} | {row['result']} | {row['unexpected']} "
                f"| {str(row['sample values']).replace('|', '/')} |"
            )
        return "\n".join(lines)

    def failure_text(self) -> str:
        """A plain-text table of the failed rules, for the terminal and the flow's error."""
        rows = self.table_rows(only_failed=True)
        headers = ["rule", "column", "unexpected", "sample values"]
        cells = [[str(r[h]) for h in headers] for r in rows]
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        out = [fmt.format(*headers), fmt.format(*("-" * w for w in widths))]
        out += [fmt.format(*c) for c in cells]
        return "\n".join(out)


def _show(sample: tuple[Any, ...], observed: Any) -> str:
    if sample:
        return ", ".join(_fmt(v) for v in sample)
    return "" if observed is None else f"observed {_fmt(observed)}"


def _fmt(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "null"
    if value is None:
        return "null"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _naive_utc(frame: pd.DataFrame) -> pd.DataFrame:
    """Time-zone-aware columns as naive UTC: GX's type checks know only numpy datetimes.
    The other columns are the caller's, not copies (with copy-on-write, which
    check_expectations turns on, the caller's frame stays as it was)."""
    import pandas as pd

    aware = [c for c in frame.columns if isinstance(frame[c].dtype, pd.DatetimeTZDtype)]
    if not aware:
        return frame
    frame = frame.copy(deep=False)
    for column in aware:
        frame[column] = frame[column].dt.tz_convert("UTC").dt.tz_localize(None)
    return frame


BatchOf = Callable[[Any], Any]
"""Given a GX data context, the batch to validate: the engine's data source, asset and batch."""


def check_expectations(
    frame: pd.DataFrame, expectations: list[CompiledExpectation], dataset: str
) -> QualityReport:
    """Run every expectation on the frame in one Great Expectations validation (pandas)."""
    import pandas as pd

    def pandas_batch(context: Any) -> Any:
        from great_expectations.execution_engine import pandas_execution_engine

        asset = context.data_sources.add_pandas("shipyard").add_dataframe_asset(dataset)
        # GX fingerprints a frame under 1 GB (hashes every row, most of a second per million)
        # for a batch marker that the report never reads; the frame is the one just read
        threshold = getattr(pandas_execution_engine, "HASH_THRESHOLD", None)
        pandas_execution_engine.HASH_THRESHOLD = 0
        try:
            return asset.add_batch_definition_whole_dataframe("all").get_batch(
                batch_parameters={"dataframe": frame}
            )
        finally:
            if threshold is not None:
                pandas_execution_engine.HASH_THRESHOLD = threshold

    # GX filters the whole frame to each rule's non-null rows (and again for its sample values):
    # with copy-on-write a filter that keeps every row is a view, not a copy of every column
    with pd.option_context("mode.copy_on_write", True):
        frame = _naive_utc(frame)
        return check_batch(
            pandas_batch, expectations, dataset, [str(c) for c in frame.columns], len(frame)
        )


def check_batch(
    batch_of: BatchOf,
    expectations: list[CompiledExpectation],
    dataset: str,
    columns: list[str],
    rows: int,
) -> QualityReport:
    """Every expectation in one Great Expectations validation of the batch `batch_of` makes,
    whatever engine runs it (pandas, SQL, Spark); `columns` are the batch's columns (a rule
    on a column it lacks fails as that, without running) and `rows` its row count."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    present = set(columns)
    missing = sorted({c for e in expectations for c in e.columns() if c not in present})
    report = QualityReport(
        dataset=dataset, rows=rows, missing_columns=missing, file_columns=list(columns)
    )
    # a rule on a column the file lacks fails as that, not with GX's exception about it
    runnable = {i: e for i, e in enumerate(expectations) if not set(e.columns()) & set(missing)}
    # in memory, without the temporary data-docs site GX would otherwise set up (and log) per run
    context_config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
    )
    context = gx.get_context(mode="ephemeral", project_config=context_config)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    suite = gx.ExpectationSuite(name=f"dataset.{dataset}")
    for i, expectation in runnable.items():
        config = ExpectationConfiguration(
            type=expectation.type, kwargs=dict(expectation.kwargs), meta={"index": i}
        )
        try:
            # matched on every argument: GX's default (the domain) keeps one column-exists
            # rule of all of them, the table being the domain of each
            suite.add_expectation_configuration(config, match_type="runtime")
        except Exception as exc:  # GX raises several types for an unknown or malformed expectation
            raise ShipyardError(
                f"expectation `{expectation.rule}` is not a valid Great Expectations "
                f"expectation: {exc}",
                hint="check the `gx:` rule's type and kwargs against the GX expectation gallery",
                resource=f"dataset.{dataset}",
            ) from exc
    suite = context.suites.add(suite)
    # the batch as loaded, validated as it is: `batch.validate` would build a validator that
    # loads it again (for pandas a second fingerprint of the whole frame, for Spark a re-read)
    validator = context.get_validator(batch=batch_of(context))
    configs = validator.process_expectations_for_validation(suite.expectation_configurations)
    # BASIC still gives each rule its unexpected count, percentage and sample values; SUMMARY
    # adds the sample's value counts and the unexpected rows' index list and query, which
    # cost GX a filter of the whole batch per rule and which the report does not show
    results = validator.graph_validate(
        configurations=configs,
        runtime_configuration={
            "result_format": {"result_format": "BASIC", "partial_unexpected_count": SAMPLE_SIZE}
        },
    )
    by_index = dict(enumerate(expectations))
    outcomes: dict[int, ExpectationOutcome] = {
        i: ExpectationOutcome(
            rule=e.rule,
            type=e.type,
            column=e.column,
            success=False,
            error="not in the file"
            if e.type == "expect_column_to_exist"
            else "its column is not in the file",
        )
        for i, e in enumerate(expectations)
        if i not in runnable
    }

    def index_of(r: Any) -> int:
        config = r.expectation_config
        return int(((config.meta if config else None) or {}).get("index", -1))

    for r in results:
        compiled = by_index.get(index_of(r))
        type_name = str(r.expectation_config.type) if r.expectation_config else "unknown"
        details = r.result or {}
        error = None
        info = r.exception_info or {}
        if info.get("raised_exception"):
            error = str(info.get("exception_message") or "raised an exception").splitlines()[0]
        outcomes[index_of(r)] = ExpectationOutcome(
            rule=compiled.rule if compiled else type_name,
            type=type_name,
            column=compiled.column if compiled else None,
            success=bool(r.success),
            unexpected_count=details.get("unexpected_count"),
            unexpected_percent=details.get("unexpected_percent"),
            sample=tuple(details.get("partial_unexpected_list") or ())[:SAMPLE_SIZE],
            observed=details.get("observed_value"),
            error=error,
        )
    # a rule that compiles to the same expectation as another (key(id) and not_null(id)) ran
    # once, as the later one: each gets that result under its own name
    for i, expectation in runnable.items():
        if i not in outcomes:
            twin = next(
                j
                for j, other in runnable.items()
                if j in outcomes
                and (other.type, other.kwargs) == (expectation.type, expectation.kwargs)
            )
            outcomes[i] = replace(outcomes[twin], rule=expectation.rule, column=expectation.column)
    report.outcomes = [outcomes[i] for i in sorted(outcomes)]
    return report
