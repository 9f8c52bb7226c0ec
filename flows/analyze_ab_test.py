"""analyze-ab-test: one look at an A/B test (started on the first run): results, SRM,
guardrails, a decision with its reason, a report with plots; stops the test when it is decided,
hands a winner to the service's rollout, and moves a bandit's traffic."""

from __future__ import annotations

import logging

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from shipyard.abtests.analysis import AbTestReport
from shipyard.abtests.report import html_page, markdown, plot
from shipyard.abtests.runner import AbTest
from shipyard.abtests.state import AbTestState
from shipyard.compiler.ab_tests import AbTestStep
from shipyard.logs import quiet_expected_errors
from shipyard.runtime.flow_run import StepRun, begin, run_name
from shipyard.settings import StateLayout

log = logging.getLogger("shipyard.flows.analyze_ab_test")
quiet_expected_errors()


class AnalyzeAbTestResult(BaseModel):
    status: str
    decision: str
    reason: str
    winner: str | None
    callers: dict[str, int]


@task(name="analyse", cache_policy=NO_CACHE, persist_result=False)
def analyse(run: StepRun[AbTestStep]) -> tuple[AbTestState, AbTestReport]:
    """Start the test if it never ran, then look at it and act on the decision."""
    test = AbTest(run.plan, run.step.name)
    if test.state() is None:
        test.start()
    return test.look(record=True)


@task(name="report", cache_policy=NO_CACHE, persist_result=False)
def report(run: StepRun[AbTestStep], state: AbTestState, found: AbTestReport) -> None:
    folder = StateLayout(run.plan.runtime.state_dir).root / "abtests" / run.step.name
    png = plot(run.step, state, found, folder / "report.png")
    (folder / "report.html").write_text(html_page(run.step, state, found, png), encoding="utf-8")
    create_markdown_artifact(
        key=f"ab-test-{run.step.name}",
        markdown=markdown(run.step, state, found, png),
        description=f"A/B test {run.step.name}: {found.decision}",
    )


@task(name="hand-over", cache_policy=NO_CACHE, persist_result=False)
def hand_over(run: StepRun[AbTestStep], winner: str) -> str:
    """on_winner: promote: the service's rollout of that version, or the alias move itself."""
    from shipyard.abtests.promote import promote_winner

    return promote_winner(run.plan, run.step, winner, say=log.info)


@flow(
    name="analyze-ab-test",
    flow_run_name=run_name("analyze-ab-test", "ab_test"),
    description=__doc__,
)
def analyze_ab_test(ab_test: str) -> AnalyzeAbTestResult:
    """One look at the A/B test; stops it once decided."""
    run = begin("analyze-ab-test", AbTestStep, ab_test)
    with run.monitored() as metrics:
        state, found = analyse(run)
        for arm in found.arms:
            metrics.observe(f"ab_test_callers_{arm.name}", float(arm.units), "Callers in the arm.")
            if arm.mean is not None:
                metrics.observe(f"ab_test_mean_{arm.name}", arm.mean, "The arm's metric.")
            if arm.p_value is not None:
                metrics.observe(f"ab_test_p_value_{arm.name}", arm.p_value, "vs control.")
        if found.srm.p_value is not None:
            metrics.observe("ab_test_srm_p_value", found.srm.p_value, "Sample-ratio mismatch test.")
        metrics.observe("ab_test_running", float(state.status == "running"), "1 while it runs.")
        run.settle(f"{found.decision}: {found.reason}")
        report(run, state, found)
        if found.decision == "sample_ratio_mismatch" or found.decision == "harm":
            log.error("A/B test %s stopped: %s", ab_test, found.reason)
        else:
            log.info("A/B test %s: %s: %s", ab_test, found.decision, found.reason)
        if found.winner and run.step.on_winner == "promote":
            log.info("%s", hand_over(run, found.winner))
        return AnalyzeAbTestResult(
            status=state.status,
            decision=found.decision,
            reason=found.reason,
            winner=found.winner,
            callers={arm.name: arm.units for arm in found.arms},
        )
