"""`shipyard demo` (`make demo`): generate the demo data and run the demo pipeline end to end."""

from __future__ import annotations

import json
import ssl
import sys
from collections.abc import Mapping
from pathlib import Path

from shipyard.compiler import DatasetStep, FeatureRepoStep, Plan, RolloutStep, ServiceStep
from shipyard.compiler.features import REPO_ID
from shipyard.settings import StateLayout

DEMO_ROWS = 5000
SNAPSHOTS = 4
"""The demo data holds four monthly snapshots of each customer (ids 10001 on): traffic asks
about known customers only (rows // SNAPSHOTS of them), as production would."""


def _step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def _demo_keys(plan: Plan) -> dict[str, str]:
    """Secrets the demo spec references, generated once and kept in the state folder.

    They are exported before `shipyard apply`, which saves them as Prefect Secret blocks.
    """
    import os
    import secrets

    from shipyard.secrets import env_name

    path = StateLayout(plan.runtime.state_dir).root / "demo-keys.env"
    saved: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            saved[key] = value
    for name in plan.secrets:
        variable = env_name(name)
        value = os.environ.get(variable) or saved.get(variable) or secrets.token_urlsafe(24)
        os.environ[variable] = saved[variable] = value
    if saved:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{k}={v}\n" for k, v in saved.items()))
        path.chmod(0o600)
    return saved


def _post(
    url: str, body: Mapping[str, object], key: str, context: ssl.SSLContext | None
) -> dict[str, object]:
    import urllib.request

    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(
        request, timeout=30, context=context
    ) as response:  # http URL of the demo's own service  # nosec B310
        answer: dict[str, object] = json.loads(response.read())
        return answer


def _try_service(plan: Plan, name: str, keys: dict[str, str]) -> None:
    """One prediction and one feedback call, as a client would make them."""

    from shipyard.secrets import resolve
    from shipyard.serving.deploy import base_url, client_context, describe

    step = plan.named(ServiceStep, name)
    url, context = base_url(step), client_context(step)
    key = ""
    for api_key in (step.auth.api_keys if step.auth else {}).values():
        if "predict" in api_key.roles:
            key = resolve(api_key.key, use_prefect=False) or ""
            break
    body = {step.inputs[0]: 10042} if step.feature_service else {}
    if not body:
        return
    _step(f"POST {url}/predict {json.dumps(body)}")
    answer = _post(url + "/predict", body, key, context)
    print(json.dumps(answer, indent=2))
    feedback = {"request_id": answer["request_id"], "outcome": 1}
    _step(f"POST {url}/feedback {json.dumps(feedback)}")
    print(json.dumps(_post(url + "/feedback", feedback, key, context)))
    print(describe(step, url))


def _roll_out(plan: Plan, name: str, customers: int) -> int:
    """Train a challenger, then roll it out as the spec says while demo traffic flows."""
    from shipyard.rollouts.controller import predict_key
    from shipyard.runtime.run import run_deployment_now

    step = plan.named(RolloutStep, name)
    service = plan.step(step.service, ServiceStep)
    _step(f"shipyard run train-model {service.model} --force: a challenger to roll out")
    code = run_deployment_now(plan, "train-model", service.model, force=True)
    if code:
        return code
    _step(
        f"shipyard rollout start {name}: "
        + ", ".join(stage.label for stage in step.stages)
        + f", analysed every {step.interval_seconds:g} s, under demo traffic"
    )
    from shipyard.serving.deploy import base_url, client_context

    rows = [{key: 10001 + i} for i in range(customers) for key in service.inputs[:1]] or [{}]
    with DemoTraffic(base_url(service), rows, predict_key(service), client_context(service)):
        return run_deployment_now(plan, "roll-out", name)


def _ab_test(plan: Plan, name: str, customers: int) -> int:
    """A short A/B test: a new challenger beside the champion, simulated customers whose
    outcomes are a little better with the treatment, then the analysis and its report."""
    from shipyard.abtests.report import text
    from shipyard.abtests.runner import AbTest
    from shipyard.runtime.run import run_deployment_now

    test = AbTest(plan, name)
    service = test.service
    _step(f"shipyard run train-model {service.model} --force: a challenger for A/B test {name}")
    code = run_deployment_now(plan, "train-model", service.model, force=True)
    if code:
        return code
    _step(f"shipyard run build-service {service.service}: load the challenger beside the champion")
    code = run_deployment_now(plan, "build-service", service.service)
    if code:
        return code
    _step(f"shipyard abtest start {name}: customers split by {test.step.experiment.assign_by}")
    state = test.start()
    print(f"started by {state.started_by}")
    _step("simulated customers: one prediction each, then their outcome as feedback")
    print(_simulate_customers(plan, service, name, min(1200, customers)))
    _step(f"shipyard run analyze-ab-test {name}: results, sample ratio, guardrails, decision")
    code = run_deployment_now(plan, "analyze-ab-test", name)
    final, report = test.look(record=False)
    print(text(test.step, final, report))
    folder = StateLayout(plan.runtime.state_dir).root / "abtests" / name
    print(f"  report with plots: {folder / 'report.html'}")
    return code


