"""Rollouts against a real served service under steady load: a healthy canary is promoted, a
canary that fails a share of its requests and one 30% slower are rolled back, blue-green
switches at once and back, rolling walks one replica at a time, a killed controller resumes,
and traffic is at a whole stage's split whenever it is looked at.

One module-scoped project: the churn model trained four times (a `support_models:train_faulty`
model, so a version can carry an injected fault into serving only): v1 healthy (champion),
v2 failing 30% of its calls, v3 30% slower, v4 healthy. Each test points @challenger at the
version it rolls out.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import ROOT, SPEC, compile_spec, free_port, run_flow
from support_models import FAULT_AT_TRAINING, FAULTS_LIVE

from shipyard.compiler import Plan, ServiceStep
from shipyard.errors import ShipyardError

pytestmark = pytest.mark.usefixtures("prefect_harness")

MODEL = "test-project.churn"
MODEL_SPEC = """
models:
  churn:
    task: classification
    dataset: customers
    target: churned
    features: [tenure_months, monthly_charges, support_calls, data_usage_gb]
    train: support_models:train_faulty
    gate:
      roc_auc: ">= 0.5"
"""
SERVICE_SPEC = """
services:
  churn-api:
    model: churn
    port: {port}
    auth:
      api_keys:
        app: {{key: "${{secret:rollout-app-key}}", roles: [predict, feedback, admin]}}
