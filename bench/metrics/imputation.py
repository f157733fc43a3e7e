"""Scoring imputations fairly between point imputers and sampling imputers, with known answers.

A point imputer returns one completion (ideally the conditional mean E[x_h | x_o], which minimises
the squared error); a sampling imputer returns draws from p(x_h | x_o). Scoring one draw of a perfect
sampler by MSE charges it 2·Var(x_h | x_o), twice the perfect point imputer's Var: MSE rewards the
mean, not the distribution. Two fair scores over M draws per example, each (M, N, *shape):

- `conditional_mean_mse`: the MSE of the mean of the M draws (a point imputer passes M = 1). For
  draws from the true conditional its expectation is MSE(conditional mean) + E[Var]/M, so samplers
  and point imputers are compared on the same target, up to a known Var/M term.
- `energy_score`: the proper energy score ES = E‖X − y‖ − ½ E‖X − X'‖ (Gneiting & Raftery 2007,
  eq. 22) on the hidden entries, from the M draws (unbiased pairwise form). Strictly proper: the
  true conditional minimises its expectation, so a point mass at the mean or a moment-matched
  Gaussian score worse where the conditional is multi-modal.

Also here: masks (seeded, so every family sees the same hidden entries), a k-NN imputer baseline,
and the closed-form conditional of an isotropic Gaussian mixture (8gaussians: bench.datasets.toy)
whose exact conditional mean, variance and draws are the known answer the scores are tested on.
Masks are True where HIDDEN; values are in model space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

MASK_SEED = 1234  # the protocol's base seed: a trial's examples and mask use MASK_SEED + its seed


# --- masks ---------------------------------------------------------------------------------------
def _positions(spec) -> tuple[int, ...]:
    """Maskable positions per example: (H, W) pixels of an image (channels go together), else shape."""
    return tuple(spec.shape[1:]) if spec.is_image else tuple(spec.shape)


def _to_entries(hidden: torch.Tensor, spec) -> torch.Tensor:
    """(n, *positions) -> (n, *spec.shape): an image's hidden pixel hides all its channels."""
    n = hidden.shape[0]
    return hidden.unsqueeze(1).expand(n, *spec.shape).clone() if spec.is_image else hidden


def random_mask(n: int, spec, share: float = 0.5, seed: int = MASK_SEED) -> torch.Tensor:
    """(n, *spec.shape) bool, True where hidden: ⌊share·P⌋ positions per example chosen uniformly
    (P = pixels of an image, coordinates of a point: share 0.5 hides ⌊D/2⌋). Same seed, same mask."""
    positions = _positions(spec)
    p = math.prod(positions)
    g = torch.Generator().manual_seed(seed)
    order = torch.rand(n, p, generator=g).argsort(dim=1)
    hidden = torch.zeros(n, p, dtype=torch.bool)
    hidden.scatter_(1, order[:, : int(share * p)], True)
    return _to_entries(hidden.view(n, *positions), spec)


def block_mask(n: int, spec, share: float = 0.25, seed: int = MASK_SEED) -> torch.Tensor:
    """(n, *spec.shape) bool, True where hidden: one contiguous block per example at a seeded random
    position. Images: an h×w rectangle, h = round(√share·H), w = round(√share·W) (share ≈ hw/HW);
    points: a run of max(1, ⌊share·D⌋) consecutive coordinates."""
    g = torch.Generator().manual_seed(seed)
    positions = _positions(spec)
    sides = (
        [max(1, round(math.sqrt(share) * s)) for s in positions]
        if spec.is_image
        else [max(1, int(share * positions[0]))]
    )
    grids = torch.meshgrid(*[torch.arange(s) for s in positions], indexing="ij")
    hidden = torch.ones(n, *positions, dtype=torch.bool)
    for axis, (size, side) in enumerate(zip(positions, sides)):
        start = torch.randint(0, size - side + 1, (n,), generator=g).view(n, *[1] * len(positions))
        index = grids[axis].unsqueeze(0)
        hidden &= (index >= start) & (index < start + side)
    return _to_entries(hidden, spec)


# --- scores --------------------------------------------------------------------------------------
def _check(draws: torch.Tensor, truth: torch.Tensor, hidden: torch.Tensor) -> None:
    if draws.shape[1:] != truth.shape or hidden.shape != truth.shape:
        raise ValueError(
            f"draws (M, N, *shape) {tuple(draws.shape)}, truth {tuple(truth.shape)} and hidden"
            f" {tuple(hidden.shape)} disagree"
        )


