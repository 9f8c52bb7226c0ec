"""The CI/CD pipelines of a project, as data: a GitHub Actions workflow or a .gitlab-ci.yml.

Both providers run the same jobs, built here as Python dicts and written with a SafeDumper (no
YAML is made from strings):

    validate    `shipyard validate`, and its JSON report as an artifact
    plan-diff   pull/merge requests: the base's and the head's offline plans, compared
    test        the project's tests, with the coverage floor
    quality     ruff, bandit, pip-audit
    data        `shipyard run validate-dataset` for every dataset
    train       `shipyard run train-model` for every model (a failed gate fails the job)
    build       `shipyard build` for every service, `bentoml containerize`, push
    deploy      the first environment (or the active profile): its online features are
                materialized, then its rollouts start, or the services are rebuilt on the new
                champion
    promote     each next environment: its online features, then `shipyard promote --from A
                --to B --approved-by ...`, behind an approval where `approval: true`
    rollback    after a failed deploy or promotion: `shipyard rollout abort` for the
                environment's rollouts, so that no traffic stays split

Everything that releases runs in the first environment's profile (SHIPYARD_PROFILE), and the
state folder travels between its jobs as an artifact.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import yaml

from shipyard.cicd.project import CiProject, Stage
from shipyard.settings import TELEMETRY_OFF

PYTHON = "3.11"
CHECKOUT = "actions/checkout@v4"
SETUP_PYTHON = "actions/setup-python@v5"
UPLOAD = "actions/upload-artifact@v4"
DOWNLOAD = "actions/download-artifact@v4"
GITLAB_IMAGE = "python:3.11"
TOOLS = {
    "test": ("pytest==9.2.0", "pytest-cov==7.1.0"),
    "quality": ("ruff==0.17.6", "bandit==1.9.4", "pip-audit==2.10.1"),
}
"""Pinned versions of the gates' tools, installed beside the project's own lock."""
HEADER_MARK = "Rendered by `shipyard ci render"
GITHUB_FILE = "shipyard.yml"
GITLAB_FILE = ".gitlab-ci.yml"
PLAN_DIFF_FILE = "plan-diff.md"


@dataclass(frozen=True)
class RenderOptions:
    coverage_floor: int = 80
    branch: str = "main"
    """The branch whose pushes release; pull/merge requests only check."""
    runs_on: str = "ubuntu-latest"
    """GitHub runner of the release jobs (a self-hosted label keeps the state folders)."""


def header(provider: str, facts: CiProject) -> str:
    return (
        f"# {HEADER_MARK} --provider {provider}` from {facts.at_root(facts.spec_file)}: "
        "do not edit by hand.\n"
        "# After a change to the spec (datasets, models, services, environments), render it\n"
        f"# again: `shipyard ci render --provider {provider} -o ...`. See docs/ci.md.\n"
    )


class _Dumper(yaml.SafeDumper):
    """SafeDumper with scripts of several lines as block scalars (`|`), long lines unfolded
    and no anchors: readable in review, the same text for the same project."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=10_000, allow_unicode=True)


# -- the commands both providers run --------------------------------------------------------


def q(text: str) -> str:
    return shlex.quote(text)


def install_script() -> str:
    return (
        "python -m pip install --upgrade pip\n"
        "if [ -f requirements.lock ]; then pip install -r requirements.lock; "
        "else pip install shipyard; fi\n"
        "if [ -f pyproject.toml ] || [ -f setup.py ]; then pip install --no-deps -e .; fi"
    )


def tools_script(kind: str) -> str:
    return "pip install " + " ".join(TOOLS[kind])


def test_commands(options: RenderOptions) -> list[str]:
    return [
        "pytest --cov --cov-report=term-missing --cov-report=xml:coverage.xml "
        f"--cov-fail-under={options.coverage_floor}"
    ]


def quality_commands(facts: CiProject) -> list[str]:
    code = [d for d in facts.code_dirs if not d.startswith("test")]
    bandit = (
        "bandit -r " + " ".join(q(d) for d in code) + " -q"
        if code
        else "bandit -r . -x ./tests,./.venv -q"
    )
    audit = "pip-audit -r requirements.lock" if facts.has_lock else "pip-audit"
    return ["ruff check .", bandit, audit]


