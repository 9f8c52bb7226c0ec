"""`services:`: every rule fires where it should, shape errors read well, a good spec is quiet."""

from __future__ import annotations

from shipyard.diagnostics import Severity
from shipyard.loader import load_text
from shipyard.validation import validate

from .specs import check, only, replaced, span_of

GOOD = """\
project: demo
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
    profile:
      entity: customer
      source: customers
      features: [plan, tenure, charges]
  services:
    churn_v1: [profile]
    churn_v2:
      views: [profile]
      on_missing: error
models:
  churn:
    task: classification
    dataset: customers
    target: churned
    features: churn_v1
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
    candidates: [challenger]
    auth:
      api_keys:
        ops: {key: "${secret:ops-key}", roles: [predict, feedback, admin]}
        app: {key: "${secret:app-key}"}
      jwt: {algorithm: HS256, secret: "${secret:jwt-secret}", audience: churn-api}
    rate_limit: {per_key: 200/second, global: 1000 per minute}
    logging: {mask: [email, "*_token"]}
    routing: {sticky_key: customer_id}
  churn-plain-api:
    model: churn-plain
    port: 3001
    auth:
      jwt: {algorithm: RS256, public_key: "${secret:issuer-pem}", roles_claim: scope}
    rate_limit: 50/second
    routing: {sticky_key: tenure}
"""

SERVICES = "\nservices:"
PLAIN_AUTH = (
    "    auth:\n"
    '      jwt: {algorithm: RS256, public_key: "${secret:issuer-pem}", roles_claim: scope}\n'
)


def variant(*replacements: tuple[str, str]) -> str:
    """GOOD with each (old, new) applied; `old` must occur exactly once."""
    return replaced(GOOD, *replacements)


# --- a good spec -------------------------------------------------------------------------------


def test_good_spec_has_no_diagnostics() -> None:
    loaded = load_text(GOOD, "spec.yaml", env={})
    assert validate(loaded) == []
    assert loaded.spec is not None
    assert list(loaded.spec.services) == ["churn-api", "churn-plain-api"]


def test_service_defaults() -> None:
    loaded = load_text(GOOD, "spec.yaml", env={})
    assert loaded.spec is not None
    plain = loaded.spec.services["churn-plain-api"]
    assert (plain.alias, plain.version, plain.candidates) == ("champion", None, [])
    assert (plain.host, plain.workers, plain.timeout) == ("127.0.0.1", 1, "10s")
    batching = plain.batching
    assert (batching.max_batch_size, batching.adaptive, batching.max_latency_ms) == (100, True, 0)
    assert (plain.logging.requests, plain.logging.predictions, plain.logging.mask) == (
        True,
        True,
        [],
    )
    assert plain.tls is None
    assert loaded.spec.services["churn-api"].port == 3000


def test_api_keys_grant_predict_unless_roles_are_given() -> None:
    loaded = load_text(GOOD, "spec.yaml", env={})
    assert loaded.spec is not None
    auth = loaded.spec.services["churn-api"].auth
    assert auth is not None
    assert auth.api_keys["app"].roles == ["predict"]
    assert auth.api_keys["ops"].roles == ["predict", "feedback", "admin"]


def test_rate_limit_shorthand_is_a_global_limit() -> None:
    loaded = load_text(GOOD, "spec.yaml", env={})
    assert loaded.spec is not None
    shorthand = loaded.spec.services["churn-plain-api"].rate_limit
    assert shorthand is not None
    assert (shorthand.per_key, shorthand.global_) == (None, "50/second")
    both = loaded.spec.services["churn-api"].rate_limit
    assert both is not None
    assert (both.per_key, both.global_) == ("200/second", "1000 per minute")


def test_a_spec_without_services_is_fine() -> None:
    text = GOOD[: GOOD.index("services:\n  churn-api")]
    loaded = load_text(text, "spec.yaml", env={})
    assert validate(loaded) == []
    assert loaded.spec is not None and not loaded.spec.services


# --- E701-E704 ---------------------------------------------------------------------------------


def test_undefined_model_is_e701_at_the_value_with_did_you_mean() -> None:
    text = variant(("model: churn\n    candidates", "model: chrun\n    candidates"))
    d = only(text)
    assert d.code == "E701"
    assert d.message == "service 'churn-api' serves model 'chrun', which is not defined"
    assert d.span == span_of(text, "chrun", within=SERVICES)
    assert d.hint == "did you mean 'churn'?"


