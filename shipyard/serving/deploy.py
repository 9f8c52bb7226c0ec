"""Run a built service locally: start `bentoml serve`, or hot-reload the running one.

Every worker of a service serves what its control state says (`shipyard/serving/control.py`).
Deploying a new Bento makes it the control state's, by compare-and-swap; every worker loads the
new models beside the old ones and switches when ready, so no request fails. A change of request
fields cannot be applied to a running API; that needs `shipyard serve <name> --restart`.
"""

from __future__ import annotations

import json
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shipyard.compiler import ServiceStep
from shipyard.errors import ServiceUnavailable, ShipyardError
from shipyard.ports import listener
from shipyard.processes import ManagedProcess, children, http_ok
from shipyard.serving.build import BuildResult, bento_env
from shipyard.serving.config import read_config
from shipyard.serving.control import ControlConflict, ControlState, ControlStore
from shipyard.serving.startup import Failure, StartWatch
from shipyard.settings import StateLayout

READY_TIMEOUT = 240.0
PROBE_TIMEOUT = 0.5
"""Seconds one readiness probe waits for an answer."""
POLL_SECONDS = 0.1
QUIET_SECONDS = 3.0
"""A start that logged nothing new for this long says what it still waits for."""


def process(step: ServiceStep) -> ManagedProcess:
    layout = StateLayout(step.state_dir)
    # its workers run in sessions of their own: stopping the group alone would leave them
    return ManagedProcess(f"service-{step.service}", layout.run, layout.logs, whole_tree=True)


def base_url(step: ServiceStep) -> str:
    scheme = "https" if step.tls else "http"
    host = "127.0.0.1" if step.host in ("0.0.0.0", "::") else step.host
    return f"{scheme}://{host}:{step.port}"


def tls_files(step: ServiceStep) -> dict[str, Path]:
    """The service's TLS files as absolute paths (the spec gives them relative to the project)."""
    if step.tls is None:
        return {}
    files = {"certfile": step.tls.certfile, "keyfile": step.tls.keyfile}
    if step.tls.ca_certs:
        files["ca_certs"] = step.tls.ca_certs
    return {key: Path(value) for key, value in files.items()}


def client_context(step: ServiceStep) -> ssl.SSLContext | None:
    """How Shipyard's own calls (readiness, /info, the demo) reach an HTTPS service.

    They trust the service's own certificate (a self-signed one included), not any the system
    trusts, and skip the host name check: the probe connects to 127.0.0.1, which a certificate
    for the service's public name does not list. With `ca_certs` (mutual TLS) the probe
    presents the service's own certificate, so it must be signed by that CA.
    """
    if not step.tls:
        return None
    files = tls_files(step)
    context = ssl.create_default_context(cafile=str(files["certfile"]))
    if "ca_certs" in files:
        context.load_verify_locations(cafile=str(files["ca_certs"]))
        context.load_cert_chain(str(files["certfile"]), str(files["keyfile"]))
    context.check_hostname = False
    return context


def check_tls_files(step: ServiceStep) -> None:
    for key, path in tls_files(step).items():
        if not path.is_file():
            raise ShipyardError(
                f"service '{step.service}': TLS {key} {path} does not exist",
                hint=f"create it or fix services.{step.service}.tls.{key} "
                "(paths are relative to the folder of pipelines.yaml)",
                resource=step.id,
            )


def info(step: ServiceStep, timeout: float = 3.0) -> dict[str, Any] | None:
    """The running service's /info, or None when it is not answering."""
    request_url = base_url(step) + "/info"
    try:
        with urllib.request.urlopen(  # http(s) URL of the service  # nosec B310
            request_url, timeout=timeout, context=client_context(step)
        ) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data
    except (OSError, urllib.error.URLError, ValueError):
        return None


