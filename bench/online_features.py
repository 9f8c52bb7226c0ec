"""Latency of one online feature lookup (one entity, ten features): Shipyard against bare Feast.

Builds a throwaway project in a temp folder (a seeded parquet of customers x snapshots, a
pipelines.yaml with one entity, one ten-feature view and one feature service), compiles it with
Shipyard, applies and materializes it, then times, for each online store (SQLite embedded, and
Redis at 127.0.0.1:6379 when it answers):

- shipyard   `OnlineFeatures(repo).get(service, [{"customer_id": k}])`
- feast      `store.get_online_features(features=<the FeatureService>, entity_rows=[...])
             .to_dict()` on the same FeatureStore, the service object fetched once (the cheapest
             way to use Feast, so the ratio is Shipyard's whole overhead)
- feast+svc  the same call with `store.get_feature_service(name)` inside it, as often written;
             that re-reads the registry on every call (allow_cache=False), so it is timed after
             the pair, on a tenth as many keys, and shown for scale only

shipyard and feast run interleaved in one process: every batch of keys goes through both, the
order swapped per batch (A B, B A, ...), so machine noise (GC, CPU frequency, neighbours) hits
both alike. Each lookup is timed alone with time.perf_counter_ns, after a warm-up. "cold" is a
freshly opened store, imports already done: the open (Shipyard's also writes the repository
files), then its first lookup; the median of a few repeats.

How to read it: the ratio column is shipyard / feast for p50 and p99; ~1.00x means the wrapper
is free, and the target is <= 1.05x at p50. lookups/s is 1 / mean latency, one thread.

    .venv/bin/python bench/online_features.py                  # both stores, 2,000 lookups a side
    .venv/bin/python bench/online_features.py --lookups 10000 --stores sqlite
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import logging
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

from shipyard.errors import ShipyardError
from shipyard.settings import TELEMETRY_OFF

os.environ.update(TELEMETRY_OFF)  # before anything imports feast: it phones home on import

REDIS_URL = "redis://127.0.0.1:6379"
TARGET_RATIO = 1.05
ENTITY_KEY = "customer_id"
VIEW = "customer_profile"
SERVICE = "churn_v1"
SNAPSHOT_DAYS = (28, 21, 14, 7, 1)
"""Snapshot ages in days: all inside the view's ttl, so the newest one of each customer serves."""

FEATURES: dict[str, str] = {
    "region": "{category: [north, south, east, west]}",
    "plan": "{category: [basic, plus, pro]}",
    "contract": "str",
    "tenure_months": "int",
    "support_calls": "int",
    "devices": "int",
    "monthly_charges": "float",
    "data_usage_gb": "float",
    "balance": "float",
    "satisfaction": "float",
}

Lookup = Callable[[int], Any]


@dataclass(frozen=True)
class Stats:
    """Summary of one side's per-lookup latencies, in microseconds."""

    n: int
    p50: float
    p99: float
    mean: float

    @classmethod
    def of(cls, samples_ns: Sequence[int]) -> Stats:
        ordered = sorted(samples_ns)
        return cls(
            n=len(ordered),
            p50=_percentile(ordered, 50) / 1e3,
            p99=_percentile(ordered, 99) / 1e3,
            mean=statistics.fmean(ordered) / 1e3,
        )

    @property
    def per_second(self) -> float:
        return 1e6 / self.mean


