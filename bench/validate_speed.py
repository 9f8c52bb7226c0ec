"""How long `shipyard validate` takes on a 200-dataset spec, cold, against a bare interpreter.

Each command runs in a fresh process (what a person or CI pays), N times after one untimed warm-up
that writes the bytecode caches. Prints min and median per command, the ratio to `python -c pass`
and whether the target holds: `shipyard validate` under 0.5 s.

    .venv/bin/python bench/validate_speed.py            # report
    .venv/bin/python bench/validate_speed.py --assert   # also exit 1 when over the target
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

TARGET_SECONDS = 0.5
# Installed environments have bytecode caches (`make venv` compiles them); let the warm-up run
# write them even where the calling shell says not to, or every run would recompile shipyard.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
REGIONS = ["north", "south", "east", "west"]
PLANS = ["basic", "plus", "pro"]


def generate_spec(datasets: int = 200) -> str:
    """A valid spec shaped like real ones: ~10 typed columns, keys, timestamps, several rules."""
    lines = [
        "project: bench",
        "profile: ${SHIPYARD_PROFILE:-local}",
        "profiles:",
        "  local: {}",
        "  scale-out:",
        "    kind: scale-out",
        "    prefect: {port: 4210, database_url: postgresql+asyncpg://postgres@db/prefect}",
        "    dvc:",
        "      remote: s3://bench-data/${USER:-ci}",
        "      options: {access_key_id: '${secret:aws-key}'}",
        "    prometheus: {pushgateway: 'http://127.0.0.1:9091'}",
        "datasets:",
    ]
    for i in range(datasets):
        fmt = ["parquet", "csv", "jsonl"][i % 3]
        lines += [
            f"  table_{i:03d}:",
            f"    description: Synthetic table {i} with one row per entity and day.",
            f"    path: data/table_{i:03d}.{fmt}",
            "    key: [entity_id, event_time]",
            "    timestamp: event_time",
            f'    schedule: "{i % 60} {i % 24} * * *"',
            "    schema:",
            "      entity_id: int",
            "      event_time: datetime",
            "      signup_date: date",
            f"      region: {{category: [{', '.join(REGIONS)}]}}",
            f"      plan: {{category: [{', '.join(PLANS)}]}}",
            "      amount: float",
            "      quantity: int",
            "      email: str",
            "      score: float",
            "      active: bool",
            "    expectations:",
            "      - not_null: [entity_id, event_time, plan]",
            "      - unique: {columns: [email], mostly: 0.99}",
            "      - between: {column: amount, min: 0, max: 10000}",
            "      - between: {column: quantity, min: 0, max: 1000, mostly: 0.999}",
            "      - between: {column: score, min: 0, max: 1}",
            "      - in_set: {column: region, values: [north, south, east, west]}",
            '      - regex: {column: email, pattern: "^[^@\\\\s]+@[^@\\\\s]+$"}',
            "      - row_count: {min: 100, max: 10000000}",
            "      - gx: {type: expect_column_mean_to_be_between, "
            "kwargs: {column: score, min_value: 0.1, max_value: 0.9}}",
        ]
    return "\n".join(lines) + "\n"


def time_command(argv: Sequence[str], cwd: Path, repeats: int) -> list[float]:
    """Wall-clock seconds of `repeats` fresh runs, after one untimed warm-up; each must exit 0."""
    _run(argv, cwd)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        _run(argv, cwd)
        samples.append(time.perf_counter() - start)
    return samples


def _run(argv: Sequence[str], cwd: Path) -> None:
    done = subprocess.run(argv, cwd=cwd, env=_ENV, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(
            f"`{' '.join(argv)}` exited {done.returncode}:\n{done.stdout}{done.stderr}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--repeats", type=int, default=7, help="timed runs per command")
    parser.add_argument("--datasets", type=int, default=200, help="datasets in the spec")
    parser.add_argument(
        "--assert",
        dest="assert_target",
        action="store_true",
        help=f"exit 1 when validate's median is over {TARGET_SECONDS} s",
    )
    args = parser.parse_args(argv)

    python = sys.executable
    console_script = Path(python).with_name("shipyard")
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-") as tmp:
        folder = Path(tmp)
        spec = folder / "pipelines.yaml"
        spec.write_text(generate_spec(args.datasets), encoding="utf-8")
        commands = {"python -c pass": [python, "-c", "pass"]}
        commands["python -m shipyard.cli validate"] = [
            python,
            "-m",
            "shipyard.cli",
            "-f",
            str(spec),
            "validate",
        ]
        if console_script.exists():
            commands["shipyard validate (console script)"] = [
                str(console_script),
                "-f",
                str(spec),
                "validate",
            ]
        results = {name: time_command(cmd, folder, args.repeats) for name, cmd in commands.items()}

    size = len(generate_spec(args.datasets).encode())
    print(f"spec: {args.datasets} datasets, {size / 1024:.0f} KiB; {args.repeats} runs each, cold")
    print(f"{'command':<36} {'min s':>8} {'median s':>9} {'x baseline':>11}")
    baseline = statistics.median(results["python -c pass"])
    for name, samples in results.items():
        median = statistics.median(samples)
        print(f"{name:<36} {min(samples):>8.3f} {median:>9.3f} {median / baseline:>10.1f}x")
    validate_medians = [statistics.median(s) for n, s in results.items() if "validate" in n]
    worst = max(validate_medians)
    holds = worst < TARGET_SECONDS
    verdict = "holds" if holds else "MISSED"
    print(f"target: shipyard validate under {TARGET_SECONDS} s (median): {verdict} ({worst:.3f} s)")
    return 1 if args.assert_target and not holds else 0


if __name__ == "__main__":
    sys.exit(main())
