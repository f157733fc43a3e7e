"""Units: nats <-> bits/dim, the dequantization correction, and the level <-> model-space maps."""

from __future__ import annotations

import math

import pytest
import torch

from bench.datasets import DataSpec, make_dataset
from bench.units import bits_per_dim_to_nats, dequantization_correction_nats, nats_to_bits_per_dim


def test_uniform_model_on_digits_is_log2_17_bits_per_dim():
    """A continuous uniform density on the dequantized range [-1-Δ/2, 1+Δ/2]^D, evaluated on
    dequantized digits, plus -D·log Δ, is the discrete uniform model: exactly log2(17) bits/dim."""
    ds = make_dataset("digits")
    spec = ds.spec
    d, delta = spec.dim, spec.bin_width
    assert d == 64 and delta == pytest.approx(2 / 16)
    x = ds.test().double()
    g = torch.Generator().manual_seed(0)
    y = x + (torch.rand(x.shape, generator=g, dtype=torch.float64) - 0.5) * delta  # U(-Δ/2, Δ/2)
    lo, hi = -1 - delta / 2, 1 + delta / 2
    assert ((y >= lo) & (y <= hi)).all()  # dequantized data stays in the support
    nll_continuous = torch.full((len(y),), d * math.log(hi - lo), dtype=torch.float64)
    bpd = nats_to_bits_per_dim(nll_continuous + dequantization_correction_nats(d, delta), d)
    assert torch.allclose(bpd, torch.full_like(bpd, math.log2(17)), rtol=0, atol=1e-12)
    assert math.log2(17) == pytest.approx(4.087, abs=5e-4)


@pytest.mark.parametrize("levels", [17, 256])
def test_dequantization_correction_recovers_a_discrete_model_exactly(levels):
    """A piecewise-constant density p = P(k)/Δ on each bin: -log p(x+u) - D log Δ = -log P(x)."""
    spec = DataSpec("t", (3, 2, 2), "image", levels)
    g = torch.Generator().manual_seed(1)
    probs = torch.rand(spec.dim, levels, generator=g, dtype=torch.float64)
    probs /= probs.sum(1, keepdim=True)  # an independent categorical per dimension
    q = torch.randint(0, levels, (5, spec.dim), generator=g)
    log_pmf = torch.log(probs.gather(1, q.T).T).sum(1)  # (5,) exact discrete log-likelihood
    x = spec.from_levels(q).double()
    u = (torch.rand(x.shape, generator=g, dtype=torch.float64) - 0.5) * spec.bin_width
    k = spec.to_levels(x + u).long()  # the bin each dequantized point falls in
    assert torch.equal(k, q)
    log_p = torch.log(probs.gather(1, k.T).T / spec.bin_width).sum(1)
    nll = -log_p + dequantization_correction_nats(spec.dim, spec.bin_width)
    assert torch.allclose(nll, -log_pmf, rtol=0, atol=1e-9)


def test_nats_bits_per_dim_round_trip_and_scale():
    d = 3072
    assert nats_to_bits_per_dim(d * math.log(2), d) == pytest.approx(1.0)
    t = torch.tensor([0.5, 100.0, 7000.0], dtype=torch.float64)
    assert torch.allclose(bits_per_dim_to_nats(nats_to_bits_per_dim(t, d), d), t)
    assert dequantization_correction_nats(10, 1.0) == 0.0
    assert dequantization_correction_nats(2, 0.5) == pytest.approx(2 * math.log(2))


@pytest.mark.parametrize("levels", [2, 17, 256])
def test_to_levels_from_levels_round_trip(levels):
    spec = DataSpec("t", (1, 4, 4), "image", levels)
    q = torch.arange(levels).repeat(2)
    x = spec.from_levels(q)
    assert x.dtype == torch.float32
    assert x[0] == -1 and x[levels - 1] == 1
    assert torch.allclose(x[1:levels] - x[: levels - 1], torch.full((levels - 1,), spec.bin_width))
    back = spec.to_levels(x)
    assert back.dtype == torch.uint8 and torch.equal(back.long(), q)
    jitter = (torch.rand(x.shape, generator=torch.Generator().manual_seed(2)) - 0.5) * 0.98 * spec.bin_width
    assert torch.equal(spec.to_levels(x + jitter).long(), q)  # anywhere inside the bin
    assert spec.to_levels(torch.tensor([-3.0, 5.0])).tolist() == [0, levels - 1]  # clamped


def test_point_specs_have_no_levels():
    spec = make_dataset("checkerboard", {"n_train": 10, "n_test": 10}).spec
    assert spec.levels is None and spec.bin_width is None and spec.nll_unit == "nats" and spec.dim == 2
