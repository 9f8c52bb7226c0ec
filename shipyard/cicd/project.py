"""What a rendered pipeline needs to know of the project: names, folders, environments.

Read from the plan (and the plans of the environments' profiles) and from the project folder,
once, so that rendering itself is a pure function of these facts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from shipyard.compiler import (
    DatasetStep,
    Plan,
    RolloutStep,
    ServiceStep,
    TrainModelStep,
)
from shipyard.compiler.features import repo_step
from shipyard.errors import ShipyardError

SKIPPED_DIRS = frozenset(
    {"node_modules", "venv", "env", "build", "dist", "site-packages", "__pycache__", "data"}
)
"""Top-level folders never taken for the project's code, even with Python files in them."""


@dataclass(frozen=True)
class Stage:
    """Where a release runs: an environment of `environments:` or, without any, the active
    profile."""

    profile: str
    approval: bool
    rollouts: tuple[str, ...]
    """The rollouts a release into this environment runs (what a rollback aborts)."""
    services_with_rollout: Mapping[str, str]
    """Service -> its rollout here; services missing are rebuilt on the new champion."""
    state_dir: str
    """The state folder: relative to the repository root when it lies inside, else absolute
    (a persistent runner keeps it)."""
    state_in_repo: bool
    registry: str | None
    """The profile's `kubernetes.registry`: where the service images are pushed."""


@dataclass(frozen=True)
class CiProject:
    project: str
    spec_file: str
    """The spec's file name in the project folder."""
    workdir: str
    """The project folder relative to the repository root ('.' when it is the root)."""
    datasets: tuple[str, ...]
    models: tuple[str, ...]
    services: tuple[str, ...]
    views: tuple[str, ...]
    """The feature views a service reads online: each environment materializes them before
    a release there (a service does not start without its online features)."""
    stages: tuple[Stage, ...]
    """The environments in promotion order, or the active profile alone."""
    declared_environments: bool
    code_dirs: tuple[str, ...]
    """Top-level folders of the project holding Python code, relative to the project."""
    has_lock: bool
    has_package: bool
    watched: tuple[str, ...]
    """Paths (globs, relative to the repository root) whose change runs the pipeline."""
    variables: tuple[str, ...] = ()
    """The environment variables the spec reads (`${NAME}`, SHIPYARD_PROFILE left out) and
    the SHIPYARD_SECRET_* variables of its `${secret:...}` references: the CI's secrets."""

    def at_root(self, path: str) -> str:
        """A path of the project folder as seen from the repository root."""
        return path if self.workdir == "." else f"{self.workdir}/{path}"


def repository_root(project_dir: Path) -> Path:
    """The nearest folder holding `.git`, from the project folder up; else the project."""
    for folder in (project_dir, *project_dir.parents):
        if (folder / ".git").exists():
            return folder
    return project_dir


def ci_project(plan: Plan, root: Path | None = None) -> CiProject:
    """The facts of the plan's project, with every environment's plan checked to follow
    SHIPYARD_PROFILE (the rendered jobs choose the environment with it)."""
    project_dir = Path(plan.runtime.project_dir)
    root = (root or repository_root(project_dir)).resolve()
    try:
        workdir = project_dir.resolve().relative_to(root).as_posix()
    except ValueError:
        raise ShipyardError(
            f"the project folder {project_dir} is not inside the repository {root}",
            hint="run `shipyard ci render` from a checkout that holds the project",
        ) from None
    stages = (
        tuple(
            _stage(plan, env.profile, env.approval, env.rollouts, root) for env in plan.environments
        )
        if plan.environments
        else (_stage(plan, plan.profile, False, _own_rollouts(plan), root),)
    )
    datasets = tuple(s.name for s in plan.steps_of(DatasetStep))
    code_dirs = code_folders(project_dir, plan)
    has_lock = (project_dir / "requirements.lock").is_file()
    has_package = (project_dir / "pyproject.toml").is_file() or (project_dir / "setup.py").is_file()
    facts = CiProject(
        project=plan.project,
        spec_file=plan.runtime.spec_file,
        workdir=workdir,
        datasets=datasets,
        models=tuple(s.name for s in plan.steps_of(TrainModelStep)),
        services=tuple(s.name for s in plan.steps_of(ServiceStep)),
        views=_online_views(plan),
        stages=stages,
        declared_environments=bool(plan.environments),
        code_dirs=code_dirs,
        has_lock=has_lock,
        has_package=has_package,
        watched=(),
    )
    watched = [facts.spec_file, *(f"{d}/**" for d in code_dirs)]
    if next(project_dir.glob("*.py"), None) is not None:
        watched.append("*.py")
    watched += [f"{s.path}.dvc" for s in plan.steps_of(DatasetStep) if s.path]
    watched += [n for n in ("requirements.lock", "pyproject.toml") if (project_dir / n).is_file()]
    return replace(
        facts,
        watched=tuple(dict.fromkeys(facts.at_root(p) for p in watched)),
        variables=spec_variables(plan),
    )


