"""`shipyard build <service>`: registered model versions -> an offline-safe Bento.

Steps: resolve the stable alias/version and each candidate in the MLflow registry, download
their model folders, read the request schema from the model signature, compute histogram
buckets for the input metrics from the training data, then `bentoml build` the generic
service with everything it needs copied in (`lock_packages: false`: no package index).
The Bento version is derived from the model versions and the spec digest, so building
twice with nothing changed reuses the existing Bento.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from shipyard import progress
from shipyard.compiler import FeatureRepoStep, ServiceStep
from shipyard.compiler.compile import CODE_DIR
from shipyard.compiler.services import VariantRef
from shipyard.errors import ShipyardError
from shipyard.serving.config import (
    CONFIG_ENV,
    TAG_BENTO,
    Environment,
    ModelInput,
    ServedVariant,
    ServiceConfig,
    environment_file,
    read_bundle,
    read_config,
    release_differences,
    write_config,
)
from shipyard.settings import TELEMETRY_OFF, StateLayout

log = logging.getLogger("shipyard.serving.build")
SIGNATURE_TYPES = {
    "long": "int",
    "integer": "int",
    "double": "float",
    "float": "float",
    "string": "str",
    "boolean": "bool",
    "datetime": "datetime",
}
PACKAGES = (
    "scikit-learn",
    "pandas",
    "numpy",
    "mlflow",
    "skops",
    "pydantic",
    "limits",
    "pyjwt",
    "cryptography",
    "psycopg2-binary",
    "orjson",
    "redis",
)


@dataclass
class BuildResult:
    tag: str
    bundle: Path  # the Bento's src folder: what the service loads
    config: ServiceConfig
    reused: bool
    skipped: list[str]
    promoted: bool = False  # a promotion brought it; served with this environment's settings

    def summary(self) -> str:
        variants = ", ".join(
            f"{v.name}={v.registered_name} v{v.version}" + (f" ({v.semver})" if v.semver else "")
            for v in self.config.variants
        )
        verb = "built"
        if self.promoted:
            verb = "promoted, serving"
        elif self.reused:
            verb = "unchanged, reusing"
        lines = [f"{verb} Bento {self.tag}: {variants}"]
        lines += [f"  note: {note}" for note in self.skipped]
        return "\n".join(lines)


def bento_env(state_dir: Path) -> dict[str, str]:
    """Environment for every BentoML command: its home under the state folder, no tracking."""
    return {
        **os.environ,
        **TELEMETRY_OFF,
        "BENTOML_HOME": str(StateLayout(state_dir).bentoml_home),
    }


def _read_registry(tracking_uri: str, name: str) -> list[Any] | None:
    """Every registered version of `name`, read without importing MLflow (seconds of a start
    that then serves a Bento already built), by the read-only commands' registry reader; None
    where that reader is absent or cannot say, and the MLflow client answers instead."""
    import importlib

    try:
        reader = importlib.import_module("shipyard.registry_read")
        found: list[Any] | None = reader.read_versions(tracking_uri, name)
    except Exception:  # any doubt: the MLflow client decides, with its own errors
        return None
    return found


def _resolve(step: ServiceStep, ref: VariantRef, read: list[Any] | None = None) -> Any | None:
    """The registry version a variant names, or None when the registry says there is none; a
    registry that cannot answer is an error (never taken for "no such version"). With `read`
    (every version of the model, read directly), from those."""
    from shipyard import registry

    if read is not None:
        if ref.version is not None:
            return next((v for v in read if str(v.version) == str(ref.version)), None)
        return next((v for v in read if ref.alias in (v.aliases or [])), None)
    if ref.version is not None:
        return registry.model_version(step.registered_name, ref.version)
    assert ref.alias is not None
    return registry.alias_version(step.registered_name, ref.alias)


def resolve_variants(
    step: ServiceStep, read: list[Any] | None = None
) -> tuple[list[tuple[VariantRef, Any]], list[str]]:
    """The registry versions to serve; a missing stable version is an error, a missing
    candidate is skipped with a note (candidates exist only while a rollout runs)."""
    found: list[tuple[VariantRef, Any]] = []
    skipped: list[str] = []
    for ref in step.variants:
        version = _resolve(step, ref, read)
        if version is not None:
            found.append((ref, version))
        elif ref.name == "stable":
            raise ShipyardError(
                f"service '{step.service}': model '{step.registered_name}' has no {ref.reference} "
                "in the MLflow registry",
                hint=f"train and register it with `shipyard run train-model {step.model}`"
                + (", or fix `version:` in the service" if ref.version is not None else ""),
                resource=step.id,
            )
        else:
            skipped.append(
                f"candidate '{ref.name}': no version of {step.registered_name} holds "
                f"{ref.reference}; built without it"
            )
    return found, skipped


def _download(version: Any, dest: Path) -> Path:
    import mlflow

    from shipyard.retry import retrying

    dest.mkdir(parents=True, exist_ok=True)
    uri = f"models:/{version.name}/{version.version}"
    path = retrying(
        lambda: mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest)),
        what=f"model artifacts {uri}",
    )
    folder = Path(path)
    if not (folder / "MLmodel").exists():
        candidates = list(folder.rglob("MLmodel"))
        if not candidates:
            raise ShipyardError(
                f"{uri} has no MLmodel file; the registered artifacts are incomplete",
                hint="re-register the model with `shipyard run train-model <model> --force`",
            )
        folder = candidates[0].parent
    return folder


def signature_inputs(model_dir: Path, step: ServiceStep) -> list[ModelInput]:
    """The model's input columns and types from its MLflow signature."""
    from mlflow.models import Model

    signature = Model.load(str(model_dir / "MLmodel")).signature
    if signature is None or signature.inputs is None:
        return [
            ModelInput(name=f, type=_declared(step.input_types.get(f, "float")))
            for f in step.features
        ]
    out = []
    for spec in signature.inputs.inputs:
        kind = getattr(spec.type, "name", str(spec.type))
        out.append(ModelInput(name=str(spec.name), type=SIGNATURE_TYPES.get(kind, "str")))
    return out


