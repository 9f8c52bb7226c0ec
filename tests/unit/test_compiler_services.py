"""compile_plan for `services:`: the service step, its variants, inputs, stores and deployment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipyard.compiler import Plan, ServiceStep, flow_entrypoint
from shipyard.compiler.services import VariantRef
from shipyard.errors import ShipyardError

from .specs import compile_text, replaced

pytestmark = pytest.mark.usefixtures("no_state_dir_override")

SPEC = """\
project: churn-demo
profile: ${PROFILE:-local}
profiles:
  local: {}
  scale-out:
    kind: scale-out
    serving:
      rate_limit_storage: redis://127.0.0.1:6379/0
      log_database: postgresql://postgres@127.0.0.1:5432/serving
datasets:
  customers:
    path: data/customers.parquet
    timestamp: event_time
    schema:
      customer_id: int
      event_time: datetime
      plan: {category: [basic, pro]}
      tenure: int
      charges: float
      churned: bool
    expectations: [{not_null: customer_id}]
features:
  entities:
    customer: {join_key: customer_id}
  views:
    customer_profile:
      entity: customer
      source: customers
      features: [plan, tenure]
    customer_usage:
      entity: customer
      source: customers
      features: [charges]
  services:
    churn_v1: [customer_profile]
    churn_v2: [customer_profile, customer_usage]
models:
  churn:
    task: classification
    dataset: customers
    target: churned
    features: churn_v2
    estimator: {class: sklearn.linear_model.LogisticRegression}
  churn-plain:
    task: classification
    dataset: customers
    target: churned
    features: [plan, tenure, charges]
    estimator: {class: sklearn.linear_model.LogisticRegression}
services:
  churn-api:
    model: churn
    candidates: [challenger, shadow]
    workers: 2
    timeout: 2s
    batching: {max_batch_size: 50, max_latency_ms: 5}
    auth:
      api_keys:
        ops: {key: "${secret:churn-api-admin-key}", roles: [predict, feedback, admin]}
        app: {key: "${secret:churn-api-key}"}
      jwt: {algorithm: HS256, secret: "${secret:churn-jwt}", leeway: 30s}
    rate_limit: {per_key: 200/second, global: 1000/second}
    logging: {mask: [email, "*_token"], requests: false}
    routing: {sticky_key: customer_id}
    tls: {certfile: certs/api.pem, keyfile: certs/api.key}
  churn-plain-api:
    model: churn-plain
    version: 3
    port: 3001
    host: 0.0.0.0
    batching: {adaptive: false}
    rate_limit: 50/second
    logging: {predictions: false}