def serve_env(step: ServiceStep) -> dict[str, str]:
    """The service's environment: BentoML home, state folder and resolved secrets.

    Secrets are resolved here (Prefect Secret blocks or SHIPYARD_SECRET_*) and passed as
    SHIPYARD_SECRET_* variables, so workers never need the Prefect API.
    """
    from shipyard.secrets import SECRET_REFERENCE, env_name, secret_value

    env = bento_env(Path(step.state_dir))
    # a home of its own: BentoML wipes $BENTOML_HOME/prometheus_multiproc_dir at every start,
    # which would erase the metrics of another service running from the same project
    env["BENTOML_HOME"] = str(Path(step.state_dir) / "serving" / step.service / "bentoml")
    env["SHIPYARD_STATE_DIR"] = step.state_dir
    env.pop("SHIPYARD_SERVICE_BUNDLE", None)
    auth = step.auth.model_dump_json() if step.auth else ""
    if step.log_encryption is not None:  # the log's keys too: workers encrypt with them
        auth += step.log_encryption.model_dump_json()
    for name in sorted(set(SECRET_REFERENCE.findall(auth))):
        env[env_name(name)] = secret_value(name)
    return env


def ensure_databases(step: ServiceStep) -> None:
    """Create the service's PostgreSQL databases (log, control state) if they are missing."""
    from shipyard.databases import ensure_postgres_database

    for url, purpose in ((step.log_database, "log"), (step.control_database, "control state")):
        if url.startswith("postgresql"):
            ensure_postgres_database(url, f"service '{step.service}' {purpose}")


def check_stores(step: ServiceStep) -> None:
    """The stores every worker connects to when it starts must answer before anything starts:
    a worker that cannot reach one fails, and BentoML starts it again, and again.

    Raises:
        ShipyardError: Naming the store (Redis for the rate limits, the prediction log or the
            control database), its URL and what to do.
    """
    from shipyard.secrets import redact_url
    from shipyard.serving.crypto import service_cipher
    from shipyard.serving.predlog import check_database
    from shipyard.serving.ratelimit import RateLimitStorageUnavailable, check_storage

    ensure_databases(step)
    limits = step.rate_limit
    keyed = any(key.rate_limit for key in (step.auth.api_keys if step.auth else {}).values())
    if (limits.per_key or limits.global_limit or keyed) and limits.storage != "memory://":
        try:
            check_storage(limits.storage)
        except RateLimitStorageUnavailable:
            raise ShipyardError(
                f"service '{step.service}': Redis at {redact_url(limits.storage)}, which keeps "
                "its rate limits, does not answer; nothing was started",
                hint="start Redis there, or point profiles.<profile>.serving.rate_limit_storage "
                "at one that runs",
                resource=step.id,
            ) from None
        except ValueError as exc:
            raise ShipyardError(f"service '{step.service}': {exc}", resource=step.id) from None
    check_database(step.log_database, step.service)
    service_cipher(step)  # its log's keys: set, and able to read the rows already written
    store = ControlStore(step.control_database)
    try:
        store.revision(step.service)
    finally:
        store.close()


def _workers(pid: int) -> set[int]:
    """The worker processes `bentoml serve` (pid) runs now."""
    return {child for child in children(pid) if _is_worker(child)}


def _is_worker(pid: int) -> bool:
    try:
        return b"_bentoml_impl.worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def shown(text: str) -> None:
    """A step of the start, on stderr as it happens (stdout keeps the command's result)."""
    print(text, file=sys.stderr, flush=True)


