"""The Gaussian diffusion of a DDPM (Ho et al. 2020): schedules and every closed form, with strided
sampling (Nichol & Dhariwal 2021); bench.families.ddpm trains a network inside it.

Notation (the errata's corrected forms; maths time t = 1..T, code index i = t − 1 = 0..T−1):
    α_t = 1 − β_t,  ᾱ_t = ∏_{s≤t} α_s,  q(x_t|x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I)
    q(x_{t−1}|x_t, x_0) = N(μ̃_t, β̃_t I),  μ̃_t = √ᾱ_{t−1} β_t/(1−ᾱ_t)·x_0 + √α_t (1−ᾱ_{t−1})/(1−ᾱ_t)·x_t,
    β̃_t = (1−ᾱ_{t−1})/(1−ᾱ_t)·β_t;  model p_θ(x_{t−1}|x_t) = N(μ_θ, σ_t² I) with
    μ_θ = (1/√α_t)(x_t − β_t/√(1−ᾱ_t)·ε_θ(x_t, t)) and σ_t² = β_t or β̃_t (Algorithm 2).
Training: L_simple = E‖ε − ε_θ(√ᾱ_t x_0 + √(1−ᾱ_t) ε, t)‖² (Algorithm 1).
Likelihood, per example in nats: L_VLB = L_T + Σ_{t=2}^T L_{t−1} + L_0 with
    L_T = KL(q(x_T|x_0) ‖ N(0, I)),  L_{t−1} = E_q KL(q(x_{t−1}|x_t, x_0) ‖ p_θ(x_{t−1}|x_t)),
    L_0 = −log p_θ(x_0|x_1): a Gaussian density N(x_0; μ_θ(x_1, 1), σ_1²) for points, the discretized
    Gaussian of Ho et al. eq. 13 (bin width Δ = spec.bin_width) for images, so the bound is on the
    discrete likelihood. β̃_1 = 0, so the decoder uses σ_1² = β_1 whatever `sigma` is.
The diffusion maths lives in `GaussianDiffusion`, which takes any ε-predictor callable
`eps_fn(x_t (B, *shape), t (B,) int64 original timestep index) -> (B, *shape)`, so tests can plug
in an analytic predictor; the sampler passes a (1,) t shared by every row, which must broadcast.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from bench.families.likelihood import discretized_gaussian_log_likelihood, gaussian_log_prob, normal_kl

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MAX_BETA = 0.999  # β cap (Nichol & Dhariwal): keeps α_t > 0 at the end of short or cosine schedules


def linear_betas(timesteps: int) -> torch.Tensor:
    """Ho et al.'s 1e-4 -> 0.02 at T = 1000; endpoints scaled by 1000/T so ᾱ_T stays near 0. (T,) f64."""
    scale = 1000.0 / timesteps
    return torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64).clamp(max=MAX_BETA)


def cosine_betas(timesteps: int, s: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal's ᾱ(t) = cos²((t/T + s)/(1 + s)·π/2) / ᾱ(0), as β_t = 1 − ᾱ_t/ᾱ_{t−1}. (T,) f64."""
    u = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=MAX_BETA)


BETA_SCHEDULES: dict[str, Callable[[int], torch.Tensor]] = {"linear": linear_betas, "cosine": cosine_betas}