class AlertSink:
    """The demo's stand-in for a chat channel: a local webhook that prints the alerts apprise
    posts to a `json://127.0.0.1:<port>/...` channel of the spec's alert routes."""

    def __init__(self, plan: Plan) -> None:
        from shipyard.compiler.alerts import AlertStep

        self.port: int | None = None
        for route in plan.steps_of(AlertStep):
            for channel in route.channels:
                host, _, rest = channel.removeprefix("json://").partition(":")
                if channel.startswith("json://") and host == "127.0.0.1" and rest:
                    self.port = int(rest.split("/", 1)[0])
        self.server: object = None

    def __enter__(self) -> AlertSink:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        if self.port is None:
            return self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                alert = json.loads(body or b"{}")
                kind, title, message = alert.get("type"), alert.get("title"), alert.get("message")
                print(f"  [alert {kind}] {title}\n    {message}")
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        try:
            server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        except OSError as exc:
            print(
                f"note: port {self.port} is taken ({exc}); alerts to it will fail", file=sys.stderr
            )
            return self
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.server = server
        return self

    def __exit__(self, *exc: object) -> None:
        from http.server import ThreadingHTTPServer

        if isinstance(self.server, ThreadingHTTPServer):
            self.server.shutdown()
            self.server.server_close()


def _monitor(plan: Plan, name: str, data: Path, customers: int) -> int:
    """Production drifts: a new month of customers arrives with more usage and support calls;
    the monitor sees it in the live traffic, alerts, retrains and rolls the new model out."""
    from shipyard.compiler.monitoring import MonitorStep
    from shipyard.demo_data import append_month
    from shipyard.monitoring.commands import monitor_command
    from shipyard.rollouts.controller import predict_key
    from shipyard.runtime.run import run_deployment_now
    from shipyard.serving.deploy import base_url, client_context

    step = plan.named(MonitorStep, name)
    service = plan.step(step.service, ServiceStep)
    rows = [{key: 10001 + i} for i in range(customers) for key in service.inputs[:1]] or [{}]
    url, key, context = base_url(service), predict_key(service), client_context(service)
    with AlertSink(plan):
        _step(f"shipyard monitor {name}: the last {step.window_seconds / 3600:g} h of traffic")
        monitor_command(plan, name, lambda n: run_deployment_now(plan, "monitor-service", n))
        _step("a new month arrives, drifted: more usage, more support calls, pricier plans")
        added = append_month(data, seed=8, drift=1.0)
        print(f"{added} new rows in {data.name}: one snapshot of each customer, stamped now")
        for view in [
            d.name for d in plan.deployments.values() if d.flow_name == "materialize-features"
        ]:
            run_deployment_now(plan, "materialize-features", view)
        _step(
            "drifted production traffic: 1000 predictions of this month's customers, then "
            "whether each churned, as feedback"
        )
        churned = _churned(data)
        for row in rows[:1000]:
            answer = _post(url + "/predict", row, key, context)
            outcome = churned.get(next(iter(row.values()), -1))
            if outcome is not None:
                feedback = {"request_id": answer["request_id"], "outcome": outcome}
                _post(url + "/feedback", feedback, key, context)
        import time

        time.sleep(2)  # the prediction log writes in batches, about a second behind
        _step(
            f"shipyard monitor {name}: drift, an alert, then retraining"
            + (" and a canary of the new model, under demo traffic" if step.rollout else "")
        )
        with DemoTraffic(url, rows, key, context):
            code = monitor_command(
                plan, name, lambda n: run_deployment_now(plan, "monitor-service", n)
            )
    return 0 if code in (0, 3) else code