PULL_DATA = "shipyard ci pull-data"
"""First in every job that reads the datasets: the files the committed pointers name."""


def data_commands(facts: CiProject) -> list[str]:
    return [PULL_DATA, *(f"shipyard run validate-dataset {q(d)}" for d in facts.datasets)]


def train_commands(facts: CiProject) -> list[str]:
    pull = [PULL_DATA] if facts.datasets else []
    return [*pull, *(f"shipyard run train-model {q(m)}" for m in facts.models)]


def build_script(facts: CiProject, stage: Stage) -> str:
    """Build each service's Bento, containerize it, and push it when the profile names a
    registry; the Bento tag is the one `shipyard build` prints."""
    lines = ["set -euo pipefail", f"export BENTOML_HOME={bento_home(facts, stage)}"]
    if facts.datasets:
        lines.append(PULL_DATA)  # the build reads the training data's columns
    if stage.registry:
        host = stage.registry.split("/", 1)[0]
        lines.append(
            f'printf "%s" "$REGISTRY_PASSWORD" | docker login {q(host)} '
            '--username "$REGISTRY_USERNAME" --password-stdin'
        )
    for service in facts.services:
        lines += [
            f"shipyard build {q(service)} | tee build.log",
            "tag=$(grep -oE 'Bento [^ ]+:' build.log | head -n 1 | sed -e 's/^Bento //' "
            "-e 's/:$//')",
            f'test -n "$tag" || {{ echo "no Bento tag in the output of shipyard build '
            f'{service}" >&2; exit 1; }}',
        ]
        if stage.registry:
            lines += [
                f'image="{stage.registry}/$tag"',
                'bentoml containerize "$tag" --image-tag "$image"',
                'docker push "$image"',
            ]
        else:
            lines.append('bentoml containerize "$tag"  # no kubernetes.registry: not pushed')
    return "\n".join(lines)


def bento_home(facts: CiProject, stage: Stage) -> str:
    """BENTOML_HOME of the stage's state folder, for a job running in the project folder
    (what shipyard/serving/build.py bento_env sets)."""
    if not stage.state_in_repo:
        return q(f"{stage.state_dir}/bentoml")
    inside = stage.state_dir
    if facts.workdir != ".":
        inside = inside.removeprefix(facts.workdir + "/")
    return f'"$PWD"/{q(inside + "/bentoml")}'


def features_commands(facts: CiProject, data_from: Stage | None = None) -> list[str]:
    """The environment's online features, before a service is released there: the data files
    (from `data_from`'s remote when the job's own does not hold them yet), then each view."""
    if not facts.views:
        return []
    pull = f"SHIPYARD_PROFILE={q(data_from.profile)} {PULL_DATA}" if data_from else PULL_DATA
    return [pull, *(f"shipyard run materialize-features {q(v)}" for v in facts.views)]


def deploy_commands(facts: CiProject, stage: Stage) -> list[str]:
    """Release into the first environment: its online features, then its rollout starts with
    the new challenger, or the service is rebuilt on the new champion (and hot-reloaded where
    it runs)."""
    out = features_commands(facts)
    for service in facts.services:
        rollout = stage.services_with_rollout.get(service)
        out.append(
            f"shipyard rollout start {q(rollout)}"
            if rollout
            else f"shipyard build {q(service)} --deploy"
        )
    return out


def promote_commands(facts: CiProject, source: Stage, target: Stage, sha: str) -> list[str]:
    """The target's online features (from the data the source validated), then the
    promotion of each service."""
    return [
        *features_commands(facts, data_from=source),
        *(
            f"shipyard promote {q(s)} --from {q(source.profile)} --to {q(target.profile)} "
            f'--approved-by "$ACTOR" --reason "pipeline of {sha}"'
            for s in facts.services
        ),
    ]


def abort_commands(stage: Stage, why: str) -> list[str]:
    return [f'shipyard rollout abort {q(r)} --reason "{why}"' for r in stage.rollouts]


def telemetry_env() -> dict[str, str]:
    return dict(TELEMETRY_OFF)


