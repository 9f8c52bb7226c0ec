"""One look at an A/B test: the arms' results, SRM, guardrails, and the decision with its reason.

Decisions, in this order:

1. **sample-ratio mismatch** (chi-square against the allocation, p < 0.001): the assignment is
   broken, so no result can be trusted: stop.
2. **harm** on a guardrail (error rate or latency of an arm worse than control's, as rollouts
   test it) or on the metric: stop.
3. the metric, by design: `fixed` waits for the planned sample per arm, then tests once (Holm
   or Benjamini-Hochberg across treatment arms); `sequential` tests at every look with an
   always-valid p-value (mSPRT), so looking often does not inflate false positives; `bayesian`
   stops when the chance to beat control passes 95% (or falls under 5%); `bandit` keeps moving
   traffic and names a winner once one arm is best with 95% probability.
4. no decision by `max_duration`: stop for no effect.

Too little data is never a decision: an empty arm, no outcome yet, or zero variance keeps the
test running and the report says why.
"""

from __future__ import annotations

import math
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from shipyard.abtests.exposure import ArmCounts, Exposures
from shipyard.abtests.state import AbTestState, Decision, Look
from shipyard.compiler.ab_tests import AbTestStep
from shipyard.stats.abtest import (
    Comparison,
    SrmResult,
    adjust_p_values,
    cuped,
    proportions_ztest,
    ratio_test,
    srm_test,
    welch_t_test,
)
from shipyard.stats.abtest_bayes import beta_binomial, normal_lift, thompson_allocation
from shipyard.stats.abtest_power import power_means, power_proportions
from shipyard.stats.abtest_sequential import sequential_means, sequential_proportions
from shipyard.stats.analysis import MetricOutcome

WIN_PROBABILITY = 0.95


@dataclass
class ArmResult:
    """One arm at this look."""

    name: str
    variant: str
    units: int
    measured: int
    mean: float | None
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    lift: float | None = None
    p_value: float | None = None
    adjusted_p: float | None = None
    chance_to_win: float | None = None
    expected_loss: float | None = None
    method: str = ""
    note: str = ""


@dataclass
class AbTestReport:
    """Everything a look found, and what it decided."""

    test: str
    design: str
    metric: str
    arms: list[ArmResult]
    srm: SrmResult
    guardrails: list[MetricOutcome]
    decision: Decision
    reason: str
    winner: str | None
    needed_per_arm: float | None
    elapsed_seconds: float
    shares: dict[str, float] = field(default_factory=dict)
    """Bandit: the shares the arms should get next (variant -> %)."""
    previous_p: dict[str, float] = field(default_factory=dict)
    cuped_reduction: float | None = None
    switched: int = 0
    unusable_outcomes: int = 0
    entered: list[tuple[float, str]] = field(default_factory=list)
    """(time of first exposure, variant) per caller: the cumulative-exposure plot."""

    def look(self, at: float) -> Look:
        treatments = self.arms[1:]
        return Look(
            at=at,
            units={a.name: a.units for a in self.arms},
            measured={a.name: a.measured for a in self.arms},
            means={a.name: a.mean for a in self.arms},
            effect={a.name: a.effect for a in treatments},
            ci={a.name: (a.ci_low, a.ci_high) for a in treatments},
            p_value={
                a.name: a.adjusted_p if a.adjusted_p is not None else a.p_value for a in treatments
            },
            chance_to_win={a.name: a.chance_to_win for a in treatments},
            decision=self.decision,
            reason=self.reason,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": "shipyard.abtest.report/1",
            "test": self.test,
            "design": self.design,
            "metric": self.metric,
            "decision": self.decision,
            "reason": self.reason,
            "winner": self.winner,
            "needed_per_arm": self.needed_per_arm,
            "elapsed_seconds": self.elapsed_seconds,
            "arms": [vars(a) for a in self.arms],
            "srm": {
                "p_value": self.srm.p_value,
                "mismatch": self.srm.mismatch,
                "expected": list(self.srm.expected),
                "status": self.srm.status,
            },
            "guardrails": [
                {"name": g.name, "outcome": g.outcome, "evidence": g.evidence}
                for g in self.guardrails
            ],
            "bandit_shares": self.shares,
            "cuped_variance_reduction": self.cuped_reduction,
            "switched_callers": self.switched,
            "unusable_outcomes": self.unusable_outcomes,
        }


