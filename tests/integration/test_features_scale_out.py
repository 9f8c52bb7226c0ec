"""The feature store on real engines: Redis online store and a SQL registry on PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from support import FEATURE_SPEC, compile_spec, free_port, run_shipyard, throwaway_database

pytestmark = pytest.mark.integration
T = pd.Timestamp


def _write_data(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    pd.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "event_time": [
                T("2025-01-01", tz="UTC"),
                T("2025-03-01", tz="UTC"),
                T("2025-02-01", tz="UTC"),
            ],
            "tenure": [1, 3, 10],
            "plan": ["basic", "pro", "plus"],
        }
    ).to_parquet(folder / "profiles.parquet", index=False)
    pd.DataFrame(
        {
            "customer_id": [1, 2],
            "event_time": [T("2025-04-01", tz="UTC")] * 2,
            "churned": [True, False],
        }
    ).to_parquet(folder / "labels.parquet", index=False)


def _teardown(spec: Path) -> None:
    """Remove the project's keys from the shared Redis (Feast's teardown)."""
    from shipyard.compiler import FeatureRepoStep
    from shipyard.features.repo import open_store

    open_store(compile_spec(spec).step("features.repo", FeatureRepoStep)).teardown()


@pytest.fixture
def scale_out(make_project: Callable[..., Path]) -> Iterator[Path]:
    with throwaway_database("shipyard_feast", create=True) as database:
        profile = (
            "    kind: scale-out\n    feast: {online_store: 'redis://127.0.0.1:6379', "
            f"registry: 'postgresql://postgres@127.0.0.1:5432/{database}'}}\n"
        )
        text = FEATURE_SPEC.format(port=free_port(), profile=profile).replace(
            "project: feature-test", f"project: feature-test-{uuid.uuid4().hex[:6]}"
        )
        spec = make_project(rows=0, spec=text)
        _write_data(spec.parent / "data")
        try:
            yield spec
        finally:
            _teardown(spec)


def test_redis_online_store_and_postgresql_registry(scale_out: Path) -> None:
    applied = run_shipyard(scale_out, "features", "apply")
    assert applied.returncode == 0, applied.stderr
    assert "profile_v1" in applied.stdout
    planned = run_shipyard(scale_out, "features", "plan")
    assert "No changes to registry" in planned.stdout, planned.stdout
    done = run_shipyard(scale_out, "run", "materialize-features", "profile")
    assert done.returncode == 0, done.stderr[-2000:]
    got = run_shipyard(scale_out, "features", "get", "profile_v1", "customer_id=1", "customer_id=9")
    assert got.returncode == 0, got.stderr
    rows = json.loads(got.stdout)
    assert rows[0]["tenure"] == 3 and rows[0]["plan"] == "pro"
    assert rows[1]["tenure"] is None
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    assert client.dbsize() >= 2, "the Redis online store holds one hash per entity key"


def test_redis_down_is_a_clear_error(make_project: Callable[..., Path]) -> None:
    port = free_port()
    profile = f"    kind: scale-out\n    feast: {{online_store: 'redis://127.0.0.1:{port}'}}\n"
    spec = make_project(rows=0, spec=FEATURE_SPEC.format(port=free_port(), profile=profile))
    _write_data(spec.parent / "data")
    assert run_shipyard(spec, "features", "apply").returncode == 0  # registry is a local file
    got = run_shipyard(spec, "features", "get", "profile_v1", "customer_id=1")
    assert got.returncode == 1
    assert "online lookup in feature service 'profile_v1' failed" in got.stderr
    assert "Traceback" not in got.stderr


STATIC_SPEC = """\
project: {project}
profiles:
  local:
    prefect: {{port: {port}}}
{profile}
datasets:
  accounts:
    path: data/accounts.csv
    key: customer_id
    schema: {{customer_id: int, region: str, seats: int}}
    expectations: [{{not_null: [customer_id]}}]
features:
  entities:
    customer: {{join_key: customer_id}}
  views:
    account: {{entity: customer, source: accounts, features: [region, seats]}}
  services:
    account_v1: [account]
"""


def test_a_static_csv_view_on_redis_serves_the_files_latest_rows(
    make_project: Callable[..., Path],
) -> None:
    """Redis keeps a row only when its event time is newer than the stored one; a static view's
    rows all have the epoch, and are rewritten on every materialization all the same."""
    profile = "    kind: scale-out\n    feast: {online_store: 'redis://127.0.0.1:6379'}\n"
    text = STATIC_SPEC.format(
        project=f"static-test-{uuid.uuid4().hex[:6]}", port=free_port(), profile=profile
    )
    spec = make_project(rows=0, spec=text)
    (spec.parent / "data").mkdir()
    accounts = spec.parent / "data" / "accounts.csv"
    accounts.write_text("customer_id,region,seats\n1,north,3\n2,south,10\n")
    try:
        applied = run_shipyard(spec, "features", "apply")
        assert applied.returncode == 0, applied.stderr
        assert "Wrote the parquet source of feature view account" in applied.stdout
        for seats in (3, 4):
            accounts.write_text(f"customer_id,region,seats\n1,north,{seats}\n2,south,10\n")
            done = run_shipyard(spec, "run", "materialize-features", "account")
            assert done.returncode == 0, done.stderr[-2000:]
            got = run_shipyard(spec, "features", "get", "account_v1", "customer_id=1")
            assert got.returncode == 0, got.stderr
            assert json.loads(got.stdout) == [{"customer_id": 1, "region": "north", "seats": seats}]
    finally:
        _teardown(spec)
