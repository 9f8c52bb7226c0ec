"""Crash safety of serving: each test injects a fault into a real `bentoml serve` and checks the
state after it.

One project for the module: the churn model trained twice (registry versions 1 and 2) on a
feature service, its features materialized, so a request carries only `customer_id`. Bentos
are built from it pinned to a version; the 2-worker service `churn-faults` starts once and the
tests take turns on it (a hot reload, killed workers, bad requests, a log that cannot be
written); `churn-limits` is the one that never gets to start.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import serving_faults as faults
from serving_faults import APP, CUSTOMER, GONE, OPS, SECRETS, Trained, predict, wait_for
from support import free_port, run_shipyard

from shipyard.compiler import ServiceStep
from shipyard.compiler.services import AuthPlan

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.integration]


@dataclass
class Service:
    step: ServiceStep
    url: str
    before: Any  # the Bento it started on: stable = v1, keys ops, app and gone
    after: Any  # the Bento it is hot-reloaded to: stable = v2, the key `gone` removed

    @property
    def database(self) -> Path:
        return Path(self.step.log_database.removeprefix("sqlite:///"))

    def logged(self, table: str, prefix: str) -> list[str]:
        """The request ids starting with `prefix` in a table of the prediction log."""
        try:
            with sqlite3.connect(self.database, timeout=10) as db:
                rows = db.execute(f"SELECT request_id FROM {table}").fetchall()
        except sqlite3.Error:
            return []
        return [r[0] for r in rows if r[0] and r[0].startswith(prefix)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[Trained]:
    patch = pytest.MonkeyPatch()
    for key, value in SECRETS.items():
        patch.setenv(key, value)
    try:
        yield faults.train_project(tmp_path_factory.mktemp("serving-faults"))
    finally:
        patch.undo()


@pytest.fixture(scope="module")
def service(trained: Trained) -> Iterator[Service]:
    step = trained.step()
    assert step.workers == 2 and step.inputs == ["customer_id"]
    before = trained.build(step, version=1)
    assert step.auth is not None
    revoked = AuthPlan(
        api_keys={k: v for k, v in step.auth.api_keys.items() if k != "gone"}, jwt=step.auth.jwt
    )
    after = trained.build(step.model_copy(update={"auth": revoked}), version=2)
    with faults.running(step, before) as url:
        yield Service(step, url, before, after)


def _infos(service: Service, pids: set[int]) -> dict[int, dict[str, Any]]:
    """/info from each of `pids`, asking on new connections until every one has answered."""
    seen: dict[int, dict[str, Any]] = {}

    def all_answered() -> bool:
        try:
            info = httpx.get(service.url + "/info", headers={"Connection": "close"}, timeout=10)
        except httpx.HTTPError:
            return False
        if info.status_code == 200:
            seen[info.json()["worker"]] = info.json()
        return pids <= set(seen)

    assert wait_for(all_answered, timeout=60, every=0.05), (pids, sorted(seen))
    return seen


def _versions(service: Service, headers: dict[str, str], count: int) -> list[Any]:
    """The model version (or the status, when not 200) of `count` requests, each on a new
    connection, so both workers answer some."""
    answers: list[Any] = []
    for _ in range(count):
        response = predict(service.url, headers, {"customer_id": CUSTOMER})
        ok = response.status_code == 200
        answers.append(
            response.json()["predictions"][0]["model_version"] if ok else response.status_code
        )
    return answers


def _ready_workers(service: Service, old: set[int] | None = None) -> set[int]:
    """The two worker pids once both (restarted ones too) answer /info."""

    def two_new() -> set[int] | None:
        now = set(faults.workers(service.step))
        return now if len(now) == 2 and not (old and now & old) else None

    pids = wait_for(two_new, timeout=60)
    assert pids, f"the workers were not restarted: {faults.workers(service.step)}"
    _infos(service, pids)
    return set(pids)


# -- item 2: a worker that restarts after a hot reload -------------------------------------------


def test_a_worker_restarted_after_a_hot_reload_serves_the_new_bento(service: Service) -> None:
    from shipyard.serving import deploy

    assert set(_versions(service, GONE, 6)) == {"1"}
    deploy.hot_reload(service.step, service.after)
    assert wait_for(lambda: set(_versions(service, APP, 10)) == {"2"}, timeout=30)

    workers = _ready_workers(service)
    killed = min(workers)
    faults.kill(killed)  # BentoML's arbiter starts a new worker from the Bento it was started on
    restarted = _ready_workers(service, old={killed}) - workers
    assert len(restarted) == 1, restarted

    infos = _infos(service, _ready_workers(service))
    assert {info["bento"] for info in infos.values()} == {service.after.tag}, infos
    assert len({info["revision"] for info in infos.values()}) == 1
    assert all(info["reload_error"] is None for info in infos.values())
    assert set(_versions(service, APP, 30)) == {"2"}
    revoked = _versions(service, GONE, 30)
    assert set(revoked) == {401}, revoked


# -- item 7: client errors are 4xx, naming the field, and store nothing ---------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/predict", {"customer_id": 123456789012345678901234567890}, "rows.0.customer_id"),
        ("/predict", {"customer_id": True}, "rows.0.customer_id"),
        ("/predict", {"customer_id": 1.5}, "rows.0.customer_id"),
        ("/predict", {"rows": [{"customer_id": CUSTOMER}, {"customer_id": -(2**64)}]}, "rows.1"),
        ("/feedback", {"request_id": "x", "outcome": float("nan")}, "outcome"),
        ("/feedback", {"request_id": "x", "outcome": {"score": float("inf")}}, "outcome"),
        ("/feedback", {"entity": {"customer_id": 10**30}, "outcome": 1}, "entity"),
    ],
    ids=["30-digit-id", "bool-id", "float-id", "batch-row", "nan", "nested-inf", "entity"],
)
def test_a_client_error_is_400_naming_the_field_and_stores_nothing(
    service: Service, path: str, body: Any, field: str
) -> None:
    request_id = f"bad-{path[1:]}-{time.monotonic_ns()}"
    response = httpx.post(
        service.url + path,
        content=json.dumps(body),  # NaN and Infinity as Python writes them
        headers={**OPS, "X-Request-ID": request_id, "content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert field in response.json()["message"], response.json()

    # a good request after the bad one: once its row is written, the bad one's would be too
    good = f"good-{request_id}"
    if path == "/predict":
        answer = predict(service.url, OPS, {"customer_id": CUSTOMER}, **{"X-Request-ID": good})
        table = "predictions"
    else:  # a feedback row keeps the request id of the body (the prediction's, which exists)
        predicted = predict(service.url, OPS, {"customer_id": CUSTOMER}, **{"X-Request-ID": good})
        assert predicted.status_code == 200, predicted.text
        answer = httpx.post(
            service.url + "/feedback", json={"request_id": good, "outcome": 0.5}, headers=OPS
        )
        table = "feedback"
    assert answer.status_code == 200, answer.text
    assert wait_for(lambda: service.logged(table, good), timeout=30)
    assert not service.logged("predictions", request_id)
    assert not [row for row in _feedback(service) if _lossy(row)]


def _feedback(service: Service) -> list[tuple[Any, Any]]:
    """Every feedback row, as (entity, outcome), decoded."""
    with sqlite3.connect(service.database, timeout=10) as db:
        rows = db.execute("SELECT entity, outcome FROM feedback").fetchall()
    return [(json.loads(e) if e else None, json.loads(o)) for e, o in rows]


def _lossy(value: Any) -> bool:
    """A stored value that lost what was sent: a null (NaN, Infinity), an int past 64 bits."""
    if value is None:
        return True
    if isinstance(value, int) and not isinstance(value, bool):
        return not -(2**63) <= value < 2**63
    if isinstance(value, dict):
        return any(_lossy(v) for v in value.values())
    if isinstance(value, tuple):
        return _lossy(value[1]) or (value[0] is not None and _lossy(value[0]))
    return False


# -- item 9: the prediction log across crashes and an unwritable database ------------------------


def test_a_killed_worker_loses_no_answered_prediction(service: Service) -> None:
    workers = _ready_workers(service)
    prefix = f"crash-{time.monotonic_ns()}-"
    answered = []
    with httpx.Client(timeout=30, headers={**APP, "Connection": "close"}) as client:
        for i in range(40):
            response = client.post(
                service.url + "/predict",
                json={"customer_id": CUSTOMER + i},
                headers={"X-Request-ID": f"{prefix}{i}"},
            )
            assert response.status_code == 200, response.text
            answered.append(f"{prefix}{i}")
    for pid in workers:  # right after the last answer: rows are still in the writers' memory
        faults.kill(pid)
    _ready_workers(service, old=workers)
    # the restarted workers write what the killed ones had spooled: none is missing
    assert wait_for(lambda: set(service.logged("predictions", prefix)) >= set(answered), 60), (
        sorted(set(answered) - set(service.logged("predictions", prefix)))
    )


def _immutable(path: Path, on: bool) -> None:
    """Make `path` unwritable even for root (who ignores the mode bits): chmod, and chattr."""
    if on:
        path.chmod(0o555 if path.is_dir() else 0o444)
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True)
    if not on:
        path.chmod(0o755 if path.is_dir() else 0o644)


def test_an_unwritable_log_database_never_fails_a_request(service: Service) -> None:
    _ready_workers(service)
    folder = service.database.parent
    files = [p for p in folder.iterdir() if p.name.startswith("logs.sqlite")]
    prefix = f"readonly-{time.monotonic_ns()}-"
    log_file = Path(service.step.state_dir) / "logs" / f"service-{service.step.service}.log"
    mark = log_file.stat().st_size
    try:
        for path in [folder, *files]:
            _immutable(path, True)
        statuses = [
            predict(
                service.url, APP, {"customer_id": CUSTOMER}, **{"X-Request-ID": f"{prefix}{i}"}
            ).status_code
            for i in range(40)
        ]
        assert set(statuses) == {200}, statuses
        assert wait_for(lambda: _warnings(log_file, mark), timeout=30)
        assert not service.logged("predictions", prefix)
    finally:
        for path in [folder, *files]:
            _immutable(path, False)
    assert wait_for(lambda: len(set(service.logged("predictions", prefix))) == 40, timeout=90)
    assert len(_warnings(log_file, mark)) <= service.step.workers  # one per worker and 30 s
    assert "Traceback" not in log_file.read_text()[mark:]


def _warnings(log_file: Path, offset: int) -> list[str]:
    with log_file.open("rb") as log:
        log.seek(offset)
        lines = log.read().decode(errors="replace").splitlines()
    return [line for line in lines if "prediction log of service.churn-faults cannot" in line]


def test_a_shm_file_replaced_by_a_directory_never_fails_a_request(service: Service) -> None:
    _ready_workers(service)
    shm = service.database.with_name("logs.sqlite-shm")
    if shm.is_file():
        shm.unlink()
    shm.mkdir(exist_ok=True)
    prefix = f"shm-{time.monotonic_ns()}-"
    try:
        for i in range(20):
            response = predict(
                service.url, APP, {"customer_id": CUSTOMER}, **{"X-Request-ID": f"{prefix}{i}"}
            )
            assert response.status_code == 200, response.text
        assert wait_for(lambda: len(service.logged("predictions", prefix)) == 20, timeout=30)
        assert len(faults.workers(service.step)) == 2
    finally:
        shutil.rmtree(shm, ignore_errors=True)


# -- item 6: a store that does not answer when the service starts ----------------------------------


def _dead_redis(trained: Trained) -> tuple[ServiceStep, str]:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    step = trained.step("churn-limits")
    return step.model_copy(
        update={"rate_limit": step.rate_limit.model_copy(update={"storage": url})}
    ), url


def _left_behind(pid: int) -> list[int]:
    from shipyard.processes import children

    return faults.group(pid) + children(pid)


def test_a_dead_redis_stops_the_start_at_once_naming_it(trained: Trained) -> None:
    from shipyard.errors import ShipyardError
    from shipyard.serving import deploy

    step, url = _dead_redis(trained)
    built = trained.build(step, version=1)
    started = time.monotonic()
    with pytest.raises(ShipyardError) as raised:
        deploy.start(step, built, say=lambda _: None)
    assert time.monotonic() - started < 5
    assert "Redis" in raised.value.message and url in raised.value.message
    assert deploy.process(step).pid() is None and not deploy.process(step).descendants()


def test_a_worker_that_cannot_start_stops_the_start_with_its_cause(
    trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis goes away between the check and the workers' start: the start stops at the first
    worker that fails, says why, and leaves no process behind."""
    from shipyard.errors import ShipyardError
    from shipyard.processes import ManagedProcess
    from shipyard.serving import deploy

    step, url = _dead_redis(trained)
    built = trained.build(step, version=1)
    monkeypatch.setattr(deploy, "check_stores", lambda step: None)
    pids: list[int] = []
    start = ManagedProcess.start

    def recorded(self: ManagedProcess, *args: Any, **kwargs: Any) -> int:
        pids.append(start(self, *args, **kwargs))
        return pids[-1]

    monkeypatch.setattr(ManagedProcess, "start", recorded)
    started = time.monotonic()
    try:
        with pytest.raises(ShipyardError) as raised:
            deploy.start(step, built, say=lambda _: None)
        elapsed = time.monotonic() - started
    finally:
        deploy.stop(step)
    message = raised.value.message
    assert "RateLimitStorageUnavailable" in message and url in message, message
    assert elapsed < 60, elapsed  # not the 240 s readiness timeout
    [pid] = pids
    assert not _left_behind(pid) and not deploy.process(step).descendants()


