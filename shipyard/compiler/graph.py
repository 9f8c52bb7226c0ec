"""The step graph: dependency order and cycle detection."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from graphlib import CycleError, TopologicalSorter

from shipyard.compiler.plan import PlanStep
from shipyard.diagnostics import Diagnostic


def check_graph(steps: Iterable[PlanStep]) -> Iterator[Diagnostic]:
    """Unknown dependencies and cycles, each as a diagnostic naming the steps involved."""
    steps = list(steps)
    ids = {s.id for s in steps}
    for step in steps:
        for need in step.needs:
            if need not in ids:
                yield Diagnostic(
                    "E302",
                    f"step '{step.id}' depends on unknown step '{need}'",
                    hint="the compiler linked steps that do not exist: please report this "
                    "with your pipelines.yaml",
                )
    try:
        topological_order(steps)
    except CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        yield Diagnostic(
            "E301",
            f"dependency cycle: {cycle}",
            hint="remove one of the references that close the loop",
        )


def topological_order(steps: Iterable[PlanStep]) -> list[str]:
    """Step ids, each after the steps it needs; raises graphlib.CycleError on a cycle."""
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for step in steps:
        sorter.add(step.id, *step.needs)
    return list(sorter.static_order())
