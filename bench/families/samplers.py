"""Samplers of a diffusion's ε-network: the vocabulary of `[eval] samplers` and the diffusers-driven ones.

"ancestral" is genbench's own loop (`GaussianDiffusion.sample_loop`, Algorithm 2 of Ho et al.); "ddim"
(Song, Meng & Ermon 2021, η = 0) and "dpm-solver++" (Lu et al. 2022, second-order multistep) are
diffusers' `DDIMScheduler` and `DPMSolverMultistepScheduler`, built on the family's own β schedule
(`trained_betas`) and stepping genbench's network. Both use "trailing" timestep spacing so the first
step starts at t = T, like the ancestral loop's respacing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import torch

from bench.families.diffusion import EpsFn

Sampler = Literal["ancestral", "ddim", "dpm-solver++"]  # the one vocabulary of eval.samplers
SAMPLERS: tuple[str, ...] = get_args(Sampler)
DEFAULT_SAMPLERS: tuple[str, ...] = ("ancestral",)  # what [eval] samplers means when left out


def _scheduler(name: str, betas: torch.Tensor, clip_x0: bool):
    """A diffusers scheduler over the full schedule `betas` (float64, (T,)); imported lazily (heavy)."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    common = {"num_train_timesteps": len(betas), "trained_betas": betas.tolist(), "timestep_spacing": "trailing"}
    if name == "ddim":
        # set_alpha_to_one: the last step lands on x_0 (ᾱ_0 = 1), as the ancestral loop returns its mean
        return DDIMScheduler(**common, clip_sample=clip_x0, clip_sample_range=1.0, set_alpha_to_one=True)
    if name == "dpm-solver++":
        return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2)
    raise ValueError(f"sampler must be one of {', '.join(SAMPLERS[1:])} here, got {name!r}")


def diffusers_sample(
    name: str,
    betas: torch.Tensor,
    eps_fn: EpsFn,
    noise: Callable[[tuple[int, ...]], torch.Tensor],
    shape: tuple[int, ...],
    steps: int,
    clip_x0: bool = False,
) -> torch.Tensor:
    """x_0 (shape) from x_T = noise(shape) by the deterministic sampler `name` in `steps` network calls.

    eps_fn sees a (1,) int64 timestep (the original index 0..T−1) that broadcasts over the batch."""
    sched = _scheduler(name, betas, clip_x0)
    sched.set_timesteps(steps)
    x = noise(shape) * sched.init_noise_sigma
    for t in sched.timesteps:
        ts = t.reshape(1).to(device=x.device, dtype=torch.long)
        eps = eps_fn(x, ts).to(x.dtype)
        x = sched.step(eps, int(t), x, **({"eta": 0.0} if name == "ddim" else {})).prev_sample
    return x
