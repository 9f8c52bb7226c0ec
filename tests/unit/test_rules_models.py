"""`models:`: every rule fires where it should, shape errors read well, a good spec is quiet."""

from __future__ import annotations

import pytest

from shipyard.diagnostics import Span
from shipyard.loader import load_text
from shipyard.validation import validate

from . import specs
from .specs import check, only

DATA = """\
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
      tier: {category: [bronze, silver, gold]}
      score: {category: [0, 1]}
      tenure: int
      charges: float
      email: str
      churned: bool
    expectations: [{not_null: customer_id}]
"""

GOOD = (
    DATA
    + """\
models:
  churn:
    description: Will the customer leave this month?
    task: classification
    dataset: customers
    target: churned
    features: [plan, tenure, charges]
    estimator:
      class: sklearn.ensemble.HistGradientBoostingClassifier
      params: {max_iter: 50, early_stopping: false}
    split: {by: time, test_size: 0.25, seed: 7}
    search:
      strategy: random
      trials: 4
      metric: pr_auc
      space:
        learning_rate: {loguniform: [0.01, 0.3]}
        max_depth: [3, 5, null]
        l2_regularization: {uniform: [0.0, 1.0]}
        max_leaf_nodes: {int: [8, 64]}
    metrics: [roc_auc, pr_auc, log_loss]
    gate:
      roc_auc: ">= 0.70"
      log_loss: "< 0.6"
      vs_champion: {metric: roc_auc, min_delta: -0.01, method: delong}
    schedule: "0 3 * * *"
  plan-choice:
    task: classification
    dataset: customers
    target: plan
    positive_class: pro
    features: [tenure, charges, email]
    train: support_models:train_logistic
    params: {C: 0.5}
    gate:
      thresholds: {accuracy: ">= 0.5"}
  charges:
    task: regression
    dataset: customers
    target: charges
    features: [tenure, plan]
    estimator: {class: sklearn.linear_model.Ridge}
    search: {strategy: grid, space: {alpha: [0.1, 1.0]}}
    gate: {rmse: "<= 50", r2: ">= 0"}
"""
)

DEFAULTS: dict[str, str] = {
    "task": "classification",
    "dataset": "customers",
    "target": "churned",
    "features": "[tenure, charges]",
    "estimator": "{class: sklearn.linear_model.LogisticRegression}",
}


def spec(**keys: str | None) -> str:
    """DATA plus one model `churn`: DEFAULTS updated with `keys` (None drops a key), as YAML."""
    fields = {**DEFAULTS, **keys}
    body = "".join(f"    {key}: {value}\n" for key, value in fields.items() if value is not None)
    return f"{DATA}models:\n  churn:\n{body}"


def span_of(text: str, needle: str, nth: int = 1, within: str = "\nmodels:") -> Span:
    """The span of the nth occurrence of `needle` (on one line) after `within` in the spec text."""
    return specs.span_of(text, needle, within, nth)


# --- a good spec -------------------------------------------------------------------------------


def test_good_spec_has_no_diagnostics() -> None:
    loaded = load_text(GOOD, "spec.yaml", env={})
    assert validate(loaded) == []
    assert loaded.spec is not None
    assert list(loaded.spec.models) == ["churn", "plan-choice", "charges"]


def test_inline_and_explicit_thresholds_read_the_same() -> None:
    loaded = load_text(GOOD, "spec.yaml", env={})
    assert loaded.spec is not None
    models = loaded.spec.models
    assert dict(models["churn"].gate.thresholds) == {"roc_auc": ">= 0.70", "log_loss": "< 0.6"}
    assert models["churn"].gate.vs_champion is not None
    assert dict(models["plan-choice"].gate.thresholds) == {"accuracy": ">= 0.5"}