def _churned(data: Path) -> dict[int, bool]:
    """Customer id -> whether the customer churned in its latest snapshot (the label)."""
    import pandas as pd

    frame = pd.read_parquet(data, columns=["customer_id", "event_time", "churned"])
    latest = frame.sort_values("event_time").groupby("customer_id").tail(1)
    return {int(c): bool(v) for c, v in zip(latest.customer_id, latest.churned, strict=True)}


def _simulate_customers(plan: Plan, service: ServiceStep, test: str, customers: int = 1200) -> str:
    """Each customer predicts once; retained with 30% in control, 45% in the treatment."""
    import random
    import time
    from concurrent.futures import ThreadPoolExecutor

    from shipyard.rollouts.controller import predict_key
    from shipyard.serving.deploy import base_url, client_context

    url, key, context = base_url(service), predict_key(service), client_context(service)
    for _ in range(60):  # the workers take the split within a second
        routing = _get(url + "/info", key, context).get("routing")
        if isinstance(routing, dict) and routing.get("experiment"):
            break
        time.sleep(0.5)
    rng = random.Random(42)
    seeds = [rng.random() for _ in range(customers)]
    rates = {"stable": 0.30}  # the challenger: 0.45

    def post(path: str, body: dict[str, object]) -> dict[str, object]:
        """Within the demo key's rate limit: a 429 waits for its Retry-After."""
        import urllib.error

        for _ in range(20):
            try:
                return _post(url + path, body, key, context)
            except urllib.error.HTTPError as exc:
                if exc.code != 429:
                    raise
                time.sleep(float(exc.headers.get("Retry-After") or 0.2))
        return _post(url + path, body, key, context)

    def customer(n: int) -> str:
        answer = post("/predict", {service.inputs[0]: 10001 + n})
        predictions = answer["predictions"]
        assert isinstance(predictions, list)
        variant = str(predictions[0]["variant"])
        outcome = seeds[n] < rates.get(variant, 0.45)
        post("/feedback", {"request_id": answer["request_id"], "outcome": outcome})
        return variant

    with ThreadPoolExecutor(2) as pool:
        arms = list(pool.map(customer, range(customers)))
    counts = {arm: arms.count(arm) for arm in sorted(set(arms))}
    time.sleep(2)  # the prediction log writes in batches, about a second behind
    return f"{customers} customers: " + ", ".join(f"{a} {n}" for a, n in counts.items())


def _get(url: str, key: str, context: ssl.SSLContext | None) -> dict[str, object]:
    import urllib.request

    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(
        request, timeout=30, context=context
    ) as response:  # http URL of the demo's own service  # nosec B310
        answer: dict[str, object] = json.loads(response.read())
        return answer


class DemoTraffic:
    """Requests from four threads, up to 80 a second, while a rollout needs something to judge
    (a 20% canary then gets enough predictions per 20 s interval for its prediction-shift
    check)."""

    def __init__(
        self,
        url: str,
        rows: list[dict[str, int]],
        key: str,
        context: ssl.SSLContext | None,
        per_second: float = 80.0,
        threads: int = 4,
    ) -> None:
        import threading

        self.url, self.rows, self.key, self.context = url, rows, key, context
        self.pause = threads / per_second
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._send, daemon=True) for _ in range(threads)]

    def __enter__(self) -> DemoTraffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _send(self) -> None:
        import random
        import time
        from contextlib import suppress

        while not self.stop.is_set():
            # a refused request is what the rollout's analysis counts, not the demo's concern
            with suppress(OSError):
                _post(self.url + "/predict", random.choice(self.rows), self.key, self.context)
            time.sleep(self.pause)


