"""Spark for file datasets without a JVM: the profile's `spark:` section, its rules, what the
compiler puts in the plan, which engine a dataset's file gets, and the errors given before a
Spark session is started (no Java, a master that is down)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from shipyard.compiler import DatasetStep
from shipyard.compiler.expectations import DTYPES
from shipyard.compiler.profiles import SparkPlan
from shipyard.data import engines, spark
from shipyard.errors import ShipyardError
from shipyard.loader import load_text
from shipyard.spec.profiles import parse_size
from shipyard.validation import validate

from .specs import check

DATASET = """\
datasets:
  events:
    path: data/events.csv
    engine: {engine}
    key: id
    schema: {{id: int, code: str, amount: float, at: datetime, ok: bool}}
    expectations:
      - not_null: [code]
      - gx:
          type: expect_column_values_to_be_in_type_list
          kwargs: {{column: code, type_list: [object]}}
"""


def _spec(profile: str = "", engine: str = "auto") -> str:
    head = "project: demo\n"
    if profile:
        head += f"profiles:\n  local:\n    spark: {profile}\n"
    return head + DATASET.format(engine=engine)


def _plan(tmp_path: Path, profile: str = "", engine: str = "auto"):  # type: ignore[no-untyped-def]
    from shipyard.project import load_project

    spec = tmp_path / "pipelines.yaml"
    spec.write_text(_spec(profile, engine), encoding="utf-8")
    project = load_project(spec)
    assert project.plan is not None, project.render()
    return project.plan


def _step(tmp_path: Path, profile: str = "", engine: str = "auto") -> DatasetStep:
    return _plan(tmp_path, profile, engine).named(DatasetStep, "events")


def test_sizes_parse_in_decimal_and_binary_units() -> None:
    assert parse_size("1GB") == 10**9
    assert parse_size("512 MB") == 512 * 10**6
    assert parse_size("2GiB") == 2 * 2**30
    assert parse_size("1.5kb") == 1500
    with pytest.raises(ValueError):
        parse_size("1 gigabyte")


def test_a_good_spark_profile_has_no_diagnostics() -> None:
    for master in ("local", "local[2]", "local[*]", "spark://a:7077,b:7077", "yarn"):
        text = _spec(f'{{master: "{master}", min_size: 1GB, config: {{spark.x.y: 4g}}}}')
        assert check(text) == [], master
    assert check(_spec('{master: "k8s://https://10.0.0.1:6443"}', engine="spark")) == []


def test_a_size_that_does_not_parse_is_e103_with_the_units() -> None:
    [d] = check(_spec("{min_size: 1 gigabyte}"))
    assert d.code == "E103"
    assert d.message == "profiles.local.spark.min_size: '1 gigabyte' is not a size"
    assert d.hint == "use a number and a unit, e.g. 500MB, 1GB or 2GiB"


def test_a_master_that_is_no_spark_url_is_e407_at_the_value() -> None:
    [d] = check(_spec('{master: "spark-master:7077"}'))
    assert d.code == "E407"
    assert d.message == "profile 'local': 'spark-master:7077' is not a Spark master URL"
    assert "spark://<host>:7077" in (d.hint or "")
    assert d.span is not None and d.span.line == 4


def test_config_keys_must_be_spark_settings_and_not_the_master_e408() -> None:
    found = check(_spec("{config: {executor.memory: 4g, spark.master: local, spark.app.name: x}}"))
    assert [d.code for d in found] == ["E408", "E408", "E408"]
    by_key = {d.message.split("`")[1]: d for d in found}
    assert by_key["executor.memory"].hint == (
        "Spark settings start with `spark.`: did you mean `spark.executor.memory`?"
    )
    assert "`master:` under `profiles.local.spark:`" in (by_key["spark.master"].hint or "")
    assert "names its Spark application" in (by_key["spark.app.name"].hint or "")


def test_an_engine_on_a_sql_dataset_is_e214() -> None:
    text = (
        "project: demo\ndatasets:\n  t:\n    sql: {connection: 'sqlite:///x.db', table: t}\n"
        "    engine: spark\n    schema: {id: int}\n    expectations: [{not_null: id}]\n"
    )
    [d] = validate(load_text(text, "spec.yaml", env={}))
    assert d.code == "E214"
    assert d.message == "dataset 't' is a SQL dataset: `engine: spark` does not apply"


def test_the_plan_carries_the_engine_and_the_profiles_spark(tmp_path: Path) -> None:
    config = "{spark.sql.ansi.enabled: false, spark.executor.cores: 2, spark.driver.memory: 2g}"
    step = _step(tmp_path, f'{{master: "local[2]", min_size: 2KiB, config: {config}}}', "auto")
    assert step.engine == "auto"
    assert step.spark == SparkPlan(
        master="local[2]",
        min_size=2048,
        config={
            "spark.sql.ansi.enabled": "false",
            "spark.executor.cores": "2",
            "spark.driver.memory": "2g",
        },
    )


def test_a_pandas_dataset_carries_no_spark_and_spark_without_a_profile_runs_locally(
    tmp_path: Path,
) -> None:
    assert _step(tmp_path, '{master: "local[2]"}', "pandas").spark is None
    assert _step(tmp_path, "", "auto").spark is None
    assert _step(tmp_path, "", "spark").spark == SparkPlan(master="local[*]")


def _sized(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "data" / "events.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def test_auto_picks_spark_from_the_profiles_min_size_up(tmp_path: Path) -> None:
    plan = _plan(tmp_path, '{master: "local[2]", min_size: 1KB}', "auto")
    step = plan.named(DatasetStep, "events")
    _sized(tmp_path, 999)
    assert engines.engine_of(plan, step) == "pandas"
    _sized(tmp_path, 1000)
    assert engines.engine_of(plan, step) == "spark"


def test_auto_without_min_size_and_pandas_stay_on_pandas_spark_always_spark(
    tmp_path: Path,
) -> None:
    path = _sized(tmp_path, 10_000)
    assert not spark.uses_spark(_step(tmp_path, '{master: "local[2]"}', "auto"), path)
    assert not spark.uses_spark(_step(tmp_path, "{min_size: 1KB}", "pandas"), path)
    assert spark.uses_spark(_step(tmp_path, "", "spark"), path)
    assert spark.uses_spark(_step(tmp_path, "{min_size: 1TB}", "spark"), path)


def test_schema_type_checks_name_spark_types_and_gx_rules_stay_as_written(
    tmp_path: Path,
) -> None:
    step = _step(tmp_path, "", "spark")
    lists = {
        e.rule: e.kwargs["type_list"]
        for e in spark.spark_expectations(step)
        if e.type == "expect_column_values_to_be_in_type_list"
    }
    assert lists["schema(id: int)"] == spark.SPARK_TYPES["int"]
    assert "LongType" in lists["schema(id: int)"]
    assert lists["schema(code: str)"] == ["StringType", "VarcharType", "CharType"]
    assert lists["schema(at: datetime)"] == ["TimestampType", "TimestampNTZType"]
    assert lists["schema(ok: bool)"] == ["BooleanType"]
    assert lists["gx(expect_column_values_to_be_in_type_list)"] == ["object"]
    # the plan itself keeps the pandas dtypes
    original = {e.rule: e.kwargs.get("type_list") for e in step.expectations}
    assert original["schema(id: int)"] == DTYPES["int"]
    assert set(spark.SPARK_TYPES) == set(DTYPES)


def test_without_java_the_error_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = _step(tmp_path, "", "spark")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no java here
    with pytest.raises(ShipyardError) as raised:
        spark.ensure_java(step, spark.settings_of(step))
    error = raised.value
    assert error.message == (
        "dataset 'events' is validated on engine spark (master local[*]), which needs Java: "
        "no `java` on PATH"
    )
    assert "openjdk-17-jre-headless" in (error.hint or "")
    assert error.resource == "dataset.events"
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    with pytest.raises(ShipyardError, match=r"JAVA_HOME \(.*jdk\) has no bin/java"):
        spark.ensure_java(step, spark.settings_of(step))


def test_a_master_that_is_down_is_reported_in_seconds_naming_dataset_engine_and_url(
    tmp_path: Path,
) -> None:
    step = _step(tmp_path, '{master: "spark://127.0.0.1:1"}', "spark")
    started = time.monotonic()
    with pytest.raises(ShipyardError) as raised:
        spark.session(step, spark.settings_of(step), str(tmp_path / ".shipyard"))
    assert time.monotonic() - started < 30  # bounded: no JVM started, no Spark retries
    error = raised.value
    assert error.message.startswith(
        "dataset 'events': engine spark cannot reach the Spark master spark://127.0.0.1:1 ("
    )
    assert "start the Spark cluster" in (error.hint or "")
    assert "profiles.<profile>.spark.master" in (error.hint or "")
    assert not (tmp_path / ".shipyard" / "spark").exists()