@pytest.mark.parametrize(
    ("task", "target"),
    [
        ("classification", "churned"),
        ("classification", "customer_id"),
        ("classification", "email"),
        ("classification", "plan"),
        ("regression", "tenure"),
        ("regression", "charges"),
    ],
)
def test_targets_that_suit_the_task_are_fine(task: str, target: str) -> None:
    features = "[charges]" if target == "tenure" else "[tenure]"
    positive = {"positive_class": "pro"} if target == "plan" else {}
    assert check(spec(task=task, target=target, features=features, **positive)) == []


# --- E501-E508 ---------------------------------------------------------------------------------


def test_undefined_dataset_is_e501_at_the_value_with_did_you_mean() -> None:
    text = spec(dataset="customer")
    d = only(text)
    assert d.code == "E501"
    assert d.message == "model 'churn' uses dataset 'customer', which is not defined"
    assert d.span == Span("spec.yaml", 21, 14, 21, 22)
    assert d.span == span_of(text, "customer", within="dataset: customer\n")
    assert d.hint == "did you mean 'customers'?"


def test_undefined_dataset_without_a_close_match_lists_the_datasets() -> None:
    d = only(spec(dataset="orders"))
    assert d.code == "E501"
    assert d.hint == "expected one of 'customers'"


def test_undefined_dataset_when_there_are_none_says_where_to_define_it() -> None:
    text = (
        "project: demo\nmodels:\n  churn:\n    task: regression\n    dataset: sales\n"
        "    target: y\n    features: [x]\n    estimator: {class: a.B}\n"
    )
    d = only(text)
    assert (d.code, d.span, d.hint) == (
        "E501",
        span_of(text, "sales"),
        "define it under `datasets:`",
    )


def test_an_undefined_dataset_hides_the_column_checks() -> None:
    # without the dataset, target and features cannot be checked: no E502/E503 on top
    assert [d.code for d in check(spec(dataset="nope", target="x", features="[y, z]"))] == ["E501"]


def test_target_not_in_the_dataset_is_e502_with_did_you_mean() -> None:
    text = spec(target="churnd")
    d = only(text)
    assert d.code == "E502"
    assert d.message == "model 'churn': target 'churnd' is not a column of dataset 'customers'"
    assert d.span == span_of(text, "churnd")
    assert d.hint == "did you mean 'churned'?"


def test_target_without_a_close_match_says_where_to_add_it() -> None:
    d = only(spec(target="label"))
    assert (d.code, d.hint) == ("E502", "add it to the dataset's `schema:`")


def test_each_unknown_feature_is_e503_where_written() -> None:
    text = spec(features="[tenur, charges, zzz]")
    diagnostics = check(text)
    assert [(d.code, d.span, d.hint) for d in diagnostics] == [
        ("E503", span_of(text, "tenur"), "did you mean 'tenure'?"),
        ("E503", span_of(text, "zzz"), "add it to the dataset's `schema:`"),
    ]
    assert diagnostics[0].message == (
        "model 'churn': feature 'tenur' is not a column of dataset 'customers'"
    )


def test_features_in_block_style_are_pointed_at_too() -> None:
    text = spec(features="\n      - tenure\n      - charge")
    d = only(text)
    assert (d.code, d.span) == ("E503", span_of(text, "charge", within="- charge\n"))


def test_target_listed_as_a_feature_is_e504() -> None:
    text = spec(features="[tenure, churned, charges]")
    d = only(text)
    assert d.code == "E504"
    assert d.message == "model 'churn': the target 'churned' is also listed as a feature"
    assert d.span == span_of(text, "churned", nth=2)
    assert d.hint == "remove it from `features:`; the model would otherwise see the answer"


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"metrics": "[roc_auc, rmse]"}, "rmse"),
        ({"metrics": "[roc_auc, accuracy]", "gate": "{rmse: '<= 1'}"}, "rmse"),
        ({"gate": "{thresholds: {r2: '>= 0'}}"}, "r2"),
        ({"gate": "{vs_champion: {metric: mae}}"}, "mae"),
        ({"search": "{strategy: grid, metric: mape, space: {C: [1]}}"}, "mape"),
    ],
    ids=["metrics", "gate", "thresholds", "vs_champion", "search"],
)
def test_regression_metric_on_a_classifier_is_e505_wherever_it_is_used(
    keys: dict[str, str], needle: str
) -> None:
    text = spec(**keys)
    d = only(text)
    assert d.code == "E505"
    assert d.message == f"model 'churn': metric '{needle}' does not suit a classification model"
    assert d.span == span_of(text, needle)
    assert d.hint is not None
    assert d.hint.startswith("expected one of 'roc_auc', 'pr_auc', 'accuracy'")


