"""What trial checkpoints cost, per family on digits (the quick suite's digits configurations).

    python benchmarks/checkpoint_cost.py                  # ~10 min on 2 CPU cores
    python benchmarks/checkpoint_cost.py --steps 100 --every 50 --rounds 1   # smoke check

1. Checkpoint cost: bench.trial's own path (Family.training_state, generators, monitor record ->
   bench.trial.checkpoint.save into a temporary folder) plus the copy into a storage folder with pyarrow's
   copy_files, which is what Ray Tune does for a local storage_path; seconds (median of 5) and MB.
2. Train-time overhead of checkpointing every `--every` steps: bench.trial's training loop
   (`_Training.run`, reports every 100 steps to an in-process reporter in both arms) with
   checkpoints every `--every` steps (copied to storage) vs with checkpoints off; CPU time of the
   process during the loop (process_time: user + system, so serialisation and file writes count,
   while other load on a shared machine does not), arms interleaved in alternating order, median
   of the per-round ratios. `--steps` equal to
   `--every` gives exactly one checkpoint per run. The step-time based estimate (cost / (every ×
   step time)) is printed next to it: on a loaded machine it resolves what the direct ratio cannot.
3. Time to resume: bench.trial's restore (checkpoint.load, Family.load_training_state, monitor,
   generators) into a freshly built family; median of 5. Not included: starting the process or Ray
   worker, which every trial pays (docs/benchmarks.md: Ray's fixed cost per trial).
4. A report's cost under Ray: a trial blocks in `tune.report` until the driver has taken the result
   (Tune's function trainables report synchronously); milliseconds per report of a trivial trial
   reporting 300 times through a private local Ray. With `--no-ray` this is skipped.
Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from accelerate.utils import set_seed
from pyarrow import fs as pafs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.datasets import make_dataset  # noqa: E402
from bench.families import make_family  # noqa: E402
from bench.suite import load_suite  # noqa: E402
from bench.trial.run import (  # noqa: E402
    Lifecycle,
    _accelerator,
    _Training,
    checkpoint,  # noqa: E402
)

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("checkpoint_cost")


def cells(families: list[str]):
    suite = load_suite(ROOT / "suites" / "quick.toml")
    return {c.family: c for c in suite.cells() if c.dataset == "digits" and c.seed == 0 and c.family in families}


def training(cell, lifecycle: Lifecycle) -> _Training:
    set_seed(cell.seed)
    dataset = make_dataset(cell.dataset, cell.dataset_options)
    family = make_family(cell.family, dataset.spec, cell.hparams)
    accelerator, _ = _accelerator(cell.mixed_precision, [])
    family.attach(accelerator)
    return _Training(family, dataset, cell, accelerator, lifecycle)


def storage_reporter(storage: Path):
    """A reporter that copies each checkpoint into `storage` as Ray Tune does (pyarrow copy_files)."""
    local = pafs.LocalFileSystem()
    count = [0]

    def report(metrics, folder):
        if folder is not None:
            dest = storage / f"checkpoint_{count[0]:06d}"
            local.create_dir(str(dest))
            pafs.copy_files(str(folder), str(dest), source_filesystem=local, destination_filesystem=local)
            count[0] += 1

    return report


def loop_seconds(cell, every: int, storage: Path) -> float:
    reporter = storage_reporter(storage) if every else (lambda metrics, folder: None)
    t = training(dataclasses.replace(cell, checkpoint_every_steps=every), Lifecycle(reporter=reporter))
    start = time.process_time()
    t.run({})
    return time.process_time() - start


def checkpoint_cost(cell, storage: Path, repeats: int = 5) -> dict[str, float]:
    """Wall seconds to save one checkpoint and copy it to storage, its size, and to restore it."""
    t = training(cell, Lifecycle(reporter=lambda m, f: None))
    t.run({})  # a trained state: optimizer moments exist
    saves, saves_cpu = [], []
    for i in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        folder = Path(tempfile.mkdtemp(dir=storage))
        checkpoint.save(folder, t._state(cell.steps), trial_id=cell.trial_id)
        dest = storage / f"stored_{i}"
        dest.mkdir()
        pafs.copy_files(str(folder), str(dest))
        shutil.rmtree(folder)
        saves.append(time.perf_counter() - start)
        saves_cpu.append(time.process_time() - start_cpu)
    size_mb = (dest / checkpoint.STATE).stat().st_size / 2**20
    restores = []
    for _ in range(repeats):
        fresh = training(cell, Lifecycle(resume=dest))
        start = time.perf_counter()
        fresh._restore({})
        restores.append(time.perf_counter() - start)
    return {
        "save_s": statistics.median(saves),
        "save_cpu_s": statistics.median(saves_cpu),
        "size_mb": size_mb,
        "resume_s": statistics.median(restores),
    }


def overhead(cell, every: int, rounds: int, storage: Path) -> dict[str, float]:
    cell = dataclasses.replace(cell, report_every_steps=100)
    loop_seconds(dataclasses.replace(cell, steps=10), 0, storage)  # warm-up
    times = {"off": [], "on": []}
    for i in range(rounds):
        for name in ("off", "on") if i % 2 == 0 else ("on", "off"):
            times[name].append(loop_seconds(cell, every if name == "on" else 0, storage / f"{name}{i}"))
    ratios = [on / off for on, off in zip(times["on"], times["off"])]
    return {
        "off_s": statistics.median(times["off"]),
        "on_s": statistics.median(times["on"]),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


def _reporting_trial(config):
    from ray import tune

    start = time.perf_counter()
    for i in range(config["n"]):
        tune.report({"step": i})
    tune.report({"per_report_ms": (time.perf_counter() - start) / config["n"] * 1e3})


def report_round_trip_ms(n: int = 300) -> float:
    import os

    import ray
    from ray import tune

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as storage:
            run = tune.RunConfig(storage_path=storage, verbose=0)
            result = tune.Tuner(_reporting_trial, param_space={"n": n}, run_config=run).fit()
            return result[0].metrics["per_report_ms"]
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=500, help="training steps per timed run")
    parser.add_argument("--every", type=int, default=500, help="checkpoint interval in steps")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved on/off pairs per family")
    parser.add_argument("--families", nargs="+", default=["gan", "vae", "flow", "ddpm"])
    parser.add_argument("--no-ray", action="store_true", help="skip the report round-trip measurement")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family, cell in cells(args.families).items():
            cell = dataclasses.replace(cell, steps=args.steps)
            storage = Path(tmp) / family
            storage.mkdir()
            cost = checkpoint_cost(cell, storage)
            over = overhead(cell, args.every, args.rounds, storage)
            step_s = over["off_s"] / args.steps
            estimate = cost["save_cpu_s"] / (args.every * step_s)  # CPU time over CPU time
            rows.append((family, cost, over, step_s, estimate))
            print(f"{family}: {cost} {over} step {step_s * 1e3:.1f} ms", flush=True)
    print(f"\n{args.steps} steps per run, checkpoint every {args.every}, {args.rounds} interleaved rounds\n")
    print(
        "| family (digits, quick suite) | checkpoint | save + copy to storage, wall (CPU) | resume (load + restore) "
        "| step (CPU) | overhead, direct CPU time (rounds) | overhead, cost / (every × step) |"
    )
    print("|---|---|---|---|---|---|---|")
    for family, cost, over, step_s, estimate in rows:
        print(
            f"| {family} | {cost['size_mb']:.2f} MB "
            f"| {cost['save_s'] * 1e3:.1f} ms ({cost['save_cpu_s'] * 1e3:.1f} ms) "
            f"| {cost['resume_s'] * 1e3:.1f} ms "
            f"| {step_s * 1e3:.1f} ms | {100 * (over['ratio'] - 1):+.2f} % ({100 * (over['ratio_min'] - 1):+.1f}…"
            f"{100 * (over['ratio_max'] - 1):+.1f}) | {100 * estimate:.3f} % |"
        )
    if not args.no_ray:
        print(f"\nOne report through Ray Tune (trivial trial, 300 reports): {report_round_trip_ms():.2f} ms")


if __name__ == "__main__":
    main()
