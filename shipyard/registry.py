"""The MLflow model registry: alias lookups and moves, all-or-nothing registration, semantic
versions, promotion. Training, serving and rollouts all read and move aliases through here.

A lookup answers None only when the registry says for certain that there is nothing (the model
or the alias does not exist). Any other failure (a refused or failed call, a timeout) raises
RegistryUnavailable: taking an unreadable champion for "no champion" would let a candidate
skip its gate.

Registration survives a killed process: the MLflow run records the intent (`pending`, with the
aliases the version is to get) before the version is created, and the version carries
`shipyard.pending` until its aliases are set. `settle_registration` finishes or undoes what a
killed process left half-way: a version that holds an alias is in use and is kept (nothing
moves); one that holds none was never visible to anyone and is deleted, so the next training
registers again under the same semantic version.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shipyard.audit import AuditLog
from shipyard.errors import ServiceUnavailable, ShipyardError

log = logging.getLogger("shipyard.registry")
CHAMPION = "champion"
CHALLENGER = "challenger"
TAG_SEMVER = "shipyard.semver"
TAG_SCHEMA = "shipyard.schema_digest"
TAG_DATA = "shipyard.data_version"
TAG_PENDING = "shipyard.pending"
"""On a version from its creation until its aliases are set: the aliases it is to get."""
TAG_REGISTRATION = "shipyard.registration"
"""On the MLflow run: `pending` from just before its version is created until the registration
is complete, then `registered`; `rolled_back` once the half-made version was deleted again."""
TAG_INTENT = "shipyard.registration_intent"
"""On the MLflow run: JSON of the aliases its version is to get and the run tags that mark the
registration complete, so a repair can finish it exactly as the killed process would have."""
TAG_REGISTERED_VERSION = "shipyard.registered_version"
GATE_METRICS = "gate/"
"""Prefix of the run metrics that record the gate's verdicts (not holdout metrics)."""
PENDING, REGISTERED, ROLLED_BACK = "pending", "registered", "rolled_back"
T = TypeVar("T")


@dataclass
class VersionInfo:
    """One registered version as people want to see it."""

    name: str
    version: str
    aliases: list[str]
    tags: dict[str, str]
    run_id: str | None
    created: int
    metrics: dict[str, float] = field(default_factory=dict)
    """The holdout metrics of the run that trained it."""
    description: str = ""

    @property
    def semver(self) -> str:
        return self.tags.get(TAG_SEMVER, "")


NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"
"""MLflow's error code for a model, version or alias that does not exist."""


class RegistryUnavailable(ServiceUnavailable):
    """The registry could not say: a call failed for another reason than "not found"."""


def _client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def _lookup(call: Callable[[], T], what: str, name: str) -> T | None:
    """`call`, retried on transient failures; None only for a definite "does not exist"."""
    from mlflow.exceptions import MlflowException

    from shipyard.retry import retrying

    try:
        return retrying(call, what=f"{what} of '{name}' in the MLflow registry")
    except MlflowException as exc:
        if exc.error_code == NOT_FOUND:
            return None
        raise RegistryUnavailable(
            f"could not read {what} of '{name}' from the MLflow registry: {exc.message}",
            hint="nothing was registered or moved; check the tracking server (its log, "
            "permissions) and run again once it answers",
            resource=name,
        ) from exc
    except OSError as exc:
        raise RegistryUnavailable(
            f"could not read {what} of '{name}' from the MLflow registry: {exc}",
            hint="nothing was registered or moved; check that the tracking server is reachable",
            resource=name,
        ) from exc


def alias_version(name: str, alias: str) -> Any | None:
    """The version holding `alias`, or None when the model or the alias does not exist."""
    return _lookup(lambda: _version_by_alias(name, alias), f"alias @{alias}", name)


def _version_by_alias(name: str, alias: str) -> Any | None:
    """MLflow answers an alias missing on an existing model with INVALID_PARAMETER_VALUE, as it
    answers a malformed request; only the model's own aliases, read back, make it definite."""
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code != "INVALID_PARAMETER_VALUE":
            raise
        if alias in (client.get_registered_model(name).aliases or {}):
            raise  # the alias exists, so the refusal was about something else
        return None


def model_version(name: str, version: str | int) -> Any | None:
    """One version, or None when it does not exist."""
    return _lookup(
        lambda: _client().get_model_version(name, str(version)), f"version {version}", name
    )


def champion_version(name: str) -> Any | None:
    """The version holding the champion alias, or None (no model or no champion yet)."""
    return alias_version(name, CHAMPION)


def latest_version(name: str) -> Any | None:
    """The highest version number, or None when the model has no version yet."""
    found = _lookup(
        lambda: _client().search_model_versions(f"name = '{name}'"), "the versions", name
    )
    return max(found, key=lambda v: int(v.version)) if found else None