def test_classification_metric_on_a_regressor_is_e505_with_the_regression_metrics() -> None:
    text = spec(
        task="regression", target="charges", features="[tenure]", metrics="[rmse, accuracy]"
    )
    d = only(text)
    assert d.code == "E505"
    assert d.message == "model 'churn': metric 'accuracy' does not suit a regression model"
    assert d.span == span_of(text, "accuracy")
    assert d.hint == "expected one of 'rmse', 'mae', 'r2', 'mape'"


def test_unknown_metric_name_is_e505_with_did_you_mean() -> None:
    text = spec(metrics="[roc_auc, acuracy]", gate="{rocauc: '>= 0.7'}")
    diagnostics = check(text)
    assert [(d.code, d.message, d.span, d.hint) for d in diagnostics] == [
        (
            "E505",
            "model 'churn': unknown metric 'acuracy'",
            span_of(text, "acuracy"),
            "did you mean 'accuracy'?",
        ),
        (
            "E505",
            "model 'churn': unknown metric 'rocauc'",
            span_of(text, "rocauc"),
            "did you mean 'roc_auc'?",
        ),
    ]


def test_float_target_of_a_classifier_is_e506() -> None:
    text = spec(target="charges", features="[tenure]")
    d = only(text)
    assert d.code == "E506"
    assert d.message == "model 'churn': classification target 'charges' has type 'float'"
    assert d.span == span_of(text, "charges", within="target:")
    assert d.hint == (
        "a classification target is bool, int, str or a category; "
        "use `task: regression` for numbers"
    )


@pytest.mark.parametrize("target", ["churned", "email", "plan", "event_time"])
def test_non_numeric_target_of_a_regressor_is_e506(target: str) -> None:
    text = spec(task="regression", target=target, features="[tenure]")
    d = only(text)
    assert d.code == "E506"
    assert d.message == f"model 'churn': regression target '{target}' is not numeric"
    assert d.span == span_of(text, target, within=f"target: {target}")
    assert d.hint == "a regression target is int or float; use `task: classification` for labels"


@pytest.mark.parametrize(("feature", "kind"), [("event_time", "datetime"), ("signup", "date")])
def test_date_and_time_features_are_e507(feature: str, kind: str) -> None:
    text = spec(features=f"[tenure, {feature}]")
    d = only(text)
    assert d.code == "E507"
    assert d.message == f"model 'churn': feature '{feature}' is a {kind} column"
    assert d.span == span_of(text, feature, within="features:")
    assert d.hint == "add a column derived from it (e.g. an age in days, a weekday) and use that"


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"gate": "{pr_auc: '>= 0.4'}"}, "pr_auc"),
        ({"gate": "{thresholds: {pr_auc: '>= 0.4'}}"}, "pr_auc"),
        ({"gate": "{vs_champion: {metric: brier}}"}, "brier"),
        ({"search": "{strategy: grid, metric: recall, space: {C: [1]}}"}, "recall"),
    ],
    ids=["gate", "thresholds", "vs_champion", "search"],
)
def test_metric_used_but_not_computed_is_e508(keys: dict[str, str], needle: str) -> None:
    text = spec(metrics="[roc_auc, accuracy]", **keys)
    d = only(text)
    assert d.code == "E508"
    assert d.message == f"model 'churn': metric '{needle}' is used but not computed"
    assert d.span == span_of(text, needle)
    assert d.hint == "add it to `metrics:` (now roc_auc, accuracy)"