def spec_env(facts: CiProject) -> dict[str, str]:
    """SHIPYARD_SPEC when the spec is not the default file name."""
    return {} if facts.spec_file == "pipelines.yaml" else {"SHIPYARD_SPEC": facts.spec_file}


def job_id(prefix: str, profile: str) -> str:
    """A job name for an environment: letters, digits, `-` and `_` only."""
    clean = "".join(c if c.isalnum() or c in "-_" else "-" for c in profile)
    return f"{prefix}-{clean}"


def next_pairs(facts: CiProject) -> list[tuple[Stage, Stage]]:
    return list(zip(facts.stages, facts.stages[1:], strict=False))


# -- GitHub Actions -------------------------------------------------------------------------


def github_workflow(facts: CiProject, options: RenderOptions) -> dict[str, Any]:
    """The workflow `.github/workflows/shipyard.yml`."""
    paths = [*facts.watched, f".github/workflows/{GITHUB_FILE}"]
    jobs = _GithubJobs(facts, options).build()
    doc: dict[str, Any] = {
        "name": f"shipyard {facts.project}",
        "on": {
            "push": {"branches": [options.branch], "paths": paths},
            "pull_request": {"paths": paths},
            "workflow_dispatch": {},
        },
        "permissions": {"contents": "read"},
        "env": {**telemetry_env(), **spec_env(facts)},
    }
    if facts.workdir != ".":
        doc["defaults"] = {"run": {"working-directory": facts.workdir}}
    doc["jobs"] = jobs
    return doc


RELEASE_IF = "github.event_name != 'pull_request' && github.ref == 'refs/heads/{branch}'"


