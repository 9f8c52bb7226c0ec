"""`shipyard promote <service> --from staging --to production`: the same artefacts, one
environment further.

A release is what an environment serves once it passed there: the champion of the service's
model, which the service's stable variant serves, with the data version it was trained on.
A promotion moves exactly that, never a retraining:

    check    the version is what `--from` serves as its champion (no rollout in flight), the
             target is the next environment, a person approved it where one must, the
             target's online features are built, and the spec did not change the Bento's
             service since it passed
    copy     the model's files into the target registry, byte for byte (a digest of every file
             is compared after the copy), with the source run's parameters, metrics and tags;
             the data version's object into the target's DVC remote, and its catalog record
    bento    the Bento the source serves, exported from its Bento store and imported into
             the target's as it is (a digest of its files compared), and named on the copy
             (`shipyard.bento`): the target serves that Bento, never one built anew, with its
             own settings kept beside it (serving.config.Environment)
    release  the target environment's rollout for the service runs with the copy as its
             candidate; without one the copy becomes the champion and the service takes the
             promoted Bento (a hot reload when it runs)

Each step is idempotent: a promotion run again after a failure finds the copy it made (by its
`shipyard.promoted_from` tag) instead of making another. A failed release rolls back: the
rollout's own rollback, or the previous champion restored and served again; the
copy keeps a `shipyard.promotion: failed` tag and loses its alias. Both environments' audit
logs record the promotion, with its outcome.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shipyard.audit import AuditLog, current_actor
from shipyard.compiler import EnvironmentPlan, Plan, RolloutStep, ServiceStep
from shipyard.errors import ShipyardError
from shipyard.settings import StateLayout

TAG_PROMOTED_FROM = "shipyard.promoted_from"
"""On a copied version: '<environment>:<model>/<version>' it was copied from."""
TAG_FILES_DIGEST = "shipyard.files_digest"
"""On a copied version: sha256 over the model's files, equal to the source's."""
TAG_PROMOTION = "shipyard.promotion"
"""On a copied version: 'released' once its environment serves it, 'failed' after a rollback."""


@dataclass(frozen=True)
class Release:
    """What passed in the source environment, as the promotion moves it."""

    service: str
    model: str
    version: str
    run_id: str
    data_version: str | None
    bento: str
    files_digest: str = ""


@dataclass(frozen=True)
class Environments:
    """The two plans of a promotion, compiled for their own profiles."""

    source: Plan
    target: Plan
    source_env: EnvironmentPlan
    target_env: EnvironmentPlan


def promote_command(
    spec_path: str,
    service: str,
    source: str,
    target: str,
    *,
    version: str | None = None,
    approved_by: str | None = None,
    reason: str | None = None,
    run_rollout: Callable[[Plan, str], int] | None = None,
    say: Callable[[str], None] = print,
) -> int:
    """Promote a service's release from one environment to the next; 0 when it is released."""
    envs = load_environments(spec_path, source, target, service)
    if envs.target_env.approval and not approved_by:
        raise ShipyardError(
            f"environment '{target}' needs an approval for every promotion",
            hint=f"run it again with `--approved-by <name>` once a person approved it (or set "
            f"`approval: false` on the environment '{target}')",
            resource=f"service.{service}",
        )
    release = passed_release(envs.source, service, version)
    say(
        f"{source}: {service} serves {release.model} v{release.version} "
        f"(Bento {release.bento}, data {(release.data_version or 'unrecorded')[:10]})"
    )
    check_target_features(envs, service)
    bento = bento_to_move(envs, release, say)
    copied, release = copy_model(envs, release, say)
    copy_data_version(envs, release, say)
    if bento is not None:
        copy_bento(envs, release, bento, copied, say)
    outcome = "released"
    try:
        deliver(envs, release, copied, run_rollout, say)
    except BaseException as exc:
        outcome = f"failed: {exc}"
        raise
    finally:
        _audit(envs, release, copied, outcome, approved_by, reason)
    say(
        f"{target}: {service} serves {release.model} v{copied} "
        f"(the files of {source} v{release.version})"
    )
    return 0


# -- check ----------------------------------------------------------------------------------