"""


def plan_of(tmp_path: Path, text: str = SPEC, profile: str = "local") -> Plan:
    return compile_text(tmp_path, text, {"PROFILE": profile})


def service(plan: Plan, name: str = "churn-api") -> ServiceStep:
    return plan.named(ServiceStep, name)


# --- the service step --------------------------------------------------------------------------


def test_each_service_compiles_to_a_step_named_by_its_resource_id(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    assert [s.id for s in plan.steps_of(ServiceStep)] == [
        "service.churn-api",
        "service.churn-plain-api",
    ]
    step = service(plan)
    assert (step.service, step.model, step.task) == ("churn-api", "churn", "classification")
    assert step.registered_name == "churn-demo.churn"
    with pytest.raises(ShipyardError, match="service 'churn-apj' is not defined") as raised:
        plan.named(ServiceStep, "churn-apj")
    assert raised.value.hint == "did you mean 'churn-api'?"


def test_variants_are_the_stable_alias_then_the_candidates(tmp_path: Path) -> None:
    step = service(plan_of(tmp_path))
    assert step.variants == [
        VariantRef(name="stable", alias="champion"),
        VariantRef(name="challenger", alias="challenger"),
        VariantRef(name="shadow", alias="shadow"),
    ]
    assert step.variants[0].reference == "alias @champion"


def test_a_pinned_version_replaces_the_alias(tmp_path: Path) -> None:
    step = service(plan_of(tmp_path), "churn-plain-api")
    assert step.variants == [VariantRef(name="stable", alias=None, version=3)]
    assert step.variants[0].reference == "version 3"


def test_with_a_feature_service_requests_carry_the_entity_keys(tmp_path: Path) -> None:
    step = service(plan_of(tmp_path))
    assert step.feature_service == "churn_v2"  # the one the model trained on
    assert step.inputs == ["customer_id"]
    assert step.input_types == {"customer_id": "int"}
    assert step.features == ["plan", "tenure", "charges"]  # what the model itself takes
    assert step.feature_repo == "features.repo"
    assert "features.repo" in step.needs


def test_a_service_may_read_another_feature_service(tmp_path: Path) -> None:
    text = replaced(SPEC, ("    workers: 2\n", "    workers: 2\n    features: churn_v1\n"))
    step = service(plan_of(tmp_path, text))
    assert step.feature_service == "churn_v1"
    assert step.inputs == ["customer_id"]


def test_without_a_feature_service_requests_carry_the_model_features(tmp_path: Path) -> None:
    step = service(plan_of(tmp_path), "churn-plain-api")
    assert step.feature_service is None and step.feature_repo is None
    assert step.inputs == ["plan", "tenure", "charges"]
    assert step.input_types == {"plan": ["basic", "pro"], "tenure": "int", "charges": "float"}


def test_string_entity_keys_are_str_inputs(tmp_path: Path) -> None:
    text = replaced(SPEC, ("      customer_id: int\n", "      customer_id: str\n"))
    assert service(plan_of(tmp_path, text)).input_types == {"customer_id": "str"}


def test_the_training_data_is_where_input_buckets_come_from(tmp_path: Path) -> None:
    step = service(plan_of(tmp_path))
    assert step.data_files == [str(tmp_path.resolve() / "data" / "customers.parquet")]


def test_settings_are_carried_over(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    api, plain = service(plan), service(plan, "churn-plain-api")
    assert (api.host, api.port, api.workers, api.timeout_seconds) == ("127.0.0.1", 3000, 2, 2.0)
    assert (api.max_batch_size, api.adaptive_batching, api.max_latency_ms) == (50, True, 5.0)
    assert (plain.host, plain.port, plain.workers, plain.timeout_seconds) == (
        "0.0.0.0",
        3001,
        1,
        10,
    )
    assert (plain.max_batch_size, plain.adaptive_batching, plain.max_latency_ms) == (100, False, 0)
    assert (api.log_requests, api.log_predictions) == (False, True)
    assert (plain.log_requests, plain.log_predictions) == (True, False)
    assert (api.mask, plain.mask) == (["email", "*_token"], [])
    assert (api.routing.sticky_key, plain.routing.sticky_key) == ("customer_id", None)
    assert api.tls is not None
    assert api.tls.model_dump() == {  # resolved against the project folder
        "certfile": str(tmp_path.resolve() / "certs/api.pem"),
        "keyfile": str(tmp_path.resolve() / "certs/api.key"),
        "ca_certs": None,
        "min_version": "1.2",
    }
    assert plain.tls is None and plain.auth is None


def test_routing_starts_on_stable_salted_by_the_service(tmp_path: Path) -> None:
    api = service(plan_of(tmp_path))
    assert api.routing.weights == {"stable": 100.0, "challenger": 0.0, "shadow": 0.0}
    assert api.routing.salt == "service.churn-api"
    assert api.routing.rules == ()


def test_declared_routing_weights_and_rules_are_compiled(tmp_path: Path) -> None:
    text = replaced(
        SPEC,
        (
            "    routing: {sticky_key: customer_id}\n",
            "    routing:\n      sticky_key: customer_id\n"
            "      weights: {stable: 90, challenger: 10}\n"
            "      rules: [{header: X-Beta, equals: '1', variant: shadow}]\n",
        ),
    )
    routing = service(plan_of(tmp_path, text)).routing
    assert routing.weights == {"stable": 90.0, "challenger": 10.0}
    [rule] = routing.rules
    assert (rule.header, rule.equals, rule.variant) == ("x-beta", "1", "shadow")


def test_rate_limits_are_per_key_and_global(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    api = service(plan).rate_limit
    assert (api.per_key, api.global_limit) == ("200/second", "1000/second")
    # the shorthand `rate_limit: 50/second` is a global limit
    plain = service(plan, "churn-plain-api").rate_limit
    assert (plain.per_key, plain.global_limit) == (None, "50/second")


def test_no_rate_limit_compiles_to_no_limits(tmp_path: Path) -> None:
    text = replaced(SPEC, ("    rate_limit: 50/second\n", ""))
    limits = service(plan_of(tmp_path, text), "churn-plain-api").rate_limit
    assert (limits.per_key, limits.global_limit) == (None, None)


# --- where state goes, by profile --------------------------------------------------------------


def test_embedded_profile_logs_to_sqlite_under_the_state_dir_and_counts_in_memory(
    tmp_path: Path,
) -> None:
    plan = plan_of(tmp_path)
    state = Path(plan.runtime.state_dir)
    assert state == tmp_path.resolve() / ".shipyard"
    for name in ("churn-api", "churn-plain-api"):
        step = service(plan, name)
        assert step.log_database == f"sqlite:///{state / 'serving' / name / 'logs.sqlite'}"
        assert step.rate_limit.storage == "memory://"
        assert step.state_dir == plan.runtime.state_dir
        assert step.control_database == f"sqlite:///{state / 'serving' / 'control.sqlite'}"


def test_a_moved_state_dir_moves_the_log(tmp_path: Path) -> None:
    text = replaced(SPEC, ("  local: {}\n", "  local: {state_dir: var/state}\n"))
    step = service(plan_of(tmp_path, text))
    expected = tmp_path.resolve() / "var" / "state" / "serving" / "churn-api" / "logs.sqlite"
    assert step.log_database == f"sqlite:///{expected}"


def test_scale_out_profile_logs_to_postgresql_and_counts_in_redis(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, profile="scale-out")
    for name in ("churn-api", "churn-plain-api"):
        step = service(plan, name)
        assert step.log_database == "postgresql://postgres@127.0.0.1:5432/serving"
        assert step.rate_limit.storage == "redis://127.0.0.1:6379/0"
        # replicas share the control state in the same PostgreSQL as the logs
        assert step.control_database == step.log_database


# --- secrets -----------------------------------------------------------------------------------


def test_secrets_stay_references_in_the_plan_and_its_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_SECRET_CHURN_API_KEY", "app-value-never-in-the-plan")
    monkeypatch.setenv("SHIPYARD_SECRET_CHURN_JWT", "jwt-value-never-in-the-plan")
    plan = plan_of(tmp_path)
    auth = service(plan).auth
    assert auth is not None
    assert auth.api_keys["ops"].key == "${secret:churn-api-admin-key}"
    assert auth.api_keys["app"].key == "${secret:churn-api-key}"
    assert auth.api_keys["app"].roles == ("predict",)
    assert auth.jwt is not None and auth.jwt.key == "${secret:churn-jwt}"
    assert auth.jwt.algorithm == "HS256" and auth.jwt.leeway_seconds == 30
    assert plan.secrets == ("churn-api-admin-key", "churn-api-key", "churn-jwt")
    text = plan.model_dump_json()
    assert "never-in-the-plan" not in text
    assert "${secret:churn-api-key}" in text
    deployment = plan.deployment("build-service", "churn-api")
    assert deployment is not None
    assert "never-in-the-plan" not in json.dumps(deployment.parameters)


def test_plan_with_services_round_trips_through_json(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    assert Plan.model_validate(json.loads(plan.model_dump_json())) == plan


# --- steps and deployments ---------------------------------------------------------------------


def test_each_service_has_a_build_service_deployment_running_its_step(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    deployment = plan.deployment("build-service", "churn-api")
    assert deployment is not None
    assert deployment.full_name == "build-service/churn-api"
    assert deployment.entrypoint == flow_entrypoint("build-service")
    assert deployment.entrypoint == "flows/build_service.py:build_service"
    assert deployment.step == "service.churn-api"
    assert deployment.parameters == {"service": "churn-api"}
    assert "service.churn-api" in deployment.tags
    assert deployment.schedule is None
    assert plan.deployment("build-service", "churn-plain-api") is not None


def test_a_description_becomes_the_deployments(tmp_path: Path) -> None:
    text = replaced(SPEC, ("  churn-api:\n", "  churn-api:\n    description: The churn API.\n"))
    deployment = plan_of(tmp_path, text).deployment("build-service", "churn-api")
    assert deployment is not None and deployment.description == "The churn API."


def test_a_service_builds_after_its_model_then_deploys(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    api = plan.steps["service.churn-api"]
    assert api.tasks == ("build", "deploy")
    assert api.needs == ("model.churn", "features.repo")
    assert plan.steps["service.churn-plain-api"].needs == ("model.churn-plain",)
    order = list(plan.steps)
    assert order.index("model.churn") < order.index("service.churn-api")


def test_a_spec_without_services_compiles_none(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, SPEC[: SPEC.index("services:\n  churn-api")])
    assert plan.steps_of(ServiceStep) == []
    assert not [d for d in plan.deployments.values() if d.flow_name == "build-service"]


def test_a_bento_built_without_its_candidate_routes_everything_to_stable(tmp_path: Path) -> None:
    """The first training registers no challenger: the Bento holds stable only, and the
    service must start on it rather than refuse routing that names the missing candidate."""
    from shipyard.serving.config import ModelInput, ServedVariant, ServiceConfig
    from shipyard.serving.engine import routing_for

    step = service(plan_of(tmp_path))
    assert set(step.routing.weights) == {"stable", "challenger", "shadow"}
    config = ServiceConfig(
        step=step,
        bento_tag="churn-api:m1-abc",
        built_at="2026-12-01T00:00:00+00:00",
        variants=[
            ServedVariant(
                name="stable", registered_name="churn-demo.churn", version="1", path="models/stable"
            )
        ],
        model_inputs=[ModelInput(name="tenure", type="int")],
        request_fields=[ModelInput(name="customer_id", type="int")],
    )
    assert routing_for(config, None).weights == {"stable": 100.0}
    in_force = step.routing.model_copy(update={"weights": {"stable": 50.0, "challenger": 50.0}})
    assert routing_for(config, in_force).weights == {"stable": 100.0}  # no longer fits: reset


def test_a_promoted_bento_is_served_with_its_environments_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Bento keeps its files and schema; the environment it was promoted into gives the
    settings (port, state folder) and its own registry versions, from a file beside its store."""
    from shipyard.serving.config import (
        Environment,
        ModelInput,
        ServedVariant,
        ServiceConfig,
        environment_file,
        read_config,
        release_differences,
        write_config,
    )

    staging = service(plan_of(tmp_path / "staging"))
    production = staging.model_copy(update={"port": staging.port + 100, "state_dir": "/prod"})
    bento = tmp_path / "bento"
    bento.mkdir()
    served = ServedVariant(
        name="stable", registered_name="churn-demo.churn", version="3", run_id="r-staging",
        path="models/stable",
    )  # fmt: skip
    write_config(
        bento,
        ServiceConfig(
            step=staging,
            bento_tag="churn-api:m3-abc",
            built_at="2026-12-01T00:00:00+00:00",
            variants=[served],
            model_inputs=[ModelInput(name="tenure", type="int")],
            request_fields=[ModelInput(name="customer_id", type="int")],
        ),
    )
    elsewhere = tmp_path / "production-state"
    assert read_config(bento, elsewhere).step.port == staging.port  # nothing promoted there
    # a worker there (its state folder in its environment) never serves staging's settings
    monkeypatch.setenv("SHIPYARD_STATE_DIR", str(elsewhere))
    with pytest.raises(ShipyardError, match="built for the state folder") as refused:
        read_config(bento)
    assert "shipyard build churn-api" in (refused.value.hint or "")
    monkeypatch.setenv("SHIPYARD_STATE_DIR", staging.state_dir)
    assert read_config(bento).step.port == staging.port  # where it was built
    monkeypatch.setenv("SHIPYARD_STATE_DIR", str(elsewhere))
    here = served.model_copy(update={"version": "1", "run_id": "r-prod", "path": "ignored"})
    file = environment_file(elsewhere, "churn-api:m3-abc")
    file.parent.mkdir(parents=True)
    file.write_text(Environment(step=production, variants=[here]).model_dump_json())
    config = read_config(bento)
    assert config == read_config(bento, elsewhere)
    assert config.step.port == staging.port + 100 and config.step.state_dir == "/prod"
    assert [(v.version, v.run_id, v.path) for v in config.variants] == [
        ("1", "r-prod", "models/stable")
    ]
    assert config.bento_tag == "churn-api:m3-abc"
    assert config.request_fields == [ModelInput(name="customer_id", type="int")]
    assert release_differences(staging, production) == []
    changed = production.model_copy(update={"features": ["tenure"]})
    assert release_differences(staging, changed) == ["features"]


