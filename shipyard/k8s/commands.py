"""`shipyard k8s render NAME -o DIR`: write a service's or a rollout's manifests, one per file.

Rendering reads the plan only (and, for the image tag, the local Bento store): no cluster, no
kubectl, no Kubernetes client. The files are plain YAML for `kubectl apply -f`.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import yaml

from shipyard.compiler.plan import Plan
from shipyard.compiler.rollouts import RolloutStep
from shipyard.compiler.services import ServiceStep
from shipyard.diagnostics import did_you_mean
from shipyard.errors import ShipyardError
from shipyard.k8s.render import RenderedFile, rollout_manifests, service_manifests
from shipyard.settings import StateLayout

FALLBACK_TAG = "latest"


def built_version(service: ServiceStep) -> str | None:
    """The version of the Bento last built for the service, from BentoML's local store (its
    `latest` file), so the manifests name the image `bentoml containerize` makes of it."""
    latest = StateLayout(Path(service.state_dir)).bentoml_home / "bentos" / service.service
    try:
        version = (latest / "latest").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return version or None


def image_tag(plan: Plan, service: ServiceStep) -> tuple[str, str | None]:
    """The tag, and a note for people when it is a guess."""
    if plan.kubernetes.image_tag:
        return plan.kubernetes.image_tag, None
    version = built_version(service)
    if version is not None:
        return version, None
    return FALLBACK_TAG, (
        f"note: no Bento of service '{service.service}' is built here, so images are tagged "
        f"'{FALLBACK_TAG}'; build one (`shipyard build {service.service}`) or set "
        f"profiles.{plan.profile}.kubernetes.image_tag"
    )


def resolve(plan: Plan, name: str) -> tuple[ServiceStep, RolloutStep | None]:
    """The service NAME names, or the rollout NAME names and its service. A rollout and a
    service may share a name (a rollout's service defaults to its own name): the rollout wins,
    since its manifests include the service's."""
    rollout = plan.steps.get(f"rollout.{name}")
    if isinstance(rollout, RolloutStep):
        return plan.step(rollout.service, ServiceStep), rollout
    service = plan.steps.get(f"service.{name}")
    if isinstance(service, ServiceStep):
        return service, None
    services = [s.name for s in plan.steps_of(ServiceStep)]
    rollouts = [r.name for r in plan.steps_of(RolloutStep)]
    known = [
        f"{noun}: {', '.join(names)}"
        for noun, names in (("services", services), ("rollouts", rollouts))
        if names
    ]
    raise ShipyardError(
        f"'{name}' is neither a service nor a rollout in {plan.runtime.spec_file}",
        hint=" ".join(
            part
            for part in (
                did_you_mean(name, [*services, *rollouts]),
                "; ".join(known) or "no service or rollout is defined",
            )
            if part
        ),
        resource="k8s render",
    )


def to_yaml(file: RenderedFile) -> str:
    """The manifest as YAML, after a comment header saying what the file is for."""
    lines = [
        wrapped
        for line in file.header.splitlines()
        # indented lines are commands to copy: never wrapped
        for wrapped in (
            [line] if line.startswith(" ") else textwrap.wrap(line, 96, subsequent_indent="  ")
        )
    ]
    header = "".join(f"# {line}".rstrip() + "\n" for line in lines)
    # no folding: a PromQL query or an image name stays on one line, as people grep for it
    body = yaml.safe_dump(file.manifest, sort_keys=False, default_flow_style=False, width=10**6)
    return header + body


def render_files(plan: Plan, name: str) -> tuple[list[RenderedFile], str | None]:
    service, rollout = resolve(plan, name)
    tag, note = image_tag(plan, service)
    if rollout is None:
        return service_manifests(service, plan.kubernetes, tag), note
    return rollout_manifests(rollout, service, plan.kubernetes, tag), note


def render_command(plan: Plan, name: str, output: Path) -> int:
    """Write one YAML file per resource under `output` and say what was written."""
    files, note = render_files(plan, name)
    for file in files:
        path = output / file.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_yaml(file), encoding="utf-8")
        print(f"wrote {path}  ({file.kind} {file.name})")
    if any(f.path.startswith("argo/") for f in files):
        print(
            f"apply one set, not both: `kubectl apply -f {output / 'argo'}` (Argo Rollouts) "
            f"or `kubectl apply -f {output / 'plain'}` (plain Deployments)"
        )
    else:
        print(f"apply with `kubectl apply -f {output}`")
    if note:
        print(note)
    return 0
