"""`features:`: every rule fires where it should, shape errors read well, a good spec is quiet."""

from __future__ import annotations

import pytest

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
      signup: date
      plan: {category: [basic, pro]}
      tenure: int
      charges: float
      calls: int
      churned: bool
    expectations: [{not_null: customer_id}]
  labels:
    path: data/labels.parquet
    timestamp: event_time
    schema: {customer_id: int, event_time: datetime, churned: bool}
    expectations: [{not_null: customer_id}]
  snapshot:
    path: data/snapshot.parquet
    schema: {customer_id: int, plan: str, tenure: int, churned: bool}
    expectations: [{not_null: customer_id}]
features:
  entities:
    customer: {join_key: customer_id, description: A subscriber.}
  views:
    profile:
      entity: customer
      source: customers
      features: [plan, tenure]
      ttl: 45d
      schedule: "*/30 * * * *"
    usage:
      entity: customer
      source: customers
      features: [charges, calls]
      online: false
  services:
    churn_v1: [profile]
    churn_v2:
      views: [profile, usage]
      on_missing: error
      description: Profile and usage.
    churn_v3:
      views: [profile]
      features: ["usage:charges"]
models:
  churn:
    task: classification
    dataset: labels
    target: churned
    features: churn_v2
    estimator: {class: sklearn.linear_model.LogisticRegression}
