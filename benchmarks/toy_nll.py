"""Train each family on 8gaussians for a modest CPU budget; print test NLL next to the true entropy.

    .venv/bin/python benchmarks/toy_nll.py [--families flow vae ddpm gan] [--seed 0] [--threads 1]

The NLL column is the family's headline estimator (flow: exact; VAE: IWAE-K with the ELBO beside it;
DDPM: the full variational bound); a bound must lie above the true entropy, an exact NLL near it.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from tqdm import tqdm

from bench.datasets import make_dataset
from bench.families import FAMILIES, make_family

# Optimizer steps per family for a budget of a few CPU minutes each (see docs/benchmarks.md).
STEPS = {"flow": 8000, "vae": 30000, "ddpm": 30000, "gan": 3000}


def train(name: str, data: torch.Tensor, spec, steps: int, seed: int):
    torch.manual_seed(seed)
    model = make_family(name, spec)
    g = torch.Generator().manual_seed(seed)
    bs = model.hp.batch_size
    t0 = time.perf_counter()
    for _ in tqdm(range(steps), desc=name, leave=False):
        model.train_step(data[torch.randint(len(data), (bs,), generator=g)])
    return model, time.perf_counter() - t0


def evaluate(model, test: torch.Tensor, seed: int) -> dict[str, tuple[float, float]]:
    """{estimator: (mean NLL, standard error)} in nats over the test set."""
    g = torch.Generator().manual_seed(seed)
    model.train(False)
    with torch.no_grad():
        parts = [model.nll(chunk, generator=g) for chunk in test.split(1000)]
    out = {}
    for label in parts[0] if parts else []:
        v = torch.cat([p[label] for p in parts])
        out[label] = (v.mean().item(), v.std().item() / math.sqrt(len(v)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="*", default=["flow", "vae", "ddpm", "gan"], choices=FAMILIES.names())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps-scale", type=float, default=1.0, help="multiply every family's step count")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = make_dataset("8gaussians")
    true, true_se = ds.true_nll_nats()
    print(f"8gaussians true NLL (entropy): {true:.4f} ± {true_se:.4f} nats (Monte Carlo)")
    print(f"{'family':6} {'steps':>6} {'train_s':>8}  {'estimator':10} {'NLL nats':>9} {'± se':>6} {'NLL - true':>10}")
    for name in args.families:
        steps = int(STEPS[name] * args.steps_scale)
        model, secs = train(name, ds.train(), ds.spec, steps, args.seed)
        est = evaluate(model, ds.test(), args.seed)
        if not est:
            print(f"{name:6} {steps:6d} {secs:8.1f}  {'none':10} {'—':>9} {'':>6} {'—':>10}  (no likelihood)")
        for label, (m, se) in est.items():
            print(f"{name:6} {steps:6d} {secs:8.1f}  {label:10} {m:9.4f} {se:6.4f} {m - true:+10.4f}")


if __name__ == "__main__":
    main()
