"""ASHA against FIFO on the same tuning searches: share of trials stopped early, train time saved,
and whether the configuration chosen is the same.

    python benchmarks/tuning_asha.py                 # ~10 min on 2 CPU cores
    python benchmarks/tuning_asha.py --rounds 1 --samples 4 --steps 200   # smoke check

Phase 1 only (bench.run.driver.tuned_cells), on a private local Ray: VAE and flow on 8gaussians, tuned
on validation NLL over a wide learning-rate space (1e-5 .. 3e-2, log-uniform), `--samples`
configurations each. Random search seeded alike, so both schedulers see the same configurations;
the arms alternate (fifo, asha, asha, fifo, ...) in fresh results folders. Reported per arm: trials,
trials stopped early, the sum of the tuning trials' train_s, wall time of phase 1, and the chosen
configuration's validation NLL. Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray  # noqa: E402

from bench.run.driver import tuned_cells  # noqa: E402
from bench.store import load_tuning  # noqa: E402
from bench.suite import load_suite  # noqa: E402

SUITE = """
name = "asha-bench"
seeds = [0]
[tune]
metric = "nll"
samples = {samples}
search = "random"
scheduler = "{scheduler}"
seeds = [0]
[[datasets]]
name = "8gaussians"
options = {{ n_train = 20000, n_test = 2000 }}
[[models]]
family = "vae"
hparams = {{ batch_size = 128 }}
space = {{ lr = {{ loguniform = [1e-5, 3e-2] }} }}
[[models]]
family = "flow"
hparams = {{ batch_size = 128, lr_min = 0.0 }}
space = {{ lr = {{ loguniform = [1e-5, 3e-2] }} }}
[[budgets]]
name = "b"
steps = {steps}
[resources]
report_every_steps = {every}
checkpoint_every_steps = 0
"""


def run_arm(scheduler: str, args, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{scheduler}.toml"
    every = max(1, args.steps // 9)
    path.write_text(SUITE.format(samples=args.samples, scheduler=scheduler, steps=args.steps, every=every))
    suite = load_suite(path)
    out = folder / scheduler / suite.name
    out.mkdir(parents=True)
    t = time.perf_counter()
    tuned_cells(suite, out, address=None)
    wall = time.perf_counter() - t
    df = load_tuning(out)
    ok = df[df["status"] == "ok"]
    best = ok.groupby("label")["val_metric"].min().to_dict()
    return {
        "trials": len(df),
        "stopped": int((df["status"] == "stopped").sum()),
        "train_s": float(df["train_s"].sum()),
        "steps": int(df["stopped_step"].sum()),
        "wall_s": wall,
        "best": best,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--steps", type=int, default=450)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    arms: dict[str, list[dict]] = {"fifo": [], "asha": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = ("fifo", "asha") if r % 2 == 0 else ("asha", "fifo")
            for scheduler in order:
                arms[scheduler].append(run_arm(scheduler, args, Path(tmp) / f"r{r}"))
                print(scheduler, arms[scheduler][-1], flush=True)
    print(f"\n{args.samples} configurations × 2 models, {args.steps} steps each, {args.rounds} rounds (medians)\n")
    print(
        "| scheduler | trials | stopped early | optimizer steps | train_s | phase-1 wall s | best val NLL vae, flow |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, runs in arms.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("trials", "stopped", "train_s", "steps", "wall_s")}
        best = runs[0]["best"]
        print(
            f"| {name} | {med['trials']:.0f} | {med['stopped']:.0f} | {med['steps']:.0f} | {med['train_s']:.1f} | "
            f"{med['wall_s']:.0f} | {best.get('vae', float('nan')):.3f}, {best.get('flow', float('nan')):.3f} |"
        )
    saved = 1 - statistics.median(a["steps"] / f["steps"] for a, f in zip(arms["asha"], arms["fifo"]))
    print(f"\nASHA saved {saved:.0%} of the optimizer steps (median over rounds of 1 - asha/fifo).")


if __name__ == "__main__":
    main()
