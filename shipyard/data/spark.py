"""File datasets on Spark: one SparkSession per process on the profile's master, reading a
dataset's file with its declared types, validating it with Great Expectations' Spark engine,
and handing it to pandas for training."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.compiler import DatasetStep
from shipyard.compiler.expectations import DTYPES, CompiledExpectation
from shipyard.compiler.profiles import SparkPlan
from shipyard.data.files import require_file
from shipyard.data.quality import QualityReport, check_batch
from shipyard.errors import ShipyardError
from shipyard.settings import StateLayout

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

ENGINE = "spark"

# pyspark.sql.types accepted for each declared column type (GX checks Spark columns with
# isinstance against these classes, where pandas checks dtype names: see DTYPES)
_INTS = ["ByteType", "ShortType", "IntegerType", "LongType"]
SPARK_TYPES: dict[str, list[str]] = {
    "int": _INTS,
    "float": ["FloatType", "DoubleType", "DecimalType", *_INTS],
    "str": ["StringType", "VarcharType", "CharType"],
    "bool": ["BooleanType"],
    "datetime": ["TimestampType", "TimestampNTZType"],
    "date": ["DateType", "TimestampType", "TimestampNTZType"],
}

# Spark SQL types a CSV column (read as text) is cast to, per declared type
_CASTS = {
    "int": "bigint",
    "float": "double",
    "bool": "boolean",
    "datetime": "timestamp",
    "date": "date",
}
SHOWN_BAD_VALUES = 5
CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a cluster's master to accept a connection before calling it down."""

_lock = threading.Lock()
_session: SparkSession | None = None
_session_key: tuple[str, tuple[tuple[str, str], ...]] | None = None


def uses_spark(step: DatasetStep, path: Path) -> bool:
    """Whether the dataset's file is read on Spark: `engine: spark`, or `engine: auto` with
    the profile's `spark.min_size` set and the file at least that big."""
    if step.path is None or step.engine == "pandas":
        return False
    if step.engine == "spark":
        return True
    spark = step.spark
    if spark is None or spark.min_size is None:
        return False
    try:
        return path.stat().st_size >= spark.min_size
    except OSError:  # a missing file is reported by the reader that opens it
        return False


def settings_of(step: DatasetStep) -> SparkPlan:
    """The Spark settings the step was compiled with (the profile's, or a local default)."""
    return step.spark or SparkPlan()


def validate_file(step: DatasetStep, path: Path, state_dir: str) -> QualityReport:
    """Every expectation of the dataset on its file, read and checked on Spark."""
    frame = read_spark_frame(step, path, state_dir)
    frame = frame.persist()
    try:
        rows = frame.count()
        expectations = spark_expectations(step)

        def spark_batch(context: Any) -> Any:
            return (
                context.data_sources.add_spark("shipyard", persist=False)
                .add_dataframe_asset(step.name)
                .add_batch_definition_whole_dataframe("all")
                .get_batch(batch_parameters={"dataframe": frame})
            )

        return check_batch(spark_batch, expectations, step.name, list(frame.columns), rows)
    except ShipyardError:
        raise
    except Exception as exc:
        raise _engine_error(step, settings_of(step), exc) from exc
    finally:
        frame.unpersist()


def read_file(step: DatasetStep, path: Path, state_dir: str) -> pd.DataFrame:
    """The dataset read on Spark, as a pandas frame (through Arrow) for a model that trains
    on one: timestamps as UTC, dates as datetimes."""
    import pandas as pd
    from pyspark.sql import types as T

    frame = read_spark_frame(step, path, state_dir)
    try:
        out: pd.DataFrame = frame.toPandas()
    except Exception as exc:
        raise _engine_error(step, settings_of(step), exc) from exc
    for field in frame.schema.fields:
        if isinstance(field.dataType, T.TimestampType) and field.name in out:
            out[field.name] = pd.to_datetime(out[field.name]).dt.tz_localize("UTC")
        elif isinstance(field.dataType, T.DateType) and field.name in out:
            out[field.name] = pd.to_datetime(out[field.name])
    return out


def spark_expectations(step: DatasetStep) -> list[CompiledExpectation]:
    """The step's expectations with each schema type check naming Spark types instead of
    pandas dtypes (a `gx:` rule's own type list is left as written)."""
    out = []
    for expectation in step.expectations:
        declared = step.columns.get(expectation.column or "")
        if (
            expectation.type == "expect_column_values_to_be_in_type_list"
            and isinstance(declared, str)
            and expectation.kwargs.get("type_list") == DTYPES.get(declared)
        ):
            kwargs = {**expectation.kwargs, "type_list": SPARK_TYPES[declared]}
            expectation = expectation.model_copy(update={"kwargs": kwargs})
        out.append(expectation)
    return out


# -- reading -------------------------------------------------------------------------------