def load_environments(spec_path: str, source: str, target: str, service: str) -> Environments:
    from shipyard.project import load_project

    # compiled for the source profile (or the spec's own, when `source` is none): every plan
    # carries the same environments, so this one is also the source's plan once checked
    first = load_project(spec_path, profile=source).require_plan()
    order = [e.profile for e in first.environments]
    if not order:
        raise ShipyardError(
            "the spec declares no `environments:`",
            hint="list the profiles a release passes through, e.g. `environments: [{profile: "
            "staging}, {profile: production, approval: true}]`",
        )
    for name in (source, target):
        if name not in order:
            raise ShipyardError(
                f"'{name}' is not an environment (environments: {', '.join(order)})",
                hint="name a profile listed under `environments:`",
            )
    if order.index(target) != order.index(source) + 1:
        nxt = order[order.index(source) + 1] if order.index(source) + 1 < len(order) else None
        raise ShipyardError(
            f"'{target}' does not come right after '{source}' (order: {' -> '.join(order)})",
            hint=f"promote from '{source}' to '{nxt}' first" if nxt else f"'{source}' is the last",
            resource=f"service.{service}",
        )
    plans = (first, load_project(spec_path, profile=target).require_plan())
    for plan in plans:
        plan.named(ServiceStep, service)
    source_env, target_env = (first.environments[order.index(n)] for n in (source, target))
    return Environments(*plans, source_env, target_env)


def passed_release(plan: Plan, service: str, version: str | None = None) -> Release:
    """What the environment serves as its champion, or a refusal saying why it did not pass."""
    from shipyard import registry
    from shipyard.rollouts.state import RolloutStore
    from shipyard.serving.config import read_config
    from shipyard.serving.control import ControlStore
    from shipyard.training.tracking import use_tracking

    step = plan.named(ServiceStep, service)
    env = plan.profile
    resource = f"service.{service}"
    state = ControlStore(step.control_database).read(service)
    if state is None:
        raise ShipyardError(
            f"'{service}' was never deployed in '{env}': nothing passed there to promote",
            hint=f"deploy it there first (`SHIPYARD_PROFILE={env} shipyard serve {service}`)",
            resource=resource,
        )
    served = Path(state.bundle) / "service.json"
    if not served.is_file():
        raise ShipyardError(
            f"'{env}' serves Bento {state.bento}, but its folder {state.bundle} is gone",
            hint=f"rebuild it there (`SHIPYARD_PROFILE={env} shipyard build {service} --deploy`)",
            resource=resource,
        )
    config = read_config(Path(state.bundle), step.state_dir)
    stable = next(v for v in config.variants if v.name == "stable")
    for rollout in plan.steps_of(RolloutStep):
        current = RolloutStore(step.control_database).read(rollout.name)
        if rollout.service == step.id and current is not None and current.active:
            raise ShipyardError(
                f"rollout '{rollout.name}' is still {current.status} in '{env}': v"
                f"{current.candidate_version} has not passed there yet",
                hint=f"wait for it to end (`shipyard rollout status {rollout.name}`)",
                resource=resource,
            )
    use_tracking(plan.blocks.mlflow.tracking_uri, resource)
    champion = registry.champion_version(step.registered_name)
    if champion is None or str(champion.version) != stable.version:
        raise ShipyardError(
            f"'{env}' serves {step.registered_name} v{stable.version}, but its champion is "
            f"{'v' + str(champion.version) if champion else 'unset'}: that release has not "
            "passed there",
            hint="finish the environment's rollout, or rebuild the service on its champion "
            f"(`shipyard build {service} --deploy`)",
            resource=resource,
        )
    if version is not None and str(version) != stable.version:
        raise ShipyardError(
            f"{step.registered_name} v{version} never passed '{env}': it serves v{stable.version}",
            hint=f"promote v{stable.version}, or release v{version} in '{env}' first",
            resource=resource,
        )
    tags = dict(champion.tags or {})
    return Release(
        service=service,
        model=step.registered_name,
        version=stable.version,
        run_id=str(champion.run_id),
        data_version=tags.get(registry.TAG_DATA),
        bento=state.bento,
    )


def check_target_features(envs: Environments, service: str) -> None:
    """A service that reads online features is served only where they were built: refuse
    before anything is copied, not at the release's first request."""
    from shipyard.compiler.features import repo_step
    from shipyard.features.online import OnlineFeatures

    step = envs.target.named(ServiceStep, service)
    repo = repo_step(envs.target.steps)
    if step.feature_service is None or repo is None:
        return
    try:
        OnlineFeatures(repo).check(step.feature_service)
    except ShipyardError as exc:
        env = envs.target.profile
        views = [v.name for v in repo.views]
        each = views[0] if len(views) == 1 else "<view>"
        command = f"`SHIPYARD_PROFILE={env} shipyard run materialize-features {each}`"
        if len(views) > 1:
            command += f" for each view ({', '.join(views)})"
        raise ShipyardError(
            f"'{env}' cannot serve '{service}' yet: {exc.message}",
            hint=f"build its features there first: {command}, then promote again",
            resource=f"service.{service}",
        ) from None


