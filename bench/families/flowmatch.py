"""Conditional flow matching with the linear (optimal-transport) path (Lipman et al. 2023; Liu et al.
2023's rectified flow).

Path: x_t = (1 − t)·z + t·x_1 with z ~ N(0, I), x_1 a data example, t ∈ [0, 1] (t = 0 noise, 1 data);
conditional velocity u_t = x_1 − z. Training: E_{t ~ U[0,1]} ‖v_θ(x_t, t) − (x_1 − z)‖² (mean per element).
Sampling: dx/dt = v_θ(x, t) from t = 0 to 1 on a fixed grid, so a step count is an NFE budget (the
evaluation's `sampling_steps`): Euler (NFE = steps) or fixed-step Dormand–Prince (torchdiffeq's dopri5
tableau; n = ⌊(steps − 1)/6⌋ steps, NFE = 1 + 6n). Likelihood: the ODE from t = 1 to t = 0 through
bench.families.ode (exact divergence on points, Hutchinson on dequantized images). Networks: the
DDPM's (TimeMLP on points, SmallUNet on images), fed t·TIME_SCALE so that the sinusoidal embedding
resolves time as finely as it resolves the DDPM's timesteps.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import torch
from torch import nn
from torchdiffeq._impl.dopri5 import _DORMAND_PRINCE_SHAMPINE_TABLEAU
from torchdiffeq._impl.rk_common import _runge_kutta_step

from bench.datasets.base import DataSpec
from bench.families.base import CommonHparams, Family
from bench.families.nets import SmallUNet, TimeMLP
from bench.families.ode import OdeNll, OdeSettings, Velocity, family_ode_nll

TIME_SCALE = 1000.0  # network input = t · TIME_SCALE (the DDPM's timestep range)
DOPRI5_NFE = 6  # new velocity evaluations per Dormand–Prince step (FSAL: the 7th is the next step's 1st)


@dataclass
class FlowMatchHparams(CommonHparams):
    hidden: int = 128  # width of the points TimeMLP (the DDPM's default)
    layers: int = 3  # hidden layers of the points TimeMLP
    width: int = 32  # base channels of the image SmallUNet
    lr: float = 5e-3  # Adam learning rate: at 1e-3 the quick budget ends 0.37 nats above the truth, at 5e-3 0.07-0.10
    batch_size: int = 256  # examples per optimizer step (drawn by the trial loop)
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    sample_steps: int = 100  # default NFE budget of sampling (the step count of the headline samples)
    sampler: Literal["euler", "dopri5"] = "euler"  # fixed-grid solver of the sampling ODE
    nll_rtol: float = 1e-5  # dopri5 relative tolerance of the headline NLL (the [eval] ode_rtol default)
    nll_atol: float = 1e-5  # dopri5 absolute tolerance of the headline NLL (the [eval] ode_atol default)
    nll_probes: int = 1  # Hutchinson probes per image of the headline NLL

    def validate(self) -> None:
        super().validate()
        for name in ("hidden", "width", "batch_size", "sample_steps", "nll_probes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (got {getattr(self, name)})")
        for name in ("layers", "grad_clip"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (got {getattr(self, name)})")
        for name in ("lr", "nll_rtol", "nll_atol"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 (got {getattr(self, name)})")


def euler(v: Velocity, x: torch.Tensor, steps: int) -> torch.Tensor:
    """x at t = 1 from x at t = 0: `steps` Euler steps of dx/dt = v(x, t)."""
    dt = 1.0 / steps
    for i in range(steps):
        x = x + dt * v(x, i * dt)
    return x


def dopri5_fixed(v: Velocity, x: torch.Tensor, steps: int) -> torch.Tensor:
    """x at t = 1 from t = 0: n = max(1, ⌊(steps − 1)/6⌋) equal Dormand–Prince 5(4) steps (the
    5th-order solution; no step-size control), NFE = 1 + 6n (SAMPLERS["dopri5"])."""
    n = dopri5_steps(steps)

    def func(t: torch.Tensor, y: torch.Tensor, perturb=None) -> torch.Tensor:
        return v(y, t.item())

    tab = _DORMAND_PRINCE_SHAMPINE_TABLEAU  # in x's dtype and device, as torchdiffeq's own solver casts it
    tableau = type(tab)(
        *(t.to(x.device, x.dtype) if torch.is_tensor(t) else [b.to(x.device, x.dtype) for b in t] for t in tab)
    )
    grid = torch.linspace(0, 1, n + 1, dtype=torch.float64, device=x.device)
    f = func(grid[0], x)
    for t0, t1 in zip(grid[:-1], grid[1:]):
        x, f, _, _ = _runge_kutta_step(func, x, f, t0, t1 - t0, t1, tableau)
    return x


def dopri5_steps(steps: int) -> int:
    return max(1, (steps - 1) // DOPRI5_NFE)


SAMPLERS = {"euler": (euler, lambda steps: steps), "dopri5": (dopri5_fixed, lambda s: 1 + DOPRI5_NFE * dopri5_steps(s))}


class FlowMatching(Family):
    """Conditional flow matching (OT path): regression on x_1 − z, ODE sampling and ODE likelihood."""

    Hparams = FlowMatchHparams
    tiny_hparams = MappingProxyType({"hidden": 32, "width": 8, "sample_steps": 20})
    # "ode": the model density through an adaptive solve, exact only up to the solver's tolerance (the
    # exactness control sees re-evaluations differ by ~3e-3 nats at rtol 1e-5 when the batch is
    # reordered, so it is not "exact"); images: dequantized, with the Hutchinson divergence
    nll_kinds = MappingProxyType({"points": "ode", "image": "ode_dequantized"})

    def __init__(self, spec: DataSpec, hparams: FlowMatchHparams):
        super().__init__(spec, hparams)
        hp = hparams
        self.net: nn.Module = (
            SmallUNet(spec.shape[0], hp.width) if spec.is_image else TimeMLP(spec.dim, hp.hidden, hp.layers)
        )
        self.opt = torch.optim.Adam(self.net.parameters(), lr=hp.lr)

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        """One Adam step on ‖v_θ(x_t, t) − (x_1 − z)‖², t ~ U[0, 1] per example."""
        x1 = x.to(self.device).float()
        z = torch.randn_like(x1)
        t = torch.rand(len(x1), device=x1.device)
        tb = t.view(-1, *([1] * (x1.dim() - 1)))
        pred = self.net((1 - tb) * z + tb * x1, t * TIME_SCALE)
        loss = (pred.float() - (x1 - z)).pow(2).mean()
        self.opt.zero_grad(set_to_none=True)
        self.backward(loss)
        self.clip_gradients(self.opt, self.hp.grad_clip)
        self.opt.step()
        return {"loss": loss.item()}

    def _velocity(self) -> Velocity:
        """v_θ(x, t) with a (1,) time shared by every row (the networks embed it once)."""
        net = self.unwrapped(self.net)
        return lambda x, t: net(x, torch.full((1,), t * TIME_SCALE, device=x.device)).to(x.dtype)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, *, steps: int | None = None) -> torch.Tensor:
        solve = SAMPLERS[self.hp.sampler][0]
        with self.fp32():
            x = solve(self._velocity(), self.randn((n, *self.spec.shape), generator), steps or self.hp.sample_steps)
        return self.to_data_range(x)

    def nfe_per_sample(self, steps: int | None = None) -> int:
        return SAMPLERS[self.hp.sampler][1](steps or self.hp.sample_steps)

    def sampling_steps(self) -> int:
        return self.hp.sample_steps

    def ode_nll(self, x: torch.Tensor, generator: torch.Generator | None = None, *, settings: OdeSettings) -> OdeNll:
        with self.fp32():
            return family_ode_nll(self, self._velocity(), x, 1.0, 0.0, settings, generator)

    def nll(
        self, x: torch.Tensor, generator: torch.Generator | None = None, *, iwae_k: int | None = None
    ) -> dict[str, torch.Tensor]:
        """{nll_kind: the ODE NLL} per example at the hparams' tolerances (fp32)."""
        settings = OdeSettings(self.hp.nll_rtol, self.hp.nll_atol, self.hp.nll_probes)
        return {self.nll_kind: self.ode_nll(x, generator, settings=settings).nats}

    @torch.no_grad()
    def impute(self, x: torch.Tensor, known: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Euler sampling with the known entries held on their own path (1 − t)·z + t·x after each
        step (the flow analogue of the DDPM's replacement imputation)."""
        x1, known = x.to(self.device).float(), known.to(self.device, torch.bool)
        z = self.randn(tuple(x1.shape), generator)
        v, steps = self._velocity(), self.hp.sample_steps
        with self.fp32():
            xt = z
            for i in range(steps):
                t = (i + 1) / steps
                xt = torch.where(known, (1 - t) * z + t * x1, xt + v(xt, i / steps) / steps)
        return self.to_data_range(torch.where(known, x1, xt)).to(x.device)
