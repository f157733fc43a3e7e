"""Generative adversarial network (Goodfellow et al. 2014) with the non-saturating generator loss.

Discriminator D(x) = sigmoid(d(x)) (d returns a logit), generator G(z), z ~ N(0, I). Natural logs:
    value     L(G, D) = E_{p_r} log D(x) + E_{p_g} log(1 − D(x))     (the errata's corrected sign)
    D loss    −L(G, D)                          (minimax; its optimum is D* = p_r / (p_r + p_g))
    G loss    −E_z log D(G(z))                  (non-saturating: strong gradients when D wins)
At D*, L = 2·JS(p_r ‖ p_g) − 2 log 2, so a batch gives the Jensen–Shannon estimate (L + 2 log 2)/2
in nats, a lower bound on JS for any D (a sub-optimal D under-estimates it).

Points: MLP discriminator and generator. Images: ConvEncoder as D, ConvDecoder + tanh as G (so
samples lie in [-1, 1]). A GAN has no likelihood: `nll` returns {} (nll_kind None).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch import nn
from torch.nn import functional as F

from bench.datasets.base import DataSpec
from bench.families.base import CommonHparams, Family, every_kind
from bench.families.nets import ConvDecoder, ConvEncoder, mlp

LOG_4 = 2 * math.log(2.0)


def js_estimate(value: float) -> float:
    """Jensen–Shannon divergence (nats) implied by a value L(G, D): (L + 2 log 2) / 2."""
    return (value + LOG_4) / 2


@dataclass
class GANHparams(CommonHparams):
    latent: int = 16  # dimension of the generator's N(0, I) noise z
    hidden: int = 128  # width of the D and G MLPs (points)
    layers: int = 3  # hidden layers of the D and G MLPs (points)
    width: int = 32  # base channels of the conv D and G (images)
    lr: float = 2e-4  # Adam learning rate of both D and G
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas; β1 = 0.5 (DCGAN) damps oscillation
    batch_size: int = 256  # real examples per train_step (drawn by the trial loop)
    d_steps: int = 1  # discriminator steps per generator step
    grad_clip: float = 0.0  # max gradient norm per network; 0 disables clipping

    def validate(self) -> None:
        super().validate()
        for name in ("latent", "hidden", "width", "batch_size", "d_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.layers < 0:
            raise ValueError(f"layers must be >= 0 (got {self.layers})")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0 (got {self.lr})")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1) (got {self.betas})")
        if self.grad_clip < 0:
            raise ValueError(f"grad_clip must be >= 0 (got {self.grad_clip})")


class GAN(Family):
    """GAN whose train_step holds the D/G alternation: hp.d_steps D steps, then one G step."""

    Hparams = GANHparams
    tiny_hparams = MappingProxyType({"hidden": 32, "width": 8})
    nll_kinds = every_kind(None)
    lecture = True  # a lecture family: its claims are tested, it decides "other families" comparisons
    main_loss = "loss_d"
    # Collapse (the `mode_collapsed` column, not a divergence): loss_d < COLLAPSE_LOSS_D means D puts
    # > 99.5 % on the right side of both batches (at equilibrium loss_d = 2 log 2 ≈ 1.39). Held for
    # COLLAPSE_STEPS consecutive steps the generator is no longer catching up — the "discriminator
    # wins" failure that usually comes with collapsed samples — though every loss is still finite.
    COLLAPSE_LOSS_D = 0.01
    COLLAPSE_STEPS = 500

    def __init__(self, spec: DataSpec, hparams: GANHparams):
        super().__init__(spec, hparams)
        hp = hparams
        if spec.is_image:
            self.d_net: nn.Module = ConvEncoder(spec.shape, 1, hp.width)
            g_body = ConvDecoder(hp.latent, spec.shape, hp.width)
            self.g_net: nn.Module = nn.Sequential(g_body, nn.Tanh())
        else:
            self.d_net = mlp(spec.dim, 1, hp.hidden, hp.layers)
            self.g_net = mlp(hp.latent, spec.dim, hp.hidden, hp.layers)
        self.opt_d = torch.optim.Adam(self.d_net.parameters(), lr=hp.lr, betas=tuple(hp.betas))
        self.opt_g = torch.optim.Adam(self.g_net.parameters(), lr=hp.lr, betas=tuple(hp.betas))
        self._collapsed_steps = 0  # consecutive steps with loss_d < COLLAPSE_LOSS_D
        self._collapsed = False  # the collapse condition held at some point of training

    def modules(self) -> dict[str, nn.Module]:
        return {"d_net": self.d_net, "g_net": self.g_net}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt_d": self.opt_d, "opt_g": self.opt_g}

    # --- pieces -----------------------------------------------------------------------------------
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Discriminator logits d(x), D(x) = sigmoid(d(x)): (B, *shape) -> (B,) float32."""
        return self.d_net(x).float().squeeze(-1)

    def _loss_d(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """−L(G, D) on the batches; log D = −softplus(−d) and log(1 − D) = −softplus(d), stably."""
        return F.softplus(-self.logits(real)).mean() + F.softplus(self.logits(fake)).mean()

    @torch.no_grad()
    def value(self, real: torch.Tensor, fake: torch.Tensor) -> float:
        """L(G, D) = mean log D(real) + mean log(1 − D(fake)), nats, at the current D (no step)."""
        return -self._loss_d(real, fake).item()

    def discriminator_step(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        """One Adam step of D on the minimax loss −L; real (B, *shape), fake (B', *shape).

        `fake` is treated as data (detached), so D can be trained against any fixed distribution.
        Returns loss_d, value = −loss_d and js, all of the batch before the step (nats).
        """
        loss_d = self._loss_d(real, fake.detach())
        self.opt_d.zero_grad(set_to_none=True)
        self.backward(loss_d)
        self.clip_gradients(self.opt_d, self.hp.grad_clip)
        self.opt_d.step()
        value = -loss_d.item()
        return {"loss_d": -value, "value": value, "js": js_estimate(value)}

    # --- the Family interface --------------------------------------------------------------------
    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        """hp.d_steps D steps on x against fresh fakes (same real batch each time), then one G step.

        Returns loss_d, value and js of the last D step, and loss_g = −mean log D(G(z)) (nats).
        """
        b = x.shape[0]
        for _ in range(self.hp.d_steps):
            with torch.no_grad():
                fake = self.g_net(self.randn((b, self.hp.latent), device=x.device))
            stats = self.discriminator_step(x, fake)
        # G's backward also fills D's .grad; discriminator_step zeroes those before D's next step.
        loss_g = F.softplus(-self.logits(self.g_net(self.randn((b, self.hp.latent), device=x.device)))).mean()
        self.opt_g.zero_grad(set_to_none=True)
        self.backward(loss_g)
        self.clip_gradients(self.opt_g, self.hp.grad_clip)
        self.opt_g.step()
        self._track_collapse(stats["loss_d"])
        return {**stats, "loss_g": loss_g.item()}

    def _track_collapse(self, loss_d: float) -> None:
        self._collapsed_steps = self._collapsed_steps + 1 if loss_d < self.COLLAPSE_LOSS_D else 0
        self._collapsed = self._collapsed or self._collapsed_steps >= self.COLLAPSE_STEPS

    def mode_collapsed(self) -> bool:
        """Whether loss_d stayed below COLLAPSE_LOSS_D for COLLAPSE_STEPS consecutive steps."""
        return self._collapsed

    def extra_state(self) -> dict:
        return super().extra_state() | {"collapsed_steps": self._collapsed_steps, "collapsed": self._collapsed}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self._collapsed_steps, self._collapsed = int(state["collapsed_steps"]), bool(state["collapsed"])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, *, steps: int | None = None) -> torch.Tensor:
        """(n, *shape) float32 samples G(z), z ~ N(0, I); images in [-1, 1]; steps must be None."""
        if steps is not None:
            raise ValueError(f"the GAN samples in one pass; steps must be None, got {steps}")
        return self.to_data_range(self.g_net(self.randn((n, self.hp.latent), generator)).view(n, *self.spec.shape))
