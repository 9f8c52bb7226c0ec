"""A Prefect process worker on the profile's work pool, run in the project's environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shipyard.compiler.plan import Plan
from shipyard.processes import ManagedProcess
from shipyard.runtime.server import activate, environment_for
from shipyard.settings import StateLayout


def worker_process(plan: Plan) -> ManagedProcess:
    layout = StateLayout(plan.runtime.state_dir)
    return ManagedProcess(f"prefect-worker-{plan.prefect.work_pool}", layout.run, layout.logs)


def worker_argv(plan: Plan, run_once: bool = False) -> list[str]:
    prefect = str(Path(sys.executable).with_name("prefect"))
    argv = [prefect, "worker", "start", "--pool", plan.prefect.work_pool, "--type", "process"]
    return [*argv, "--run-once"] if run_once else argv


def command(plan: Plan, action: str, run_once: bool = False) -> int:
    """`shipyard worker start|stop|status`; `start --once` runs scheduled work in the foreground."""
    process = worker_process(plan)
    env = {**os.environ, **environment_for(plan)}
    if action == "start":
        activate(plan, require_server=True)
        if run_once:
            return subprocess.call(worker_argv(plan, True), env=env, cwd=plan.runtime.project_dir)
        if (pid := process.pid()) is not None:
            print(f"a worker for pool '{plan.prefect.work_pool}' is already running (pid {pid})")
            return 0
        pid = process.start(worker_argv(plan), env, Path(plan.runtime.project_dir))
        print(
            f"worker started on pool '{plan.prefect.work_pool}' (pid {pid}); "
            f"log: {process.log_file}"
        )
        print("  stop it with: shipyard worker stop")
        return 0
    if action == "stop":
        print("worker stopped" if process.stop() else "no worker was running")
        return 0
    pid = process.pid()
    print(
        f"worker for pool '{plan.prefect.work_pool}': "
        + (f"running (pid {pid})" if pid else "stopped")
    )
    return 0 if pid else 1
