"""monitor-service: judge a service's last window of production traffic against the training
reference (input and prediction drift, data quality, performance, feature freshness), export
the findings as Prometheus gauges, alert, retrain on drift (with a cooldown) and roll the new
version out when the service has a rollout, and publish a report with plots."""

from __future__ import annotations

import logging
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from shipyard.compiler import ServiceStep
from shipyard.compiler.monitoring import MonitorStep
from shipyard.errors import ShipyardError
from shipyard.logs import quiet_expected_errors
from shipyard.metrics import monitored_run
from shipyard.monitoring import actions
from shipyard.monitoring.judge import Judgement, judge
from shipyard.monitoring.report import html_page, markdown, observe, plot, text
from shipyard.runtime.connections import metrics_sink
from shipyard.runtime.flow_run import StepRun, begin, run_name

log = logging.getLogger("shipyard.flows.monitor_service")
quiet_expected_errors()


class MonitorServiceResult(BaseModel):
    status: str
    rows: int
    drifted: list[str]
    predictions_drifted: list[str]
    failed_expectations: list[str]
    problems: list[str]
    actions: list[str]


@task(name="judge", cache_policy=NO_CACHE, persist_result=False)
def judge_window(run: StepRun[MonitorStep]) -> Judgement:
    """Read the window from the prediction log and judge it against the reference profile."""
    return judge(run.plan, run.step)


@task(name="act", cache_policy=NO_CACHE, persist_result=False)
def act(run: StepRun[MonitorStep], found: Judgement) -> list[str]:
    """Alerts raised and resolved; retraining (and its rollout) when the service drifted."""
    done = actions.alert(run.plan, run.step, found)
    retrained = actions.retrain(run.step, found, lambda: _retrain(run))
    if retrained:
        done.append(retrained)
    return done


def _retrain(run: StepRun[MonitorStep]) -> tuple[str, bool]:
    """The model's training flow, as a subflow of this run; then its rollout, if declared."""
    from flows.train_model import train_model

    model = run.step.model.split(".", 1)[1]
    log.info("%s drifted: retraining model '%s'", run.step.id, model)
    try:
        result = train_model(model=model)
    except Exception as exc:  # the training failed: say so in the report and the alert
        return f"retraining of '{model}' failed: {str(exc).splitlines()[0][:300]}", True
    if result.skipped:
        return (
            f"retraining of '{model}' skipped: its data ({result.data_version[:12]}) is what the "
            "last version was trained on; drift persists until new labelled data arrives",
            False,
        )
    if result.registered_version is None:
        return f"retrained '{model}': the new model failed its gate ({result.gate_summary})", True
    outcome = (
        f"retrained '{model}': version {result.registered_version} registered as "
        f"@{', @'.join(result.aliases)}"
    )
    rollout = run.step.rollout
    if rollout and "challenger" in result.aliases:
        return f"{outcome}; {_roll_out(run, rollout.split('.', 1)[1])}", True
    return outcome, True


def _roll_out(run: StepRun[MonitorStep], name: str) -> str:
    """Start the service's rollout of the new @challenger, unless one is under way: a paused
    rollout waits for a person (the monitor never resumes it), a running one for its end."""
    from shipyard.rollouts.controller import Controller
    from shipyard.rollouts.state import RolloutStore

    service = run.plan.steps[run.step.service]
    assert isinstance(service, ServiceStep)
    current = RolloutStore(service.control_database).read(name)
    if current is not None and current.active:
        why = current.decisions[-1].reason if current.decisions else current.status
        return (
            f"rollout '{name}' not started: it is {current.status} with v"
            f"{current.candidate_version} ({why}); decide it with `shipyard rollout "
            f"resume|promote|abort {name}`, then `shipyard rollout start {name}` rolls the new "
            "version out"
        )
    try:
        state = Controller(run.plan, name, say=log.info).run()
    except ShipyardError as exc:  # e.g. the service is down: the new version waits
        return f"rollout '{name}' not started: {exc} ({exc.hint or ''})"
    last = state.outcome or (state.decisions[-1].reason if state.decisions else "")
    return f"rollout '{name}': {state.status}: {last}"


@task(name="report", cache_policy=NO_CACHE, persist_result=False)
def report(run: StepRun[MonitorStep], found: Judgement, done: list[str]) -> None:
    folder = Path(run.step.report_dir)
    folder.mkdir(parents=True, exist_ok=True)
    png = plot(run.step, found, folder / "drift.png")
    report_text = text(run.step, found) + "".join(f"\n  -> {line}" for line in done)
    (folder / "report.txt").write_text(report_text + "\n", encoding="utf-8")
    (folder / "report.html").write_text(html_page(run.step, found, png, done), encoding="utf-8")
    create_markdown_artifact(
        key=f"monitor-{run.step.name}",
        markdown=markdown(run.step, found, png, done),
        description=f"monitor {run.step.name}: {found.status(run.step.drift_share)}",
    )


@flow(
    name="monitor-service",
    flow_run_name=run_name("monitor-service", "service"),
    description=__doc__,
)
def monitor_service(service: str) -> MonitorServiceResult:
    """One evaluation of the service's last window."""
    run = begin("monitor-service", MonitorStep, service)
    # labelled by the service watched, beside the service's own metrics (resource="service.x")
    with monitored_run(
        "monitor-service",
        run.step.service,
        run.plan.project,
        metrics_sink(run.plan),
        run.flow_run_id,
    ) as metrics:
        found = judge_window(run)
        observe(metrics, run.step, found)
        done = act(run, found)
        actions.remember(run.step, found)
        status = found.status(run.step.drift_share)
        run.settle(f"{status}: {len(found.drifted)} features drifted, {len(done)} actions")
        for line in text(run.step, found).splitlines():
            (log.warning if line.lstrip().startswith("!") else log.info)("%s", line)
        for line in done:
            log.info("%s", line)
        report(run, found, done)
        return MonitorServiceResult(
            status=status,
            rows=found.rows,
            drifted=found.drifted,
            predictions_drifted=found.predictions_drifted,
            failed_expectations=found.quality_failed,
            problems=found.problems,
            actions=done,
        )
