"""The diffusers-driven samplers of bench.families.samplers against a bare DDIM and the DDPM family."""

from __future__ import annotations

import pytest
import torch

from bench.datasets.base import DataSpec
from bench.families import make_family
from bench.families.samplers import SAMPLERS, diffusers_sample
from bench.metrics.config import EvalConfig

T, STEPS, SHAPE = 20, 5, (64, 2)


def linear_betas(t: int) -> torch.Tensor:
    """A mild linear schedule (ᾱ_T ≈ 0.6): x̂_0 stays O(1), so 1e-5 is an absolute tolerance that
    float32 scheduler tables (diffusers keeps ᾱ in float32) can meet against a float64 reference."""
    return torch.linspace(1e-3, 0.05, t, dtype=torch.float64)


def _net() -> torch.nn.Module:
    """A fixed, untrained ε-network of (x, t): any smooth function serves as the reference's input."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2).double()
    return lambda x, t: lin(torch.cat([x, t.to(x.dtype).expand(len(x), 1) / T], 1))


def _noise(seed: int):
    gen = torch.Generator().manual_seed(seed)
    return lambda shape: torch.randn(shape, generator=gen, dtype=torch.float64)


def _bare_ddim(betas: torch.Tensor, eps_fn, x: torch.Tensor, steps: int) -> torch.Tensor:
    """DDIM η = 0 (Song et al. 2021 eq. 12) on trailing timesteps T−1, T−1−T/steps, ..., ᾱ = 1 after the last."""
    ac = torch.cumprod(1 - betas, 0)
    ts = [T - 1 - k * (T // steps) for k in range(steps)]
    for k, t in enumerate(ts):
        a = ac[t]
        a_prev = ac[ts[k + 1]] if k + 1 < steps else torch.tensor(1.0, dtype=ac.dtype)
        eps = eps_fn(x, torch.tensor([t]))
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    return x


def test_diffusers_ddim_matches_bare_reference():
    betas, net = linear_betas(T), _net()
    with torch.no_grad():
        ours = diffusers_sample("ddim", betas, net, _noise(1), SHAPE, STEPS)
        ref = _bare_ddim(betas, net, _noise(1)(SHAPE), STEPS)
    assert (ours - ref).abs().max().item() < 1e-5


@pytest.mark.parametrize("name", ["ddim", "dpm-solver++"])
def test_deterministic_samplers_same_noise_same_sample(name):
    betas, net = linear_betas(T), _net()
    with torch.no_grad():
        a = diffusers_sample(name, betas, net, _noise(3), SHAPE, STEPS)
        b = diffusers_sample(name, betas, net, _noise(3), SHAPE, STEPS)
        c = diffusers_sample(name, betas, net, _noise(4), SHAPE, STEPS)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_ddpm_family_ddim_is_deterministic_and_counts_steps():
    fam = make_family("ddpm", DataSpec("pts", (2,), "points"), {"hidden": 16, "timesteps": 20})
    a = fam.sample(32, torch.Generator().manual_seed(0), steps=4, sampler="ddim")
    b = fam.sample(32, torch.Generator().manual_seed(0), steps=4, sampler="ddim")
    assert a.shape == (32, 2) and torch.equal(a, b)
    assert set(fam.samplers) == set(SAMPLERS)


def test_eval_samplers_checked():
    assert EvalConfig().samplers == ("ancestral",)
    assert EvalConfig(samplers=("ddim", "dpm-solver++")).problems() == []
    bad = EvalConfig(samplers=("euler-ish",)).problems()
    assert bad and bad[0][0] == "samplers"