def conditional_mean_squared_errors(draws: torch.Tensor, truth: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """(N,) float64: per example, the mean over its hidden entries of (mean of the M draws − truth)²
    (NaN for an example with nothing hidden). draws (M, N, *shape), truth and hidden (N, *shape)."""
    _check(draws, truth, hidden)
    err = (draws.double().mean(0) - truth.double()) ** 2 * hidden
    return err.flatten(1).sum(1) / hidden.flatten(1).sum(1)


def conditional_mean_mse(draws: torch.Tensor, truth: torch.Tensor, hidden: torch.Tensor) -> float:
    """MSE over all hidden entries (model-space units²) of the estimate mean_m draws[m], the
    M-draw estimate of the conditional mean. draws (M, N, *shape); truth, hidden (N, *shape).

    For M draws X_1..X_M from the true conditional p(x_h | x_o), independent of the truth y given
    x_o, E[(X̄ − y)²] = E[(μ − y)²] + E[Var(x_h | x_o)]/M, μ = E[x_h | x_o]: the conditional mean's
    MSE plus Var/M (so one draw of a perfect sampler scores 2·Var, the perfect point imputer Var).
    """
    _check(draws, truth, hidden)
    return ((draws.double().mean(0) - truth.double())[hidden] ** 2).mean().item()


def energy_scores(draws: torch.Tensor, truth: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """(N,) float64: the energy score of each example's M draws on its hidden entries,

        ES = (1/M) Σ_m ‖X_m − y‖ − 1/(2M(M−1)) Σ_{m≠m'} ‖X_m − X_m'‖   (Euclidean norms),

    the unbiased pairwise estimate of E‖X − y‖ − ½E‖X − X'‖. M = 1 is read as a point forecast
    (E‖X − X'‖ = 0): the score is then ‖x − y‖. Lower is better; units of x."""
    _check(draws, truth, hidden)
    m, n = draws.shape[:2]
    mask = hidden.double().flatten(1)  # known entries are zeroed: they add nothing to any norm
    x = draws.double().flatten(2) * mask  # (M, N, D)
    y = truth.double().flatten(1) * mask  # (N, D)
    to_truth = (x - y).norm(dim=-1).mean(0)  # (N,)
    if m == 1:
        return to_truth
    xs = x.transpose(0, 1)  # (N, M, D); exact distances, not the matmul shortcut (cancellation)
    pair = torch.cdist(xs, xs, compute_mode="donot_use_mm_for_euclid_dist").sum((1, 2)) / (m * (m - 1))
    return to_truth - 0.5 * pair


def energy_score(draws: torch.Tensor, truth: torch.Tensor, hidden: torch.Tensor) -> float:
    """Mean over the N examples of `energy_scores` (Gneiting & Raftery 2007); lower is better."""
    return energy_scores(draws, truth, hidden).mean().item()


# --- imputers with a known place -----------------------------------------------------------------
def knn_impute(train: torch.Tensor, x: torch.Tensor, known: torch.Tensor, k: int, *, batch: int = 1024) -> torch.Tensor:
    """k-NN baseline: each example's hidden entries are the average of those of its k nearest
    training examples, nearest by Euclidean distance on that example's *known* entries only.
    train (T, *shape), x and known (N, *shape, bool) -> (N, *shape); known entries are x's."""
    if not 1 <= k <= len(train):
        raise ValueError(f"k must be in [1, {len(train)}] (got {k})")
    t = train.double().flatten(1)  # (T, D)
    out = []
    for xb, kb in zip(x.split(batch), known.split(batch)):
        w = kb.double().flatten(1)  # (b, D) 0/1 weights
        xo = xb.double().flatten(1) * w
        # Σ_e w (x − t)² = Σ w x² − 2 Σ w x t + Σ w t², all examples against all training rows at once
        d2 = (xo**2).sum(1, keepdim=True) - 2 * xo @ t.T + w @ (t**2).T  # (b, T)
        nearest = d2.topk(k, dim=1, largest=False).indices  # (b, k)
        fill = t[nearest].mean(1).to(x.dtype).view_as(xb)
        out.append(torch.where(kb, xb, fill))
    return torch.cat(out)


@dataclass(frozen=True)
class MixtureConditional:
    """p(x_h | x_o) of an isotropic Gaussian mixture, per example: `weights` (N, K) the posterior
    component probabilities, `mean` and `var` (N, D) the conditional mean and variance at hidden
    entries (x itself and 0 at known ones), `draws` (M, N, D) samples (known entries copied)."""

    weights: torch.Tensor
    mean: torch.Tensor
    var: torch.Tensor
    draws: torch.Tensor


def gaussian_mixture_conditional(
    x: torch.Tensor,
    hidden: torch.Tensor,
    means: torch.Tensor,
    std: float,
    *,
    n_draws: int = 0,
    generator: torch.Generator | None = None,
) -> MixtureConditional:
    """Exact conditional of an equal-weight mixture of N(μ_k, std² I) given x's known entries.

    x, hidden (N, D); means (K, D) (8gaussians: `EightGaussians.modes`, std `mode_std`). With
    isotropic components the coordinates are independent within a component, so the posterior
    weight of component k is ∝ N(x_o; μ_k,o, std² I) (its marginal density at the observed values)
    and, given k, x_h ~ N(μ_k,h, std² I). Hence E[x_h|x_o] = Σ_k π_k μ_k,h and
    Var = std² + Σ_k π_k μ_k,h² − (Σ_k π_k μ_k,h)². Draws: k ~ π, then μ_k,h + std·ε. float64.
    """
    xd, mu = x.double(), means.double()
    known = (~hidden).double()
    # log N(x_o; μ_k,o, std² I) up to a constant shared by all components (it cancels in softmax)
    log_w = -(((xd[:, None, :] - mu[None]) ** 2) * known[:, None, :]).sum(-1) / (2 * std**2)  # (N, K)
    weights = log_w.softmax(dim=1)
    mean_k = weights @ mu  # (N, D): Σ π_k μ_k
    var = std**2 + weights @ mu**2 - mean_k**2
    mean = torch.where(hidden, mean_k, xd)
    var = torch.where(hidden, var, torch.zeros_like(var))
    draws = torch.empty(0, *x.shape, dtype=torch.float64)
    if n_draws > 0:
        comp = torch.multinomial(weights, n_draws, replacement=True, generator=generator).T  # (M, N)
        eps = torch.randn(n_draws, *x.shape, generator=generator, dtype=torch.float64)
        draws = torch.where(hidden, mu[comp] + std * eps, xd)
    return MixtureConditional(weights=weights, mean=mean, var=var, draws=draws)
