"""Variational auto-encoder (Kingma & Welling 2014) with the importance-weighted bound (IWAE,
Burda et al. 2016).

Encoder q_φ(z|x) = N(z; μ_φ(x), diag σ_φ(x)²), decoder p_θ(x|z), prior p(z) = N(0, I) (the errata's
naming: q_φ encodes, p_θ decodes).
- Points: MLPs; Gaussian decoder N(x; m_θ(z), diag exp(s)²) with a learned per-dimension log-std s.
  `layers = 0` makes encoder and decoder linear: probabilistic PCA with a diagonal q.
- Images: conv encoder/decoder (bench.families.nets); the decoder predicts a per-pixel mean and log-std of
  a discretized Gaussian over the dataset's levels (bin width Δ = spec.bin_width, Ho et al. 2020,
  eq. 13), so every bound below is a bound on the likelihood of the *discrete* data.

Bounds per example, in nats, with z_k = μ + σ ⊙ ε_k, ε_k ~ N(0, I) and
log w_k = log p(x|z_k) + log p(z_k) − log q(z_k|x):
    ELBO   = E_q[log w]                        (training: the analytic-KL form, one z per example)
    IWAE-K = E[log (1/K) Σ_k w_k]              ELBO = IWAE-1 ≤ IWAE-K ≤ IWAE-(K+1) → log p(x)
`nll` reports −IWAE-K (headline; K = its iwae_k argument, the suite's [eval] iwae_k) and −ELBO, both
estimated from the same K samples (the ELBO as their mean log-weight), so elbo ≥ iwae-K holds per
example by Jensen's inequality.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

import torch
from torch import nn

from bench.datasets.base import DataSpec
from bench.families.base import CommonHparams, Family, every_kind
from bench.families.likelihood import discretized_gaussian_log_likelihood, gaussian_log_prob, normal_kl
from bench.families.nets import ConvDecoder, ConvEncoder, mlp

LOG_STD_MIN = -7.0  # floor of every log-std: keeps 1/σ finite in low precision (σ ≥ 9e-4)
LOG_STD_MAX = 5.0  # ceiling of the encoder's log-std (σ ≤ 148), far outside any useful posterior


@dataclass
class VAEHparams(CommonHparams):
    latent: int = 8  # dim of z; vs 2: ~0.02 nats worse on 8gaussians, 0.2 bits/dim better on digits
    hidden: int = 128  # width of the encoder/decoder MLPs (points)
    layers: int = 3  # hidden layers per MLP (points; 3 beat 2 by ~0.1 nats on 8gaussians);
    # 0 = linear maps (probabilistic PCA)
    width: int = 32  # base channels of the conv encoder/decoder (images)
    lr: float = 1e-3  # Adam learning rate
    batch_size: int = 256  # examples per optimizer step (drawn by the trial loop)
    kl_warmup: int = 0  # steps of a linear 0 -> 1 ramp of the KL weight; 0 = plain ELBO throughout
    grad_clip: float = 100.0  # max global gradient norm; 0 disables clipping
    impute_steps: int = 50  # encode/decode iterations of `impute`

    # deprecated names, mapped with a warning (every family calls its MLP depth `layers`)
    ALIASES: ClassVar[dict[str, str]] = {"hidden_layers": "layers"}

    def validate(self) -> None:
        super().validate()
        for name in ("latent", "hidden", "width", "batch_size", "impute_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (got {getattr(self, name)})")
        for name in ("layers", "kl_warmup", "grad_clip"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (got {getattr(self, name)})")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0 (got {self.lr})")


class GaussianEncoder(nn.Module):
    """x (B, *shape) -> (mean, log_std) of q(z|x), each (B, latent). `net` outputs 2·latent."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(x).float().chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)


class PointDecoder(nn.Module):
    """z (N, latent) -> (mean, log_std) of p(x|z), each (N, D); log-std: a learned (D,) vector."""

    def __init__(self, net: nn.Module, dim: int):
        super().__init__()
        self.net = net
        self.log_std = nn.Parameter(torch.zeros(dim))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.net(z).float()
        return mean, self.log_std.clamp(min=LOG_STD_MIN).expand_as(mean)


