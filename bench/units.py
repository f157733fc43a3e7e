"""Unit conversions for likelihoods. NLLs are computed in nats; images are reported in bits/dim.

Image NLLs are always of the *discrete* data: a continuous density p on the model space with bins of
width Δ per dimension gives, by uniform dequantization, -log P(x) <= E_u[-log p(x + u)] - D·log Δ.
"""

from __future__ import annotations

import math

import torch

LN2 = math.log(2.0)


def nats_to_bits_per_dim(nll_nats: torch.Tensor | float, dim: int) -> torch.Tensor | float:
    """Per-example NLL in nats -> bits per dimension (divide by D·ln 2)."""
    return nll_nats / (dim * LN2)


def bits_per_dim_to_nats(bpd: torch.Tensor | float, dim: int) -> torch.Tensor | float:
    return bpd * dim * LN2


def dequantization_correction_nats(dim: int, bin_width: float) -> float:
    """Term added to a continuous NLL (nats) to bound the discrete NLL: -D·log Δ."""
    return -dim * math.log(bin_width)
