"""The everyday commands against their anchors, side by side in one run, with ratios.

Builds the demo project (the repo's pipelines.yaml, the embedded `local` profile on free
ports, its state folder inside the temp folder) and measures, each command in a fresh process:

  validate   `shipyard run validate-dataset customers` on N rows of the demo data, against the
             same rules in plain pandas, read included (the dataset's compiled expectations as
             Great Expectations evaluates them: 23 of the demo's 35): wall time, the `validate`
             task's own time (from the Prefect task run), peak RSS of the process tree;
             with --spark also the same command with `engine: spark` (local[2]) beside it
  cache hit  `shipyard run train-model churn` with nothing changed, after one real training,
             against `python -c "import prefect"` and the cold `shipyard --version`
  read-only  `shipyard models list`, `shipyard data versions customers`,
             `shipyard serve churn-api --status`, against the bare MLflow client listing the
             registered models on the same tracking database, and `python -c "import prefect"`
  serve      `shipyard serve churn-api` until it returns (it waits for /readyz), against a bare
             `bentoml serve` of the same Bento folder with the same environment, until /readyz

    .venv/bin/python bench/everyday.py --quick                    # 10k rows only
    .venv/bin/python bench/everyday.py                            # 10k, 1M and 5M rows
    .venv/bin/python bench/everyday.py --rows 10000,1000000
    .venv/bin/python bench/everyday.py --rows 5000000 --skip-cli --spark   # Spark beside pandas

Writes bench/results/everyday.json (--out) and a PNG beside it (validate time and peak memory
against rows). Every process it starts is stopped at the end, also on errors.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from serving import http_get, tree, tree_rss_mb  # bench/serving.py: same process helpers

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
SHIPYARD = str(Path(PYTHON).parent / "shipyard")
DATASET, MODEL, SERVICE = "customers", "churn", "churn-api"
DEFAULT_ROWS = (10_000, 1_000_000, 5_000_000)
READY_TIMEOUT = 240.0
SECRETS = {  # fresh keys for the bench's own service, each run
    name: secrets.token_urlsafe(24)
    for name in ("SHIPYARD_SECRET_CHURN_API_KEY", "SHIPYARD_SECRET_CHURN_API_ADMIN_KEY")
}


# -- the pandas anchor (runs as its own process: `everyday.py --pandas RULES.json DATA`) -------


def pandas_check(rules: list[dict[str, Any]], data: Path) -> dict[str, Any]:
    """The compiled expectations of the dataset, in plain pandas, read included."""
    import pandas as pd

    started = time.perf_counter()
    frame = pd.read_parquet(data)
    read_s = time.perf_counter() - started
    failed: list[str] = []
    for rule in rules:
        if not _pandas_rule(pd, frame, rule["type"], rule["kwargs"]):
            failed.append(rule["rule"])
    return {
        "rows": len(frame),
        "rules": len(rules),
        "failed": failed,
        "read_s": read_s,
        "check_s": time.perf_counter() - started - read_s,
        "total_s": time.perf_counter() - started,
    }


def _mostly(ok: Any, kwargs: dict[str, Any]) -> bool:
    """Share of non-null values that pass, against `mostly` (1.0 when absent), as GX counts."""
    total = int(ok.size)
    return total == 0 or int(ok.sum()) / total >= float(kwargs.get("mostly", 1.0))


def _pandas_rule(pd: Any, frame: Any, kind: str, kwargs: dict[str, Any]) -> bool:
    if kind == "expect_table_row_count_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        return (low is None or len(frame) >= low) and (high is None or len(frame) <= high)
    if kind == "expect_compound_columns_to_be_unique":
        return not bool(frame.duplicated(subset=list(kwargs["column_list"])).any())
    if kind == "columns_exist":
        return set(kwargs["columns"]) <= {str(c) for c in frame.columns}
    column = kwargs["column"]
    values = frame[column]
    if kind == "expect_column_values_to_be_in_type_list":
        return str(values.dtype) in kwargs["type_list"]
    if kind == "expect_column_values_to_not_be_null":
        return _mostly(values.notna(), kwargs)
    present = values.dropna()
    if kind == "expect_column_values_to_be_in_set":
        return _mostly(present.isin(kwargs["value_set"]), kwargs)
    if kind == "expect_column_values_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        ok = pd.Series(True, index=present.index)
        if low is not None:
            ok &= present >= low
        if high is not None:
            ok &= present <= high
        return _mostly(ok, kwargs)
    if kind == "expect_column_values_to_match_regex":
        return _mostly(present.astype(str).str.contains(kwargs["regex"], regex=True), kwargs)
    raise SystemExit(
        f"the pandas anchor has no translation of {kind}; add one to bench/everyday.py"
    )


def pandas_main(argv: Sequence[str]) -> None:
    rules = json.loads(Path(argv[0]).read_text())
    print("PANDASJSON " + json.dumps(pandas_check(rules, Path(argv[1]))), flush=True)


# -- processes ---------------------------------------------------------------------------------


def free_port(taken: set[int], low: int = 18100, high: int = 18999, span: int = 1) -> int:
    """A port in low..high (and the `span - 1` after it) nobody listens on."""
    for port in range(low, high - span):
        if any(p in taken for p in range(port, port + span)):
            continue
        try:
            for p in range(port, port + span):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        taken.update(range(port, port + span))
        return port
    raise RuntimeError(f"no free port in {low}-{high}")


class Measured:
    """One command in a fresh process: wall seconds, peak RSS of its process tree (polled every
    20 ms), exit code and output."""

    def __init__(
        self,
        argv: Sequence[str],
        cwd: Path,
        env: dict[str, str],
        timeout: float,
        check: bool = True,
    ) -> None:

        self.peak_mb = 0.0
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                self.peak_mb = max(self.peak_mb, tree_rss_mb(proc.pid))
                done.wait(0.02)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            self.stdout, self.stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise RuntimeError(f"`{' '.join(argv)}` did not finish in {timeout:.0f} s") from None
        finally:
            self.seconds = time.perf_counter() - started
            done.set()
            poller.join()
        self.returncode = proc.returncode
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"`{' '.join(argv)}` exited {proc.returncode}:\n"
                f"{self.stdout[-3000:]}\n{self.stderr[-3000:]}"
            )


def http_json(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


# -- the project -------------------------------------------------------------------------------


class Project:
    def __init__(self, folder: Path, say: Any) -> None:
        from shipyard.settings import TELEMETRY_OFF

        self.folder, self.say = folder, say
        self.spec = folder / "pipelines.yaml"
        self.data = folder / "data" / "customers.parquet"
        taken: set[int] = set()
        self.prefect_port = free_port(taken)
        self.mlflow_port = free_port(taken)
        # the services' ports are their declared ones plus the profile's offset
        self.offset = free_port(taken, 18100, 18999) - 3000
        text = (ROOT / "pipelines.yaml").read_text()
        local = (
            f"  local: {{prefect: {{port: {self.prefect_port}}}, "
            f"mlflow: {{port: {self.mlflow_port}}}, serving: {{port_offset: {self.offset}}}}}"
        )
        text, count = re.subn(r"^  local: \{\}.*$", local, text, count=1, flags=re.M)
        if count != 1:
            raise RuntimeError("pipelines.yaml has no `local: {}` profile line to give ports to")
        self.spec.write_text(text)
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PREFECT_", "MLFLOW_", "BENTOML_")) and k != "SHIPYARD_PROFILE"
        }
        self.env.update(TELEMETRY_OFF)
        self.env.update(SECRETS)
        self.env["SHIPYARD_PROFILE"] = "local"
        self.server_started = False
        self.serving = False
        self.bare: subprocess.Popen[bytes] | None = None
        self.bare_pids: set[int] = set()

    def plan(self) -> Any:
        from shipyard import load_project

        saved = dict(os.environ)
        os.environ.update(self.env)  # secrets resolve from SHIPYARD_SECRET_* in this process
        try:
            return load_project(self.spec).require_plan()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    @contextmanager
    def on_spark(self) -> Iterator[None]:
        """The dataset validated with `engine: spark` on a local Spark (local[2]) meanwhile."""
        text = self.spec.read_text()
        spark = text.replace(
            "    path: data/customers.parquet\n",
            "    path: data/customers.parquet\n    engine: spark\n",
            1,
        ).replace(
            "  local: {",
            "  local: {spark: {master: 'local[2]', config: {spark.driver.memory: 2g}}, ",
            1,
        )
        self.spec.write_text(spark)
        try:
            yield
        finally:
            self.spec.write_text(text)

    def argv(self, *args: str) -> list[str]:
        return [SHIPYARD, "-f", str(self.spec), *args]

    def run(self, *args: str, timeout: float = 3600) -> Measured:
        return Measured(self.argv(*args), self.folder, self.env, timeout)

    def start(self) -> None:
        self.run("validate", timeout=120)
        self.say(f"starting the Prefect server on port {self.prefect_port} ...")
        self.server_started = True
        self.run("server", "start", timeout=300)
        self.run("apply", timeout=600)

    def stop(self) -> None:
        self.stop_bare()
        if self.serving:
            with suppress(RuntimeError):
                self.run("serve", SERVICE, "--stop", timeout=120)
            self.serving = False
        if self.server_started:
            try:
                self.run("server", "stop", timeout=120)
            except RuntimeError as exc:
                self.say(f"`shipyard server stop` failed ({exc}); stopping by PID")
                self._kill_pidfiles()
            self.server_started = False

    def _kill_pidfiles(self) -> None:
        """The state folder's servers, by the PIDs they recorded, only if their command line
        names this project's state folder."""
        import psutil

        for pidfile in (self.folder / ".shipyard" / "run").glob("*.pid"):
            with suppress(ValueError, OSError, psutil.Error):
                process = psutil.Process(int(pidfile.read_text().split()[0]))
                if str(self.folder) in " ".join([*process.cmdline(), process.cwd()]):
                    for p in reversed(tree(process.pid)):
                        with suppress(psutil.Error):
                            p.kill()

    def task_seconds(self, out: str, task: str) -> float | None:
        """The run time of the named task of the flow run whose URL the command printed."""
        match = re.search(r"flow run: \S*/runs/flow-run/([0-9a-f-]{36})", out)
        if not match:
            return None
        api = f"http://127.0.0.1:{self.prefect_port}/api"
        runs = http_json(
            f"{api}/task_runs/filter", {"flow_runs": {"id": {"any_": [match.group(1)]}}}
        )
        for run in runs:
            if run.get("task_key", "").startswith(task) or run["name"].startswith(f"{task}-"):
                return float(run["total_run_time"])
        return None

    # -- bare bentoml serve of the Bento `shipyard serve` serves --

    def start_bare(self, bundle: Path) -> float:
        from shipyard.compiler import ServiceStep
        from shipyard.serving.deploy import serve_env

        plan = self.plan()
        step = plan.named(ServiceStep, SERVICE)
        saved = dict(os.environ)
        os.environ.update(self.env)
        try:
            env = serve_env(step)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        url = f"http://{step.host}:{step.port}/readyz"
        argv = [PYTHON, "-m", "bentoml", "serve", str(bundle), "--host", step.host]
        argv += ["--port", str(step.port)]
        log = open(self.folder / "bare-bentoml.log", "ab")  # noqa: SIM115 - closed in stop_bare
        started = time.perf_counter()
        self.bare = subprocess.Popen(
            argv,
            cwd=step.project_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._bare_log = log
        while True:
            if self.bare.poll() is not None:
                raise RuntimeError(
                    f"bare `bentoml serve` exited {self.bare.returncode}; "
                    f"see {self.folder / 'bare-bentoml.log'}"
                )
            self.bare_pids.update(p.pid for p in tree(self.bare.pid))
            if http_get(url) == 200:
                return time.perf_counter() - started
            if time.perf_counter() - started > READY_TIMEOUT:
                raise RuntimeError(f"bare `bentoml serve` not ready after {READY_TIMEOUT:.0f} s")
            time.sleep(0.05)

    def stop_bare(self) -> None:
        if self.bare is None:
            return
        self.bare_pids.update(p.pid for p in tree(self.bare.pid))
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.bare.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            self.bare.wait(timeout=15)
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.bare.pid, signal.SIGKILL)
        for pid in self.bare_pids:
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if self.bare.poll() is None:
            self.bare.wait(timeout=5)
        self._bare_log.close()
        self.bare = None
        self.bare_pids.clear()


