"""Instability controls on 2-D data: what `fid_oscillation` and `collapsed` read on trajectories with a
known answer, through the trial's own trajectory code (bench.metrics.trajectory, the suite's [eval]).

- a perfect sampler: at each of the trajectory's points, fresh draws of the true density. Its
  fid_oscillation is the measure's noise floor: it must not read above a second, independent
  perfect sampler, and it must never read collapsed;
- a GAN trained at GAN_LR_FACTOR × its default learning rate for GAN_STEPS steps: its oscillation
  must read above the perfect sampler's across the suite's seeds (Welch t, intervals disjoint);
- a trajectory that ends in mode collapse (perfect draws, then every sample at one mode): collapsed.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import torch

from bench.controls import inputs
from bench.families import FAMILIES, make_family
from bench.metrics.trajectory import Trajectory
from bench.report import evidence as ev

GAN_LR_FACTOR = 10.0  # the unstable GAN: ten times its default Adam learning rate
GAN_STEPS = 400  # a few seconds on one CPU core; long enough for the fast GAN to reach its oscillation
GAN_BATCH = 128  # as the quick suite's GAN
GAN_EMA = 0.0  # the raw weights: a weight average over ~1000 steps would hide the optimisation's swings
PERFECT, SECOND, FAST_GAN, ENDS_COLLAPSED = (
    "perfect sampler (fresh true draws at each point)",
    "a second perfect sampler",
    f"gan at {GAN_LR_FACTOR:g}x its learning rate ({GAN_STEPS} steps)",
    "true draws, then every sample at one mode",
)


def _trajectory(dataset, cfg, cache_dir, seed: int, steps: int | None = None) -> Trajectory:
    cfg = cfg if cfg.trajectory_points else dataclasses.replace(cfg, trajectory_points=8)  # the default curve
    return Trajectory(dataset, cfg, cache_dir=cache_dir, seed=seed, steps=steps or GAN_STEPS, seconds=None)


def _draws(traj: Trajectory, dataset, seed: int, name: str, last=None) -> dict:
    """A trajectory whose points are fresh true draws (the last one `last(n)` when given)."""
    ref = traj.reference(torch.device("cpu"))
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()) + 7919 * seed)
    for k in range(traj.points):
        final = last is not None and k == traj.points - 1
        x = last(ref.n_real) if final else inputs.true_points(dataset, ref.n_real, g)
        fid = ref.fid(x)
        traj.curve.append({"step": k + 1, "fid": fid})
    return traj.columns(diverged=False)


def fast_gan(dataset, cfg, cache_dir, seed: int) -> dict:
    """The trajectory columns of a GAN at GAN_LR_FACTOR × its learning rate, as a trial measures them."""
    torch.manual_seed(seed)
    lr = GAN_LR_FACTOR * FAMILIES.get("gan").Hparams().lr
    family = make_family("gan", dataset.spec, {"batch_size": GAN_BATCH, "lr": lr, "ema": GAN_EMA})
    traj = _trajectory(dataset, cfg, cache_dir, seed)
    data, g = dataset.train(), torch.Generator().manual_seed(seed)
    diverged = False
    for step in range(1, GAN_STEPS + 1):
        family.train(True)
        diverged = family.check_divergence(family.step(data[torch.randint(len(data), (GAN_BATCH,), generator=g)]))
        if diverged:
            break
        if traj.due(step, 0.0):
            family.train(False)
            with torch.no_grad(), family.evaluation_weights():
                traj.measure(family, step)
    return traj.columns(diverged=bool(diverged))


def instability_controls(dataset, cfg, seeds, cache_dir, record) -> list[dict]:
    """controls.csv rows of the instability measure; `record` is bench.controls.run._record."""
    mode = (
        torch.as_tensor(dataset.modes, dtype=torch.float32)[0] if getattr(dataset, "modes", None) is not None else None
    )
    at_mode = None if mode is None else (lambda n: mode.expand(n, -1).clone())
    read = {name: [] for name in (PERFECT, SECOND, FAST_GAN, ENDS_COLLAPSED)}
    for seed in seeds:
        read[PERFECT].append(_draws(_trajectory(dataset, cfg, cache_dir, seed), dataset, seed, PERFECT))
        read[SECOND].append(_draws(_trajectory(dataset, cfg, cache_dir, seed), dataset, seed, SECOND))
        read[FAST_GAN].append(fast_gan(dataset, cfg, cache_dir, seed))
        if at_mode is not None:
            end = _draws(_trajectory(dataset, cfg, cache_dir, seed), dataset, seed, ENDS_COLLAPSED, last=at_mode)
            read[ENDS_COLLAPSED].append(end)
    osc = {k: np.array([r["fid_oscillation"] for r in v], dtype=float) for k, v in read.items()}
    floor = ev.compare_means("control", "fid_oscillation", PERFECT, osc[PERFECT], SECOND, osc[SECOND], ev.HIGHER)
    above = ev.compare_means("control", "fid_oscillation", FAST_GAN, osc[FAST_GAN], PERFECT, osc[PERFECT], ev.HIGHER)
    n, name = min(cfg.trajectory_samples, len(dataset.test())), dataset.spec.name  # samples per point
    rows = [
        record("fid_oscillation", PERFECT, f"not above {SECOND}", osc[PERFECT].mean(), floor.p_value,
               floor.verdict != ev.SUPPORTED, name, n, len(seeds)),
        record("fid_oscillation", FAST_GAN, "higher than the perfect sampler", osc[FAST_GAN].mean(), above.p_value,
               above.verdict == ev.SUPPORTED, name, n, len(seeds)),
        record("collapsed", PERFECT, "never", np.mean([bool(r["collapsed"]) for r in read[PERFECT]]), float("nan"),
               not any(r["collapsed"] for r in read[PERFECT]), name, n, len(seeds)),
    ]  # fmt: skip
    if read[ENDS_COLLAPSED]:
        share = np.mean([bool(r["collapsed"]) for r in read[ENDS_COLLAPSED]])
        rows.append(record("collapsed", ENDS_COLLAPSED, "every seed", share, float("nan"), share == 1.0, name, n,
                           len(seeds)))  # fmt: skip
    return rows