def run_demo(plan: Plan, rows: int = DEMO_ROWS) -> int:
    from shipyard.data.files import dataset_file
    from shipyard.demo_data import write_customers
    from shipyard.runtime import server
    from shipyard.runtime.apply import apply_plan
    from shipyard.runtime.run import run_deployment_now

    if "dataset.customers" not in plan.steps:
        print("the demo needs a dataset named 'customers' in the spec", file=sys.stderr)
        return 1
    data = dataset_file(plan.runtime, plan.step("dataset.customers", DatasetStep))

    _step(f"generating {rows} rows of demo data -> {data.relative_to(plan.runtime.project_dir)}")
    write_customers(data, rows=rows)

    _step(f"starting the local Prefect server (state in {plan.runtime.state_dir})")
    ui = server.start(plan, plan.prefect.database_url)
    print(f"Prefect UI: {ui}")

    keys = _demo_keys(plan)
    _step("shipyard apply: blocks, secrets, work pool and deployments")
    apply_plan(plan)

    _step("shipyard run validate-dataset customers: Great Expectations, then DVC")
    code = run_deployment_now(plan, "validate-dataset", "customers")
    if code:
        return code

    models = [d.name for d in plan.deployments.values() if d.flow_name == "train-model"]
    for model in models:
        _step(f"shipyard run train-model {model}: train, track in MLflow, gate, register")
        code = run_deployment_now(plan, "train-model", model)
        if code:
            return code
        _step("the same again: data, spec and code unchanged, so training is skipped")
        run_deployment_now(plan, "train-model", model)

    views = [d.name for d in plan.deployments.values() if d.flow_name == "materialize-features"]
    for view in views:
        _step(f"shipyard run materialize-features {view}: load the online store")
        code = run_deployment_now(plan, "materialize-features", view)
        if code:
            return code
    repo = plan.steps.get(REPO_ID)
    if isinstance(repo, FeatureRepoStep) and repo.services:
        from shipyard.features.online import get_online_features

        service = repo.services[-1]
        key = repo.views[0].join_key
        _step(f"online features of one customer from feature service {service.name}")
        print(
            json.dumps(
                get_online_features(service.name, [{key: 10042}], repo)[0],
                indent=2,
                default=str,
            )
        )

    services = [d.name for d in plan.deployments.values() if d.flow_name == "build-service"]
    for name in services:
        _step(f"shipyard run build-service {name}: build the Bento, start the BentoML service")
        code = run_deployment_now(plan, "build-service", name)
        if code:
            return code
        _try_service(plan, name, keys)

    for name in [d.name for d in plan.deployments.values() if d.flow_name == "roll-out"]:
        code = _roll_out(plan, name, rows // SNAPSHOTS)
        if code:
            return code
    for name in [d.name for d in plan.deployments.values() if d.flow_name == "analyze-ab-test"]:
        code = _ab_test(plan, name, rows // SNAPSHOTS)
        if code:
            return code

    for name in [d.name for d in plan.deployments.values() if d.flow_name == "monitor-service"]:
        code = _monitor(plan, name, data, rows // SNAPSHOTS)
        if code:
            return code

    from shipyard.runtime.mlflow_server import browse_command, tracking_uri

    layout = StateLayout(plan.runtime.state_dir)
    _step("done. Where to look:")
    print(f"  Prefect UI (runs, artifacts, deployments, blocks)  {ui}")
    print(f"  flow metrics (Prometheus textfile)                  {layout.metrics}")
    print(f"  JSON logs (correlation id = flow run id)            {layout.logs / 'shipyard.jsonl'}")
    print(f"  DVC remote with every version                       {layout.dvc_remote}")
    if models:
        print(f"  MLflow (runs, lineage, registry):  {browse_command(tracking_uri(plan))}")
    print("\nTry next (after `source .venv/bin/activate`):")
    print("  shipyard plan                                   # what pipelines.yaml compiles to")
    print("  shipyard data versions customers                # versions recorded so far")
    print("  shipyard models list; shipyard models show churn # registry: versions, aliases")
    print("  shipyard run train-model churn --force          # retrain although unchanged")
    print("  shipyard features plan                          # the Feast repository's diff")
    print("  shipyard features get churn_v2 customer_id=10042  # online features")
    print('  eval "$(shipyard env)" && prefect deployment run validate-dataset/customers')
    print("  shipyard worker start                           # a worker executes that run")
    for name in services:
        print(f"  shipyard serve {name} --status                 # what it serves, with weights")
    for name in [d.name for d in plan.deployments.values() if d.flow_name == "roll-out"]:
        print(f"  shipyard rollout status {name}                # every analysis, every decision")
    for name in [d.name for d in plan.deployments.values() if d.flow_name == "analyze-ab-test"]:
        print(f"  shipyard abtest report {name}                  # effect, interval, SRM, decision")
    for name in [d.name for d in plan.deployments.values() if d.flow_name == "monitor-service"]:
        print(f"  shipyard monitor {name} --history              # the monitor's last runs")
    print("  shipyard observability up                       # Prometheus, Alertmanager, ...")
    for name in services:
        print(f"  shipyard logs --service {name} --since 1h      # one log search (admin key)")
    if keys:
        print(f"  API keys of the demo services: {layout.root / 'demo-keys.env'}")
    print("  shipyard server stop && shipyard worker stop    # when you are done")
    for name in services:
        print(f"  shipyard serve {name} --stop")
    return 0
