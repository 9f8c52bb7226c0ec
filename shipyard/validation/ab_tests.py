"""Rules for `ab_tests:`: the service and its arms exist, routing fields are request fields,
the size is feasible at the MDE, one test per set of callers of a service at a time."""

from __future__ import annotations

from collections.abc import Iterator

from shipyard.diagnostics import Diagnostic, did_you_mean, one_of
from shipyard.loader.source_map import SourceMap
from shipyard.spec import PipelineSpec
from shipyard.spec.ab_tests import AbTestSpec, TargetRule, parse_target
from shipyard.spec.services import service_inputs


def check_ab_tests(spec: PipelineSpec, sm: SourceMap) -> Iterator[Diagnostic]:
    seen: list[tuple[str, AbTestSpec]] = []
    for name, test in spec.ab_tests.items():
        yield from check_ab_test(name, test, spec, sm)
        if test.target is None and ("ab_tests", name, "target") in sm.values:
            continue  # its target is written but invalid (E103): who it admits is unknown
        for other_name, other in seen:
            if other.service == test.service and not _disjoint(test, other):
                yield Diagnostic(
                    "E905",
                    f"A/B tests '{other_name}' and '{name}' split the same callers of service "
                    f"'{test.service}' at once; a caller would be in both, and neither could "
                    "tell which one moved its outcome",
                    sm.key_span(("ab_tests", name)),
                    'target disjoint callers (e.g. `target: region == "north"` in one and '
                    '`region == "south"` in the other), or run them one after the other',
                )
        seen.append((name, test))


def _disjoint(one: AbTestSpec, other: AbTestSpec) -> bool:
    """Both targets admit only listed values of the same field, and no value is in both."""
    if one.target is None or other.target is None:
        return False
    a, b = parse_target(one.target), parse_target(other.target)
    admits = ("==", "in")
    return (
        a.field == b.field
        and a.op in admits
        and b.op in admits
        and not set(a.values) & set(b.values)
    )


def check_ab_test(
    name: str, test: AbTestSpec, spec: PipelineSpec, sm: SourceMap
) -> Iterator[Diagnostic]:
    base = ("ab_tests", name)
    service = spec.services.get(test.service)
    if service is None:
        yield Diagnostic(
            "E901",
            f"A/B test '{name}' splits the callers of service '{test.service}', which is not "
            "defined",
            sm.value_span((*base, "service")),
            did_you_mean(test.service, spec.services)
            or (one_of(sorted(spec.services)) if spec.services else "define it under `services:`"),
        )
        return
    stable = service.version if service.version is not None else service.alias
    served = [stable, *service.candidates]
    for arm, reference in test.variants.items():
        if reference not in served:
            yield Diagnostic(
                "E902",
                f"A/B test '{name}': arm '{arm}' is {reference!r}, which service "
                f"'{test.service}' does not serve",
                sm.value_span((*base, "variants", arm)),
                f"the service serves {', '.join(repr(s) for s in served)}; add "
                f"{reference!r} to `services.{test.service}.candidates`"
                if isinstance(reference, str)
                else f"serve version {reference} as a candidate alias, or name one of "
                f"{', '.join(repr(s) for s in served)}",
            )
    if len(set(test.variants.values())) < len(test.variants):
        yield Diagnostic(
            "E903",
            f"A/B test '{name}': two arms serve the same model version",
            sm.value_span((*base, "variants")),
            "give each arm its own alias or version: the test compares versions",
        )
    yield from _check_fields(name, test, spec, sm)
    metric = test.metric
    if metric.type == "binary" and test.mde >= 1:
        yield Diagnostic(
            "E906",
            f"A/B test '{name}': an MDE of {test.mde:g} on a binary metric is more than the "
            "whole range of a share (0 to 1): no sample size can detect it, or every one can",
            sm.value_span((*base, "mde")),
            "write the smallest difference in share worth detecting, e.g. 0.02 (2 points)",
        )


def _check_fields(
    name: str, test: AbTestSpec, spec: PipelineSpec, sm: SourceMap
) -> Iterator[Diagnostic]:
    """assign_by, the target's field and the CUPED covariate are request fields."""
    inputs = service_inputs(spec, spec.services[test.service])
    if inputs is None:
        return
    base = ("ab_tests", name)
    target: TargetRule | None = parse_target(test.target) if test.target else None
    named = [
        ((*base, "assign_by"), test.assign_by, "assign_by"),
        ((*base, "target"), target.field if target else None, "the target's field"),
        ((*base, "cuped", "covariate"), test.cuped.covariate if test.cuped else None, "covariate"),
    ]
    for at, field, what in named:
        if field is not None and field not in inputs:
            yield Diagnostic(
                "E904",
                f"A/B test '{name}': {what} '{field}' is not a request field of service "
                f"'{test.service}'",
                sm.value_span(at),
                did_you_mean(field, inputs) or one_of(inputs),
            )
