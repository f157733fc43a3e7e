"""Denoising diffusion probabilistic model (Ho et al. 2020) with strided sampling (Nichol & Dhariwal 2021):
the family around `bench.families.diffusion.GaussianDiffusion` (notation, schedules and closed forms
there), an ε-network (TimeMLP on points, SmallUNet on images) trained with L_simple, the VLB as its
NLL and the probability-flow ODE of the VP-SDE view of its schedule as `ode_nll`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import torch
from torch import nn

from bench.datasets.base import DataSpec
from bench.families.base import CommonHparams, Family, every_kind
from bench.families.diffusion import BETA_SCHEDULES, GaussianDiffusion, cosine_betas, linear_betas
from bench.families.nets import SmallUNet, TimeMLP
from bench.families.ode import OdeNll, OdeSettings, VPSchedule, family_ode_nll
from bench.families.samplers import SAMPLERS, diffusers_sample

__all__ = ["DDPM", "DDPMHparams", "GaussianDiffusion", "cosine_betas", "linear_betas"]


@dataclass
class DDPMHparams(CommonHparams):
    timesteps: int = 1000  # T: diffusion steps for training, the VLB and default sampling (Ho et al.)
    # linear: Ho et al.'s 1e-4 -> 0.02 at T = 1000 (endpoints ×1000/T); cosine: Nichol & Dhariwal 2021
    beta_schedule: Literal["linear", "cosine"] = "linear"
    # reverse variance σ_t² (Algorithm 2): β_t, β̃_t, or "auto" = β for points, β̃ for images. Why: at
    # small t continuous data is locally smooth, so q(x_{t-1}|x_t) has variance ≈ β_t, and β̃ costs ≈ D/2
    # nats of VLB on N(0, s²I) (measured and closed form, tests/test_ddpm.py); discrete images are
    # nearly determined by x_t at small t, where q(x_{t-1}|x_t) → q(x_{t-1}|x_t, x_0) with variance β̃_t.
    sigma: Literal["auto", "beta", "beta_tilde"] = "auto"
    hidden: int = 128  # width of the points TimeMLP
    layers: int = 3  # hidden layers of the points TimeMLP
    width: int = 32  # base channels of the image SmallUNet
    lr: float = 1e-3  # Adam learning rate
    batch_size: int = 256  # examples per optimizer step (drawn by the trial loop)
    # VLB terms evaluated per example: 0 = every one of the T terms (one x_t draw each); k > 0 = L_T, L_0
    # and an unbiased stratified estimate of Σ L_{t-1} from k timesteps (full T on 8×8 images at T=1000:
    # ~260 CPU-s per 1000 examples; k = 50: ~13 s; on 2-D points full T costs ~1.5 CPU-s per 1000)
    vlb_timesteps: int = 0
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    clip_x0: bool = True  # images: clip x̂_0 to [-1, 1] in each sampling step (Ho et al.'s sampler); VLB never clips

    def validate(self) -> None:
        super().validate()
        for name in ("timesteps", "hidden", "width", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.timesteps < 2:
            raise ValueError(f"timesteps must be >= 2 (got {self.timesteps})")
        for name in ("layers", "vlb_timesteps", "grad_clip"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (got {getattr(self, name)})")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0 (got {self.lr})")


class DDPM(Family):
    """ε-prediction DDPM: L_simple training, ancestral (optionally strided) sampling, VLB likelihood."""

    Hparams = DDPMHparams
    tiny_hparams = MappingProxyType({"hidden": 32, "width": 8, "timesteps": 20})
    nll_kinds = every_kind("vlb")
    samplers = SAMPLERS  # every sampler of the vocabulary drives its ε-network
    lecture = True  # a lecture family: its claims are tested, it decides "other families" comparisons

    def __init__(self, spec: DataSpec, hparams: DDPMHparams):
        super().__init__(spec, hparams)
        hp = hparams
        sigma = hp.sigma if hp.sigma != "auto" else ("beta_tilde" if spec.is_image else "beta")
        self.diffusion = GaussianDiffusion(BETA_SCHEDULES[hp.beta_schedule](hp.timesteps), sigma)
        if spec.is_image:
            self.net: nn.Module = SmallUNet(spec.shape[0], hp.width)
        else:
            self.net = TimeMLP(spec.dim, hp.hidden, hp.layers)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=hp.lr)
        self._respaced: dict[int, GaussianDiffusion] = {}
        self._vp = VPSchedule(self.diffusion.alphas_cumprod)  # the probability flow's time axis

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    # --- training ----------------------------------------------------------------------------------
    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        """Algorithm 1: t ~ U{1..T}, ε ~ N(0, I), one Adam step on ‖ε − ε_θ(x_t, t)‖² (mean per element)."""
        x = x.to(self.device).float()
        t = torch.randint(0, self.diffusion.T, (len(x),), device=x.device)
        noise = torch.randn_like(x)
        pred = self.net(self.diffusion.q_sample(x, t, noise), t)
        loss = (pred.float() - noise).pow(2).mean()
        self.opt.zero_grad(set_to_none=True)
        self.backward(loss)
        self.clip_gradients(self.opt, self.hp.grad_clip)
        self.opt.step()
        return {"loss": loss.item()}

    # --- generation, likelihood, missing data -------------------------------------------------------
    def _predictor(self) -> nn.Module:
        """The bare ε-network. Which weights it holds (raw, or the base class's average during
        evaluation) is `evaluation_weights`' business, the same for every family."""
        return self.unwrapped(self.net)

    def _noise(self, generator: torch.Generator | None) -> Callable[[tuple[int, ...]], torch.Tensor]:
        """shape -> N(0, I) on the model's device (drawn on the generator's; the device looked up once)."""
        device = self.device
        return lambda shape: self.randn(shape, generator, device=device)

    def _schedule(self, steps: int | None) -> GaussianDiffusion:
        """The full schedule for steps=None, else the respaced one (cached; steps=T is respaced too)."""
        if steps is None:
            return self.diffusion
        if steps not in self._respaced:
            self._respaced[steps] = self.diffusion.respaced(steps)
        return self._respaced[steps]

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, *, steps: int | None = None, sampler: str = "ancestral"
    ) -> torch.Tensor:
        """(n, *shape) float32 in `steps` network calls (None: all T) by `sampler` (bench.families.samplers):
        ancestral sampling on strided timesteps, or a diffusers scheduler on the full β schedule."""
        clip = self.spec.is_image and self.hp.clip_x0
        shape = (n, *self.spec.shape)
        with self.fp32():  # one autocast context for the whole loop: the network runs in fp32
            if sampler == "ancestral":
                x = self._schedule(steps).sample_loop(self._predictor(), self._noise(generator), shape, clip)
            else:
                betas, k = self.diffusion.betas, steps or self.diffusion.T
                x = diffusers_sample(sampler, betas, self._predictor(), self._noise(generator), shape, k, clip)
        return self.to_data_range(x)

    def nfe_per_sample(self, steps: int | None = None) -> int:
        return self._schedule(steps).T

    def sampling_steps(self) -> int:
        return self.diffusion.T

    @torch.no_grad()
    def nll(
        self, x: torch.Tensor, generator: torch.Generator | None = None, *, iwae_k: int | None = None
    ) -> dict[str, torch.Tensor]:
        """{"vlb": L_VLB} per example, (B,) nats in fp32; all T terms or stratified (hp.vlb_timesteps).

        Images: a bound on the discrete NLL (discretized L_0). Rows per network call: 32768 points
        (the MLP is cheap; fewer calls = less per-op overhead), or 2·batch_size images (U-Net memory).
        """
        rows = 2 * self.hp.batch_size if self.spec.is_image else 32768
        with self.fp32():
            vlb = self.diffusion.vlb(
                self._predictor(),
                x.to(self.device).float(),
                self.hp.vlb_timesteps,
                generator,
                self.spec.bin_width if self.spec.is_image else None,
                rows,
            )
        return {"vlb": vlb.to(x.device)}

    def ode_nll(self, x: torch.Tensor, generator: torch.Generator | None = None, *, settings: OdeSettings) -> OdeNll:
        """The probability-flow ODE of the VP-SDE view of the β schedule, from the first noise level
        (s = 0) to s = T−1 (bench.families.ode), with the ε-network in fp32."""
        with self.fp32():
            velocity = self._vp.velocity(self._predictor())
            return family_ode_nll(self, velocity, x, 0.0, self.diffusion.T - 1.0, settings, generator)

    @torch.no_grad()
    def impute(
        self,
        x: torch.Tensor,
        known: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        steps: int | None = None,
    ) -> torch.Tensor:
        """Fill x where `known` is False: sample while replacing known entries by q(x_{t−1}|x_0) draws."""
        x0, known = x.to(self.device).float(), known.to(self.device, torch.bool)
        clip = self.spec.is_image and self.hp.clip_x0
        with self.fp32():
            out = self._schedule(steps).sample_loop(
                self._predictor(), self._noise(generator), tuple(x0.shape), clip, x0=x0, known=known
            )
        return self.to_data_range(torch.where(known, x0, out)).to(x.device)