def _declared(kind: Any) -> str:
    return "str" if isinstance(kind, list) else str(kind)


def input_buckets(step: ServiceStep, inputs: list[ModelInput]) -> dict[str, list[float]]:
    """Decile edges of each numeric input in the training data (for drift-ready histograms),
    rounded to 4 significant digits: a bucket reads `le="29.85"`, not the quantile's
    `le="29.849999999999998"`; edges that round alike become one."""
    import numpy as np
    import pandas as pd

    wanted = {i.name for i in inputs if i.type in ("int", "float")}
    buckets: dict[str, list[float]] = {}
    for file in step.data_files:
        path = Path(file)
        if not path.exists() or not wanted - set(buckets):
            continue
        try:
            frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
        except Exception as exc:  # unreadable data only costs the input histograms
            log.warning("cannot read %s for input buckets: %s", path, exc)
            continue
        for column in sorted(wanted - set(buckets)):
            if column in frame.columns:
                values = pd.to_numeric(frame[column], errors="coerce").dropna().to_numpy()
                if len(values):
                    edges = np.quantile(values, np.linspace(0.1, 1.0, 10))
                    buckets[column] = sorted({float(f"{edge:.4g}") for edge in edges})
    return buckets


def _packages(step: ServiceStep) -> list[str]:
    names = [*PACKAGES, "feast"] if step.feature_service else list(PACKAGES)
    out = []
    for name in names:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def _copy_code(ctx: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("bentos", "shipyard"):
        shutil.copytree(CODE_DIR / package, ctx / package, ignore=ignore, dirs_exist_ok=True)


def bento_version(step: ServiceStep, versions: list[tuple[VariantRef, Any]]) -> str:
    """m<stable version>-<digest>: the digest covers the compiled service, every served version
    and the code it carries, so a change elsewhere in the spec does not rebuild the Bento."""
    payload = json.dumps(
        {
            "step": step.digest(),
            # as a string: MLflow's client gives an int, a direct read of the registry a string
            "variants": [[ref.name, v.name, str(v.version)] for ref, v in versions],
            "code": _code_digest(),
        },
        sort_keys=True,
    )
    stable = versions[0][1].version
    return f"m{stable}-{hashlib.sha256(payload.encode()).hexdigest()[:10]}"


def _code_digest() -> str:
    """Over all the code a Bento carries (_copy_code): a fix anywhere in it (the online
    feature lookup, the log encryption) builds a new Bento, not only one in serving/."""
    digest = hashlib.sha256()
    for package in ("bentos", "shipyard"):
        for path in sorted((CODE_DIR / package).rglob("*.py")):
            digest.update(path.relative_to(CODE_DIR).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def existing_bento(name: str, version: str, state_dir: Path) -> Path | None:
    src = StateLayout(state_dir).bentoml_home / "bentos" / name / version / "src"
    return src if (src / "service.json").exists() else None


def _built_config(step: ServiceStep, bundle: Path, own: bool = False) -> ServiceConfig:
    """The service.json of a Bento already built, as this environment serves it (`own`: as
    it was built); one that cannot be read is named, with the fix, instead of failing as a
    traceback (or, later, as every worker's start)."""
    file = bundle / "service.json"
    try:
        return read_bundle(bundle) if own else read_config(bundle, step.state_dir)
    except (OSError, ValueError, ShipyardError) as exc:  # JSON and pydantic errors included
        problem = str(exc).splitlines()[0]
        raise ShipyardError(
            f"service '{step.service}': the Bento's {file} cannot be read ({problem}); "
            "nothing was started",
            hint=f"delete {bundle.parent} and run `shipyard serve {step.service}` again, "
            "which builds it anew",
            resource=step.id,
        ) from None


def build_service(
    step: ServiceStep,
    feature_repo: FeatureRepoStep | None,
    tracking_uri: str,
    say: Callable[[str], None] = print,
) -> BuildResult:
    from shipyard.training.tracking import use_tracking

    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    state_dir = Path(step.state_dir)
    name = step.service
    say(f"resolving {step.registered_name} in the model registry ...")
    read = _read_registry(tracking_uri, step.registered_name)
    if read is not None:  # the Bento of these versions may be built already: no MLflow needed
        versions, skipped = resolve_variants(step, read)
        promoted = promoted_bento(step, feature_repo, versions, skipped, say)
        if promoted is not None:
            return promoted
        version = bento_version(step, versions)
        found = existing_bento(name, version, state_dir)
        if found is not None:
            config = _built_config(step, found)
            return BuildResult(f"{name}:{version}", found, config, reused=True, skipped=skipped)
    use_tracking(tracking_uri, step.id)
    versions, skipped = resolve_variants(step)
    promoted = promoted_bento(step, feature_repo, versions, skipped, say)
    if promoted is not None:
        return promoted
    version = bento_version(step, versions)
    tag = f"{name}:{version}"
    found = existing_bento(name, version, state_dir)
    if found is not None:
        return BuildResult(
            tag=tag, bundle=found, config=_built_config(step, found), reused=True, skipped=skipped
        )
    # BentoML refuses build folders under hidden directories such as .shipyard
    ctx = Path(tempfile.mkdtemp(prefix=f"shipyard-build-{name}-"))
    try:
        with progress.step(f"building Bento {tag}", total=len(versions) + 1) as building:
            served: list[ServedVariant] = []
            model_inputs: list[ModelInput] = []
            for ref, mv in versions:
                say(f"downloading {ref.name}: {mv.name} version {mv.version} ...")
                building.note(f"downloading {ref.name}")
                folder = _download(mv, ctx / "models" / ref.name)
                building.advance()
                if ref.name == "stable":
                    model_inputs = signature_inputs(folder, step)
                served.append(_served(ref, mv, str(folder.relative_to(ctx))))
            if step.feature_service:
                request_fields = [
                    ModelInput(name=k, type=_declared(step.input_types.get(k, "int")))
                    for k in step.inputs
                ]
            else:
                request_fields = model_inputs
            config = ServiceConfig(
                step=step,
                feature_repo=feature_repo if step.feature_service else None,
                bento_tag=tag,
                built_at=datetime.now(UTC).isoformat(timespec="seconds"),
                variants=served,
                model_inputs=model_inputs,
                request_fields=request_fields,
                input_buckets=input_buckets(step, model_inputs),
            )
            write_config(ctx, config)
            _copy_code(ctx)
            _bentofile(ctx, step, versions)
            say(f"bentoml build {tag} ...")
            building.note("bentoml build")
            _bentoml_build(ctx, version, state_dir)
            building.advance()
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    bundle = existing_bento(name, version, state_dir)
    if bundle is None:
        raise ShipyardError(
            f"bentoml build reported success but {tag} is not in the Bento store",
            hint=f"look in {StateLayout(state_dir).bentoml_home / 'bentos' / name}",
            resource=step.id,
        )
    return BuildResult(tag=tag, bundle=bundle, config=config, reused=False, skipped=skipped)


def _served(ref: VariantRef, mv: Any, path: str) -> ServedVariant:
    """A registry version as the service serves it, its files at `path` in the bundle."""
    return ServedVariant(
        name=ref.name,
        registered_name=mv.name,
        version=str(mv.version),
        semver=(mv.tags or {}).get("shipyard.semver", ""),
        run_id=mv.run_id,
        aliases=list(getattr(mv, "aliases", []) or []),
        path=path,
    )


def promoted_bento(
    step: ServiceStep,
    feature_repo: FeatureRepoStep | None,
    versions: list[tuple[VariantRef, Any]],
    skipped: list[str],
    say: Callable[[str], None] = print,
) -> BuildResult | None:
    """The Bento a promotion brought here with the stable version (its `shipyard.bento` tag),
    served as it is with this environment's settings around it; None when the service serves
    more than that version (a rollout's candidate beside it: a Bento of its own), or the
    version was not promoted. A promoted Bento that is gone, or that takes other fields than
    this environment's service, is assembled again from the same files, and said."""
    if len(versions) != 1:
        return None
    ref, mv = versions[0]
    tag = (mv.tags or {}).get(TAG_BENTO)
    if not tag:
        return None
    name, _, version = tag.partition(":")
    found = existing_bento(name, version, Path(step.state_dir))
    if found is None:
        skipped.append(
            f"Bento {tag}, promoted with v{mv.version}, is not in this Bento store; assembled "
            "again from the same model files"
        )
        return None
    own = _built_config(step, found, own=True)
    differ = release_differences(own.step, step)
    if len(own.variants) != 1 or differ:
        why = f"its service differs in {', '.join(differ)}" if differ else "it serves candidates"
        skipped.append(f"Bento {tag}, promoted with v{mv.version}, not served as it is: {why}")
        return None
    environment = Environment(
        step=step,
        feature_repo=feature_repo if step.feature_service else None,
        variants=[_served(ref, mv, own.variants[0].path)],
    )
    file = environment_file(step.state_dir, tag)
    file.parent.mkdir(parents=True, exist_ok=True)
    partial = file.with_suffix(".partial")
    partial.write_text(environment.model_dump_json(indent=2))
    partial.replace(file)
    say(f"serving the promoted Bento {tag} as it is, with this environment's settings")
    config = environment.around(own)
    return BuildResult(tag, found, config, reused=True, skipped=skipped, promoted=True)


def _bentofile(ctx: Path, step: ServiceStep, versions: list[tuple[VariantRef, Any]]) -> None:
    import yaml

    stable = versions[0][1]
    bentofile = {
        "service": "bentos.service:ShipyardService",
        "name": step.service,
        "description": f"Shipyard service {step.service} serving {step.registered_name}",
        "labels": {
            "shipyard.project": step.project,
            "shipyard.service": step.service,
            "shipyard.model": step.registered_name,
            "shipyard.model_version": str(stable.version),
            "shipyard.semver": (stable.tags or {}).get("shipyard.semver", ""),
            "shipyard.step_digest": step.digest()[:12],
        },
        "include": ["bentos/**", "shipyard/**", "service.json", "models/**"],
        "python": {"packages": _packages(step), "lock_packages": False},
    }
    (ctx / "bentofile.yaml").write_text(yaml.safe_dump(bentofile, sort_keys=False))


def run_bentoml(
    args: list[str],
    state_dir: Path,
    extra_env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> list[str] | None:
    """`bentoml <args>` on the state folder's Bento store: None when it succeeded, else the
    last lines it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "bentoml", *args],
        cwd=cwd,
        env={**bento_env(state_dir), **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode == 0:
        return None
    return (done.stderr or done.stdout).strip().splitlines()[-15:]


def _bentoml_build(ctx: Path, version: str, state_dir: Path) -> None:
    args = ["build", str(ctx), "--version", version, "-o", "tag"]
    detail = run_bentoml(args, state_dir, {CONFIG_ENV: str(ctx), "PYTHONPATH": str(ctx)}, ctx)
    if detail is not None:
        raise ShipyardError(
            "bentoml build failed:\n  " + "\n  ".join(detail),
            hint="the full output is above; the build folder was " + str(ctx),
        )
