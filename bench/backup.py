"""Backups of a live state folder: `tar -czf` of `.shipyard/` against `shipyard backup`.

It builds a small project in a temp folder as a user would (`shipyard init` on a generated CSV
with `--target`, `run validate-dataset`, `run train-model`: real MLflow, Prefect, catalog and DVC
state), then starts a concurrent writer, a process that inserts numbered rows into a SQLite
database in WAL mode inside the state folder (`.shipyard/serving/bench-writes.sqlite`), one
commit per row, as fast as it can, as a prediction log does while a service runs. While it
writes, each method makes `--repeats` copies, alternating which goes first:

    tar       `tar -czf` of the state folder (what an operator does by hand); restore: extract
              it into a fresh folder
    shipyard  `shipyard backup create --to <dir>`; restore: `shipyard backup restore <archive>
              --yes` in the project (the writer stopped first, on both sides)

Per copy: create wall time, archive size, restore wall time, and for the writer's database in the
restored copy: `PRAGMA integrity_check`, whether its rows are a consistent prefix 1..N (N > 0, no
gap), and how many rows committed before the copy started are missing from it. Every other SQLite
database in the copy (MLflow's, Prefect's, the catalog) is integrity-checked too. After each of
Shipyard's restores `shipyard models list` must print what it printed before the backups. No
timed assertions; exit code 1 when a Shipyard copy is not intact or its restore is wrong.

    .venv/bin/python bench/backup.py                 # 5 copies each, ~3 min (setup ~2 of them)
    .venv/bin/python bench/backup.py --repeats 10 --keep
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

# The writer: one numbered row per commit, until SIGTERM; prints the rows it committed.
WRITER = r"""
import signal, sqlite3, sys
stop = False
def _stop(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, _stop)
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
db.execute("PRAGMA journal_size_limit=8388608")
db.execute("CREATE TABLE IF NOT EXISTS writes (id INTEGER PRIMARY KEY, at REAL, payload TEXT)")
payload = "x" * int(sys.argv[2])
n = 0
import time
while not stop:
    n += 1
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO writes VALUES (?, ?, ?)", (n, time.time(), payload))
    db.execute("COMMIT")
    if n == 1:
        print("ready", flush=True)
