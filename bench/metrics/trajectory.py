"""The quality trajectory of one trial: FID at evenly spaced points of training, and the instability
read from it.

At `eval.trajectory_points` evenly spaced points of the budget (point k of P when step · P ≥ k · steps,
or train_s · P ≥ k · seconds for a time budget, whichever comes first) the trial measures the FID of
`eval.trajectory_samples` samples of the evaluation weights against as many real test examples, in
the features the final row uses (`Reference` at that n: raw coordinates for points, the extractor for
images). Iterative samplers (DDPM) draw these samples with their cheapest evaluation sampler, the
smallest `eval.sampling_steps` count, so the curve costs a few seconds per trial; its FID is that
sampler's, not the final row's. Each point draws fresh noise (as a perfect sampler draws fresh data),
so a converged model reads the same noise floor as a perfect sampler.

Two readings of the curve, the same for every family:
- `fid_oscillation`: total variation of u = log(FID + FLOOR_OFFSET · fid_floor) along the curve minus
  its net decrease, Σ|Δu| − (u_first − u_last). 0 for a curve that only improves; every step up is
  counted twice (once going up, once coming back or as net loss). Dimensionless. The floor inside
  the log keeps FIDs that are pure sampling noise from dominating: a perfect sampler's FID at n has a
  relative spread near 1 whatever n is (one reading of 0.002 against 0.03 is a log swing of 2.7),
  while differences well above the floor are read on the plain log scale.
- `collapsed`: the loss went non-finite (the trial diverged), the final FID is non-finite, or the
  final FID exceeds COLLAPSE_FACTOR × (the curve's best FID + `fid_floor`). `fid_floor` is the mean
  FID of FLOOR_DRAWS disjoint sets of as many training examples against the same real examples: what
  a perfect sampler reads at this n.
  Adding it keeps sampling noise near the floor (where the FID of a good model is mostly noise, and
  one point in eight can read twice another) from counting as collapse.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bench.metrics.reference import Reference

COLLAPSE_FACTOR = 2.0  # final FID above twice (best + floor): quality lost that sampling noise does not explain
TRAJECTORY_SEED = 101  # offset of the trajectory's noise streams from the trial seed (evaluate uses 0-3)
FLOOR_SUBSET_SEED = 0  # fixed: every trial's floor uses the same training examples
FLOOR_DRAWS = 4  # training subsets averaged into fid_floor (one FID at the floor is noise of its own size)
FLOOR_OFFSET = 2.0  # u = log(FID + 2 × floor): FID differences within the floor's noise count little


def fid_oscillation(fids: Sequence[float | None], floor: float = 0.0) -> float:
    """Σ|Δu| − (u_first − u_last), u = log(FID + FLOOR_OFFSET · floor), over the finite points whose u
    is defined; NaN with fewer than 2."""
    offset = FLOOR_OFFSET * max(floor, 0.0) if math.isfinite(floor) else 0.0
    x = np.log([f + offset for f in fids if f is not None and math.isfinite(f) and f + offset > 0])
    if len(x) < 2:
        return math.nan
    return float(np.abs(np.diff(x)).sum() - (x[0] - x[-1]))


def collapsed(fids: Sequence[float | None], floor: float, *, diverged: bool) -> bool | None:
    """The collapse rule of the module docstring; None when there is no curve and no divergence."""
    if diverged:
        return True
    if not fids:
        return None
    final = fids[-1]
    finite = [f for f in fids if f is not None and math.isfinite(f)]
    if final is None or not math.isfinite(final):
        return True
    return bool(final > COLLAPSE_FACTOR * (min(finite) + max(floor, 0.0)))


def columns(curve: list[dict[str, Any]], floor: float, *, diverged: bool) -> dict[str, Any]:
    """The row's trajectory columns from a curve of {step, fid} points."""
    fids = [p["fid"] for p in curve]
    return {
        "quality_curve": json.dumps(curve) if curve else "",
        "fid_oscillation": fid_oscillation(fids, floor),
        "fid_floor": floor,
        "collapsed": collapsed(fids, floor, diverged=diverged),
    }


def floor_fid(ref: Reference, train: torch.Tensor) -> float:
    """Mean FID of up to FLOOR_DRAWS disjoint sets of ref.n_real training examples against `ref`."""
    n = ref.n_real
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(FLOOR_SUBSET_SEED))
    sets = [pick[i * n : (i + 1) * n] for i in range(max(1, min(FLOOR_DRAWS, len(train) // n)))]
    return float(np.mean([ref.fid(train[s]) for s in sets]))


class Trajectory:
    """The points of one trial's curve: `due(step, train_s)` says when, `measure(family, step)` adds one."""

    def __init__(self, dataset, cfg, *, cache_dir, seed: int, steps: int | None, seconds: float | None):
        self.dataset, self.cache_dir, self.seed = dataset, cache_dir, seed
        self.cfg = dataclasses.replace(cfg, n_samples=cfg.trajectory_samples, n_real=cfg.trajectory_samples)
        self.points, self.steps, self.seconds = cfg.trajectory_points, steps, seconds
        self.curve: list[dict[str, Any]] = []
        self.floor = math.nan
        self._ref: Reference | None = None  # built on the first point (needs the family's device)

    def due(self, step: int, train_s: float) -> bool:
        k = len(self.curve) + 1
        if k > self.points:
            return False
        by_steps = self.steps is not None and step * self.points >= k * self.steps
        return by_steps or (self.seconds is not None and train_s * self.points >= k * self.seconds)

    def measure(self, family, step: int) -> float:
        """FID of the family as it is now (call in eval mode, under no_grad, with its evaluation weights)."""
        ref = self.reference(family.device)
        gen = torch.Generator(device=family.device).manual_seed(self.seed + TRAJECTORY_SEED + len(self.curve))
        fid = ref.fid(self._draw(family, ref.n_real, gen))
        self.curve.append({"step": int(step), "fid": fid if math.isfinite(fid) else None})
        return fid

    def _draw(self, family, n: int, gen: torch.Generator) -> torch.Tensor:
        """n samples, iterative samplers on their cheapest evaluation step count (module docstring)."""
        full = family.sampling_steps()
        kwargs = {}
        if full is not None and min(self.cfg.sampling_steps) < full:
            kwargs["steps"] = min(self.cfg.sampling_steps)
        batch = self.cfg.sample_batch
        out = [family.sample(min(batch, n - i), generator=gen, **kwargs).float().cpu() for i in range(0, n, batch)]
        return torch.cat(out)

    def reference(self, device: torch.device) -> Reference:
        """The real examples the curve compares with (built once, with fid_floor)."""
        if self._ref is None:
            with torch.enable_grad():  # the first point may train the classifier extractor (once per dataset)
                self._ref = Reference.build(
                    self.dataset, self.cfg, cache_dir=self.cache_dir, device=device, seed=self.seed
                )
            self.floor = floor_fid(self._ref, self.dataset.train())
        return self._ref

    def columns(self, *, diverged: bool) -> dict[str, Any]:
        return columns(self.curve, self.floor, diverged=diverged)

    def state_dict(self) -> dict[str, Any]:
        return {"curve": [dict(p) for p in self.curve], "floor": self.floor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.curve, self.floor = [dict(p) for p in state["curve"]], float(state["floor"])
