"""Promotion from staging to production on real registries, Bento stores and services.

One module-scoped project with two environments, each with its own state folder (registry,
data catalog, DVC remote, served service): staging trains and serves; `promote` copies what
staging serves into production and releases it there. The files production serves are
checked to be staging's, byte for byte; a release that fails to deploy restores the previous
champion.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import MODEL_SPEC, SPEC, free_port, run_flow

from shipyard.audit import AuditLog
from shipyard.compiler import Plan, ServiceStep
from shipyard.errors import ShipyardError
from shipyard.settings import StateLayout

pytestmark = pytest.mark.usefixtures("prefect_harness")

MODEL = "test-project.churn"
PROFILES = """\
profile: staging
profiles:
  staging:
    state_dir: .shipyard-staging
  production:
    state_dir: .shipyard-production
    serving: {{port_offset: 1}}
environments:
  - profile: staging
  - profile: production
    approval: true
"""
SERVICE = """
services:
  churn-api:
    model: churn
    port: {port}
"""


@dataclass
class Project:
    spec: Path
    staging: Plan
    production: Plan


def _plans(spec: Path) -> tuple[Plan, Plan]:
    from shipyard.project import load_project

    plans = [load_project(spec, profile=p).require_plan() for p in ("staging", "production")]
    return plans[0], plans[1]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[Project]:
    from flows.build_service import build_service
    from flows.train_model import train_model
    from shipyard.demo_data import write_customers
    from shipyard.serving import deploy

    folder = tmp_path_factory.mktemp("promote")
    header = re.sub(r"profiles:\n  local:\n    prefect: \{port: \d+\}\n", "", SPEC.format(port=1))
    text = PROFILES.format() + header + MODEL_SPEC.format(threshold=">= 0.5")
    text += SERVICE.format(port=free_port())
    spec = folder / "pipelines.yaml"
    spec.write_text(text)
    write_customers(folder / "data" / "customers.parquet", rows=600)
    staging, production = _plans(spec)
    assert staging.runtime.state_dir != production.runtime.state_dir
    assert (
        staging.named(ServiceStep, "churn-api").port + 1
        == production.named(ServiceStep, "churn-api").port
    )
    assert run_flow(staging, train_model, model="churn", force=True).is_completed()
    assert run_flow(staging, build_service, service="churn-api").is_completed()
    try:
        yield Project(spec, staging, production)
    finally:
        for plan in (staging, production):
            deploy.stop(plan.named(ServiceStep, "churn-api"))


def _promote(project: Project, **options: object) -> int:
    from shipyard.delivery.promote import promote_command

    spec = str(project.spec)
    return promote_command(spec, "churn-api", "staging", "production", **options)  # type: ignore[arg-type]


def _served(plan: Plan) -> dict[str, object]:
    from shipyard.serving import deploy

    info = deploy.info(plan.named(ServiceStep, "churn-api"))
    assert info is not None, f"churn-api is not answering in {plan.profile}"
    return info


def _aliases(plan: Plan) -> dict[str, str]:
    import mlflow

    mlflow.set_tracking_uri(plan.blocks.mlflow.tracking_uri)
    model = mlflow.MlflowClient().get_registered_model(MODEL)
    return {alias: str(version) for alias, version in model.aliases.items()}


def _digest(plan: Plan, version: str) -> str:
    import tempfile

    import mlflow

    from shipyard.delivery.promote import files_digest

    mlflow.set_tracking_uri(plan.blocks.mlflow.tracking_uri)
    with tempfile.TemporaryDirectory() as scratch:
        path = mlflow.artifacts.download_artifacts(f"models:/{MODEL}/{version}", dst_path=scratch)
        return files_digest(Path(path))


def _bentos(plan: Plan) -> list[str]:
    """The Bentos of churn-api in the environment's own Bento store."""
    store = StateLayout(plan.runtime.state_dir).bentoml_home / "bentos" / "churn-api"
    return sorted(f"churn-api:{p.name}" for p in store.iterdir() if p.is_dir())


def _bento_digest(plan: Plan, tag: str) -> str:
    from shipyard.delivery.promote import files_digest

    _, _, version = tag.partition(":")
    home = StateLayout(plan.runtime.state_dir).bentoml_home
    return files_digest(home / "bentos" / "churn-api" / version / "src")


