"""What an A/B test tells its alert routes when a look decides: a sample-ratio mismatch or
harm (critical), a winner or a stop for no effect (info), each under the key
`ab_test.<name>/<decision>`. A later clean look (no mismatch, no harm: a restarted test
running well) resolves the mismatch and harm alerts."""

from __future__ import annotations

from shipyard.abtests.analysis import AbTestReport
from shipyard.alerts.notify import notify, resolve
from shipyard.compiler import Plan
from shipyard.compiler.ab_tests import AbTestStep
from shipyard.spec.alerts import Severity

CRITICAL = ("sample_ratio_mismatch", "harm")


def look_decided(plan: Plan, step: AbTestStep, report: AbTestReport) -> None:
    """Alert on the decision of a recorded look (after the test acted on it), or resolve the
    critical alerts a clean look settles; never raises for an alert that cannot be sent."""
    if not step.alerts:
        return
    key = f"{step.id}/"
    labels = {"service": step.service.removeprefix("service."), "decision": report.decision}
    more = f"`shipyard abtest report {step.name}` shows every look."
    if report.decision in CRITICAL:
        severity: Severity = "critical"
        what = "sample ratio mismatch" if report.decision == CRITICAL[0] else "harm"
        title = f"A/B test {step.name} stopped for {what}: {report.reason}"
    elif report.decision == "winner":
        severity = "info"
        title = f"A/B test {step.name} stopped: arm '{report.winner}' won on {report.metric}"
    elif report.decision == "no_effect":
        severity = "info"
        title = f"A/B test {step.name} stopped for no effect on {report.metric}"
    else:
        title = ""
    if title:
        body = f"{report.reason}\nEvery caller is served by the service's routing again.\n{more}"
        notify(plan, step.alerts, key + report.decision, severity, title, body, step.id, labels)
    if report.decision not in CRITICAL:
        clean = f"A/B test {step.name}: a later look found {report.decision}: {report.reason}"
        resolve(plan, step.alerts, [key + k for k in CRITICAL], clean, step.id)