class ImageDecoder(nn.Module):
    """z (N, latent) -> per-pixel (mean, log_std), each (N, C, H, W), of a discretized Gaussian."""

    def __init__(self, latent: int, shape: tuple[int, int, int], width: int):
        super().__init__()
        self.net = ConvDecoder(latent, shape, width, out_channels=2 * shape[0])

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(z).float().chunk(2, dim=1)
        return mean, log_std.clamp(min=LOG_STD_MIN)


class VAE(Family):
    """VAE trained on the ELBO, evaluated by ELBO and IWAE-K (maths in the module docstring)."""

    Hparams = VAEHparams
    tiny_hparams = MappingProxyType({"hidden": 32, "width": 8, "kl_warmup": 20})
    nll_kinds = every_kind("iwae")
    lecture = True  # a lecture family: its claims are tested, it decides "other families" comparisons
    # decoder output entries per IWAE chunk (K × examples × D): bounds evaluation memory at large K
    CHUNK_ELEMENTS = 2**20

    def __init__(self, spec: DataSpec, hparams: VAEHparams):
        super().__init__(spec, hparams)
        hp = hparams
        if spec.is_image:
            self.encoder = GaussianEncoder(ConvEncoder(spec.shape, 2 * hp.latent, hp.width))
            self.decoder: nn.Module = ImageDecoder(hp.latent, spec.shape, hp.width)
        else:
            enc = mlp(spec.dim, 2 * hp.latent, hp.hidden, hp.layers)
            self.encoder = GaussianEncoder(enc)
            dec = mlp(hp.latent, spec.dim, hp.hidden, hp.layers)
            self.decoder = PointDecoder(dec, spec.dim)
        params = [*self.encoder.parameters(), *self.decoder.parameters()]
        self.opt = torch.optim.Adam(params, lr=hp.lr)
        self.steps = 0  # optimizer steps taken (drives the KL warm-up)

    def extra_state(self) -> dict:
        return super().extra_state() | {"steps": self.steps}  # base: the weight average

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.steps = state["steps"]

    def modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoder": self.decoder}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    # --- likelihood pieces ----------------------------------------------------------------------
    def log_likelihood(self, x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
        """Elementwise log p(x|z) in nats given the decoder's (mean, log_std); all (..., *shape).

        Images: log P of the discrete level (sums to 1 over the levels); points: log density.
        """
        if self.spec.is_image:
            return discretized_gaussian_log_likelihood(x, mean, log_std, self.spec.bin_width)
        return gaussian_log_prob(x, mean, log_std)

    def _sum_data_dims(self, t: torch.Tensor) -> torch.Tensor:
        """(..., *shape) -> (...): sum over the per-example data dimensions."""
        return t.sum(dim=tuple(range(-len(self.spec.shape), 0)))

    def log_weights(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """log w_k = log p(x|z_k) + log p(z_k) − log q(z_k|x), z_k ~ q(z|x): (B, *shape) -> (k, B).

        In nats. All k samples go through the decoder as one (k·B)-batch: no Python loop over k
        or examples. Differentiable (usable for IWAE training); `bounds` wraps it without gradients.
        """
        mean, log_std = self.encoder(x)  # (B, L) each
        eps = self.randn((k, *mean.shape), generator)  # (k, B, L)
        z = mean + log_std.exp() * eps
        log_q = gaussian_log_prob(z, mean, log_std).sum(-1)
        log_prior = gaussian_log_prob(z, torch.zeros_like(z), torch.zeros_like(z)).sum(-1)
        x_mean, x_log_std = self.decoder(z.flatten(0, 1))  # (k·B, *shape) each
        x_mean, x_log_std = x_mean.view(k, *x.shape), x_log_std.view(k, *x.shape)
        x_k = x.float().expand(k, *x.shape)
        log_px = self._sum_data_dims(self.log_likelihood(x_k, x_mean, x_log_std))
        return log_px + log_prior - log_q

    @torch.no_grad()
    def bounds(
        self, x: torch.Tensor, k: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(ELBO, IWAE-k) lower bounds on log p(x), each (B,) nats, from the same k samples each.

        Examples are processed in chunks of at most CHUNK_ELEMENTS decoder outputs so that memory
        stays bounded for large k or large images; within a chunk everything is one batched pass.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1 (got {k})")
        per_chunk = max(1, self.CHUNK_ELEMENTS // (k * self.spec.dim))
        elbos, iwaes = [], []
        for xc in x.split(per_chunk):
            log_w = self.log_weights(xc, k, generator)  # (k, b)
            elbos.append(log_w.mean(0))
            iwaes.append(torch.logsumexp(log_w, dim=0) - math.log(k))  # log-mean-exp over k
        return torch.cat(elbos), torch.cat(iwaes)

    def iwae(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """IWAE-k lower bound on log p(x): x (B, *shape) -> (B,) nats (images: discrete data)."""
        return self.bounds(x, k, generator)[1]

    def nll(
        self, x: torch.Tensor, generator: torch.Generator | None = None, *, iwae_k: int | None = None
    ) -> dict[str, torch.Tensor]:
        """{"iwae-K": −IWAE-K, "elbo": −ELBO}, (B,) nats each, K = iwae_k; both ≥ −log p(x).

        One set of K samples gives both bounds. iwae_k is an evaluation option (the suite's [eval]
        iwae_k), required here: the VAE has no K of its own.
        """
        if iwae_k is None:
            raise ValueError("the VAE's nll needs iwae_k (importance samples of its IWAE-K bound)")
        elbo, iwae = self.bounds(x, iwae_k, generator)
        return {f"iwae-{iwae_k}": -iwae, "elbo": -elbo}

    # --- training --------------------------------------------------------------------------------
    def _kl_weight(self) -> float:
        return 1.0 if self.hp.kl_warmup == 0 else min(1.0, (self.steps + 1) / self.hp.kl_warmup)

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        """One Adam step on −(E_q log p(x|z) − β·KL(q(z|x) ‖ p(z))), β = 1 after the warm-up.

        One reparameterised z per example, analytic Gaussian KL (Kingma & Welling's estimator B).
        Returns loss (nats/example, with β), elbo_nats and kl_nats (batch means, β = 1).
        """
        mean, log_std = self.encoder(x)
        z = mean + log_std.exp() * torch.randn_like(mean)
        x_mean, x_log_std = self.decoder(z)
        rec = self._sum_data_dims(self.log_likelihood(x.float(), x_mean, x_log_std))
        zero = torch.zeros_like(mean)
        kl = normal_kl(mean, 2 * log_std, zero, zero).sum(-1)
        loss = -(rec - self._kl_weight() * kl).mean()
        self.opt.zero_grad(set_to_none=True)
        self.backward(loss)
        self.clip_gradients(self.opt, self.hp.grad_clip)
        self.opt.step()
        self.steps += 1
        elbo = (rec - kl).mean().item()
        return {"loss": loss.item(), "elbo_nats": elbo, "kl_nats": kl.mean().item()}

    # --- generation and missing data -----------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, *, steps: int | None = None) -> torch.Tensor:
        """(n, *shape) float32: the decoder *mean* m_θ(z) at z ~ N(0, I), not a draw from p(x|z).

        The mean is the standard "VAE sample" (adding the decoder's pixel noise gives speckle, not
        detail); it is what the lecture's "VAE samples are blurred" claim is about and what is
        measured. Images are clamped to [-1, 1]. One decoder pass: `steps` must be None.
        """
        if steps is not None:
            raise ValueError(f"the VAE samples in one pass; steps must be None, got {steps}")
        mean, _ = self.decoder(self.randn((n, self.hp.latent), generator))
        return self.to_data_range(mean)  # a discretized decoder's mean may lie outside [-1, 1]

    @torch.no_grad()
    def impute(self, x: torch.Tensor, known: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Fill x where `known` (bool, x's shape) is False by iterated encode/decode; (B, *shape).

        Unknown entries start at the decoder mean of z = 0 (the model's central guess, no data
        statistics needed); each of hp.impute_steps iterations encodes the current completion,
        decodes the posterior mean μ_φ(x) and replaces the unknown entries by the decoder mean,
        keeping the known ones. Deterministic (μ_φ rather than a draw), so `generator` is unused.
        """
        known = known.to(torch.bool)
        start, _ = self.decoder(torch.zeros(1, self.hp.latent, device=self.device))
        filled = torch.where(known, x, self.to_data_range(start).expand_as(x))
        for _ in range(self.hp.impute_steps):
            mean, _ = self.encoder(filled)
            recon, _ = self.decoder(mean)
            # clamp inside the loop: an unclamped mean beyond [-1, 1] fed back to the encoder
            # runs away (hidden pixels reached ±1e3 on digits)
            filled = torch.where(known, x, self.to_data_range(recon))
        return filled
