"""What the harness costs: train-loop overhead, Ray concurrency, Ray's fixed cost per trial.

    python benchmarks/harness_overhead.py            # full run (~7 min on 2 CPU cores)
    python benchmarks/harness_overhead.py --quick    # smaller, for a smoke check

1. Train loop: bench.trial's loop (Accelerate-prepared family, TrainMonitor, budget checks, seeded
   batch draws) vs a bare PyTorch loop calling the same family's step (train_step + its weight
   average, part of training for every family) on batches drawn the same way; same model, same
   steps, one thread; CPU time of the loop (process_time: robust to
   other load on a shared machine), median of per-round ratios, with an A/A control (bare vs bare)
   that shows the measurement's noise floor. Target <= 1.03x. On a shared 2-core VM that floor is
   several percent, so the overhead is also measured by parts: the loop around a zero-cost family
   (fastest of interleaved repeats), plus the few calls in which a prepared family differs from a
   bare one (timed per call, weighted by their count in one step); their sum over the bare flow
   step gives the ratio with a resolution of microseconds.
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
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.families.base import Family  # noqa: E402
from bench.suite import load_suite  # noqa: E402
from bench.trial.run import Lifecycle, _accelerator, _Training, run_trial  # noqa: E402

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
    path.write_text(
        f'name = "{name}"\nseeds = {seeds}\n'
        '[[datasets]]\nname = "8gaussians"\n'
        "options = { n_train = 20000, n_test = 1000 }\n"
        '[[models]]\nfamily = "flow"\n'
        f'[[budgets]]\nname = "b"\nsteps = {steps}\n'
        f"[resources]\ncpus_per_trial = 1\nmax_concurrent = {max_concurrent}\n"
        f"{TINY_EVAL}"
    )
    return load_suite(path)


# --- 1. train-loop overhead -------------------------------------------------------------------
class NullFamily:
    """What the trial loop sees of a family whose step costs nothing: timing a loop over it leaves
    the loop's own per-step cost (batch draw, monitor, budget checks)."""

    main_loss = "loss"
    check_divergence = Family.check_divergence

    def __init__(self, spec, hparams):
        self.hp = SimpleNamespace(batch_size=256)

    def train(self, mode: bool = True) -> None:
        pass

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        return {"loss": 0.0}

    def step(self, x: torch.Tensor) -> dict[str, float]:  # no weights, so no weight average
        return self.train_step(x)

    def mode_collapsed(self) -> None:
        return None


def _family(cell, null: bool):
    from bench.datasets import make_dataset
    from bench.families import make_family

    torch.manual_seed(cell.seed)
    dataset = make_dataset(cell.dataset, cell.dataset_options)
    family = NullFamily(dataset.spec, {}) if null else make_family(cell.family, dataset.spec, cell.hparams)
    return dataset, family


def harness_loop(cell, null: bool = False) -> float:
    """CPU seconds of bench.trial's loop for cell.steps steps on an Accelerate-prepared family."""
    dataset, family = _family(cell, null)
    accelerator, _ = _accelerator(cell.mixed_precision, [])
    if not null:
        family.attach(accelerator)
    t = time.process_time()
    _Training(family, dataset, cell, accelerator, Lifecycle()).run({})
    return time.process_time() - t


def bare_loop(cell, null: bool = False) -> float:
    """CPU seconds of a plain PyTorch loop: the same family unprepared, batches drawn the same way."""
    dataset, family = _family(cell, null)
    data, batch = dataset.train(), family.hp.batch_size
    generator = torch.Generator().manual_seed(cell.seed)
    family.train(True)
    t = time.process_time()
    for _ in range(cell.steps):
        family.step(data[torch.randint(len(data), (batch,), generator=generator)])  # train_step + EMA
    return time.process_time() - t


def fastest_per_step(cell, null: bool, repeats: int) -> tuple[float, float]:
    """(bare, harness) CPU seconds per step, each the minimum over interleaved repeats: machine
    interruptions only ever add time, so the minimum is the stable estimate of a small cost."""
    bare, harness = [], []
    for i in range(repeats):
        for fn, out in ((bare_loop, bare), (harness_loop, harness))[:: 1 if i % 2 else -1]:
            out.append(fn(cell, null))
    return min(bare) / cell.steps, min(harness) / cell.steps