def next_semver(name: str, schema_digest: str, data_version: str) -> tuple[str, str]:
    """(version, why): major when features or schema change, minor on new data, else patch."""
    latest = latest_version(name)
    if latest is None:
        return "1.0.0", "first version"
    tags = dict(latest.tags or {})
    major, minor, patch = (int(p) for p in tags.get(TAG_SEMVER, "0.0.0").split("."))
    if tags.get(TAG_SCHEMA) != schema_digest:
        return f"{major + 1}.0.0", "features or schema changed"
    if tags.get(TAG_DATA) != data_version:
        return f"{major}.{minor + 1}.0", "retrained on new data"
    return f"{major}.{minor}.{patch + 1}", "retrained on the same data"


def register(
    name: str,
    model_uri: str,
    run_id: str,
    tags: dict[str, str],
    resource: str,
    done_tags: dict[str, str] | None = None,
    descriptions: tuple[str, str] = ("", ""),
) -> tuple[str, list[str]]:
    """Register a passed candidate: `challenger`, or `champion` when there is none yet.

    All or nothing: if tagging, describing or aliasing fails, the new version is deleted again,
    so the registry never holds a half-registered model. The run records the intent first, so a
    process killed half-way leaves a record that `settle_registration` completes or undoes.
    `done_tags` are set on the run in the same call that marks the registration complete;
    `descriptions` are the registered model's and the new version's (MLflow shows them on
    their pages).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    # decided before anything is written: an unreadable champion stops here, not half-way
    aliases = [CHALLENGER] if champion_version(name) is not None else [CHAMPION]
    client = _client()
    version = None
    try:
        intent = {"aliases": aliases, "done_tags": done_tags or {}}
        _set_run_tags(client, run_id, {TAG_REGISTRATION: PENDING, TAG_INTENT: json.dumps(intent)})
        version = mlflow.register_model(
            model_uri, name, tags={**tags, TAG_PENDING: ",".join(aliases)}
        )
        model_description, version_description = descriptions
        if model_description:
            client.update_registered_model(name, description=model_description)
        if version_description:
            client.update_model_version(name, version.version, description=version_description)
        for alias in aliases:
            client.set_registered_model_alias(name, alias, version.version)
        _complete(client, name, str(version.version), run_id, done_tags or {})
        return str(version.version), aliases
    except (MlflowException, OSError) as exc:
        rolled_back = version is None
        if version is not None:
            try:
                client.delete_model_version(name, version.version)
                rolled_back = True
            except (MlflowException, OSError):
                log.exception("could not roll back version %s of %s", version.version, name)
        if version is not None and not rolled_back:  # left pending, for the next run to settle
            raise ShipyardError(
                f"registering '{name}' failed, and its version {version.version} could not be "
                f"deleted again: {exc}",
                hint="the next run of the model (or `shipyard models repair`) settles it once "
                "the tracking server is healthy",
                resource=resource,
            ) from exc
        with contextlib.suppress(MlflowException, OSError):
            client.set_tag(run_id, TAG_REGISTRATION, ROLLED_BACK)
        raise ShipyardError(
            f"registering '{name}' failed and was rolled back: {exc}",
            hint="check the tracking server; re-run with --force once it is healthy",
            resource=resource,
        ) from exc


def _set_run_tags(client: Any, run_id: str, tags: dict[str, str]) -> None:
    """Set several run tags in one call: all of them or none."""
    from mlflow.entities import RunTag

    client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])


def _complete(client: Any, name: str, version: str, run_id: str, done: dict[str, str]) -> None:
    """The bookkeeping once the aliases are set: the version is no longer pending, and the run
    says which version it registered (with `done`, in one call)."""
    from mlflow.exceptions import MlflowException

    try:
        client.delete_model_version_tag(name, version, TAG_PENDING)
    except MlflowException as exc:
        if exc.error_code != NOT_FOUND:
            raise
    _set_run_tags(
        client, run_id, {TAG_REGISTERED_VERSION: version, TAG_REGISTRATION: REGISTERED, **done}
    )


@dataclass(frozen=True)
class Settled:
    """What `settle_registration` did with one half-made registration."""

    run_id: str
    outcome: str
    """`registered` (the version held an alias, kept) or `rolled_back` (deleted, or never made)."""
    version: str | None
    semver: str | None
    aliases: list[str]

    def describe(self, name: str) -> str:
        if self.outcome == REGISTERED:
            return (
                f"the registration of version {self.version} ({self.semver}) of '{name}' by run "
                f"{self.run_id} had set @{', @'.join(self.aliases)} before it stopped: kept it "
                "and recorded it as registered (no alias moved)"
            )
        if self.version is None:
            return (
                f"run {self.run_id} stopped while registering '{name}', before any version was "
                "created: marked it rolled back"
            )
        return (
            f"the registration of version {self.version} ({self.semver}) of '{name}' by run "
            f"{self.run_id} stopped before any alias was set: deleted the version, so the next "
            f"training registers {self.semver} again"
        )


def settle_registration(
    name: str, run: Any, audit: AuditLog, resource: str, reason: str
) -> Settled:
    """Finish or undo the registration a killed process left pending on `run` (an MLflow run
    whose process is gone), and audit what was done.

    A version of the run that holds an alias is kept and its registration recorded as done:
    nothing moves, so no alias can reach a version the gate did not grant it to. A version that
    holds none is deleted. Lookups are strict: a registry that cannot answer raises
    RegistryUnavailable and nothing is changed.
    """
    client = _client()
    run_id = run.info.run_id
    intent = json.loads(run.data.tags.get(TAG_INTENT) or "{}")
    found = _lookup(
        lambda: client.search_model_versions(f"run_id = '{run_id}'"), "the versions", name
    )
    made = sorted((v for v in found or [] if v.name == name), key=lambda v: int(v.version))
    settled = Settled(run_id, ROLLED_BACK, None, None, [])
    for made_version in made:
        current = model_version(name, made_version.version)
        if current is None:
            continue
        semver = dict(current.tags or {}).get(TAG_SEMVER)
        held = sorted(current.aliases or [])
        if held:
            _complete(client, name, str(current.version), run_id, intent.get("done_tags", {}))
            settled = Settled(run_id, REGISTERED, str(current.version), semver, held)
        else:
            client.delete_model_version(name, current.version)
            if settled.outcome != REGISTERED:
                settled = Settled(run_id, ROLLED_BACK, str(current.version), semver, [])
    if settled.outcome == ROLLED_BACK:
        client.set_tag(run_id, TAG_REGISTRATION, ROLLED_BACK)
    audit.record(
        "repair",
        resource,
        model=name,
        run_id=run_id,
        outcome=settled.outcome,
        version=settled.version,
        semver=settled.semver,
        aliases=settled.aliases,
        reason=reason,
    )
    return settled


def promote(name: str, version: str, audit: AuditLog, reason: str, resource: str) -> str | None:
    """Move `champion` to a version (audited); returns the previous champion's version."""

    client = _client()
    target = model_version(name, version)
    if target is None:
        known = ", ".join(v.version for v in versions(name)) or "none"
        raise ShipyardError(
            f"model '{name}' has no version {version} (versions: {known})",
            hint="see `shipyard models show`",
            resource=resource,
        )
    previous = champion_version(name)
    if previous is not None and str(previous.version) == str(target.version):
        return str(previous.version)
    # previous-champion first: a promotion cut off between the two leaves the champion as it
    # was, and running it again completes both (the other order would lose the old champion)
    if previous is not None:
        client.set_registered_model_alias(name, "previous-champion", previous.version)
    client.set_registered_model_alias(name, CHAMPION, target.version)
    aliases = client.get_model_version(name, version).aliases
    if CHALLENGER in aliases:
        client.delete_registered_model_alias(name, CHALLENGER)
    audit.record(
        "promote",
        resource,
        model=name,
        to_version=str(target.version),
        from_version=str(previous.version) if previous else None,
        reason=reason,
    )
    return str(previous.version) if previous else None