def wait_ready(
    step: ServiceStep,
    managed: ManagedProcess,
    watch: StartWatch,
    timeout: float = READY_TIMEOUT,
    show: Callable[[str], None] = shown,
) -> None:
    """Wait until the service answers /readyz, showing what its workers do meanwhile.

    Stops at the first sign that the start cannot succeed: a worker whose start raised (its
    log line), a worker process that exited, or the `bentoml serve` process exiting (a port
    taken, an import error). Then stops everything the start started and raises with the cause
    the log gives: the exception, its last frames and the fix.

    Raises:
        ServiceUnavailable: Naming the service, the cause and what to do.
    """
    url = base_url(step) + "/readyz"
    context = client_context(step)
    deadline = time.monotonic() + timeout
    said = time.monotonic()
    seen: set[int] = set()
    failure: Failure | None = None
    while True:
        # a short probe: once bentoml serve listens, a probe waits in its socket's backlog
        # until a worker is up, and a long one would hide a worker's failure meanwhile
        if http_ok(url, timeout=PROBE_TIMEOUT, context=context):
            for line in watch.poll():
                show(line)
            show(f"service '{step.service}' is ready ({time.monotonic() - watch.started:.1f} s)")
            return
        for line in watch.poll():
            show(line)
            said = time.monotonic()
        if watch.failure is not None:
            failure = watch.failure
            break
        pid = managed.pid()
        if pid is None:
            failure = watch.exited()
            break
        workers = _workers(pid)
        if gone := seen - workers:
            failure = watch.exited(f"worker process {min(gone)} exited before it was ready")
            break
        seen |= workers
        now = time.monotonic()
        if now >= deadline:
            failure = Failure(
                f"not ready after {timeout:.0f} s; last: {watch.waiting_for()}",
                hint=f"see {managed.log_file}",
            )
            break
        if now - said >= QUIET_SECONDS:
            show(f"still waiting ({now - watch.started:.0f} s): {watch.waiting_for()}")
            said = now
        time.sleep(POLL_SECONDS)
    managed.stop(timeout=10.0)
    raise ServiceUnavailable(
        f"service '{step.service}' did not start: {failure.text()}\n"
        f"  (everything it started was stopped; the whole log: {managed.log_file})",
        hint=_port_hint(step) if _port_taken(failure) else failure.hint,
        resource=step.id,
    )


def _port_taken(failure: Failure) -> bool:
    return "address already in use" in failure.text().lower()


def _port_hint(step: ServiceStep) -> str:
    return (
        f"port {step.port} is taken by another program: stop it or give the service another "
        f"port: services.{step.service}.port in pipelines.yaml"
    )


def _argv(step: ServiceStep, built: BuildResult) -> list[str]:
    """Serve the Bento by its folder (so BENTOML_HOME can be the service's own), through
    BentoML's CLI with its logging set up to write JSON lines first."""
    argv = [
        sys.executable, "-m", "shipyard.serving.launch", "serve", str(built.bundle.parent),
        "--host", step.host, "--port", str(step.port),
    ]  # fmt: skip
    files = tls_files(step)
    if files:
        argv += ["--ssl-certfile", str(files["certfile"]), "--ssl-keyfile", str(files["keyfile"])]
        if "ca_certs" in files:
            # clients must present a certificate signed by this CA (ssl.CERT_REQUIRED)
            argv += ["--ssl-ca-certs", str(files["ca_certs"]), "--ssl-cert-reqs", "2"]
    return argv


def record_deploy(step: ServiceStep, built: BuildResult) -> ControlState:
    """Make `built` what every worker serves: a compare-and-swap on the control state that
    keeps the routing in force if it fits the new variants. A concurrent change (an admin
    routing call) is read again and kept, never overwritten."""
    from shipyard.audit import current_actor
    from shipyard.serving.engine import routing_for

    ensure_databases(step)
    store = ControlStore(step.control_database)
    try:
        for _ in range(5):
            current = store.read(step.service)
            try:
                return store.change(
                    step.service,
                    expected_revision=current.revision if current else 0,
                    actor=current_actor(),
                    action="deploy",
                    reason=f"deploy {built.tag}",
                    bento=built.tag,
                    bundle=str(built.bundle),
                    routing=routing_for(built.config, current.routing if current else None),
                )
            except ControlConflict:
                continue
        raise ShipyardError(
            f"service '{step.service}': its control state kept changing while {built.tag} was "
            "being deployed; nothing was changed",
            hint="deploy again once the other changes (a rollout?) have settled",
            resource=step.id,
        )
    finally:
        store.close()


def _ensure_same_api(step: ServiceStep, built: BuildResult) -> None:
    """A running service cannot change its request fields: refuse before anything moves."""
    store = ControlStore(step.control_database)
    try:
        current = store.read(step.service)
    finally:
        store.close()
    if current is None:
        return
    try:
        running = read_config(Path(current.bundle))
    except ShipyardError:
        return  # that Bento is gone: workers will say so; the new one may still apply
    if running.request_schema_digest() != built.config.request_schema_digest():
        fields = ", ".join(f.name for f in built.config.request_fields)
        raise ShipyardError(
            f"{built.tag} takes different request fields ({fields}) than the running "
            f"{current.bento}; a running service cannot change its API, so nothing was changed",
            hint=f"restart it on the new Bento: `shipyard serve {step.service} --restart`",
            resource=step.id,
        )