def test_e508_without_metrics_names_the_task_defaults() -> None:
    d = only(spec(task="regression", target="charges", features="[tenure]", gate="{mape: '< 9'}"))
    assert d.code == "E508"
    assert d.hint == "add it to `metrics:` (without it, a regression model computes rmse, mae, r2)"


def test_default_metrics_can_be_gated_without_listing_them() -> None:
    assert (
        check(spec(gate="{roc_auc: '>= 0.7', f1: '> 0.5', vs_champion: {metric: log_loss}}")) == []
    )


# --- E509-E511: what a classification target may be (shipyard/stats/targets.py) ----------------


@pytest.mark.parametrize(
    ("target", "positive"),
    [("churned", None), ("churned", "false"), ("score", None), ("plan", "basic"), ("tier", None)],
)
def test_targets_with_a_known_or_a_declared_positive_class_are_fine(
    target: str, positive: str | None
) -> None:
    assert check(spec(target=target, positive_class=positive)) == []


def test_a_two_word_category_without_positive_class_is_e509_at_the_target() -> None:
    text = spec(target="plan")
    d = only(text)
    assert d.code == "E509"
    assert d.message == (
        "model 'churn': binary target 'plan' has classes 'basic', 'pro', and no "
        "`positive_class` says which one the model detects"
    )
    assert d.span == span_of(text, "plan", within="target:")
    assert d.hint is not None and d.hint.startswith("add `positive_class: pro` (or basic)")


@pytest.mark.parametrize(
    ("target", "positive", "message", "hint"),
    [
        (
            "plan",
            "Pro",
            "positive_class 'Pro' is not a class of target 'plan' ('basic', 'pro')",
            "did you mean 'pro'?",
        ),
        (
            "churned",
            "yes",
            "positive_class 'yes' is not a bool, but target 'churned' holds bool labels",
            "write the class as the data holds it, e.g. `positive_class: true`",
        ),
        (
            "score",
            "2",
            "positive_class 2 is not a class of target 'score' (0, 1)",
            "use one of 0, 1",
        ),
        (
            "tier",
            "gold",
            "positive_class 'gold' is for a binary target, but target 'tier' has 3 classes "
            "('bronze', 'gold', 'silver')",
            "remove `positive_class`: a multiclass model scores every class",
        ),
    ],
    ids=["not-a-category", "wrong-type", "not-a-number-class", "multiclass"],
)
def test_a_positive_class_the_target_lacks_is_e510_at_the_value(
    target: str, positive: str, message: str, hint: str
) -> None:
    text = spec(target=target, positive_class=positive)
    d = only(text)
    assert (d.code, d.message, d.hint) == ("E510", f"model 'churn': {message}", hint)
    assert d.span == span_of(text, positive, within="positive_class:")


def test_a_positive_class_on_a_regression_is_e510() -> None:
    text = spec(task="regression", target="charges", features="[tenure]", positive_class="1")
    d = only(text)
    assert d.code == "E510"
    assert d.span == span_of(text, "1", within="positive_class:")


def test_a_plain_str_target_learns_its_classes_at_training_so_validate_accepts_it() -> None:
    # `email` is `str`: two classes or twenty, only the data tells (training applies the rule)
    assert check(spec(target="email", features="[tenure]")) == []
    assert check(spec(target="email", features="[tenure]", positive_class="a@b.c")) == []
    d = only(spec(target="email", features="[tenure]", positive_class="7"))
    assert d.code == "E510" and "is not a str" in d.message