# -- copy -----------------------------------------------------------------------------------


def files_digest(folder: Path) -> str:
    """sha256 over every file's relative path and bytes, in path order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def copy_model(
    envs: Environments, release: Release, say: Callable[[str], None]
) -> tuple[str, Release]:
    """The target registry's copy of the release (made now, or found from an earlier try)."""
    import mlflow

    from shipyard import registry
    from shipyard.training.tracking import ensure_experiment, use_tracking

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line a step
    resource = f"service.{release.service}"
    origin = f"{envs.source.profile}:{release.model}/{release.version}"
    scratch = Path(tempfile.mkdtemp(prefix="shipyard-promote-"))
    try:
        use_tracking(envs.source.blocks.mlflow.tracking_uri, resource)
        source_run = mlflow.get_run(release.run_id)
        experiment = mlflow.get_experiment(source_run.info.experiment_id).name
        source_version = registry.model_version(release.model, release.version)
        version_tags = {
            k: v
            for k, v in dict(getattr(source_version, "tags", None) or {}).items()
            if k != registry.TAG_PENDING
        }
        folder = Path(
            mlflow.artifacts.download_artifacts(
                f"models:/{release.model}/{release.version}", dst_path=str(scratch / "model")
            )
        )
        run_files = _run_artifacts(release.run_id, scratch / "run")
        release = Release(**{**asdict(release), "files_digest": files_digest(folder)})
        use_tracking(envs.target.blocks.mlflow.tracking_uri, resource)
        existing = _copy_of(release.model, origin)
        if existing is not None:
            say(f"{envs.target.profile}: found the copy made earlier: v{existing}")
            return existing, release
        say(f"copying {release.model} v{release.version} into {envs.target.profile} ...")
        tracking = envs.target.blocks.mlflow
        mlflow.set_experiment(
            experiment_id=ensure_experiment(
                experiment, tracking.artifact_root, tracking.tracking_uri
            )
        )
        run_tags = {k: v for k, v in source_run.data.tags.items() if not k.startswith("mlflow.")}
        run_tags = {
            k: v
            for k, v in run_tags.items()
            if k not in (registry.TAG_REGISTRATION, registry.TAG_INTENT)
        }
        with mlflow.start_run(
            run_name=f"promoted-{release.model}-v{release.version}",
            tags={**run_tags, TAG_PROMOTED_FROM: origin},
        ) as run:
            mlflow.log_params(source_run.data.params)
            mlflow.log_metrics(source_run.data.metrics)
            mlflow.log_artifacts(str(folder), artifact_path="model")
            for item in run_files:  # its reference profile (monitoring), plots, reports
                if item.is_dir():
                    mlflow.log_artifacts(str(item), artifact_path=item.name)
                else:
                    mlflow.log_artifact(str(item))
        copied, aliases = registry.register(
            release.model,
            f"runs:/{run.info.run_id}/model",
            run.info.run_id,
            tags={
                **version_tags,
                TAG_PROMOTED_FROM: origin,
                TAG_FILES_DIGEST: release.files_digest,
            },
            resource=resource,
            descriptions=("", f"Promoted from {origin} by {current_actor()}."),
        )
        _verify_copy(release, copied, scratch / "copy", resource)
        say(f"{envs.target.profile}: registered v{copied} ({', '.join(aliases)}), files identical")
        return copied, release
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run_artifacts(run_id: str, dest: Path) -> list[Path]:
    """The source run's own artifacts (not its model, copied on its own): what monitoring
    (the reference profile), the evaluation's plots and reports read from the run."""
    import mlflow

    names = [
        Path(info.path).name
        for info in mlflow.MlflowClient().list_artifacts(run_id)
        if Path(info.path).name != "model"
    ]
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name, dst_path=str(dest))
    return sorted(dest / name for name in names)


