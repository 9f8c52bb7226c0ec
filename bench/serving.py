"""Shipyard's generic service against bare BentoML and bare FastAPI: same model, machine, run.

Builds a small project in --workdir the way a user would (breast-cancer data, `shipyard
validate`, `server start`, `apply`, `run validate-dataset`, `run train-model`, `build`), then
serves the built model three ways:

  bare      bench/serving_bare.py: BentoML 1.4 defaults, sync API, the MLflow model folder
  fastapi   bench/serving_fastapi.py: FastAPI + uvicorn (one worker, sync endpoint), the same
            MLflow model folder
  shipyard  the Bento `shipyard build` made: auth, rate limits, metrics, routing (sticky key),
            adaptive batching, request and prediction logging (with masking) all on

Each cell (concurrency x payload) starts each target fresh, warms it up, then loads it with
a closed-loop asyncio+httpx client in a separate process (so client CPU is not counted as
server CPU). Target order alternates between cells and repeats (forwards, then reversed).
Per cell it prints req/s, p50, p99, server CPU ms per request (utime+stime of the server's
process tree over the measured window / completed requests) and the ratios of shipyard
against each baseline (shipyard/bare and shipyard/fastapi: CPU/req, p50, p99, req/s).
Product targets, checked on the ratios of the medians in every cell:

  shipyard/bare     CPU/req <= 0.6 and p99 <= 0.6
  shipyard/fastapi  CPU/req <= 1.0

    .venv/bin/python bench/serving.py                          # 15 s per cell, 2 repeats (~10 min)
    .venv/bin/python bench/serving.py --duration 5 --repeats 1 # smoke run

Writes the raw results as JSON (--out) and a bar chart (PNG) beside it. Server logs go to
<workdir>/logs/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
SHIPYARD = str(Path(PYTHON).parent / "shipyard")
SERVICE = "cancer-api"
PORT_RANGE = (18100, 18999)
TARGETS = ("bare", "fastapi", "shipyard")
BASELINES = ("bare", "fastapi")  # shipyard is compared against each
# Product targets on shipyard/<baseline> ratios of the medians, every cell: metric -> at most.
PRODUCT_TARGETS: dict[str, dict[str, float]] = {
    "bare": {"cpu_per_req": 0.6, "p99": 0.6},
    "fastapi": {"cpu_per_req": 1.0},
}
# ratio name -> the per-run field it divides (shipyard / baseline)
RATIO_FIELDS = {
    "cpu_per_req": "cpu_ms_per_req",
    "p50": "p50_ms",
    "p99": "p99_ms",
    "throughput": "rps",
}
RATIO_LABELS = {"cpu_per_req": "CPU/req", "p50": "p50", "p99": "p99", "throughput": "req/s"}
BATCH_ROWS = 100
READY_TIMEOUT = 240.0
STOP_GRACE = 15.0


# -- load generator (runs as its own process: `serving.py --loadgen ...`) --------------------


def _pct(sorted_values: Sequence[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


async def _load(url: str, body: bytes, headers: dict[str, str], conc: int, duration: float) -> dict:
    """Closed loop: `conc` keep-alive connections, each sending the next request on reply.

    Each connection has its own client: one shared httpx pool costs the client more CPU per
    request the more requests finish at once (its pool bookkeeping scans every waiting request),
    which penalises a server that answers in bursts, as adaptive batching does.
    """
    import httpx

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors: dict[str, int] = {}
    end = time.perf_counter() + duration

    async def worker() -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                try:
                    response = await client.post(url, content=body, headers=headers)
                    await response.aread()
                except httpx.HTTPError as exc:
                    name = type(exc).__name__
                    errors[name] = errors.get(name, 0) + 1
                    await asyncio.sleep(0.01)
                    continue
                key = str(response.status_code)
                statuses[key] = statuses.get(key, 0) + 1
                if 200 <= response.status_code < 300:
                    latencies.append((time.perf_counter() - t0) * 1e3)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    elapsed = time.perf_counter() - started
    values = sorted(latencies)
    return {
        "ok": len(values),
        "non_2xx": sum(n for s, n in statuses.items() if not s.startswith("2")),
        "statuses": statuses,
        "transport_errors": errors,
        "seconds": elapsed,
        "rps": len(values) / elapsed,
        "p50_ms": _pct(values, 50),
        "p90_ms": _pct(values, 90),
        "p99_ms": _pct(values, 99),
        "max_ms": values[-1] if values else 0.0,
        "mean_ms": statistics.fmean(values) if values else 0.0,
    }


def loadgen_main(argv: Sequence[str]) -> None:
    ap = argparse.ArgumentParser(prog="serving.py --loadgen")
    ap.add_argument("url")
    ap.add_argument("body_file")
    ap.add_argument("-c", type=int, required=True)
    ap.add_argument("-d", type=float, required=True)
    ap.add_argument("-H", action="append", default=[])
    a = ap.parse_args(argv)
    headers = {"content-type": "application/json"}
    for h in a.H:
        k, _, v = h.partition(":")
        headers[k.strip()] = v.strip()
    result = asyncio.run(_load(a.url, Path(a.body_file).read_bytes(), headers, a.c, a.d))
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["client_cpu_s"] = usage.ru_utime + usage.ru_stime
    print("LOADJSON " + json.dumps(result), flush=True)


def run_load(url: str, body: Path, headers: dict[str, str], conc: int, duration: float) -> dict:
    cmd = [PYTHON, __file__, "--loadgen", url, str(body), "-c", str(conc), "-d", str(duration)]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=duration + 120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    match = re.search(r"^LOADJSON (\{.*\})$", out, re.M)
    if not match:
        raise RuntimeError(f"the load generator failed:\n{out}")
    return json.loads(match.group(1))


# -- processes --------------------------------------------------------------------------------


def free_port(taken: set[int]) -> int:
    """A port in 18100-18999 nobody listens on (below the ephemeral range, see baseline notes)."""
    candidates = list(range(PORT_RANGE[0], PORT_RANGE[1] + 1))
    random.shuffle(candidates)
    for port in candidates:
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise RuntimeError(f"no free port in {PORT_RANGE[0]}-{PORT_RANGE[1]}")


def http_get(url: str, timeout: float = 1.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def http_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode(errors="replace")


def tree(pid: int) -> list[Any]:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_cpu_s(pid: int) -> float:
    """utime+stime of a process and all its descendants (live ones), in seconds."""
    import psutil

    total = 0.0
    for p in tree(pid):
        with suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def tree_rss_mb(pid: int) -> float:
    import psutil

    total = 0
    for p in tree(pid):
        with suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total / 2**20


class Server:
    """One server (`bentoml serve` or `uvicorn`) in its own process group, output in a log file."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], cwd: Path, port: int, log: Path
    ) -> None:
        self.name, self.argv, self.env, self.cwd, self.port, self.log = (
            name,
            argv,
            env,
            cwd,
            port,
            log,
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.pids: set[int] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        with open(self.log, "ab") as log:
            log.write(f"\n### {dt.datetime.now().isoformat()} {' '.join(self.argv)}\n".encode())
            started = time.perf_counter()
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self.proc.returncode} while starting; "
                    f"see {self.log}"
                )
            self.pids.update(p.pid for p in tree(self.proc.pid))
            if http_get(self.url + "/readyz", timeout=0.5) == 200:
                self.pids.update(p.pid for p in tree(self.proc.pid))
                return time.perf_counter() - started
            if time.perf_counter() - started > READY_TIMEOUT:
                raise RuntimeError(
                    f"{self.name} not ready after {READY_TIMEOUT:.0f} s; see {self.log}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM the process group, wait, then SIGKILL whatever of its tree is left."""
        if self.proc is None:
            return
        self.pids.update(p.pid for p in tree(self.proc.pid))
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=STOP_GRACE)
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in self.pids:  # children that left the group, recorded by PID
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(timeout=5)
        self.proc = None
        self.pids.clear()