@pytest.mark.parametrize(
    ("keys", "needle", "instead"),
    [
        ({"metrics": "[roc_auc, f1]"}, "f1", "f1_macro or f1_weighted"),
        ({"gate": "{pr_auc: '>= 0.4'}"}, "pr_auc", "roc_auc"),
        ({"gate": "{vs_champion: {metric: brier}}"}, "brier", "log_loss"),
        ({"search": "{strategy: grid, metric: recall, space: {C: [1]}}"}, "recall", "f1_macro"),
    ],
    ids=["metrics", "gate", "vs_champion", "search"],
)
def test_a_metric_about_a_positive_class_on_a_multiclass_target_is_e511(
    keys: dict[str, str], needle: str, instead: str
) -> None:
    text = spec(target="tier", **keys)
    d = only(text)
    assert d.code == "E511"
    assert d.message == (
        f"model 'churn': metric '{needle}' is about a positive class, and target 'tier' has "
        "3 classes"
    )
    assert d.span == span_of(text, needle)
    assert d.hint is not None and d.hint.startswith(f"use {instead}")


def test_a_multiclass_model_gates_on_its_own_defaults_and_delong_is_e511() -> None:
    gate = "{f1_macro: '>= 0.5', roc_auc: '>= 0.7', vs_champion: {metric: log_loss}}"
    assert check(spec(target="tier", gate=gate)) == []
    d = only(spec(target="tier", gate="{f1: '>= 0.5'}"))
    assert d.code == "E511"  # not E508: f1 is not a multiclass metric at all
    text = spec(target="tier", gate="{vs_champion: {metric: roc_auc, method: delong}}")
    d = only(text)
    assert d.code == "E511" and "DeLong's test" in d.message
    assert d.span == span_of(text, "delong")


def test_e508_of_a_multiclass_model_names_its_defaults() -> None:
    d = only(spec(target="tier", gate="{f1_weighted: '>= 0.5'}"))
    assert d.code == "E508"
    assert d.hint == (
        "add it to `metrics:` (without it, a multiclass model computes roc_auc, accuracy, "
        "f1_macro, log_loss)"
    )


# --- several models, and models whose shape is wrong -------------------------------------------


def test_rules_check_the_valid_models_when_another_is_broken() -> None:
    text = GOOD.replace("    target: plan\n", "    target: plans\n").replace(
        "    estimator: {class: sklearn.linear_model.Ridge}\n",
        "    estimator: {class: sklearn.linear_model.Ridge, parms: {}}\n",
    )
    diagnostics = check(text)
    assert [(d.code, d.message) for d in diagnostics] == [
        ("E502", "model 'plan-choice': target 'plans' is not a column of dataset 'customers'"),
        ("E101", "models.charges.estimator: unknown key 'parms'"),
    ]


def test_a_model_with_an_unknown_key_still_gets_its_rule_errors() -> None:
    # the unknown key is set aside; the wrong target is reported in the same pass
    assert [d.code for d in check(spec(target="nope", metircs="[roc_auc]"))] == ["E502", "E101"]


def test_diagnostics_come_sorted_by_position() -> None:
    text = spec(target="churnd", features="[tenur, churned]", metrics="[rmse]")
    positions = [(d.span.line, d.span.col) for d in check(text) if d.span]
    assert positions == sorted(positions)
    assert len(positions) == 3