def _copy_of(model: str, origin: str) -> str | None:
    """The version of the (active) registry copied from `origin`, if an earlier try made one."""
    from shipyard import registry

    for info in registry.versions(model):
        if info.tags.get(TAG_PROMOTED_FROM) == origin and registry.TAG_PENDING not in info.tags:
            return info.version
    return None


def _verify_copy(release: Release, copied: str, scratch: Path, resource: str) -> None:
    """Read the copy back from the target registry: its files must be the source's."""
    import mlflow

    from shipyard import registry

    folder = Path(
        mlflow.artifacts.download_artifacts(
            f"models:/{release.model}/{copied}", dst_path=str(scratch)
        )
    )
    found = files_digest(folder)
    if found != release.files_digest:
        registry._client().delete_model_version(release.model, copied)
        raise ShipyardError(
            f"the copy of {release.model} v{release.version} differs from the source "
            f"(sha256 {found[:12]} != {release.files_digest[:12]}); it was deleted again",
            hint="check the target's artifact store (disk full, a proxy rewriting files), "
            "then promote again",
            resource=resource,
        )


def copy_data_version(envs: Environments, release: Release, say: Callable[[str], None]) -> None:
    """The data version the release was trained on, in the target's remote and catalog."""
    from shipyard.data.versioning import VersionCatalog

    if not release.data_version:
        return
    source_catalog = VersionCatalog(StateLayout(envs.source.runtime.state_dir).catalog)
    target_catalog = VersionCatalog(StateLayout(envs.target.runtime.state_dir).catalog)
    found = [
        v
        for dataset in _datasets(envs.source)
        for v in source_catalog.versions(dataset)
        if v.md5 == release.data_version
    ]
    if not found:
        raise ShipyardError(
            f"data version {release.data_version[:10]} of {release.model} v{release.version} is "
            f"not in the catalog of '{envs.source.profile}'",
            hint="its training data was never versioned there; retrain in that environment",
            resource=f"service.{release.service}",
        )
    version = found[0]
    source_remote = envs.source.blocks.dvc_remote.url
    target_remote = envs.target.blocks.dvc_remote.url
    if source_remote != target_remote:
        _copy_dvc_object(version.md5, source_remote, target_remote, release)
    record = type(version)(**{**asdict(version), "remote": target_remote})
    if target_catalog.record(record):
        say(f"{envs.target.profile}: data version {version.short} of '{version.dataset}' recorded")


def _datasets(plan: Plan) -> list[str]:
    from shipyard.compiler import DatasetStep

    return [step.name for step in plan.steps_of(DatasetStep)]


def _copy_dvc_object(md5: str, source: str, target: str, release: Release) -> None:
    """Copy one DVC object between remotes (DVC 3 layout: files/md5/<2>/<30>), checked."""
    import fsspec

    relative = f"files/md5/{md5[:2]}/{md5[2:]}"
    src_fs, src_root = fsspec.core.url_to_fs(source)
    dst_fs, dst_root = fsspec.core.url_to_fs(target)
    src, dst = f"{src_root.rstrip('/')}/{relative}", f"{dst_root.rstrip('/')}/{relative}"
    if dst_fs.exists(dst):
        return
    if not src_fs.exists(src):
        raise ShipyardError(
            f"data version {md5[:10]} is not on the DVC remote {source}",
            hint="push it from the source environment (`shipyard run validate-dataset ...`)",
            resource=f"service.{release.service}",
        )
    digest = hashlib.md5(usedforsecurity=False)
    dst_fs.makedirs(dst.rsplit("/", 1)[0], exist_ok=True)
    partial = dst + ".partial"
    with src_fs.open(src, "rb") as reader, dst_fs.open(partial, "wb") as writer:
        for block in iter(lambda: reader.read(1 << 20), b""):
            digest.update(block)
            writer.write(block)
    if digest.hexdigest() != md5:
        dst_fs.rm(partial)
        raise ShipyardError(
            f"data version {md5[:10]} read from {source} does not match its md5",
            hint="the remote's object is damaged; restore it from a backup",
            resource=f"service.{release.service}",
        )
    dst_fs.mv(partial, dst)


# -- bento ------------------------------------------------------------------------------------


