"""Flow metrics: textfile output, Pushgateway push (against a local HTTP receiver), failures."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from shipyard.metrics import MetricsSink, monitored_run


class _Gateway(BaseHTTPRequestHandler):
    received: list[tuple[str, str, str, bytes]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append((self.command, self.path, self.headers.get("Authorization", ""), body))
        self.send_response(200)
        self.end_headers()

    do_POST = do_PUT

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[tuple[str, list[tuple[str, str, str, bytes]]]]:
    _Gateway.received = []
    server = HTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", _Gateway.received
    server.shutdown()
    server.server_close()


def test_textfile_gets_duration_success_and_observed_values(tmp_path: Path) -> None:
    sink = MetricsSink(textfile_dir=str(tmp_path))
    with monitored_run("validate-dataset", "dataset.a", "proj", sink) as metrics:
        metrics.observe("dataset_rows_validated", 42, "rows")
    text = (tmp_path / "validate-dataset__dataset.a.prom").read_text()
    labels = 'flow="validate-dataset",project="proj",resource="dataset.a"'
    assert f"shipyard_dataset_rows_validated{{{labels}}} 42.0" in text
    assert f"shipyard_flow_run_success{{{labels}}} 1.0" in text
    assert "shipyard_flow_run_duration_seconds" in text


def test_a_run_replaces_only_the_gauges_it_observed(tmp_path: Path) -> None:
    sink = MetricsSink(textfile_dir=str(tmp_path))
    with monitored_run("train-model", "model.m", "p", sink) as metrics:
        metrics.observe("model_roc_auc", 0.81, "Holdout roc_auc.")
        metrics.observe("model_training_skipped", 0, "Skipped.")
    with monitored_run("train-model", "model.m", "p", sink) as metrics:
        metrics.observe("model_training_skipped", 1, "Skipped.")  # nothing trained
    text = (tmp_path / "train-model__model.m.prom").read_text()
    labels = 'flow="train-model",project="p",resource="model.m"'
    assert f"shipyard_model_roc_auc{{{labels}}} 0.81" in text  # from the training before
    assert f"shipyard_model_training_skipped{{{labels}}} 1.0" in text
    assert text.count("# TYPE shipyard_flow_run_success gauge") == 1


def test_a_damaged_metrics_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "f__r.prom").write_text("not { prometheus text\n")
    with monitored_run("f", "r", "p", MetricsSink(textfile_dir=str(tmp_path))):
        pass
    assert "shipyard_flow_run_success" in (tmp_path / "f__r.prom").read_text()


def test_a_failing_run_is_recorded_as_failed_and_the_error_propagates(tmp_path: Path) -> None:
    sink = MetricsSink(textfile_dir=str(tmp_path))
    with pytest.raises(RuntimeError, match="boom"), monitored_run("f", "r", "p", sink):
        raise RuntimeError("boom")
    assert (
        'shipyard_flow_run_success{flow="f",project="p",resource="r"} 0.0'
        in (tmp_path / "f__r.prom").read_text()
    )


def test_push_to_gateway_with_grouping_key_and_basic_auth(
    tmp_path: Path,
    gateway: tuple[str, list[tuple[str, str, str, bytes]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, received = gateway
    monkeypatch.setenv("SHIPYARD_SECRET_PG_PASS", "s3cret")
    sink = MetricsSink(
        textfile_dir=str(tmp_path),
        pushgateway_url=url,
        username="ops",
        password="${secret:pg-pass}",
    )
    with monitored_run("validate-dataset", "dataset.a", "proj", sink) as metrics:
        metrics.observe("dataset_rows_validated", 7, "rows")
    assert len(received) == 1
    method, path, auth, body = received[0]
    assert method == "POST"  # replaces only the metrics this run observed
    assert path == "/metrics/job/shipyard-validate-dataset/project/proj/resource/dataset.a"
    assert auth == "Basic " + base64.b64encode(b"ops:s3cret").decode()
    assert b"shipyard_dataset_rows_validated" in body
    assert not list(tmp_path.glob("*.prom"))


def test_an_unreachable_gateway_does_not_fail_the_run(tmp_path: Path) -> None:
    from support import free_port

    sink = MetricsSink(
        textfile_dir=str(tmp_path), pushgateway_url=f"http://127.0.0.1:{free_port()}"
    )
    with monitored_run("f", "r", "p", sink):
        pass  # publishing fails after retries; the run itself still succeeds
