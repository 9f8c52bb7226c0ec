"""File datasets validated and read on a local Spark (local[2]), through the real flows: the
same outcomes, counts and sample values as pandas on a file with bad rows, CSV and parquet,
`engine: auto` by size, a model trained on a Spark dataset, and Spark down or a file without
its columns reported with nothing versioned. One SparkSession serves the whole module."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import MODEL_SPEC, SPEC, compile_spec, free_port, run_flow

from shipyard.compiler import DatasetStep, Plan
from shipyard.data import engines, spark
from shipyard.data.versioning import VersionCatalog
from shipyard.errors import DataValidationFailed, ShipyardError
from shipyard.settings import StateLayout

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness", "spark_session")]

LOCAL_SPARK = "    spark: {master: 'local[2]', min_size: 4KB}\n"
"""Every test's profile: the same master and settings, so the one session is reused."""

ORDERS = """\
  {name}:
    path: data/{name}.csv
    engine: {engine}
    key: order_id
    timestamp: placed_at
    schema:
      order_id: int
      code: str
      placed_at: datetime
      amount: float
      status: {{category: [new, paid, shipped]}}
      qty: int
      gift: bool
    expectations:
      - not_null: [code]
      - between: {{column: amount, min: 0, max: 1000}}
      - regex: {{column: code, pattern: "^[0-9]{{6}}$"}}
      - between: {{column: qty, min: 1, max: 9}}
      - row_count: {{min: 10}}
"""


@pytest.fixture(scope="module")
def spark_session() -> Iterator[None]:
    """The module's Spark: started by the first test that needs it, stopped after the last."""
    yield
    spark.stop_session()


def _orders_csv(path: Path, rows: int = 300, bad: bool = False) -> Path:
    lines = ["order_id,code,placed_at,amount,status,qty,gift"]
    for i in range(rows):
        status = ("new", "paid", "shipped")[i % 3]
        lines.append(
            f"{i + 1},{i + 1:06d},2024-03-{i % 28 + 1:02d}T{i % 24:02d}:15:00Z,"
            f"{(i * 7) % 900 + 0.5},{status},{i % 9 + 1},{'true' if i % 4 else 'false'}"
        )
    if bad:
        lines[5] = "5,,2024-03-05T04:15:00Z,35.5,new,3,true"  # no code
        lines[9] = "9,00009x,2024-03-09,-4.25,paid,0,false"  # code, amount, qty
        lines[12] = "11,000012,2024-03-12 08:00:00,2000,lost,4,true"  # id again, amount, status
        lines[40] = "40,000040,2024-03-12,12.5,shipped,12,true"  # qty
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _project(tmp_path: Path, datasets: str, profile: str = LOCAL_SPARK, models: str = "") -> Plan:
    text = SPEC.format(port=free_port())
    head, _ = text.split("datasets:\n", 1)
    head = head.replace("  local:\n", "  local:\n" + profile)
    spec = tmp_path / "pipelines.yaml"
    spec.write_text(head + "datasets:\n" + datasets + models, encoding="utf-8")
    return compile_spec(spec)


def _validate(plan: Plan, name: str) -> Any:
    from flows.validate_dataset import validate_dataset

    return run_flow(plan, validate_dataset, dataset=name)


def _nulls(outcome: Any) -> tuple[Any, ...]:
    """Sample values with pandas' NaN for a missing value as None, Spark's (both show as null)."""
    return tuple(None if isinstance(v, float) and math.isnan(v) else v for v in outcome.sample)


def _versions(plan: Plan, name: str) -> list[Any]:
    return VersionCatalog(StateLayout(plan.runtime.state_dir).catalog).versions(name)


def test_bad_rows_in_a_csv_get_the_same_report_on_spark_as_on_pandas(tmp_path: Path) -> None:
    datasets = ORDERS.format(name="on_spark", engine="spark") + ORDERS.format(
        name="on_pandas", engine="pandas"
    )
    plan = _project(tmp_path, datasets)
    for name in ("on_spark", "on_pandas"):
        _orders_csv(tmp_path / "data" / f"{name}.csv", bad=True)
    on_spark = plan.named(DatasetStep, "on_spark")
    on_pandas = plan.named(DatasetStep, "on_pandas")
    assert engines.engine_of(plan, on_spark) == "spark"
    assert engines.engine_of(plan, on_pandas) == "pandas"

    # the reports themselves: every rule, its outcome, its counts and its sample values
    spark_report = engines.validate_step(plan, on_spark)
    pandas_report = engines.validate_step(plan, on_pandas)
    assert spark_report.rows == pandas_report.rows == 300

    def outcomes(report: Any) -> list[tuple[Any, ...]]:
        # a type check is one look at the column's type on Spark; pandas counts the values of
        # a text column one by one (0 unexpected when they are all text): outcome only
        return [
            (o.rule, o.success, o.error)
            if o.type == "expect_column_values_to_be_in_type_list"
            else (o.rule, o.success, o.unexpected_count, o.unexpected_percent, _nulls(o), o.error)
            for o in report.outcomes
        ]

    assert outcomes(spark_report) == outcomes(pandas_report)
    failed = {o.rule for o in spark_report.failed}
    assert failed == {
        "schema(status: category)",
        "key(order_id)",
        "not_null(code)",
        "between(amount, 0.0..1000.0)",
        "regex(code, ^[0-9]{6}$)",
        "between(qty, 1.0..9.0)",
    }
    by_rule = {o.rule: o for o in spark_report.outcomes}
    assert by_rule["between(amount, 0.0..1000.0)"].sample == (-4.25, 2000.0)
    assert by_rule["regex(code, ^[0-9]{6}$)"].sample == ("00009x",)
    assert by_rule["schema(code: str)"].success  # text ids keep their leading zeros
    assert by_rule["schema(placed_at: datetime)"].observed == "TimestampType"

    # and through the flow: the same table of failed rules, nothing versioned
    texts = []
    for name in ("on_spark", "on_pandas"):
        state = _validate(plan, name)
        assert state.is_failed()
        error = state.result(raise_on_failure=False)
        assert isinstance(error, DataValidationFailed), error
        texts.append(error.message.replace(name, "<dataset>"))
        assert _versions(plan, name) == []
    assert texts[0] == texts[1]
    assert "6 of " in texts[0] and "'00009x'" in texts[0]


