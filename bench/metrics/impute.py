"""Missing data (the lecture's VAE claim): hide a fixed half of each test input, fill it.

The mask is drawn from a fixed seed (not the trial seed), so every family, seed and trial hides the
same entries of the same test examples. Points hide ⌊D/2⌋ coordinates per example (one of two on
2-D data); images hide half of the pixel positions (all channels of a hidden pixel together). The
family only ever sees zeros at hidden entries. Errors are mean squared errors over hidden entries
in model space, next to the baseline that fills each hidden entry with its training-set mean.
"""

from __future__ import annotations

import math

import torch

MASK_SEED = 1234  # fixed on purpose: the mask is part of the protocol, not of a trial


def hidden_mask(n: int, spec, seed: int = MASK_SEED) -> torch.Tensor:
    """(n, *spec.shape) bool, True where HIDDEN: exactly half the positions of each example."""
    positions = spec.shape[1:] if spec.is_image else spec.shape  # images: (H, W) pixel positions
    p = math.prod(positions)
    g = torch.Generator().manual_seed(seed)
    order = torch.rand(n, p, generator=g).argsort(dim=1)
    hidden = torch.zeros(n, p, dtype=torch.bool)
    hidden.scatter_(1, order[:, : p // 2], True)
    hidden = hidden.view(n, *positions)
    return hidden.unsqueeze(1).expand(n, *spec.shape).clone() if spec.is_image else hidden


def masked_mse(x: torch.Tensor, x_hat: torch.Tensor, hidden: torch.Tensor) -> float:
    """Mean of (x_hat − x)² over the hidden entries."""
    return ((x_hat.double() - x.double())[hidden] ** 2).mean().item()


def imputation_columns(
    family, test: torch.Tensor, train_mean: torch.Tensor, spec, *, generator: torch.Generator | None
) -> dict[str, float]:
    """impute_mse (NaN if the family cannot impute) and impute_mse_baseline (training mean)."""
    hidden = hidden_mask(len(test), spec)
    baseline = masked_mse(test, train_mean.expand_as(test), hidden)
    observed = test.masked_fill(hidden, 0.0)  # the family cannot peek at what it must fill in
    # no_grad, not inference_mode: a gradient-based completion may re-enable grad inside
    with torch.no_grad():
        x_hat = family.impute(observed.to(family.device), (~hidden).to(family.device), generator)
    if x_hat is None:
        return {"impute_mse": math.nan, "impute_mse_baseline": baseline}
    x_hat = x_hat.detach().float().cpu()
    if x_hat.shape != test.shape:
        raise ValueError(
            f"{type(family).__name__}.impute returned shape {tuple(x_hat.shape)}, expected {tuple(test.shape)}"
        )
    return {"impute_mse": masked_mse(test, x_hat, hidden), "impute_mse_baseline": baseline}
