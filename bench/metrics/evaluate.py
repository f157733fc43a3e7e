"""`evaluate(family, dataset, cfg, ...)`: every measurement a trial records after training.

Order and what each part costs (the row's eval_s splits into these):
1. nll_s     test NLL in fp32 (and, for 2-D exact likelihoods, the density mass on a grid);
2. sample_s  the metrics' n samples, the speed sweep and FLOP count, the steps curve's samples;
3. metrics_s FID/KID/PRC, mode coverage, sharpness, C2ST, copy_fraction, imputation (once per
   dataset: the classifier and the training set's features).
Equal protocol: every family draws n_fake = n_real = min(n_samples, n_real, test size) samples; a
capped request goes to the row's warnings (returned under "warnings"). Not-applicable columns are
NaN / '' (never 0). Paths in samples_png / samples_npy are absolute; the runner stores them
relative to the results folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.metrics import speed
from bench.metrics.flops import flops_of
from bench.metrics.impute import imputation_columns, protocol_seed, scored_examples
from bench.metrics.nll import density_mass, nll_summary, ode_columns, per_example_nll
from bench.metrics.reference import Reference

log = logging.getLogger(__name__)

NPY_MAX = 2000  # samples kept in samples.npy
PNG_GRID = 64  # samples in the PNG grid (8 × 8)
# seed offsets keep the NLL, sample, speed, imputation and steps-curve random streams independent of each other
NLL_SEED, SAMPLE_SEED, SPEED_SEED, IMPUTE_SEED, CURVE_SEED = 0, 1, 2, 3, 4
FLOP_BATCH = 8  # samples of the FLOP count; sampling FLOPs are linear in the batch, so exact per sample


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
    """All evaluation columns of bench.store.schema for a trained `family` on `dataset` (see above).
    `cfg` is a checked EvalConfig (bench.hparams.build, as the suite parser builds it)."""
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
    n_compared = ref.n_real  # = compared_count: the same n on both sides, for every family
    with clock("sample"):
        gen = _generator(device, seed + SAMPLE_SEED)
        # the draw's calls double as the speed measurement's first repeats at sample_batch (same sampler)
        samples, drawn = speed.timed_draw(
            lambda b: family.sample(b, generator=gen), n_compared, cfg.sample_batch, device
        )
    with clock("metrics"):
        row |= ref.quality(samples)
    row |= cost_columns(family, cfg, ref, (samples, drawn), seed, clock)
    if cfg.impute:
        with clock("metrics"):
            protocol = protocol_seed(seed)  # examples and mask: the same for every family at this seed
            row |= imputation_columns(
                family,
                scored_examples(dataset.test(), cfg.impute_examples, protocol),
                dataset.train().mean(0),
                spec,
                generator=_generator(device, seed + IMPUTE_SEED),
                draws=cfg.impute_draws,
                mask=cfg.impute_mask,
                train=dataset.train(),
                seed=protocol,
            )
    else:
        row |= {"impute_mse": math.nan, "impute_mse_baseline": math.nan}
    row |= save_samples(samples, spec, cfg, out_dir)
    requested = max(cfg.n_samples, cfg.n_real)
    row["warnings"] = (
        f"sample metrics capped to n_fake = n_real = {n_compared} (requested n_samples={cfg.n_samples}, "
        f"n_real={cfg.n_real}; test set {len(dataset.test())})"
        if n_compared < requested
        else ""
    )
    row |= {
        "n_real": ref.n_real,
        "n_fake": len(samples),
        "extractor": ref.extractor.name,
        "extractor_hash": ref.extractor.hash,
        "sample_batch": cfg.sample_batch,
    }
    return row


def likelihood_columns(family, dataset, cfg, seed: int) -> dict[str, Any]:
    """nll*, true_nll* and nll_gap* on the same scored examples (the first nll_examples), density_mass,
    and nll_ode* on the first ode_examples of them."""
    spec, test = dataset.spec, dataset.test()
    scored = test[: cfg.nll_examples]
    est = per_example_nll(
        family, scored, batch=cfg.nll_batch, iwae_k=cfg.iwae_k, generator=_generator(family.device, seed + NLL_SEED)
    )
    row = nll_summary(est, spec)
    log_p = dataset.log_density(scored)
    row |= true_nll_columns(next(iter(est.values()), None), None if log_p is None else -log_p.double())
    exact_2d = row["nll_kind"] == "exact" and not spec.is_image and spec.dim == 2
    row["density_mass"] = density_mass(family, test) if exact_2d else math.nan
    ode_gen = _generator(family.device, seed + NLL_SEED)
    return row | ode_columns(family, scored[: cfg.ode_examples], spec, cfg, generator=ode_gen)


def true_nll_columns(model_nats: torch.Tensor | None, true_nats: torch.Tensor | None) -> dict[str, float]:
    """true_nll_nats (−mean log p_data) and the paired per-example gap model − truth, with std errors."""
    row = dict.fromkeys(("true_nll_nats", "true_nll_stderr_nats", "nll_gap_nats", "nll_gap_stderr_nats"), math.nan)
    if true_nats is None:
        return row
    row["true_nll_nats"], row["true_nll_stderr_nats"] = _mean_stderr(true_nats)
    if model_nats is not None:
        row["nll_gap_nats"], row["nll_gap_stderr_nats"] = _mean_stderr(model_nats.double() - true_nats)
    return row


def _mean_stderr(v: torch.Tensor) -> tuple[float, float]:
    return v.mean().item(), (v.std().item() / math.sqrt(len(v)) if len(v) > 1 else math.nan)


def cost_columns(
    family, cfg, ref: Reference, drawn: tuple[torch.Tensor, speed.Timing | None], seed: int, clock: PhaseClock
) -> dict[str, Any]:
    """Sampling speed at the best batch of the sweep (bench.metrics.speed), flops_per_sample, nfe and,
    for iterative samplers, steps_curve: speed, FLOPs and FID per step count. The sweep runs at the
    family's own step count T only; the curve's other step counts are timed at the batch it chose.
    `drawn`: the evaluation samples and the timing of the calls that drew them (the sweep reuses it)."""
    samples, draw_timing = drawn
    device, T = family.device, family.sampling_steps()
    gen = _generator(device, seed + SPEED_SEED)

    def sample(b: int, steps: int | None = T) -> torch.Tensor:
        return family.sample(b, generator=gen, steps=steps)

    with clock("sample"):
        head = speed.sweep(
            sample, cfg.speed_batches, cfg.speed_repeats, device, budget_s=cfg.speed_budget_s, drawn=draw_timing
        )
        flops = flops_per_sample(sample)
    row = head.columns() | {"flops_per_sample": flops, "nfe": family.nfe_per_sample(None), "steps_curve": ""}
    if T is None:
        return row
    draw_gen = _generator(device, seed + CURVE_SEED)  # the curve's draws do not depend on how often timing sampled
    curve = []
    for steps in speed.steps_grid(tuple(cfg.sampling_steps), T):
        point, point_flops, drawn = head, flops, samples
        if steps != T:
            point, point_flops, drawn = _curve_point(family, cfg, head, steps, (gen, draw_gen), len(samples), clock)
        with clock("metrics"):
            fid = ref.fid(drawn)
        curve.append(
            {
                "steps": steps,
                "nfe": family.nfe_per_sample(steps),
                "samples_per_s": point.samples_per_s,
                "samples_per_cpu_s": point.samples_per_cpu_s,
                "speed_spread": point.spread,
                "flops_per_sample": point_flops,
                "fid": fid if math.isfinite(fid) else None,
            }
        )
    row["steps_curve"] = json.dumps(curve)
    return row


def _curve_point(
    family, cfg, head: speed.Speed, steps: int, gens: tuple[torch.Generator, torch.Generator], n: int, clock
) -> tuple[speed.Speed, float, torch.Tensor]:
    """Speed (at the sweep's batch, already warmed up: the network is the same at every step count),
    FLOPs per sample and n drawn samples at `steps` sampling steps."""
    gen, draw_gen = gens
    with clock("sample"):
        timing = speed.time_batch(
            lambda b: family.sample(b, generator=gen, steps=steps),
            head.batch,
            cfg.speed_repeats,
            family.device,
            warmup=False,
        )
        flops = flops_per_sample(lambda b: family.sample(b, generator=gen, steps=steps))
        drawn = speed.draw(lambda b: family.sample(b, generator=draw_gen, steps=steps), n, cfg.sample_batch)
    return speed.summarize(timing, head.clock), flops, drawn


def flops_per_sample(sample) -> float:
    """FLOPs of one sample(FLOP_BATCH) call per sample (counted once: the count is deterministic)."""
    with torch.inference_mode():
        return flops_of(lambda: sample(FLOP_BATCH)) / FLOP_BATCH


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
        from torchvision.utils import save_image  # image rows only: keeps torchvision out of point trials

        save_image(grid, path, nrow=8)
        png = str(path)
    return {"samples_npy": str(npy), "samples_png": png}


def _generator(device: torch.device, seed: int) -> torch.Generator:
    """A generator on the family's device (families draw their noise there)."""
    return torch.Generator(device=device).manual_seed(seed)
