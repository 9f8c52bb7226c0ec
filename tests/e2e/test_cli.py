"""The README's commands, run as a user would: a subprocess per command, exit codes, output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from support import ROOT

pytestmark = pytest.mark.e2e
SHIPYARD = str(Path(sys.executable).with_name("shipyard"))


def run(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SHIPYARD, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
        check=False,
    )


def test_validate_the_demo_spec() -> None:
    done = run("validate", cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert (
        "pipelines.yaml: ok (1 dataset, 2 feature views, 1 model, 1 service, 1 alert route, "
        "1 rollout, 1 A/B test, 1 monitor)" in done.stdout
    )


def test_validate_reports_every_problem_with_position_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "pipelines.yaml").write_text(
        "project: demo\ndatasets:\n  a:\n    path: a.parquet\n    schema: {id: int}\n"
        "    key: idd\n    expectations:\n      - not_nul: [id]\n"
    )
    done = run("validate", cwd=tmp_path)
    assert done.returncode == 1
    expected = "pipelines.yaml:6:10: error[E204] dataset 'a': key column 'idd' is not in its schema"
    assert expected in done.stderr
    assert "pipelines.yaml:8:9: error[E105]" in done.stderr and "did you mean 'not_null'?" in (
        done.stderr
    )
    as_json = run("validate", "--format", "json", cwd=tmp_path)
    assert as_json.returncode == 1
    codes = [d["code"] for d in json.loads(as_json.stdout)]
    assert codes == ["E204", "E105"]


def test_version_names_shipyard_and_its_stack(tmp_path: Path) -> None:
    from importlib.metadata import version

    result = run("--version", cwd=tmp_path)
    assert result.returncode == 0
    line = result.stdout.strip()
    assert line.startswith(f"shipyard {version('shipyard')} (prefect {version('prefect')}, ")
    assert f"mlflow {version('mlflow')}" in line and f"bentoml {version('bentoml')}" in line


@pytest.mark.parametrize(
    "args",
    [("nope",), ("validate", "--frobnicate"), ("models", "promote", "churn"), ()],
    ids=["unknown-command", "unknown-option", "missing-argument", "no-command"],
)
def test_usage_errors_exit_1(tmp_path: Path, args: tuple[str, ...]) -> None:
    """1 is the user's mistake; 2 stays for Shipyard's own failures."""
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("usage: shipyard") and "error:" in result.stderr


def test_missing_spec_file(tmp_path: Path) -> None:
    done = run("validate", cwd=tmp_path)
    assert done.returncode == 1
    assert "error[E003] spec file 'pipelines.yaml' not found" in done.stderr


def test_plan_text_and_json() -> None:
    text = run("plan", "--offline", cwd=ROOT)
    assert text.returncode == 0, text.stderr
    lines = [" ".join(line.split()) for line in text.stdout.splitlines()]
    assert "dataset.customers validate -> version [validate-dataset/customers]" in lines
    assert (
        "model.churn training-set -> train -> evaluate -> gate -> register [train-model/churn]"
    ) in lines
    assert "after dataset.customers, features.repo" in lines
    assert "service.churn-api build -> deploy [build-service/churn-api]" in lines
    assert "after model.churn, features.repo" in lines, "the service follows its model"
    assert "rollout.churn-api load -> smoke-test -> walk -> decide [roll-out/churn-api]" in lines
    assert "after service.churn-api" in lines, "the rollout follows its service"
    plan = json.loads(run("plan", "--json", "--offline", cwd=ROOT).stdout)
    assert plan["schema_version"] == 2
    assert list(plan["deployments"]) == [
        "validate-dataset/customers",
        "materialize-features/customer_profile",
        "materialize-features/customer_usage",
        "train-model/churn",
        "build-service/churn-api",
        "roll-out/churn-api",
        "analyze-ab-test/churn-v2",
        "monitor-service/churn-api",
    ]
    first = plan["deployments"]["validate-dataset/customers"]
    assert first["entrypoint"] == "flows/validate_dataset.py:validate_dataset"
    assert first["parameters"] == {"dataset": "customers"}
    assert plan["steps"][first["step"]]["kind"] == "dataset"


def test_plan_file_is_written_and_applied_only_while_the_spec_compiles_to_it(
    make_project: Callable[..., Path],
) -> None:
    spec = make_project(rows=0)
    written = run("plan", "-o", "plan.json", "--offline", cwd=spec.parent)
    assert written.returncode == 0, written.stderr
    assert "wrote plan.json" in written.stderr
    plan = json.loads((spec.parent / "plan.json").read_text())
    spec.write_text(spec.read_text().replace("row_count: {min: 10}", "row_count: {min: 11}"))
    stale = run("apply", "--plan", "plan.json", cwd=spec.parent)
    assert stale.returncode == 1
    assert f"was written from spec {plan['spec_digest'][:12]}, but pipelines.yaml now " in (
        stale.stderr
    )
    plan["schema_version"] = 1
    (spec.parent / "old.json").write_text(json.dumps(plan))
    old = run("apply", "--plan", "old.json", cwd=spec.parent)
    assert old.returncode == 1
    assert "schema version 1; this Shipyard reads plans of schema version 2" in old.stderr
    assert "Traceback" not in stale.stderr + old.stderr


def test_plan_without_a_server_says_it_did_not_compare(make_project: Callable[..., Path]) -> None:
    spec = make_project(rows=0)
    done = run("plan", cwd=spec.parent)
    assert done.returncode == 0, done.stderr
    assert "note: not compared with what is applied" in done.stderr
    assert "is not reachable" in done.stderr


def test_committed_json_schema_is_current() -> None:
    done = run("schema", cwd=ROOT)
    assert done.returncode == 0
    committed = (ROOT / "pipelines.schema.json").read_text()
    assert json.loads(done.stdout) == json.loads(committed), (
        "regenerate with `shipyard schema -o pipelines.schema.json`"
    )
    assert (
        (ROOT / "pipelines.yaml")
        .read_text()
        .startswith("# yaml-language-server: $schema=./pipelines.schema.json")
    )


def test_run_versions_and_restore(make_project: Callable[..., Path]) -> None:
    spec = make_project(rows=80)
    project = spec.parent
    first = run("run", "validate-dataset", "customers", cwd=project)
    assert first.returncode == 0, first.stderr
    first_md5 = json.loads(first.stdout[first.stdout.index("{") : first.stdout.rindex("}") + 1])[
        "md5"
    ]

    data = project / "data" / "customers.parquet"
    frame = pd.read_parquet(data)
    frame.loc[0, "monthly_charges"] = 9999.0
    frame.to_parquet(data, index=False)
    failed = run("run", "validate-dataset", "customers", cwd=project)
    assert failed.returncode == 1
    assert "between(monthly_charges, 0.0..500.0)" in failed.stderr and "9999.0" in failed.stderr
    assert "Traceback" not in failed.stderr

    versions = run("data", "versions", "customers", cwd=project)
    assert versions.returncode == 0
    assert first_md5[:10] in versions.stdout
    restored = run("data", "restore", "customers", first_md5[:8], cwd=project)
    assert restored.returncode == 0, restored.stderr
    assert "restored data/customers.parquet" in restored.stdout
    assert pd.read_parquet(data)["monthly_charges"].max() < 500


def test_unknown_flow_gets_a_suggestion(make_project: Callable[..., Path]) -> None:
    spec = make_project(rows=0)
    done = run("run", "validate-dataset", "customer", cwd=spec.parent)
    assert done.returncode == 1
    assert "did you mean 'validate-dataset/customers'?" in done.stderr


def test_internal_errors_exit_2_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from shipyard import cli

    def broken(args: object) -> int:
        raise RuntimeError("unexpected")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "cmd_validate", broken)
    monkeypatch.delenv("SHIPYARD_DEBUG", raising=False)
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["validate"].set_defaults(func=broken)  # type: ignore[union-attr]
    assert cli.main(["validate"]) == 2
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: unexpected" in err and "Traceback" not in err
    assert "Traceback" in (tmp_path / ".shipyard" / "logs" / "internal-errors.log").read_text()


def test_spec_reference_in_docs_is_current() -> None:
    done = run("schema", "--format", "markdown", cwd=ROOT)
    assert done.returncode == 0
    assert done.stdout == (ROOT / "docs" / "spec-reference.md").read_text(), (
        "regenerate with `shipyard schema --format markdown -o docs/spec-reference.md`"
    )


def test_train_then_read_the_registry(make_project: Callable[..., Path]) -> None:
    from support import MODEL_SPEC, SPEC, free_port

    spec = make_project(
        rows=800, spec=SPEC.format(port=free_port()) + MODEL_SPEC.format(threshold=">= 0.6")
    )
    project = spec.parent
    trained = run("run", "train-model", "churn", cwd=project)
    assert trained.returncode == 0, trained.stderr[-3000:]
    listed = json.loads(run("models", "list", "--json", cwd=project).stdout)
    assert listed == [
        {
            "model": "churn",
            "registered_name": "test-project.churn",
            "versions": 1,
            "champion": "1",
            "champion_semver": "1.0.0",
            "challenger": None,
            "challenger_semver": None,
        }
    ]
    shown = run("models", "show", "churn", cwd=project)
    assert "v1    1.0.0" in shown.stdout and "@champion" in shown.stdout
    assert "roc_auc=" in shown.stdout
    unexplained = run("models", "promote", "churn", "1", cwd=project)
    assert unexplained.returncode == 1 and "--reason" in unexplained.stderr
    blank = run("models", "promote", "churn", "1", "--reason", " ", cwd=project)
    assert blank.returncode == 1 and "needs a reason" in blank.stderr
    promoted = run("models", "promote", "churn", "1", "--reason", "first one", cwd=project)
    assert "already is the champion" in promoted.stdout
    unknown = run("models", "show", "chrun", cwd=project)
    assert unknown.returncode == 1 and "did you mean 'churn'?" in unknown.stderr
    no_force = run("run", "validate-dataset", "customers", "--force", cwd=project)
    assert no_force.returncode == 1 and "has no --force option" in no_force.stderr