# -- the project ------------------------------------------------------------------------------


def write_data(workdir: Path) -> tuple[list[str], Any]:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.lower().replace(" ", "_") for c in frame.columns]
    features = [c for c in frame.columns if c != "target"]
    frame["malignant"] = frame.pop("target") == 0  # sklearn: 0 = malignant
    frame.insert(0, "id", range(1, len(frame) + 1))
    (workdir / "data").mkdir(parents=True)
    frame.to_parquet(workdir / "data" / "cancer.parquet", index=False)
    return features, frame


def write_spec(
    workdir: Path, features: list[str], ports: dict[str, int], checked: bool = False
) -> Path:
    schema = "\n".join(f"      {c}: float" for c in features)
    # --request-checks: a rule per feature, so the service checks 30 rules on every row
    rules = "".join(f"\n      - between: {{column: {c}, min: 0}}" for c in features if checked)
    spec = f"""\
project: servebench
profiles:
  local:
    prefect: {{port: {ports["prefect"]}}}
    mlflow: {{port: {ports["mlflow"]}}}
datasets:
  cancer:
    description: sklearn's breast-cancer data, one row per tumour.
    path: data/cancer.parquet
    key: id
    schema:
      id: int
{schema}
      malignant: bool
    expectations:
      - not_null: [id, malignant]{rules}
models:
  cancer:
    task: classification
    dataset: cancer
    target: malignant
    features: [{", ".join(features)}]
    estimator: {{class: sklearn.linear_model.LogisticRegression, params: {{max_iter: 1000}}}}
    gate: {{roc_auc: ">= 0.5"}}
services:
  {SERVICE}:
    model: cancer
    port: {ports["shipyard"]}
    auth:
      api_keys:
        bench: {{key: "${{secret:bench-key}}", roles: [predict, feedback]}}
    rate_limit: {{per_key: 1000000/second, global: 1000000/second}}
    logging: {{mask: [mean_radius]}}
    routing: {{sticky_key: mean_radius}}
    batching: {{max_batch_size: {BATCH_ROWS}}}
"""
    path = workdir / "pipelines.yaml"
    path.write_text(spec)
    return path


