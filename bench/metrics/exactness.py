"""Exact likelihood, bound or stochastic estimate? Two measurable signatures, and which one decides.

A family's `nll` may be the exact −log p(x) (a flow on points), a deterministic bound, or a
stochastic estimate such as the VAE's −IWAE-K, whose exp(IWAE-K) = (1/K) Σ_k w_k is an *unbiased*
estimate of p(x) (Burda et al. 2016). Two checks:

- Re-evaluation spread: evaluate the per-example NLL R times under R different random generators
  (and, each time, the examples in a different batch order). An exact likelihood is a function of x
  alone, so the per-example std across re-evaluations is float rounding (< SPREAD_TOL_NATS); a
  stochastic estimate moves from draw to draw (the IWAE-K's std is ~ the log-weights' spread / √K).
- Density mass: ∫ exp(−NLL) over a 2-D grid (midpoint rule, as bench.metrics.nll.density_mass).
  A normalised density integrates to ≈ 1, an unnormalised one does not. What it *cannot* show: an
  unbiased estimate p̂ of a normalised density has E ∫ p̂ = ∫ p = 1, and the grid sum averages the
  independent per-point errors away, so exp(−IWAE-K) integrates to ≈ 1 just as the exact density
  does. Mass ≈ 1 is necessary for an exact likelihood, never sufficient; the spread decides.

`exactness_test` combines both: exact ⇔ spread below SPREAD_TOL_NATS and mass within MASS_TOL of 1.
Everything here is a pure function of an `nll_fn(x, generator) -> (B,) nats`; `headline_nll_fn`
turns a family into one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from bench.metrics.nll import MASS_CELLS, grid_mass

NllFn = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]  # (B, *shape), generator -> (B,) nats

# Exact likelihoods differ between re-evaluations only by float32 rounding of a reordered batch:
# at most ~1e-7 relative on NLLs of a few nats (a tiny flow on 8gaussians: exactly 0). 1e-5 nats
# leaves room for that and sits 4 orders below the stochastic spreads observed (a tiny VAE's
# IWAE-16 on 8gaussians: per-example std 0.10 nats on average, 0.37 at most).
SPREAD_TOL_NATS = 1e-5
# |mass − 1| allowed for a normalised 2-D density on MASS_CELLS² cells: the grid error plus the
# mass outside the box; a density that loses or gains ≥ 2 % of its mass is not normalised.
MASS_TOL = 0.02


@dataclass(frozen=True)
class Spread:
    """Per-example std of the NLL across re-evaluations, in nats: its maximum and mean over examples."""

    max_nats: float
    mean_nats: float


@dataclass(frozen=True)
class Exactness:
    """spread_nats: the largest per-example re-evaluation std (nats); mass: ∫ exp(−NLL) on the grid
    (NaN when no box was given); exact: spread below SPREAD_TOL_NATS and mass within MASS_TOL of 1."""

    spread_nats: float
    mass: float
    exact: bool


def headline_nll_fn(family, *, iwae_k: int | None = None) -> NllFn:
    """The family's headline per-example NLL as an `nll_fn(x, generator) -> (B,)` (fp32, no grad)."""

    def nll_fn(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        with family.fp32(), torch.no_grad():
            est = family.nll(x.to(family.device), generator, iwae_k=iwae_k)
        return next(iter(est.values())).detach().cpu()

    return nll_fn


def reevaluation_spread(nll_fn: NllFn, x: torch.Tensor, generators: Sequence[torch.Generator]) -> Spread:
    """Evaluate nll_fn on x (B, *shape) once per generator (R ≥ 2), each time with the examples in a
    fresh order drawn from that generator (so a batch-dependent "likelihood" also shows); returns the
    per-example std over the R values (ddof 1, float64), max and mean over the B examples, nats."""
    if len(generators) < 2:
        raise ValueError(f"need >= 2 generators to measure a spread (got {len(generators)})")
    runs = []
    for g in generators:
        order = torch.randperm(len(x), generator=g)
        nll = torch.empty(len(x), dtype=torch.float64)
        nll[order] = nll_fn(x[order], g).double()  # back to the original order
        runs.append(nll)
    std = torch.stack(runs).std(dim=0)
    return Spread(max_nats=std.max().item(), mean_nats=std.mean().item())


def exactness_test(
    nll_fn: NllFn,
    x: torch.Tensor,
    generators: Sequence[torch.Generator],
    *,
    box: tuple[float | Sequence[float], float | Sequence[float]] | None = None,
    cells: int = MASS_CELLS,
) -> Exactness:
    """Spread of nll_fn over `generators` on x, and (2-D data, `box` = (lo, hi) given) the mass of
    exp(−NLL) on the box, evaluated with the first generator. Without a box the mass is NaN and the
    verdict rests on the spread alone (which decides anyway: see the module docstring)."""
    spread = reevaluation_spread(nll_fn, x, generators).max_nats
    mass = math.nan
    if box is not None:
        mass = grid_mass(lambda p: nll_fn(p, generators[0]), box[0], box[1], cells=cells)
    mass_ok = box is None or abs(mass - 1) < MASS_TOL
    return Exactness(spread_nats=spread, mass=mass, exact=spread < SPREAD_TOL_NATS and mass_ok)
