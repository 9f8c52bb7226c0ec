"""`shipyard models list|show|promote|repair`: the registry as people want to read it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shipyard.audit import AuditEntry, AuditLog
from shipyard.compiler import Plan, TrainModelStep
from shipyard.errors import ShipyardError
from shipyard.settings import StateLayout
from shipyard.training.recovery import OwnerGone

if TYPE_CHECKING:
    from shipyard.registry import VersionInfo


def _use_tracking(plan: Plan) -> None:
    from shipyard.settings import TELEMETRY_OFF
    from shipyard.training.tracking import use_tracking

    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)
    use_tracking(plan.blocks.mlflow.tracking_uri, f"project {plan.project}")


def _registered_name(plan: Plan, model: str) -> str:
    return plan.named(TrainModelStep, model).registered_name


def _reader(plan: Plan) -> Callable[[str], list[VersionInfo]]:
    """`registry.versions`, read without MLflow where the store allows it
    (`shipyard.registry_read`), else through the MLflow client (set up on first need)."""
    from shipyard.registry_read import read_versions
    from shipyard.training.tracking import require_reachable

    uri = plan.blocks.mlflow.tracking_uri
    require_reachable(uri, f"project {plan.project}")
    client_ready = False

    def read(name: str) -> list[VersionInfo]:
        nonlocal client_ready
        found = read_versions(uri, name)
        if found is not None:
            return found
        from shipyard.registry import versions

        if not client_ready:
            _use_tracking(plan)
            client_ready = True
        return versions(name)

    return read


def list_models(plan: Plan, as_json: bool) -> int:
    versions = _reader(plan)
    rows = []
    for step in plan.steps_of(TrainModelStep):
        name = step.registered_name
        found = versions(name)
        champion = next((v for v in found if "champion" in v.aliases), None)
        challenger = next((v for v in found if "challenger" in v.aliases), None)
        rows.append(
            {
                "model": step.name,
                "registered_name": name,
                "versions": len(found),
                "champion": champion.version if champion else None,
                "champion_semver": champion.semver if champion else None,
                "challenger": challenger.version if challenger else None,
                "challenger_semver": challenger.semver if challenger else None,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no models in pipelines.yaml")
        return 0
    print(f"{'model':<20} {'versions':>8}  {'champion':<16} {'challenger':<16}")
    for r in rows:
        shown_champion = f"v{r['champion']} ({r['champion_semver']})" if r["champion"] else "-"
        shown_challenger = (
            f"v{r['challenger']} ({r['challenger_semver']})" if r["challenger"] else "-"
        )
        print(f"{r['model']:<20} {r['versions']:>8}  {shown_champion:<16} {shown_challenger:<16}")
    return 0


def show_model(plan: Plan, model: str, as_json: bool) -> int:
    from shipyard.registry import TAG_PENDING, describe

    name = _registered_name(plan, model)
    found = _reader(plan)(name)
    if as_json:
        print(json.dumps([describe(v) for v in found], indent=2, default=str))
        return 0
    if not found:
        print(f"no registered versions of '{name}' yet: run `shipyard run train-model {model}`")
        return 0
    print(f"{name}")
    for v in found:
        when = datetime.fromtimestamp(v.created / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        metrics = ", ".join(
            f"{k}={val:.4f}" for k, val in sorted(v.metrics.items()) if k != "training_seconds"
        )
        aliases = f"  @{', @'.join(v.aliases)}" if v.aliases else ""
        if TAG_PENDING in v.tags:
            aliases += "  (registration unfinished: `shipyard models repair` settles it)"
        data = str(v.tags.get("shipyard.data_version", ""))[:10]
        print(f"  v{v.version:<4} {v.semver:<8} {when}  data {data}{aliases}")
        print(f"         {metrics}")
    entries = AuditLog(StateLayout(plan.runtime.state_dir).catalog).entries(f"model.{model}")
    if entries:
        print("  audit:")
        for e in entries:
            print(f"    {_audit_line(e)}")
    return 0


def _audit_line(e: AuditEntry) -> str:
    if e.action == "repair":
        version = (
            f"v{e.detail['version']} ({e.detail.get('semver')})"
            if e.detail.get("version")
            else "no version"
        )
        return (
            f"{e.time} {e.actor} repair {version}: {e.detail.get('outcome')}; "
            f"{e.detail.get('reason') or ''}"
        )
    return (
        f"{e.time} {e.actor} {e.action} v{e.detail.get('from_version')} -> "
        f"v{e.detail.get('to_version')}: {e.detail.get('reason') or ''}"
    )


def promote_model(plan: Plan, model: str, version: str, reason: str) -> int:
    from shipyard.registry import promote

    name = _registered_name(plan, model)
    if not reason.strip():
        raise ShipyardError(
            f"promoting v{version.lstrip('v')} of '{name}' needs a reason",
            hint='say why with --reason "...": it is recorded in the audit log beside who and when',
            resource=f"model.{model}",
        )
    _use_tracking(plan)
    audit = AuditLog(StateLayout(plan.runtime.state_dir).catalog)
    previous = promote(name, version.lstrip("v"), audit, reason, f"model.{model}")
    if previous == version.lstrip("v"):
        print(f"v{version.lstrip('v')} of '{name}' already is the champion")
    else:
        print(
            f"'{name}': champion is now v{version.lstrip('v')}"
            + (f" (was v{previous}, kept as @previous-champion)" if previous else "")
        )
    return 0


def repair_models(plan: Plan, model: str | None, owner_gone: OwnerGone) -> int:
    """`shipyard models repair [model]`: settle what killed trainings left behind (a version
    registered half-way, MLflow runs left RUNNING), as the next training of the model would."""
    import mlflow

    from shipyard.training.recovery import recover
    from shipyard.training.tracking import experiment_name

    steps = [plan.named(TrainModelStep, model)] if model else list(plan.steps_of(TrainModelStep))
    _use_tracking(plan)
    audit = AuditLog(StateLayout(plan.runtime.state_dir).catalog)
    for step in steps:
        experiment = mlflow.get_experiment_by_name(experiment_name(plan.project, step.name))
        if experiment is None:
            print(f"{step.id}: never trained; nothing to repair")
            continue
        done = recover(
            str(experiment.experiment_id),
            step.registered_name,
            step.id,
            owner_gone,
            audit,
            by="`shipyard models repair`",
        )
        for line in done.lines:
            print(line)
        if not done.lines:
            print(f"{step.id}: nothing to repair")
    return 0