def shipyard(spec: Path, env: dict[str, str], *args: str, timeout: float = 900) -> str:
    """Run `shipyard -f spec ARGS` from the project folder; raise with its output on failure."""
    done = subprocess.run(
        [SHIPYARD, "-f", str(spec), *args],
        cwd=spec.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"`shipyard {' '.join(args)}` failed (exit {done.returncode}):\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout


def build_project(
    workdir: Path, env: dict[str, str], ports: dict[str, int], say: Any, checked: bool = False
) -> dict:
    features, frame = write_data(workdir)
    spec = write_spec(workdir, features, ports, checked)
    shipyard(spec, env, "validate")
    say(f"spec {spec} valid; starting the Prefect server on port {ports['prefect']} ...")
    shipyard(spec, env, "server", "start")
    shipyard(spec, env, "apply")
    say("applied; validating the dataset ...")
    shipyard(spec, env, "run", "validate-dataset", "cancer")
    say("training the model ...")
    out = shipyard(spec, env, "run", "train-model", "cancer")
    gate = re.search(r'"gate_summary":\s*"([^"]*)"', out)
    say(f"trained: {gate.group(1) if gate else '(gate summary not found)'}; building the Bento ...")
    out = shipyard(spec, env, "build", SERVICE)
    tag = re.search(r"built Bento (\S+?):\s", out)
    bundle = re.search(r"^\s*bundle\s+(\S+)\s*$", out, re.M)
    if not tag or not bundle:
        raise RuntimeError(f"could not read the Bento tag and bundle from `shipyard build`:\n{out}")
    say(f"built {tag.group(1)}; bundle {bundle.group(1)}")
    return {
        "spec": spec,
        "features": features,
        "frame": frame,
        "tag": tag.group(1),
        "bundle": Path(bundle.group(1)),
    }


def shipyard_server(project: dict, env: dict[str, str], logs: Path) -> Server:
    """The built Bento, started the way `shipyard serve` starts it (deploy.serve_env/_argv)."""
    from shipyard import load_project
    from shipyard.compiler import ServiceStep
    from shipyard.serving.build import BuildResult
    from shipyard.serving.config import read_config
    from shipyard.serving.deploy import record_deploy, serve_env

    saved = dict(os.environ)
    os.environ.update(env)  # secrets resolve from SHIPYARD_SECRET_* in this process
    try:
        plan = load_project(project["spec"]).require_plan()
        step = plan.named(ServiceStep, SERVICE)
        server_env = serve_env(step)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    config = read_config(project["bundle"])
    # what `shipyard serve` does before starting: the control state names this Bento
    record_deploy(step, BuildResult(project["tag"], project["bundle"], config, True, []))
    return Server(
        "shipyard",
        _serve_argv(step, project, config),
        server_env,
        Path(step.project_dir),
        step.port,
        logs / "shipyard.log",
    )


def _serve_argv(step: Any, project: dict, config: Any) -> list[str]:
    """The command `shipyard serve` runs. deploy._argv is private and has taken either the
    tag or the build result; give it what it asks for, else build the command by hand."""
    import inspect
    from types import SimpleNamespace

    from shipyard.serving.deploy import _argv

    try:
        if "tag" in inspect.signature(_argv).parameters:
            return list(_argv(step, project["tag"]))
        built = SimpleNamespace(tag=project["tag"], bundle=project["bundle"], config=config)
        return list(_argv(step, built))
    except (TypeError, AttributeError, ValueError):
        return [
            PYTHON,
            "-m",
            "bentoml",
            "serve",
            str(project["bundle"].parent),
            "--host",
            step.host,
            "--port",
            str(step.port),
        ]


def bare_server(project: dict, env: dict[str, str], port: int, workdir: Path, logs: Path) -> Server:
    home = workdir / "bare-bentoml-home"  # its own: BentoML wipes the Prometheus dir at start
    home.mkdir(exist_ok=True)
    server_env = {
        **env,
        "BENTOML_HOME": str(home),
        "BARE_MODEL_DIR": str(project["bundle"] / "models" / "stable"),
    }
    argv = [
        PYTHON,
        "-m",
        "bentoml",
        "serve",
        "serving_bare:BareService",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return Server("bare", argv, server_env, HERE, port, logs / "bare.log")


def fastapi_server(project: dict, env: dict[str, str], port: int, logs: Path) -> Server:
    """bench/serving_fastapi.py under the plain uvicorn CLI, one worker, uvicorn's defaults."""
    server_env = {**env, "FASTAPI_MODEL_DIR": str(project["bundle"] / "models" / "stable")}
    argv = [
        PYTHON,
        "-m",
        "uvicorn",
        "serving_fastapi:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    return Server("fastapi", argv, server_env, HERE, port, logs / "fastapi.log")


def write_bodies(project: dict, workdir: Path) -> dict[str, Path]:
    frame = project["frame"]
    rows = frame[project["features"]].to_dict(orient="records")
    bodies = {"single": [rows[0]], "batch100": rows[:BATCH_ROWS]}
    paths = {}
    for name, chosen in bodies.items():
        paths[name] = workdir / f"body_{name}.json"
        paths[name].write_text(json.dumps({"rows": chosen}))
    return paths


def check_answers(
    server: Server, bodies: dict[str, Path], headers: dict[str, str], expected: dict[str, list[int]]
) -> None:
    """Both payloads answer 200 with one prediction per row, equal to the model's own."""
    for name, path in bodies.items():
        status, body = http_post(
            server.url + "/predict",
            path.read_bytes(),
            {"content-type": "application/json", **headers},
        )
        if status != 200:
            raise RuntimeError(f"{server.name} /predict ({name}) answered {status}: {body}")
        if server.name == "shipyard":
            got = [int(p["prediction"]) for p in body["predictions"]]
        else:
            got = [int(p) for p in body]
        if got != expected[name]:
            raise RuntimeError(
                f"{server.name} /predict ({name}) returned {got[:10]}..., "
                f"expected {expected[name][:10]}..."
            )


# -- reporting --------------------------------------------------------------------------------


def _fmt(values: Sequence[float], digits: int) -> str:
    return " / ".join(f"{v:.{digits}f}" for v in values)


def summarize(records: list[dict], targets: Sequence[str]) -> list[dict]:
    """Per cell: each target's runs and medians, and shipyard/<baseline> ratios of the medians
    (and per repeat) against each baseline that ran, with the product targets checked."""
    cells: dict[tuple[int, str], dict[str, list[dict]]] = {}
    for r in records:
        cells.setdefault((r["conc"], r["payload"]), {}).setdefault(r["target"], []).append(r)
    out = []
    for (conc, payload), by_target in cells.items():
        cell: dict[str, Any] = {"conc": conc, "payload": payload, "targets": {}, "shipyard_vs": {}}
        for t in targets:
            runs = sorted(by_target.get(t, []), key=lambda r: r["repeat"])
            if not runs:
                continue
            cell["targets"][t] = {
                "runs": runs,
                **{
                    f"median_{k}": statistics.median(r[k] for r in runs)
                    for k in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_req")
                },
                "non_2xx": sum(r["non_2xx"] for r in runs),
                "transport_errors": sum(sum(r["transport_errors"].values()) for r in runs),
            }
        s = cell["targets"].get("shipyard")
        for base in BASELINES:
            b = cell["targets"].get(base)
            if s is None or b is None:
                continue
            ratio = {k: s[f"median_{f}"] / b[f"median_{f}"] for k, f in RATIO_FIELDS.items()}
            paired = [
                (rs, rb) for rs in s["runs"] for rb in b["runs"] if rs["repeat"] == rb["repeat"]
            ]
            checks = {
                metric: {"at_most": limit, "ratio": ratio[metric], "met": ratio[metric] <= limit}
                for metric, limit in PRODUCT_TARGETS[base].items()
            }
            cell["shipyard_vs"][base] = {
                "ratio": ratio,
                "ratio_per_repeat": {
                    k: [rs[f] / rb[f] for rs, rb in paired] for k, f in RATIO_FIELDS.items()
                },
                "targets": checks,
                "target_met": all(c["met"] for c in checks.values()),
            }
        out.append(cell)
    return out


def verdicts(cells: list[dict]) -> list[dict]:
    """One line per product target: met in every cell that measured it, or where it missed."""
    lines = []
    for base, limits in PRODUCT_TARGETS.items():
        for metric, limit in limits.items():
            seen = [c for c in cells if base in c["shipyard_vs"]]
            missed = [
                {
                    "cell": f"c={c['conc']} {c['payload']}",
                    "ratio": c["shipyard_vs"][base]["ratio"][metric],
                }
                for c in seen
                if not c["shipyard_vs"][base]["targets"][metric]["met"]
            ]
            lines.append(
                {
                    "against": base,
                    "metric": metric,
                    "at_most": limit,
                    "cells": len(seen),
                    "missed": missed,
                    "met": bool(seen) and not missed,
                }
            )
    return lines


def print_tables(cells: list[dict]) -> None:
    for cell in cells:
        print(
            f"\n== concurrency {cell['conc']}, payload {cell['payload']} "
            f"(values per repeat, in run order; ratios of the medians) =="
        )
        heads = ("req/s", "p50 ms", "p99 ms", "CPU ms/req")
        print(f"{'target':<9} " + " ".join(f"{h:>15}" for h in heads) + f" {'non-2xx/err':>12}")
        for name, t in cell["targets"].items():
            runs = t["runs"]
            print(
                f"{name:<9} {_fmt([r['rps'] for r in runs], 0):>15} "
                f"{_fmt([r['p50_ms'] for r in runs], 1):>15} "
                f"{_fmt([r['p99_ms'] for r in runs], 0):>15} "
                f"{_fmt([r['cpu_ms_per_req'] for r in runs], 2):>15} "
                f"{t['non_2xx'] + t['transport_errors']:>12}"
            )
        for base, vs in cell["shipyard_vs"].items():
            r, per = vs["ratio"], vs["ratio_per_repeat"]
            parts = [f"{label} {r[k]:.2f} ({_fmt(per[k], 2)})" for k, label in RATIO_LABELS.items()]
            print(f"{'shipyard/' + base:<17} " + "  ".join(parts))
            checks = [
                f"{RATIO_LABELS[m]} <= {c['at_most']}: {'met' if c['met'] else 'MISSED'}"
                for m, c in vs["targets"].items()
            ]
            verdict = "met" if vs["target_met"] else "MISSED"
            print(f"{'':<17} target {verdict} ({'; '.join(checks)})")
    lines = verdicts(cells)
    if not any(v["cells"] for v in lines):
        print("\nproduct targets: not checked (need shipyard and at least one baseline)")
        return
    print("\n== product targets: shipyard/<baseline> ratio of the medians, in every cell ==")
    for v in lines:
        what = f"shipyard/{v['against']:<8} {RATIO_LABELS[v['metric']]:<8} <= {v['at_most']:<4}"
        if not v["cells"]:
            print(f"{what} not measured")
        elif v["met"]:
            print(f"{what} met in {v['cells']}/{v['cells']} cells")
        else:
            where = ", ".join(f"{m['cell']} ({m['ratio']:.2f})" for m in v["missed"])
            print(f"{what} MISSED in {len(v['missed'])}/{v['cells']} cells: {where}")
    measured = [v for v in lines if v["cells"]]
    missed = [v for v in measured if not v["met"]]
    print(
        f"overall: {len(measured) - len(missed)}/{len(measured)} targets met"
        + ("" if len(measured) == len(lines) else f" ({len(lines) - len(measured)} not measured)")
    )


def plot(cells: list[dict], targets: Sequence[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"c={c['conc']}\n{c['payload']}" for c in cells]
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    width = 0.8 / max(len(targets), 1)
    for ax, key, title in (
        (axes[0], "cpu_ms_per_req", "server CPU ms per request"),
        (axes[1], "p99_ms", "p99 latency, ms"),
    ):
        for i, t in enumerate(targets):
            xs, ys, lo, hi = [], [], [], []
            for j, c in enumerate(cells):
                if t not in c["targets"]:
                    continue
                values = [r[key] for r in c["targets"][t]["runs"]]
                median = statistics.median(values)
                xs.append(j + (i - (len(targets) - 1) / 2) * width)
                ys.append(median)
                lo.append(median - min(values))
                hi.append(max(values) - median)
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=t)
        ax.set_xticks(range(len(cells)), labels)
        ax.set_title(title + " (median, bars: min-max)", fontsize=10)
        ax.legend()
    ax = axes[2]
    series = [(b, m) for b in BASELINES for m in ("cpu_per_req", "p99", "throughput")]
    width = 0.8 / len(series)
    for i, (base, metric) in enumerate(series):
        xs, ys = [], []
        for j, c in enumerate(cells):
            if base in c["shipyard_vs"]:
                xs.append(j + (i - (len(series) - 1) / 2) * width)
                ys.append(c["shipyard_vs"][base]["ratio"][metric])
        if xs:
            ax.bar(
                xs,
                ys,
                width,
                color=f"C{3 + i % 3}",
                hatch="//" if base == "fastapi" else None,
                edgecolor="white" if base == "fastapi" else None,
                label=f"{RATIO_LABELS[metric]} vs {base}",
            )
    for limit in sorted({v for limits in PRODUCT_TARGETS.values() for v in limits.values()}):
        ax.axhline(limit, color="black", linestyle="--", linewidth=0.8)
        ax.annotate(f"{limit:g}", (1.0, limit), xycoords=("axes fraction", "data"), fontsize=8)
    ax.set_xticks(range(len(cells)), labels)
    ax.set_title(
        "shipyard / baseline (ratio of medians)\n"
        "targets: CPU/req, p99 <= 0.6 vs bare; CPU/req <= 1.0 vs fastapi",
        fontsize=10,
    )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle("Shipyard service vs bare BentoML and bare FastAPI, same model")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def measure(
    server: Server,
    bodies: dict[str, Path],
    payload: str,
    headers: dict[str, str],
    expected: dict[str, list[int]],
    conc: int,
    a: argparse.Namespace,
) -> dict:
    """Start the server, check it, warm it up, load it, stop it: one measured run."""
    try:
        startup = server.start()
        check_answers(server, bodies, headers, expected)
        url, body = server.url + "/predict", bodies[payload]
        if a.warmup > 0:
            run_load(url, body, headers, conc, a.warmup)
        time.sleep(0.5)
        assert server.proc is not None
        cpu0 = tree_cpu_s(server.proc.pid)
        result = run_load(url, body, headers, conc, a.duration)
        cpu1 = tree_cpu_s(server.proc.pid)
        rss = tree_rss_mb(server.proc.pid)
    finally:
        server.stop()
    return {
        "startup_s": round(startup, 2),
        "server_cpu_s": cpu1 - cpu0,
        "cpu_ms_per_req": (cpu1 - cpu0) * 1000 / max(result["ok"] + result["non_2xx"], 1),
        "rss_mb": round(rss, 1),
        "loadavg": os.getloadavg(),
        **result,
    }


def save(out: Path, meta: dict, records: list[dict], cells: list[dict]) -> None:
    """The raw records, the per-cell summary (without the repeated runs) and the product-target
    verdicts as JSON."""
    summary = [
        {
            **c,
            "targets": {
                t: {k: v for k, v in d.items() if k != "runs"} for t, d in c["targets"].items()
            },
        }
        for c in cells
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "records": records, "cells": summary, "verdicts": verdicts(cells)}
    out.write_text(json.dumps(document, indent=2))


# -- main -------------------------------------------------------------------------------------


def stop_prefect_by_pid(workdir: Path) -> None:
    """Fallback when `shipyard server stop` fails: stop the Prefect server this run started, by
    the PID in its work dir's state folder, if that process is still a Prefect server there."""
    pid_file = workdir / ".shipyard" / "run" / "prefect-server.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        cwd = Path(os.readlink(f"/proc/{pid}/cwd")).resolve()
    except (OSError, ValueError, IndexError):
        return  # no PID file, or the process is gone
    if b"prefect" not in b" ".join(cmdline) or cwd != workdir:
        print(f"warning: PID {pid} in {pid_file} is not this run's Prefect server", file=sys.stderr)
        return
    print(f"stopping the Prefect server by its PID {pid}", file=sys.stderr)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)  # `shipyard server start` gives it its own session
        except (ProcessLookupError, PermissionError):
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        for _ in range(int(STOP_GRACE * 10)):
            if not Path(f"/proc/{pid}").exists():
                return
            with suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)


def _wipe(workdir: Path) -> None:
    if workdir.exists():
        spec = workdir / "pipelines.yaml"
        ours = spec.exists() and "project: servebench" in spec.read_text()
        if any(workdir.iterdir()) and not ours:
            sys.exit(
                f"{workdir} is not empty and not a servebench work dir; pick another --workdir"
            )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/shipyard-bench-serving"),
        help="project folder, wiped at start (default: %(default)s)",
    )
    ap.add_argument("--duration", type=float, default=15.0, help="measured seconds per cell")
    ap.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds before each cell")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--conc", default="8,32", help="concurrencies, e.g. 8,32")
    ap.add_argument("--payloads", default="single,batch100", help="single and/or batch100")
    ap.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help="comma-separated subset of %(default)s; ratios need shipyard and a baseline",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results JSON (default .shipyard/bench/serving-<timestamp>.json); "
        "the PNG chart goes beside it",
    )
    ap.add_argument(
        "--request-checks",
        action="store_true",
        help="give the dataset a `between` rule per feature: the service checks 30 rules a row",
    )
    a = ap.parse_args(argv)

    concs = [int(c) for c in a.conc.split(",") if c]
    payloads = [p for p in a.payloads.split(",") if p]
    targets = [t for t in a.targets.split(",") if t]
    if unknown := [t for t in targets if t not in TARGETS] + [
        p for p in payloads if p not in ("single", "batch100")
    ]:
        ap.error(f"unknown target or payload: {', '.join(unknown)}")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = (a.out or ROOT / ".shipyard" / "bench" / f"serving-{stamp}.json").resolve()
    workdir = a.workdir.resolve()
    t_start = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.0f}s] {msg}", flush=True)

    def on_sigterm(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    _wipe(workdir)
    logs = workdir / "logs"
    logs.mkdir()
    key = secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "SHIPYARD_SECRET_BENCH_KEY": key,
        "BENTOML_DO_NOT_TRACK": "True",
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DVC_NO_ANALYTICS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("SHIPYARD_SPEC", None)
    env.pop("SHIPYARD_PROFILE", None)
    taken: set[int] = set()
    ports = {
        name: free_port(taken) for name in ("prefect", "mlflow", "shipyard", "bare", "fastapi")
    }
    spec_path = workdir / "pipelines.yaml"
    servers: dict[str, Server] = {}
    records: list[dict] = []
    try:
        say(f"work dir {workdir}; ports {ports}")
        project = build_project(workdir, env, ports, say, a.request_checks)
        bodies = write_bodies(project, workdir)
        import mlflow.sklearn

        model = mlflow.sklearn.load_model(str(project["bundle"] / "models" / "stable"))
        expected = {}
        for name, path in bodies.items():
            rows = json.loads(path.read_text())["rows"]
            frame = project["frame"][project["features"]].iloc[: len(rows)]
            expected[name] = [int(p) for p in model.predict(frame)]
        auth = {"authorization": f"Bearer {key}"}
        servers = {
            "bare": bare_server(project, env, ports["bare"], workdir, logs),
            "fastapi": fastapi_server(project, env, ports["fastapi"], logs),
            "shipyard": shipyard_server(project, env, logs),
        }
        headers = {"bare": {}, "fastapi": {}, "shipyard": auth}
        cells = [(c, p) for c in concs for p in payloads]
        n = 0
        for rep in range(1, a.repeats + 1):
            for ci, (conc, payload) in enumerate(cells):
                # alternate the order between cells and between repeats (forwards, reversed):
                # a linear drift hits every target alike
                order = targets if (rep + ci) % 2 else list(reversed(targets))
                for target in order:
                    n += 1
                    record = {"repeat": rep, "conc": conc, "payload": payload, "target": target}
                    record |= measure(
                        servers[target], bodies, payload, headers[target], expected, conc, a
                    )
                    records.append(record)
                    say(
                        f"{n}/{a.repeats * len(cells) * len(order)} rep {rep} c={conc:<2} "
                        f"{payload:<8} {target:<8} {record['rps']:7.0f} req/s  "
                        f"p50 {record['p50_ms']:6.1f}  p99 {record['p99_ms']:6.0f} ms  "
                        f"CPU/req {record['cpu_ms_per_req']:.2f} ms  non-2xx {record['non_2xx']}  "
                        f"errors {sum(record['transport_errors'].values())}  "
                        f"(start {record['startup_s']:.1f}s, load {os.getloadavg()[0]:.1f})"
                    )
    except KeyboardInterrupt:
        say("interrupted; stopping servers")
        return 130
    finally:
        for server in servers.values():
            server.stop()
        if spec_path.exists():
            try:
                shipyard(spec_path, env, "server", "stop", timeout=120)
            except Exception as exc:  # keep going: report what could not be stopped
                print(f"warning: `shipyard server stop` failed: {exc}", file=sys.stderr)
                stop_prefect_by_pid(workdir)
        if records:
            cells_summary = summarize(records, targets)
            meta = {
                "started": stamp,
                "args": {k: str(v) for k, v in vars(a).items()},
                "workdir": str(workdir),
                "cpus": os.cpu_count(),
                "python": sys.version.split()[0],
                "client": "asyncio+httpx closed loop, one client (keep-alive connection) per slot",
                "product_targets": {
                    f"shipyard/{b}": {k: f"<= {v}" for k, v in limits.items()}
                    for b, limits in PRODUCT_TARGETS.items()
                },
            }
            save(out, meta, records, cells_summary)
            print_tables(cells_summary)
            png = out.with_suffix(".png")
            plot(cells_summary, targets, png)
            print(f"\nresults {out}\nchart   {png}\nserver logs {logs}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--loadgen":
        loadgen_main(sys.argv[2:])
    else:
        sys.exit(main())