class _GithubJobs:
    def __init__(self, facts: CiProject, options: RenderOptions) -> None:
        self.facts = facts
        self.options = options
        self.jobs: dict[str, Any] = {}
        self.state: dict[str, str] = {}  # profile -> the artifact with its latest state

    def build(self) -> dict[str, Any]:
        f = self.facts
        first = f.stages[0]
        self._validate()
        self._plan_diff()
        self._job("test", ["validate"], [tools_script("test"), *test_commands(self.options)])
        self.jobs["test"]["steps"].append(self._upload("coverage", f.at_root("coverage.xml")))
        self._job("quality", ["validate"], [tools_script("quality"), *quality_commands(f)])
        before = "validate"
        if f.datasets:
            self._job("data", [before], data_commands(f), stage=first)
            before = "data"
        if f.models:
            self._job("train", [before], train_commands(f), stage=first)
            before = "train"
        if not f.services:
            return self.jobs
        release = RELEASE_IF.format(branch=self.options.branch)
        self._job(
            "build", sorted({before, "test", "quality"}), [build_script(f, first)], first, release
        )
        deploy = job_id("deploy", first.profile)
        self._job(deploy, ["build"], deploy_commands(f, first), first, release, release=True)
        self._rollback(deploy, first)
        previous = deploy
        for source, target in next_pairs(f):
            promote = job_id("promote", target.profile)
            sha = "${GITHUB_SHA}"
            self._job(
                promote,
                [previous],
                promote_commands(f, source, target, sha),
                target,
                release,
                release=True,
                source=source,
            )
            self._rollback(promote, target)
            previous = promote
        return self.jobs

    # -- jobs ---------------------------------------------------------------------------

    def _validate(self) -> None:
        report = "shipyard-validate.json"
        steps = [
            *self._setup(),
            {"name": "validate the spec", "run": "shipyard validate"},
            {
                "name": "validation report (JSON)",
                "if": "always()",
                "run": f"shipyard validate --format json > {report}",
            },
            self._upload("shipyard-validate", self.facts.at_root(report)),
        ]
        self.jobs["validate"] = {"runs-on": "ubuntu-latest", "steps": steps}

    def _plan_diff(self) -> None:
        tmp = "$RUNNER_TEMP"
        diff_cmd = (
            f'shipyard ci plan-diff "{tmp}/base-plan.json" "{tmp}/head-plan.json" '
            f'--format markdown --missing-base-ok > "{tmp}/{PLAN_DIFF_FILE}"'
        )
        steps = [
            *self._setup(full_history=True),
            {
                "name": "plan the head",
                "run": f'shipyard plan --offline --json -o "{tmp}/head-plan.json" > /dev/null',
            },
            {
                "name": "plan the base",
                "env": {"BASE_SHA": "${{ github.event.pull_request.base.sha }}"},
                "run": "\n".join(
                    [
                        "head=$(git rev-parse HEAD)",
                        'git checkout --quiet "$BASE_SHA"',
                        f'shipyard plan --offline --json -o "{tmp}/base-plan.json" > /dev/null '
                        '|| echo "the base has no valid spec: every deployment is new"',
                        'git checkout --quiet "$head"',
                    ]
                ),
            },
            {
                "name": "plan diff",
                "run": f'{diff_cmd}\ncat "{tmp}/{PLAN_DIFF_FILE}" >> "$GITHUB_STEP_SUMMARY"',
            },
            {
                "name": "comment on the pull request",
                # a fork's token cannot comment: the job summary has the diff
                "if": "github.event.pull_request.head.repo.full_name == github.repository",
                "env": {
                    "GH_TOKEN": "${{ github.token }}",
                    "PR": "${{ github.event.pull_request.number }}",
                },
                "run": (
                    f'gh pr comment "$PR" --repo "$GITHUB_REPOSITORY" --edit-last '
                    f'--body-file "{tmp}/{PLAN_DIFF_FILE}" '
                    f'|| gh pr comment "$PR" --repo "$GITHUB_REPOSITORY" '
                    f'--body-file "{tmp}/{PLAN_DIFF_FILE}"'
                ),
            },
        ]
        self.jobs["plan-diff"] = {
            "if": "github.event_name == 'pull_request'",
            "needs": ["validate"],
            "runs-on": "ubuntu-latest",
            "permissions": {"contents": "read", "pull-requests": "write"},
            "steps": steps,
        }

    def _job(
        self,
        name: str,
        needs: list[str],
        commands: list[str],
        stage: Stage | None = None,
        condition: str | None = None,
        *,
        release: bool = False,
        source: Stage | None = None,
    ) -> None:
        job: dict[str, Any] = {}
        if condition:
            job["if"] = condition
        job["needs"] = needs
        job["runs-on"] = self.options.runs_on if release else "ubuntu-latest"
        if release and stage is not None:
            job["environment"] = {"name": stage.profile}
            job["concurrency"] = {"group": f"shipyard-{stage.profile}", "cancel-in-progress": False}
        env: dict[str, str] = {}
        if stage is not None:
            env["SHIPYARD_PROFILE"] = stage.profile
        if release:
            env["SHIPYARD_ACTOR"] = "${{ github.triggering_actor }}"
        if name == "build" and stage is not None and stage.registry:
            env["REGISTRY_USERNAME"] = "${{ secrets.REGISTRY_USERNAME }}"
            env["REGISTRY_PASSWORD"] = "${{ secrets.REGISTRY_PASSWORD }}"
        steps = self._setup()
        if source is not None:
            assert stage is not None
            steps += self._download(source)
            if stage.approval:
                job["permissions"] = {"contents": "read", "actions": "read"}
                steps.append(self._approver(stage))
            else:
                env["ACTOR"] = "${{ github.triggering_actor }}"
        elif stage is not None:
            steps += self._download(stage)
        if env:
            job["env"] = env
        steps += [{"run": command} for command in commands]
        if stage is not None:
            steps += self._keep_state(stage, name, always=release)
        job["steps"] = steps
        self.jobs[name] = job

    def _rollback(self, after: str, stage: Stage) -> None:
        """Abort the stage's rollouts when the job releasing into it failed."""
        if not stage.rollouts:
            return
        name = job_id("rollback", stage.profile)
        steps = [*self._setup(), *self._download(stage)]
        steps += [
            {"if": "${{ !cancelled() }}", "run": command}
            for command in abort_commands(stage, f"{after} failed in run ${{GITHUB_RUN_ID}}")
        ]
        steps += self._keep_state(stage, name, always=True, latest=False)
        self.jobs[name] = {
            # not an `environment:`: a rollback never waits for an approval
            "if": f"failure() && needs.{after}.result == 'failure'",
            "needs": [after],
            "runs-on": self.options.runs_on,
            "concurrency": {"group": f"shipyard-{stage.profile}", "cancel-in-progress": False},
            "env": {"SHIPYARD_PROFILE": stage.profile, "SHIPYARD_ACTOR": "github-actions"},
            "steps": steps,
        }

    # -- steps --------------------------------------------------------------------------

    def _setup(self, full_history: bool = False) -> list[dict[str, Any]]:
        f = self.facts
        checkout: dict[str, Any] = {"uses": CHECKOUT}
        if full_history:
            checkout["with"] = {"fetch-depth": 0}
        cache_key = f.at_root("requirements.lock" if f.has_lock else f.spec_file)
        return [
            checkout,
            {
                "uses": SETUP_PYTHON,
                "with": {
                    "python-version": PYTHON,
                    "cache": "pip",
                    "cache-dependency-path": cache_key,
                },
            },
            {"name": "install", "run": install_script()},
            *self._variables(),
        ]

    def _variables(self) -> list[dict[str, Any]]:
        """The spec's variables and secrets from the repository's secrets, exported only when
        set: an empty value would hide a `${NAME:-default}`'s default."""
        names = self.facts.variables
        if not names:
            return []
        script = "\n".join(
            [
                "for name in " + " ".join(names) + "; do",
                '  if [ -n "${!name}" ]; then',
                '    { echo "$name<<SHIPYARD_EOF"; echo "${!name}"; echo "SHIPYARD_EOF"; } '
                '>> "$GITHUB_ENV"',
                "  fi",
                "done",
            ]
        )
        return [
            {
                "name": "the spec's variables and secrets",
                "shell": "bash",
                "env": {name: f"${{{{ secrets.{name} }}}}" for name in names},
                "run": script,
            }
        ]

    def _upload(self, name: str, path: str, *, always: bool = True) -> dict[str, Any]:
        step: dict[str, Any] = {"uses": UPLOAD}
        if always:
            step["if"] = "always()"
        step["with"] = {
            "name": name,
            "path": path,
            "if-no-files-found": "warn",
            "include-hidden-files": True,
            "retention-days": 7,
        }
        return step

    def _download(self, stage: Stage) -> list[dict[str, Any]]:
        artifact = self.state.get(stage.profile)
        if artifact is None or not stage.state_in_repo:
            return []
        return [
            {
                "name": f"state of {stage.profile}",
                "uses": DOWNLOAD,
                "with": {"name": artifact, "path": stage.state_dir},
            }
        ]

    def _keep_state(
        self, stage: Stage, job: str, *, always: bool, latest: bool = True
    ) -> list[dict[str, Any]]:
        """Upload the stage's state folder; `latest`: the next job of the stage starts from
        it (a rollback's, which runs only after a failure, is kept but never followed)."""
        if not stage.state_in_repo:
            return []
        artifact = f"state-{job}"
        if latest:
            self.state[stage.profile] = artifact
        return [self._upload(artifact, f"{stage.state_dir}/", always=always)]

    def _approver(self, stage: Stage) -> dict[str, Any]:
        """Who approved the deployment into the stage (its required reviewers decide): the
        `--approved-by` of the promotion."""
        query = (
            '[.[] | select(.state == "approved") '
            "| select(any(.environments[]; .name == $ENV.ENVIRONMENT)) | .user.login] "
            '| last // ""'
        )
        script = "\n".join(
            [
                "approver=$(gh api "
                '"repos/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID/approvals" '
                f"--jq {q(query)})",
                'if [ -z "$approver" ]; then',
                '  echo "::error::nobody approved environment $ENVIRONMENT: give it required '
                'reviewers (Settings > Environments)"',
                "  exit 1",
                "fi",
                'echo "ACTOR=$approver" >> "$GITHUB_ENV"',
            ]
        )
        return {
            "name": "who approved",
            "env": {"GH_TOKEN": "${{ github.token }}", "ENVIRONMENT": stage.profile},
            "run": script,
        }