def test_serve_with_a_dead_redis_exits_1_naming_it(trained: Trained) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    text = trained.spec.read_text().replace(
        "  local:\n",
        f"  local:\n    kind: scale-out\n    serving:\n      rate_limit_storage: {url}\n",
    )
    spec = trained.spec.with_name("pipelines-dead-redis.yaml")
    spec.write_text(text)
    started = time.monotonic()
    done = run_shipyard(spec, "serve", "churn-limits", timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Redis" in output and url in output, output
    assert "Traceback" not in output
    assert time.monotonic() - started < 120
    from shipyard.serving import deploy

    step = trained.step("churn-limits")
    assert deploy.process(step).pid() is None and not deploy.process(step).descendants()


# -- issue 17: a worker that cannot start, said at once with its cause ---------------------------


def _start_fails(step: ServiceStep, built: Any, capsys: pytest.CaptureFixture[str]) -> Any:
    """deploy.start of a start that must fail: the error, and nothing left running."""
    from shipyard.errors import ServiceUnavailable
    from shipyard.serving import deploy

    try:
        with pytest.raises(ServiceUnavailable) as raised:
            deploy.start(step, built, say=lambda _: None)
    finally:
        pid = deploy.process(step).pid()
        left = deploy.process(step).descendants()
        deploy.stop(step)
    assert pid is None and not left, (pid, left)
    assert f"service '{step.service}' did not start: " in raised.value.message
    return raised.value


def test_a_deleted_model_artifact_is_named_with_its_frames_and_the_fix(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    step = trained.step("churn-limits")
    built = trained.build(step, version=2)
    [model] = (built.bundle / "models" / "stable").glob("model.*")
    kept = model.with_name("kept-aside")
    model.rename(kept)
    try:
        error = _start_fails(step, built, capsys)
    finally:
        kept.rename(model)
    message = error.message
    assert f"FileNotFoundError: [Errno 2] No such file or directory: '{model}'" in message, message
    assert "_load_model" in message  # the frames that led to it
    assert f"delete {built.bundle.parent}" in (error.hint or "")
    shown = capsys.readouterr().err
    assert "worker 1: loading model test-project.churn v2 (stable) ..." in shown, shown


def test_a_broken_service_config_is_named_before_or_while_starting(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    from shipyard.errors import ShipyardError

    step = trained.step("churn-limits", workers=1)
    built = trained.build(step, version=2)
    config = built.bundle / "service.json"
    text = config.read_text()
    config.write_text(text[: len(text) // 2])
    try:
        # the Bento's own service process reads it first, and exits with the traceback
        error = _start_fails(step, built, capsys)
        assert "ValidationError" in error.message or "JSON" in error.message, error.message
        assert f"delete {built.bundle.parent}" in (error.hint or ""), error.hint
        # a build that finds this Bento says so before starting anything
        with pytest.raises(ShipyardError, match="cannot be read") as refused:
            trained.build(step, version=2)
        assert f"delete {built.bundle.parent}" in (refused.value.hint or "")
    finally:
        config.write_text(text)


def test_a_port_taken_after_the_check_stops_the_start_naming_the_port(
    trained: Trained, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from shipyard.serving import deploy

    step = trained.step("churn-limits")
    built = trained.build(step, version=1)
    monkeypatch.setattr(deploy, "listener", lambda port: None)  # taken after the check
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind((step.host, step.port))
        holder.listen()
        error = _start_fails(step, built, capsys)
    assert "address already in use" in error.message.lower(), error.message
    assert f"services.{step.service}.port" in (error.hint or "")


def test_serve_shows_the_workers_progress_and_exits_1_with_the_cause(trained: Trained) -> None:
    """The command: its steps on stderr as they happen, the worker's error, exit 1, nothing
    left running."""
    from shipyard.serving import deploy
    from shipyard.serving.build import build_service

    step = trained.step("churn-limits")
    repo = trained.plan.steps.get("features.repo")
    built = build_service(step, repo, trained.plan.blocks.mlflow.tracking_uri, say=lambda _: None)  # type: ignore[arg-type]
    [model] = (built.bundle / "models" / "stable").glob("model.*")
    kept = model.with_name("kept-aside")
    model.rename(kept)
    try:
        done = run_shipyard(trained.spec, "serve", "churn-limits", timeout=300)
    finally:
        kept.rename(model)
        left = deploy.process(step).descendants()
        deploy.stop(step)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "starting 2 workers of churn-limits:" in done.stderr, done.stderr
    assert "loading model test-project.churn" in done.stderr, done.stderr
    assert "did not start: FileNotFoundError" in done.stderr, done.stderr
    assert "Traceback (most recent call last)" not in done.stderr
    assert not left