def analyse(
    step: AbTestStep,
    exposures: Exposures,
    state: AbTestState,
    now: float,
    guardrails: list[MetricOutcome] | None = None,
) -> AbTestReport:
    """One look at the test (pure: the caller reads the logs and acts on the decision)."""
    counts = [exposures.arms.get(arm.variant) or ArmCounts() for arm in step.arms]
    control = counts[0]
    arms = [
        ArmResult(a.name, a.variant, c.units, c.measured, c.mean)
        for a, c in zip(step.arms, counts, strict=True)
    ]
    srm = srm_test(
        [c.units for c in counts], [a.share for a in step.arms], threshold=step.srm_threshold
    )
    report = AbTestReport(
        test=step.name,
        design=step.design,
        metric=step.metric.name,
        arms=arms,
        srm=srm,
        guardrails=guardrails or [],
        decision="keep_running",
        reason="",
        winner=None,
        needed_per_arm=_needed(step, control),
        elapsed_seconds=now - state.started_at,
        previous_p=dict(state.previous_p),
        switched=exposures.switched,
        unusable_outcomes=exposures.unusable_outcomes,
        entered=exposures.entered,
    )
    for arm, treated in zip(arms[1:], counts[1:], strict=True):
        _compare(step, report, arm, control, treated)
    if report.cuped_reduction is not None and control.sd:  # CUPED shrinks the plan too
        adjusted = control.sd * math.sqrt(max(1 - report.cuped_reduction, 1e-12))
        with suppress(ValueError):
            report.needed_per_arm = power_means(
                step.mde, adjusted, power=step.power, alpha=step.alpha
            ).n
    _correct(step, arms[1:])
    if step.design == "bandit":
        _bandit(step, report, counts)
    _decide(step, report)
    return report


def _needed(step: AbTestStep, control: ArmCounts) -> float | None:
    """Callers per arm the fixed design needs to detect the MDE with the declared power."""
    mean = control.mean
    try:
        if step.metric.type == "binary":
            base = mean if mean is not None and 0 < mean < 1 else None
            if base is None or not 0 < base + step.mde < 1:
                return None
            return power_proportions(base, base + step.mde, power=step.power, alpha=step.alpha).n
        sd = control.sd
        if not sd:
            return None
        return power_means(step.mde, sd, power=step.power, alpha=step.alpha).n
    except ValueError:
        return None


def _compare(
    step: AbTestStep, report: AbTestReport, arm: ArmResult, a: ArmCounts, b: ArmCounts
) -> None:
    """The treatment arm against control, by the design's statistics."""
    if a.measured == 0 or b.measured == 0:
        arm.note = "no outcome yet in " + ("control" if a.measured == 0 else "this arm")
        return
    binary = step.metric.type == "binary"
    x_a, x_b = round(sum(a.values)), round(sum(b.values))
    if step.design in ("bayesian", "bandit"):
        bayes = (
            beta_binomial(x_a, a.measured, x_b, b.measured)
            if binary
            else normal_lift(
                a.mean or 0.0,
                (a.sd or 0.0) ** 2,
                a.measured,
                b.mean or 0.0,
                (b.sd or 0.0) ** 2,
                b.measured,
            )
        )
        arm.method = bayes.method
        if bayes.status != "ok":
            arm.note = bayes.reason
            return
        arm.chance_to_win = bayes.chance_to_win
        arm.expected_loss = bayes.expected_loss_b
    if step.design == "sequential":
        if binary:
            seq = sequential_proportions(
                x_a, a.measured, x_b, b.measured, alpha=step.alpha,
                previous_p=report.previous_p.get(arm.name, 1.0),
            )  # fmt: skip
        else:
            seq = sequential_means(
                a.mean or 0.0, a.sd or 0.0, a.measured, b.mean or 0.0, b.sd or 0.0, b.measured,
                alpha=step.alpha, previous_p=report.previous_p.get(arm.name, 1.0),
            )  # fmt: skip
        arm.method = "mSPRT (always valid)"
        if seq.status != "ok":
            arm.note = seq.reason
            return
        arm.effect, arm.p_value = seq.estimate, seq.p_value
        arm.ci_low, arm.ci_high = seq.ci_low, seq.ci_high
        if seq.p_value is not None:
            report.previous_p[arm.name] = seq.p_value
        return
    comparison = _frequentist(step, a, b, report)
    if not arm.method:
        arm.method = comparison.method
    if comparison.status != "ok":
        arm.note = arm.note or comparison.reason
        return
    arm.effect, arm.p_value = comparison.estimate, comparison.p_value
    arm.ci_low, arm.ci_high, arm.lift = comparison.ci_low, comparison.ci_high, comparison.lift


