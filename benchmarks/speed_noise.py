"""Timer noise of the sampling-speed measurement: the old rule against the new one, 15 times each.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/speed_noise.py [--suite suites/quick.toml] [--dataset 8gaussians]

The quick suite's flow and GAN (untrained: sampling cost does not depend on the weights) are timed
`--times` times, alternating, under
- the old rule: one warm-up call, then 2 calls of batch 250 timed together (samples per CPU-second);
- the new rule (bench.metrics.speed.sweep): the suite's speed_batches sweep, speed_repeats calls
  timed one by one per batch, the median of the deciding clock (CPU time on a CPU) at the best batch.
Printed per rule: each family's median rate, the relative spread (max − min) / median and the
coefficient of variation over the repeated measurements, the GAN/flow ratio of the medians and the
range of the per-measurement ratios.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bench.datasets import make_dataset
from bench.families import make_family
from bench.metrics import speed
from bench.suite import load_suite

OLD_BATCH, OLD_REPEATS = 250, 2  # the rule before the sweep (suites/quick.toml's sample_batch, speed_repeats)


def old_rule(sample: Callable[[int], object]) -> float:
    """Samples per CPU-second of OLD_REPEATS calls timed together, after one warm-up call."""
    with torch.inference_mode():
        sample(OLD_BATCH)
        cpu = time.process_time()
        for _ in range(OLD_REPEATS):
            sample(OLD_BATCH)
        return OLD_BATCH * OLD_REPEATS / (time.process_time() - cpu)


def samplers(suite: Path, dataset: str) -> tuple[dict[str, Callable[[int], object]], object]:
    """{family: sample(b)} for the suite's gan and flow on `dataset`, and the suite's EvalConfig."""
    cells = {c.family: c for c in load_suite(suite).cells() if c.dataset == dataset and c.seed == 0}
    data = make_dataset(dataset, cells["flow"].dataset_options)
    out = {}
    for name in ("gan", "flow"):
        torch.manual_seed(0)
        family = make_family(name, data.spec, cells[name].hparams)
        family.train(False)
        gen = torch.Generator().manual_seed(0)
        out[name] = lambda b, f=family, g=gen: f.sample(b, generator=g)
    return out, cells["flow"].eval


def describe(rates: np.ndarray) -> str:
    med = np.median(rates)
    spread, cv = (rates.max() - rates.min()) / med, rates.std() / rates.mean()
    return f"median {med:.4g}/s, spread (max-min)/median {spread:.3f}, CV {cv:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="suites/quick.toml")
    ap.add_argument("--dataset", default="8gaussians")
    ap.add_argument("--times", type=int, default=15)
    ap.add_argument("--batches", type=int, nargs="+", help="the new rule's sweep (default: the suite's speed_batches)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    sample, cfg = samplers(Path(args.suite), args.dataset)
    batches_swept = tuple(args.batches or cfg.speed_batches)
    cpu = torch.device("cpu")
    rates: dict[tuple[str, str], list[float]] = {}
    batches: dict[str, list[int]] = {"gan": [], "flow": []}
    t0 = time.process_time()
    for _ in range(args.times):
        for name, fn in sample.items():
            rates.setdefault(("old", name), []).append(old_rule(fn))
            got = speed.sweep(fn, batches_swept, cfg.speed_repeats, cpu, budget_s=cfg.speed_budget_s)
            rates.setdefault(("new", name), []).append(got.rate)
            batches[name].append(got.batch)
    print(
        f"{args.dataset}, {args.times} measurements per rule and family, new rule's sweep {list(batches_swept)} "
        f"× {cfg.speed_repeats} repeats (budget {cfg.speed_budget_s:g} s), {time.process_time() - t0:.0f} CPU-s"
    )
    for rule, text in (
        ("old", f"batch {OLD_BATCH}, {OLD_REPEATS} calls together"),
        ("new", "sweep, median at the best batch"),
    ):
        gan, flow = np.array(rates[(rule, "gan")]), np.array(rates[(rule, "flow")])
        ratios = gan / flow
        print(f"{rule} ({text}):")
        print(f"  gan  {describe(gan)}")
        print(f"  flow {describe(flow)}")
        print(
            f"  GAN/flow ratio of medians {np.median(gan) / np.median(flow):.2f} "
            f"(per measurement {ratios.min():.2f}-{ratios.max():.2f})"
        )
    for name, chosen in batches.items():
        print(f"new rule's batch, {name}: " + ", ".join(f"{b}×{chosen.count(b)}" for b in sorted(set(chosen))))


if __name__ == "__main__":
    main()
