"""The promotion gate: absolute thresholds plus a paired comparison with the champion."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from shipyard.compiler import TrainModelStep


@dataclass(frozen=True)
class GateCheck:
    """One condition of the gate and its evidence."""

    name: str
    observed: str
    required: str
    passed: bool
    detail: str = ""


@dataclass
class GateVerdict:
    """All checks; the candidate passes only if every one does."""

    checks: list[GateCheck] = field(default_factory=list)
    comparison: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.passed]

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "checks": [asdict(c) for c in self.checks],
            "comparison": self.comparison,
        }

    def markdown(self, model: str) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [
            f"## Gate of `{model}`: {verdict}",
            "",
            "| check | observed | required | result | evidence |",
            "|---|---|---|---|---|",
        ]
        for c in self.checks:
            result = "passed" if c.passed else "**failed**"
            lines.append(f"| {c.name} | {c.observed} | {c.required} | {result} | {c.detail} |")
        if not self.checks:
            lines.append("| (no conditions declared) | | | passed | |")
        return "\n".join(lines)

    def summary(self) -> str:
        if self.passed:
            return (
                "gate passed (" + ", ".join(c.name for c in self.checks) + ")"
                if self.checks
                else "gate passed (no conditions declared)"
            )
        return "gate failed: " + "; ".join(
            f"{c.name}: {c.observed}, needs {c.required}" + (f" ({c.detail})" if c.detail else "")
            for c in self.failures
        )


def judge(
    step: TrainModelStep,
    metrics: dict[str, float],
    y_true: Any,
    y_pred: Any,
    y_score: Any,
    champion: Callable[[], tuple[Any, Any, str] | None] | None = None,
) -> GateVerdict:
    """Check thresholds, then (if declared) compare with the champion on the same holdout.

    `champion` returns (predictions, scores, version) of the current champion on the same rows,
    or None when there is no champion to compare with.
    """
    verdict = GateVerdict()
    for threshold in step.thresholds:
        observed = metrics[threshold.metric]
        verdict.checks.append(
            GateCheck(
                name=threshold.metric,
                observed=f"{observed:.4f}",
                required=f"{threshold.op} {threshold.value:g}",
                passed=threshold.holds(observed),
            )
        )
    if step.vs_champion is None or champion is None:
        return verdict
    found = champion()
    rule = step.vs_champion
    if found is None:
        verdict.checks.append(
            GateCheck(
                f"vs champion ({rule.metric})",
                "no champion yet",
                f"improvement >= {rule.min_delta:g}",
                True,
                "first model: nothing to compare with",
            )
        )
        return verdict
    from shipyard.stats.paired import compare_to_champion

    champion_pred, champion_score, version = found
    comparison = compare_to_champion(
        rule.metric,
        y_true,
        y_pred,
        champion_pred,
        candidate_score=y_score,
        champion_score=champion_score,
        margin=rule.min_delta,
        confidence=rule.confidence,
        method=rule.method,
        seed=step.seed,
    )
    verdict.comparison = {**asdict(comparison), "champion_version": version}
    verdict.checks.append(
        GateCheck(
            name=f"vs champion v{version} ({rule.metric})",
            observed=f"{comparison.improvement:+.4f} "
            f"[{comparison.ci_low:+.4f}, {comparison.ci_high:+.4f}]",
            required=f"lower bound >= {rule.min_delta:g}",
            passed=comparison.passed,
            detail=comparison.summary(),
        )
    )
    return verdict