def bento_to_move(envs: Environments, release: Release, say: Callable[[str], None]) -> Path | None:
    """The folder of the Bento the source serves, to move as it is; None when the target
    assembles its own from the promoted files (said): a Bento that serves a candidate beside
    stable holds a model that is not promoted. A Bento whose service takes other fields than
    the target's (the spec changed since it passed) never passed: refused, before anything
    is copied."""
    from shipyard.serving.build import existing_bento
    from shipyard.serving.config import read_config, release_differences

    resource = f"service.{release.service}"
    name, _, version = release.bento.partition(":")
    source_state = envs.source.runtime.state_dir
    source = existing_bento(name, version, Path(source_state))
    if source is None:
        raise ShipyardError(
            f"Bento {release.bento}, which '{envs.source.profile}' serves, is not in its Bento "
            "store",
            hint=f"rebuild it there (`SHIPYARD_PROFILE={envs.source.profile} shipyard build "
            f"{release.service} --deploy`), then promote again",
            resource=resource,
        )
    bento = read_config(source, source_state)
    if len(bento.variants) != 1:
        say(
            f"Bento {release.bento} serves candidates beside v{release.version}: "
            f"'{envs.target.profile}' assembles its own from the promoted files"
        )
        return None
    differ = release_differences(bento.step, envs.target.named(ServiceStep, release.service))
    if differ:
        raise ShipyardError(
            f"Bento {release.bento} never passed '{envs.source.profile}' as "
            f"'{envs.target.profile}' would serve it: the spec changed its {', '.join(differ)} "
            "since it was built",
            hint=f"release the change in '{envs.source.profile}' first (`SHIPYARD_PROFILE="
            f"{envs.source.profile} shipyard serve {release.service}`), then promote again",
            resource=resource,
        )
    return source


def copy_bento(
    envs: Environments, release: Release, source: Path, copied: str, say: Callable[[str], None]
) -> None:
    """The source's Bento (`source`, from bento_to_move) into the target's Bento store as it
    is, its files compared, and named on the copy."""
    from mlflow import MlflowClient

    from shipyard.serving.build import existing_bento
    from shipyard.serving.config import TAG_BENTO

    resource = f"service.{release.service}"
    name, _, version = release.bento.partition(":")
    source_state, target_state = envs.source.runtime.state_dir, envs.target.runtime.state_dir
    digest = files_digest(source)
    target = existing_bento(name, version, Path(target_state))
    if target is None:
        say(f"copying Bento {release.bento} into {envs.target.profile} ...")
        target = _transfer_bento(release.bento, source_state, target_state, resource)
    if files_digest(target) != digest:
        shutil.rmtree(target.parent, ignore_errors=True)
        raise ShipyardError(
            f"Bento {release.bento} in '{envs.target.profile}' differs from the one "
            f"'{envs.source.profile}' serves; the target's copy was deleted",
            hint="promote again: the Bento is copied anew",
            resource=resource,
        )
    MlflowClient().set_model_version_tag(release.model, copied, TAG_BENTO, release.bento)
    say(f"{envs.target.profile}: Bento {release.bento}, files identical")


def _transfer_bento(tag: str, source_state: str, target_state: str, resource: str) -> Path:
    """`bentoml export` from one Bento store, `bentoml import` into the other."""
    from shipyard.serving.build import existing_bento, run_bentoml

    name, _, version = tag.partition(":")
    scratch = Path(tempfile.mkdtemp(prefix="shipyard-bento-"))
    archive = scratch / f"{name}-{version}.bento"
    try:
        for argv, state in (
            (["export", tag, str(archive)], source_state),
            (["import", str(archive)], target_state),
        ):
            detail = run_bentoml(argv, Path(state))
            if detail is not None:
                raise ShipyardError(
                    f"bentoml {argv[0]} of {tag} failed: " + " | ".join(detail[-5:]),
                    hint="nothing was released; fix the cause and promote again",
                    resource=resource,
                )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    found = existing_bento(name, version, Path(target_state))
    if found is None:
        raise ShipyardError(
            f"bentoml import reported success but {tag} is not in the target's Bento store",
            hint=f"look in {StateLayout(Path(target_state)).bentoml_home / 'bentos' / name}",
            resource=resource,
        )
    return found


# -- release ----------------------------------------------------------------------------------