def test_a_parquet_dataset_on_spark_validates_and_is_versioned(
    make_project: Callable[..., Path],
) -> None:
    text = SPEC.format(port=free_port())
    text = text.replace("  local:\n", "  local:\n" + LOCAL_SPARK).replace(
        "    path: data/customers.parquet\n",
        "    path: data/customers.parquet\n    engine: spark\n",
    )
    spec = make_project(rows=400, spec=text)
    plan = compile_spec(spec)
    step = plan.named(DatasetStep, "customers")
    assert engines.engine_of(plan, step) == "spark"

    report = engines.validate_step(plan, step)
    by_rule = {o.rule: o for o in report.outcomes}
    assert report.success, report.failure_text()
    assert report.rows == 400
    assert by_rule["schema(event_time: datetime)"].observed == "TimestampType"
    assert by_rule["key(customer_id, event_time)"].success

    state = _validate(plan, "customers")
    assert state.is_completed(), state.result(raise_on_failure=False)
    summary = state.result()
    assert summary.rows == 400 and summary.new_version is True
    assert [v.md5 for v in _versions(plan, "customers")] == [summary.md5]

    frame = engines.read_frame(plan, step)  # for training: pandas, through Arrow
    assert len(frame) == 400
    assert str(frame["event_time"].dtype) == "datetime64[ns, UTC]"
    assert frame["churned"].dtype == bool


def test_auto_chooses_spark_above_min_size_and_pandas_below(tmp_path: Path) -> None:
    datasets = ORDERS.format(name="big", engine="auto") + ORDERS.format(name="small", engine="auto")
    plan = _project(tmp_path, datasets)
    big = _orders_csv(tmp_path / "data" / "big.csv", rows=300)
    small = _orders_csv(tmp_path / "data" / "small.csv", rows=20)
    assert big.stat().st_size >= 4000 > small.stat().st_size
    assert engines.engine_of(plan, plan.named(DatasetStep, "big")) == "spark"
    assert engines.engine_of(plan, plan.named(DatasetStep, "small")) == "pandas"

    for name, rows in (("big", 300), ("small", 20)):
        state = _validate(plan, name)
        assert state.is_completed(), state.result(raise_on_failure=False)
        assert state.result().rows == rows
        assert len(_versions(plan, name)) == 1


def test_a_csv_without_a_declared_column_gets_the_missing_columns_report(tmp_path: Path) -> None:
    plan = _project(tmp_path, ORDERS.format(name="orders", engine="spark"))
    path = _orders_csv(tmp_path / "data" / "orders.csv")
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n", encoding="utf-8")

    state = _validate(plan, "orders")

    error = state.result(raise_on_failure=False)
    assert isinstance(error, DataValidationFailed), error
    first = error.message.splitlines()[0]
    assert first.startswith("column 'gift' is not in 'data/orders.csv'")
    assert "the file has: order_id, code, placed_at, amount, status, qty" in first
    assert "its column is not in the file" in error.message
    assert _versions(plan, "orders") == []


def test_spark_down_is_a_clear_error_naming_dataset_engine_and_master(tmp_path: Path) -> None:
    down = "    spark: {master: 'spark://127.0.0.1:1'}\n"
    plan = _project(tmp_path, ORDERS.format(name="orders", engine="spark"), profile=down)
    _orders_csv(tmp_path / "data" / "orders.csv")

    state = _validate(plan, "orders")

    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, ShipyardError) and not isinstance(error, DataValidationFailed)
    assert "dataset 'orders'" in error.message
    assert "engine spark" in error.message
    assert "spark://127.0.0.1:1" in error.message
    assert "profiles.<profile>.spark.master" in (error.hint or "")
    assert _versions(plan, "orders") == []
    assert not (tmp_path / "data" / "orders.csv.dvc").exists()


def test_a_model_trains_on_a_dataset_read_with_spark(
    make_project: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.train_model import train_model

    reads: list[str] = []
    real_read = spark.read_file

    def counted(step: DatasetStep, path: Path, state_dir: str) -> Any:
        reads.append(step.name)
        return real_read(step, path, state_dir)

    monkeypatch.setattr(spark, "read_file", counted)
    text = SPEC.format(port=free_port())
    text = text.replace("  local:\n", "  local:\n" + LOCAL_SPARK).replace(
        "    path: data/customers.parquet\n",
        "    path: data/customers.parquet\n    engine: spark\n",
    )
    spec = make_project(
        rows=800, spec=text + textwrap.dedent(MODEL_SPEC.format(threshold=">= 0.5"))
    )
    plan = compile_spec(spec)

    state = run_flow(plan, train_model, model="churn")

    assert state.is_completed(), state.result(raise_on_failure=False)
    summary = state.result()
    assert summary.registered_version == "1"
    assert reads == ["customers"]  # the training frame came from Spark
    assert _versions(plan, "customers")[0].md5 == summary.data_version
