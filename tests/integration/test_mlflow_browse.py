"""The `mlflow ui` command Shipyard prints (demo, `shipyard mlflow status`) starts quietly, as one
process, and leaves nothing behind when stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from support import free_port

from shipyard.runtime.mlflow_server import browse_command

pytestmark = pytest.mark.integration


def _descendants(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = Path(f"/proc/{parent}/task/{parent}/children")
        kids = [int(c) for c in children.read_text().split()] if children.exists() else []
        found += kids
        frontier += kids
    return found


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_the_printed_mlflow_ui_command_is_quiet_and_one_process(tmp_path: Path) -> None:
    port = free_port()
    command = f"{browse_command(f'sqlite:///{tmp_path}/mlflow.db')} --port {port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # the venv's mlflow
    log = tmp_path / "ui.log"
    with log.open("w") as out:
        ui = subprocess.Popen(
            ["bash", "-c", command],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while not _healthy(f"http://127.0.0.1:{port}/health"):
            assert ui.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        # bash runs mlflow, which serves from its own process: no workers, no job executors
        (mlflow,) = _descendants(ui.pid)
        assert _descendants(mlflow) == [], log.read_text()
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(ui.pid, signal.SIGKILL)  # anything the SIGTERM left
    text = log.read_text()
    assert "telemetry" not in text.lower()
    assert "Job executor" not in text and "huey" not in text.lower()