# --- request checks and entity keys --------------------------------------------------------------

CHECKED = replaced(
    SPEC,
    (
        "    expectations: [{not_null: customer_id}]\n",
        "    expectations:\n"
        "      - not_null: [customer_id, tenure]\n"
        "      - between: {column: tenure, min: 0, max: 240}\n"
        "      - between: {column: charges, min: 0, mostly: 0.99}\n"
        "      - in_set: {column: plan, values: [basic]}\n"
        "      - unique: customer_id\n"
        "      - row_count: {min: 10}\n",
    ),
)


def test_the_per_row_rules_on_request_fields_are_compiled_into_the_step(tmp_path: Path) -> None:
    plain = service(plan_of(tmp_path, CHECKED), "churn-plain-api")
    checks = plain.request_checks
    assert (checks.mode, checks.dataset, checks.active) == ("flag", "dataset.customers", True)
    # not_null is the request schema's already; unique and row_count hold for a table only
    assert [(r.rule, r.kind, r.min, r.max, r.tolerant) for r in checks.rules] == [
        ("between(tenure, 0.0..240.0)", "between", 0.0, 240.0, False),
        ("between(charges, 0.0..)", "between", 0.0, None, True),  # `mostly`: flag only
        ("in_set(plan)", "in_set", None, None, False),
    ]
    assert checks.rules[2].values == ["basic"]


def test_a_service_reading_features_online_checks_only_its_keys(tmp_path: Path) -> None:
    api = service(plan_of(tmp_path, CHECKED))
    assert api.inputs == ["customer_id"]
    assert api.request_checks.rules == () and not api.request_checks.active


def test_request_checks_off_compiles_the_rules_but_checks_nothing(tmp_path: Path) -> None:
    text = replaced(CHECKED, ("    logging: {predictions: false}\n", "    request_checks: off\n"))
    checks = service(plan_of(tmp_path, text), "churn-plain-api").request_checks
    assert checks.mode == "off" and checks.rules and not checks.active


def test_entity_keys_are_the_join_keys_or_the_dataset_key_without_its_time(
    tmp_path: Path,
) -> None:
    text = replaced(
        SPEC,
        (
            "    timestamp: event_time\n",
            "    key: [customer_id, event_time]\n    timestamp: event_time\n",
        ),
    )
    plan = plan_of(tmp_path, text)
    assert service(plan).entity_keys == ["customer_id"]  # the feature service's join key
    assert service(plan, "churn-plain-api").entity_keys == ["customer_id"]  # event_time left out
