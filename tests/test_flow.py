"""RealNVP: exact invertibility, exact log-det, a normalised density, and the dequantized image NLL.

Every number is checked against an independent reference: autograd Jacobians, a grid integral,
closed-form Gaussian expectations, the discretized-Gaussian likelihood in bench.families.likelihood.
"""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
from torch.autograd.functional import jacobian

from bench.datasets.base import DataSpec
from bench.errors import ConfigError
from bench.families.flow import RealNVP
from bench.families.likelihood import LOG_2PI, discretized_gaussian_log_likelihood
from bench.hparams import build

PLANE = DataSpec("plane", (2,), "points")
POINTS4 = DataSpec("points4", (4,), "points")
TINY_IMAGE = DataSpec("tiny", (1, 4, 4), "image", levels=17)  # D = 16, Δ = 1/8
SMALL = {"hidden": 32, "width": 8, "blocks": 1, "lr_decay_steps": 0}


def make_flow(spec: DataSpec, **hparams) -> RealNVP:
    torch.manual_seed(0)
    return RealNVP(spec, build(RealNVP.Hparams, SMALL | hparams, owner="family 'flow'"))


def perturb(flow: RealNVP, scale: float = 0.1, seed: int = 1) -> RealNVP:
    """Random non-zero weights everywhere (fresh couplings are the identity: s = t = 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.net.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return flow


def eight_gaussians(n: int, g: torch.Generator) -> torch.Tensor:
    """FFJORD's 8gaussians: centres (±1,0),(0,±1),(±1/√2,±1/√2) ×4, + N(0, 0.5²), all / 1.414."""
    r = 1 / math.sqrt(2)
    centres = torch.tensor([(1, 0), (-1, 0), (0, 1), (0, -1), (r, r), (r, -r), (-r, r), (-r, -r)]) * 4.0
    x = centres[torch.randint(8, (n,), generator=g)] + 0.5 * torch.randn(n, 2, generator=g)
    return x / 1.414


# --- bijection ----------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [POINTS4, TINY_IMAGE], ids=["points", "image"])
def test_inverse_of_forward_is_identity(spec):
    flow = perturb(make_flow(spec))
    x = torch.rand(64, *spec.shape, generator=torch.Generator().manual_seed(2)) * 2 - 1
    z, logdet = flow.forward(x)
    assert logdet.std() > 0.05  # s depends on x: a non-trivial, non-volume-preserving map
    assert (z - x).abs().max() > 0.1
    assert torch.allclose(flow.inverse(z), x, atol=1e-5, rtol=0)
    assert torch.allclose(flow.forward(flow.inverse(z))[0], z, atol=1e-5, rtol=0)