def _serves_stagings_bento(project: Project) -> None:
    """Production serves the very Bento staging serves: same tag, same files, none built."""
    tag = _served(project.staging)["bento"]
    assert _served(project.production)["bento"] == tag
    assert isinstance(tag, str) and tag in _bentos(project.production)
    assert _bento_digest(project.production, tag) == _bento_digest(project.staging, tag)


def test_refusals_leave_production_untouched(project: Project) -> None:
    with pytest.raises(ShipyardError, match="needs an approval"):
        _promote(project)
    with pytest.raises(ShipyardError, match="never passed 'staging'"):
        _promote(project, version="7", approved_by="ops")
    from shipyard.delivery.promote import promote_command

    with pytest.raises(ShipyardError, match="does not come right after"):
        promote_command(str(project.spec), "churn-api", "production", "staging")
    with pytest.raises(ShipyardError, match="not an environment"):
        promote_command(str(project.spec), "churn-api", "staging", "prod")
    assert not _has_model(project.production)


def _has_model(plan: Plan) -> bool:
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(plan.blocks.mlflow.tracking_uri)
    try:
        mlflow.MlflowClient().get_registered_model(MODEL)
    except MlflowException:
        return False
    return True


def test_first_promotion_serves_staging_files_in_production(project: Project) -> None:
    assert _promote(project, approved_by="ops", reason="first release") == 0
    assert _aliases(project.production) == {"champion": "1"}
    assert _digest(project.production, "1") == _digest(project.staging, "1")
    assert not (Path.cwd() / "mlruns").exists()  # the copy's artifacts are production's own
    served = _served(project.production)
    assert [v["version"] for v in served["variants"]] == ["1"]  # type: ignore[index]
    _serves_stagings_bento(project)
    assert _bentos(project.production) == [served["bento"]]  # never one built there
    # the training run's own artifacts came along: monitoring reads its reference profile
    import mlflow

    from shipyard.compiler.monitoring import PROFILE_ARTIFACT

    mlflow.set_tracking_uri(project.production.blocks.mlflow.tracking_uri)
    run = mlflow.MlflowClient().get_model_version(MODEL, "1").run_id
    profile = mlflow.artifacts.download_artifacts(run_id=run, artifact_path=PROFILE_ARTIFACT)
    assert Path(profile).stat().st_size > 0
    # the data version staging trained on is recorded in production, on its own remote
    from shipyard.data.versioning import VersionCatalog

    catalogs = [
        VersionCatalog(StateLayout(p.runtime.state_dir).catalog).versions("customers")
        for p in (project.staging, project.production)
    ]
    assert [v.md5 for v in catalogs[1]] == [catalogs[0][-1].md5]
    remote = Path(project.production.blocks.dvc_remote.url)
    md5 = catalogs[1][0].md5
    assert (remote / "files" / "md5" / md5[:2] / md5[2:]).is_file()
    for plan in (project.staging, project.production):
        entries = AuditLog(StateLayout(plan.runtime.state_dir).catalog).entries("service.churn-api")
        promoted = [e for e in entries if e.action == "promote-release"]
        assert promoted[-1].detail["outcome"] == "released"
        assert promoted[-1].detail["approved_by"] == "ops"


def test_promoting_again_reuses_the_copy(project: Project) -> None:
    assert _promote(project, approved_by="ops") == 0
    assert _aliases(project.production) == {"champion": "1"}
    _serves_stagings_bento(project)


def test_a_bento_the_spec_changed_since_it_passed_is_refused(project: Project) -> None:
    from shipyard.delivery.promote import Environments, bento_to_move, passed_release

    before = _bentos(project.production)
    changed = {
        key: s.model_copy(update={"features": ["tenure_months"]})
        if isinstance(s, ServiceStep)
        else s
        for key, s in project.production.steps.items()
    }
    target = project.production.model_copy(update={"steps": changed})
    envs = Environments(
        project.staging, target, project.staging.environments[0], target.environments[1]
    )
    release = passed_release(project.staging, "churn-api")
    with pytest.raises(ShipyardError, match=r"never passed 'staging'.*changed its features"):
        bento_to_move(envs, release, print)
    assert _bentos(project.production) == before