"""
CANARY = """
rollouts:
  churn-api:
    strategy: canary
    candidate: challenger
    steps: [{{weight: 30, duration: 4s}}, {{weight: 60, duration: 4s}}]
    smoke_requests: {smoke}
    analysis:
      interval: 2s
      min_requests: 20
      metrics:
        - {{name: error_rate, max: 5%, compare: stable}}
        - {{name: latency_p90, max: 2s, compare: stable, margin: 1.1}}
{extra}
"""
KEY = "rollout-key-0123456789"
APP = {"Authorization": f"Bearer {KEY}"}


@dataclass
class Project:
    folder: Path
    base: str
    url: str
    rows: list[dict[str, Any]]
    load: Load | None = None

    def plan(self, rollouts: str) -> Plan:
        (self.folder / "pipelines.yaml").write_text(self.base + rollouts)
        return compile_spec(self.folder / "pipelines.yaml")


@dataclass
class Load:
    """Steady traffic from two threads; every answer counted by variant and status."""

    url: str
    rows: list[dict[str, Any]]
    stop: threading.Event = field(default_factory=threading.Event)
    seen: Counter[tuple[str, int]] = field(default_factory=Counter)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for _ in range(2):
            thread = threading.Thread(target=self._send, daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def _send(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                row = random.choice(self.rows)
                try:
                    answer = client.post(self.url + "/predict", json=row, headers=APP)
                except httpx.HTTPError:
                    self.seen[("unreachable", 0)] += 1
                    continue
                if answer.status_code == 200:
                    variant = answer.json()["predictions"][0]["variant"]
                else:  # a model failure names its variant: "variant 'challenger' (model ..."
                    message = answer.json().get("message", "")
                    variant = message.split("'")[1] if message.startswith("variant '") else "?"
                self.seen[(variant, answer.status_code)] += 1

    def reset(self) -> Counter[tuple[str, int]]:
        seen, self.seen = self.seen, Counter()
        return seen

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def _train(plan: Plan, fault: str) -> None:
    from flows.train_model import train_model

    os.environ[FAULT_AT_TRAINING] = fault
    try:
        state = run_flow(plan, train_model, model="churn", force=True)
    finally:
        os.environ.pop(FAULT_AT_TRAINING, None)
    assert state.is_completed(), state


def _client(plan: Plan) -> Any:
    import mlflow

    mlflow.set_tracking_uri(plan.blocks.mlflow.tracking_uri)
    return mlflow.MlflowClient()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[Project]:
    import pandas as pd

    from flows.build_service import build_service
    from shipyard.demo_data import write_customers
    from shipyard.serving import deploy

    folder = tmp_path_factory.mktemp("rollouts")
    base = SPEC.format(port=free_port()) + MODEL_SPEC + SERVICE_SPEC.format(port=free_port())
    (folder / "pipelines.yaml").write_text(base)
    write_customers(folder / "data" / "customers.parquet", rows=800)
    patch = pytest.MonkeyPatch()
    patch.setenv("SHIPYARD_SECRET_ROLLOUT_APP_KEY", KEY)
    patch.setenv("PYTHONPATH", f"{ROOT / 'tests'}:{ROOT}")
    plan = compile_spec(folder / "pipelines.yaml")
    for fault in ("none:0", "errors:0.3", "slow:1.3", "none:0"):
        _train(plan, fault)
    client = _client(plan)
    client.set_registered_model_alias(MODEL, "champion", "1")
    patch.setenv(FAULTS_LIVE, "1")  # the service's workers inherit it; training is done
    step = plan.named(ServiceStep, "churn-api")
    columns = ["tenure_months", "monthly_charges", "support_calls", "data_usage_gb"]
    frame = pd.read_parquet(folder / "data" / "customers.parquet", columns=columns)
    rows = json.loads(frame.head(200).to_json(orient="records"))
    try:
        state = run_flow(plan, build_service, service="churn-api")
        assert state.is_completed(), state.result(raise_on_failure=False)
        served = Project(folder, base, deploy.base_url(step), rows)
        served.load = Load(served.url, rows).start()
        yield served
    finally:
        if "served" in locals() and served.load is not None:
            served.load.close()
        deploy.stop(step)
        patch.undo()


def _set_challenger(plan: Plan, version: str) -> None:
    _client(plan).set_registered_model_alias(MODEL, "challenger", version)


def _aliases(plan: Plan) -> dict[str, str]:
    model = _client(plan).get_registered_model(MODEL)
    return {alias: str(version) for alias, version in model.aliases.items()}


def _controller(plan: Plan) -> Any:
    from shipyard.rollouts.controller import Controller

    return Controller(plan, "churn-api", say=lambda line: print(line, flush=True))


def _weights(plan: Plan) -> dict[str, float]:
    from shipyard.serving.control import ControlStore

    step = plan.named(ServiceStep, "churn-api")
    store = ControlStore(step.control_database)
    try:
        state = store.read("churn-api")
    finally:
        store.close()
    assert state is not None
    return {name: weight for name, weight in state.routing.weights.items() if weight}


def _rolled_back_on(state: Any, metric: str) -> int:
    """The number of analysis intervals until the rollback (the first failed one counts)."""
    assert state.status == "rolled_back", state.outcome
    assert metric in state.outcome, state.outcome
    failed = [
        n
        for n, interval in enumerate(state.intervals, 1)
        if any(m.name == metric and m.outcome == "failed" for m in interval.measurements)
    ]
    return failed[0]


def test_a_candidate_that_fails_its_smoke_test_never_gets_traffic(project: Project) -> None:
    plan = project.plan(CANARY.format(smoke=20, extra=""))
    _set_challenger(plan, "2")
    before = _aliases(plan)
    state = _controller(plan).run()
    assert state.status == "aborted", state.outcome
    assert "smoke requests to the candidate failed" in state.outcome
    assert "model_error" in state.outcome and "it got no traffic" in state.outcome
    assert [d.action for d in state.decisions][-1] == "smoke"
    assert not state.intervals
    assert _weights(plan) == {"stable": 100.0}
    assert _aliases(plan) == before


def test_a_failing_canary_is_rolled_back_within_two_intervals(project: Project) -> None:
    # no smoke test: the fault shows only under load, where the analysis must catch it
    plan = project.plan(CANARY.format(smoke=0, extra=""))
    _set_challenger(plan, "2")
    before = _aliases(plan)
    assert project.load is not None
    project.load.reset()
    state = _controller(plan).run()
    assert _rolled_back_on(state, "error_rate") <= 2
    assert _weights(plan) == {"stable": 100.0}
    assert _aliases(plan) == before, "a rollback leaves the aliases alone"
    seen = project.load.reset()
    assert seen[("stable", 500)] == 0, seen  # nobody assigned to stable saw the fault
    assert seen[("challenger", 500)] > 0, seen


def test_a_slower_canary_is_rolled_back_by_the_latency_comparison(project: Project) -> None:
    plan = project.plan(CANARY.format(smoke=3, extra=""))
    _set_challenger(plan, "3")
    state = _controller(plan).run()
    # 30% slower, far under the 2 s limit: only the comparison with stable catches it
    assert _rolled_back_on(state, "latency_p90") <= 3
    failed = [
        m
        for interval in state.intervals
        for m in interval.measurements
        if m.name == "latency_p90" and m.outcome == "failed"
    ]
    assert failed and all(m.value is not None and m.value < 2.0 for m in failed)
    assert all(m.method == "mann-whitney" for m in failed)
    assert _weights(plan) == {"stable": 100.0}


def test_a_healthy_canary_is_promoted_and_the_aliases_move(project: Project) -> None:
    # the same model on both sides: on a loaded machine one interval in four can still look
    # slower by chance, so this healthy release may lose one measurement, not two
    healthy = CANARY.format(smoke=3, extra="").replace(
        "      interval: 2s\n", "      interval: 2s\n      failure_limit: 1\n"
    )
    plan = project.plan(healthy)
    _set_challenger(plan, "4")
    champion = _aliases(plan)["champion"]
    state = _controller(plan).run()
    assert state.status == "promoted", state.outcome
    stages = [d.reason for d in state.decisions if d.action == "advance"]
    assert [s.split(":")[0] for s in stages] == ["canary 30%", "canary 60%"]
    aliases = _aliases(plan)
    assert aliases["champion"] == "4"
    assert aliases["previous-champion"] == champion
    info = httpx.get(project.url + "/info", timeout=10).json()
    stable = next(v for v in info["variants"] if v["name"] == "stable")
    assert str(stable["version"]) == "4"
    assert _weights(plan) == {"stable": 100.0}


BLUE_GREEN = """
rollouts:
  churn-api:
    strategy: blue_green
    candidate: challenger
    smoke_requests: 3
    blue_green: {keep_previous: 4s}
    analysis:
      interval: 2s
      min_requests: 20
      metrics: [{name: error_rate, max: 5%}, {name: latency_p99, max: 2s}]