def versions(name: str) -> list[VersionInfo]:
    """Every version of a registered model, newest first, with its run's metrics."""
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        found = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return []
    try:
        by_version: dict[str, list[str]] = {}
        for alias, number in (client.get_registered_model(name).aliases or {}).items():
            by_version.setdefault(str(number), []).append(alias)
    except MlflowException:
        by_version = {}
    out = []
    for v in sorted(found, key=lambda v: int(v.version), reverse=True):
        metrics: dict[str, float] = {}
        if v.run_id:
            with contextlib.suppress(MlflowException):
                run_metrics = client.get_run(v.run_id).data.metrics
                metrics = {k: m for k, m in run_metrics.items() if not k.startswith(GATE_METRICS)}
        out.append(
            VersionInfo(
                name=v.name,
                version=str(v.version),
                aliases=sorted(by_version.get(str(v.version), [])),
                tags=dict(v.tags or {}),
                run_id=v.run_id,
                created=int(v.creation_timestamp or 0),
                metrics=metrics,
                description=v.description or "",
            )
        )
    return out


def describe(info: VersionInfo) -> dict[str, Any]:
    return {
        "version": info.version,
        "semver": info.semver,
        "aliases": info.aliases,
        "data_version": info.tags.get(TAG_DATA),
        "metrics": info.metrics,
        "run_id": info.run_id,
        "gate": json.loads(info.tags.get("shipyard.gate", "null") or "null"),
        "description": info.description,
    }