@pytest.mark.parametrize("spec", [POINTS4, TINY_IMAGE], ids=["points", "image"])
def test_logdet_matches_autograd_jacobian(spec):
    flow = perturb(make_flow(spec))
    flow.net.double()
    xs = torch.randn(3, spec.dim, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for x in xs:

        def f(v):
            return flow.forward(v.view(1, *spec.shape))[0].flatten()

        _, logabsdet = torch.linalg.slogdet(jacobian(f, x))
        _, logdet = flow.forward(x.view(1, *spec.shape))
        assert abs(logdet.item()) > 0.1
        assert logdet.item() == pytest.approx(logabsdet.item(), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("spec", [POINTS4, TINY_IMAGE], ids=["points", "image"])
def test_alternating_masks_transform_every_dimension(spec):
    flow = perturb(make_flow(spec, actnorm=False))  # couplings only: nothing else moves a dimension
    x = torch.rand(16, *spec.shape, generator=torch.Generator().manual_seed(12)) * 2 - 1
    moved = (flow.forward(x)[0] - x).abs().amax(0)  # untouched dims would be exactly 0
    assert (moved > 1e-3).all()


# --- normalisation --------------------------------------------------------------------------------
def grid_integral(log_density, half_width: float = 7.0, step: float = 0.035) -> float:
    """∫ exp(log_density) over [-w, w]² by the midpoint rule (errors << 1 % at these settings)."""
    c = torch.arange(-half_width + step / 2, half_width, step)
    pts = torch.cartesian_prod(c, c)
    with torch.no_grad():
        logp = torch.cat([log_density(chunk) for chunk in pts.split(40_000)])
    return logp.exp().sum().item() * step**2


def without_logdet(flow: RealNVP, x: torch.Tensor) -> torch.Tensor:
    """log N(f(x); 0, I) alone: the grid check must reject it (it has teeth)."""
    z, _ = flow.forward(x)
    return -0.5 * (z**2 + LOG_2PI).sum(1)


def test_density_integrates_to_one_untrained_and_trained():
    g = torch.Generator().manual_seed(4)
    untrained = perturb(make_flow(PLANE, hidden=64))
    assert grid_integral(untrained.log_prob) == pytest.approx(1.0, abs=0.01)
    assert abs(grid_integral(partial(without_logdet, untrained)) - 1.0) > 0.1

    flow = make_flow(PLANE, hidden=64, lr=3e-3)
    data = eight_gaussians(20_000, g)
    for _ in range(300):
        flow.train_step(data[torch.randint(len(data), (256,), generator=g)])
    test = eight_gaussians(2000, g)
    # it learnt something (N(0, I) scores ≈ 6 nats here, the truth 2.83), so the density is far from
    # the base and its mass sits near the 8 modes, well inside the grid
    assert flow.nll(test)["exact"].mean() < 3.6
    assert grid_integral(flow.log_prob) == pytest.approx(1.0, abs=0.01)

    assert abs(grid_integral(partial(without_logdet, flow)) - 1.0) > 0.1


# --- images: dequantization ---------------------------------------------------------------------
def test_image_nll_is_dequantized_continuous_nll_minus_d_log_delta():
    flow = perturb(make_flow(TINY_IMAGE), scale=0.1)
    spec, delta = TINY_IMAGE, TINY_IMAGE.bin_width
    x = spec.from_levels(torch.randint(0, 17, (8, *spec.shape), generator=torch.Generator().manual_seed(5)))
    nll = flow.nll(x, generator=torch.Generator().manual_seed(6))["dequantized"]
    x_deq = flow.dequantize(x, generator=torch.Generator().manual_seed(6))  # the same noise
    noise = x_deq - x
    assert noise.abs().max() <= delta / 2 and noise.abs().max() > 0.4 * delta
    continuous = -flow.log_prob(x_deq)
    assert torch.allclose(nll, continuous - spec.dim * math.log(delta), atol=1e-4)


def test_identity_flow_image_nll_matches_closed_form_and_bounds_discrete_nll():
    """A fresh flow is the identity, so its density is N(0, I): with u ~ U(±Δ/2),

    E_u[nll] = D/2·log 2π + ½·Σ (x_i² + Δ²/12) − D·log Δ  ≥  −log P(x) of the discretized N(0, I).
    """
    flow, spec, delta = make_flow(TINY_IMAGE), TINY_IMAGE, TINY_IMAGE.bin_width
    one = spec.from_levels(torch.randint(0, 17, (1, *spec.shape), generator=torch.Generator().manual_seed(7)))
    z, logdet = flow.forward(one)
    assert torch.equal(z, one) and logdet.item() == 0.0
    nll = flow.nll(one.expand(4000, *spec.shape), generator=torch.Generator().manual_seed(8))["dequantized"]
    expected = spec.dim / 2 * LOG_2PI + 0.5 * (one**2 + delta**2 / 12).sum() - spec.dim * math.log(delta)
    assert nll.mean().item() == pytest.approx(expected.item(), abs=0.01)  # MC se ≈ 0.0015
    discrete = -discretized_gaussian_log_likelihood(one, torch.zeros(()), torch.zeros(()), delta).sum()
    assert nll.mean().item() >= discrete.item()  # Jensen: a bound on the discrete NLL


def test_image_flows_label_their_nll_dequantized_and_point_flows_exact():
    """The image NLL is a one-sample uniform-dequantization bound, not an exact likelihood."""
    image, plane = make_flow(TINY_IMAGE), make_flow(PLANE)
    assert (image.nll_kind, plane.nll_kind) == ("dequantized", "exact")
    x = TINY_IMAGE.from_levels(torch.randint(0, 17, (3, *TINY_IMAGE.shape), generator=torch.Generator().manual_seed(1)))
    assert list(image.nll(x)) == ["dequantized"] and list(plane.nll(torch.randn(3, 2))) == ["exact"]


# --- the Family contract --------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [PLANE, TINY_IMAGE], ids=["points", "image"])
def test_train_step_and_samples(spec):
    flow = make_flow(spec)
    x = torch.rand(32, *spec.shape, generator=torch.Generator().manual_seed(9)) * 2 - 1
    for _ in range(3):
        losses = flow.train_step(x)
        assert set(losses) == {"loss"} and all(isinstance(v, float) and math.isfinite(v) for v in losses.values())
    s = flow.sample(50, generator=torch.Generator().manual_seed(10))
    assert s.shape == (50, *spec.shape) and s.dtype == torch.float32 and torch.isfinite(s).all()
    assert torch.equal(s, flow.sample(50, generator=torch.Generator().manual_seed(10)))
    if spec.is_image:
        assert s.min() >= -1 and s.max() <= 1
    with pytest.raises(ValueError, match="steps"):
        flow.sample(2, steps=10)


def test_first_batch_initialises_actnorm_to_whiten():
    flow = make_flow(PLANE)
    x = torch.randn(512, 2, generator=torch.Generator().manual_seed(11)) * torch.tensor([3.0, 0.5]) + 2
    flow.train_step(x)
    first = flow.net.layers[0]
    with torch.no_grad():
        y, _ = first(x)  # one Adam step (lr 1e-3) moves the init only slightly
    assert torch.allclose(y.mean(0), torch.zeros(2), atol=0.02)
    assert torch.allclose(y.std(0), torch.ones(2), atol=0.02)


def test_cosine_lr_schedule_reaches_lr_min():
    flow = make_flow(PLANE, lr=1e-3, lr_min=1e-4, lr_decay_steps=4)
    x = torch.randn(16, 2)
    lrs = []
    for _ in range(6):
        flow.train_step(x)
        lrs.append(flow.opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(1e-3) and lrs[2] == pytest.approx(5.5e-4)
    assert lrs[4] == lrs[5] == pytest.approx(1e-4)
    assert flow.state_dict()["net"]["steps"].item() == 6  # saved, so a resumed trial continues


def test_works_under_accelerate():
    accelerate = pytest.importorskip("accelerate")
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)  # the state is a per-process singleton (library notes)
    try:
        flow = make_flow(PLANE)
        flow.attach(accelerate.Accelerator(cpu=True))
        assert flow.optimizers()["opt"] is flow.opt and flow.modules()["net"] is flow.net
        assert math.isfinite(flow.train_step(torch.randn(32, 2))["loss"])
        x = torch.randn(8, 2)
        assert torch.allclose(flow.inverse(flow.forward(x)[0]), x, atol=1e-5)
        assert flow.nll(x)["exact"].shape == (8,)
    finally:
        AcceleratorState._reset_state(True)


def test_hparams_are_checked():
    with pytest.raises(ConfigError, match="unknown hyper-parameter 'coupling_layer' for family 'flow'"):
        build(RealNVP.Hparams, {"coupling_layer": 4}, owner="family 'flow'")
    with pytest.raises(ConfigError, match="coupling_layers must be >= 2"):
        build(RealNVP.Hparams, {"coupling_layers": 1}, owner="family 'flow'")
    with pytest.raises(ConfigError, match="'act'"):
        build(RealNVP.Hparams, {"act": "gelu"}, owner="family 'flow'")
    with pytest.raises(ConfigError, match="needs data with >= 2 dimensions"):
        RealNVP(DataSpec("line", (1,), "points"), RealNVP.Hparams())


@pytest.mark.parametrize("dim, layers", [(2, 2), (3, 1), (4, 0)])
def test_split_coupling_equals_masked_formula(dim, layers):
    """Points split instead of masking: same parameters, so y = x ⊙ exp(s(m ⊙ x)) + t(m ⊙ x) with the
    full-width network must come out, for even and odd D and a single linear map (layers = 0)."""
    spec = DataSpec("p", (dim,), "points")
    flow = perturb(make_flow(spec, layers=layers, actnorm=False))
    x = torch.randn(64, dim, generator=torch.Generator().manual_seed(13))
    for coupling in flow.net.layers:
        y, logdet = coupling(x)
        s, t = coupling._s_t(x * coupling.mask)  # the masked form, on the same network
        assert torch.allclose(y, x * s.exp() + t, atol=1e-6) and torch.allclose(logdet, s.sum(1), atol=1e-6)
        assert torch.allclose(coupling.inverse(y), x, atol=1e-5)
        x = y
