"""What the harness costs: train-loop overhead, Ray concurrency, Ray's fixed cost per trial.

    python benchmarks/harness_overhead.py            # full run (~5 min on 2 CPU cores)
    python benchmarks/harness_overhead.py --quick    # smaller, for a smoke check

1. Train loop: bench.trial's loop (Accelerate-prepared family, TrainMonitor, budget checks, seeded
   batch draws) vs a bare PyTorch loop calling the same family's train_step on batches drawn the
   same way; same model, same steps, one thread; CPU time of the loop (process_time: robust to
   other load on a shared machine), median over interleaved repeats. Target <= 1.03x.
2. Concurrency: two 1-CPU trials through Ray Tune at once vs one after the other (max_concurrent
   1 vs 2), wall time of run_suite with Ray already started. Target >= 1.8x throughput on 2 cores.
3. Ray's fixed cost per trial: wall time of K trivial trials run one at a time through Ray, minus
   the same trials run in this process (after imports): worker start-up, imports, scheduling.
2 and 3 are wall-clock measurements: run them on an otherwise idle machine.
Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.suite import load_suite  # noqa: E402
from bench.trial import _accelerator, _train, run_trial  # noqa: E402

log = logging.getLogger("harness_overhead")

TINY_EVAL = """
[eval]
n_samples = 200
n_real = 200
sample_batch = 100
speed_repeats = 1
nll_examples = 100
kid_subset_size = 50
kid_subsets = 5
impute = false
"""


def suite(folder: Path, name: str, *, steps: int, seeds: list[int], max_concurrent: int = 0):
    """flow × 8gaussians at the family's default size, `steps` optimizer steps per trial."""
    path = folder / f"{name}.toml"
    path.write_text(f'name = "{name}"\nseeds = {seeds}\n'
                    '[[datasets]]\nname = "8gaussians"\n'
                    "options = { n_train = 20000, n_test = 1000 }\n"
                    '[[models]]\nfamily = "flow"\n'
                    f'[[budgets]]\nname = "b"\nsteps = {steps}\n'
                    f"[resources]\ncpus_per_trial = 1\nmax_concurrent = {max_concurrent}\n"
                    f"{TINY_EVAL}")
    return load_suite(path)


# --- 1. train-loop overhead -------------------------------------------------------------------
def harness_loop(cell) -> float:
    from bench.datasets import make_dataset
    from bench.families import make_family

    torch.manual_seed(cell.seed)
    dataset = make_dataset(cell.dataset, cell.dataset_options)
    family = make_family(cell.family, dataset.spec, cell.hparams)
    accelerator, _ = _accelerator(cell.mixed_precision, [])
    family.attach(accelerator)
    t = time.process_time()
    _train(family, dataset, cell, accelerator)
    return time.process_time() - t


def bare_loop(cell) -> float:
    from bench.datasets import make_dataset
    from bench.families import make_family

    torch.manual_seed(cell.seed)
    dataset = make_dataset(cell.dataset, cell.dataset_options)
    family = make_family(cell.family, dataset.spec, cell.hparams)  # plain PyTorch: no accelerator
    data, batch = dataset.train(), family.hp.batch_size
    generator = torch.Generator().manual_seed(cell.seed)
    family.train(True)
    t = time.process_time()
    for _ in range(cell.steps):
        family.train_step(data[torch.randint(len(data), (batch,), generator=generator)])
    return time.process_time() - t


def loop_overhead(folder: Path, steps: int, repeats: int) -> dict[str, float]:
    torch.set_num_threads(1)
    cell = suite(folder, "loop", steps=steps, seeds=[0]).cells()[0]
    bare_loop(cell), harness_loop(cell)  # warm-up: first-call allocations, lazy imports
    times = {"bare": [], "harness": []}
    for i in range(repeats):  # interleaved, alternating order: drifting machine load hits both
        order = (("bare", bare_loop), ("harness", harness_loop))
        for name, fn in order if i % 2 == 0 else order[::-1]:
            times[name].append(fn(cell))
    bare, harness = statistics.median(times["bare"]), statistics.median(times["harness"])
    return {"steps": steps, "bare_s": bare, "harness_s": harness, "ratio": harness / bare}


# --- 2./3. Ray ---------------------------------------------------------------------------------
def timed_run(s, results_root: Path) -> float:
    from bench.runner import run_suite

    t = time.perf_counter()
    summary = run_suite(s, results_root, restart=True, report=False)
    assert summary.statuses.get("ok", 0) == summary.total, summary.describe()
    return time.perf_counter() - t


def concurrency(folder: Path, steps: int) -> dict[str, float]:
    sequential = timed_run(suite(folder, "seq", steps=steps, seeds=[0, 1], max_concurrent=1),
                           folder)
    concurrent = timed_run(suite(folder, "conc", steps=steps, seeds=[0, 1], max_concurrent=2),
                           folder)
    return {"steps": steps, "sequential_s": sequential, "concurrent_s": concurrent,
            "speedup": sequential / concurrent}


def fixed_cost(folder: Path, trials: int) -> dict[str, float]:
    s = suite(folder, "fixed", steps=1, seeds=list(range(trials)), max_concurrent=1)
    in_process = 0.0
    for cell in s.cells():
        t = time.perf_counter()
        run_trial(cell, results_dir=folder / "inproc")
        in_process += time.perf_counter() - t
    through_ray = timed_run(s, folder)
    return {"trials": trials, "ray_s": through_ray, "in_process_s": in_process,
            "per_trial_s": (through_ray - in_process) / trials}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats (smoke)")
    parser.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs for the local Ray")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    loop_steps, repeats, conc_steps, k = (200, 3, 300, 3) if args.quick else (1000, 5, 3000, 6)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        loop = loop_overhead(folder, loop_steps, repeats)
        import ray

        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        try:
            conc = concurrency(folder, conc_steps)
            fixed = fixed_cost(folder, k)
        finally:
            ray.shutdown()

    print(f"\nharness overhead ({'quick' if args.quick else 'full'}; {args.cpus} CPUs for Ray; "
          f"torch {torch.__version__}; {time.strftime('%Y-%m-%d')})\n")
    print("| measurement | value | target |\n|---|---|---|")
    print(f"| train loop, flow on 8gaussians, {loop['steps']} steps, median of {repeats}: "
          f"harness {loop['harness_s']:.2f} s vs bare {loop['bare_s']:.2f} s CPU "
          f"| {loop['ratio']:.3f}x | <= 1.03x |")
    print(f"| 2 trials x {conc['steps']} steps, 1 CPU each: sequential "
          f"{conc['sequential_s']:.1f} s vs concurrent {conc['concurrent_s']:.1f} s "
          f"| {conc['speedup']:.2f}x throughput | >= 1.8x |")
    print(f"| Ray fixed cost per trial ({fixed['trials']} one-step trials: {fixed['ray_s']:.1f} s "
          f"via Ray, {fixed['in_process_s']:.1f} s in-process) | {fixed['per_trial_s']:.1f} s "
          "| (reported) |")


if __name__ == "__main__":
    main()
