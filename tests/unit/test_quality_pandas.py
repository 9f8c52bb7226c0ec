"""The pandas GX run: counts, percentages and sample bad values per rule, the caller's frame
untouched (copy-on-write while GX filters it, its aware datetimes converted on a view)."""

from __future__ import annotations

import pandas as pd

from shipyard.compiler import CompiledExpectation
from shipyard.data.quality import check_expectations


def _e(type_: str, rule: str, column: str | None = None, **kwargs: object) -> CompiledExpectation:
    args = {"column": column, **kwargs} if column else dict(kwargs)
    return CompiledExpectation(type=type_, kwargs=args, rule=rule, column=column)


def test_counts_samples_and_the_callers_frame_untouched() -> None:
    frame = pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 4],
            "at": pd.to_datetime([f"2024-01-0{d}" for d in (1, 2, 3, 4, 5)], utc=True),
            "charge": [10.0, -1.0, None, -2.0, 5.0],
            "email": ["a@x", "b@x", "nope", None, "e@x"],
        }
    )
    before = frame.copy(deep=True)
    report = check_expectations(
        frame,
        [
            _e("expect_column_values_to_be_between", "between(charge)", "charge", min_value=0),
            _e("expect_column_values_to_match_regex", "regex(email)", "email", regex="@"),
            _e("expect_column_values_to_be_unique", "unique(id)", "id"),
            _e(
                "expect_column_values_to_be_in_type_list",
                "schema(at: datetime)",
                "at",
                type_list=["datetime64[ns]", "datetime64[us]"],
            ),
        ],
        "t",
    )
    pd.testing.assert_frame_equal(frame, before)  # aware datetimes still aware, values as they were
    by_rule = {o.rule: o for o in report.outcomes}
    between = by_rule["between(charge)"]
    assert (between.success, between.unexpected_count, between.sample) == (False, 2, (-1.0, -2.0))
    assert between.unexpected_percent == 50.0  # of the non-null values, as GX counts
    regex = by_rule["regex(email)"]
    assert (regex.unexpected_count, regex.sample) == (1, ("nope",))
    assert by_rule["unique(id)"].sample == (4, 4)
    assert by_rule["schema(at: datetime)"].success
    assert by_rule["schema(at: datetime)"].observed == "datetime64"


def test_every_rule_has_its_own_outcome_even_where_gx_would_merge_them() -> None:
    # GX keeps one expectation per domain by default: every column-exists rule shares the
    # table's, and key(id) is the very not-null expectation not_null(id) is
    frame = pd.DataFrame({"id": [1, 2, None], "a": [1.0, 2.0, 3.0]})
    rules = [
        _e("expect_column_to_exist", "schema(id)", "id"),
        _e("expect_column_to_exist", "schema(a)", "a"),
        _e("expect_column_values_to_not_be_null", "key(id)", "id"),
        _e("expect_column_values_to_not_be_null", "not_null(id)", "id"),
    ]
    report = check_expectations(frame, rules, "t")
    assert [(o.rule, o.success, o.unexpected_count) for o in report.outcomes] == [
        ("schema(id)", True, None),
        ("schema(a)", True, None),
        ("key(id)", False, 1),
        ("not_null(id)", False, 1),
    ]