@pytest.mark.parametrize(
    ("keys", "needle", "message", "hint"),
    [
        (
            {"metircs": "[roc_auc]"},
            "metircs",
            "models.churn: unknown key 'metircs'",
            "did you mean 'metrics'?",
        ),
        (
            {"estimator": "{class: a.B, parms: {C: 1}}"},
            "parms",
            "models.churn.estimator: unknown key 'parms'",
            "did you mean 'params'?",
        ),
        (
            {"split": "{test_sise: 0.3}"},
            "test_sise",
            "models.churn.split: unknown key 'test_sise'",
            "did you mean 'test_size'?",
        ),
        (
            {"gate": "{vs_champion: {metric: roc_auc, min_delt: 0}}"},
            "min_delt",
            "models.churn.gate.vs_champion: unknown key 'min_delt'",
            "did you mean 'min_delta'?",
        ),
        (
            {"gate": "{roc_auc: '>= 0.7', vs_champoin: {metric: roc_auc}}"},
            "vs_champoin",
            "models.churn.gate: unknown key 'vs_champoin'",
            "did you mean 'vs_champion'?",
        ),
    ],
    ids=["model", "estimator", "split", "vs_champion", "gate"],
)
def test_unknown_key_is_e101_at_the_key_with_did_you_mean(
    keys: dict[str, str], needle: str, message: str, hint: str
) -> None:
    text = spec(**keys)
    d = only(text)
    assert (d.code, d.message, d.span, d.hint) == ("E101", message, span_of(text, needle), hint)


def test_estimator_and_train_together_is_e103_at_train() -> None:
    text = spec(train="my_project.training:fit")
    d = only(text)
    assert d.code == "E103"
    assert d.message == "models.churn: give `estimator` or `train`, not both"
    assert d.span == span_of(text, "train")
    assert d.hint == "`estimator` fits a class by import path; `train` calls your own function"


@pytest.mark.parametrize(
    ("task", "estimator"),
    [
        ("classification", "HistGradientBoostingClassifier"),
        ("regression", "HistGradientBoostingRegressor"),
    ],
)
def test_neither_estimator_nor_train_is_e102_at_the_model(task: str, estimator: str) -> None:
    text = spec(
        task=task, target="churned" if task == "classification" else "charges", estimator=None
    )
    d = only(text)
    assert d.code == "E102"
    assert d.message == "models.churn: missing required key 'estimator' (or 'train')"
    assert d.span == span_of(text, "churn", within="  churn:")
    assert d.hint == (
        f"add `estimator: {{class: sklearn.ensemble.{estimator}}}`, or `train: module:function`"
    )


def test_params_with_an_estimator_is_e103_at_params() -> None:
    text = spec(params="{C: 0.5}")
    d = only(text)
    assert d.code == "E103"
    assert d.message == "models.churn: `params` is for a custom `train` function"
    assert d.span == span_of(text, "params")
    assert d.hint == "put estimator parameters under `estimator.params`"


def test_params_with_a_train_function_is_fine() -> None:
    assert check(spec(estimator=None, train="support_models:train_logistic", params="{C: 1}")) == []