def bento_folder(build_output: str) -> Path:
    """The Bento folder `shipyard serve` serves: the parent of the bundle `shipyard build`
    printed."""
    bundle = re.search(r"^\s*bundle\s+(\S+)\s*$", build_output, re.M)
    if not bundle:
        raise RuntimeError(f"could not read the bundle from `shipyard build`:\n{build_output}")
    return Path(bundle.group(1)).parent


# -- the measurements --------------------------------------------------------------------------


def measure_validate(
    project: Project, rows: int, repeats: int, spark: bool = False
) -> dict[str, Any]:
    from shipyard.compiler import DatasetStep
    from shipyard.demo_data import write_customers

    step = project.plan().named(DatasetStep, DATASET)
    rules = anchor_rules([e.model_dump(mode="json") for e in step.expectations])
    rules_file = project.folder / "rules.json"
    rules_file.write_text(json.dumps(rules))
    project.say(f"{rows:,} rows: writing the demo data ...")
    write_customers(project.data, rows=rows)
    shipyard_runs, pandas_runs = [], []
    for _ in range(repeats):
        project.say(f"{rows:,} rows: shipyard run validate-dataset {DATASET} ...")
        run = project.run("run", "validate-dataset", DATASET)
        expectations = re.search(r'"expectations":\s*(\d+)', run.stdout)
        shipyard_runs.append(
            {
                "wall_s": run.seconds,
                "task_s": project.task_seconds(run.stdout, "validate"),
                "peak_mb": run.peak_mb,
                "expectations": int(expectations.group(1)) if expectations else None,
            }
        )
        project.say(f"{rows:,} rows: the same {len(rules)} rules in plain pandas ...")
        anchor = Measured(
            [PYTHON, __file__, "--pandas", str(rules_file), str(project.data)],
            project.folder,
            project.env,
            3600,
        )
        found = re.search(r"^PANDASJSON (\{.*\})$", anchor.stdout, re.M)
        if not found:
            raise RuntimeError(f"the pandas anchor printed no result:\n{anchor.stderr[-3000:]}")
        checked = json.loads(found.group(1))
        if checked["failed"]:
            raise RuntimeError(f"plain pandas failed rules Shipyard passed: {checked['failed']}")
        pandas_runs.append({"wall_s": anchor.seconds, "peak_mb": anchor.peak_mb, **checked})
    spark_runs = []
    for _ in range(repeats if spark else 0):
        project.say(f"{rows:,} rows: shipyard run validate-dataset {DATASET}, engine spark ...")
        with project.on_spark():
            run = project.run("run", "validate-dataset", DATASET)
        spark_runs.append(
            {
                "wall_s": run.seconds,
                "task_s": project.task_seconds(run.stdout, "validate"),
                "peak_mb": run.peak_mb,
            }
        )
    return {
        "rows": rows,
        "compiled": len(step.expectations),
        "rules": len(rules),
        "rules_by_kind": _count_kinds(rules),
        "shipyard": shipyard_runs,
        "pandas": pandas_runs,
        **({"spark": spark_runs} if spark else {}),
    }


