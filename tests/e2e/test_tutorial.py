"""docs/guide/tutorial.md, run as written: every `$ ` command of its console blocks, in order, in
one bash session in a fresh folder; each must exit 0, and the key outputs must appear."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ROOT

from shipyard.settings import TELEMETRY_OFF

pytestmark = pytest.mark.e2e
TUTORIAL = ROOT / "docs" / "guide" / "tutorial.md"
BIN = Path(sys.executable).parent
SERVICE_PORT = 3077
PREFECT_PORT = 4200
_HEREDOC = re.compile(r"<<-?\s*'?\"?(\w+)'?\"?\s*$")


def tutorial_commands(text: str) -> list[str]:
    """The commands of the page's ```console blocks: a `$ ` line, with its heredoc body (up to
    the terminator) or its `\\`-continued lines; output lines are skipped."""
    commands: list[str] = []
    in_block = False
    lines = iter(text.splitlines())
    for line in lines:
        if line.startswith("```"):
            in_block = line.strip() == "```console" if not in_block else False
            continue
        if not in_block or not line.startswith("$ "):
            continue
        command = line[2:]
        while command.endswith("\\"):
            command += "\n" + next(lines)
        heredoc = _HEREDOC.search(command)
        if heredoc:
            body = []
            for inner in lines:
                body.append(inner)
                if inner.strip() == heredoc.group(1):
                    break
            else:
                raise AssertionError(f"heredoc of `{command}` has no {heredoc.group(1)} line")
            command += "\n" + "\n".join(body)
        commands.append(command)
    return commands


def test_extraction_keeps_heredocs_and_skips_output() -> None:
    text = (
        "intro\n```console\n$ echo a\na\n$ cat > f <<'EOF'\nx: 1\nEOF\n```\n"
        "```yaml\n$ not a command\n```\n```console\n$ ls \\\n  -l\n```\n"
    )
    assert tutorial_commands(text) == ["echo a", "cat > f <<'EOF'\nx: 1\nEOF", "ls \\\n  -l"]


def _busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def session_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a user with the venv first on PATH; nothing of this test session's
    Shipyard or Prefect pointers, so the tutorial's project uses its own .shipyard/."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SHIPYARD_", "PREFECT_API_URL", "MLFLOW_TRACKING_URI"))
    }
    env.update(TELEMETRY_OFF)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(tmp_path / "home")  # nothing lands in the real home folder
    (tmp_path / "home").mkdir()
    return env


@pytest.fixture
def stop_what_it_started(tmp_path: Path, session_env: dict[str, str]) -> Iterator[None]:
    """If the tutorial failed before its last step, stop its service the way the page does."""
    yield
    for spec in (tmp_path / "work").glob("*/pipelines.yaml"):
        if "malignant-api" in spec.read_text():
            subprocess.run(
                [str(BIN / "shipyard"), "-f", str(spec), "serve", "malignant-api", "--stop"],
                cwd=spec.parent,
                env=session_env,
                capture_output=True,
                timeout=120,
                check=False,
            )


def test_the_tutorial_runs_as_written(
    tmp_path: Path, session_env: dict[str, str], stop_what_it_started: None
) -> None:
    for port, what in ((SERVICE_PORT, "the tutorial's service"), (PREFECT_PORT, "Prefect")):
        if _busy(port):
            pytest.skip(f"port {port} ({what}) is taken by something else here")
    commands = tutorial_commands(TUTORIAL.read_text())
    assert len(commands) >= 15 and commands[0].startswith("mkdir ")
    work, logs = tmp_path / "work", tmp_path / "logs"
    work.mkdir()
    logs.mkdir()
    script = ["cd " + shlex.quote(str(work))]
    for i, command in enumerate(commands):
        out, err, rc = (shlex.quote(str(logs / f"{i}.{s}")) for s in ("out", "err", "rc"))
        script.append(
            f'{{ {command}\n}} > {out} 2> {err}\necho $? > {rc}\n[ "$(cat {rc})" = 0 ] || exit 1'
        )
    (tmp_path / "tutorial.sh").write_text("\n".join(script) + "\n")
    process = subprocess.Popen(
        ["bash", "--noprofile", "--norc", str(tmp_path / "tutorial.sh")],
        env=session_env,
        start_new_session=True,  # a timeout stops the whole group it started, by its id
    )
    try:
        process.wait(timeout=480)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        pytest.fail("the tutorial did not finish within 8 minutes")

    def output(i: int) -> str:
        return (logs / f"{i}.out").read_text() + (logs / f"{i}.err").read_text()

    for i, command in enumerate(commands):
        rc_file = logs / f"{i}.rc"
        assert rc_file.exists(), f"step {i} `{command}` never ran (an earlier one failed)"
        assert rc_file.read_text().strip() == "0", (
            f"step {i} `{command}` exited {rc_file.read_text().strip()}:\n{output(i)[-4000:]}"
        )

    def of(prefix: str) -> str:
        matches = [i for i, c in enumerate(commands) if c.startswith(prefix)]
        assert matches, f"the tutorial has no `{prefix}` step"
        return output(matches[0])

    assert "wrote pipelines.yaml: dataset 'cells' (31 columns, 569 rows), model 'malignant'" in of(
        "shipyard init"
    )
    assert "pipelines.yaml: ok (1 dataset, 1 model)" in of("shipyard validate")
    assert "model.malignant  train -> evaluate -> gate -> register" in of("shipyard plan")
    assert '"rows": 569' in of("shipyard run validate-dataset")
    assert '"registered_version": "1"' in of("shipyard run train-model")
    assert re.search(r"malignant\s+1\s+v1 \(1\.0\.0\)", of("shipyard models list"))
    assert '"model_version":"1"' in of("curl ")
    assert "service 'malignant-api' stopped" in of("shipyard serve malignant-api --stop")
    project = work / "cells"
    assert (project / ".gitignore").read_text().endswith(".shipyard/\n")
    assert not _busy(SERVICE_PORT), "the service still answers after the tutorial stopped it"
