"""Rules for `profile:` and `profiles:`."""

from __future__ import annotations

from shipyard.diagnostics import Span
from shipyard.loader import load_text
from shipyard.validation import validate

from .specs import check

GOOD = """\
project: demo
profile: ${SHIPYARD_PROFILE:-local}
profiles:
  local: {}
  scale-out:
    kind: scale-out
    prefect: {port: 4210, database_url: "postgresql+asyncpg://postgres@db/prefect"}
    dvc: {remote: "s3://bucket/demo", options: {access_key_id: "${secret:aws-key}"}}
    prometheus: {pushgateway: "http://127.0.0.1:9091", password: "${secret:pushgateway}"}
"""


def test_good_profiles_have_no_diagnostics() -> None:
    assert check(GOOD) == []
    assert check(GOOD, {"SHIPYARD_PROFILE": "scale-out"}) == []


def test_spec_without_profiles_uses_the_embedded_local_default() -> None:
    loaded = load_text("project: demo\n", "spec.yaml", env={})
    assert validate(loaded) == []
    assert loaded.spec is not None
    assert loaded.spec.profile == "local"
    assert loaded.spec.active_profile.kind == "embedded"


def test_undefined_profile_is_e401_at_the_value_with_did_you_mean() -> None:
    [d] = check(GOOD, {"SHIPYARD_PROFILE": "scale_out"})
    assert d.code == "E401"
    assert d.message == "profile 'scale_out' is not defined under `profiles:`"
    assert d.span == Span("spec.yaml", 2, 10, 2, 36)
    assert d.hint == "did you mean 'scale-out'?"


def test_undefined_profile_without_a_close_match_lists_the_profiles() -> None:
    [d] = check(GOOD, {"SHIPYARD_PROFILE": "production"})
    assert d.code == "E401"
    assert d.hint == "expected one of 'local', 'scale-out'"


def test_embedded_profile_with_an_object_store_remote_is_e402() -> None:
    text = "project: demo\nprofiles:\n  local:\n    dvc: {remote: 's3://bucket/x'}\n"
    [d] = check(text)
    assert d.code == "E402"
    assert d.message == (
        "profile 'local' is embedded but its DVC remote 's3://bucket/x' is an object store"
    )
    assert d.span == Span("spec.yaml", 4, 19, 4, 34)
    assert d.hint == "set `kind: scale-out` for profiles that use remote engines"


def test_embedded_profile_with_a_local_folder_remote_is_fine() -> None:
    assert check("project: demo\nprofiles:\n  local: {dvc: {remote: /srv/dvc}}\n") == []


def test_profile_with_its_own_errors_is_not_also_reported_undefined() -> None:
    text = "project: demo\nprofile: prod\nprofiles:\n  prod: {kind: scale-outt}\n"
    assert [d.code for d in check(text)] == ["E103"]


def test_unset_variable_in_profile_is_reported_once_as_e010() -> None:
    # the empty value left by the unset variable is not a second, E401, problem
    assert [d.code for d in check("project: demo\nprofile: ${SHIPYARD_TEST_UNSET}\n")] == ["E010"]


def test_profiles_are_checked_even_when_datasets_are_broken() -> None:
    text = (
        "project: demo\nprofile: nope\n"
        "profiles:\n  local: {dvc: {remote: 'gs://b/x'}}\n"
        "datasets:\n  a: {}\n"
    )
    # the missing schema (E102); a missing `path:` is E210, reported once the dataset is whole
    assert sorted(d.code for d in check(text)) == ["E102", "E401", "E402"]
