"""Cost of the quality trajectory: one quick-suite trial with eval.trajectory_points = 0 and with the
given counts, same cell otherwise (wall seconds of the whole trial and of training alone).

    python benchmarks/trajectory_cost.py [family] [dataset] [points ...]   (default: ddpm digits 0 8 16)
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path

from bench.suite import load_suite
from bench.trial.run import run_trial

ROOT = Path(__file__).resolve().parents[1]


def main(family: str = "ddpm", dataset: str = "digits", *points: str) -> None:
    cell = next(
        c for c in load_suite(ROOT / "suites" / "quick.toml").cells() if (c.family, c.dataset) == (family, dataset)
    )
    with tempfile.TemporaryDirectory() as tmp:
        for p in [int(p) for p in points] or [0, 8, 16]:
            run = dataclasses.replace(cell, eval=dataclasses.replace(cell.eval, trajectory_points=p))
            t = time.perf_counter()
            row = run_trial(run, results_dir=Path(tmp) / str(p), cache_dir=Path(tmp) / "cache")
            wall = time.perf_counter() - t
            print(
                f"{family} {dataset} trajectory_points={p}: trial {wall:.1f} s, train_s {row['train_s']:.1f}, "
                f"eval_s {row['eval_s']:.1f}, fid_oscillation {row['fid_oscillation']:.3g}, status {row['status']}"
            )


if __name__ == "__main__":
    main(*sys.argv[1:])
