"""Log-likelihood building blocks shared by the families (all in nats, per element)."""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(x; mean, exp(log_std)²)."""
    return -0.5 * (LOG_2PI + 2 * log_std + ((x - mean) * torch.exp(-log_std)) ** 2)


def normal_kl(mean1, log_var1, mean2, log_var2) -> torch.Tensor:
    """Elementwise KL(N(mean1, exp(log_var1)) || N(mean2, exp(log_var2))) in nats."""
    return 0.5 * (
        log_var2 - log_var1 + torch.exp(log_var1 - log_var2) + (mean1 - mean2) ** 2 * torch.exp(-log_var2) - 1.0
    )


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def discretized_gaussian_log_likelihood(
    x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor, bin_width: float
) -> torch.Tensor:
    """Elementwise log P(x) for x on a grid in [-1, 1] with spacing `bin_width` (Ho et al. 2020, eq. 13).

    Each level owns the interval [x - Δ/2, x + Δ/2] of a Gaussian N(mean, std²); the lowest and the
    highest level extend to -inf and +inf, so the probabilities over all levels sum to one.
    """
    half = bin_width / 2
    centered = x - mean
    inv_std = torch.exp(-log_std)
    cdf_plus = _std_normal_cdf(inv_std * (centered + half))
    cdf_min = _std_normal_cdf(inv_std * (centered - half))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    delta = cdf_plus - cdf_min
    # In the far tails the difference of CDFs underflows; use the density times the bin width there.
    log_mid = torch.where(
        delta > 1e-5,
        torch.log(delta.clamp(min=1e-12)),
        gaussian_log_prob(x, mean, log_std) + math.log(bin_width),
    )
    lo, hi = -1.0 + half, 1.0 - half  # below/above these lie only the extreme levels
    return torch.where(x < lo, log_cdf_plus, torch.where(x > hi, log_one_minus_cdf_min, log_mid))