class GaussianDiffusion:
    """The schedule and every closed form of the forward and reverse processes.

    All schedule tensors are float64 (T,) on the CPU; `_at` casts one entry per example to the
    dtype/device of the data and shapes it (B, 1, ..., 1) for broadcasting. `t` arguments are
    (B,) int64 code indices 0..T−1 into *this* schedule; `timestep_map[t]` is the timestep of the
    original schedule that the ε-network sees (the identity unless this is a respaced schedule).
    """

    def __init__(self, betas: torch.Tensor, sigma: str = "beta_tilde", timestep_map: torch.Tensor | None = None):
        b = betas.to(torch.float64)
        self.T = len(b)
        self.sigma = sigma
        self.timestep_map = torch.arange(self.T) if timestep_map is None else timestep_map.long()
        ac = torch.cumprod(1 - b, 0)
        ac_prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
        post_var = (1 - ac_prev) / (1 - ac) * b  # β̃_t; exactly 0 at t = 1
        # β̃_1 = 0 is a degenerate Gaussian: the decoder (index 0) uses σ_1² = β_1 under both choices.
        model_var = {"beta": b, "beta_tilde": torch.cat([b[:1], post_var[1:]])}[sigma]
        self.buf = {
            "betas": b,
            "alphas_cumprod": ac,
            "alphas_cumprod_prev": ac_prev,
            "sqrt_ac": ac.sqrt(),
            "sqrt_1m_ac": (1 - ac).sqrt(),
            "post_var": post_var,
            # log β̃ with the t = 1 entry (log 0) replaced by t = 2's, as in Ho et al.'s code; only
            # the KL uses it and the KL is never evaluated at t = 1 (that is the decoder term).
            "post_log_var": torch.log(torch.cat([post_var[1:2], post_var[1:]])),
            "post_coef_x0": ac_prev.sqrt() * b / (1 - ac),
            "post_coef_xt": (1 - b).sqrt() * (1 - ac_prev) / (1 - ac),
            "recip_sqrt_alpha": (1 - b).rsqrt(),
            "eps_coef": b / (1 - ac).sqrt(),
            "model_var": model_var,
            "model_log_var": model_var.log(),
        }
        self._cache: dict[tuple, dict[str, torch.Tensor]] = {}

    @property
    def betas(self) -> torch.Tensor:
        return self.buf["betas"]

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return self.buf["alphas_cumprod"]

    def _at(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """buf[name][t] as (B, 1, ..., 1) in like's dtype/device (tables cached per device: no syncs)."""
        key = (like.device, like.dtype)
        if key not in self._cache:
            self._cache[key] = {k: v.to(device=like.device, dtype=like.dtype) for k, v in self.buf.items()}
        return self._cache[key][name][t.to(like.device)].view(-1, *([1] * (like.dim() - 1)))

    # --- forward process ---------------------------------------------------------------------------
    def q_mean_variance(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (B, *shape) and variance (B, 1, ...) of q(x_t|x_0)."""
        return self._at("sqrt_ac", t, x0) * x0, 1 - self._at("alphas_cumprod", t, x0)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε, (B, *shape)."""
        return self._at("sqrt_ac", t, x0) * x0 + self._at("sqrt_1m_ac", t, x0) * noise

    def q_posterior_mean_variance(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor):
        """(μ̃_t (B, *shape), β̃_t (B, 1, ...), clipped log β̃_t (B, 1, ...)) of q(x_{t−1}|x_t, x_0)."""
        mean = self._at("post_coef_x0", t, xt) * x0 + self._at("post_coef_xt", t, xt) * xt
        return mean, self._at("post_var", t, xt), self._at("post_log_var", t, xt)

    def predict_x0(self, eps: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x̂_0 = (x_t − √(1−ᾱ_t) ε)/√ᾱ_t, the q_sample relation solved for x_0."""
        return (xt - self._at("sqrt_1m_ac", t, xt) * eps) / self._at("sqrt_ac", t, xt)

    # --- reverse process ---------------------------------------------------------------------------
    def p_mean_variance(self, eps: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, clip_x0: bool = False):
        """(μ_θ, σ_t², log σ_t²) of p_θ(x_{t−1}|x_t) given the predicted noise eps (B, *shape).

        μ_θ = (1/√α_t)(x_t − β_t/√(1−ᾱ_t)·ε). With clip_x0 (image sampling only), x̂_0 is clipped
        to [−1, 1] and μ_θ = μ̃_t(x̂_0, x_t) — the same value when nothing is clipped.
        """
        if clip_x0:
            mean = self.q_posterior_mean_variance(self.predict_x0(eps, xt, t).clamp(-1, 1), xt, t)[0]
        else:
            mean = self._at("recip_sqrt_alpha", t, xt) * (xt - self._at("eps_coef", t, xt) * eps)
        return mean, self._at("model_var", t, xt), self._at("model_log_var", t, xt)

    def eps(self, eps_fn: EpsFn, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The predictor at this schedule's index t (it sees the original timestep), in xt's dtype."""
        return eps_fn(xt, self.timestep_map.to(xt.device)[t.to(xt.device)]).to(xt.dtype)

    def step_coefficients(self) -> list[tuple[float, float, float, float, float, float, float]]:
        """Per index i, the Python floats of one ancestral step (every row of a batch shares i):
        (1/√α, β/√(1−ᾱ), σ, √ᾱ, √(1−ᾱ), posterior x̂_0 and x_t coefficients)."""
        b = self.buf
        sigma = (0.5 * b["model_log_var"]).exp()
        cols = ("recip_sqrt_alpha", "eps_coef", None, "sqrt_ac", "sqrt_1m_ac", "post_coef_x0", "post_coef_xt")
        table = [sigma if c is None else b[c] for c in cols]
        return [tuple(v) for v in torch.stack(table, 1).tolist()]

    def sample_loop(
        self,
        eps_fn: EpsFn,
        noise: Callable[[tuple[int, ...]], torch.Tensor],
        shape: tuple[int, ...],
        clip_x0: bool = False,
        x0: torch.Tensor | None = None,
        known: torch.Tensor | None = None,
    ):
        """Ancestral sampling (Algorithm 2) from x_T ~ N(0, I); returns x_0, (n, *shape).

        `noise(shape)` draws N(0, I) on the data device. The last step returns the mean (no noise).
        With x0 and known (bool, x0's shape), entries where known is True are replaced after every
        step by a draw of q(x_{t−1}|x_0) (RePaint-style inpainting without resampling).

        Every row shares the step, so the coefficients are Python floats (no per-row gathers) and
        eps_fn gets a (1,) timestep that broadcasts over the batch: the networks embed it once per
        step. Same maths, same noise draws, as `p_mean_variance` row by row (tests/test_ddpm.py).
        """
        x = noise(shape)
        coef = self.step_coefficients()
        ts = self.timestep_map.to(x.device).split(1)  # (1,) views: the timestep each step's network sees
        if known is not None:
            x = torch.where(known, self._q_scalar(x0, self.T - 1, x), x)
        for i in reversed(range(self.T)):
            rsa, ec, sigma, sac, s1m, c0, ct = coef[i]
            eps = eps_fn(x, ts[i])
            if clip_x0:
                x_hat = torch.add(x, eps, alpha=-s1m).div_(sac).clamp_(-1, 1)
                mean = torch.add(x_hat.mul_(c0), x, alpha=ct)
            else:
                mean = torch.add(x, eps, alpha=-ec).mul_(rsa)
            x = mean.add_(noise(shape), alpha=sigma) if i > 0 else mean
            if known is not None:
                x_known = self._q_scalar(x0, i - 1, noise(shape)) if i > 0 else x0
                x = torch.where(known, x_known, x)
        return x

    def _q_scalar(self, x0: torch.Tensor, i: int, noise: torch.Tensor) -> torch.Tensor:
        """q_sample at one index shared by every row: √ᾱ_i x_0 + √(1−ᾱ_i) ε."""
        return torch.add(noise * self.buf["sqrt_1m_ac"][i].item(), x0, alpha=self.buf["sqrt_ac"][i].item())

    def respaced(self, steps: int) -> GaussianDiffusion:
        """The schedule on `steps` evenly spaced timesteps τ (always including τ = T), keeping ᾱ_τ.

        β'_i = 1 − ᾱ_{τ_i}/ᾱ_{τ_{i−1}} (ᾱ_{τ_0} = 1), as in improved DDPM; steps = T gives back β.
        """
        if not 1 <= steps <= self.T:
            raise ValueError(f"steps must be in [1, {self.T}] (got {steps})")
        tau = torch.linspace(self.T - 1, 0, steps, dtype=torch.float64).round().long().flip(0)
        ac = self.alphas_cumprod[tau]
        prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
        return GaussianDiffusion(1 - ac / prev, self.sigma, self.timestep_map[tau])

    # --- variational bound ------------------------------------------------------------------------
    def prior_kl(self, x0: torch.Tensor) -> torch.Tensor:
        """L_T = KL(q(x_T|x_0) ‖ N(0, I)) summed over data dims: (B, *shape) -> (B,) nats."""
        t = torch.full((len(x0),), self.T - 1, dtype=torch.long)
        mean, var = self.q_mean_variance(x0, t)
        kl = normal_kl(mean, var.log().expand_as(mean), torch.zeros_like(mean), torch.zeros_like(mean))
        return kl.flatten(1).sum(1)

    def vlb_terms(
        self, eps_fn: EpsFn, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, bin_width: float | None = None
    ) -> torch.Tensor:
        """One-sample estimate of L_{t−1} per row (x_t = q_sample(x0, t, noise)); (B,) nats.

        Index 0 gives the decoder term L_0 (discretized with bin_width, else a Gaussian density);
        index i ≥ 1 the KL between the true posterior and p_θ at maths time t = i + 1.
        """
        xt = self.q_sample(x0, t, noise)
        mean, _, log_var = self.p_mean_variance(self.eps(eps_fn, xt, t), xt, t)
        true_mean, _, true_log_var = self.q_posterior_mean_variance(x0, xt, t)
        kl = normal_kl(true_mean, true_log_var, mean, log_var).flatten(1).sum(1)
        log_std = (0.5 * log_var).expand_as(mean)
        if bin_width is None:
            dec = -gaussian_log_prob(x0, mean, log_std)
        else:
            dec = -discretized_gaussian_log_likelihood(x0, mean, log_std, bin_width)
        return torch.where(t.to(x0.device) == 0, dec.flatten(1).sum(1), kl)

    def vlb_timesteps(self, n: int, k: int, generator: torch.Generator | None = None):
        """Timestep indices (n, m) and weights (n, m) whose weighted sum estimates Σ_{i=0}^{T−1} L_i.

        k = 0 (or k ≥ T − 1): all T indices, weight 1 (every term). Otherwise L_0 always plus one
        index drawn uniformly from each of k near-equal strata of 1..T−1, weighted by the stratum
        size: an unbiased stratified estimate of Σ_{t=2}^T L_{t−1}.
        """
        if k == 0 or k >= self.T - 1:
            return torch.arange(self.T).expand(n, -1), torch.ones(n, self.T, dtype=torch.float64)
        edges = torch.linspace(1, self.T, k + 1, dtype=torch.float64).round().long()
        lo, size = edges[:-1], edges[1:] - edges[:-1]  # (k,) stratum starts and sizes, sizes >= 1
        dev = generator.device if generator is not None else "cpu"
        u = torch.rand(n, k, generator=generator, dtype=torch.float64, device=dev)
        t = lo + (u.cpu() * size).long().clamp(max=size - 1)
        w = torch.cat([torch.ones(n, 1, dtype=torch.float64), size.double().expand(n, -1)], 1)
        return torch.cat([torch.zeros(n, 1, dtype=torch.long), t], 1), w

    def vlb(
        self,
        eps_fn: EpsFn,
        x0: torch.Tensor,
        k: int = 0,
        generator: torch.Generator | None = None,
        bin_width: float | None = None,
        max_rows: int = 8192,
    ) -> torch.Tensor:
        """L_VLB per example, (B, *shape) -> (B,) nats, in x0's dtype: L_T + Σ L_{t−1} + L_0.

        The (example, timestep) pairs are evaluated as flat rows, max_rows per predictor call, so
        small models see large batches; x_t is drawn independently for every pair.
        """
        t, w = self.vlb_timesteps(len(x0), k, generator)
        row_ex = torch.arange(len(x0)).repeat_interleave(t.shape[1])
        t, w = t.reshape(-1), w.reshape(-1).to(device=x0.device, dtype=x0.dtype)
        total = self.prior_kl(x0)
        for rows in torch.arange(len(t)).split(max_rows):
            xr = x0[row_ex[rows].to(x0.device)]
            dev = generator.device if generator is not None else x0.device
            noise = torch.randn(xr.shape, generator=generator, device=dev, dtype=x0.dtype).to(x0.device)
            terms = self.vlb_terms(eps_fn, xr, t[rows], noise, bin_width)
            total.index_add_(0, row_ex[rows].to(x0.device), w[rows.to(x0.device)] * terms)
        return total