def start(step: ServiceStep, built: BuildResult, say: Callable[[str], None] = shown) -> str:
    """Start `bentoml serve` for the Bento in the background; returns the URL once ready."""
    check_tls_files(step)
    managed = process(step)
    if managed.pid() is not None:
        raise ShipyardError(
            f"service '{step.service}' is already running (pid {managed.pid()})",
            hint=f"`shipyard serve {step.service} --restart` restarts it",
        )
    url = base_url(step)
    context = client_context(step)
    found = listener(step.port)
    if found is not None or http_ok(url + "/livez", timeout=1.0, context=context):
        owner = f" ({found.describe()})" if found is not None else ""
        raise ShipyardError(
            f"port {step.port} is taken by another program{owner}, not service '{step.service}'",
            hint=f"stop that program or give the service another port: "
            f"services.{step.service}.port in pipelines.yaml",
            resource=step.id,
        )
    check_stores(step)
    record_deploy(step, built)
    workers = f"{step.workers} worker" + ("s" if step.workers != 1 else "")
    say(f"starting {workers} of {built.tag} on {url} ...")
    offset = managed.log_size()
    managed.start(_argv(step, built), serve_env(step), cwd=Path(step.project_dir))
    watch = StartWatch(managed.log_file, offset, step.service, built.bundle.parent)
    wait_ready(step, managed, watch)
    return url


def hot_reload(
    step: ServiceStep, built: BuildResult, timeout: float = READY_TIMEOUT
) -> dict[str, Any]:
    """Point the running service at a new Bento and wait until it serves it."""
    _ensure_same_api(step, built)
    record_deploy(step, built)
    deadline = time.monotonic() + timeout
    current: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        current = info(step)
        if current and current.get("bento") == built.tag:
            return current
        if current and current.get("reload_error"):
            raise ShipyardError(
                f"service '{step.service}' did not take {built.tag}: {current['reload_error']}",
                resource=step.id,
            )
        time.sleep(0.5)
    raise ServiceUnavailable(
        f"service '{step.service}' still serves {current.get('bento') if current else '?'} "
        f"{timeout:.0f} s after {built.tag} was deployed",
        hint=f"see {process(step).log_file}",
        resource=step.id,
    )


def deploy(step: ServiceStep, built: BuildResult, say: Callable[[str], None] = shown) -> str:
    """Start the service, or hot-reload it when it already runs. Returns what happened."""
    running = process(step).pid() is not None and info(step) is not None
    if running:
        now = info(step) or {}
        if now.get("bento") == built.tag:
            return f"service '{step.service}' already serves {built.tag} at {base_url(step)}"
        say(f"hot-reloading {step.service}: {now.get('bento')} -> {built.tag} ...")
        hot_reload(step, built)
        return f"service '{step.service}' now serves {built.tag} at {base_url(step)} (hot reload)"
    url = start(step, built, say)
    return f"service '{step.service}' serves {built.tag} at {url}"


def stop(step: ServiceStep) -> bool:
    return process(step).stop()


def describe(step: ServiceStep, url: str) -> str:
    keys = ", ".join(sorted(step.auth.api_keys if step.auth else {})) or "none (no auth)"
    return "\n".join(
        [
            f"  predict   curl -X POST {url}/predict -H 'content-type: application/json' "
            "-H \"Authorization: Bearer $KEY\" -d '{...}'",
            f"  docs      {url}/docs (OpenAPI JSON at {url}/docs.json)",
            f"  metrics   {url}/metrics",
            f"  info      {url}/info",
            f"  api keys  {keys}",
            f"  logs      {process(step).log_file}",
            f"  stop      shipyard serve {step.service} --stop",
        ]
    )