db.close()
print(n, flush=True)
"""
WRITES = Path("serving/bench-writes.sqlite")
SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass
class Copy:
    method: str
    index: int
    archive: Path | None
    create_s: float
    size: int
    rows_before: int  # rows committed when the copy started
    note: str = ""
    restore_s: float = 0.0
    integrity: str = "-"
    rows: int = 0
    prefix: bool = False
    lost: int = 0
    other_dbs: list[str] = field(default_factory=list)  # not-ok databases besides the writer's
    models_same: bool | None = None

    @property
    def intact(self) -> bool:
        return (
            self.archive is not None
            and self.integrity == "ok"
            and self.prefix
            and self.lost == 0
            and not self.other_dbs
        )


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(
    argv: list[str], cwd: Path, ok: tuple[int, ...] = (0,), timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=timeout
    )
    if done.returncode not in ok:
        raise SystemExit(
            f"`{' '.join(argv)}` exited {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return done


def make_csv(path: Path, rows: int) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(20261203)
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(1, 72, rows),
            "monthly": rng.uniform(10, 120, rows).round(2),
            "calls": rng.poisson(3, rows),
            "plan": rng.choice(["basic", "plus", "pro"], rows),
        }
    )
    score = -0.04 * frame["tenure"] + 0.02 * frame["monthly"] + 0.3 * frame["calls"]
    frame["churned"] = score + rng.normal(0, 1, rows) > score.median()
    frame.to_csv(path, index=False)


def setup(project: Path, shipyard: str, rows: int) -> str:
    project.mkdir(parents=True)
    make_csv(project / "customers.csv", rows)
    log(f"setup: shipyard init customers.csv --target churned ({rows} rows)")
    run([shipyard, "init", "customers.csv", "--target", "churned"], project)
    log("setup: shipyard run validate-dataset customers")
    run([shipyard, "run", "validate-dataset", "customers"], project)
    log("setup: shipyard run train-model churned")
    run([shipyard, "run", "train-model", "churned"], project)
    return run([shipyard, "models", "list"], project).stdout


def stop_server(project: Path, shipyard: str) -> None:
    """`run` uses a temporary Prefect server; stop a lasting one if anything left it running."""
    if (project / ".shipyard" / "run" / "prefect-server.pid").exists():
        run([shipyard, "server", "stop"], project, ok=(0, 1))


def committed(db: Path) -> int:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)) as con:
        return int(con.execute("SELECT count(*) FROM writes").fetchone()[0])


def newest(folder: Path, suffix: str) -> Path:
    return max(folder.glob(f"*{suffix}"), key=lambda p: p.stat().st_mtime_ns)


def create_tar(project: Path, out: Path, index: int) -> tuple[Path, str]:
    archive = out / f"state-{index}.tar.gz"
    # GNU tar exits 1 for "file changed as we read it": the archive is written, keep the warning
    done = run(["tar", "-czf", str(archive), "-C", str(project), ".shipyard"], project, ok=(0, 1))
    warned = [line for line in done.stderr.splitlines() if "changed" in line]
    return archive, f"tar: {len(warned)} 'file changed'" if warned else ""


def create_shipyard(
    project: Path, shipyard: str, out: Path, index: int, timeout: float
) -> tuple[Path | None, str]:
    argv = [shipyard, "backup", "create", "--to", str(out), "--note", f"bench {index}"]
    try:  # subprocess.run kills it at the timeout
        run(argv, project, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"create did not finish in {timeout:g} s (killed)"
    return newest(out, ".tar"), ""


def check_copy(copy: Copy, state: Path) -> None:
    """The writer's database and every other SQLite database in a restored state folder."""
    db = state / WRITES
    try:
        with closing(sqlite3.connect(db, timeout=60)) as con:
            copy.integrity = " ".join(r[0] for r in con.execute("PRAGMA integrity_check"))
            count, low, high = con.execute(
                "SELECT count(*), min(id), max(id) FROM writes"
            ).fetchone()
    except sqlite3.DatabaseError as exc:
        copy.integrity = f"error: {exc}"
        return
    copy.rows = int(count)
    copy.prefix = count > 0 and low == 1 and high == count
    copy.lost = max(0, copy.rows_before - copy.rows)
    for path in sorted(state.rglob("*")):
        if path == db or not path.is_file() or path.name.endswith(("-wal", "-shm", "-journal")):
            continue
        with path.open("rb") as f:
            if f.read(16) != SQLITE_MAGIC:
                continue
        try:
            with closing(sqlite3.connect(path, timeout=60)) as con:
                result = con.execute("PRAGMA integrity_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            result = str(exc)
        if result != "ok":
            copy.other_dbs.append(f"{path.relative_to(state)}: {result}")


def restore_tar(copy: Copy, work: Path) -> None:
    target = work / "restored" / f"tar-{copy.index}"
    target.mkdir(parents=True)
    start = time.perf_counter()
    run(["tar", "-xzf", str(copy.archive), "-C", str(target)], work)
    copy.restore_s = time.perf_counter() - start
    check_copy(copy, target / ".shipyard")


def restore_shipyard(copy: Copy, project: Path, shipyard: str, models_before: str) -> None:
    start = time.perf_counter()
    run([shipyard, "backup", "restore", str(copy.archive), "--yes"], project)
    copy.restore_s = time.perf_counter() - start
    check_copy(copy, project / ".shipyard")
    copy.models_same = run([shipyard, "models", "list"], project).stdout == models_before
    for aside in project.glob(".shipyard.before-restore-*"):
        shutil.rmtree(aside)  # the state before this restore: the previous copy, checked


def human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def report(copies: list[Copy], writer_rows: int, elapsed: float) -> int:
    print()
    print(
        f"writer: {writer_rows} rows committed in {elapsed:.1f} s ({writer_rows / elapsed:.0f}/s)"
    )
    head = (
        f"{'method':<9} {'#':>2} {'create s':>9} {'size':>9} {'restore s':>10} "
        f"{'rows before':>11} {'rows':>7} {'lost':>5} {'prefix':>6} {'integrity':<12} "
        f"{'other dbs':<9} {'models':<6} note"
    )
    print(head)
    print("-" * len(head))
    for c in copies:
        models = "-" if c.models_same is None else ("same" if c.models_same else "DIFF")
        integrity = " ".join(c.integrity.split())[:12]
        print(
            f"{c.method:<9} {c.index:>2} {c.create_s:>9.2f} {human(c.size):>9} "
            f"{c.restore_s:>10.2f} "
            f"{c.rows_before:>11} {c.rows:>7} {c.lost:>5} {'yes' if c.prefix else 'NO':>6} "
            f"{integrity:<12} {'ok' if not c.other_dbs else 'BAD':<9} {models:<6} {c.note}"
        )
        if c.integrity not in ("ok", "-"):
            print(f"{'':>12} {' '.join(c.integrity.split())[:160]}")
        for problem in c.other_dbs:
            print(f"{'':>12} {problem}")
    print()
    summary = (
        f"{'method':<9} {'finished':>8} {'median create s':>16} {'median size':>12} "
        f"{'median restore s':>17}  intact"
    )
    print(summary)
    print("-" * len(summary))
    med: dict[str, tuple[float, float, float]] = {}
    for method in ("tar", "shipyard"):
        mine = [c for c in copies if c.method == method]
        done = [c for c in mine if c.archive is not None]
        intact = sum(c.intact for c in mine)
        if not done:
            print(f"{method:<9} {0:>3}/{len(mine):<4} {'-':>16} {'-':>12} {'-':>17}  0/{len(mine)}")
            continue
        med[method] = (
            statistics.median(c.create_s for c in done),
            statistics.median(c.size for c in done),
            statistics.median(c.restore_s for c in done),
        )
        print(
            f"{method:<9} {len(done):>3}/{len(mine):<4} {med[method][0]:>16.2f} "
            f"{human(med[method][1]):>12} {med[method][2]:>17.2f}  {intact}/{len(mine)}"
        )
    pairs = [  # the same round: both copies of about the same state
        (t, y)
        for t in copies
        for y in copies
        if t.method == "tar" and y.method == "shipyard" and t.index == y.index
        if t.archive is not None and y.archive is not None
    ]
    if pairs:
        ratios = [
            statistics.median(y.create_s / t.create_s for t, y in pairs),
            statistics.median(y.size / t.size for t, y in pairs),
            statistics.median(y.restore_s / t.restore_s for t, y in pairs),
        ]
        print(
            f"shipyard/tar, median over the {len(pairs)} rounds both finished: "
            f"create {ratios[0]:.2f}x, size {ratios[1]:.2f}x, restore {ratios[2]:.2f}x"
        )
    bad = [x for x in copies if x.method == "shipyard" and (not x.intact or not x.models_same)]
    for x in bad:
        print(f"DEFECT: shipyard copy {x.index}: {x.note or 'not intact or restored wrong'}")
    print("intact = integrity ok, rows 1..N with no gap, no row committed before the copy lost,")
    print("every other SQLite database ok; models = `shipyard models list` after the restore")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5, help="copies per method (default 5)")
    parser.add_argument("--rows", type=int, default=3000, help="rows of the generated CSV")
    parser.add_argument(
        "--payload", type=int, default=200, help="bytes of text in each writer row (default 200)"
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds the writer runs before the first copy"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds one create may take (default 30)"
    )
    parser.add_argument("--workdir", type=Path, help="where to build (default: a new temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    shipyard = str(Path(sys.executable).with_name("shipyard"))
    if args.workdir is not None:
        work = args.workdir.resolve()
        if work.exists():
            raise SystemExit(f"{work} exists; pass a new folder")
        work.mkdir(parents=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="shipyard-bench-backup-"))
    if Path(__file__).resolve().parents[1] in [work, *work.parents]:
        raise SystemExit(f"{work} is inside the Shipyard checkout; pick a folder outside it")
    project = work / "project"
    writer: subprocess.Popen[str] | None = None
    try:
        models_before = setup(project, shipyard, args.rows)
        stop_server(project, shipyard)
        state = project / ".shipyard"
        db = state / WRITES
        db.parent.mkdir(parents=True, exist_ok=True)
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), str(args.payload)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        if writer.stdout.readline().strip() != "ready":
            raise SystemExit("the writer did not start")
        started = time.perf_counter()
        log(f"writer: pid {writer.pid}, {db.relative_to(project)}, WAL, one commit per row")
        time.sleep(args.warmup)  # let the WAL fill and checkpoint a few times
        out = {"tar": work / "tar", "shipyard": work / "shipyard"}
        for folder in out.values():
            folder.mkdir()
        copies: list[Copy] = []
        for i in range(1, args.repeats + 1):
            order = ["tar", "shipyard"] if i % 2 else ["shipyard", "tar"]
            for method in order:
                before = committed(db)
                start = time.perf_counter()
                archive: Path | None
                if method == "tar":
                    archive, note = create_tar(project, out["tar"], i)
                else:
                    archive, note = create_shipyard(
                        project, shipyard, out["shipyard"], i, args.timeout
                    )
                took = time.perf_counter() - start
                size = archive.stat().st_size if archive is not None else 0
                copy = Copy(method, i, archive, took, size, before, note)
                copies.append(copy)
                log(f"create {method} {i}/{args.repeats}: {took:.2f} s, {human(size)} {note}")
        writer.send_signal(signal.SIGTERM)
        writer_rows = int((writer.communicate(timeout=60)[0] or "0").split()[-1])
        elapsed = time.perf_counter() - started
        writer = None
        log(f"writer stopped: {writer_rows} rows (live database: {committed(db)})")
        for copy in copies:
            if copy.archive is None:
                continue
            if copy.method == "tar":
                restore_tar(copy, work)
            else:
                restore_shipyard(copy, project, shipyard, models_before)
            verdict = "intact" if copy.intact else "NOT intact"
            log(f"restore {copy.method} {copy.index}: {copy.restore_s:.2f} s, {verdict}")
        return report(copies, writer_rows, elapsed)
    finally:
        if writer is not None:
            writer.kill()
            writer.wait()
        if project.exists():
            stop_server(project, shipyard)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
