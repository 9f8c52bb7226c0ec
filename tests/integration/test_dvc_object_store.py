"""Scale-out data versioning: a DVC remote in an S3 object store (a local S3 server, moto),
with credentials as secret references resolved at run time."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import SPEC, free_port, run_shipyard

pytestmark = pytest.mark.integration


@pytest.fixture
def s3() -> Iterator[tuple[str, object]]:
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="shipyard",
        aws_secret_access_key="s3cret",
        region_name="us-east-1",
    ).create_bucket(Bucket="ml-data")
    try:
        yield endpoint, server
    finally:
        server.stop()


def test_versions_are_pushed_to_and_restored_from_s3(
    make_project: Callable[..., Path], s3: tuple[str, Any]
) -> None:
    from shipyard.demo_data import write_customers

    endpoint, server = s3
    profile = (
        "    kind: scale-out\n"
        "    dvc:\n"
        "      remote: s3://ml-data/churn\n"
        f"      options: {{endpointurl: '{endpoint}', access_key_id: '${{secret:s3-key}}', "
        "secret_access_key: '${secret:s3-secret}'}\n"
    )
    spec = make_project(
        rows=100, spec=SPEC.format(port=free_port()).replace("  local:\n", "  local:\n" + profile)
    )
    secrets = {"SHIPYARD_SECRET_S3_KEY": "shipyard", "SHIPYARD_SECRET_S3_SECRET": "s3cret"}

    def shipyard(*args: str) -> subprocess.CompletedProcess[str]:
        return run_shipyard(spec, *args, extra_env=secrets)

    plan = shipyard("plan", "--json")
    assert "s3cret" not in plan.stdout  # secrets stay references in the plan
    first = shipyard("run", "validate-dataset", "customers")
    assert first.returncode == 0, first.stderr[-3000:]
    write_customers(spec.parent / "data" / "customers.parquet", rows=300, seed=5)
    assert shipyard("run", "validate-dataset", "customers").returncode == 0

    import boto3

    objects = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="shipyard",
        aws_secret_access_key="s3cret",
        region_name="us-east-1",
    ).list_objects_v2(Bucket="ml-data", Prefix="churn/")
    assert objects["KeyCount"] == 2  # one object per version
    versions = json.loads(shipyard("data", "versions", "customers", "--json").stdout)
    assert [v["current"] for v in versions] == [False, True]
    assert "s3cret" not in (spec.parent / ".dvc" / "config").read_text()

    shutil.rmtree(spec.parent / ".shipyard" / "dvc-cache")  # only S3 has the old bytes now
    restored = shipyard("data", "restore", "customers", versions[0]["md5"][:8])
    assert restored.returncode == 0, restored.stderr[-3000:]
    import pandas as pd

    assert len(pd.read_parquet(spec.parent / "data" / "customers.parquet")) == 100

    server.stop()  # the object store goes away: the push fails clearly, the data stays
    write_customers(spec.parent / "data" / "customers.parquet", rows=200, seed=8)
    denied = shipyard("run", "validate-dataset", "customers")
    assert denied.returncode == 1
    assert "could not push to the DVC remote 's3://ml-data/churn'" in denied.stderr, denied.stderr[
        -1500:
    ]
    assert "safe in the local DVC cache" in denied.stderr
    assert "s3cret" not in denied.stderr and "Traceback" not in denied.stderr