def test_undefined_model_without_a_close_match_lists_the_models() -> None:
    text = variant(("model: churn\n    candidates", "model: prices\n    candidates"))
    d = only(text)
    assert (d.code, d.hint) == ("E701", "expected one of 'churn', 'churn-plain'")


def test_undefined_model_without_auth_reports_only_e701() -> None:
    # the other checks need the model; W701 on top would only add noise
    text = variant((PLAIN_AUTH, ""), ("model: churn-plain\n", "model: nope\n"))
    assert [d.code for d in check(text)] == ["E701"]


def test_undefined_feature_service_is_e702_with_did_you_mean() -> None:
    text = variant(
        ("candidates: [challenger]\n", "candidates: [challenger]\n    features: churn_v3\n")
    )
    d = only(text)
    assert d.code == "E702"
    assert d.message == (
        "service 'churn-api' reads feature service 'churn_v3', which is not defined"
    )
    assert d.span == span_of(text, "churn_v3", within=SERVICES)
    assert d.hint is not None and d.hint.startswith("did you mean 'churn_v")


def test_undefined_feature_service_without_any_says_where_to_define_it() -> None:
    text = variant(("port: 3001\n", "port: 3001\n    features: orders\n"))
    no_services = text[: text.index("  services:\n    churn_v1")] + text[text.index("models:") :]
    no_services = replaced(
        no_services,
        ("features: churn_v1\n", "features: [plan, tenure]\n"),
        ("    routing: {sticky_key: customer_id}\n", ""),
    )
    d = only(no_services)
    assert (d.code, d.hint) == ("E702", "define it under `features.services:`")


def test_sticky_key_must_be_an_entity_key_with_a_feature_service() -> None:
    # with a feature service a request carries only the entity keys, not the features
    text = variant(("routing: {sticky_key: customer_id}", "routing: {sticky_key: tenure}"))
    d = only(text)
    assert d.code == "E703"
    assert d.message == "service 'churn-api': sticky key 'tenure' is not a request field"
    assert d.span == span_of(text, "tenure", within="routing: {sticky_key: tenure}")
    assert d.hint == "expected one of 'customer_id'"


def test_sticky_key_must_be_a_model_feature_without_a_feature_service() -> None:
    text = variant(("routing: {sticky_key: tenure}", "routing: {sticky_key: tenur}"))
    d = only(text)
    assert d.code == "E703"
    assert d.message == "service 'churn-plain-api': sticky key 'tenur' is not a request field"
    assert d.span == span_of(text, "tenur", within="routing: {sticky_key: tenur}")
    assert d.hint == "did you mean 'tenure'?"


def test_sticky_key_follows_the_feature_service_the_service_names() -> None:
    text = variant(
        (
            "model: churn-plain\n    port: 3001\n",
            "model: churn-plain\n    port: 3001\n    features: churn_v2\n",
        ),
        ("routing: {sticky_key: tenure}", "routing: {sticky_key: customer_id}"),
    )
    assert check(text) == []


def test_two_services_on_one_port_is_e704_on_the_second() -> None:
    text = variant(("port: 3001", "port: 3000"))
    d = only(text)
    assert d.code == "E704"
    assert (
        d.message == "service 'churn-plain-api' uses port 3000, already used by service 'churn-api'"
    )
    assert d.span == span_of(text, "3000", within="port: 3000")
    assert d.hint == "give each service its own `port:`"


def test_default_ports_clash_too_and_point_at_the_second_service() -> None:
    text = variant(("    port: 3001\n", ""))
    d = only(text)
    assert d.code == "E704"
    assert "already used by service 'churn-api'" in d.message
    second = span_of(text, "model", within="  churn-plain-api:")
    assert (d.span.file, d.span.line, d.span.col) == (second.file, second.line, second.col)


def test_the_prefect_and_mlflow_ports_are_taken() -> None:
    prefect = only(variant(("port: 3001", "port: 4200")))
    assert (prefect.code, prefect.message) == (
        "E704",
        "service 'churn-plain-api' uses port 4200, already used by the Prefect server",
    )
    mlflow = only(variant(("port: 3001", "port: 5055")))
    assert mlflow.message.endswith("already used by the MLflow server")


