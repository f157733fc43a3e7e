"""How busy a short suite keeps its slots: the per-trial fixed cost that no row column shows.

    PYTHONPATH=$PWD python benchmarks/suite_overhead.py            # this checkout
    PYTHONPATH=/other/checkout python benchmarks/suite_overhead.py # e.g. the code before a change

Runs an 8-cell toy suite (GAN and VAE on 8gaussians and checkerboard, 2 seeds, --steps each, the
quick suite's evaluation settings) through `run_suite` from a cold driver (Ray not started; the
report is not written), two 1-CPU slots. Prints

    busy fraction = Σ (train_s + eval_s) / (slots × wall)
    fixed cost per trial = (slots × wall − Σ (train_s + eval_s)) / trials

Wall clock on a machine other processes share: run both sides back to back and compare them.
The `bench` package is the one first on PYTHONPATH (Ray's workers inherit it), so the same script
measures any checkout.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # append: a PYTHONPATH checkout wins

import bench  # noqa: E402
from bench.run.driver import run_suite  # noqa: E402
from bench.suite import load_suite  # noqa: E402

SUITE = """
name = "overhead"
seeds = [0, 1]
[[datasets]]
name = "8gaussians"
options = {{ n_train = 20000, n_test = 2000 }}
[[datasets]]
name = "checkerboard"
options = {{ n_train = 20000, n_test = 2000 }}
[[models]]
family = "gan"
hparams = {{ batch_size = 128 }}
[[models]]
family = "vae"
hparams = {{ batch_size = 128 }}
[[budgets]]
name = "b"
steps = {steps}
[resources]
cpus_per_trial = 1
gpus_per_trial = 0
[eval]
n_samples = 1000
n_real = 1000
sample_batch = 250
speed_repeats = 2
nll_examples = 500
iwae_k = 16
kid_subset_size = 250
kid_subsets = 20
impute_examples = 200
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1500, help="optimizer steps per trial (quick budget: 1500)")
    ap.add_argument("--slots", type=int, default=2, help="CPUs = concurrent 1-CPU trials")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "overhead.toml"
        path.write_text(SUITE.format(steps=args.steps))
        suite = load_suite(path)
        t0 = time.perf_counter()
        summary = run_suite(suite, Path(tmp) / "results", report=False)
        wall = time.perf_counter() - t0
        import pandas as pd

        df = pd.read_parquet(summary.results_dir / "trials.parquet")
    busy = float((df["train_s"] + df["eval_s"]).sum())
    n = len(df)
    print(f"bench from {Path(bench.__file__).parent.parent}; {n} trials ({dict(summary.statuses)}), {args.steps} steps")
    print(f"wall {wall:.1f} s, Σ(train_s + eval_s) {busy:.1f} s, slots {args.slots}")
    print(
        f"busy fraction {busy / (args.slots * wall):.3f}; fixed cost per trial {(args.slots * wall - busy) / n:.2f} s"
    )
    print(f"peak_mem_mb per trial: {', '.join(f'{v:.0f}' for v in df['peak_mem_mb'])}")
    if "unique_mem_mb" in df:
        print(f"unique_mem_mb per trial: {', '.join(f'{v:.0f}' for v in df['unique_mem_mb'])}")


if __name__ == "__main__":
    main()
