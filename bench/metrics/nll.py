"""Test NLL in fp32, whatever precision the family trained in, and the 2-D density-mass check.

Families return per-example NLLs in nats ({estimator label: (B,)}, headline first); this module
averages them over test examples, attaches a standard error (std / √n over examples) and converts
images to bits/dim of the discrete data (bench.units). Evaluation runs the modules in fp32 through
`Family.fp32()` (also usable mid-training, when Accelerate's autocast wrapper is still on).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence

import torch

from bench.families.ode import OdeSettings
from bench.units import nats_to_bits_per_dim

ODE_COLUMNS = ("nll_ode", "nll_ode_stderr", "nll_ode_nfe", "nll_ode_s")


def fp32_forward(family):
    """The family's modules in fp32 for the duration (Family.fp32: Accelerate's autocast wrapper
    swapped out, autocast off); training may go on in mixed precision afterwards."""
    return family.fp32()


def per_example_nll(
    family, x: torch.Tensor, *, batch: int, iwae_k: int, generator: torch.Generator | None
) -> dict[str, torch.Tensor]:
    """{label: (N,) nats} over x in batches; iwae_k (the suite's [eval] iwae_k) is passed to the family."""
    parts: dict[str, list[torch.Tensor]] = {}
    with family.fp32(), torch.no_grad():
        for chunk in x.split(batch):
            est = family.nll(chunk.to(family.device), generator, iwae_k=iwae_k)
            for label, v in est.items():
                parts.setdefault(label, []).append(v.detach().double().cpu())
    return {label: torch.cat(v) for label, v in parts.items()}


def nll_columns(family, x: torch.Tensor, spec, *, batch: int, iwae_k: int, generator: torch.Generator | None) -> dict:
    """nll, nll_stderr, nll_unit, nll_kind, nll_estimates for test examples x (N, *spec.shape)."""
    return nll_summary(per_example_nll(family, x, batch=batch, iwae_k=iwae_k, generator=generator), spec)


def nll_summary(est: dict[str, torch.Tensor], spec) -> dict:
    """The nll* columns from per-example estimates {label: (N,) nats}, headline first."""
    if not est:
        return {
            "nll": math.nan,
            "nll_stderr": math.nan,
            "nll_unit": spec.nll_unit,
            "nll_kind": "none",
            "nll_estimates": json.dumps({}),
        }
    in_unit = {label: _to_unit(v, spec) for label, v in est.items()}
    headline = next(iter(in_unit))
    v = in_unit[headline]
    stderr = v.std().item() / math.sqrt(len(v)) if len(v) > 1 else math.nan
    return {
        "nll": v.mean().item(),
        "nll_stderr": stderr,
        "nll_unit": spec.nll_unit,
        "nll_kind": headline,
        "nll_estimates": json.dumps({label: _json_float(t.mean().item()) for label, t in in_unit.items()}),
    }


def ode_columns(family, x: torch.Tensor, spec, cfg, *, generator: torch.Generator | None) -> dict:
    """nll_ode* of the family's ODE density (Family.ode_nll) on x (the first cfg.ode_examples scored
    examples), in batches of cfg.nll_batch: mean in nll_unit, its standard error over examples (which
    includes the Hutchinson noise: each example's estimate carries its own probes), the mean NFE per
    solve, the wall seconds, and the solver settings (nll_ode_solver). NaN when it has none or 0 examples."""
    settings = OdeSettings(rtol=cfg.ode_rtol, atol=cfg.ode_atol, probes=cfg.ode_probes)
    row: dict = dict.fromkeys(ODE_COLUMNS, math.nan) | {"nll_ode_solver": json.dumps({})}
    if len(x) == 0:
        return row
    t0, nats, nfe, probe_var = time.perf_counter(), [], [], []
    with family.fp32(), torch.no_grad():
        for chunk in x.split(cfg.nll_batch):
            out = family.ode_nll(chunk.to(family.device), generator, settings=settings)
            if out is None:
                return row
            nats.append(out.nats.detach().double().cpu())
            nfe.append(out.nfe)
            if out.probe_stderr is not None:
                probe_var.append(out.probe_stderr.detach().double().cpu() ** 2)
    v = _to_unit(torch.cat(nats), spec)
    divergence = f"hutchinson-{settings.probes}" if spec.is_image else "exact"
    solver = {"method": "dopri5", "rtol": settings.rtol, "atol": settings.atol, "divergence": divergence}
    if probe_var:  # the probes' share of nll_ode_stderr: √(Σ_i se_i²)/n over the examples, nll_unit
        solver["hutchinson_stderr"] = _to_unit(torch.cat(probe_var).sum().sqrt() / len(v), spec).item()
    return {
        "nll_ode": v.mean().item(),
        "nll_ode_stderr": v.std().item() / math.sqrt(len(v)) if len(v) > 1 else math.nan,
        "nll_ode_nfe": sum(nfe) / len(nfe),
        "nll_ode_s": time.perf_counter() - t0,
        "nll_ode_solver": json.dumps(solver | {"examples": len(v)}),
    }


def _to_unit(nats: torch.Tensor, spec) -> torch.Tensor:
    return nats_to_bits_per_dim(nats, spec.dim) if spec.nll_unit == "bits_per_dim" else nats


def _json_float(v: float) -> float | None:
    return v if math.isfinite(v) else None  # JSON has no NaN/inf


MASS_CELLS = 64  # grid cells per axis of density_mass: 4 096 density evaluations (see midpoint_error_bound)


def midpoint_error_bound(sigma: float, spacing: float) -> float:
    """Bound on |midpoint sum − integral| over the plane for a 2-D Gaussian mixture whose components
    have standard deviations >= sigma, on a grid of `spacing` (any offset).

    Poisson summation: per axis the sum h·Σ p(x_0 + kh) differs from ∫p by Σ_{k≠0} |p̂(2πk/h)| ≤
    2·Σ_{k≥1} exp(−2π²σ²k²/h²) ≤ 2q/(1 − q), q = exp(−2π²σ²/h²); two axes: (1 + e)² − 1. At the
    default 64 cells over 8gaussians' box (h ≈ 0.19) and its component std 0.35, q ≈ 1e−30.
    """
    q = math.exp(-2 * math.pi**2 * sigma**2 / spacing**2)
    e = 2 * q / (1 - q)
    return (1 + e) ** 2 - 1


def density_mass(
    family, points: torch.Tensor, *, cells: int = MASS_CELLS, pad: float = 0.25, batch: int = 8192
) -> float:
    """∫ exp(−NLL) on a cells×cells grid over the 2-D points' box widened by `pad`·range per side.

    Midpoint rule; a normalised density concentrated near the data gives ≈ 1. Only meaningful for an
    exact likelihood (a bound would integrate to < 1 and says nothing about normalisation). Computed
    once per trial, at evaluation. The grid error is the mass outside the box plus the aliasing
    term of `midpoint_error_bound`, negligible for densities smooth on the grid's scale (box/64),
    which is why 64 cells suffice (256 cost 16× more for digits that do not move).
    """
    lo, hi = points.min(0).values.double(), points.max(0).values.double()
    lo, hi = lo - pad * (hi - lo), hi + pad * (hi - lo)

    def nll(chunk: torch.Tensor) -> torch.Tensor:
        return next(iter(family.nll(chunk.to(family.device)).values()))

    with family.fp32(), torch.no_grad():
        return grid_mass(nll, lo.tolist(), hi.tolist(), cells=cells, batch=batch)


def grid_mass(
    nll_fn: Callable[[torch.Tensor], torch.Tensor],
    lo: float | Sequence[float],
    hi: float | Sequence[float],
    *,
    cells: int = MASS_CELLS,
    batch: int = 8192,
) -> float:
    """∫ exp(−nll_fn(p)) dp over the box [lo, hi]² (per-axis bounds or one number for both axes),
    midpoint rule on cells × cells; nll_fn maps (N, 2) points to (N,) nats. Dimensionless.

    ≈ 1 for a normalised density whose mass lies inside the box, and *also* ≈ 1 for an unbiased
    stochastic estimate of one (module docstring): it tests normalisation, not exactness.
    """
    lo_t = torch.as_tensor(lo, dtype=torch.float64).expand(2)
    hi_t = torch.as_tensor(hi, dtype=torch.float64).expand(2)
    step = (hi_t - lo_t) / cells
    axes = [lo_t[i] + step[i] * (torch.arange(cells, dtype=torch.float64) + 0.5) for i in range(2)]
    grid = torch.cartesian_prod(*axes).float()
    total = sum(torch.exp(-nll_fn(chunk).double()).sum().item() for chunk in grid.split(batch))
    return total * step.prod().item()