def test_the_ports_of_the_active_profile_are_the_ones_taken() -> None:
    text = variant(
        ("project: demo\n", "project: demo\nprofiles:\n  local: {prefect: {port: 4300}}\n")
    )
    assert check(variant(("port: 3001", "port: 4200"))) != []
    moved = replaced(text, ("port: 3001", "port: 4200"))
    assert check(moved) == []
    assert only(replaced(text, ("port: 3001", "port: 4300"))).code == "E704"


# --- W701 --------------------------------------------------------------------------------------


def test_service_without_auth_is_w701_at_its_model_key() -> None:
    text = variant((PLAIN_AUTH, ""))
    d = only(text)
    assert d.code == "W701"
    assert d.severity == Severity.WARNING
    assert d.message == (
        "service 'churn-plain-api' has no `auth:`: anyone who can reach it may predict, "
        "send feedback and change its routing"
    )
    assert d.span == span_of(text, "model", within="  churn-plain-api:")
    assert d.hint is not None and "${secret:NAME}" in d.hint and "admin" in d.hint


def test_w701_does_not_make_the_spec_invalid() -> None:
    loaded = load_text(variant((PLAIN_AUTH, "")), "spec.yaml", env={})
    assert loaded.spec is not None
    assert [d.severity for d in validate(loaded)] == [Severity.WARNING]


# --- W702 --------------------------------------------------------------------------------------


def test_memory_rate_limits_with_several_workers_is_w702_at_workers() -> None:
    text = variant(("    port: 3001\n", "    port: 3001\n    workers: 3\n"))
    d = only(text)
    assert d.code == "W702" and d.severity == Severity.WARNING
    assert d.message == (
        "service 'churn-plain-api' counts its rate limits in the memory of each of its 3 "
        "workers: a caller may get up to 3 times a limit"
    )
    assert d.span == span_of(text, "3", within="    workers: 3")
    assert d.hint is not None and "profiles.local.serving.rate_limit_storage" in d.hint


def test_w702_is_quiet_with_shared_counters_one_worker_or_no_limit() -> None:
    workers = ("    port: 3001\n", "    port: 3001\n    workers: 3\n")
    shared = "profiles:\n  local:\n    serving: {rate_limit_storage: redis://127.0.0.1:6379/0}\n"
    assert check(variant(workers) + shared) == []
    assert check(variant(workers, ("    rate_limit: 50/second\n", ""))) == []
    assert check(variant()) == []


# --- W703 --------------------------------------------------------------------------------------


def test_request_checks_with_no_rule_on_a_request_field_is_w703_at_the_setting() -> None:
    text = variant(("    port: 3001\n", "    port: 3001\n    request_checks: reject\n"))
    d = only(text)
    assert d.code == "W703" and d.severity == Severity.WARNING
    assert d.message == (
        "service 'churn-plain-api' checks requests against dataset 'customers', which has no "
        "per-row rule (between, in_set, regex) on a request field (plan, tenure, charges): no "
        "request is checked"
    )
    assert d.span == span_of(text, "reject", within="    request_checks: reject")
    assert d.hint == (
        "add a rule on one of them under `datasets.customers.expectations`, or remove "
        "`request_checks`"
    )


def test_w703_is_quiet_with_a_rule_to_check_when_off_or_left_to_its_default() -> None:
    setting = ("    port: 3001\n", "    port: 3001\n    request_checks: reject\n")
    rule = (
        "    expectations: [{not_null: customer_id}]\n",
        "    expectations: [{not_null: customer_id}, {between: {column: tenure, min: 0}}]\n",
    )
    assert check(variant(setting, rule)) == []
    off = ("    port: 3001\n", "    port: 3001\n    request_checks: off\n")
    assert check(variant(off)) == []
    assert check(variant()) == []  # the default (flag) is not written: nothing to warn about
    # the service reading features online takes only customer_id: a rule on tenure is none
    online = (
        "    candidates: [challenger]\n",
        "    candidates: [challenger]\n    request_checks: flag\n",
    )
    assert only(variant(online, rule)).code == "W703"


KEY_WITH_LIMIT = '{key: "${secret:k}", rate_limit: 5/second}'