"""
ROLLING = """
rollouts:
  churn-api:
    strategy: rolling
    candidate: challenger
    smoke_requests: 3
    rolling: {replicas: 3, step_duration: 2s}
    analysis:
      interval: 2s
      min_requests: 20
      metrics: [{name: error_rate, max: 5%, compare: stable}]
"""
LONG_CANARY = """
rollouts:
  churn-api:
    candidate: challenger
    smoke_requests: 0
    steps: [{weight: 20, duration: 6s}, {weight: 40, duration: 6s}, {weight: 70, duration: 60s}]
    analysis:
      interval: 2s
      min_requests: 10
      inconclusive_limit: 2    # a slow 2-s interval on a loaded machine must not pause these
      metrics: [{name: error_rate, max: 5%, compare: stable}]
"""


def _retrain_healthy(plan: Plan) -> str:
    """A new healthy version (the last one may be champion now): returns its number."""
    _train(plan, "none:0")
    versions = _client(plan).search_model_versions(f"name = '{MODEL}'")
    return str(max(int(v.version) for v in versions))


def _state(plan: Plan) -> Any:
    from shipyard.rollouts.state import RolloutStore

    store = RolloutStore(plan.named(ServiceStep, "churn-api").control_database)
    return store.read("churn-api")


def _wait_for(check: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except (httpx.HTTPError, ShipyardError):  # not up yet
            found = None
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not reached within {timeout} s")


def test_blue_green_switches_at_once_through_the_flow_with_no_failed_request(
    project: Project,
) -> None:
    from prefect.artifacts import Artifact

    from flows.roll_out import roll_out

    plan = project.plan(BLUE_GREEN)
    _set_challenger(plan, _retrain_healthy(plan))
    assert project.load is not None
    project.load.reset()
    state = run_flow(plan, roll_out, rollout="churn-api")
    assert state.is_completed(), state
    result = state.result()
    assert result.status == "promoted", result
    seen = project.load.reset()
    assert sum(n for (_, status), n in seen.items() if status != 200) == 0, seen
    final = _state(plan)
    advances = [d.reason for d in final.decisions if d.action == "advance"]
    assert advances == ["switched: 100% to the candidate"]
    assert {i.weight for i in final.intervals} == {100.0}
    artifact = Artifact.get("rollout-churn-api")
    assert artifact is not None and "promoted" in str(artifact.data)
    assert "data:image/png;base64," in str(artifact.data)


def test_rolling_replaces_one_replica_share_at_a_time(project: Project) -> None:
    plan = project.plan(ROLLING)
    _set_challenger(plan, _retrain_healthy(plan))
    state = _controller(plan).run()
    assert state.status == "promoted", state.outcome
    advances = [d.reason.split(":")[0] for d in state.decisions if d.action == "advance"]
    assert advances == ["replica 1/3", "replica 2/3", "replica 3/3"]
    assert [round(w) for w in sorted({i.weight for i in state.intervals})] == [33, 67, 100]


def test_a_killed_controller_leaves_a_whole_split_and_the_next_one_resumes(
    project: Project,
) -> None:
    plan = project.plan(LONG_CANARY)
    _set_challenger(plan, _retrain_healthy(plan))
    code = (
        "from shipyard.project import load_project\n"
        "from shipyard.rollouts.controller import Controller\n"
        f"Controller(load_project({str(project.folder / 'pipelines.yaml')!r}).plan, "
        "'churn-api').run()\n"
    )
    controller = subprocess.Popen([sys.executable, "-c", code], cwd=project.folder)
    try:
        _wait_for(lambda: (s := _state(plan)) is not None and s.stage == 1 and s.intervals[-1:]
                  and s.intervals[-1].stage == 1)  # fmt: skip
        controller.send_signal(signal.SIGKILL)
        controller.wait(timeout=30)
    finally:
        if controller.poll() is None:
            controller.kill()
    killed = _state(plan)
    assert killed.status == "running" and killed.owner  # it never got to say goodbye
    assert _weights(plan) == {"stable": 60.0, "challenger": 40.0}  # a whole stage's split
    from shipyard.rollouts.commands import rollout_command

    # resume with `shipyard rollout promote`: no controller runs, so one is started to do it
    started: list[str] = []

    def run_flow_here(name: str) -> int:
        started.append(name)
        _controller(plan).run()
        return 0

    assert rollout_command(plan, "promote", "churn-api", run_flow_here, "tested") == 0
    assert started == ["churn-api"]
    final = _state(plan)
    assert final.status == "promoted", final.outcome
    resumed = [d.reason for d in final.decisions if d.action == "resume"]
    assert resumed == ["resuming a interrupted rollout at canary 40%"]
    assert "promoted by hand" in final.outcome and "tested" in final.outcome


def test_pause_then_abort_from_the_command_line(project: Project) -> None:
    from shipyard.rollouts.commands import rollout_command

    plan = project.plan(LONG_CANARY)
    _set_challenger(plan, _retrain_healthy(plan))
    before = _aliases(plan)
    ended: list[Any] = []
    thread = threading.Thread(target=lambda: ended.append(_controller(plan).run()))
    thread.start()
    try:
        _wait_for(lambda: (s := _state(plan)) is not None and s.phase == "stages")

        def no_flow(name: str) -> int:
            raise AssertionError("a running controller takes the command itself")

        assert rollout_command(plan, "pause", "churn-api", no_flow, "looks odd") == 0
        thread.join(timeout=30)
        assert ended and ended[0].status == "paused"
        assert _weights(plan) == {"stable": 80.0, "challenger": 20.0}  # held where it was
        paused = _state(plan)
        assert paused.owner == "" and "looks odd" in paused.decisions[-1].reason

        def abort_here(name: str) -> int:
            _controller(plan).run()
            return 0

        assert rollout_command(plan, "abort", "churn-api", abort_here, "enough") == 0
        final = _state(plan)
        assert final.status == "aborted" and "enough" in final.outcome
        assert _weights(plan) == {"stable": 100.0}
        assert _aliases(plan) == before
    finally:
        thread.join(timeout=60)


def test_an_alias_moved_by_hand_pauses_the_rollout(project: Project) -> None:
    from shipyard.rollouts.commands import rollout_command

    plan = project.plan(LONG_CANARY)
    candidate = _retrain_healthy(plan)
    _set_challenger(plan, candidate)
    ended: list[Any] = []
    thread = threading.Thread(target=lambda: ended.append(_controller(plan).run()))
    thread.start()
    try:
        _wait_for(lambda: (s := _state(plan)) is not None and s.phase == "stages")
        _set_challenger(plan, "2")  # someone points @challenger elsewhere mid-rollout
        thread.join(timeout=60)
        assert ended and ended[0].status == "paused"
        assert f"alias @challenger moved from v{candidate} to v2" in ended[0].decisions[-1].reason
        assert _weights(plan) == {"stable": 80.0, "challenger": 20.0}
    finally:
        thread.join(timeout=60)
    assert rollout_command(plan, "abort", "churn-api", lambda n: _controller(plan).run() and 0) == 0
    assert _weights(plan) == {"stable": 100.0}


def test_a_second_rollout_start_while_one_runs_is_refused(project: Project) -> None:
    from shipyard.errors import ShipyardError

    plan = project.plan(LONG_CANARY)
    _set_challenger(plan, _retrain_healthy(plan))
    thread = threading.Thread(target=lambda: _controller(plan).run())
    thread.start()
    try:
        _wait_for(lambda: (s := _state(plan)) is not None and s.phase == "stages")
        with pytest.raises(ShipyardError, match="already being run by process"):
            _controller(plan).run()
    finally:
        from shipyard.rollouts.commands import rollout_command

        rollout_command(plan, "abort", "churn-api", lambda n: 0)
        thread.join(timeout=60)
    assert _state(plan).status == "aborted"
    assert _weights(plan) == {"stable": 100.0}


PROMETHEUS_CANARY = """
rollouts:
  churn-api:
    candidate: challenger
    smoke_requests: 0
    steps: [{weight: 50, duration: 30s}]
    analysis:
      interval: 5s
      min_requests: 20
      metrics:
        - {name: error_rate, max: 5%, compare: stable}
        - max: 0.5
          query: >-
            sum(rate(shipyard_service_requests_total{variant="{{variant}}",status="500"}[15s]))
