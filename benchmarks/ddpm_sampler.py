"""DDPM sampling vs a bare ancestral sampler on the same network.

    python benchmarks/ddpm_sampler.py              # 2-D points, T = 1000, batch 500, 7 rounds
    python benchmarks/ddpm_sampler.py --image      # 8×8 U-Net, T = 100, batch 64

Both sides draw the same number of samples from the same EMA network (default DDPM size), one torch
thread, process CPU time per call (robust to other load on a shared machine). The bare sampler is
Algorithm 2 written the short way: Python-float coefficients from the schedule, `net(x, t)` with a
(B,) timestep, `torch.randn` per step, no autocast, no clipping (points) / x̂_0 clipping (images).
Rounds alternate the order of the two sides; the ratio is the median of per-round ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.datasets.base import DataSpec  # noqa: E402
from bench.families.ddpm import DDPM  # noqa: E402
from bench.hparams import build  # noqa: E402


@torch.no_grad()
def bare_sample(net, betas: torch.Tensor, n: int, shape, g: torch.Generator, clip: bool) -> torch.Tensor:
    ac = torch.cumprod(1 - betas, 0)
    ac_prev = torch.cat([torch.ones(1, dtype=ac.dtype), ac[:-1]])
    sigma = ((1 - ac_prev) / (1 - ac) * betas).sqrt().tolist() if clip else betas.sqrt().tolist()
    b, a, acl, acp = betas.tolist(), (1 - betas).tolist(), ac.tolist(), ac_prev.tolist()
    x = torch.randn((n, *shape), generator=g)
    for i in reversed(range(len(b))):
        eps = net(x, torch.full((n,), i, dtype=torch.long))
        if clip:
            x0 = ((x - (1 - acl[i]) ** 0.5 * eps) / acl[i] ** 0.5).clamp(-1, 1)
            mean = (acp[i] ** 0.5 * b[i] / (1 - acl[i])) * x0 + (a[i] ** 0.5 * (1 - acp[i]) / (1 - acl[i])) * x
        else:
            mean = (x - b[i] / (1 - acl[i]) ** 0.5 * eps) / a[i] ** 0.5
        x = mean + sigma[i] * torch.randn((n, *shape), generator=g) if i > 0 else mean
    return x


def cpu_time(fn) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", action="store_true")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    if args.image:
        spec, hp, n = DataSpec("img", (1, 8, 8), "image", levels=17), {"timesteps": 100}, 64
    else:
        spec, hp, n = DataSpec("pts", (2,), "points"), {}, 500
    model = DDPM(spec, build(DDPM.Hparams, hp, owner="ddpm"))
    model.train(False)
    clip = spec.is_image and model.hp.clip_x0
    betas = model.diffusion.betas
    sides = {
        "genbench": lambda: model.sample(n, torch.Generator().manual_seed(1)),
        "bare": lambda: bare_sample(model.net, betas, n, spec.shape, torch.Generator().manual_seed(1), clip),
    }
    for fn in sides.values():  # warm-up, and the two must agree (same draws)
        fn()
    diff = (sides["genbench"]() - sides["bare"]()).abs().max().item()
    times: dict[str, list[float]] = {k: [] for k in sides}
    for r in range(args.rounds):
        for name in sides if r % 2 == 0 else reversed(list(sides)):
            times[name].append(cpu_time(sides[name]))
    ratios = [g / b for g, b in zip(times["genbench"], times["bare"])]
    med = statistics.median(ratios)
    what = f"{'8×8 image U-Net' if args.image else '2-D points TimeMLP'}, T = {model.diffusion.T}, batch {n}"
    print(
        f"| DDPM sampling, {what}: genbench {statistics.median(times['genbench']):.3f} s vs bare "
        f"{statistics.median(times['bare']):.3f} s CPU (medians of {args.rounds}) | {med:.3f}× "
        f"(rounds {min(ratios):.3f}–{max(ratios):.3f}); max |diff| {diff:.1e} | ≤ 1.0× |"
    )


if __name__ == "__main__":
    main()