def loop_cost_per_step(folder: Path, repeats: int) -> dict[str, float]:
    """The trial loop's own CPU cost per step (batch draw, monitor, budget checks) around a
    zero-cost family, vs a bare loop drawing the same batches: microseconds, fastest of repeats."""
    torch.set_num_threads(1)
    cell = suite(folder, "null", steps=20000, seeds=[0]).cells()[0]
    bare_loop(cell, True), harness_loop(cell, True)  # warm-up
    bare, harness = fastest_per_step(cell, True, repeats)
    return {"loop_bare_us": bare * 1e6, "loop_harness_us": harness * 1e6, "loop_extra_us": (harness - bare) * 1e6}


def family_wrapper_cost(folder: Path, number: int = 5000) -> dict[str, float]:
    """What a prepared family does per step that a bare one does not, in microseconds.

    Once attached on CPU without mixed precision the modules are the same objects (no hooks) and
    the optimizers are the bare ones (asserted here; bit-identical training is a unit test), so
    the prepared family differs only in Family.backward (Accelerate's backward), clip_gradients
    (its unscale call) and unwrapped (a cache lookup). Each is timed attached vs bare on a scalar
    loss (their extra work does not depend on the graph) and weighted by its calls in one flow step.
    """
    import timeit

    from accelerate.optimizer import AcceleratedOptimizer

    cell = suite(folder, "wrap", steps=1, seeds=[0]).cells()[0]
    dataset, bare = _family(cell, null=False)
    modules = dict(bare.modules())
    _, attached = _family(cell, null=False)
    attached.attach(_accelerator(cell.mixed_precision, [])[0])
    assert not any(isinstance(o, AcceleratedOptimizer) for o in attached.optimizers().values())
    assert all(type(m) is type(modules[k]) for k, m in attached.modules().items())

    calls = {"backward": 0, "clip_gradients": 0, "unwrapped": 0}
    for name in calls:  # count the calls of one train_step through instance-level wrappers
        method = getattr(attached, name)

        def counted(*args, _name=name, _method=method, **kwargs):
            calls[_name] += 1
            return _method(*args, **kwargs)

        setattr(attached, name, counted)
    for fam in (bare, attached):  # one real step each: gradients exist for the clip below
        fam.train(True)
        fam.train_step(dataset.train()[: fam.hp.batch_size])
    for name in calls:
        delattr(attached, name)

    w = torch.ones(1, requires_grad=True)
    per_call = {
        "backward": lambda fam: fam.backward((w * 2).sum()),
        "clip_gradients": lambda fam: fam.clip_gradients(next(iter(fam.optimizers().values())), fam.hp.grad_clip),
        "unwrapped": lambda fam: fam.unwrapped(next(iter(fam.modules().values()))),
    }
    out = {}
    for name, fn in per_call.items():
        t = {
            k: min(timeit.repeat(lambda f=fam, g=fn: g(f), number=number, repeat=5)) / number * 1e6
            for k, fam in (("bare", bare), ("attached", attached))
        }
        out[f"{name}_calls"], out[f"{name}_extra_us"] = calls[name], t["attached"] - t["bare"]
    out["family_extra_us"] = sum(out[f"{n}_calls"] * out[f"{n}_extra_us"] for n in per_call)
    return out


def loop_overhead(folder: Path, steps: int, rounds: int) -> dict[str, float]:
    """Per round: bare, harness and a second bare loop (the A/A control) in rotating order; the
    ratios are per round, so slow drifts in machine speed cancel. The control's ratio shows the
    noise floor: a harness ratio inside the control's spread is no measurable overhead."""
    torch.set_num_threads(1)
    cell = suite(folder, "loop", steps=steps, seeds=[0]).cells()[0]
    bare_loop(cell), harness_loop(cell)  # warm-up: first-call allocations, lazy imports
    arms = (("bare", bare_loop), ("harness", harness_loop), ("control", bare_loop))
    times = {name: [] for name, _ in arms}
    for i in range(rounds):
        for name, fn in arms[i % 3 :] + arms[: i % 3]:
            times[name].append(fn(cell))
    ratio = {name: [t / b for t, b in zip(times[name], times["bare"])] for name in ("harness", "control")}
    return {
        "steps": steps,
        "rounds": rounds,
        "bare_s": statistics.median(times["bare"]),
        "harness_s": statistics.median(times["harness"]),
        **{
            f"{name}_{stat}": fn(r)
            for name, r in ratio.items()
            for stat, fn in (("ratio", statistics.median), ("min", min), ("max", max))
        },
    }