"""


@contextmanager
def _prometheus(folder: Path, target: str) -> Iterator[str]:
    """A real Prometheus scraping the service every second; its URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (`make test` installs it with apt-get)")
    port = free_port()
    config = folder / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: churn-api\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: httpx.get(url + "/-/ready", timeout=2).status_code == 200, 60)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _record_prometheus_reads(monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[str, Any]]]:
    """Every `Prometheus.traffic` call that returned, as the `(promql, series)` answers the
    Prometheus HTTP API gave to the queries it made: one entry per measured interval."""
    from shipyard.rollouts.observe import Prometheus

    asked: list[tuple[str, Any]] = []
    reads: list[list[tuple[str, Any]]] = []
    query, traffic = Prometheus.query, Prometheus.traffic

    def recording_query(self: Prometheus, promql: str) -> Any:
        series = query(self, promql)
        asked.append((promql, series))
        return series

    def recording_traffic(self: Prometheus, resource: str, seconds: float) -> Any:
        start = len(asked)
        counts = traffic(self, resource, seconds)
        reads.append(asked[start:])
        return counts

    monkeypatch.setattr(Prometheus, "query", recording_query)
    monkeypatch.setattr(Prometheus, "traffic", recording_traffic)
    return reads


def _increase_answer(read: list[tuple[str, Any]], window: str, errors: bool) -> dict[str, float]:
    """Variant -> value of the one `increase(shipyard_service_requests_total...[window])` query
    of a read: its 5xx answers (`errors`) or all its /predict requests."""
    answers = [
        {labels.get("variant", "none"): value for labels, value in series}
        for promql, series in read
        if "increase(shipyard_service_requests_total{" in promql
        and 'endpoint="/predict"' in promql
        and f"[{window}]" in promql
        and ('status=~"5.."' in promql) == errors
    ]
    assert len(answers) == 1, read
    return answers[0]


