"""Deterministic demo data: telecom customers with monthly snapshots and a churn label.

Each customer has an id, a signup date and one row per monthly snapshot (event_time), so the
data can feed point-in-time feature joins later. `simulate_traffic` draws live requests from the
same population, optionally drifted, for serving and monitoring demos.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

REGIONS = ["north", "south", "east", "west"]
PLANS = ["basic", "plus", "pro"]
PLAN_PRICE = {"basic": 25.0, "plus": 55.0, "pro": 95.0}


def customers_frame(rows: int = 5000, seed: int = 7, drift: float = 0.0) -> pd.DataFrame:
    """About `rows` snapshot rows; `drift` in [0, 1] shifts usage, calls and plan mix upward."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    snapshots = 4
    customers = max(1, rows // snapshots)
    ids = np.arange(1, customers + 1) + 10_000
    start = pd.Timestamp("2025-01-01", tz="UTC")
    signup = start - pd.to_timedelta(rng.integers(30, 3650, customers), unit="D")
    region = rng.choice(REGIONS, customers, p=[0.3, 0.25, 0.25, 0.2])
    plan_p = np.array([0.5, 0.35, 0.15]) * (1 - drift) + np.array([0.2, 0.35, 0.45]) * drift
    plan = rng.choice(PLANS, customers, p=plan_p / plan_p.sum())
    frames = []
    for month in range(snapshots):
        event_time = (
            start
            + pd.DateOffset(months=month)
            + pd.to_timedelta(rng.integers(0, 28 * 24, customers), unit="h")
        )
        tenure = ((event_time - signup).days // 30).astype(int)
        price = np.vectorize(PLAN_PRICE.get)(plan)
        monthly = np.round(
            price * rng.normal(1.0, 0.08, customers) + rng.normal(0, 3, customers),
            2,
        )
        calls = rng.poisson(1.2 + 2.5 * drift, customers)
        usage = np.round(rng.gamma(2.0, 6.0 * (1 + drift), customers), 2)
        logit = (
            0.3
            + 0.75 * calls
            - 0.035 * tenure
            + 0.02 * (monthly - 50)
            - 0.03 * usage
            + np.where(plan == "basic", 0.6, 0.0)
        )
        churned = rng.random(customers) < 1 / (1 + np.exp(-logit))
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": ids,
                    "event_time": event_time,
                    "signup_date": signup,
                    "region": region,
                    "plan": plan,
                    "tenure_months": tenure,
                    "monthly_charges": np.clip(monthly, 0, None),
                    "support_calls": calls,
                    "data_usage_gb": usage,
                    "email": [f"customer{i}@example.com" for i in ids],
                    "churned": churned,
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    frame["event_time"] = frame["event_time"].astype("datetime64[us, UTC]")
    frame["signup_date"] = frame["signup_date"].astype("datetime64[us, UTC]")
    return frame.sort_values(["event_time", "customer_id"], ignore_index=True)


def simulate_traffic(n: int, seed: int = 11, drift: float = 0.0) -> pd.DataFrame:
    """Live-like request rows (no label), drawn from the demo population with optional drift."""
    frame = customers_frame(max(n, 4), seed=seed, drift=drift).drop(columns=["churned"])
    return frame.sample(n=n, random_state=seed, replace=len(frame) < n).reset_index(drop=True)


def write_customers(path: Path, rows: int = 5000, seed: int = 7, drift: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    customers_frame(rows, seed, drift).to_parquet(path, index=False)
    return path


def append_month(path: Path, seed: int = 8, drift: float = 1.0) -> int:
    """A new snapshot of every customer in the file, drawn with `drift`, stamped just now (so
    an incremental materialization picks it up, as it would new production data); the number
    of rows added."""
    import numpy as np
    import pandas as pd

    old = pd.read_parquet(path)
    fresh = customers_frame(len(old), seed, drift)
    fresh = fresh.sort_values("event_time").groupby("customer_id").tail(1).copy()
    rng = np.random.default_rng(seed)
    now = pd.Timestamp.now(tz="UTC")
    fresh["event_time"] = (now - pd.to_timedelta(rng.integers(1, 30, len(fresh)), unit="s")).astype(
        "datetime64[us, UTC]"
    )
    both = pd.concat([old, fresh], ignore_index=True)
    both.sort_values(["event_time", "customer_id"], ignore_index=True).to_parquet(path, index=False)
    return len(fresh)
