"""Sensitive fields are hidden in logged requests, at any depth, without touching the original."""

from __future__ import annotations

from typing import Any

from shipyard.serving.masking import MASK, Masker


def test_matching_fields_are_masked_at_any_depth_case_insensitively() -> None:
    masker = Masker(["email", "*_token", "card_*"])
    request: dict[str, Any] = {
        "Email": "a@b.c",
        "plan": "pro",
        "auth": {"refresh_TOKEN": "abc", "scope": "read"},
        "rows": [{"card_number": "4111", "amount": 3}, ("x", {"email": None})],
    }
    assert masker.mask(request) == {
        "Email": MASK,
        "plan": "pro",
        "auth": {"refresh_TOKEN": MASK, "scope": "read"},
        "rows": [{"card_number": MASK, "amount": 3}, ("x", {"email": MASK})],
    }


def test_masking_copies_and_leaves_the_original_alone() -> None:
    request = {"email": "a@b.c", "nested": {"email": "d@e.f"}}
    masked = Masker(["email"]).mask(request)
    assert request == {"email": "a@b.c", "nested": {"email": "d@e.f"}}
    assert masked["nested"] is not request["nested"]


def test_a_masked_field_hides_its_whole_value() -> None:
    assert Masker(["address"]).mask({"address": {"street": "Main", "zip": 1}}) == {"address": MASK}


def test_without_patterns_the_value_is_returned_as_is() -> None:
    request = {"email": "a@b.c"}
    masker = Masker([])
    assert masker.mask(request) is request
    assert not masker.masks("email")


def test_masks_matches_whole_names_only() -> None:
    masker = Masker(["email", "*_token"])
    assert masker.masks("EMAIL")
    assert masker.masks("api_token")
    assert not masker.masks("email_verified")
    assert not masker.masks("tokens")
    assert masker.masks("api_token")  # answered from the cache, still right


def test_scalars_pass_through() -> None:
    masker = Masker(["email"])
    assert masker.mask("email") == "email"
    assert masker.mask(3) == 3
    assert masker.mask(None) is None


def test_flat_rows_are_masked_without_copying_clean_ones() -> None:
    masker = Masker(["email", "*_token"])
    clean = {"plan": "pro", "tenure": 3}
    assert masker.mask_flat(clean) is clean
    row = {"email": "a@b.c", "api_token": "t", "plan": "pro"}
    masked = masker.mask_flat(row)
    assert masked == {"email": MASK, "api_token": MASK, "plan": "pro"}
    assert row["email"] == "a@b.c"  # the caller's row is untouched
    assert masker.mask_flat(row) == masked  # the cached layout gives the same answer
