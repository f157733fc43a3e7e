"""`evaluate(family, dataset, cfg, ...)`: every measurement a trial records after training.

Order and what each part costs (the row's eval_s splits into these):
1. nll_s     test NLL in fp32 (and, for 2-D exact likelihoods, the density mass on a grid);
2. sample_s  the metrics' n_samples samples, the samples/s measurement, the steps curve's samples;
3. metrics_s FID/KID/PRC, mode coverage, sharpness, imputation (once per dataset: the classifier).
Not-applicable columns are NaN / '' (never 0). Paths in samples_png / samples_npy are absolute; the
runner stores them relative to the results folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision

from bench.metrics import speed
from bench.metrics.impute import imputation_columns
from bench.metrics.nll import density_mass, nll_columns
from bench.metrics.reference import Reference

log = logging.getLogger(__name__)

NPY_MAX = 2000  # samples kept in samples.npy
PNG_GRID = 64  # samples in the PNG grid (8 × 8)
VERSIONED = ("torch", "torch-fidelity", "torchvision", "ray", "accelerate", "numpy", "genbench")
# seed offsets keep the NLL, sample, speed and imputation random streams independent of each other
NLL_SEED, SAMPLE_SEED, SPEED_SEED, IMPUTE_SEED = 0, 1, 2, 3


class PhaseClock:
    """Accumulates wall time per named phase."""

    def __init__(self):
        self.seconds: dict[str, float] = {"nll": 0.0, "sample": 0.0, "metrics": 0.0}

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - t


def evaluate(family, dataset, cfg, *, cache_dir: Path, out_dir: Path | None, seed: int) -> dict[str, Any]:
    """All evaluation columns of bench.schema for a trained `family` on `dataset` (see above)."""
    cfg.validate()
    t0 = time.perf_counter()
    modes = {name: m.training for name, m in family.modules().items()}
    family.train(False)
    try:
        row = _evaluate(family, dataset, cfg, Path(cache_dir), out_dir, seed, clock := PhaseClock())
    finally:
        for name, m in family.modules().items():
            m.train(modes[name])
    return row | {
        "eval_s": time.perf_counter() - t0,
        "sample_s": clock.seconds["sample"],
        "metrics_s": clock.seconds["metrics"],
        "nll_s": clock.seconds["nll"],
    }


def _evaluate(
    family, dataset, cfg, cache_dir: Path, out_dir: Path | None, seed: int, clock: PhaseClock
) -> dict[str, Any]:
    spec, device = dataset.spec, family.device
    row: dict[str, Any] = {}
    with clock("nll"):
        row |= likelihood_columns(family, dataset, cfg, seed)
    # the extractor (and, the first time per dataset, its training) counts as metric cost
    with clock("metrics"):
        ref = Reference.build(dataset, cfg, cache_dir=cache_dir, device=device, seed=seed)
    with clock("sample"):
        gen = _generator(device, seed + SAMPLE_SEED)
        samples = speed.draw(lambda b: family.sample(b, generator=gen), cfg.n_samples, cfg.sample_batch)
    with clock("metrics"):
        row |= ref.quality(samples)
    row |= cost_columns(family, cfg, ref, samples, seed, clock)
    if cfg.impute:
        with clock("metrics"):
            n = min(cfg.impute_examples, len(dataset.test()))
            row |= imputation_columns(
                family,
                dataset.test()[:n],
                dataset.train().mean(0),
                spec,
                generator=_generator(device, seed + IMPUTE_SEED),
            )
    else:
        row |= {"impute_mse": math.nan, "impute_mse_baseline": math.nan}
    row |= save_samples(samples, spec, cfg, out_dir)
    row |= {
        "n_real": ref.n_real,
        "n_fake": len(samples),
        "extractor": ref.extractor.name,
        "extractor_hash": ref.extractor.hash,
        "sample_batch": cfg.sample_batch,
        "device": device_name(device),
        "versions": json.dumps(library_versions()),
    }
    return row


def likelihood_columns(family, dataset, cfg, seed: int) -> dict[str, Any]:
    """nll*, true_nll*, density_mass."""
    spec, test = dataset.spec, dataset.test()
    row = nll_columns(
        family,
        test[: cfg.nll_examples],
        spec,
        batch=cfg.nll_batch,
        iwae_k=cfg.iwae_k,
        generator=_generator(family.device, seed + NLL_SEED),
    )
    true = dataset.true_nll_nats()
    row |= {
        "true_nll_nats": true[0] if true else math.nan,
        "true_nll_stderr_nats": true[1] if true else math.nan,
    }
    exact_2d = row["nll_kind"] == "exact" and not spec.is_image and spec.dim == 2
    row["density_mass"] = density_mass(family, test) if exact_2d else math.nan
    return row


def cost_columns(family, cfg, ref: Reference, samples: torch.Tensor, seed: int, clock: PhaseClock) -> dict[str, Any]:
    """samples_per_s, nfe, steps_curve (iterative samplers: samples/s and FID per step count)."""
    device = family.device
    gen = _generator(device, seed + SPEED_SEED)
    T = family.sampling_steps()
    if T is None:
        with clock("sample"):
            sps = speed.samples_per_second(
                lambda b: family.sample(b, generator=gen),
                cfg.sample_batch,
                cfg.speed_repeats,
                device,
            )
        return {"samples_per_s": sps, "nfe": family.nfe_per_sample(None), "steps_curve": ""}
    curve = []
    for i, steps in enumerate(speed.steps_grid(tuple(cfg.ddpm_steps), T)):

        def sample(b, steps=steps):
            return family.sample(b, generator=gen, steps=steps)

        with clock("sample"):  # the network is the same at every step count: one warm-up is enough
            sps = speed.samples_per_second(sample, cfg.sample_batch, cfg.speed_repeats, device, warmup=i == 0)
            drawn = samples if steps == T else speed.draw(sample, cfg.n_samples, cfg.sample_batch)
        with clock("metrics"):
            fid = ref.fid(drawn)
        curve.append(
            {
                "steps": steps,
                "nfe": family.nfe_per_sample(steps),
                "samples_per_s": sps,
                "fid": fid if math.isfinite(fid) else None,
            }
        )
    headline = curve[-1]  # T is the largest step count
    return {
        "samples_per_s": headline["samples_per_s"],
        "nfe": family.nfe_per_sample(None),
        "steps_curve": json.dumps(curve),
    }


def save_samples(samples: torch.Tensor, spec, cfg, out_dir: Path | None) -> dict[str, str]:
    """samples.npy (up to NPY_MAX, model space) and, for images, an 8×8 PNG grid; absolute paths."""
    if out_dir is None:
        return {"samples_npy": "", "samples_png": ""}
    out_dir = Path(out_dir).absolute()  # not resolve(): keep the caller's prefix so it can relativise
    out_dir.mkdir(parents=True, exist_ok=True)
    npy = out_dir / "samples.npy"
    np.save(npy, samples[:NPY_MAX].numpy())
    png = ""
    if spec.is_image and cfg.save_samples_png:
        path = out_dir / "samples.png"
        grid = (samples[:PNG_GRID].clamp(-1, 1).nan_to_num(0.0) + 1) / 2  # [-1, 1] -> [0, 1]
        torchvision.utils.save_image(grid, path, nrow=8)
        png = str(path)
    return {"samples_npy": str(npy), "samples_png": png}


def _generator(device: torch.device, seed: int) -> torch.Generator:
    """A generator on the family's device (families draw their noise there)."""
    return torch.Generator(device=device).manual_seed(seed)


def device_name(device: torch.device) -> str:
    return f"cuda:{torch.cuda.get_device_name(device)}" if device.type == "cuda" else device.type


def library_versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = ""
    return out