@pytest.mark.parametrize(
    ("space", "strategy", "needle", "message", "hint"),
    [
        (
            "{C: []}",
            "grid",
            "[]",
            "models.churn.search.space.C: empty list of values",
            "list the values to try, e.g. [0.1, 1.0]",
        ),
        (
            "{C: {uniform: [0.1, 1]}}",
            "grid",
            "{uniform: [0.1, 1]}",
            "models.churn.search.space.C: grid search needs a list of values, not a distribution",
            "list the values to try, or use `strategy: random` to sample a distribution",
        ),
        (
            "{C: {loguniform: [0, 1]}}",
            "random",
            "[0, 1]",
            "models.churn.search.space.C: loguniform bounds [0, 1] must be positive",
            "a log scale starts above 0, e.g. {loguniform: [0.001, 1.0]}",
        ),
        (
            "{C: {loguniform: [-1, 1]}}",
            "random",
            "[-1, 1]",
            "models.churn.search.space.C: loguniform bounds [-1, 1] must be positive",
            "a log scale starts above 0, e.g. {loguniform: [0.001, 1.0]}",
        ),
        (
            "{C: {uniform: [1, 0.1]}}",
            "random",
            "[1, 0.1]",
            "models.churn.search.space.C: uniform bounds [1, 0.1] are not increasing",
            "write [lo, hi] with lo < hi, e.g. [0.1, 1]",
        ),
        (
            "{depth: {int: [4, 4]}}",
            "random",
            "[4, 4]",
            "models.churn.search.space.depth: int bounds [4, 4] are not increasing",
            "write [lo, hi] with lo < hi",
        ),
        (
            "{C: {uniform: [low, 1]}}",
            "random",
            "[low, 1]",
            "models.churn.search.space.C: uniform bounds must be two finite numbers [lo, hi]",
            "e.g. {uniform: [0.0, 1.0]}",
        ),
        (
            "{C: {int: [1, 2, 3]}}",
            "random",
            "[1, 2, 3]",
            "models.churn.search.space.C: int bounds must be two finite numbers [lo, hi]",
            "e.g. {int: [1, 10]}",
        ),
        (
            "{C: {normal: [0, 1]}}",
            "random",
            "normal",
            "models.churn.search.space.C: unknown distribution 'normal'",
            "did you mean 'uniform'?",
        ),
        (
            "{C: {gauss: [0, 1]}}",
            "random",
            "gauss",
            "models.churn.search.space.C: unknown distribution 'gauss'",
            "expected one of 'uniform', 'loguniform', 'int'",
        ),
        (
            "{C: 0.5}",
            "random",
            "0.5",
            "models.churn.search.space.C: must be a list of values or one distribution",
            "e.g. [1, 2, 3], {uniform: [0.0, 1.0]}, {loguniform: [0.001, 1.0]} or {int: [1, 10]}",
        ),
    ],
    ids=[
        "empty-list",
        "grid-with-distribution",
        "loguniform-zero",
        "loguniform-negative",
        "lo-above-hi",
        "lo-equals-hi",
        "bounds-not-numbers",
        "three-bounds",
        "unknown-distribution",
        "unknown-distribution-far",
        "scalar",
    ],
)
def test_bad_search_space_is_e103_at_the_entry(
    space: str, strategy: str, needle: str, message: str, hint: str
) -> None:
    text = spec(search=f"{{strategy: {strategy}, space: {space}}}")
    d = only(text)
    assert (d.code, d.message, d.hint) == ("E103", message, hint)
    assert d.span == span_of(text, needle, within="space:")


def test_every_bad_search_space_entry_is_reported() -> None:
    text = spec(search="{strategy: random, space: {a: [], b: {int: [5, 1]}, c: [1, 2]}}")
    assert [(d.code, d.span) for d in check(text)] == [
        ("E103", span_of(text, "[]")),
        ("E103", span_of(text, "[5, 1]")),
    ]


def test_search_space_in_block_style_is_pointed_at() -> None:
    text = spec(search="\n      strategy: random\n      space:\n        C: {loguniform: [0, 10]}")
    d = only(text)
    assert d.span == span_of(text, "[0, 10]")


@pytest.mark.parametrize(
    ("gate", "needle", "message", "hint"),
    [
        (
            "{roc_auc: 'about 0.8'}",
            "'about 0.8'",
            "models.churn.gate.roc_auc: 'about 0.8' is not a condition",
            "write a comparison and a number, e.g. '>= 0.80' or '< 0.35'",
        ),
        (
            "{roc_auc: '=> 0.8'}",
            "'=> 0.8'",
            "models.churn.gate.roc_auc: '=> 0.8' is not a condition",
            "write a comparison and a number, e.g. '>= 0.80' or '< 0.35'",
        ),
        (
            "{thresholds: {roc_auc: 'high'}}",
            "'high'",
            "models.churn.gate.thresholds.roc_auc: 'high' is not a condition",
            "write a comparison and a number, e.g. '>= 0.80' or '< 0.35'",
        ),
        (
            "{roc_auc: 0.8}",
            "0.8",
            "models.churn.gate.roc_auc: 0.8 is not a condition",
            "add the comparison and quote it: '>= 0.8' (or '<= 0.8' for a loss)",
        ),
        (
            "{roc_auc: {min: 0.8}}",
            "{min: 0.8}",
            "models.churn.gate.roc_auc: must be a condition such as '>= 0.80', not a mapping",
            "a gate holds `metric: condition` entries and `vs_champion: {...}`",
        ),
    ],
    ids=["words", "reversed-operator", "explicit-thresholds", "bare-number", "mapping"],
)
def test_bad_gate_condition_is_e103_at_the_value(
    gate: str, needle: str, message: str, hint: str
) -> None:
    text = spec(gate=gate)
    d = only(text)
    assert (d.code, d.message, d.span, d.hint) == ("E103", message, span_of(text, needle), hint)


