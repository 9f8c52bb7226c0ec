"""Data drift on 1M rows x 25 columns: Evidently 0.7's DataDriftPreset against Shipyard's engine.

The data are `/work/shared/bench/drift_baseline.py`'s (seed 42): reference and current frames of
`--rows` rows, 20 numeric + 5 categorical columns (object strings), drift injected into num_00,
num_04, num_08, num_12, num_16 (mean shift, spread x1.6, 30% mixture), cat_00 and cat_03 (mass
moved off the top level, 5% to an unseen one). Each approach runs in its own subprocess:

    evidently  Dataset.from_pandas for both frames, Report([DataDriftPreset()]).run(...), dict()
               (its defaults above 1000 rows: Wasserstein / reference sd >= 0.1 for numeric,
               Jensen-Shannon >= 0.1 for categorical columns)
    shipyard   shipyard.stats.drift.build_profile(reference) + drift_report(profile, current):
               all five statistics (PSI, KS, chi-square, JS, Wasserstein) for every column

CPU is ru_utime + ru_stime of the worker around the computation (data generation and imports
excluded). Memory is what the computation needed on top of what was resident when it started:
the kernel's peak mark (VmHWM) is reset through /proc/self/clear_refs just before and read after
(elsewhere: the ru_maxrss increase, a lower bound). Targets: Evidently / Shipyard CPU >= 20x,
Shipyard's extra memory <= 200 MB, and the same drifted columns. Without `evidently` importable
the Evidently figures are the ones recorded in /work/shared/research/anchors-drift.md (1M rows:
126 s CPU, +1,564 MB). Exit code 1 when a target is missed.

    .venv/bin/python bench/drift.py                 # 1M rows, ~3 min (Evidently ~2.5 of them)
    .venv/bin/python bench/drift.py --rows 100000   # ~30 s
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RECORDED_EVIDENTLY = {  # anchors-drift.md section 4, Evidently 0.7.23, median of 3, ref = cur
    10_000: (3.68, 24.0),
    100_000: (10.81, 162.0),
    1_000_000: (125.98, 1564.0),
}
CPU_RATIO_TARGET = 20.0
MEMORY_TARGET_MB = 200.0


def make_data(rows: int, num_cols: int, cat_cols: int, seed: int) -> tuple[Any, Any, list[str]]:
    """drift_baseline.py's `make_data` (same seed, same draws): (reference, current, truth)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    ref: dict[str, Any] = {}
    cur: dict[str, Any] = {}
    truth: list[str] = []

    def base_sample(kind: int, n: int, i: int) -> Any:
        loc = float(i)
        if kind == 0:
            return rng.normal(loc, 1.0 + 0.1 * i, n)
        if kind == 1:
            return rng.lognormal(0.0, 0.5, n) + loc
        if kind == 2:
            return rng.exponential(2.0, n) + loc
        if kind == 3:
            return rng.uniform(loc, loc + 10.0, n)
        return rng.gamma(2.0, 2.0, n) + loc

    drift_kinds = ("shift", "scale", "mixture")
    for i in range(num_cols):
        name = f"num_{i:02d}"
        kind = i % 5
        r = base_sample(kind, rows, i)
        c = base_sample(kind, rows, i)
        if i % 4 == 0:
            truth.append(name)
            mode = drift_kinds[(i // 4) % len(drift_kinds)]
            sd = float(np.std(r))
            mu = float(np.mean(r))
            if mode == "shift":
                c = c + 0.5 * sd
            elif mode == "scale":
                c = mu + (c - mu) * 1.6
            else:
                k = int(0.3 * rows)
                c[:k] = c[:k] + 2.0 * sd
                rng.shuffle(c)
        ref[name] = r
        cur[name] = c
    for j in range(cat_cols):
        name = f"cat_{j:02d}"
        k = (3, 5, 10, 20, 50)[j % 5]
        labels = np.array([f"{name}_v{v}" for v in range(k + 1)], dtype=object)
        w = 1.0 / np.arange(1, k + 1)
        p_ref = np.append(w / w.sum(), 0.0)
        p_cur = p_ref.copy()
        if j % 3 == 0:
            truth.append(name)
            moved = 0.4 * p_cur[0]
            p_cur[0] -= moved
            p_cur[1:k] += (moved - 0.05) / (k - 1)
            p_cur[k] = 0.05
        ref[name] = labels[rng.choice(k + 1, size=rows, p=p_ref)]
        cur[name] = labels[rng.choice(k + 1, size=rows, p=p_cur / p_cur.sum())]
    return pd.DataFrame(ref), pd.DataFrame(cur), sorted(truth)


# ------------------------------------------------------------------------------ workers


def run_evidently(ref: Any, cur: Any, num: list[str], cat: list[str]) -> dict[str, Any]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    dd = DataDefinition(numerical_columns=num, categorical_columns=cat)
    r = Dataset.from_pandas(ref, data_definition=dd)
    c = Dataset.from_pandas(cur, data_definition=dd)
    snapshot = Report([DataDriftPreset()]).run(reference_data=r, current_data=c)
    d = snapshot.dict()
    drifted, methods = [], set()
    for m in d["metrics"]:
        cfg = m.get("config", {})
        if not cfg.get("type", "").endswith("ValueDrift"):
            continue
        method, thr, val = cfg["method"], float(cfg["threshold"]), float(m["value"])
        methods.add(f"{method} (thr {thr:g})")
        if (val < thr) if "p_value" in method else (val >= thr):
            drifted.append(cfg["column"])
    return {"drifted": {"evidently": sorted(drifted)}, "methods": sorted(methods)}


def run_shipyard(ref: Any, cur: Any, num: list[str], cat: list[str]) -> dict[str, Any]:
    from shipyard.stats.drift import build_profile, drift_report

    t0 = time.process_time()
    profile = build_profile({c: ref[c] for c in num + cat}, categorical=cat)
    t1 = time.process_time()
    window = {c: cur[c] for c in num + cat}
    like_evidently = {**dict.fromkeys(num, "wasserstein"), **dict.fromkeys(cat, "js")}
    report = drift_report(profile, window, statistics=like_evidently, default_threshold=0.1)
    t2 = time.process_time()
    stats_of = {c: d.statistics for c, d in report.columns.items()}
    alpha = 0.05 / len(stats_of)  # Bonferroni over the columns, as the scipy baseline
    flags = {
        "shipyard: wasserstein/sd (num), js (cat) >= 0.1": report.drifted,
        "shipyard: psi >= 0.2": sorted(c for c, s in stats_of.items() if (s.psi or 0) >= 0.2),
        "shipyard: js >= 0.1": sorted(
            c for c, s in stats_of.items() if (s.js_distance or 0) >= 0.1
        ),
        f"shipyard: ks (num), chi2 (cat) p < 0.05/{len(stats_of)}": sorted(
            c
            for c, s in stats_of.items()
            if (s.ks_p_value if s.kind == "numeric" else s.chi2_p_value) is not None
            and (s.ks_p_value if s.kind == "numeric" else s.chi2_p_value) < alpha  # type: ignore[operator]
        ),
    }
    return {
        "drifted": flags,
        "phases_cpu_s": {"profile": t1 - t0, "window": t2 - t1},
        "profile_json_bytes": len(profile.to_json()),
    }


def _cpu_s() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def worker(method: str, rows: int, seed: int) -> dict[str, Any]:
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import scipy.stats  # noqa: F401

    if method == "evidently":
        import evidently.presets  # noqa: F401
    else:
        import shipyard.stats.drift  # noqa: F401
    ref, cur, truth = make_data(rows, 20, 5, seed)
    num = [c for c in ref.columns if c.startswith("num_")]
    cat = [c for c in ref.columns if c.startswith("cat_")]
    gc.collect()
    maxrss_before = _maxrss_mb()
    reset = _reset_peak()
    rss_before = _status_mb("VmRSS")
    cpu0, wall0 = _cpu_s(), time.perf_counter()
    res = (run_evidently if method == "evidently" else run_shipyard)(ref, cur, num, cat)
    cpu, wall = _cpu_s() - cpu0, time.perf_counter() - wall0
    hwm = _status_mb("VmHWM")
    maxrss_delta = max(0.0, _maxrss_mb() - maxrss_before)
    if reset and hwm is not None and rss_before is not None:
        extra, how = hwm - rss_before, "VmHWM reset via /proc/self/clear_refs"
    else:
        extra, how = maxrss_delta, "ru_maxrss increase (lower bound)"
    res.update(
        method=method,
        rows=rows,
        cpu_s=cpu,
        wall_s=wall,
        extra_mb=extra,
        maxrss_delta_mb=maxrss_delta,
        memory_method=how,
        peak_rss_mb=max(_maxrss_mb(), hwm or 0.0),
        truth=truth,
    )
    return res


# ------------------------------------------------------------------------------- driver


def _run(method: str, rows: int, seed: int, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", method, "--rows", str(rows), "--seed", str(seed)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"{method} worker failed (rc={proc.returncode}):\n{err[-3000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _evidently_importable() -> bool:
    probe = [sys.executable, "-c", "import evidently.presets"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per frame (ref = cur)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--timeout", type=float, default=400.0, help="seconds per worker")
    parser.add_argument("--json", default=None, help="write both workers' results here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.rows, args.seed), default=float))
        return 0

    print(f"# rows={args.rows:,} (ref = cur), 20 numeric + 5 categorical columns, seed={args.seed}")
    results: dict[str, dict[str, Any]] = {}
    if _evidently_importable():
        results["evidently"] = _run("evidently", args.rows, args.seed, args.timeout)
    results["shipyard"] = _run("shipyard", args.rows, args.seed, args.timeout)
    ship = results["shipyard"]
    truth = ship["truth"]

    print("| approach | CPU s | wall s | extra memory MB | ru_maxrss delta MB | peak RSS MB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        print(
            f"| {name} | {r['cpu_s']:.2f} | {r['wall_s']:.2f} | {r['extra_mb']:.0f} | "
            f"{r['maxrss_delta_mb']:.0f} | {r['peak_rss_mb']:.0f} |"
        )
    if "evidently" in results:
        ev_cpu, ev_mb = results["evidently"]["cpu_s"], results["evidently"]["extra_mb"]
        ev_flags = results["evidently"]["drifted"]["evidently"]
        source = "measured in this run"
    elif args.rows in RECORDED_EVIDENTLY:
        ev_cpu, ev_mb = RECORDED_EVIDENTLY[args.rows]
        ev_flags, source = truth, "recorded in anchors-drift.md (evidently not importable)"
        print(f"| evidently (recorded) | {ev_cpu:.2f} | | {ev_mb:.0f} | | |")
    else:
        print("evidently not importable and no recorded figure for this size: no ratio")
        return 1
    ph = ship["phases_cpu_s"]
    print(
        f"# shipyard phases (CPU s): profile {ph['profile']:.2f}, window {ph['window']:.2f}; "
        f"profile JSON {ship['profile_json_bytes'] / 1024:.0f} KiB"
    )
    ratio = ev_cpu / ship["cpu_s"]
    print(
        f"# Evidently figures: {source}; its rules: {results.get('evidently', {}).get('methods')}"
    )
    print(f"injected drift: {truth}")
    print(f"evidently flags: {ev_flags} ({'== injected' if ev_flags == truth else 'DIFFERS'})")
    same = True
    for label, flags in ship["drifted"].items():
        ok = flags == ev_flags
        print(f"{label}: {'same columns as Evidently' if ok else 'DIFFERS: ' + str(flags)}")
        if label.startswith("shipyard: wasserstein"):
            same = ok
    checks = {
        f"CPU ratio evidently/shipyard {ratio:.1f}x >= {CPU_RATIO_TARGET:g}x": ratio
        >= CPU_RATIO_TARGET,
        f"shipyard extra memory {ship['extra_mb']:.0f} MB <= {MEMORY_TARGET_MB:g} MB": ship[
            "extra_mb"
        ]
        <= MEMORY_TARGET_MB,
        "same drifted columns as Evidently (same rule: wasserstein/sd, js >= 0.1)": same,
    }
    for label, ok in checks.items():
        print(f"{'target met' if ok else 'MISSED'}: {label}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=float))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
