"""A real `bentoml serve` behind TLS 1.3 only: `shipyard keys rotate` while it runs makes the new
key valid on its workers without a restart, the old one valid until its grace period ends and
refused after; plain HTTP and TLS 1.2 are refused, /metrics answers over HTTPS."""

from __future__ import annotations

import datetime
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from support import MODEL_SPEC, SPEC, compile_spec, free_port, run_flow, run_shipyard

from shipyard.compiler import ServiceStep

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]

SERVICE_SPEC = """
services:
  churn-api:
    model: churn
    port: {port}
    workers: 2
    auth:
      api_keys:
        app: {{key: "${{secret:it-app-key}}", roles: [predict]}}
        ops: {{key: "${{secret:it-ops-key}}", roles: [predict, admin]}}
      rotation_grace: 1h
    tls: {{certfile: certs/server.pem, keyfile: certs/server.key, min_version: "1.3"}}
"""
SECRETS = {
    "SHIPYARD_SECRET_IT_APP_KEY": "app-key-declared-0123456789",
    "SHIPYARD_SECRET_IT_OPS_KEY": "ops-key-declared-0123456789",
}
OLD_KEY = SECRETS["SHIPYARD_SECRET_IT_APP_KEY"]
ROW = {
    "region": "north",
    "plan": "pro",
    "tenure_months": 12,
    "monthly_charges": 80.5,
    "support_calls": 2,
    "data_usage_gb": 10.5,
}


@dataclass
class Served:
    url: str
    spec: Path
    step: ServiceStep
    trust: ssl.SSLContext

    def predict(self, key: str) -> httpx.Response:
        return httpx.post(
            self.url + "/predict",
            json=ROW,
            headers={"Authorization": f"Bearer {key}"},
            verify=self.trust,
            timeout=30,
        )


def _self_signed(folder: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[Served]:
    import mlflow

    from flows.train_model import train_model
    from shipyard.compiler import FeatureRepoStep
    from shipyard.demo_data import write_customers
    from shipyard.serving import deploy
    from shipyard.serving.build import build_service

    project = tmp_path_factory.mktemp("keys")
    _self_signed(project / "certs")
    text = SPEC.format(port=free_port()) + MODEL_SPEC.format(threshold=">= 0.5")
    text += SERVICE_SPEC.format(port=free_port())
    spec = project / "pipelines.yaml"
    spec.write_text(text)
    write_customers(project / "data" / "customers.parquet", rows=600)
    patch = pytest.MonkeyPatch()
    for key, value in SECRETS.items():
        patch.setenv(key, value)
    plan = compile_spec(spec)
    state = run_flow(plan, train_model, model="churn")
    assert state.is_completed(), state
    mlflow.set_tracking_uri(plan.blocks.mlflow.tracking_uri)
    mlflow.MlflowClient().set_registered_model_alias("test-project.churn", "champion", "1")
    step = plan.named(ServiceStep, "churn-api")
    repo = plan.steps.get("features.repo")
    built = build_service(
        step, repo if isinstance(repo, FeatureRepoStep) else None, plan.blocks.mlflow.tracking_uri
    )
    trust = ssl.create_default_context(cafile=str(project / "certs" / "server.pem"))
    trust.check_hostname = False
    try:
        url = deploy.start(step, built)
        yield Served(url, spec, step, trust)
    finally:
        deploy.stop(step)
        patch.undo()


def _until(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll `check` until it holds or `timeout` passes; whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_https_only_with_tls_1_3_and_metrics_over_https(served: Served) -> None:
    assert served.url.startswith("https://")
    answer = served.predict(OLD_KEY)
    assert answer.status_code == 200, answer.text
    metrics = httpx.get(served.url + "/metrics", verify=served.trust, timeout=30)
    assert metrics.status_code == 200 and "shipyard_" in metrics.text
    port = served.step.port
    with pytest.raises(httpx.TransportError):  # plain HTTP on the TLS port
        httpx.post(f"http://127.0.0.1:{port}/predict", json=ROW, timeout=10)
    tls12 = ssl.create_default_context(cafile=str(served.spec.parent / "certs" / "server.pem"))
    tls12.check_hostname = False
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(httpx.TransportError):  # min_version: "1.3"
        httpx.get(served.url + "/livez", verify=tls12, timeout=10)


def test_a_key_rotated_while_serving_replaces_the_old_one_after_the_grace(
    served: Served,
) -> None:
    assert served.predict(OLD_KEY).status_code == 200
    rotated = run_shipyard(
        served.spec, "keys", "rotate", "churn-api", "app", "--grace", "3s", extra_env=SECRETS
    )
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    [new_key] = [
        line.split()[-1]
        for line in rotated.stdout.splitlines()
        if line.strip().startswith("new value")
    ]
    assert len(new_key) >= 43
    # the workers take it from the control database within a second, with no restart
    assert _until(lambda: all(served.predict(new_key).status_code == 200 for _ in range(6)))
    # ... and accept the old key beside it while its grace lasts (3 s from the rotation)
    assert served.predict(OLD_KEY).status_code == 200

    listed = run_shipyard(served.spec, "keys", "list", "churn-api", extra_env=SECRETS)
    assert listed.returncode == 0, listed.stderr
    assert new_key not in listed.stdout and OLD_KEY not in listed.stdout
    assert "rotated" in listed.stdout and " active" in listed.stdout

    # then refuse it with 401, saying why; the new key and the other keys keep working
    statuses: list[int] = []

    def old_refused() -> bool:
        statuses.append(served.predict(OLD_KEY).status_code)
        return statuses[-1] == 401

    assert _until(old_refused, timeout=30), statuses
    assert set(statuses) <= {200, 401}, statuses
    refused = served.predict(OLD_KEY)
    assert refused.status_code == 401
    assert "grace period ended" in refused.text
    assert all(served.predict(new_key).status_code == 200 for _ in range(6))
    assert served.predict(SECRETS["SHIPYARD_SECRET_IT_OPS_KEY"]).status_code == 200