_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")


def spec_variables(plan: Plan) -> tuple[str, ...]:
    """The variables a job needs set for the spec to compile as it does for its profile."""
    from shipyard.secrets import env_name

    text = (Path(plan.runtime.project_dir) / plan.runtime.spec_file).read_text(encoding="utf-8")
    names = [m.group(1) for m in _VARIABLE.finditer(text) if m.group(1) != "SHIPYARD_PROFILE"]
    names += [env_name(secret) for secret in plan.secrets]
    return tuple(dict.fromkeys(names))


def _online_views(plan: Plan) -> tuple[str, ...]:
    """Every view of the feature repository, when a service reads a feature service."""
    repo = repo_step(plan.steps)
    if repo is None or not any(s.feature_service for s in plan.steps_of(ServiceStep)):
        return ()
    return tuple(v.name for v in repo.views)


def _own_rollouts(plan: Plan) -> dict[str, str]:
    """Service -> its rollout, for a project without environments."""
    out: dict[str, str] = {}
    for rollout in plan.steps_of(RolloutStep):
        service = plan.steps.get(rollout.service)
        if isinstance(service, ServiceStep):
            out.setdefault(service.name, rollout.name)
    return out


def _stage(
    plan: Plan, profile: str, approval: bool, rollouts: Mapping[str, str], root: Path
) -> Stage:
    env_plan = _plan_under(plan, profile)
    state = Path(env_plan.runtime.state_dir)
    try:
        state_dir, in_repo = state.resolve().relative_to(root).as_posix(), True
    except ValueError:
        state_dir, in_repo = str(state), False
    return Stage(
        profile=profile,
        approval=approval,
        rollouts=tuple(dict.fromkeys(rollouts.values())),
        services_with_rollout=dict(rollouts),
        state_dir=state_dir,
        state_in_repo=in_repo,
        registry=env_plan.kubernetes.registry,
    )


def _plan_under(plan: Plan, profile: str) -> Plan:
    """The plan the rendered jobs get with SHIPYARD_PROFILE=profile; refused when the spec's
    `profile:` does not follow the variable (the job would run in another profile)."""
    if profile == plan.profile and not plan.environments:
        return plan
    from shipyard.project import load_project

    spec = Path(plan.runtime.project_dir) / plan.runtime.spec_file
    env = {**os.environ, "SHIPYARD_PROFILE": profile}
    other = load_project(spec, env=env).require_plan()
    if other.profile != profile:
        raise ShipyardError(
            f"with SHIPYARD_PROFILE={profile}, {plan.runtime.spec_file} still selects profile "
            f"'{other.profile}': the rendered jobs of environment '{profile}' would run in "
            f"'{other.profile}'",
            hint=f"select the profile from the variable: `profile: ${{SHIPYARD_PROFILE:-"
            f"{plan.profile}}}`",
        )
    return other


def code_folders(project_dir: Path, plan: Plan) -> tuple[str, ...]:
    """Top-level folders holding Python files: the project's code, tests included (state
    folders, virtual environments, hidden and build folders left out)."""
    state_dirs = {Path(plan.runtime.state_dir).resolve()}
    state_dirs |= {Path(e.state_dir).resolve() for e in plan.environments}
    found = []
    for folder in sorted(project_dir.iterdir()):
        if (
            not folder.is_dir()
            or folder.name.startswith((".", "_"))
            or folder.name in SKIPPED_DIRS
            or folder.name.endswith(".egg-info")
            or folder.resolve() in state_dirs
            or (folder / "pyvenv.cfg").exists()
        ):
            continue
        if next(folder.rglob("*.py"), None) is not None:
            found.append(folder.name)
    return tuple(found)
