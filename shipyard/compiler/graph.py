"""The step graph: dependency order and cycle detection over the steps' `needs`."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from graphlib import CycleError, TopologicalSorter

from shipyard.compiler.plan import StepBase
from shipyard.diagnostics import Diagnostic


def check_graph(steps: Iterable[StepBase]) -> Iterator[Diagnostic]:
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


def topological_order(steps: Iterable[StepBase]) -> list[str]:
    """Step ids, each after the steps it needs, otherwise in declaration order (so `shipyard
    plan` lists sections and entries as the spec has them); graphlib.CycleError on a cycle."""
    steps = list(steps)
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for step in steps:
        sorter.add(step.id, *step.needs)
    sorter.prepare()  # raises CycleError
    position = {step.id: i for i, step in enumerate(steps)}
    ready: list[tuple[int, str]] = []
    order: list[str] = []
    while sorter.is_active():
        for step_id in sorter.get_ready():
            heapq.heappush(ready, (position.get(step_id, len(position)), step_id))
        _, step_id = heapq.heappop(ready)
        order.append(step_id)
        sorter.done(step_id)
    return order
