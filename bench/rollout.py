"""Canary rollouts under steady load: Shipyard's analysis against fixed thresholds (Argo, Flagger).

One project, one served service, steady load from 127.0.0.1 (bounded request rate), and four
rollouts of it in one run:

    healthy   a version like stable                   expected: promoted
    failing   a version that fails 20% of its calls   expected: rolled back
    slower    a version 30% slower, far under the max expected: rolled back (by the comparison)
    blue-green a healthy version, switched at once    expected: promoted, no request failed

For each canary the same intervals are also judged as Argo Rollouts and Flagger judge them,
with the fixed thresholds alone (value above `max` fails), so the two decisions sit side by
side. Printed: the decision, time to rollback in analysis intervals (target: within two),
requests that failed for users answered by stable (target: zero), requests failed during the
blue-green switch (target: zero), and the controller's CPU per analysis interval.

    .venv/bin/python bench/rollout.py                  # ~4 min
    .venv/bin/python bench/rollout.py --interval 3     # shorter intervals, noisier
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the fault-carrying model of the test suite

for key, value in {
    "DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "True",
    "DVC_NO_ANALYTICS": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}.items():
    os.environ.setdefault(key, value)

KEY = "bench-rollout-key-0123456789"
SPEC_REST = """
models:
  churn:
    task: classification
    dataset: customers
    target: churned
    features: [tenure_months, monthly_charges, support_calls, data_usage_gb]
    train: support_models:train_faulty
    gate: {{roc_auc: ">= 0.5"}}
services:
  churn-api:
    model: churn
    port: {port}
    auth: {{api_keys: {{app: {{key: "${{secret:bench-key}}", roles: [predict, admin]}}}}}}
rollouts:
  churn-api:
    strategy: {strategy}
    candidate: challenger
    smoke_requests: 0
{stages}
    analysis:
      interval: {interval}s
      min_requests: 20
      metrics:
        - {{name: error_rate, max: 5%, compare: stable}}
        - {{name: latency_p90, max: 1s, compare: stable, margin: 1.1}}