# -- GitLab CI ------------------------------------------------------------------------------

MR = '$CI_PIPELINE_SOURCE == "merge_request_event"'


def gitlab_pipeline(facts: CiProject, options: RenderOptions) -> dict[str, Any]:
    """The pipeline `.gitlab-ci.yml`."""
    return _GitlabJobs(facts, options).build()


class _GitlabJobs:
    def __init__(self, facts: CiProject, options: RenderOptions) -> None:
        self.facts = facts
        self.options = options
        self.on_branch = f'$CI_COMMIT_BRANCH == "{options.branch}"'
        self.jobs: dict[str, Any] = {}
        self.stages: list[str] = []

    def build(self) -> dict[str, Any]:
        f = self.facts
        first = f.stages[0]
        changes = [*f.watched, GITLAB_FILE]
        doc: dict[str, Any] = {
            "workflow": {
                "rules": [
                    {"if": MR, "changes": changes},
                    {"if": self.on_branch, "changes": changes},
                    {"if": '$CI_PIPELINE_SOURCE == "web"'},
                ]
            },
            "stages": self.stages,
            "variables": {
                **telemetry_env(),
                **spec_env(f),
                "PIP_CACHE_DIR": "$CI_PROJECT_DIR/.cache/pip",
            },
            "default": {
                "image": GITLAB_IMAGE,
                "cache": {
                    "key": {
                        "files": [f.at_root("requirements.lock" if f.has_lock else f.spec_file)]
                    },
                    "paths": [".cache/pip"],
                },
                "before_script": self._setup(),
            },
        }
        report = "shipyard-validate.json"
        self._job(
            "validate",
            "validate",
            [],
            [f"shipyard validate --format json > {report} || true", "shipyard validate"],
            artifacts={"when": "always", "paths": [f.at_root(report)], "expire_in": "1 week"},
        )
        self._plan_diff()
        self._job(
            "test",
            "test",
            ["validate"],
            [tools_script("test"), *test_commands(self.options)],
            artifacts={
                "when": "always",
                "reports": {
                    "coverage_report": {
                        "coverage_format": "cobertura",
                        "path": f.at_root("coverage.xml"),
                    }
                },
            },
            extra={"coverage": r"/^TOTAL.*\s(\d+(?:\.\d+)?)%/"},
        )
        self._job("quality", "test", ["validate"], [tools_script("quality"), *quality_commands(f)])
        before = ["validate"]
        if f.datasets:
            self._job("data", "data", before, data_commands(f), stage=first)
            before = ["data"]
        if f.models:
            self._job("train", "train", before, train_commands(f), stage=first)
            before = ["train"]
        if f.services:
            self._release(first, sorted({*before, "test", "quality"}))
        doc.update(self.jobs)
        return doc

    def _release(self, first: Stage, needs: list[str]) -> None:
        f = self.facts
        self._job(
            "build",
            "build",
            needs,
            [build_script(f, first)],
            stage=first,
            rules=[{"if": self.on_branch}],
            extra={
                "services": ["docker:27-dind"],
                "before_script": [
                    "apt-get update -qq && apt-get install -y -qq --no-install-recommends "
                    "docker.io > /dev/null",
                    *self._setup(),
                ],
            },
            variables={"DOCKER_HOST": "tcp://docker:2375", "DOCKER_TLS_CERTDIR": ""},
        )
        deploy = job_id("deploy", first.profile)
        self._job(
            deploy,
            deploy,
            ["build"],
            deploy_commands(f, first),
            stage=first,
            rules=[{"if": self.on_branch}],
            release=True,
        )
        self._rollback(deploy, first)
        previous = deploy
        for source, target in next_pairs(f):
            promote = job_id("promote", target.profile)
            rule: dict[str, Any] = {"if": self.on_branch}
            if target.approval:
                # the person who plays the job approves: protect the environment so that only
                # the approvers may (Settings > CI/CD > Protected environments)
                rule.update({"when": "manual", "allow_failure": False})
            self._job(
                promote,
                job_id("deploy", target.profile),
                [previous],
                promote_commands(f, source, target, "$CI_COMMIT_SHA"),
                stage=target,
                rules=[rule],
                release=True,
                variables={"ACTOR": "$GITLAB_USER_LOGIN"},
            )
            self._rollback(promote, target)
            previous = promote

    def _plan_diff(self) -> None:
        note = (
            'if [ -n "${SHIPYARD_NOTE_TOKEN:-}" ]; then '
            "curl --fail --silent --show-error --request POST "
            '--header "PRIVATE-TOKEN: $SHIPYARD_NOTE_TOKEN" '
            f'--data-urlencode "body@{PLAN_DIFF_FILE}" '
            '"$CI_API_V4_URL/projects/$CI_PROJECT_ID/merge_requests/$CI_MERGE_REQUEST_IID/notes" '
            "> /dev/null; "
            'else echo "SHIPYARD_NOTE_TOKEN is not set: the plan diff is the job\'s artifact"; fi'
        )
        self._job(
            "plan-diff",
            "test",
            ["validate"],
            [
                "shipyard plan --offline --json -o head-plan.json > /dev/null",
                'git checkout --quiet "$CI_MERGE_REQUEST_DIFF_BASE_SHA"',
                "shipyard plan --offline --json -o base-plan.json > /dev/null "
                '|| echo "the base has no valid spec: every deployment is new"',
                'git checkout --quiet "$CI_COMMIT_SHA"',
                "shipyard ci plan-diff base-plan.json head-plan.json --format markdown "
                f"--missing-base-ok > {PLAN_DIFF_FILE}",
                f"cat {PLAN_DIFF_FILE}",
                note,
            ],
            rules=[{"if": MR}],
            variables={"GIT_DEPTH": "0"},
            artifacts={
                "when": "always",
                "expose_as": "plan diff",
                "paths": [self.facts.at_root(PLAN_DIFF_FILE)],
                "expire_in": "1 week",
            },
        )

    def _rollback(self, after: str, stage: Stage) -> None:
        if not stage.rollouts:
            return
        name = job_id("rollback", stage.profile)
        why = f"{after} failed in pipeline $CI_PIPELINE_ID"
        # each abort runs even when one before it failed: no rollout is left split
        script = [f"{command} || failed=1" for command in abort_commands(stage, why)]
        self._job(
            name,
            name,
            [after],
            ["failed=0", *script, 'test "$failed" = 0'],
            stage=stage,
            rules=[{"if": self.on_branch, "when": "on_failure"}],
            resource_group=f"shipyard-{stage.profile}",
            variables={"SHIPYARD_ACTOR": "gitlab-ci"},
        )

    def _job(
        self,
        name: str,
        stage_name: str,
        needs: list[str],
        script: list[str],
        *,
        stage: Stage | None = None,
        rules: list[dict[str, Any]] | None = None,
        release: bool = False,
        artifacts: dict[str, Any] | None = None,
        variables: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
        resource_group: str | None = None,
    ) -> None:
        if stage_name not in self.stages:
            self.stages.append(stage_name)
        job: dict[str, Any] = {"stage": stage_name, "needs": needs}
        if rules:
            job["rules"] = rules
        env: dict[str, str] = {}
        if stage is not None:
            env["SHIPYARD_PROFILE"] = stage.profile
        if release:
            assert stage is not None
            env["SHIPYARD_ACTOR"] = "$GITLAB_USER_LOGIN"
            job["environment"] = {"name": stage.profile}
            resource_group = f"shipyard-{stage.profile}"
        env.update(variables or {})
        if env:
            job["variables"] = env
        if resource_group:
            job["resource_group"] = resource_group
        job.update(extra or {})
        job["script"] = script
        if stage is not None and stage.state_in_repo and artifacts is None:
            artifacts = {
                "when": "always" if release or name.startswith("rollback") else "on_success",
                "paths": [f"{stage.state_dir}/"],
                "expire_in": "1 week",
            }
        if artifacts:
            job["artifacts"] = artifacts
        self.jobs[name] = job

    def _setup(self) -> list[str]:
        cd = [] if self.facts.workdir == "." else [f"cd {q(self.facts.workdir)}"]
        return [*cd, *install_script().split("\n")]
