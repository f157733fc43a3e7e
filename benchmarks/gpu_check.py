"""The GPU path, checked and measured on a machine with a CUDA device (run via benchmarks/gpu_check.sh).

1. Mini suites through Ray Tune (flow and DDPM on digits, a few hundred steps): gpus_per_trial 1 and
   0.5 (two trials share a device), mixed_precision bf16 and fp16. Every row must be ok, on a CUDA
   device, with the precision that was asked for.
2. NLL in fp32: one trial per family and precision run in this process with every family's `nll`
   wrapped to record, per call, whether autocast was on and the dtypes of the parameters.
   Evaluation must see fp32 parameters and no autocast, whatever the training precision.
3. Train-step throughput bf16 vs fp32 for the DDPM U-Net and the image flow on 3x32x32 batches
   (CIFAR-10's shape, random data: speed does not depend on the values), rounds interleaved,
   median steps/s per side and their ratio.
Prints a markdown table for docs/benchmarks.md; exit status 1 when a check fails.
`--cpu` runs parts 2 and 3 on the CPU (a smoke check of the script; the figures mean nothing).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.datasets.base import DataSpec  # noqa: E402
from bench.families import FAMILIES, make_family  # noqa: E402
from bench.run.driver import run_suite  # noqa: E402
from bench.store import load_results  # noqa: E402
from bench.suite import load_suite  # noqa: E402
from bench.trial.run import _accelerator, run_trial  # noqa: E402

EVAL = """
[eval]
n_samples = 500
n_real = 500
sample_batch = 250
speed_repeats = 1
nll_examples = 200
kid_subset_size = 100
kid_subsets = 5
"""
TINY_EVAL = """
[eval]
n_samples = 100
n_real = 100
sample_batch = 100
speed_repeats = 1
nll_examples = 50
nll_batch = 50
iwae_k = 2
kid_subset_size = 50
kid_subsets = 2
impute = false
classifier_steps = 10
"""
MODELS = """
[[models]]
family = "flow"
[[models]]
family = "ddpm"
[[models]]
family = "vae"
"""


def suite_file(folder: Path, name: str, *, gpus: float, precision: str, steps: int, evaluation: str = EVAL) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\nseeds = [0, 1]\n[[datasets]]\nname = "digits"\n{MODELS}\n'
        f'[[budgets]]\nname = "short"\nsteps = {steps}\n'
        f'[resources]\ngpus_per_trial = {gpus}\nmixed_precision = "{precision}"\n{evaluation}'
    )
    return path


def check_suites(folder: Path, steps: int) -> list[str]:
    """Part 1: rows of the mini suites; returns the failures (empty: all good)."""
    failures = []
    for gpus in (1, 0.5):
        for precision in ("bf16", "fp16"):
            name = f"gpu{str(gpus).replace('.', '')}-{precision}"
            started = time.perf_counter()
            summary = run_suite(
                load_suite(suite_file(folder, name, gpus=gpus, precision=precision, steps=steps)), folder
            )
            wall = time.perf_counter() - started
            df = load_results(summary.results_dir)
            bad = df[(df.status != "ok") | ~df.device.str.startswith("cuda") | (df.mixed_precision != precision)]
            print(f"| suite {name} | {len(df)} trials | {wall:.0f} s wall | {len(bad)} not ok on CUDA/{precision} |")
            failures += [
                f"{name}: {r.label} {r.status} {r.device} {r.mixed_precision} {r.error}" for r in bad.itertuples()
            ]
    return failures


def check_fp32_nll(folder: Path, precisions: tuple[str, ...], steps: int, evaluation: str) -> list[str]:
    """Part 2: every nll call of a trial trained in each precision sees fp32 weights, no autocast."""
    seen: list[tuple[str, str, bool, set]] = []
    training = {"precision": ""}  # the precision of the trial whose evaluation is running
    originals = {name: FAMILIES.get(name).nll for name in ("flow", "ddpm", "vae")}

    def recording(name, nll):
        def wrapped(self, x, generator=None):
            dtypes = {p.dtype for m in self.modules().values() for p in m.parameters()}
            autocast = torch.is_autocast_enabled(x.device.type)
            seen.append((name, training["precision"], autocast, dtypes))
            return nll(self, x, generator)

        return wrapped

    for name, nll in originals.items():
        FAMILIES.get(name).nll = recording(name, nll)
    try:
        for precision in precisions:
            suite = load_suite(
                suite_file(folder, f"nll-{precision}", gpus=0, precision=precision, steps=steps, evaluation=evaluation)
            )
            for cell in suite.cells():
                if cell.seed != 0:
                    continue
                training["precision"] = precision
                row = run_trial(cell, results_dir=folder / "nll-check")
                if row["status"] != "ok":
                    return [f"nll check: {cell.name} {row['status']}: {row['error']}"]
    finally:
        for name, nll in originals.items():
            FAMILIES.get(name).nll = nll
    failures = [
        f"{n} trained {p}: nll under autocast={a}, params {d}" for n, p, a, d in seen if a or d != {torch.float32}
    ]
    calls = {(n, p) for n, p, _, _ in seen}
    failures += [f"{n} trained {p}: nll never called" for n in originals for p in precisions if (n, p) not in calls]
    print(f"| NLL in fp32 | {len(seen)} nll calls over {len(calls)} family x precision | {len(failures)} not fp32 |")
    return failures


def throughput(precisions: tuple[str, ...], rounds: int, steps: int, batch: int) -> None:
    """Part 3: train steps/s per family and precision on 3x32x32 batches, interleaved rounds."""
    spec = DataSpec(name="cifar-shape", shape=(3, 32, 32), kind="image", levels=256)
    print("\n| family | precision | steps/s (median of rounds) | vs fp32 |\n|---|---|---:|---:|")
    for family_name in ("ddpm", "flow"):
        rates: dict[str, list[float]] = {p: [] for p in ("no", *precisions)}
        for _ in range(rounds):
            for precision in rates:
                torch.manual_seed(0)
                family = make_family(family_name, spec, {"batch_size": batch})
                accelerator, used = _accelerator(precision, [])
                family.attach(accelerator)
                family.train(True)
                x = torch.rand((batch, *spec.shape), device=accelerator.device) * 2 - 1
                for _ in range(3):  # warm-up: cuDNN autotuning, allocator
                    family.train_step(x)
                _sync()
                started = time.perf_counter()
                for _ in range(steps):
                    family.train_step(x)
                _sync()
                rates[precision].append(steps / (time.perf_counter() - started))
        base = statistics.median(rates["no"])
        for precision, values in rates.items():
            rate = statistics.median(values)
            label = "fp32" if precision == "no" else precision
            print(f"| {family_name} | {label} | {rate:.1f} | {rate / base:.2f}x |")


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="smoke check on the CPU: parts 2 and 3 only, tiny sizes")
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.cpu:
        print("gpu_check: no CUDA device here (use --cpu for a smoke check of the script)", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="genbench-gpu-check-"))
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(f"{time.strftime('%Y-%m-%d %H:%M')} device {device}, torch {torch.__version__}, folder {folder}\n")
    print("| check | size | result | |\n|---|---|---|---|")
    failures = [] if args.cpu else check_suites(folder, steps=300)
    precisions = ("bf16",) if args.cpu else ("bf16", "fp16")
    failures += check_fp32_nll(
        folder, precisions, steps=20 if args.cpu else 200, evaluation=TINY_EVAL if args.cpu else EVAL
    )
    throughput(("bf16",), rounds=1 if args.cpu else 3, steps=2 if args.cpu else 50, batch=8 if args.cpu else 128)
    for line in failures:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