def test_a_failed_release_restores_the_champion(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.build_service import build_service
    from flows.train_model import train_model
    from shipyard import registry
    from shipyard.delivery import promote

    staging = project.staging
    assert run_flow(staging, train_model, model="churn", force=True).is_completed()
    registry.promote(
        MODEL, "2", AuditLog(StateLayout(staging.runtime.state_dir).catalog), "test", "model.churn"
    )
    assert run_flow(staging, build_service, service="churn-api").is_completed()
    real = promote._deploy
    calls: list[str] = []

    def fails_once(plan: Plan, service: str) -> None:
        calls.append(plan.profile)
        if len(calls) == 1:
            raise ShipyardError("injected: the production host refused the deploy")
        real(plan, service)

    monkeypatch.setattr(promote, "_deploy", fails_once)
    with pytest.raises(ShipyardError, match="injected"):
        _promote(project, approved_by="ops")
    assert _aliases(project.production)["champion"] == "1"
    assert [v["version"] for v in _served(project.production)["variants"]] == ["1"]  # type: ignore[index]
    monkeypatch.setattr(promote, "_deploy", real)
    assert _promote(project, approved_by="ops") == 0
    assert _aliases(project.production)["champion"] == "2"
    assert _digest(project.production, "2") == _digest(staging, "2")
    assert [v["version"] for v in _served(project.production)["variants"]] == ["2"]  # type: ignore[index]
    _serves_stagings_bento(project)


PRODUCTION_ROLLOUT = """
rollouts:
  churn-api-production:
    service: churn-api
    strategy: blue_green
    candidate: challenger
    smoke_requests: 3
    blue_green: {keep_previous: 2s}
    analysis:
      interval: 2s
      min_requests: 10
      metrics: [{name: error_rate, max: 5%}, {name: latency_p99, max: 2s}]
"""


def test_a_promotion_runs_the_environments_rollout_under_traffic(project: Project) -> None:
    import json
    import threading

    import httpx
    import pandas as pd

    from flows.build_service import build_service
    from flows.roll_out import roll_out
    from flows.train_model import train_model
    from shipyard import registry
    from shipyard.rollouts.state import RolloutStore
    from shipyard.serving import deploy

    text = project.spec.read_text()
    text = text.replace(
        "    approval: true\n",
        "    approval: true\n    rollouts: {churn-api: churn-api-production}\n",
    )
    project.spec.write_text(text + PRODUCTION_ROLLOUT)
    staging, production = _plans(project.spec)
    assert production.environments[1].rollouts == {"churn-api": "churn-api-production"}
    assert run_flow(staging, train_model, model="churn", force=True).is_completed()
    audit = AuditLog(StateLayout(staging.runtime.state_dir).catalog)
    registry.promote(MODEL, "3", audit, "test", "model.churn")
    assert run_flow(staging, build_service, service="churn-api").is_completed()

    columns = ["region", "plan", "tenure_months", "monthly_charges", "support_calls"]
    columns.append("data_usage_gb")
    frame = pd.read_parquet(project.spec.parent / "data" / "customers.parquet", columns=columns)
    rows = json.loads(frame.head(50).to_json(orient="records"))
    url = deploy.base_url(production.named(ServiceStep, "churn-api")) + "/predict"
    stop, answers = threading.Event(), []

    def traffic() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                answers.append(client.post(url, json=rows[len(answers) % len(rows)]).status_code)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    try:
        code = _promote(
            project,
            approved_by="ops",
            run_rollout=lambda plan, name: (
                0 if run_flow(plan, roll_out, rollout=name).is_completed() else 1
            ),
        )
    finally:
        stop.set()
        sender.join(timeout=30)
    assert code == 0
    state = RolloutStore(production.named(ServiceStep, "churn-api").control_database).read(
        "churn-api-production"
    )
    assert state is not None and state.status == "promoted", state
    assert state.strategy == "blue_green" and state.candidate_version == "3"
    assert _aliases(production)["champion"] == "3"
    assert _digest(production, "3") == _digest(staging, "3")
    assert answers and set(answers) == {200}, sorted(set(answers))
    _serves_stagings_bento(project)  # after the rollout, the Bento that passed staging