def _percentile(ordered: Sequence[int], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# -- the project --------------------------------------------------------------------------------


def write_dataset(path: Path, customers: int, now: datetime, seed: int) -> None:
    """customers x snapshots rows: customer_id, tz-aware event_time and the ten features."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = customers * len(SNAPSHOT_DAYS)
    ids = np.tile(np.arange(1, customers + 1, dtype=np.int64), len(SNAPSHOT_DAYS))
    ages = np.repeat([timedelta(days=d) for d in SNAPSHOT_DAYS], customers)
    frame = pd.DataFrame(
        {
            ENTITY_KEY: ids,
            "event_time": pd.to_datetime([now - age for age in ages], utc=True),
            "region": rng.choice(["north", "south", "east", "west"], rows),
            "plan": rng.choice(["basic", "plus", "pro"], rows),
            "contract": rng.choice(["monthly", "yearly", "two-year"], rows),
            "tenure_months": rng.integers(0, 120, rows),
            "support_calls": rng.poisson(1.5, rows),
            "devices": rng.integers(1, 6, rows),
            "monthly_charges": rng.gamma(4.0, 15.0, rows).round(2),
            "data_usage_gb": rng.lognormal(2.5, 0.8, rows).round(3),
            "balance": rng.normal(0.0, 40.0, rows).round(2),
            "satisfaction": rng.uniform(0.0, 1.0, rows),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def spec_text(project: str, online_store: str | None) -> str:
    """pipelines.yaml: one dataset, one entity, one ten-feature view, one feature service."""
    profile = f"{{feast: {{online_store: '{online_store}'}}}}" if online_store else "{}"
    schema = "\n".join(f"      {name}: {kind}" for name, kind in FEATURES.items())
    return f"""\
project: {project}
profile: bench
profiles:
  bench: {profile}
datasets:
  customers:
    path: data/customers.parquet
    key: [{ENTITY_KEY}, event_time]
    timestamp: event_time
    schema:
      {ENTITY_KEY}: int
      event_time: datetime
{schema}
features:
  entities:
    customer: {{join_key: {ENTITY_KEY}}}
  views:
    {VIEW}:
      entity: customer
      source: customers
      ttl: 45d
      features: [{", ".join(FEATURES)}]
  services:
    {SERVICE}: [{VIEW}]
"""


def build_repo(folder: Path, project: str, online_store: str | None) -> Any:
    """Write pipelines.yaml, load and validate it, and compile it: the FeatureRepoStep."""
    from shipyard import load_project
    from shipyard.compiler import FeatureRepoStep

    spec_path = folder / "pipelines.yaml"
    spec_path.write_text(spec_text(project, online_store), encoding="utf-8")
    loaded = load_project(spec_path)
    if loaded.plan is None:
        raise SystemExit(f"the generated spec does not validate:\n{loaded.render()}")
    return loaded.plan.step("features.repo", FeatureRepoStep)


def redis_problem(url: str) -> str | None:
    """None when Redis answers PING at url, else why not."""
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
    except Exception as exc:  # connection refused, timeout, auth: all mean "skip"
        return f"{type(exc).__name__}: {exc}"
    return None


def delete_redis_keys(url: str, project: str) -> int:
    """Feast's Redis keys end with the project name: delete this run's, return how many."""
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=b"*" + project.encode(), count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    return len(keys)


# -- timing -------------------------------------------------------------------------------------


def lookups(repo: Any) -> tuple[dict[str, Lookup], Lookup]:
    """The A/B pair on one FeatureStore (Shipyard's client, and its store used bare), and Feast's
    call with the service fetched each time (timed apart: it is ~10x slower)."""
    from shipyard.features.online import OnlineFeatures

    client = OnlineFeatures(repo)
    store = client.store
    service = store.get_feature_service(SERVICE)

    def shipyard(key: int) -> Any:
        return client.get(SERVICE, [{ENTITY_KEY: key}])

    def feast(key: int) -> Any:
        return store.get_online_features(
            features=service, entity_rows=[{ENTITY_KEY: key}]
        ).to_dict()

    def feast_service_per_call(key: int) -> Any:
        return store.get_online_features(
            features=store.get_feature_service(SERVICE), entity_rows=[{ENTITY_KEY: key}]
        ).to_dict()

    return {"shipyard": shipyard, "feast": feast}, feast_service_per_call


def time_interleaved(
    sides: dict[str, Lookup], keys: Sequence[int], batch: int
) -> dict[str, list[int]]:
    """Per-lookup ns for each side; each batch of keys goes through every side, order rotated."""
    names = list(sides)
    samples: dict[str, list[int]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    gc.collect()  # same clean heap for every side; collections during the run count, as in serving
    for number, start in enumerate(range(0, len(keys), batch)):
        chunk = keys[start : start + batch]
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            lookup, out = sides[name], samples[name]
            for key in chunk:
                begin = clock()
                lookup(key)
                out.append(clock() - begin)
    return samples


def time_cold(repo: Any, key: int, repeats: int) -> dict[str, tuple[float, float]]:
    """Median (open ms, first lookup ms) of freshly opened stores, alternating which goes first."""
    from feast import FeatureStore

    from shipyard.features.online import OnlineFeatures

    def shipyard() -> tuple[int, int]:
        begin = time.perf_counter_ns()
        client = OnlineFeatures(repo)
        opened = time.perf_counter_ns()
        client.get(SERVICE, [{ENTITY_KEY: key}])
        return opened - begin, time.perf_counter_ns() - opened

    def feast() -> tuple[int, int]:
        begin = time.perf_counter_ns()
        store = FeatureStore(repo_path=repo.repo_dir)
        opened = time.perf_counter_ns()
        store.get_online_features(
            features=store.get_feature_service(SERVICE), entity_rows=[{ENTITY_KEY: key}]
        ).to_dict()
        return opened - begin, time.perf_counter_ns() - opened

    sides = {"shipyard": shipyard, "feast": feast}
    shipyard()  # untimed: the first open in the process pays for imports, not for a cold store
    runs: dict[str, list[tuple[int, int]]] = {name: [] for name in sides}
    for repeat in range(repeats):
        order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
        for name in order:
            runs[name].append(sides[name]())
    return {
        name: (
            statistics.median(o for o, _ in pairs) / 1e6,
            statistics.median(f for _, f in pairs) / 1e6,
        )
        for name, pairs in runs.items()
    }


def check_same_answer(sides: dict[str, Lookup], key: int) -> None:
    """Shipyard and Feast return the same features for a key, else the timing compares nothing."""
    shipyard = sides["shipyard"](key)[0]
    feast = {name: values[0] for name, values in sides["feast"](key).items()}
    if shipyard != feast:
        raise SystemExit(f"shipyard and feast disagree for {ENTITY_KEY}={key}: {shipyard} {feast}")
    missing = [f for f in FEATURES if shipyard.get(f) is None]
    if missing:
        raise SystemExit(f"no online values for {missing} ({ENTITY_KEY}={key}): not materialized?")


# -- one store ----------------------------------------------------------------------------------


def bench_store(kind: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Build, apply and materialize the project for one online store, then time the sides."""
    from shipyard.features.materialize import materialize_view

    project = f"bench-online-{kind}-{uuid.uuid4().hex[:8]}"
    online_store = REDIS_URL if kind == "redis" else None
    now = datetime.now(UTC).replace(microsecond=0)
    write_dataset(folder / "data" / "customers.parquet", args.customers, now, args.seed)
    repo = build_repo(folder, project, online_store)
    rng = random.Random(args.seed)
    existing = range(1, args.customers + 1)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # Feast prints apply and progress output
            materialized = materialize_view(repo, VIEW, now)
        cold = time_cold(repo, rng.choice(existing), args.cold)
        sides, service_per_call = lookups(repo)
        check_same_answer(sides, rng.choice(existing))
        time_interleaved(sides, [rng.choice(existing) for _ in range(args.warmup)], args.batch)
        keys = [rng.choice(existing) for _ in range(args.lookups)]
        samples = time_interleaved(sides, keys, args.batch)
        slow = {"feast+svc": service_per_call}
        time_interleaved(slow, keys[: args.warmup], args.batch)
        samples |= time_interleaved(slow, keys[: max(args.lookups // 10, 1)], args.batch)
    finally:  # the temp folder holds the rest; Redis outlives it
        deleted = delete_redis_keys(REDIS_URL, repo.project) if kind == "redis" else None
    return {
        "kind": kind,
        "project": repo.project,
        "rows": materialized["rows"],
        "cold": cold,
        "stats": {name: Stats.of(values) for name, values in samples.items()},
        "deleted_keys": deleted,
    }


# -- report -------------------------------------------------------------------------------------


def print_report(result: dict[str, Any]) -> bool:
    """The table for one store; True when the p50 ratio meets the target."""
    stats: dict[str, Stats] = result["stats"]
    base = stats["feast"]
    print(
        f"\n== {result['kind']} online store (Feast project {result['project']}; "
        f"{result['rows']:,} rows materialized)"
    )
    print(
        f"{'side':<10} {'lookups':>8} {'p50 us':>9} {'p99 us':>9} {'mean us':>9} "
        f"{'lookups/s':>10} {'p50 x':>7} {'p99 x':>7}"
    )
    for name, s in stats.items():
        print(
            f"{name:<10} {s.n:>8} {s.p50:>9.1f} {s.p99:>9.1f} {s.mean:>9.1f} "
            f"{s.per_second:>10,.0f} {s.p50 / base.p50:>6.2f}x {s.p99 / base.p99:>6.2f}x"
        )
    for name, (opened, first) in result["cold"].items():
        print(f"cold {name:<10} open {opened:>7.1f} ms   first lookup {first:>7.2f} ms")
    if result["deleted_keys"] is not None:
        print(f"redis: deleted {result['deleted_keys']:,} keys of project {result['project']}")
    ship = stats["shipyard"]
    p50, p99 = ship.p50 / base.p50, ship.p99 / base.p99
    holds = p50 <= TARGET_RATIO
    print(
        f"shipyard/feast: p50 {p50:.2f}x, p99 {p99:.2f}x; target p50 <= {TARGET_RATIO:.2f}x: "
        f"{'holds' if holds else 'MISSED'}"
    )
    return holds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=2000, help="timed lookups per side")
    parser.add_argument("--warmup", type=int, default=50, help="untimed lookups per side first")
    parser.add_argument("--batch", type=int, default=20, help="lookups per side per turn")
    parser.add_argument("--cold", type=int, default=5, help="fresh stores opened per side")
    parser.add_argument("--customers", type=int, default=2000, help="entity keys in the data")
    parser.add_argument("--seed", type=int, default=7, help="seed of the data and the keys")
    parser.add_argument(
        "--stores", nargs="+", choices=["sqlite", "redis"], default=["sqlite", "redis"]
    )
    parser.add_argument(
        "--assert",
        dest="assert_target",
        action="store_true",
        help=f"exit 1 when a store's shipyard/feast p50 ratio is over {TARGET_RATIO}",
    )
    args = parser.parse_args(argv)

    logging.getLogger("feast").setLevel(logging.WARNING)  # materialize logs per view otherwise
    print(
        f"one entity, {len(FEATURES)} features; {args.customers:,} customers x "
        f"{len(SNAPSHOT_DAYS)} snapshots; {args.lookups:,} lookups per side after "
        f"{args.warmup} warm-up, interleaved in batches of {args.batch}; "
        f"python {sys.version.split()[0]}, feast {version('feast')}"
    )
    verdicts = []
    for kind in args.stores:
        if kind == "redis" and (problem := redis_problem(REDIS_URL)):
            print(f"\n== redis online store: skipped, {REDIS_URL} does not answer ({problem})")
            continue
        with tempfile.TemporaryDirectory(prefix=f"shipyard-bench-online-{kind}-") as tmp:
            try:
                result = bench_store(kind, Path(tmp), args)
            except ShipyardError as exc:  # e.g. Redis went away after the ping
                print(f"\n== {kind} online store: failed\n{exc.render()}")
                verdicts.append(False)
                continue
            verdicts.append(print_report(result))
    return 1 if args.assert_target and not all(verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