def _frequentist(step: AbTestStep, a: ArmCounts, b: ArmCounts, report: AbTestReport) -> Comparison:
    if step.metric.type == "binary":
        return proportions_ztest(
            round(sum(a.values)), a.measured, round(sum(b.values)), b.measured, alpha=step.alpha
        )
    if step.metric.type == "ratio":
        return ratio_test(a.values, a.requests, b.values, b.requests, alpha=step.alpha)
    if step.cuped_covariate:
        known_a = [(v, x) for v, x in zip(a.values, a.covariates, strict=True) if not math.isnan(x)]
        known_b = [(v, x) for v, x in zip(b.values, b.covariates, strict=True) if not math.isnan(x)]
        if len(known_a) >= 2 and len(known_b) >= 2:
            adjusted = cuped(
                [v for v, _ in known_a], [x for _, x in known_a],
                [v for v, _ in known_b], [x for _, x in known_b], alpha=step.alpha,
            )  # fmt: skip
            if adjusted.status == "ok":
                report.cuped_reduction = adjusted.variance_reduction
                return adjusted.comparison
    return welch_t_test(a.values, b.values, alpha=step.alpha)


def _correct(step: AbTestStep, treatments: list[ArmResult]) -> None:
    """Holm or Benjamini-Hochberg across the treatment arms (fixed design)."""
    tested = [arm for arm in treatments if arm.p_value is not None]
    if step.correction == "none" or len(tested) < 2 or step.design != "fixed":
        for arm in tested:
            arm.adjusted_p = arm.p_value
        return
    adjusted = adjust_p_values(
        [arm.p_value or 1.0 for arm in tested], step.correction, alpha=step.alpha
    )
    for arm, p in zip(tested, adjusted.p_adjusted, strict=True):
        arm.adjusted_p = float(p)


def _bandit(step: AbTestStep, report: AbTestReport, counts: list[ArmCounts]) -> None:
    if step.metric.type != "binary" or any(c.measured == 0 for c in counts):
        return
    allocation = thompson_allocation(
        [round(sum(c.values)) for c in counts],
        [c.measured for c in counts],
        min_share=step.bandit_min_share,
    )
    report.shares = {
        arm.variant: round(100 * share, 2)
        for arm, share in zip(step.arms, allocation.shares, strict=True)
    }
    best = max(range(len(counts)), key=lambda i: allocation.prob_best[i])
    if allocation.prob_best[best] >= WIN_PROBABILITY and best > 0:
        report.arms[best].chance_to_win = allocation.prob_best[best]


def _better(step: AbTestStep, effect: float | None) -> bool:
    return effect is not None and (effect > 0) == step.metric.higher_is_better