def test_analysis_reads_the_profiles_prometheus_and_promql_metrics(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.rollouts.observe import Prometheus

    target = project.url.removeprefix("http://")
    with _prometheus(project.folder, target) as url:
        base = project.base.replace(
            "    prefect: {port:", f"    prometheus: {{url: '{url}'}}\n    prefect: {{port:", 1
        )
        (project.folder / "pipelines.yaml").write_text(base + PROMETHEUS_CANARY)
        plan = compile_spec(project.folder / "pipelines.yaml")
        prometheus = Prometheus(url)
        _wait_for(lambda: prometheus.query("up") and prometheus.query("up")[0][1] == 1.0, 60)
        _set_challenger(plan, "2")  # fails 30% of its calls
        reads = _record_prometheus_reads(monkeypatch)
        state = _controller(plan).run()
        assert state.status == "rolled_back", state.outcome
        first = state.intervals[0].measurements
        assert {m.name for m in first} == {"error_rate", "query_2"}
        failed = [m for i in state.intervals for m in i.measurements if m.outcome == "failed"]
        assert failed, [m.evidence for i in state.intervals for m in i.measurements]
        assert _rolled_back_on(state, failed[0].name) <= 2
        # the counts came from Prometheus' increase() over the interval, not from a scrape of
        # /metrics: every measured interval is one read of it, its counts exactly the answers
        measured = [i for i in state.intervals if i.requests]
        assert measured and len(reads) == len(measured), (reads, state.intervals)
        for interval, read in zip(measured, reads, strict=True):
            window = f"{interval.seconds:g}s"
            for errors, counts in ((False, interval.requests), (True, interval.errors)):
                answer = _increase_answer(read, window, errors)
                assert counts == {name: answer.get(name, 0.0) for name in counts}, (read, counts)
        assert any(i.requests["challenger"] > 0 for i in measured), measured
    assert _weights(plan) == {"stable": 100.0}


def test_an_unreachable_prometheus_pauses_with_traffic_where_it_is(project: Project) -> None:
    from shipyard.rollouts.commands import rollout_command

    dead = f"http://127.0.0.1:{free_port()}"
    base = project.base.replace(
        "    prefect: {port:", f"    prometheus: {{url: '{dead}'}}\n    prefect: {{port:", 1
    )
    (project.folder / "pipelines.yaml").write_text(
        base
        + CANARY.format(smoke=0, extra="").replace(
            "duration: 4s}, {", "duration: 4s}]  # one stage: {"
        )
    )
    plan = compile_spec(project.folder / "pipelines.yaml")
    _set_challenger(plan, _retrain_healthy(plan))
    state = _controller(plan).run()
    assert state.status == "paused", state.outcome
    reason = state.decisions[-1].reason
    assert reason.startswith("inconclusive: error_rate inconclusive")
    assert "more than inconclusive_limit 0" in reason
    evidence = state.intervals[-1].measurements[0].evidence
    assert f"not measured: Prometheus at {dead} does not answer" in evidence
    assert _weights(plan) == {"stable": 70.0, "challenger": 30.0}  # held, never half-shifted
    assert rollout_command(plan, "abort", "churn-api", lambda n: _controller(plan).run() and 0) == 0
    assert _weights(plan) == {"stable": 100.0}
