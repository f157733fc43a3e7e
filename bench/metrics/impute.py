"""Missing data (the lecture's VAE claim): hide part of each test input, fill it, score the fill.

The scored test examples and their mask are drawn from the trial seed (`protocol_seed`: MASK_SEED +
seed), so every family at one seed hides the same entries of the same examples, and another seed
draws other examples: the baselines then vary across seeds by the test examples' sampling noise, and
a comparison over seeds counts that uncertainty instead of treating one set of examples as exact.
`[eval] impute_mask`: `[eval] impute_mask = "random"` hides half of the positions
(⌊D/2⌋ coordinates of a point; half the pixels of an image, all channels of a pixel together),
"block" one rectangle of about a quarter of the pixels. The family only ever sees zeros at hidden
entries. It imputes `[eval] impute_draws` = M times (the same M for every family): a sampling
imputer (one posterior draw per call, the DDPM) is scored on the mean of its M draws, its estimate of
the conditional mean, so that under MSE it is not charged twice the conditional variance for
drawing (bench.metrics.imputation); a deterministic imputer repeats itself. Next to impute_mse
(model-space MSE over hidden entries): the energy score of the M draws (a proper score of the whole
conditional distribution), and two baselines on the same masks: the training mean and a k-NN
imputer (the mean of the 5 nearest training examples on the known entries).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from bench.metrics.imputation import (
    MASK_SEED,
    block_mask,
    conditional_mean_mse,
    energy_score,
    knn_impute,
    random_mask,
)

KNN_K = 5  # neighbours of the k-NN imputation baseline
MASKS = {"random": random_mask, "block": block_mask}  # eval.impute_mask -> the mask it hides


def hidden_mask(n: int, spec, seed: int = MASK_SEED, kind: str = "random") -> torch.Tensor:
    """(n, *spec.shape) bool, True where HIDDEN: exactly half the positions of each example
    ("random") or one block of about a quarter of them ("block"), the same for the same seed."""
    return MASKS[kind](n, spec, seed=seed)


def protocol_seed(trial_seed: int) -> int:
    """The seed of a trial's scored examples and mask: shared by every family at that trial seed."""
    return MASK_SEED + trial_seed


def scored_examples(test: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n test examples drawn without replacement with `seed` (all of them, in order, when n ≥ len)."""
    if n >= len(test):
        return test
    return test[torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:n]]


def masked_mse(x: torch.Tensor, x_hat: torch.Tensor, hidden: torch.Tensor) -> float:
    """Mean of (x_hat − x)² over the hidden entries."""
    return ((x_hat.double() - x.double())[hidden] ** 2).mean().item()


def imputation_columns(
    family,
    test: torch.Tensor,
    train_mean: torch.Tensor,
    spec,
    *,
    generator: torch.Generator | None,
    draws: int = 1,
    mask: str = "random",
    train: torch.Tensor | None = None,
    seed: int = MASK_SEED,
) -> dict[str, Any]:
    """The imputation columns on `test` with its `mask` entries hidden: impute_mse of the mean of
    `draws` imputations (NaN if the family cannot impute; a sampling imputer's M-draw estimate of
    the conditional mean, a deterministic one repeats itself), impute_energy (the energy score of the
    draws, a proper score of the whole conditional), impute_mse_baseline (the training mean) and,
    with `train`, impute_mse_knn (KNN_K nearest training examples on the known entries). `seed`
    draws the mask."""
    hidden = hidden_mask(len(test), spec, seed=seed, kind=mask)
    row: dict[str, Any] = {
        "impute_mse_baseline": masked_mse(test, train_mean.expand_as(test), hidden),
        "impute_draws": draws,
        "impute_mask": mask,
        "impute_mse": math.nan,
        "impute_energy": math.nan,
        "impute_mse_knn": math.nan,
    }
    observed = test.masked_fill(hidden, 0.0)  # the family cannot peek at what it must fill in
    if train is not None:
        row["impute_mse_knn"] = masked_mse(test, knn_impute(train, observed, ~hidden, KNN_K), hidden)
    filled = [_impute_once(family, observed, hidden, generator, test.shape) for _ in range(draws)]
    if filled[0] is None:
        return row
    stacked = torch.stack(filled)  # (M, N, *shape)
    row["impute_mse"] = conditional_mean_mse(stacked, test, hidden)
    row["impute_energy"] = energy_score(stacked, test, hidden)
    return row


def _impute_once(family, observed, hidden, generator, shape) -> torch.Tensor | None:
    # no_grad, not inference_mode: a gradient-based completion may re-enable grad inside
    with torch.no_grad():
        x_hat = family.impute(observed.to(family.device), (~hidden).to(family.device), generator)
    if x_hat is None:
        return None
    x_hat = x_hat.detach().float().cpu()
    if x_hat.shape != shape:
        raise ValueError(f"{type(family).__name__}.impute returned shape {tuple(x_hat.shape)}, expected {tuple(shape)}")
    return x_hat