def anchor_rules(compiled: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The compiled expectations as the rules Great Expectations evaluates: exact duplicates
    once (a key column's not-null and its `not_null:` rule are one check), and the columns'
    existence as one rule (GX keeps one `expect_column_to_exist` of a suite; Shipyard checks the
    file's columns before it, so here it checks them all)."""
    rules: list[dict[str, Any]] = []
    seen: set[str] = set()
    columns: list[str] = []
    for rule in compiled:
        if rule["type"] == "expect_column_to_exist":
            columns.append(rule["kwargs"]["column"])
            continue
        key = json.dumps([rule["type"], rule["kwargs"]], sort_keys=True)
        if key not in seen:
            seen.add(key)
            rules.append(rule)
    if columns:
        exist = {"type": "columns_exist", "kwargs": {"columns": columns}}
        rules.insert(0, {**exist, "rule": f"schema({len(columns)} columns exist)"})
    return rules


def _count_kinds(rules: list[dict[str, Any]]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for rule in rules:
        kinds[rule["type"]] = kinds.get(rule["type"], 0) + 1
    return kinds


def timed(project: Project, argv: Sequence[str], repeats: int, check: bool = True) -> list[float]:
    """Seconds per run; `check=False` also times a command that exits non-zero (a rollout
    status before any rollout started says so and exits 1)."""
    return [
        Measured(argv, project.folder, project.env, 900, check=check).seconds
        for _ in range(repeats)
    ]


def measure_cli(project: Project, rows: int, repeats: int) -> dict[str, Any]:
    from shipyard.demo_data import write_customers
    from shipyard.runtime.mlflow_server import tracking_uri

    project.say(f"cache hit: {rows:,} rows, validate, then one real training ...")
    write_customers(project.data, rows=rows)
    project.run("run", "validate-dataset", DATASET)
    first = project.run("run", "train-model", MODEL)
    project.say("cache hit: train-model again, nothing changed ...")
    hits = [project.run("run", "train-model", MODEL) for _ in range(repeats)]
    uri = tracking_uri(project.plan())
    floors = {
        "python -c 'import prefect'": timed(project, [PYTHON, "-c", "import prefect"], repeats),
        "shipyard --version": timed(project, [SHIPYARD, "--version"], repeats),
        "MlflowClient().search_registered_models()": timed(
            project,
            [
                PYTHON,
                "-c",
                "from mlflow import MlflowClient; "
                f"print(len(MlflowClient({uri!r}).search_registered_models()))",
            ],
            repeats,
        ),
    }
    project.say("read-only commands ...")
    readonly = {
        "shipyard models list": timed(project, project.argv("models", "list"), repeats),
        f"shipyard models show {MODEL}": timed(
            project, project.argv("models", "show", MODEL), repeats
        ),
        f"shipyard rollout status {SERVICE}": timed(
            project, project.argv("rollout", "status", SERVICE), repeats, check=False
        ),
        f"shipyard data versions {DATASET}": timed(
            project, project.argv("data", "versions", DATASET), repeats
        ),
    }
    project.say(f"building {SERVICE} ...")
    bundle = bento_folder(project.run("build", SERVICE, timeout=1800).stdout)
    project.say(f"shipyard serve {SERVICE} ...")
    project.serving = True
    serve = project.run("serve", SERVICE, timeout=READY_TIMEOUT + 60)
    step = _service_step(project)
    ready = http_get(f"http://{step.host}:{step.port}/readyz") == 200
    readonly[f"shipyard serve {SERVICE} --status"] = timed(
        project, project.argv("serve", SERVICE, "--status"), repeats
    )
    stop = project.run("serve", SERVICE, "--stop", timeout=120)
    project.serving = False
    bare: float | None = None
    bare_note = ""
    project.say("bare bentoml serve of the same Bento ...")
    try:
        bare = project.start_bare(bundle)
    except RuntimeError as exc:
        bare_note = str(exc)
    finally:
        project.stop_bare()
    return {
        "rows": rows,
        "first_training_s": first.seconds,
        "cache_hit_s": [h.seconds for h in hits],
        "cache_hit_output": hits[-1].stdout[-1500:],
        "floors_s": floors,
        "readonly_s": readonly,
        "serve_s": serve.seconds,
        "serve_ready_after": ready,
        "serve_stop_s": stop.seconds,
        "bento_folder": str(bundle),
        "bare_bentoml_serve_s": bare,
        "bare_note": bare_note,
    }


def _service_step(project: Project) -> Any:
    from shipyard.compiler import ServiceStep

    return project.plan().named(ServiceStep, SERVICE)


# -- report ------------------------------------------------------------------------------------


def _med(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.1f}x" if a is not None and b else "-"


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f} MB" if unit == "MB" else f"{value:.2f} s"


def table(validate: list[dict[str, Any]], cli: dict[str, Any] | None) -> list[str]:
    rows: list[tuple[str, str, str, str]] = []
    for v in validate:
        n = f"{v['rows']:,} rows"
        s, p = v["shipyard"], v["pandas"]
        pandas_wall = _med([r["wall_s"] for r in p])
        pandas_rules = _med([r["total_s"] for r in p])
        on_spark_rows = (
            ("whole command", "wall_s", "s"),
            ("validate task", "task_s", "s"),
            ("peak RSS", "peak_mb", "MB"),
        )
        for what, key, unit in on_spark_rows:
            on_spark, on_pandas = (
                _med([r[key] for r in v.get("spark", [])]),
                _med([r[key] for r in s]),
            )
            if on_spark is not None:
                rows.append(
                    (
                        f"validate-dataset on Spark, {n}: {what}",
                        _fmt(on_spark, unit),
                        f"on pandas {_fmt(on_pandas, unit)}",
                        _ratio(on_spark, on_pandas),
                    )
                )
        rows += [
            (
                f"validate-dataset, {n}: whole command",
                _fmt(_med([r["wall_s"] for r in s]), "s"),
                f"pandas process {_fmt(pandas_wall, 's')}",
                _ratio(_med([r["wall_s"] for r in s]), pandas_wall),
            ),
            (
                f"validate-dataset, {n}: validate task",
                _fmt(_med([r["task_s"] for r in s]), "s"),
                f"pandas read+rules {_fmt(pandas_rules, 's')}",
                _ratio(_med([r["task_s"] for r in s]), pandas_rules),
            ),
            (
                f"validate-dataset, {n}: peak RSS",
                _fmt(_med([r["peak_mb"] for r in s]), "MB"),
                f"pandas process {_fmt(_med([r['peak_mb'] for r in p]), 'MB')}",
                _ratio(_med([r["peak_mb"] for r in s]), _med([r["peak_mb"] for r in p])),
            ),
        ]
    if cli is not None:
        floors = {k: _med(v) for k, v in cli["floors_s"].items()}
        prefect = floors["python -c 'import prefect'"]
        version = floors["shipyard --version"]
        mlflow = floors["MlflowClient().search_registered_models()"]
        hit = _med(cli["cache_hit_s"])
        rows += [
            (
                f"run train-model {MODEL} (cache hit)",
                _fmt(hit, "s"),
                f"import prefect {_fmt(prefect, 's')}",
                _ratio(hit, prefect),
            ),
            (
                f"run train-model {MODEL} (cache hit)",
                _fmt(hit, "s"),
                f"shipyard --version {_fmt(version, 's')}",
                _ratio(hit, version),
            ),
        ]
        for name, samples in cli["readonly_s"].items():
            took = _med(samples)
            rows.append(
                (name, _fmt(took, "s"), f"MLflow client {_fmt(mlflow, 's')}", _ratio(took, mlflow))
            )
            rows.append(
                (
                    name,
                    _fmt(took, "s"),
                    f"import prefect {_fmt(prefect, 's')}",
                    _ratio(took, prefect),
                )
            )
        bare = cli["bare_bentoml_serve_s"]
        rows.append(
            (
                f"serve {SERVICE} (until ready)",
                _fmt(cli["serve_s"], "s"),
                f"bare bentoml serve {_fmt(bare, 's')}" if bare else "bare bentoml serve: -",
                _ratio(cli["serve_s"], bare),
            )
        )
    header = ("command", "Shipyard", "anchor", "ratio")
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(4)]
    lines = [
        " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
        "-|-".join("-" * w for w in widths),
    ]
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return lines


def plot(validate: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from shipyard.figures import save_png

    rows = [v["rows"] for v in validate]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    series = (
        ("Shipyard command", "shipyard", "wall_s"),
        ("Shipyard validate task", "shipyard", "task_s"),
        ("pandas process", "pandas", "wall_s"),
        ("pandas read+rules", "pandas", "total_s"),
    )
    for label, who, key in series:
        left.plot(rows, [_med([r[key] for r in v[who]]) for v in validate], "o-", label=label)
    for label, who in (("Shipyard", "shipyard"), ("pandas", "pandas")):
        right.plot(
            rows, [_med([r["peak_mb"] for r in v[who]]) for v in validate], "o-", label=label
        )
    for axis, title, unit in ((left, "validate time", "s"), (right, "peak RSS", "MB")):
        axis.set_xscale("log")
        axis.set_xlabel("rows")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.legend()
    save_png(figure, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        default=",".join(str(r) for r in DEFAULT_ROWS),
        help="comma-separated data sizes for validate-dataset (default 10000,1000000,5000000)",
    )
    parser.add_argument("--quick", action="store_true", help="10k rows only")
    parser.add_argument("-n", "--repeats", type=int, default=1, help="runs per command")
    parser.add_argument("--skip-cli", action="store_true", help="only the validate-dataset rows")
    parser.add_argument(
        "--spark",
        action="store_true",
        help="also time validate-dataset with `engine: spark` (local[2]) at each size",
    )
    parser.add_argument("--workdir", type=Path, help="project folder (default: a temp folder)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "everyday.json")
    args = parser.parse_args(argv)
    sizes = (
        [10_000] if args.quick else sorted(int(r.replace("_", "")) for r in args.rows.split(","))
    )

    def say(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    folder = args.workdir or Path(tempfile.mkdtemp(prefix="shipyard-bench-everyday-"))
    if args.workdir:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    project = Project(folder, say)
    validate: list[dict[str, Any]] = []
    cli: dict[str, Any] | None = None
    try:
        project.start()
        for rows in sizes:
            validate.append(measure_validate(project, rows, args.repeats, args.spark))
        if not args.skip_cli:
            cli = measure_cli(project, sizes[0], args.repeats)
    finally:
        project.stop()
        if not args.workdir:
            shutil.rmtree(folder, ignore_errors=True)
    first = validate[0]
    evaluated = first["shipyard"][0]["expectations"]
    print(
        f"{first['compiled']} compiled expectations; Great Expectations evaluated {evaluated}; "
        f"plain pandas checks {first['rules']}: {first['rules_by_kind']}"
    )
    print("\n".join(table(validate, cli)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"validate": validate, "cli": cli}, indent=2))
    print(f"results: {args.out}")
    with suppress(ImportError):
        png = args.out.with_suffix(".png")
        plot(validate, png)
        print(f"plot: {png}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--pandas":
        pandas_main(sys.argv[2:])
        sys.exit(0)
    sys.exit(main())
