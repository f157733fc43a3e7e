"""Test NLL in fp32, whatever precision the family trained in, and the 2-D density-mass check.

Families return per-example NLLs in nats ({estimator label: (B,)}, headline first); this module
averages them over test examples, attaches a standard error (std / √n over examples) and converts
images to bits/dim of the discrete data (bench.units). Accelerate's mixed precision wraps a prepared
module's `forward` in autocast; `fp32_forward` swaps the original forward back for the duration.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import torch

from bench.units import nats_to_bits_per_dim


@runtime_checkable
class SupportsIWAE(Protocol):
    """A family that evaluates the IWAE-k lower bound on log p(x) for any k (the VAE): (B,) nats.

    Note the sign: `iwae` returns the log-likelihood bound; its NLL estimate is −iwae(x, k).
    """

    def iwae(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor: ...


@contextlib.contextmanager
def fp32_forward(family) -> Iterator[None]:
    """Run the family's modules without Accelerate's autocast wrapper and with autocast disabled."""
    swapped = []
    for module in family.modules().values():
        # Accelerator.prepare keeps the unwrapped forward here when it adds the autocast wrapper
        original = module.__dict__.get("_original_forward")
        if original is not None:
            swapped.append((module, module.__dict__["forward"]))
            module.forward = original
    device_type = family.device.type
    try:
        with torch.autocast(device_type=device_type, enabled=False):
            yield
    finally:
        for module, wrapped in swapped:
            module.forward = wrapped


def per_example_nll(
    family, x: torch.Tensor, *, batch: int, iwae_k: int, generator: torch.Generator | None
) -> dict[str, torch.Tensor]:
    """{label: (N,) nats} over x in batches; a family with `iwae(x, k)` also gets "iwae-{iwae_k}".

    The suite's eval.iwae_k decides the reported IWAE bound, so VAE rows stay comparable whatever
    iwae_k the family's own hparams say; it replaces the family's own IWAE estimate (and headline).
    """
    parts: dict[str, list[torch.Tensor]] = {}
    key = f"iwae-{iwae_k}"
    with fp32_forward(family), torch.no_grad():
        for chunk in x.split(batch):
            chunk = chunk.to(family.device)
            est = family.nll(chunk, generator)
            if isinstance(family, SupportsIWAE) and key not in est:
                est = _with_iwae(est, key, -family.iwae(chunk, iwae_k, generator))
            for label, v in est.items():
                parts.setdefault(label, []).append(v.detach().double().cpu())
    return {label: torch.cat(v) for label, v in parts.items()}


def _with_iwae(est: dict[str, torch.Tensor], key: str, value: torch.Tensor) -> dict[str, torch.Tensor]:
    """Add IWAE-k; it takes the place (and headline position) of the family's own IWAE estimate."""
    own = [label for label in est if label.startswith("iwae")]
    if not own:
        return est | {key: value}
    return {
        (key if label == own[0] else label): (value if label == own[0] else v)
        for label, v in est.items()
        if label not in own[1:]
    }


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
    step = (hi - lo) / cells
    axes = [lo[i] + step[i] * (torch.arange(cells, dtype=torch.float64) + 0.5) for i in range(2)]
    grid = torch.cartesian_prod(*axes).float()
    total = 0.0
    with fp32_forward(family), torch.no_grad():
        for chunk in grid.split(batch):
            nll = next(iter(family.nll(chunk.to(family.device)).values()))
            total += torch.exp(-nll.double()).sum().item()
    return total * step.prod().item()