def test_every_bad_gate_condition_is_reported() -> None:
    text = spec(gate="{roc_auc: 'high', f1: 0.5, vs_champion: {metric: roc_auc}}")
    assert [(d.code, d.span) for d in check(text)] == [
        ("E103", span_of(text, "'high'")),
        ("E103", span_of(text, "0.5")),
    ]


@pytest.mark.parametrize(
    ("split", "hint"),
    [
        ("{by: tiem}", "did you mean 'time'?"),
        ("{by: sideways}", "expected 'auto', 'time' or 'random'"),
    ],
)
def test_unknown_split_by_is_e103_at_the_value(split: str, hint: str) -> None:
    text = spec(split=split)
    d = only(text)
    value = split.removeprefix("{by: ").removesuffix("}")
    assert (d.code, d.message) == ("E103", f"models.churn.split.by: invalid value '{value}'")
    assert (d.span, d.hint) == (span_of(text, value), hint)


def test_estimator_class_without_a_module_is_e103() -> None:
    text = spec(estimator="{class: LogisticRegression}")
    d = only(text)
    assert d.code == "E103"
    assert d.message == "models.churn.estimator.class: 'LogisticRegression' is not an import path"
    assert d.span == span_of(text, "LogisticRegression")
    assert d.hint == "name the class with its module, e.g. sklearn.linear_model.LogisticRegression"


@pytest.mark.parametrize(
    ("train", "hint"),
    [
        ("my_project.training.fit", "did you mean 'my_project.training:fit'?"),
        ("fit", "separate the module and the function with ':', e.g. my_project.training:train"),
    ],
)
def test_train_that_is_not_module_colon_function_is_e103(train: str, hint: str) -> None:
    text = spec(estimator=None, train=train)
    d = only(text)
    assert d.code == "E103"
    assert d.message == f"models.churn.train: '{train}' is not a `module:function` reference"
    assert (d.span, d.hint) == (span_of(text, train, within="train:"), hint)


@pytest.mark.parametrize(
    ("keys", "code", "message"),
    [
        ({"task": "clasification"}, "E103", "models.churn.task: invalid value 'clasification'"),
        ({"features": "[]"}, "E103", "models.churn.features: must not be empty"),
        ({"target": None}, "E102", "models.churn: missing required key 'target'"),
        (
            {"gate": "{vs_champion: {metric: roc_auc, confidence: 0.3}}"},
            "E103",
            "models.churn.gate.vs_champion.confidence: must be greater than 0.5",
        ),
        (
            {"search": "{strategy: random, trials: 0, space: {C: [1]}}"},
            "E103",
            "models.churn.search.trials: must be at least 1",
        ),
        (
            {"search": "{space: {C: [1]}}"},
            "E102",
            "models.churn.search: missing required key 'strategy'",
        ),
        ({"schedule": "'every day'"}, "E103", None),
    ],
)
def test_other_shape_errors_use_the_common_codes(
    keys: dict[str, str | None], code: str, message: str | None
) -> None:
    d = only(spec(**keys))
    assert d.code == code
    if message is not None:
        assert d.message == message


def test_invalid_model_name_is_e104() -> None:
    text = spec().replace("  churn:", "  Churn:")
    d = check(text)[0]
    assert (d.code, d.message) == ("E104", "models: invalid name 'Churn'")
    assert d.span == span_of(text, "Churn")
