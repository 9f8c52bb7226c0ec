"""Rules for `rollouts:`: the service exists, steps increase, the candidate is not stable, routing
fields are request fields, PromQL has a Prometheus to ask, one rollout per service."""

from __future__ import annotations

from collections.abc import Iterator

from shipyard.diagnostics import Diagnostic, did_you_mean, one_of
from shipyard.loader.source_map import SourceMap
from shipyard.spec import PipelineSpec
from shipyard.spec.rollouts import RolloutSpec
from shipyard.spec.services import service_inputs


def check_rollouts(spec: PipelineSpec, sm: SourceMap) -> Iterator[Diagnostic]:
    claimed: dict[str, str] = {}
    chosen = {name for env in spec.environments for name in env.rollouts.values()}
    for name, rollout in spec.rollouts.items():
        yield from check_rollout(name, rollout, spec, sm)
        service = rollout.service or name
        # a rollout an environment chooses runs there only: it shares the service with none
        other = name if name in chosen else claimed.setdefault(service, name)
        if other != name:
            yield Diagnostic(
                "E806",
                f"rollouts '{other}' and '{name}' both roll out service '{service}'; a "
                "service has one rollout, or their traffic shifts would fight",
                sm.key_span(("rollouts", name)),
                f"remove one, or point `rollouts.{name}.service` at another service",
            )


def check_rollout(
    name: str, rollout: RolloutSpec, spec: PipelineSpec, sm: SourceMap
) -> Iterator[Diagnostic]:
    base = ("rollouts", name)
    service_name = rollout.service or name
    service = spec.services.get(service_name)
    if service is None:
        at = sm.value_span((*base, "service")) if rollout.service else sm.key_span(base)
        yield Diagnostic(
            "E801",
            f"rollout '{name}' rolls out service '{service_name}', which is not defined",
            at,
            did_you_mean(service_name, spec.services)
            or (one_of(sorted(spec.services)) if spec.services else "define it under `services:`")
            + (f"; or set `rollouts.{name}.service`" if rollout.service is None else ""),
        )
        return
    stable = service.version if service.version is not None else service.alias
    if rollout.candidate == stable:
        yield Diagnostic(
            "E802",
            f"rollout '{name}': candidate {rollout.candidate!r} is what service "
            f"'{service_name}' already serves as stable",
            sm.value_span((*base, "candidate"))
            if "candidate" in rollout.model_fields_set
            else sm.key_span(base),
            "name the version to roll out: an alias such as challenger, or a version number",
        )
    if rollout.strategy != "canary" and rollout.steps:
        yield Diagnostic(
            "E803",
            f"rollout '{name}' is {rollout.strategy}, which has no weight steps",
            sm.key_span((*base, "steps")),
            "remove `steps`, or use `strategy: canary`",
        )
    previous = 0.0
    for index, step in enumerate(rollout.steps):
        if step.weight <= previous:
            yield Diagnostic(
                "E804",
                f"rollout '{name}': step {index + 1} has weight {step.weight:g}, not more than "
                f"the step before ({previous:g})",
                sm.value_span((*base, "steps", index, "weight")),
                "give each step a larger share than the one before, e.g. 5, 25, 50",
            )
        previous = max(previous, step.weight)
    yield from _check_fields(name, rollout, spec, sm)
    if spec.active_profile.prometheus.url is None:
        for index, metric in enumerate(rollout.analysis.metrics):
            if metric.query is not None:
                yield Diagnostic(
                    "E805",
                    f"rollout '{name}': metric {index + 1} is a PromQL query, but profile "
                    f"'{spec.profile}' names no Prometheus to run it",
                    sm.value_span((*base, "analysis", "metrics", index, "query")),
                    f"set `profiles.{spec.profile}.prometheus.url` (e.g. http://127.0.0.1:9090), "
                    "or use a built-in metric (error_rate, latency_p99, prediction_shift)",
                )


def _check_fields(
    name: str, rollout: RolloutSpec, spec: PipelineSpec, sm: SourceMap
) -> Iterator[Diagnostic]:
    """The sticky key and rule fields are request fields of the service."""
    service = spec.services[rollout.service or name]
    inputs = service_inputs(spec, service)
    if inputs is None:
        return
    base = ("rollouts", name)
    named = [((*base, "sticky_key"), rollout.sticky_key)] + [
        ((*base, "rules", index, "field"), rule.field) for index, rule in enumerate(rollout.rules)
    ]
    for at, field in named:
        if field is not None and field not in inputs:
            yield Diagnostic(
                "E807",
                f"rollout '{name}': '{field}' is not a request field of service "
                f"'{rollout.service or name}'",
                sm.value_span(at),
                did_you_mean(field, inputs) or one_of(inputs),
            )