# --- 2./3. Ray ---------------------------------------------------------------------------------
def timed_run(s, results_root: Path) -> float:
    from bench.run.driver import run_suite

    t = time.perf_counter()
    summary = run_suite(s, results_root, restart=True, report=False)
    assert summary.statuses.get("ok", 0) == summary.total, summary.describe()
    return time.perf_counter() - t


def concurrency(folder: Path, steps: int) -> dict[str, float]:
    sequential = timed_run(suite(folder, "seq", steps=steps, seeds=[0, 1], max_concurrent=1), folder)
    concurrent = timed_run(suite(folder, "conc", steps=steps, seeds=[0, 1], max_concurrent=2), folder)
    return {"steps": steps, "sequential_s": sequential, "concurrent_s": concurrent, "speedup": sequential / concurrent}


def fixed_cost(folder: Path, trials: int) -> dict[str, float]:
    s = suite(folder, "fixed", steps=1, seeds=list(range(trials)), max_concurrent=1)
    in_process = 0.0
    for cell in s.cells():
        t = time.perf_counter()
        run_trial(cell, results_dir=folder / "inproc")
        in_process += time.perf_counter() - t
    through_ray = timed_run(s, folder)
    return {
        "trials": trials,
        "ray_s": through_ray,
        "in_process_s": in_process,
        "per_trial_s": (through_ray - in_process) / trials,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats (smoke)")
    parser.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs for the local Ray")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    loop_steps, rounds, conc_steps, k = (100, 3, 300, 3) if args.quick else (1000, 7, 3000, 6)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        parts = loop_cost_per_step(folder, 9 if not args.quick else 3) | family_wrapper_cost(folder)
        loop = loop_overhead(folder, loop_steps, rounds)
        import ray

        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        try:
            conc = concurrency(folder, conc_steps)
            fixed = fixed_cost(folder, k)
        finally:
            ray.shutdown()

    print(
        f"\nharness overhead ({'quick' if args.quick else 'full'}; {args.cpus} CPUs for Ray; "
        f"torch {torch.__version__}; {time.strftime('%Y-%m-%d')})\n"
    )
    print("| measurement | value | target |\n|---|---|---|")
    print(
        f"| train loop, flow on 8gaussians, {loop['steps']} steps x {loop['rounds']} rounds: harness "
        f"{loop['harness_s']:.2f} s vs bare {loop['bare_s']:.2f} s CPU (medians) | "
        f"{loop['harness_ratio']:.3f}x (rounds {loop['harness_min']:.3f}-{loop['harness_max']:.3f}) "
        "| <= 1.03x |"
    )
    extra_us = parts["loop_extra_us"] + parts["family_extra_us"]
    step_us = loop["bare_s"] / loop["steps"] * 1e6
    wrappers = ", ".join(
        f"{n} {parts[n + '_calls']}x {parts[n + '_extra_us']:.2f} us"
        for n in ("backward", "clip_gradients", "unwrapped")
    )
    print(
        f"| per-step extra CPU by parts: loop {parts['loop_extra_us']:.1f} us "
        f"({parts['loop_harness_us']:.1f} vs {parts['loop_bare_us']:.1f}, fastest of repeats); "
        f"prepared family {parts['family_extra_us']:.1f} us ({wrappers}); over the "
        f"{step_us / 1e3:.2f} ms bare flow step | {1 + extra_us / step_us:.4f}x | <= 1.03x |"
    )
    print(
        f"| A/A control: a second bare loop vs bare, same rounds | {loop['control_ratio']:.3f}x "
        f"(rounds {loop['control_min']:.3f}-{loop['control_max']:.3f}) | (noise floor) |"
    )
    print(
        f"| 2 trials x {conc['steps']} steps, 1 CPU each: sequential "
        f"{conc['sequential_s']:.1f} s vs concurrent {conc['concurrent_s']:.1f} s "
        f"| {conc['speedup']:.2f}x throughput | >= 1.8x |"
    )
    print(
        f"| Ray fixed cost per trial ({fixed['trials']} one-step trials: {fixed['ray_s']:.1f} s "
        f"via Ray, {fixed['in_process_s']:.1f} s in-process) | {fixed['per_trial_s']:.1f} s "
        "| (reported) |"
    )


if __name__ == "__main__":
    main()