def deliver(
    envs: Environments,
    release: Release,
    copied: str,
    run_rollout: Callable[[Plan, str], int] | None,
    say: Callable[[str], None],
) -> None:
    """Release the copy in the target: its rollout, or champion + rebuild; roll back on failure."""
    from shipyard import registry
    from shipyard.training.tracking import use_tracking

    plan = envs.target
    resource = f"service.{release.service}"
    use_tracking(plan.blocks.mlflow.tracking_uri, resource)
    champion = registry.champion_version(release.model)
    if champion is not None and str(champion.version) == copied:
        say(f"{plan.profile}: v{copied} is the champion (the first release there); deploying it")
        try:
            _deploy(plan, release.service)
        except BaseException:
            _tag(release.model, copied, "failed")  # nothing served before it to go back to
            raise
        _tag(release.model, copied, "released")
        return
    rollout = envs.target_env.rollouts.get(release.service)
    if rollout is not None:
        _release_by_rollout(plan, rollout, release, copied, run_rollout, say)
        return
    audit = AuditLog(StateLayout(plan.runtime.state_dir).catalog)
    why = f"promoted from {envs.source.profile} v{release.version}"
    previous = registry.promote(release.model, copied, audit, why, resource)
    try:
        _deploy(plan, release.service)
    except BaseException:
        if previous is not None:
            say(f"{plan.profile}: deploying v{copied} failed; restoring champion v{previous}")
            registry.promote(release.model, previous, audit, f"rollback of {why}", resource)
            _deploy(plan, release.service)
        _tag(release.model, copied, "failed")
        raise
    _tag(release.model, copied, "released")


def _release_by_rollout(
    plan: Plan,
    name: str,
    release: Release,
    copied: str,
    run_rollout: Callable[[Plan, str], int] | None,
    say: Callable[[str], None],
) -> None:
    from mlflow import MlflowClient

    from shipyard.rollouts.state import RolloutStore

    rollout = plan.named(RolloutStep, name)
    resource = f"service.{release.service}"
    if rollout.candidate.alias is None:
        raise ShipyardError(
            f"rollout '{name}' rolls out the fixed version {rollout.candidate.version}, not the "
            "promoted copy",
            hint=f"set `candidate: challenger` on rollout '{name}'",
            resource=resource,
        )
    MlflowClient().set_registered_model_alias(release.model, rollout.candidate.alias, copied)
    say(f"{plan.profile}: rollout '{name}' ({rollout.strategy}) of v{copied} ...")
    run = run_rollout or _run_rollout
    try:
        run(plan, name)
    finally:
        service = plan.named(ServiceStep, release.service)
        state = RolloutStore(service.control_database).read(name)
    if state is None or state.candidate_version != copied or state.status != "promoted":
        _tag(release.model, copied, "failed")
        alias = rollout.candidate.alias
        _quietly(lambda: MlflowClient().delete_registered_model_alias(release.model, alias))
        status = state.status if state is not None else "did not start"
        raise ShipyardError(
            f"rollout '{name}' of v{copied} in '{plan.profile}' ended {status}"
            + (f": {state.outcome}" if state is not None and state.outcome else ""),
            hint=f"traffic is back on the version it served before; see `shipyard rollout "
            f"status {name}` (SHIPYARD_PROFILE={plan.profile})",
            resource=resource,
        )
    _tag(release.model, copied, "released")


def _run_rollout(plan: Plan, name: str) -> int:
    from shipyard.runtime.run import run_deployment_now

    return run_deployment_now(plan, "roll-out", name)


def _deploy(plan: Plan, service: str) -> None:
    from shipyard.serving.commands import build_command

    build_command(plan, service, deploy_after=True)


def _tag(model: str, version: str, value: str) -> None:
    from mlflow import MlflowClient

    _quietly(lambda: MlflowClient().set_model_version_tag(model, version, TAG_PROMOTION, value))


def _quietly(call: Callable[[], Any]) -> None:
    """Bookkeeping that must not hide the error being handled: a failure is a warning."""
    try:
        call()
    except Exception as exc:  # the registry's own errors, or the network's
        print(f"warning: {exc}", file=sys.stderr)


def _audit(
    envs: Environments,
    release: Release,
    copied: str,
    outcome: str,
    approved_by: str | None,
    reason: str | None,
) -> None:
    detail = {
        "service": release.service,
        "model": release.model,
        "from": envs.source.profile,
        "to": envs.target.profile,
        "source_version": release.version,
        "target_version": copied,
        "bento": release.bento,
        "data_version": release.data_version,
        "files_digest": release.files_digest,
        "approved_by": approved_by,
        "reason": reason,
        "outcome": outcome,
    }
    for plan in (envs.source, envs.target):
        AuditLog(StateLayout(plan.runtime.state_dir).catalog).record(
            "promote-release", f"service.{release.service}", **detail
        )
