"""The parquet copies feature views read (shipyard/features/sources.py): typed as declared, a
constant event time for static views, written atomically and again only when the file changed."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest

from shipyard.compiler import FeatureRepoStep
from shipyard.compiler.features import STATIC_EVENT_TIME, FeatureViewPlan
from shipyard.errors import ShipyardError
from shipyard.features.sources import STATIC_EVENT_AT, prepare_sources, refresh_copy

from .specs import compile_text, replaced

pytestmark = pytest.mark.usefixtures("no_state_dir_override")

SPEC = """\
project: shop
datasets:
  visits:
    path: data/visits.csv
    timestamp: seen_at
    schema:
      customer_id: int
      seen_at: datetime
      plan: str
      pages: int
      paying: bool
      tier: {category: [1, 2]}
      email: str
    expectations: [{not_null: customer_id}]
  accounts:
    path: data/accounts.jsonl
    key: customer_id
    schema: {customer_id: int, region: str, seats: int}
    expectations: [{not_null: customer_id}]
features:
  entities:
    customer: {join_key: customer_id}
  views:
    visit: {entity: customer, source: visits, features: [plan, pages, paying, tier]}
    account: {entity: customer, source: accounts, features: [region, seats]}
  services:
    shop_v1: [visit, account]
"""

VISITS = """\
customer_id,seen_at,plan,pages,paying,tier,email
1,2025-01-01T10:00:00Z,basic,3,true,1,a@x.org
2,2025-01-02T10:00:00Z,pro,,,2,b@x.org
"""


def _repo(tmp_path: Path, text: str = SPEC) -> FeatureRepoStep:
    return compile_text(tmp_path, text).step("features.repo", FeatureRepoStep)


def _write(tmp_path: Path, visits: str = VISITS) -> None:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "visits.csv").write_text(visits)
    (tmp_path / "data" / "accounts.jsonl").write_text(
        '{"customer_id": 1, "region": "north", "seats": 3}\n'
        '{"customer_id": 2, "region": "south", "seats": 10}\n'
    )


def _copy(view: FeatureViewPlan) -> pd.DataFrame:
    return pd.read_parquet(view.offline_path)


def test_a_csv_copy_keeps_the_views_columns_typed_as_declared(tmp_path: Path) -> None:
    _write(tmp_path)
    view = _repo(tmp_path).view("visit")
    assert refresh_copy(view)
    copy = _copy(view)
    assert list(copy.columns) == ["customer_id", "seen_at", "plan", "pages", "paying", "tier"]
    assert str(copy["seen_at"].dtype).startswith("datetime64") and copy["seen_at"].dt.tz
    assert copy["customer_id"].dtype == "int64"
    assert copy["pages"].tolist() == [3, pd.NA]  # an int with a gap stays an int, not 3.0
    assert copy["paying"].tolist() == [True, pd.NA]
    # categories as Feast serves them online (strings), so training sees what serving will
    assert copy["tier"].tolist() == ["1", "2"]


def test_a_static_copy_has_one_constant_event_time(tmp_path: Path) -> None:
    _write(tmp_path)
    view = _repo(tmp_path).view("account")
    assert view.static and view.source_format == "jsonl"
    assert refresh_copy(view)
    copy = _copy(view)
    assert copy[STATIC_EVENT_TIME].tolist() == [pd.Timestamp(STATIC_EVENT_AT)] * 2
    assert copy[["customer_id", "region", "seats"]].to_dict("list") == {
        "customer_id": [1, 2],
        "region": ["north", "south"],
        "seats": [3, 10],
    }


def test_a_copy_is_written_again_only_when_the_file_or_the_view_changed(tmp_path: Path) -> None:
    _write(tmp_path)
    repo = _repo(tmp_path)
    assert prepare_sources(repo.views) == ["visit", "account"]
    assert prepare_sources(repo.views) == []
    view = repo.view("visit")
    source, copy = Path(view.source_path), Path(view.offline_path)
    written = copy.stat().st_mtime_ns

    later = source.stat().st_mtime_ns + 5_000_000_000
    os.utime(source, ns=(later, later))  # touched, not changed: the md5 says so
    assert not refresh_copy(view)
    assert copy.stat().st_mtime_ns == written
    assert not refresh_copy(view)  # and the new time is recorded: no md5 this time either

    source.write_text(VISITS + "3,2025-01-03T10:00:00Z,plus,9,false,1,c@x.org\n")
    assert refresh_copy(view)
    assert _copy(view)["customer_id"].tolist() == [1, 2, 3]

    fewer = replaced(SPEC, ("features: [plan, pages, paying, tier]", "features: [plan]"))
    narrower = _repo(tmp_path, fewer).view("visit")
    assert refresh_copy(narrower)  # the same file, read differently
    assert list(_copy(narrower).columns) == ["customer_id", "seen_at", "plan"]
    # written through temporary files, none left behind
    assert sorted(p.name for p in copy.parent.iterdir()) == [
        "account.parquet",
        "account.parquet.json",
        "visit.parquet",
        "visit.parquet.json",
    ]


def test_a_copy_that_is_gone_is_written_again(tmp_path: Path) -> None:
    _write(tmp_path)
    view = _repo(tmp_path).view("visit")
    assert refresh_copy(view)
    Path(view.offline_path).unlink()
    assert refresh_copy(view)
    assert len(_copy(view)) == 2


def test_a_static_source_with_a_repeated_key_is_refused(tmp_path: Path) -> None:
    _write(tmp_path)
    (tmp_path / "data" / "accounts.jsonl").write_text(
        '{"customer_id": 1, "region": "north", "seats": 3}\n'
        '{"customer_id": 1, "region": "south", "seats": 4}\n'
    )
    view = _repo(tmp_path).view("account")
    with pytest.raises(ShipyardError) as info:
        refresh_copy(view)
    assert info.value.message == (
        f"static feature view 'account': 1 customer_id value repeats in {view.source_path} "
        "(e.g. 1); a static view holds one row per entity"
    )
    assert info.value.hint == (
        "keep one row per customer_id and declare `key: customer_id` on dataset 'accounts' so "
        "validate-dataset checks it, or give the dataset a `timestamp:` to keep the rows as history"
    )
    assert not Path(view.offline_path).exists()


def test_words_in_a_bool_column_are_refused_not_read_as_true(tmp_path: Path) -> None:
    _write(tmp_path, VISITS.replace(",true,", ",no,"))
    view = _repo(tmp_path).view("visit")
    with pytest.raises(
        ShipyardError, match=r"column 'paying' of .*visits\.csv is not bool"
    ) as info:
        refresh_copy(view)
    assert info.value.hint is not None and "validate-dataset visits" in info.value.hint


def test_a_missing_file_is_the_datasets_error(tmp_path: Path) -> None:
    view = _repo(tmp_path).view("visit")
    with pytest.raises(ShipyardError, match=re.escape("visits.csv' not found")) as info:
        refresh_copy(view)
    assert info.value.hint is not None and "shipyard data restore visits" in info.value.hint


def test_a_parquet_view_with_a_timestamp_reads_the_dataset_file_itself(tmp_path: Path) -> None:
    text = replaced(SPEC, ("path: data/visits.csv", "path: data/visits.parquet"))
    repo = _repo(tmp_path, text)
    view = repo.view("visit")
    assert not view.copied and view.offline_path == view.source_path
    assert prepare_sources([view]) == []  # nothing read (there is no file), nothing written
    assert not (Path(repo.repo_dir) / "sources").exists()