def _decide(step: AbTestStep, report: AbTestReport) -> None:
    """The decision and its reason, in the order of the module's docstring."""
    if report.srm.mismatch:
        observed = ", ".join(f"{a.name} {a.units}" for a in report.arms)
        expected = ", ".join(f"{e:.0f}" for e in report.srm.expected)
        report.decision = "sample_ratio_mismatch"
        report.reason = (
            f"sample ratio mismatch: callers {observed} against an expected {expected} "
            f"(chi-square p={report.srm.p_value:.2g} < {step.srm_threshold:g}); the assignment "
            "is broken, so no result can be trusted"
        )
        return
    harmed = [g for g in report.guardrails if g.outcome == "failed"]
    if harmed:
        report.decision = "harm"
        report.reason = "guardrail failed: " + "; ".join(g.evidence for g in harmed)
        return
    treatments = report.arms[1:]
    waiting = [arm for arm in treatments if arm.note]
    if waiting and len(waiting) == len(treatments):
        report.reason = "; ".join(f"{a.name}: {a.note}" for a in waiting)
        _out_of_time(step, report)
        return
    if step.design in ("bayesian", "bandit"):
        _decide_bayes(step, report, treatments)
        return
    if step.design == "fixed" and report.needed_per_arm is not None:
        fewest = min(a.measured for a in report.arms)
        if fewest < report.needed_per_arm:
            report.reason = (
                f"{fewest} of the {math.ceil(report.needed_per_arm)} callers per arm with an "
                f"outcome the fixed design needs for an MDE of {step.mde:g}"
            )
            _out_of_time(step, report)
            return
    significant = [
        a
        for a in treatments
        if (a.adjusted_p if a.adjusted_p is not None else a.p_value or 1.0) < step.alpha
    ]
    worse = [a for a in significant if not _better(step, a.effect)]
    if worse:
        report.decision = "harm"
        report.reason = "; ".join(_finding(step, a, "worse") for a in worse)
        return
    better = [a for a in significant if _better(step, a.effect)]
    if better:
        best = max(better, key=lambda a: abs(a.effect or 0.0))
        report.decision, report.winner = "winner", best.name
        report.reason = _finding(step, best, "better")
        return
    if step.design == "fixed" and report.needed_per_arm is not None:
        report.decision = "no_effect"
        report.reason = "the planned sample is in and no arm differs: " + "; ".join(
            _finding(step, a, "no different") for a in treatments
        )
        return
    report.reason = "no arm differs yet: " + "; ".join(
        _finding(step, a, "so far") for a in treatments
    )
    _out_of_time(step, report)


def _decide_bayes(step: AbTestStep, report: AbTestReport, treatments: list[ArmResult]) -> None:
    chances = [(a, a.chance_to_win) for a in treatments if a.chance_to_win is not None]
    if step.design == "bandit" and report.shares:
        report.reason = "bandit shares " + ", ".join(
            f"{v} {s:g}%" for v, s in report.shares.items()
        )
    for arm, chance in chances:
        assert chance is not None
        if chance >= WIN_PROBABILITY:
            report.decision, report.winner = "winner", arm.name
            report.reason = f"{arm.name} beats control with probability {chance:.1%}"
            return
        if chance <= 1 - WIN_PROBABILITY and step.design == "bayesian":
            report.decision = "harm"
            report.reason = f"{arm.name} beats control with probability only {chance:.1%}"
            return
    if not report.reason:
        report.reason = "no arm is clearly better: " + ", ".join(
            f"{a.name} {c:.1%}" for a, c in chances
        )
    _out_of_time(step, report)


def _out_of_time(step: AbTestStep, report: AbTestReport) -> None:
    if report.elapsed_seconds >= step.max_duration_seconds:
        report.decision = "no_effect"
        report.reason = f"max_duration reached without a decision: {report.reason}"


def _finding(step: AbTestStep, arm: ArmResult, word: str) -> str:
    p = arm.adjusted_p if arm.adjusted_p is not None else arm.p_value
    interval = (
        f" [{arm.ci_low:+.4g}, {arm.ci_high:+.4g}]"
        if arm.ci_low is not None and arm.ci_high is not None
        else ""
    )
    effect = f"{arm.effect:+.4g}" if arm.effect is not None else "?"
    return (
        f"{arm.name} {word}: {step.metric.name} {effect}{interval} vs control, p={p:.3g}"
        if p is not None
        else f"{arm.name}: {arm.note or 'not tested'}"
    )
