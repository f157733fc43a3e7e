"""Sampling-phase CPU seconds of one trial's evaluation under a suite's [eval] (default: the quick
suite's DDPM on digits): what the speed measurement costs a trial.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/speed_cost.py [SUITE] [--family ddpm] [--dataset digits]

The family is untrained (sampling cost does not depend on the weights); the NLL and imputation are
switched off and the NLL takes 20 examples, since only `sample_s` is read: the evaluation draws,
the speed measurement, the FLOP count and the steps curve's draws, in process CPU time (a shared
machine's load adds wall time, not CPU time). Runs with the harness on PYTHONPATH, so the same
script times an older checkout (for a before/after comparison).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from bench.datasets import make_dataset
from bench.families import make_family
from bench.metrics import evaluate
from bench.suite import load_suite

# the module (the package exports the function of the same name)
evaluate_module = importlib.import_module("bench.metrics.evaluate")


class CPUPhaseClock(evaluate_module.PhaseClock):
    """The evaluation's per-phase clock, reading process CPU time instead of the wall clock."""

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        t = time.process_time()
        try:
            yield
        finally:
            self.seconds[phase] += time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("suite", nargs="?", default="suites/quick.toml")
    ap.add_argument("--family", default="ddpm")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--cache", default="", help="feature-extractor cache folder (default: a temporary one)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cell = next(c for c in load_suite(Path(args.suite)).cells() if (c.family, c.dataset) == (args.family, args.dataset))
    cfg = dataclasses.replace(cell.eval, impute=False, nll_examples=20)
    dataset = make_dataset(cell.dataset, cell.dataset_options)
    torch.manual_seed(cell.seed)
    family = make_family(cell.family, dataset.spec, cell.hparams)
    evaluate_module.PhaseClock = CPUPhaseClock  # this process only: sample_s becomes CPU seconds
    with tempfile.TemporaryDirectory() as tmp:
        cpu = time.process_time()
        row = evaluate(family, dataset, cfg, cache_dir=Path(args.cache or tmp), out_dir=None, seed=cell.seed)
        cpu = time.process_time() - cpu
    print(
        f"{args.family}/{args.dataset}: sampling phase {row['sample_s']:.1f} CPU-s (whole evaluation {cpu:.1f} CPU-s); "
        f"samples/CPU-s {row['samples_per_cpu_s']:.4g}, batch {row.get('speed_batch', cfg.sample_batch)}, "
        f"spread {row.get('speed_spread', float('nan')):.3g}, "
        f"FLOPs/sample {row.get('flops_per_sample', float('nan')):.4g}"
    )


if __name__ == "__main__":
    main()
