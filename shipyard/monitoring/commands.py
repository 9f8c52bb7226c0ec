"""`shipyard monitor SERVICE`: one evaluation now (the monitor-service deployment, run at once),
then its report; `--history`: the monitor's last runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from shipyard.compiler import Plan
from shipyard.compiler.monitoring import MonitorStep

EXIT_OK, EXIT_FAILED, EXIT_DRIFT = 0, 1, 3


def monitor_command(
    plan: Plan, service: str, run_flow: Callable[[str], int], history: bool = False
) -> int:
    """Exit 0 when nothing drifted, 3 when the service drifted or is degraded, 1 when the run
    failed (the flow's own error was printed)."""
    step = plan.named(MonitorStep, service)
    if history:
        return _history(step)
    code = run_flow(step.name)
    if code != 0:
        return EXIT_FAILED
    report = Path(step.report_dir) / "report.txt"
    print(report.read_text(encoding="utf-8").rstrip())
    print(f"report with plots: {Path(step.report_dir) / 'report.html'}")
    from shipyard.monitoring.actions import MonitorStore

    state = MonitorStore(step.control_database).read(step.name)
    return EXIT_OK if state is None or state.last_status in ("ok", "not_judged") else EXIT_DRIFT


def _history(step: MonitorStep) -> int:
    from shipyard.monitoring.actions import MonitorStore

    state = MonitorStore(step.control_database).read(step.name)
    if state is None or not state.recent:
        print(f"monitor {step.name} has not run yet: `shipyard monitor {step.name}`")
        return EXIT_OK
    print(f"monitor {step.name}: {state.runs} runs; the last {len(state.recent)}:")
    for entry in state.recent:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(str(entry["at"]))))
        drifted = entry.get("drifted") or []
        print(
            f"  {at}  {entry['status']:<10} {entry['rows']:>7} rows  "
            f"drifted: {', '.join(map(str, drifted)) if drifted else '-'}"  # type: ignore[call-overload]
        )
    if state.retrained_at is not None:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(state.retrained_at))
        print(f"last retraining: {at}: {state.retrain_outcome or 'running'}")
    return EXIT_OK
