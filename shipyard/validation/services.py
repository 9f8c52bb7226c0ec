"""Rules for `services:`: the model and feature service exist, routing keys are inputs, ports,
request checks have something to check, encrypted log fields have a key and are not masked."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator

from shipyard.diagnostics import Diagnostic, Severity, did_you_mean, one_of
from shipyard.loader.interpolate import SECRET_REFERENCE
from shipyard.loader.source_map import Path, SourceMap
from shipyard.spec import PipelineSpec, ServiceSpec
from shipyard.spec.datasets import Between, InSet, Regex
from shipyard.spec.services import service_inputs

_GLOB = re.compile(r"[*?\[]")


def check_services(spec: PipelineSpec, sm: SourceMap) -> Iterator[Diagnostic]:
    ports: dict[int, str] = {}
    profile = spec.active_profile
    taken = {profile.prefect.port: "the Prefect server", profile.mlflow.port: "the MLflow server"}
    for name, service in spec.services.items():
        yield from check_service(name, service, spec, sm)
        base = ("services", name)
        clash = ports.get(service.port) or taken.get(service.port)
        if clash is not None:
            yield Diagnostic(
                "E704",
                f"service '{name}' uses port {service.port}, already used by "
                + (f"service '{clash}'" if clash in spec.services else clash),
                sm.value_span((*base, "port")),
                "give each service its own `port:`",
            )
        ports.setdefault(service.port, name)


def check_service(
    name: str, service: ServiceSpec, spec: PipelineSpec, sm: SourceMap
) -> Iterator[Diagnostic]:
    base = ("services", name)
    model = spec.models.get(service.model)
    if model is None:
        yield Diagnostic(
            "E701",
            f"service '{name}' serves model '{service.model}', which is not defined",
            sm.value_span((*base, "model")),
            did_you_mean(service.model, spec.models)
            or (one_of(sorted(spec.models)) if spec.models else "define it under `models:`"),
        )
        return
    if service.features is not None and service.features not in spec.features.services:
        known = spec.features.services
        yield Diagnostic(
            "E702",
            f"service '{name}' reads feature service '{service.features}', which is not defined",
            sm.value_span((*base, "features")),
            did_you_mean(service.features, known)
            or (one_of(sorted(known)) if known else "define it under `features.services:`"),
        )
        return
    inputs = service_inputs(spec, service)
    sticky = service.routing.sticky_key
    if inputs is not None and sticky is not None and sticky not in inputs:
        yield Diagnostic(
            "E703",
            f"service '{name}': sticky key '{sticky}' is not a request field",
            sm.value_span((*base, "routing", "sticky_key")),
            did_you_mean(sticky, inputs) or one_of(inputs),
        )
    yield from _check_routing_variants(name, service, sm)
    yield from _check_log_encryption(name, service, spec, inputs, sm)
    if inputs is not None:
        yield from _check_request_checks(name, service, spec, inputs, sm)
    limited = service.rate_limit is not None or any(
        key.rate_limit for key in (service.auth.api_keys if service.auth else {}).values()
    )
    if limited and service.workers > 1 and not spec.active_profile.serving.rate_limit_storage:
        yield Diagnostic(
            "W702",
            f"service '{name}' counts its rate limits in the memory of each of its "
            f"{service.workers} workers: a caller may get up to {service.workers} times a limit",
            sm.value_span((*base, "workers")),
            f"share the counters in your Redis: `profiles.{spec.profile}.serving."
            "rate_limit_storage: redis://<host>:6379/0`, or serve with `workers: 1`",
            severity=Severity.WARNING,
        )
    if service.auth is None and (*base, "auth") not in sm.values:  # written but invalid: E103
        yield Diagnostic(
            "W701",
            f"service '{name}' has no `auth:`: anyone who can reach it may predict, send "
            "feedback and change its routing",
            sm.key_span((*base, "model")),
            'add `auth: {api_keys: {ops: {key: "${secret:NAME}", roles: [predict, admin]}}}`',
            severity=Severity.WARNING,
        )


def _check_routing_variants(name: str, service: ServiceSpec, sm: SourceMap) -> Iterator[Diagnostic]:
    """Weights and rules name variants the service has: `stable` and its candidates."""
    variants = ["stable", *service.candidates]
    base = ("services", name, "routing")
    named: list[tuple[Path, str, bool]] = [
        ((*base, "weights", variant), variant, True) for variant in service.routing.weights
    ]
    named += [
        ((*base, "rules", i, "variant"), rule.variant, False)
        for i, rule in enumerate(service.routing.rules)
    ]
    for at, variant, is_key in named:
        if variant in variants:
            continue
        yield Diagnostic(
            "E705",
            f"service '{name}': routing names variant '{variant}', which it does not serve",
            sm.key_span(at) if is_key else sm.value_span(at),
            did_you_mean(variant, variants)
            or f"its variants are {', '.join(variants)}; add a candidate alias to "
            "`candidates:` to route to it",
        )


def _check_log_encryption(
    name: str, service: ServiceSpec, spec: PipelineSpec, inputs: list[str] | None, sm: SourceMap
) -> Iterator[Diagnostic]:
    """`logging.encrypt` has a key kept in a secret, names fields that exist, and none that
    `logging.mask` hides already (at run time the mask wins)."""
    logging, at = service.logging, ("services", name, "logging")
    if logging.encrypt and logging.encryption_key is None:
        yield Diagnostic(
            "E706",
            f"service '{name}' encrypts {', '.join(logging.encrypt)} in its logs but has no "
            "`encryption_key`",
            sm.key_span((*at, "encrypt")),
            f'add `encryption_key: "${{secret:{name}-log-key}}"` beside `encrypt`, with a random '
            "key of 32+ characters in that secret",
        )
    keys: list[tuple[Path, str, str]] = [
        ((*at, "previous_keys", i), f"previous_keys[{i}]", key)
        for i, key in enumerate(logging.previous_keys)
    ]
    if logging.encryption_key is not None:
        keys.insert(0, ((*at, "encryption_key"), "encryption_key", logging.encryption_key))
    for path, setting, key in keys:
        if SECRET_REFERENCE.fullmatch(key.strip()) is None:
            yield Diagnostic(
                "E707",
                f"service '{name}': the log encryption key `{setting}` is not a "
                "${secret:NAME} reference",
                sm.value_span(path),
                f'keep the key in a secret and write `"${{secret:{name}-log-key}}"`; a key '
                "written in the file is no secret",
            )
    masked = [pattern.lower() for pattern in logging.mask]
    known = None if inputs is None else _loggable_fields(spec, service, inputs)
    for i, field in enumerate(logging.encrypt):
        both = [
            pattern
            for pattern in masked
            if pattern == field.lower()
            or (not _GLOB.search(field) and fnmatch.fnmatch(field.lower(), pattern))
            or any(
                fnmatch.fnmatch(f.lower(), pattern) and fnmatch.fnmatch(f.lower(), field.lower())
                for f in known or ()
            )
        ]
        if both:
            yield Diagnostic(
                "E708",
                f"service '{name}': `{field}` is both masked (`{both[0]}`) and encrypted; a "
                "masked value is never logged, so there is nothing to encrypt",
                sm.value_span((*at, "encrypt", i)),
                "keep the field under `encrypt` to log it readable with the key, or under "
                "`mask` to never log it, not both",
            )
        elif known is not None and not _GLOB.search(field) and field.lower() not in known:
            yield Diagnostic(
                "E709",
                f"service '{name}' encrypts `{field}`, which is neither a request field, a "
                "column of its training data, nor `entity` or `outcome` of feedback",
                sm.value_span((*at, "encrypt", i)),
                did_you_mean(field, sorted(known)) or one_of(sorted(known)),
            )


def _loggable_fields(spec: PipelineSpec, service: ServiceSpec, inputs: list[str]) -> set[str]:
    """Field names a service's log rows can carry (lower case): request fields, the training
    dataset's columns (entity keys among them), and feedback's `entity` and `outcome`."""
    fields = {*inputs, "entity", "outcome"}
    model = spec.models.get(service.model)
    dataset = spec.datasets.get(model.dataset) if model is not None else None
    if dataset is not None:
        fields.update(dataset.columns)
    return {field.lower() for field in fields}


def _check_request_checks(
    name: str, service: ServiceSpec, spec: PipelineSpec, inputs: list[str], sm: SourceMap
) -> Iterator[Diagnostic]:
    """`request_checks` written in the file, with no per-row rule on a request field: nothing
    would be checked, which the writer surely did not mean."""
    at = ("services", name, "request_checks")
    model = spec.models.get(service.model)
    if service.request_checks == "off" or at not in sm.values or model is None:
        return
    dataset = spec.datasets.get(model.dataset)
    if dataset is None:
        return
    numeric = {c for c, t in dataset.columns.items() if t in ("int", "float")}
    checked = set()
    for rule in dataset.expectations:
        match rule:
            case Between(between=args) if args.column in numeric:
                checked.add(args.column)
            case InSet(in_set=args) | Regex(regex=args):
                checked.add(args.column)
    if checked & set(inputs):
        return
    yield Diagnostic(
        "W703",
        f"service '{name}' checks requests against dataset '{model.dataset}', which has no "
        f"per-row rule (between, in_set, regex) on a request field ({', '.join(inputs)}): "
        "no request is checked",
        sm.value_span(at),
        f"add a rule on one of them under `datasets.{model.dataset}.expectations`, or remove "
        "`request_checks`",
        severity=Severity.WARNING,
    )
