"""ODE likelihood cost and accuracy at the quick suite's budget (1500 steps, batch 128, its hparams).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ode_nll.py [--families ddpm flowmatch]
        [--datasets 8gaussians digits] [--examples 8gaussians=500 digits=20] [--probes 1]

Per family and dataset: training seconds, the headline NLL (DDPM: its VLB), nll_ode with its standard
error, NFE per solve and seconds per example of the ODE NLL (eval defaults rtol = atol = 1e-5), and
on 8gaussians the true NLL of the same examples. Units: nats (points), bits/dim (images).
"""

from __future__ import annotations

import argparse
import time

import torch

from bench.datasets import make_dataset
from bench.families import make_family
from bench.families.ode import OdeSettings
from bench.metrics.nll import _to_unit

QUICK = {  # suites/quick.toml's hparams for these families
    ("ddpm", "8gaussians"): {"batch_size": 128, "timesteps": 200},
    ("ddpm", "digits"): {"batch_size": 128, "timesteps": 200, "width": 16},
    ("flowmatch", "8gaussians"): {"batch_size": 128},
    ("flowmatch", "digits"): {"batch_size": 128, "width": 16},
}


def trained(name: str, ds, steps: int, seed: int = 0):
    torch.manual_seed(seed)
    fam = make_family(name, ds.spec, QUICK[(name, ds.spec.name)])
    data, g = ds.train(), torch.Generator().manual_seed(seed)
    fam.train(True)
    t0 = time.perf_counter()
    for _ in range(steps):
        fam.step(data[torch.randint(len(data), (fam.hp.batch_size,), generator=g)])
    fam.train(False)
    return fam, time.perf_counter() - t0


def mean_se(v: torch.Tensor) -> str:
    return f"{v.mean().item():.4f} ± {v.std().item() / len(v) ** 0.5:.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="*", default=["ddpm", "flowmatch"])
    ap.add_argument("--datasets", nargs="*", default=["8gaussians", "digits"])
    ap.add_argument("--examples", nargs="*", default=["8gaussians=500", "digits=20"])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--probes", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(1)
    counts = {k: int(v) for k, v in (e.split("=") for e in args.examples)}
    for dname in args.datasets:
        ds = make_dataset(dname, {"n_train": 20000, "n_test": 2000} if dname == "8gaussians" else None)
        x = ds.test()[: counts[dname]]
        for name in args.families:
            fam, train_s = trained(name, ds, args.steps)
            g = torch.Generator().manual_seed(0)
            with fam.evaluation_weights(), torch.no_grad():
                head = {k: _to_unit(v.double(), ds.spec) for k, v in fam.nll(x, g).items()}
                t0 = time.perf_counter()
                out = fam.ode_nll(x, g, settings=OdeSettings(probes=args.probes))
                ode_s = time.perf_counter() - t0
            ode = _to_unit(out.nats.double(), ds.spec)
            log_p = ds.log_density(x)
            truth = "" if log_p is None else f" true {mean_se(-log_p.double())}"
            heads = " ".join(f"{k} {mean_se(v)}" for k, v in head.items())
            print(
                f"{name:9} {dname:10} train {train_s:6.1f}s  {heads}  ode {mean_se(ode)}  nfe {out.nfe}  "
                f"{ode_s / len(x) * 1000:.1f} ms/example ({len(x)} in {ode_s:.1f}s){truth}",
                flush=True,
            )


if __name__ == "__main__":
    main()