def test_a_per_key_limit_alone_is_enough_for_w702() -> None:
    text = variant(
        ("    port: 3001\n", "    port: 3001\n    workers: 2\n"),
        ("    rate_limit: 50/second\n", ""),
        (PLAIN_AUTH, PLAIN_AUTH + f"      api_keys: {{app: {KEY_WITH_LIMIT}}}\n"),
    )
    assert only(text).code == "W702"


# --- the shape of a service --------------------------------------------------------------------


def test_hs256_without_secret_is_e103_at_the_jwt() -> None:
    text = variant(
        (
            'jwt: {algorithm: HS256, secret: "${secret:jwt-secret}", audience: churn-api}',
            "jwt: {algorithm: HS256, audience: churn-api}",
        ),
    )
    d = only(text)
    assert d.code == "E103"
    assert d.message == "services.churn-api.auth.jwt: HS256 needs `secret`"
    assert d.span == span_of(text, "{algorithm: HS256, audience: churn-api}", within=SERVICES)
    assert d.hint == "add `secret: ${secret:NAME}`, the key the tokens are signed with"


def test_rs256_without_public_key_is_e103_even_with_a_secret() -> None:
    text = variant(
        (
            'public_key: "${secret:issuer-pem}", roles_claim: scope',
            'secret: "${secret:issuer-pem}", roles_claim: scope',
        ),
    )
    d = only(text)
    assert d.code == "E103"
    assert d.message == "services.churn-plain-api.auth.jwt: RS256 needs `public_key`"
    assert d.span.line == span_of(text, "jwt:", within="  churn-plain-api:").line
    assert d.hint == "add `public_key: ${secret:NAME}` with the issuer's PEM public key"


def test_auth_with_neither_keys_nor_jwt_is_e103() -> None:
    text = variant((PLAIN_AUTH, "    auth: {}\n"))
    d = only(text)
    assert d.code == "E103"
    assert d.message == "services.churn-plain-api.auth: auth declares neither `api_keys` nor `jwt`"
    assert d.span == span_of(text, "{}", within="    auth: {}")
    assert d.hint is not None and "remove `auth:`" in d.hint


def test_unknown_role_lists_the_roles() -> None:
    text = variant(
        ('app: {key: "${secret:app-key}"}', 'app: {key: "${secret:app-key}", roles: [write]}')
    )
    d = only(text)
    assert d.code == "E103"
    assert d.span == span_of(text, "write", within=SERVICES)
    assert d.hint == "expected 'predict', 'feedback' or 'admin'"


def test_rate_that_is_not_a_rate_is_e103_at_the_value() -> None:
    text = variant(("per_key: 200/second", "per_key: 200 per fortnight"))
    d = only(text)
    assert d.code == "E103"
    assert d.message.startswith("services.churn-api.rate_limit.per_key: ")
    assert d.span == span_of(text, "200 per fortnight", within=SERVICES)


def test_rate_shorthand_that_is_not_a_rate_is_e103_too() -> None:
    text = variant(("rate_limit: 50/second", "rate_limit: 50 per fortnight"))
    d = only(text)
    assert d.code == "E103"
    assert d.message.startswith("services.churn-plain-api.rate_limit: ")
    assert d.span == span_of(text, "50 per fortnight", within=SERVICES)


def test_rates_with_a_multiple_or_per_parse() -> None:
    text = variant(("rate_limit: 50/second", "rate_limit: 10 per 2 minutes"))
    assert check(text) == []


def test_unknown_key_in_a_service_is_e101_with_did_you_mean() -> None:
    text = variant(("    port: 3001\n", "    port: 3001\n    worker: 4\n"))
    d = only(text)
    assert d.code == "E101"
    assert d.message == "services.churn-plain-api: unknown key 'worker'"
    assert d.span == span_of(text, "worker", within=SERVICES)
    assert d.hint == "did you mean 'workers'?"


def test_unknown_key_in_rate_limit_lists_the_keys() -> None:
    text = variant(("global: 1000 per minute}", "global: 1000 per minute, burst: 5}"))
    d = only(text)
    assert d.code == "E101"
    assert d.message == "services.churn-api.rate_limit: unknown key 'burst'"
    assert d.span == span_of(text, "burst", within=SERVICES)
    assert d.hint == "expected one of 'global', 'per_key'"


def test_missing_model_is_e102() -> None:
    text = variant(("    model: churn-plain\n", ""))
    d = only(text)
    assert d.code == "E102"
    assert "model" in d.message and "churn-plain-api" in d.message
