"""Cost of the quality trajectory in the quick suite (suites/quick.toml, its [eval] settings).

    python benchmarks/trajectory_cost.py points         # seconds per trajectory point, every quick-suite model
    python benchmarks/trajectory_cost.py trial F D P..  # one trial of family F on dataset D per count P

`points` times Trajectory.measure on each model of the suite as built (a point's cost is the
sampler's and the FID's, not the training's) and, apart, the reference and floor each trial builds
once; `trial` runs whole trials: the trajectory's share is wall − train_s − eval_s (reports and the
curve are outside train_s), robust to a loaded machine where train_s itself moves.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.datasets import make_dataset
from bench.families import make_family
from bench.metrics.trajectory import Trajectory
from bench.suite import load_suite
from bench.trial.run import run_trial

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "suites" / "quick.toml"


def points(cache: Path) -> None:
    suite = load_suite(SUITE)
    total = 0.0
    for cell in suite.cells():
        if cell.seed != suite.seeds[0]:
            continue
        torch.manual_seed(0)
        dataset = make_dataset(cell.dataset, cell.dataset_options)
        family = make_family(cell.family, dataset.spec, cell.hparams)
        family.train(False)
        traj = Trajectory(dataset, cell.eval, cache_dir=cache, seed=0, steps=cell.steps, seconds=None)
        # the classifier extractor is trained once per dataset, by the driver before any trial starts
        Trajectory(dataset, cell.eval, cache_dir=cache, seed=1, steps=1, seconds=None).reference(family.device)
        t = time.perf_counter()
        traj.reference(family.device)  # once per trial: the real features and the floor
        setup = time.perf_counter() - t
        with torch.no_grad():
            t = time.perf_counter()
            for step in range(2):
                traj.measure(family, step)
            each = (time.perf_counter() - t) / 2
        per_trial = setup + cell.eval.trajectory_points * each
        total += per_trial * len(suite.seeds)
        print(f"{cell.family:5s} {cell.dataset:10s} reference and floor {setup:.2f} s, each point {each:.3f} s, "
              f"per trial ({cell.eval.trajectory_points} points) {per_trial:.1f} s")  # fmt: skip
    print(f"quick suite ({len(suite.cells())} trials): {total:.0f} s of trajectory in all (2 trials run at a time)")


def trials(family: str, dataset: str, counts: list[int], cache: Path, tmp: Path) -> None:
    cell = next(c for c in load_suite(SUITE).cells() if (c.family, c.dataset) == (family, dataset))
    for p in counts:
        run = dataclasses.replace(cell, eval=dataclasses.replace(cell.eval, trajectory_points=p))
        t = time.perf_counter()
        row = run_trial(run, results_dir=tmp / str(p), cache_dir=cache)
        wall = time.perf_counter() - t
        print(f"{family} {dataset} trajectory_points={p}: trial {wall:.1f} s, train_s {row['train_s']:.1f}, "
              f"eval_s {row['eval_s']:.1f}, outside both {wall - row['train_s'] - row['eval_s']:.1f} s, "
              f"fid_oscillation {row['fid_oscillation']:.3g}")  # fmt: skip


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        if sys.argv[1:2] == ["trial"]:
            trials(sys.argv[2], sys.argv[3], [int(p) for p in sys.argv[4:]], Path(tmp) / "cache", Path(tmp))
        else:
            points(Path(tmp) / "cache")