"""
MODEL = "bench-rollout.churn"


class Load:
    """Bounded steady load: `rps` requests a second from four threads, counted per variant."""

    def __init__(self, url: str, rows: list[dict[str, Any]], rps: float) -> None:
        self.url, self.rows, self.pause = url, rows, 4 / rps
        self.stop = threading.Event()
        self.seen: Counter[tuple[str, int]] = Counter()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._send, daemon=True) for _ in range(4)]
        for thread in self.threads:
            thread.start()

    def _send(self) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                began = time.monotonic()
                try:
                    answer = client.post(
                        self.url + "/predict", json=random.choice(self.rows), headers=headers
                    )
                    if answer.status_code == 200:
                        variant = answer.json()["predictions"][0]["variant"]
                    else:
                        message = answer.json().get("message", "")
                        variant = message.split("'")[1] if message.startswith("variant '") else "?"
                    status = answer.status_code
                except Exception:  # the bench counts what a client would see
                    variant, status = "unreachable", 0
                with self.lock:
                    self.seen[(variant, status)] += 1
                time.sleep(max(0.0, self.pause - (time.monotonic() - began)))

    def take(self) -> Counter[tuple[str, int]]:
        with self.lock:
            seen, self.seen = self.seen, Counter()
        return seen

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def measured_controller() -> type:
    """The controller, with the CPU time its analysis stages take (this thread's only)."""
    from shipyard.rollouts.controller import Controller

    class Measured(Controller):
        cpu: list[float]

        def _stage(self, state: Any) -> Any:
            began = time.thread_time()
            try:
                return super()._stage(state)
            finally:
                self.cpu.append(time.thread_time() - began)

    return Measured


def threshold_only(state: Any, failure_limit: int) -> tuple[str, int | None]:
    """The same intervals judged by fixed thresholds alone, as Argo and Flagger do."""
    failures: Counter[str] = Counter()
    for number, interval in enumerate(state.intervals, 1):
        for m in interval.measurements:
            if m.value is not None and m.value > m.threshold:
                failures[m.name] += 1
                if failures[m.name] > failure_limit:
                    return "rolled back", number
    return "promoted" if state.status == "promoted" else "not rolled back", None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="/tmp/shipyard-bench-rollout")
    parser.add_argument("--interval", type=float, default=5.0, help="analysis interval, s")
    parser.add_argument("--rps", type=float, default=60.0, help="steady load, requests/s")
    args = parser.parse_args()

    import pandas as pd
    from support import SPEC, free_port
    from support_models import FAULT_AT_TRAINING, FAULTS_LIVE

    from shipyard.compiler import ServiceStep
    from shipyard.demo_data import write_customers
    from shipyard.project import load_project
    from shipyard.runtime.apply import save_blocks
    from shipyard.runtime.plans import using
    from shipyard.serving import deploy

    Measured = measured_controller()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    (work / "data").mkdir(parents=True)
    os.environ["SHIPYARD_SECRET_BENCH_KEY"] = KEY
    os.environ["PYTHONPATH"] = f"{ROOT / 'tests'}:{ROOT}"
    ports = {"prefect_port": free_port(), "port": free_port()}
    interval = args.interval

    def plan_for(strategy: str) -> Any:
        stages = (
            f"    steps: [{{weight: 20, duration: {3 * interval:g}s}}, "
            f"{{weight: 50, duration: {3 * interval:g}s}}]"
            if strategy == "canary"
            else f"    blue_green: {{keep_previous: {3 * interval:g}s}}"
        )
        text = SPEC.format(port=ports["prefect_port"]).replace(
            "project: test-project", "project: bench-rollout"
        ) + SPEC_REST.format(
            port=ports["port"], strategy=strategy, stages=stages, interval=f"{interval:g}"
        )
        (work / "pipelines.yaml").write_text(text)
        project = load_project(work / "pipelines.yaml")
        assert project.plan is not None, project.render()
        return project.plan

    write_customers(work / "data" / "customers.parquet", rows=1500)
    plan = plan_for("canary")
    from prefect.testing.utilities import prefect_test_harness

    from flows.build_service import build_service
    from flows.train_model import train_model

    print("training 4 versions (healthy, failing 20%, 30% slower, healthy) ...", flush=True)
    import mlflow

    with prefect_test_harness(server_startup_timeout=120):
        save_blocks(plan)
        with using(plan):
            for fault in ("none:0", "errors:0.2", "slow:1.3", "none:0"):
                os.environ[FAULT_AT_TRAINING] = fault
                assert train_model(model="churn", force=True, return_state=True).is_completed()
            os.environ.pop(FAULT_AT_TRAINING)
            mlflow.set_tracking_uri(plan.blocks.mlflow.tracking_uri)
            client = mlflow.MlflowClient()
            client.set_registered_model_alias(MODEL, "champion", "1")
            os.environ[FAULTS_LIVE] = "1"
            assert build_service(service="churn-api", return_state=True).is_completed()
    step = plan.named(ServiceStep, "churn-api")
    columns = ["tenure_months", "monthly_charges", "support_calls", "data_usage_gb"]
    frame = pd.read_parquet(work / "data" / "customers.parquet", columns=columns)
    rows = json.loads(frame.head(300).to_json(orient="records"))
    load = Load(deploy.base_url(step), rows, args.rps)
    results = []
    try:
        time.sleep(2 * interval)  # stable's histograms fill before the first rollout
        for name, strategy, version, expected in (
            ("healthy", "canary", "4", "promoted"),
            ("failing", "canary", "2", "rolled back"),
            ("slower", "canary", "3", "rolled back"),
            ("blue-green", "blue_green", "5", "promoted"),
        ):
            plan = plan_for(strategy)
            if name == "blue-green":  # v4 is champion now: a new healthy version to switch to
                with prefect_test_harness(server_startup_timeout=120):
                    save_blocks(plan)
                    with using(plan):
                        os.environ.pop(FAULTS_LIVE)
                        assert train_model(model="churn", force=True, return_state=True)
                        os.environ[FAULTS_LIVE] = "1"
            client.set_registered_model_alias(MODEL, "challenger", version)
            print(f"\n== {name}: v{version} ({strategy}), expected {expected}", flush=True)
            cpu: list[float] = []
            load.take()
            controller = Measured(plan, "churn-api", say=lambda line: print("  " + line))
            controller.cpu = cpu
            state = controller.run()
            seen = load.take()
            intervals = len(state.intervals)
            failed = [
                number
                for number, i in enumerate(state.intervals, 1)
                if any(m.outcome == "failed" for m in i.measurements)
            ]
            baseline, baseline_at = threshold_only(state, failure_limit=0)
            results.append(
                {
                    "scenario": name,
                    "expected": expected,
                    "shipyard": state.status.replace("_", " "),
                    "intervals_to_rollback": failed[0] if failed else None,
                    "thresholds_only": baseline,
                    "thresholds_intervals": baseline_at,
                    "failed_stable": sum(
                        n for (v, s), n in seen.items() if v == "stable" and s != 200
                    ),
                    "failed_all": sum(n for (_, s), n in seen.items() if s != 200),
                    "requests": sum(seen.values()),
                    "failures": {f"{v} {s}": n for (v, s), n in seen.items() if s != 200},
                    "cpu_ms_per_interval": 1000 * sum(cpu) / max(1, intervals),
                }
            )
    finally:
        load.close()
        deploy.stop(step)
    print()
    header = (
        f"{'scenario':<11} {'expected':<12} {'shipyard':<12} {'at':>3}  {'thresholds only':<16} "
        f"{'at':>3}  {'failed/stable':>13} {'failed/all':>10} {'requests':>8} {'cpu ms/int':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        at = r["intervals_to_rollback"] if r["shipyard"] == "rolled back" else "-"
        base_at = r["thresholds_intervals"] or "-"
        print(
            f"{r['scenario']:<11} {r['expected']:<12} {r['shipyard']:<12} {at!s:>3}  "
            f"{r['thresholds_only']:<16} {base_at!s:>3}  {r['failed_stable']:>13} "
            f"{r['failed_all']:>10} {r['requests']:>8} {r['cpu_ms_per_interval']:>10.1f}"
        )
    for r in results:
        if r["failures"]:
            print(f"  {r['scenario']}: non-200 answers by variant and status: {r['failures']}")
    ok = all(r["shipyard"] == r["expected"] for r in results)
    quick = all(
        r["intervals_to_rollback"] is not None and r["intervals_to_rollback"] <= 2
        for r in results
        if r["expected"] == "rolled back"
    )
    stable_clean = all(r["failed_stable"] == 0 for r in results)
    switch_clean = all(r["failed_all"] == 0 for r in results if r["scenario"] == "blue-green")
    print(
        f"\ndecisions as expected: {ok}; rollback within two intervals: {quick}; "
        f"no failure for stable's users: {stable_clean}; no failure in the blue-green switch: "
        f"{switch_clean}"
    )
    print(
        "fixed thresholds alone (Argo, Flagger) promote the 30%-slower candidate: "
        + str(next(r["thresholds_only"] for r in results if r["scenario"] == "slower"))
    )
    (Path(tempfile.gettempdir()) / "shipyard-bench-rollout.json").write_text(json.dumps(results))
    return 0 if ok and quick and stable_clean and switch_clean else 1


if __name__ == "__main__":
    sys.exit(main())
