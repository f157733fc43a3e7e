"""Driver-side table cost per finished trial, and the start-up time of a 10 000-cell suite.

Table cost: a results folder holding n rows (100, 1 000, 10 000; realistic row size with loss
curves); then trials finish one after another. Per trial, the old driver re-read every row and
rewrote trials.parquet/.csv (`results.rebuild_tables`); the driver now updates its in-memory
`results.SuiteTable` (`put`), whose files are rewritten once per 1% of new rows. Both sides run
interleaved, in rounds, on the same folder; the figure is the median over rounds of the mean cost
per trial (the SuiteTable's periodic rewrites included).

Start-up (--startup): `genbench run` on a generated 10 000-cell suite with its own private Ray;
seconds from the command's start to the first trial folder Tune creates (a trial started), then
SIGINT, which must end the run with exit status 130.

    python benchmarks/table_cost.py                   # table cost, ~3 min
    python benchmarks/table_cost.py --startup         # start-up of a 10 000-cell suite
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import store as results  # noqa: E402


def fake_row(i: int) -> dict:
    curve = [[s, 2.0 + 1.0 / (s + 1)] for s in range(0, 1000, 20)]  # a 50-point loss curve
    return results.normalize_row(
        {
            "trial_id": f"{i:016x}",
            "suite": "bench",
            "label": "flow",
            "family": "flow",
            "dataset": "8gaussians",
            "budget": "b",
            "seed": i,
            "status": "ok",
            "nll": 2.9 + i * 1e-6,
            "fid": 0.1,
            "train_s": 10.0,
            "loss_curve": curve,
            "hparams": {"lr": 1e-3, "hidden": 64},
        }
    )


def store(folder: Path, rows: list[dict]) -> None:
    """Row files as the trials leave them (plain writes: fsync is the trial's cost, not the driver's)."""
    (folder / results.TRIALS.rows_dir).mkdir(parents=True, exist_ok=True)
    for row in rows:
        (folder / results.TRIALS.rows_dir / f"{row['trial_id']}.json").write_text(json.dumps(row) + "\n")


def table_cost(n: int, rounds: int, new_trials: int, old_trials: int) -> dict:
    """Median over rounds of the mean driver seconds per finished trial: old rebuild vs SuiteTable."""
    rows = [fake_row(i) for i in range(n)]
    ids = [r["trial_id"] for r in rows]
    old_s, new_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store(folder, rows[: n - new_trials])  # the trials still to finish have no row yet
        for _ in range(rounds):
            # old: after each trial, every row re-read and both files rewritten
            t = time.perf_counter()
            for _ in range(old_trials):
                results.rebuild_tables(folder, ids)
            old_s.append((time.perf_counter() - t) / old_trials)
            # new: the in-memory table, built once at start-up (not counted: once per run)
            table = results.SuiteTable.load(folder, ids)
            table.write()
            spent = 0.0
            for row in rows[n - new_trials :]:
                t = time.perf_counter()
                table.put(row)
                spent += time.perf_counter() - t
            new_s.append(spent / new_trials)
    return {"n": n, "old_s": statistics.median(old_s), "new_s": statistics.median(new_s)}


def startup(cells: int) -> None:
    seeds = ", ".join(str(i) for i in range(cells // 4))
    suite = f"""name = "big"
seeds = [{seeds}]
[[datasets]]
name = "8gaussians"
options = {{ n_train = 2000, n_test = 500 }}
[[models]]
family = "flow"
hparams = {{ coupling_layers = 2, hidden = 8, width = 8, blocks = 1 }}
[[models]]
family = "vae"
hparams = {{ hidden = 8, width = 8 }}
[[budgets]]
name = "a"
steps = 5
[[budgets]]
name = "b"
steps = 6
"""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.toml"
        path.write_text(suite)
        cmd = [sys.executable, str(ROOT / "run_bench.py"), "run", str(path), "--results", tmp, "--no-report"]
        t0 = time.monotonic()
        driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        runs = Path(tmp) / "big" / "ray"
        while not any(p.is_dir() for p in runs.glob("run-*/*")):
            if driver.poll() is not None or time.monotonic() - t0 > 300:
                driver.kill()
                sys.exit(f"no trial started (exit {driver.returncode})")
            time.sleep(0.05)
        first = time.monotonic() - t0
        driver.send_signal(signal.SIGINT)
        code = driver.wait(timeout=120)
        print(f"{cells} cells: first trial started after {first:.1f} s (command start to Tune's first trial folder)")
        print(f"SIGINT then: exit status {code} after {time.monotonic() - t0 - first:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--startup", action="store_true", help="measure a 10 000-cell suite's start-up instead")
    args = ap.parse_args()
    if args.startup:
        startup(10000)
        return
    print("| rows | old: rebuild per trial (ms) | new: SuiteTable.put (ms, amortized) | new / old |")
    print("|---:|---:|---:|---:|")
    for n in args.sizes:
        # enough new trials to include several periodic rewrites (one per 1% of the table)
        r = table_cost(n, args.rounds, new_trials=max(50, n // 20), old_trials=max(2, 200 // max(1, n // 100)))
        print(f"| {n} | {r['old_s'] * 1e3:.1f} | {r['new_s'] * 1e3:.2f} | {r['new_s'] / r['old_s']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