"""


def variant(*replacements: tuple[str, str], text: str = GOOD) -> str:
    """GOOD with each (old, new) applied; `old` must occur exactly once."""
    return replaced(text, *replacements)


# --- a good spec -------------------------------------------------------------------------------


def test_good_spec_has_no_diagnostics() -> None:
    loaded = load_text(GOOD, "spec.yaml", env={})
    assert validate(loaded) == []
    assert loaded.spec is not None
    features = loaded.spec.features
    assert list(features.entities) == ["customer"]
    assert list(features.views) == ["profile", "usage"]
    assert list(features.services) == ["churn_v1", "churn_v2", "churn_v3"]


def test_service_shorthand_list_is_its_views() -> None:
    loaded = load_text(GOOD, "spec.yaml", env={})
    assert loaded.spec is not None
    v1 = loaded.spec.features.services["churn_v1"]
    assert (v1.views, v1.features, v1.on_missing) == (["profile"], [], "null")
    assert loaded.spec.features.services["churn_v2"].on_missing == "error"


def test_on_missing_null_written_as_yaml_null_is_the_null_policy() -> None:
    text = variant(("on_missing: error", "on_missing: null"))
    loaded = load_text(text, "spec.yaml", env={})
    assert validate(loaded) == []
    assert loaded.spec is not None
    assert loaded.spec.features.services["churn_v2"].on_missing == "null"


def test_view_defaults() -> None:
    loaded = load_text(GOOD, "spec.yaml", env={})
    assert loaded.spec is not None
    usage = loaded.spec.features.views["usage"]
    assert (usage.ttl, usage.online, usage.schedule) == ("30d", False, None)


def test_a_spec_without_features_is_fine() -> None:
    text = GOOD[: GOOD.index("features:\n")]
    loaded = load_text(text, "spec.yaml", env={})
    assert validate(loaded) == []
    assert loaded.spec is not None and not loaded.spec.features.views


# --- E601-E606, E609 ---------------------------------------------------------------------------


def test_undefined_entity_is_e601_at_the_value_with_did_you_mean() -> None:
    text = variant(
        (
            "entity: customer\n      source: customers\n      features: [charges",
            ("entity: custome\n      source: customers\n      features: [charges"),
        )
    )
    d = only(text)
    assert d.code == "E601"
    assert d.message == "feature view 'usage' uses entity 'custome', which is not defined"
    assert d.span == span_of(text, "custome", within="entity: custome\n")
    assert d.hint == "did you mean 'customer'?"


def test_undefined_entity_without_a_close_match_says_where_to_define_it() -> None:
    text = variant(
        (
            "entity: customer\n      source: customers\n      features: [plan",
            ("entity: account\n      source: customers\n      features: [plan"),
        )
    )
    d = only(text)
    assert (d.code, d.hint) == ("E601", "define it under `features.entities` with its join_key")


def test_undefined_source_is_e602_and_hides_the_column_checks() -> None:
    # the features and the join key cannot be checked without the dataset: no E604/E605 on top
    text = variant(
        (
            "source: customers\n      features: [plan, tenure]",
            ("source: customer\n      features: [nope, zilch]"),
        )
    )
    d = only(text)
    assert d.code == "E602"
    assert d.message == "feature view 'profile' reads dataset 'customer', which is not defined"
    assert d.span == span_of(text, "customer", within="source: customer\n")
    assert d.hint == "did you mean 'customers'?"


def test_undefined_source_without_a_close_match_lists_the_datasets() -> None:
    d = only(
        variant(
            ("source: customers\n      features: [plan", "source: orders\n      features: [plan")
        )
    )
    assert (d.code, d.hint) == ("E602", "expected one of 'customers', 'labels', 'snapshot'")


STATIC_PROFILE = (
    "source: customers\n      features: [plan, tenure]\n      ttl: 45d\n",
    "source: snapshot\n      features: [plan, tenure]\n",
)
"""`profile` over `snapshot`, which has no timestamp: a static view."""


def test_a_view_over_a_dataset_without_timestamp_is_static_and_valid() -> None:
    # its ttl is left at the default: only a ttl written in the file is an error
    assert check(variant(STATIC_PROFILE)) == []


def test_ttl_on_a_static_view_is_e603_at_the_ttl() -> None:
    text = variant(
        ("source: customers\n      features: [plan", "source: snapshot\n      features: [plan")
    )
    d = only(text)
    assert d.code == "E603"
    assert d.message == (
        "feature view 'profile' is static (dataset 'snapshot' has no `timestamp`), so it has no "
        "`ttl`"
    )
    assert d.span == span_of(text, "45d", within="ttl: 45d")
    assert d.hint == (
        "remove `ttl:`: a static view's rows never expire; for rows that do, give dataset "
        "'snapshot' a `timestamp:`"
    )


@pytest.mark.parametrize("key", ["[customer_id, plan]", "plan"])
def test_a_static_view_over_a_dataset_keyed_otherwise_is_w602(key: str) -> None:
    text = variant(
        STATIC_PROFILE,
        ("path: data/snapshot.parquet\n", f"path: data/snapshot.parquet\n    key: {key}\n"),
    )
    d = only(text)
    assert (d.code, d.severity) == ("W602", Severity.WARNING)
    keyed_by = "customer_id, plan" if key.startswith("[") else "plan"
    assert d.message == (
        f"static feature view 'profile': dataset 'snapshot' is keyed by {keyed_by}, not by "
        "'customer_id' alone, so a customer_id may repeat"
    )
    assert d.span == span_of(text, "snapshot", within="source: snapshot")
    assert d.hint == (
        "a static view holds one row per entity (running it refuses repeats): key the dataset by "
        "`key: customer_id`, or give it a `timestamp:` to keep the rows as history"
    )


@pytest.mark.parametrize("key", ["customer_id", "[customer_id]"])
def test_a_static_view_over_a_dataset_keyed_by_the_join_key_is_quiet(key: str) -> None:
    text = variant(
        STATIC_PROFILE,
        ("path: data/snapshot.parquet\n", f"path: data/snapshot.parquet\n    key: {key}\n"),
    )
    assert check(text) == []


def test_each_unknown_feature_is_e604_where_written() -> None:
    text = variant(("features: [plan, tenure]", "features: [plann, tenure, zzz]"))
    diagnostics = check(text)
    assert [(d.code, d.span, d.hint) for d in diagnostics] == [
        ("E604", span_of(text, "plann", within="[plann,"), "did you mean 'plan'?"),
        ("E604", span_of(text, "zzz", within="[plann,"), "add it to the dataset's `schema:`"),
    ]
    assert diagnostics[0].message == (
        "feature view 'profile': feature 'plann' is not a column of dataset 'customers'"
    )


@pytest.mark.parametrize(("feature", "kind"), [("event_time", "datetime"), ("signup", "date")])
def test_date_and_time_features_are_e604(feature: str, kind: str) -> None:
    text = variant(("features: [charges, calls]", f"features: [charges, {feature}]"))
    d = only(text)
    assert d.code == "E604"
    assert d.message == f"feature view 'usage': feature '{feature}' is a {kind} column"
    assert d.span == span_of(text, feature, within="features: [charges,")
    assert d.hint == "serve a number derived from it (e.g. an age in days) instead"


def test_join_key_not_in_the_source_is_e605_for_each_view_at_its_entity() -> None:
    text = variant(("join_key: customer_id", "join_key: account_id"))
    text = text[: text.index("models:\n")]  # the labels lack account_id too (E608)
    diagnostics = check(text)
    assert [(d.code, d.span) for d in diagnostics] == [
        ("E605", span_of(text, "customer", within="entity: customer\n")),
        ("E605", span_of(text, "customer", within="entity: customer\n", nth=3)),
    ]
    assert diagnostics[0].message == (
        "feature view 'profile': join key 'account_id' of entity 'customer' is not a column of "
        "dataset 'customers'"
    )
    # another `*_id` column is a different key, not a typo: no did-you-mean
    assert diagnostics[0].hint == (
        "every feature row needs the key of its entity: add 'account_id' to the schema of "
        "dataset 'customers'"
    )


def test_undefined_view_in_the_list_shorthand_is_e606_where_written() -> None:
    text = variant(("churn_v1: [profile]", "churn_v1: [profiles]"))
    d = only(text)
    assert d.code == "E606"
    assert d.message == "feature service 'churn_v1' includes view 'profiles', which is not defined"
    assert d.span == span_of(text, "profiles", within="churn_v1:")
    assert d.hint == "did you mean 'profile'?"


def test_undefined_view_under_views_is_e606_listing_the_views() -> None:
    text = variant(("views: [profile, usage]", "views: [profile, billing]"))
    d = only(text)
    assert d.code == "E606"
    assert d.span == span_of(text, "billing", within="views: [profile, billing]")
    assert d.hint == "expected one of 'profile', 'usage'"


@pytest.mark.parametrize(
    ("reference", "message", "hint"),
    [
        (
            "usage.charges",
            "'usage.charges' is not a `view:feature` reference",
            "did you mean 'usage:charges'?",
        ),
        (
            "charges",
            "'charges' is not a `view:feature` reference",
            "did you mean 'usage:charges'?",
        ),
        (
            "plan",
            "'plan' is not a `view:feature` reference",
            "did you mean 'profile:plan'?",
        ),
        (
            "spend",
            "'spend' is not a `view:feature` reference",
            "name the view and the feature, e.g. customer_profile:plan",
        ),
        (
            "usge:charges",
            "'usge:charges' names view 'usge', which is not defined",
            "did you mean 'usage:charges'?",
        ),
        (
            "billing:amount",
            "'billing:amount' names view 'billing', which is not defined",
            "expected one of 'profile', 'usage'",
        ),
        (
            "usage:charge",
            "'usage:charge': view 'usage' has no feature 'charge'",
            "did you mean 'usage:charges'?",
        ),
        (
            "usage:churned",
            "'usage:churned': view 'usage' has no feature 'churned'",
            "add 'churned' to the `features:` of view 'usage'",
        ),
        (
            "usage:",
            "'usage:' is not a `view:feature` reference",
            "expected one of 'usage:charges', 'usage:calls'",
        ),
    ],
)
def test_unresolved_feature_reference_is_e606_where_written(
    reference: str, message: str, hint: str
) -> None:
    text = variant(('features: ["usage:charges"]', f'features: ["{reference}"]'))
    d = only(text)
    assert d.code == "E606"
    assert d.message == f"feature service 'churn_v3': {message}"
    assert d.span == span_of(text, f'"{reference}"', within="churn_v3:")
    assert d.hint == hint


def test_feature_from_two_views_is_e609_at_the_view_that_repeats_it() -> None:
    text = variant(("features: [charges, calls]", "features: [charges, calls, plan]"))
    d = only(text)
    assert d.code == "E609"
    assert (
        d.message
        == "feature service 'churn_v2': feature 'plan' comes from both 'profile' and 'usage'"
    )
    assert d.span == span_of(text, "usage", within="views: [profile, usage]")
    assert d.hint == (
        "a feature name must be unique within a service; include the other features of "
        "'usage' one by one under `features:` instead"
    )


def test_several_repeated_features_of_one_view_are_one_e609() -> None:
    text = variant(("features: [charges, calls]", "features: [tenure, charges, plan]"))
    d = only(text)
    assert d.code == "E609"
    assert d.message == (
        "feature service 'churn_v2': features 'tenure', 'plan' come from both 'profile' and 'usage'"
    )


def test_single_reference_repeating_a_feature_is_e609_at_the_reference() -> None:
    text = variant(
        ("features: [charges, calls]", "features: [charges, calls, tenure]"),
        ('features: ["usage:charges"]', 'features: ["usage:charges", "usage:tenure"]'),
    )
    diagnostics = check(text)
    # churn_v2 includes both whole views; churn_v3 the profile view and usage:tenure
    assert [d.code for d in diagnostics] == ["E609", "E609"]
    d = diagnostics[1]
    assert d.message == (
        "feature service 'churn_v3': feature 'tenure' comes from both 'profile' and 'usage'"
    )
    assert d.span == span_of(text, '"usage:tenure"', within="churn_v3:")
    assert d.hint == "a feature name must be unique within a service; drop this reference"


def test_the_same_feature_twice_from_one_view_is_fine() -> None:
    text = variant(('features: ["usage:charges"]', 'features: ["profile:plan", "usage:calls"]'))
    assert check(text) == []


# --- models that use a feature service: E607, E608, E504 ---------------------------------------


def test_undefined_feature_service_is_e607_at_the_features_value() -> None:
    text = variant(("features: churn_v2\n", "features: churn_v9\n"))
    d = only(text)
    assert d.code == "E607"
    assert d.message == "model 'churn' uses feature service 'churn_v9', which is not defined"
    assert d.span == span_of(text, "churn_v9", within="models:")
    assert d.hint == "the defined versions of 'churn' are churn_v1, churn_v2, churn_v3"


def test_undefined_feature_service_close_to_another_is_e607_with_did_you_mean() -> None:
    d = only(variant(("features: churn_v2\n", "features: chrun_v2\n")))
    assert (d.code, d.hint) == ("E607", "did you mean 'churn_v2'?")


def test_a_single_column_written_without_brackets_is_e607_suggesting_a_list() -> None:
    text = variant(
        ("dataset: labels\n    target", "dataset: customers\n    target"),
        ("features: churn_v2\n", "features: tenure\n"),
    )
    d = only(text)
    assert (d.code, d.hint) == ("E607", "a single column is still a list: [tenure]")


def test_undefined_feature_service_without_a_close_match_says_what_to_do() -> None:
    d = only(variant(("features: churn_v2\n", "features: retention\n")))
    assert d.hint == "define it under `features.services`, or list dataset columns instead"


def test_label_dataset_without_the_join_key_is_e608_at_the_dataset() -> None:
    text = variant(
        (
            "schema: {customer_id: int, event_time: datetime, churned: bool}",
            "schema: {account: int, event_time: datetime, churned: bool}",
        ),
        (
            "expectations: [{not_null: customer_id}]\n  snapshot",
            "expectations: [{not_null: account}]\n  snapshot",
        ),
    )
    d = only(text)
    assert d.code == "E608"
    assert d.message == (
        "model 'churn': dataset 'labels' has no column 'customer_id' to join feature service "
        "'churn_v2' on"
    )
    assert d.span == span_of(text, "labels", within="models:")
    assert d.hint == (
        "point-in-time joins match each label row to features by the entities' join keys and "
        "the dataset's `timestamp:`"
    )


def test_label_dataset_without_a_timestamp_is_e608() -> None:
    d = only(variant(("dataset: labels\n    target", "dataset: snapshot\n    target")))
    assert d.code == "E608"
    assert d.message == (
        "model 'churn': dataset 'snapshot' has no `timestamp` to join feature service 'churn_v2' on"
    )


def test_labels_without_a_timestamp_join_a_service_of_static_views() -> None:
    text = variant(
        STATIC_PROFILE,
        ("dataset: labels\n    target", "dataset: snapshot\n    target"),
        ("features: churn_v2\n", "features: churn_v1\n"),  # churn_v1: [profile], now static
    )
    assert check(text) == []


def test_labels_without_a_timestamp_and_a_service_with_a_view_over_time_is_e608() -> None:
    # churn_v2: the static profile and usage, which has a timestamp
    text = variant(STATIC_PROFILE, ("dataset: labels\n    target", "dataset: snapshot\n    target"))
    d = only(text)
    assert d.code == "E608"
    assert d.message == (
        "model 'churn': dataset 'snapshot' has no `timestamp` to join feature service 'churn_v2' on"
    )


def test_label_dataset_without_key_and_timestamp_is_one_e608_naming_both() -> None:
    text = variant(
        ("schema: {customer_id: int, plan: str", "schema: {account: int, plan: str"),
        ("dataset: labels\n    target", "dataset: snapshot\n    target"),
    )
    d = [d for d in check(text) if d.code == "E608"]
    assert [x.message for x in d] == [
        "model 'churn': dataset 'snapshot' has no column 'customer_id' and no `timestamp` to "
        "join feature service 'churn_v2' on"
    ]


def test_target_served_by_the_feature_service_is_e504() -> None:
    text = variant(("features: [plan, tenure]", "features: [plan, tenure, churned]"))
    d = only(text)
    assert d.code == "E504"
    assert d.message == "model 'churn': the target 'churned' is a feature of 'churn_v2'"
    assert d.span == span_of(text, "churn_v2", within="models:")
    assert d.hint == "serve the label from the dataset, not from the feature service"


def test_model_features_are_a_non_empty_list_or_a_service_name() -> None:
    for value in ("''", "[]"):
        d = only(variant(("features: churn_v2\n", f"features: {value}\n")))
        assert (d.code, d.message) == ("E103", "models.churn.features: must not be empty")
    d = only(variant(("features: churn_v2\n", "features: {service: churn_v2}\n")))
    assert (d.code, d.message, d.hint) == (
        "E103",
        "models.churn.features: must be a list of columns or the name of a feature service",
        "got a mapping",
    )


# --- the shape of `features:` ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message", "hint", "needle"),
    [
        (
            "join_key: customer_id,",
            "join_kye: customer_id,",
            "features.entities.customer: unknown key 'join_kye'",
            "did you mean 'join_key'?",
            "join_kye",
        ),
        (
            "features: [charges, calls]",
            "fetaures: [charges, calls]",
            "features.views.usage: unknown key 'fetaures'",
            "did you mean 'features'?",
            "fetaures",
        ),
        (
            "online: false",
            "onlin: false",
            "features.views.usage: unknown key 'onlin'",
            "did you mean 'online'?",
            "onlin",
        ),
        (
            "views: [profile, usage]",
            "veiws: [profile, usage]",
            "features.services.churn_v2: unknown key 'veiws'",
            "did you mean 'views'?",
            "veiws",
        ),
        (
            "on_missing: error",
            "on_mising: error",
            "features.services.churn_v2: unknown key 'on_mising'",
            "did you mean 'on_missing'?",
            "on_mising",
        ),
        (
            "  entities:\n",
            "  entites:\n",
            "features: unknown key 'entites'",
            "did you mean 'entities'?",
            "entites",
        ),
    ],
)
def test_unknown_keys_are_e101_with_did_you_mean(
    old: str, new: str, message: str, hint: str, needle: str
) -> None:
    text = variant((old, new))
    diagnostics = [d for d in check(text) if d.code == "E101"]
    assert len(diagnostics) == 1, diagnostics
    d = diagnostics[0]
    assert (d.message, d.hint) == (message, hint)
    assert d.span == span_of(text, needle, within=needle)


def test_a_misspelt_required_key_is_reported_once() -> None:
    # `fetaures` is the missing `features`: one E101, no E102 on top
    text = variant(("features: [charges, calls]", "fetaures: [charges, calls]"))
    assert [d.code for d in check(text)] == ["E101"]


@pytest.mark.parametrize(
    ("ttl", "message", "hint"),
    [
        (
            "30 days",
            "'30 days' is not a duration",
            "write a number and a unit (s, m, h, d, w) with no space, e.g. 12h, 30d or 2w",
        ),
        ("thirty", "'thirty' is not a duration", None),
        ("30", "30 is not a duration", "add a unit, e.g. 30d (days) or 30h (hours)"),
        (
            "0s",
            "'0s' is shorter than a second",
            "Feast counts ttl in whole seconds (0 would mean no limit), e.g. 12h or 30d",
        ),
    ],
)
def test_bad_ttl_is_e103_at_the_value(ttl: str, message: str, hint: str | None) -> None:
    text = variant(("ttl: 45d", f"ttl: {ttl}"))
    d = only(text)
    assert d.code == "E103"
    assert d.message == f"features.views.profile.ttl: {message}"
    assert d.span == span_of(text, ttl, within="ttl:")
    if hint is not None:
        assert d.hint == hint


@pytest.mark.parametrize("ttl", ["90s", "10m", "12h", "30d", "2w"])
def test_ttl_units(ttl: str) -> None:
    assert check(variant(("ttl: 45d", f"ttl: {ttl}"))) == []


@pytest.mark.parametrize("service", ["[]", "{}", "{description: Nothing yet., on_missing: error}"])
def test_service_with_neither_views_nor_features_is_e103_at_its_name(service: str) -> None:
    text = variant(
        ("churn_v1: [profile]", f"churn_v1: {service}"),
        ("features: churn_v2\n", "features: churn_v3\n"),
    )
    d = only(text)
    assert d.code == "E103"
    assert d.message == "features.services.churn_v1: a feature service needs `views` or `features`"
    assert d.span == span_of(text, "churn_v1", within="churn_v1:")
    assert d.hint == (
        "list whole views, e.g. [customer_profile], or single features as "
        "`features: [view:feature]`"
    )


def test_service_written_as_a_single_view_name_says_to_make_it_a_list() -> None:
    text = variant(("churn_v1: [profile]", "churn_v1: profile"))
    d = only(text)
    assert d.code == "E103"
    assert d.message == "features.services.churn_v1: 'profile' is not a list of views"
    assert d.span == span_of(text, "profile", within="churn_v1: profile")
    assert d.hint == "write the views as a list, e.g. [profile], or a mapping with `views:`"


def test_service_shorthand_in_block_style_points_at_the_item() -> None:
    text = variant(("churn_v1: [profile]", "churn_v1:\n      - profile\n      - usaeg"))
    d = only(text)
    assert (d.code, d.span) == ("E606", span_of(text, "usaeg", within="- usaeg"))


def test_invalid_on_missing_is_e103_listing_the_policies() -> None:
    text = variant(("on_missing: error", "on_missing: skip"))
    d = only(text)
    assert d.code == "E103"
    assert d.message == "features.services.churn_v2.on_missing: invalid value 'skip'"
    assert d.span == span_of(text, "skip", within="on_missing:")
    assert d.hint == "expected 'null' or 'error'"


def test_invalid_on_missing_close_to_a_policy_says_did_you_mean() -> None:
    d = only(variant(("on_missing: error", "on_missing: eror")))
    assert d.hint == "did you mean 'error'?"


def test_empty_view_features_is_e103() -> None:
    d = only(variant(("features: [charges, calls]", "features: []")))
    assert (d.code, d.message) == ("E103", "features.views.usage.features: must not be empty")


def test_invalid_names_are_e104_at_the_key() -> None:
    text = variant(("churn_v1: [profile]", "Churn V1: [profile]"))
    d = only(text)
    assert d.code == "E104"
    assert d.message == "features.services: invalid name 'Churn V1'"
    assert d.span == span_of(text, "Churn V1", within="Churn V1")


def test_bad_schedule_is_e103() -> None:
    d = only(variant(('schedule: "*/30 * * * *"', 'schedule: "every hour"')))
    assert d.code == "E103"
    assert d.message.startswith("features.views.profile.schedule: 'every hour' is not a cron")


# --- one pass: a shape error does not hide the rest, nor cause false reports --------------------


def test_a_view_with_a_bad_ttl_is_still_cross_checked() -> None:
    text = variant(
        ("ttl: 45d", "ttl: 45 days"), ("features: [plan, tenure]", "features: [plan, tenur]")
    )
    assert [(d.code, d.message.split(":")[0]) for d in check(text)] == [
        ("E604", "feature view 'profile'"),
        ("E103", "features.views.profile.ttl"),
    ]


def test_references_to_an_invalid_view_are_not_reported_again() -> None:
    # `usage` is written but has no features: one error, not an E606 for each service using it
    text = variant(("features: [charges, calls]", "features: []"))
    assert [d.code for d in check(text)] == ["E103"]


def test_a_model_using_an_invalid_service_is_not_told_it_is_undefined() -> None:
    text = variant(("on_missing: error", "on_missing: skip"))
    assert [d.code for d in check(text)] == ["E103"]


def test_an_invalid_entity_is_not_reported_as_undefined() -> None:
    text = variant(
        ("join_key: customer_id, description: A subscriber.", "description: A subscriber.")
    )
    assert [d.code for d in check(text)] == ["E102"]


def test_other_errors_elsewhere_keep_the_feature_checks() -> None:
    # an error in a dataset makes the whole spec partial; the feature rules still run on it
    text = variant(
        ("path: data/snapshot.parquet", "path: data/snapshot.parquet\n    fromat: csv"),
        ("churn_v1: [profile]", "churn_v1: [profiles]"),
    )
    assert [d.code for d in check(text)] == ["E101", "E606"]
