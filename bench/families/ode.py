"""ODE likelihoods shared by the continuous-time families (DDPM's probability flow, flow matching).

Instantaneous change of variables (Chen et al. 2018; FFJORD, Grathwohl et al. 2019): along a
trajectory of dx/dt = v(x, t) from data time t_data to noise time t_noise,

    log p(x) = log N(z; 0, I) + ∫_{t_data}^{t_noise} div v(x_t, t) dt,   z = x_{t_noise},

solved with torchdiffeq's adaptive dopri5 on the augmented state (x, ∫ div). The divergence is exact
on points (one vector-Jacobian product per dimension) and a Hutchinson estimate on images: P
Rademacher probes ε drawn once per solve, each with its own accumulator of εᵀ(∂v/∂x)ε along the
same trajectory, so each accumulator is an unbiased estimate of the integral and their spread gives
the estimate's standard error per example.

`VPSchedule` is the variance-preserving SDE view of a discrete DDPM β schedule (Song et al. 2021) on
the ε-network's own timestep axis s ∈ [0, T−1]: λ(s) = −log ᾱ(s) is the monotone C¹ cubic (PCHIP)
through λ(i) = −log ᾱ_i, so at every integer timestep the ODE sees exactly the noise level the
network was trained at; β(s) = λ'(s). The probability-flow ODE is
dx/ds = −½ β(s) (x − ε(x, s)/σ(s)), σ(s)² = 1 − ᾱ(s); it starts at s = 0 (σ_0 = √β_1, the first
noise level: the network never saw σ = 0), so the density is that of the data at σ_0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.interpolate import PchipInterpolator
from torchdiffeq import odeint

from bench.families.likelihood import LOG_2PI

Velocity = Callable[[torch.Tensor, float], torch.Tensor]  # (B, *shape), time -> (B, *shape)
EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # ε-network: x (B, *shape), timestep (1,)


@dataclass(frozen=True)
class OdeSettings:
    """How an ODE likelihood is solved; the evaluation passes the suite's [eval] values."""

    rtol: float = 1e-5  # dopri5 relative tolerance (on x and on the divergence integral)
    atol: float = 1e-5  # dopri5 absolute tolerance
    probes: int = 1  # Rademacher probes per example of the Hutchinson divergence (images only)


@dataclass
class OdeNll:
    """Per-example −log p(x) in nats (B,), the Hutchinson standard error per example (B,) (None with
    the exact divergence or a single probe), and the velocity evaluations the solve took."""

    nats: torch.Tensor
    probe_stderr: torch.Tensor | None
    nfe: int


def rademacher(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device, dtype=torch.float32
) -> torch.Tensor:
    """±1 with probability ½ each, drawn on the generator's device (reproducible), moved to `device`."""
    dev = generator.device if generator is not None else device
    r = torch.randint(0, 2, shape, generator=generator, device=dev).to(device=device, dtype=dtype)
    return r.mul_(2).sub_(1)


