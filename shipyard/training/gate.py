"""The promotion gate: absolute thresholds plus a paired comparison with the champion."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.compiler import TrainModelStep
from shipyard.stats.targets import ClassificationTarget
from shipyard.training.targets import encode

if TYPE_CHECKING:
    from shipyard.stats.paired import Comparison


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


@dataclass(frozen=True)
class ChampionScores:
    """The champion's predictions on the holdout rows it is compared on.

    Attributes:
        version: Its registry version.
        rows: Which holdout rows the comparison uses (a boolean mask over the holdout): the
            rows the champion never trained on either.
        y_pred: Its predicted labels or values on those rows.
        y_score: Its scores on those rows (as `estimators.predict` gives them), or None.
        basis: How the rows were chosen, for the gate table.
    """

    version: str
    rows: Any
    y_pred: Any
    y_score: Any
    basis: str = ""


def judge(
    step: TrainModelStep,
    metrics: dict[str, float],
    y_true: Any,
    y_pred: Any,
    y_score: Any,
    champion: Callable[[], ChampionScores | None] | None = None,
    target: ClassificationTarget | None = None,
) -> GateVerdict:
    """Check thresholds, then (if declared) compare with the champion on the same holdout rows.

    `champion` returns the champion's predictions on the holdout rows neither model trained on,
    or None when there is no champion to compare with. `target` gives a classification's
    classes and positive class (None: labels are already 0/1, positive 1).
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
    import numpy as np

    rows = np.asarray(found.rows, dtype=bool)
    name = f"vs champion v{found.version} ({rule.metric})"
    required = f"lower bound >= {rule.min_delta:g}"
    used = f"on {int(rows.sum()):,} of {len(rows):,} holdout rows"
    basis = f"{used}: {found.basis}" if found.basis else used
    try:
        comparison = _compare(
            step,
            target,
            _subset(y_true, rows),
            (_subset(y_pred, rows), _subset(y_score, rows)),
            (found.y_pred, found.y_score),
        )
    except ValueError as exc:  # too few rows, or one class only: no evidence either way
        verdict.comparison = {
            "champion_version": found.version,
            "rows": int(rows.sum()),
            "holdout_rows": len(rows),
            "basis": found.basis,
            "error": str(exc),
        }
        verdict.checks.append(GateCheck(name, "not comparable", required, False, f"{basis}; {exc}"))
        return verdict
    verdict.comparison = {
        **asdict(comparison),
        "champion_version": found.version,
        "rows": int(rows.sum()),
        "holdout_rows": len(rows),
        "basis": found.basis,
    }
    verdict.checks.append(
        GateCheck(
            name=name,
            observed=f"{comparison.improvement:+.4f} "
            f"[{comparison.ci_low:+.4f}, {comparison.ci_high:+.4f}]",
            required=required,
            passed=comparison.passed,
            detail=f"{comparison.summary()}; {basis}",
        )
    )
    return verdict


def _compare(
    step: TrainModelStep,
    target: ClassificationTarget | None,
    y_true: Any,
    candidate: tuple[Any, Any],
    champion: tuple[Any, Any],
) -> Comparison:
    """The paired comparison, its labels encoded as the target's kind needs them."""
    from shipyard.stats.multiclass import compare_multiclass
    from shipyard.stats.paired import compare_to_champion

    assert step.vs_champion is not None
    rule = step.vs_champion
    if target is not None and target.kind == "multiclass":
        y, a, b = (encode(target, labels) for labels in (y_true, candidate[0], champion[0]))
        return compare_multiclass(
            rule.metric,
            y,
            a,
            b,
            candidate[1],
            champion[1],
            len(target.classes or ()),
            margin=rule.min_delta,
            confidence=rule.confidence,
            seed=step.seed,
        )
    if target is not None:
        y_true, a, b = (encode(target, labels) for labels in (y_true, candidate[0], champion[0]))
        candidate, champion = (a, candidate[1]), (b, champion[1])
    return compare_to_champion(
        rule.metric,
        y_true,
        candidate[0],
        champion[0],
        candidate_score=candidate[1],
        champion_score=champion[1],
        margin=rule.min_delta,
        confidence=rule.confidence,
        method=rule.method,
        seed=step.seed,
    )


def _subset(values: Any, rows: Any) -> Any:
    import numpy as np

    return None if values is None else np.asarray(values)[rows]
