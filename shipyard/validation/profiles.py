"""Rules for `profile:`, `profiles:` and `environments:`."""

from __future__ import annotations

import re
from collections.abc import Iterator

from shipyard.diagnostics import Diagnostic, did_you_mean, one_of
from shipyard.loader.source_map import SourceMap
from shipyard.settings import DEFAULT_STATE_DIR
from shipyard.spec import PipelineSpec
from shipyard.spec.profiles import SparkSettings


def check_profiles(spec: PipelineSpec, sm: SourceMap) -> Iterator[Diagnostic]:
    if spec.profile not in spec.profiles:
        yield Diagnostic(
            "E401",
            f"profile '{spec.profile}' is not defined under `profiles:`",
            sm.value_span(("profile",)),
            did_you_mean(spec.profile, spec.profiles) or one_of(sorted(spec.profiles)),
        )
    for name, profile in spec.profiles.items():
        if profile.kind == "embedded" and profile.dvc.remote and "://" in profile.dvc.remote:
            yield Diagnostic(
                "E402",
                f"profile '{name}' is embedded but its DVC remote '{profile.dvc.remote}' "
                "is an object store",
                sm.value_span(("profiles", name, "dvc", "remote")),
                "set `kind: scale-out` for profiles that use remote engines",
            )
        if profile.spark is not None:
            yield from _check_spark(name, profile.spark, sm)


SPARK_MASTER = re.compile(
    r"^(local(\[(\*|[1-9][0-9]*)(,[1-9][0-9]*)?\])?"
    r"|spark://[^\s/:,]+:[0-9]+(,[^\s/:,]+:[0-9]+)*"
    r"|yarn|k8s://\S+)$"
)


def _check_spark(name: str, spark: SparkSettings, sm: SourceMap) -> Iterator[Diagnostic]:
    """The master is a Spark master URL, and the config names Spark settings."""
    at = ("profiles", name, "spark")
    if not SPARK_MASTER.match(spark.master):
        yield Diagnostic(
            "E407",
            f"profile '{name}': '{spark.master}' is not a Spark master URL",
            sm.value_span((*at, "master")),
            "use local[N] (Spark in the flow's process on N cores), spark://<host>:7077 "
            "(a standalone cluster), yarn, or k8s://https://<host>:<port>",
        )
    for key in spark.config:
        if key in ("spark.master", "spark.app.name"):
            yield Diagnostic(
                "E408",
                f"profile '{name}': `{key}` is set by Shipyard, not under `spark.config`",
                sm.key_span((*at, "config", key)),
                f"give it as `master:` under `profiles.{name}.spark:`"
                if key == "spark.master"
                else "remove it: Shipyard names its Spark application itself",
            )
        elif not key.startswith("spark."):
            yield Diagnostic(
                "E408",
                f"profile '{name}': `{key}` under `spark.config` is not a Spark setting",
                sm.key_span((*at, "config", key)),
                f"Spark settings start with `spark.`: did you mean `spark.{key}`?",
            )


def check_environments(spec: PipelineSpec, sm: SourceMap) -> Iterator[Diagnostic]:
    """`environments:` name profiles, once each, with state folders of their own, and the
    rollouts they run exist and roll out the service they are listed under."""
    seen: dict[str, int] = {}
    folders: dict[str, str] = {}
    for i, env in enumerate(spec.environments):
        where = ("environments", i)
        if env.profile not in spec.profiles:
            yield Diagnostic(
                "E403",
                f"environment {i + 1} names profile '{env.profile}', which is not under "
                "`profiles:`",
                sm.value_span((*where, "profile")),
                did_you_mean(env.profile, spec.profiles) or one_of(sorted(spec.profiles)),
            )
            continue
        if env.profile in seen:
            yield Diagnostic(
                "E404",
                f"profile '{env.profile}' is environment {seen[env.profile] + 1} and "
                f"environment {i + 1}",
                sm.value_span((*where, "profile")),
                "list each profile once, in the order releases pass through them",
            )
            continue
        seen[env.profile] = i
        folder = spec.profiles[env.profile].state_dir or DEFAULT_STATE_DIR
        if folder in folders:
            yield Diagnostic(
                "E405",
                f"environments '{folders[folder]}' and '{env.profile}' share the state folder "
                f"'{folder}'",
                sm.value_span((*where, "profile")),
                f"give profile '{env.profile}' a `state_dir:` of its own (e.g. "
                f".shipyard-{env.profile}): each environment has its own registry and services",
            )
        folders[folder] = env.profile
        for service, rollout in env.rollouts.items():
            yield from _environment_rollout(
                spec, sm, (*where, "rollouts", service), service, rollout
            )


def _environment_rollout(
    spec: PipelineSpec, sm: SourceMap, where: tuple[str | int, ...], service: str, rollout: str
) -> Iterator[Diagnostic]:
    if service not in spec.services:
        yield Diagnostic(
            "E406",
            f"environment rollouts name service '{service}', which is not under `services:`",
            sm.key_span(where),
            did_you_mean(service, spec.services) or one_of(sorted(spec.services)),
        )
    elif rollout not in spec.rollouts:
        yield Diagnostic(
            "E406",
            f"service '{service}': rollout '{rollout}' is not under `rollouts:`",
            sm.value_span(where),
            did_you_mean(rollout, spec.rollouts) or one_of(sorted(spec.rollouts)),
        )
    elif (spec.rollouts[rollout].service or rollout) != service:
        yield Diagnostic(
            "E406",
            f"rollout '{rollout}' rolls out service "
            f"'{spec.rollouts[rollout].service or rollout}', not '{service}'",
            sm.value_span(where),
            f"name a rollout whose `service:` is {service}",
        )