def read_spark_frame(step: DatasetStep, path: Path, state_dir: str) -> DataFrame:
    """The dataset's file as a Spark DataFrame with the declared types: CSV text ids keep
    their leading zeros, numbers, booleans and dates are parsed; a date column with values
    that are no date is an error naming them, as with pandas."""
    require_file(step, path)
    settings = settings_of(step)
    spark = session(step, settings, state_dir)
    try:
        reader = spark.read
        if step.format == "parquet":
            return _nanos_as_timestamps(path, reader.parquet(str(path)))
        if step.format in ("json", "jsonl"):
            return _typed(step, reader.json(str(path), multiLine=step.format == "json"))
        # every column as text (no inference pass), then cast to the declared types
        return _typed(step, reader.csv(str(path), header=True, escape='"', inferSchema=False))
    except ShipyardError:
        raise
    except Exception as exc:
        from pyspark.errors import AnalysisException

        if isinstance(exc, AnalysisException):
            raise ShipyardError(
                f"cannot read '{step.path}' as {step.format} on Spark: {str(exc).splitlines()[0]}",
                hint="check the file is not truncated, or set `format:` to its real format",
                resource=step.id,
            ) from exc
        raise _engine_error(step, settings, exc) from exc


def _nanos_as_timestamps(path: Path, frame: DataFrame) -> DataFrame:
    """Timestamps in nanoseconds (pandas writes them) as Spark timestamps: Spark reads them
    only as numbers (`spark.sql.legacy.parquet.nanosAsLong`), so the file's own schema says
    which columns they are; Spark keeps microseconds."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException):  # Spark read it: what it saw stands
        return frame
    nanos = {f.name for f in schema if pa.types.is_timestamp(f.type) and f.type.unit == "ns"}
    if not nanos:
        return frame
    return frame.select(
        *(
            F.expr(f"timestamp_micros(`{c}` div 1000)").alias(c) if c in nanos else F.col(f"`{c}`")
            for c in frame.columns
        )
    )


def _typed(step: DatasetStep, frame: DataFrame) -> DataFrame:
    """Cast the declared columns that are text (all of a CSV's) to their declared types. A
    number or boolean column with values that do not parse stays text, so its type check
    fails naming it (pandas reads such a column as text too); dates must all parse."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    text = {f.name for f in frame.schema.fields if isinstance(f.dataType, T.StringType)}
    casts: dict[str, str] = {}
    for column, declared in step.columns.items():
        if column not in text:
            continue
        if isinstance(declared, list):  # categories: numbers when every category is one
            if all(isinstance(v, int) for v in declared):
                casts[column] = "bigint"
        elif declared in _CASTS:
            casts[column] = _CASTS[declared]
    if not casts:
        return frame
    bad = {c: _unparsed(c, t) for c, t in casts.items()}
    counts = frame.agg(*(F.sum(b.cast("int")).alias(c) for c, b in bad.items())).first()
    failing = {c for c in casts if counts is not None and (counts[c] or 0) > 0}
    for column in failing:
        declared = step.columns[column]
        if declared in ("datetime", "date"):
            _bad_dates(step, frame, column, bad[column], int(counts[column]))  # type: ignore[index]
    return frame.select(
        *(
            F.expr(f"try_cast(`{c}` AS {casts[c]})").alias(c)
            if c in casts and c not in failing
            else F.col(f"`{c}`")
            for c in frame.columns
        )
    )


def _unparsed(column: str, spark_type: str) -> Any:
    """True where a value is there but does not parse as the type."""
    from pyspark.sql import functions as F

    return (
        F.col(f"`{column}`").isNotNull() & F.expr(f"try_cast(`{column}` AS {spark_type})").isNull()
    )


def _bad_dates(step: DatasetStep, frame: DataFrame, column: str, bad: Any, count: int) -> None:
    rows = frame.where(bad).select(column).distinct().limit(SHOWN_BAD_VALUES).collect()
    shown = ", ".join(repr(str(r[0])) for r in rows)
    raise ShipyardError(
        f"column '{column}' of '{step.path}' has {count} value(s) that are not dates, e.g. {shown}",
        hint="fix them in the file (ISO 8601, e.g. 2024-05-31 or 2024-05-31T12:00:00Z, is "
        f"safest), or declare '{column}' as `str` in the dataset's schema",
        resource=step.id,
    )


# -- the session ---------------------------------------------------------------------------


def session(step: DatasetStep, settings: SparkPlan, state_dir: str) -> SparkSession:
    """The process's SparkSession on the profile's master, started on first use (a master
    that is down or a missing Java is a ShipyardError naming the dataset, the engine and the
    master) and stopped when the process exits. Other settings restart it."""
    global _session, _session_key
    key = (settings.master, tuple(sorted(settings.config.items())))
    with _lock:
        if _session is not None and _session_key == key:
            return _session
        _ensure_reachable(step, settings)
        java = ensure_java(step, settings)
        if _session is not None:
            _session.stop()
            _session = None
        try:
            _session = _build(settings, Path(state_dir), java)
        except Exception as exc:
            raise _engine_error(step, settings, exc) from exc
        _session_key = key
        return _session


def stop_session() -> None:
    """Stop the process's SparkSession, if one was started."""
    global _session, _session_key
    with _lock:
        if _session is not None:
            _session.stop()
        _session, _session_key = None, None


atexit.register(stop_session)


def _is_local(master: str) -> bool:
    return master == "local" or master.startswith("local[")


def _build(settings: SparkPlan, state_dir: Path, java: str) -> SparkSession:
    from pyspark.sql import SparkSession

    root = StateLayout(state_dir).root / "spark"
    tmp, local, warehouse = root / "tmp", root / "local", root / "warehouse"
    for folder in (tmp, local, warehouse):
        folder.mkdir(parents=True, exist_ok=True)
    log4j = root / "log4j2.properties"
    log4j.write_text(_LOG4J, encoding="utf-8")
    java_options = f"-Djava.io.tmpdir={tmp} -Dlog4j2.configurationFile=file:{log4j}"
    conf: dict[str, str] = {
        "spark.app.name": "shipyard",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.eventLog.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.legacy.parquet.nanosAsLong": "true",
        "spark.local.dir": str(local),
        "spark.sql.warehouse.dir": str(warehouse),
        "spark.driver.extraJavaOptions": java_options,
    }
    if _is_local(settings.master):
        # one machine: the driver on loopback, and as many shuffle partitions as cores
        # rather than Spark's 200 (a file validated locally is a few partitions)
        conf |= {
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.sql.shuffle.partitions": str(_local_cores(settings.master)),
        }
    conf |= settings.config
    os.environ.setdefault("PYSPARK_PYTHON", _python())
    if "JAVA_HOME" not in os.environ:
        os.environ["JAVA_HOME"] = str(Path(os.path.realpath(java)).parent.parent)
    builder = SparkSession.builder.master(settings.master)
    for name, value in conf.items():
        builder = builder.config(name, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def _python() -> str:
    import sys

    return sys.executable


def _local_cores(master: str) -> int:
    match = re.match(r"local\[(\d+)", master)
    return int(match.group(1)) if match else os.cpu_count() or 2


_LOG4J = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = stderr
appender.console.type = Console
appender.console.name = stderr
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n
logger.hadoop.name = org.apache.hadoop.util.NativeCodeLoader
logger.hadoop.level = error
logger.conf.name = org.apache.spark.SparkConf
logger.conf.level = error
logger.utils.name = org.apache.spark.util.Utils
logger.utils.level = error
"""


def ensure_java(step: DatasetStep, settings: SparkPlan) -> str:
    """The java Spark runs on (JAVA_HOME's, else the PATH's), or a ShipyardError saying how
    to install it."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if java and Path(java).exists():
        return java
    where = f"JAVA_HOME ({home}) has no bin/java" if home else "no `java` on PATH"
    raise ShipyardError(
        f"dataset '{step.name}' is validated on engine spark (master {settings.master}), "
        f"which needs Java: {where}",
        hint="install Java 17 (Debian: apt-get install openjdk-17-jre-headless) or set "
        "JAVA_HOME to a JDK, or validate the dataset with pandas (`engine: pandas`)",
        resource=step.id,
    )


def _masters(master: str) -> list[tuple[str, int]]:
    """(host, port) of a standalone master URL (spark://h1:7077,h2:7077), else none."""
    if not master.startswith("spark://"):
        return []
    out = []
    for part in master.removeprefix("spark://").split(","):
        host, _, port = part.rpartition(":")
        if host and port.isdigit():
            out.append((host.strip("[]"), int(port)))
    return out


def _ensure_reachable(step: DatasetStep, settings: SparkPlan) -> None:
    """A standalone master that accepts no connection is reported in seconds, rather than
    after Spark's own minute of retries."""
    masters = _masters(settings.master)
    errors = []
    for host, port in masters:
        try:
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
                return
        except OSError as exc:
            errors.append(f"{host}:{port}: {exc.strerror or exc}")
    if masters:
        raise ShipyardError(
            f"dataset '{step.name}': engine spark cannot reach the Spark master "
            f"{settings.master} ({'; '.join(errors)})",
            hint=_down_hint(step),
            resource=step.id,
        )


def _down_hint(step: DatasetStep) -> str:
    return (
        "start the Spark cluster (sbin/start-master.sh and a worker), or fix "
        "`profiles.<profile>.spark.master` in pipelines.yaml (local[2] runs Spark in this "
        f"process), or set `engine: pandas` on dataset '{step.name}'"
    )


def _engine_error(step: DatasetStep, settings: SparkPlan, exc: BaseException) -> ShipyardError:
    """A failure of Spark itself (not of the data), naming the dataset, engine and master."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if "JAVA_GATEWAY_EXITED" in str(exc):
        hint = (
            "Java could not start Spark: check `java -version` runs (Java 17 or 21), "
            "JAVA_HOME, and the settings under `profiles.<profile>.spark.config`"
        )
    else:
        hint = _down_hint(step)
    return ShipyardError(
        f"dataset '{step.name}': engine spark (master {settings.master}) failed: {first}",
        hint=hint,
        resource=step.id,
    )