def exact_divergence(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """tr(∂v/∂x) per row of x (B, D) with v = f(x) built under grad: D vector-Jacobian products."""
    flat = v.flatten(1)
    div = torch.zeros(len(x), dtype=v.dtype, device=v.device)
    for i in range(flat.shape[1]):
        (g,) = torch.autograd.grad(flat[:, i].sum(), x, retain_graph=True)
        div = div + g.flatten(1)[:, i]
    return div


def hutchinson_divergence(v: torch.Tensor, x: torch.Tensor, probes: torch.Tensor) -> torch.Tensor:
    """εᵀ(∂v/∂x)ε per probe and row, (P, B), for probes (P, *x.shape): one VJP per probe. Unbiased
    for the trace whenever E[εεᵀ] = I (Rademacher: and of the least variance among such ε)."""
    out = []
    for p, eps in enumerate(probes):
        (g,) = torch.autograd.grad(v, x, eps, retain_graph=p < len(probes) - 1)
        out.append((g * eps).flatten(1).sum(1))
    return torch.stack(out)


def hutchinson_trace(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, probes: int, generator=None):
    """Hutchinson estimate of tr(∂fn/∂x) per row: (mean over probes (B,), its standard error (B,))."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        est = hutchinson_divergence(fn(xg), xg, rademacher((probes, *x.shape), generator, x.device, x.dtype))
    return est.mean(0), est.std(0) / math.sqrt(probes)


def ode_nll(
    velocity: Velocity,
    x: torch.Tensor,
    t_data: float,
    t_noise: float,
    settings: OdeSettings,
    *,
    exact: bool,
    generator: torch.Generator | None = None,
) -> OdeNll:
    """−log p(x) of the density that dx/dt = velocity(x, t) carries from N(0, I) at t_noise to
    t_data (module docstring); exact divergence or `settings.probes` Hutchinson probes. fp32, no grad
    to the parameters (the solve runs under torch.enable_grad only for the divergence). The state
    keeps x's dtype (families pass fp32; float64 for closed-form checks)."""
    x = x.detach()
    n_acc = 1 if exact else settings.probes
    probes = None if exact else rademacher((n_acc, *x.shape), generator, x.device, x.dtype)
    nfe = 0

    def rhs(t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        nonlocal nfe
        nfe += 1
        with torch.enable_grad():
            xt = state[0].detach().requires_grad_(True)
            v = velocity(xt, t.item())
            div = exact_divergence(v, xt)[None] if exact else hutchinson_divergence(v, xt, probes)
        return v.detach(), div.detach()

    acc0 = torch.zeros(n_acc, len(x), dtype=x.dtype, device=x.device)
    times = torch.tensor([t_data, t_noise], dtype=torch.float64, device=x.device)
    with torch.no_grad():
        zs, accs = odeint(rhs, (x, acc0), times, rtol=settings.rtol, atol=settings.atol, method="dopri5")
    z, integral = zs[-1].double(), accs[-1].double()  # (B, *shape), (P, B)
    log_prior = -0.5 * (z.flatten(1).pow(2).sum(1) + z[0].numel() * LOG_2PI)
    per_probe = -(log_prior[None] + integral)  # (P, B) nats
    stderr = per_probe.std(0) / math.sqrt(n_acc) if n_acc > 1 else None
    return OdeNll(per_probe.mean(0), stderr, nfe)


def family_ode_nll(
    family, velocity: Velocity, x: torch.Tensor, t_data: float, t_noise: float, settings: OdeSettings, generator
) -> OdeNll:
    """`ode_nll` on a family's data: images uniformly dequantized and charged −D·log Δ (the flow's
    convention, Family.dequantize / dequantization_nats) with the Hutchinson divergence; points exact."""
    xq = family.dequantize(x.to(family.device).float(), generator)
    out = ode_nll(velocity, xq, t_data, t_noise, settings, exact=not family.spec.is_image, generator=generator)
    out.nats = (out.nats + family.dequantization_nats()).to(x.device)
    return out


class VPSchedule:
    """A discrete schedule's ᾱ_i (T,) as a VP SDE on the timestep axis s ∈ [0, T−1] (module docstring)."""

    def __init__(self, alphas_cumprod: torch.Tensor):
        lam = -torch.log(alphas_cumprod.double()).numpy()
        self.T = len(lam)
        self._lam = PchipInterpolator(np.arange(self.T, dtype=np.float64), lam)
        self._dlam = self._lam.derivative()

    def _clamped(self, s: float) -> float:
        """s inside [0, T−1]: a solver's trial stages may probe past the ends, where the cubic extrapolates."""
        return min(max(s, 0.0), self.T - 1.0)

    def lam(self, s: float) -> float:
        """λ(s) = −log ᾱ(s)."""
        return float(self._lam(self._clamped(s)))

    def alpha_bar(self, s: float) -> float:
        return math.exp(-self.lam(s))

    def beta(self, s: float) -> float:
        """β(s) = dλ/ds, per unit of timestep."""
        return float(self._dlam(self._clamped(s)))

    def sigma(self, s: float) -> float:
        """√(1 − ᾱ(s)), the noise level at s."""
        return math.sqrt(-math.expm1(-self.lam(s)))

    def velocity(self, eps_fn: EpsFn) -> Velocity:
        """The probability-flow drift −½ β(s) (x − ε(x, s)/σ(s)); ε-network called with a (1,) timestep."""

        def v(x: torch.Tensor, s: float) -> torch.Tensor:
            eps = eps_fn(x, torch.full((1,), s, device=x.device, dtype=torch.float32)).to(x.dtype)
            return -0.5 * self.beta(s) * (x - eps / self.sigma(s))

        return v
