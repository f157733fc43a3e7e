"""The ODE likelihood against closed forms: Gaussian data under the analytic optimal ε-model of the
VP process, whose probability flow is affine, and the Hutchinson trace against the exact trace."""

from __future__ import annotations

import math

import pytest
import torch

from bench.families.diffusion import cosine_betas, linear_betas
from bench.families.ode import OdeSettings, VPSchedule, exact_divergence, hutchinson_trace, ode_nll

MU = torch.tensor([1.0, -0.5], dtype=torch.float64)
SIGMA = torch.tensor([[0.6, 0.25], [0.25, 0.3]], dtype=torch.float64)
TIGHT = OdeSettings(rtol=1e-6, atol=1e-6)
TOL_NATS = 1e-3  # the acceptance tolerance, at rtol = atol = 1e-6 in float64 (measured: < 1e-4)


def _schedule(betas: torch.Tensor) -> VPSchedule:
    return VPSchedule(torch.cumprod(1 - betas, 0))


def optimal_eps(vp: VPSchedule):
    """ε*(x, s) = σ(s) C_s⁻¹ (x − √ᾱ(s) μ), C_s = ᾱ(s) Σ + (1 − ᾱ(s)) I: the exact score of the VP
    marginal of N(μ, Σ), as an ε-predictor (what a perfectly trained DDPM network outputs)."""

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        s = t.item()
        a = vp.alpha_bar(s)
        cov = a * SIGMA + (1 - a) * torch.eye(2, dtype=torch.float64)
        centred = x.double() - math.sqrt(a) * MU
        return (vp.sigma(s) * torch.linalg.solve(cov, centred.T).T).to(x.dtype)

    return eps


def marginal(vp: VPSchedule, s: float) -> tuple[torch.Tensor, torch.Tensor]:
    a = vp.alpha_bar(s)
    return math.sqrt(a) * MU, a * SIGMA + (1 - a) * torch.eye(2, dtype=torch.float64)


def pushforward_nll(vp: VPSchedule, x: torch.Tensor) -> torch.Tensor:
    """−log of N(0, I) pulled back through the exact flow from s = T−1 to s = 0. For Gaussian data
    the flow is affine: in Σ's eigenbasis each coordinate scales by √(c_1/c_0) (c: the marginal
    variances), so z = m_1 + U diag(√(c_1/c_0)) Uᵀ (x − m_0) and the log-det is Σ ½ log(c_1/c_0)."""
    evals, u = torch.linalg.eigh(SIGMA)
    a0, a1 = vp.alpha_bar(0.0), vp.alpha_bar(vp.T - 1.0)
    c0, c1 = a0 * evals + 1 - a0, a1 * evals + 1 - a1
    m0, m1 = math.sqrt(a0) * MU, math.sqrt(a1) * MU
    z = m1 + ((x.double() - m0) @ u * (c1 / c0).sqrt()) @ u.T
    log_det = 0.5 * torch.log(c1 / c0).sum()
    return 0.5 * (z.pow(2).sum(1) + 2 * math.log(2 * math.pi)) - log_det


def gaussian_nll(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    return -torch.distributions.MultivariateNormal(mean, cov).log_prob(x.double())


def _points(n: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return MU + torch.randn(n, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(SIGMA).T


@pytest.mark.parametrize("betas", [linear_betas(1000), cosine_betas(1000)], ids=["linear", "cosine"])
def test_ode_nll_of_the_optimal_model_is_the_closed_form(betas):
    """The ODE NLL (exact divergence by autograd) equals the affine flow's closed-form NLL within
    1e-3 nats per point, on both of the DDPM's schedules at T = 1000."""
    vp = _schedule(betas)
    x = _points()
    got = ode_nll(vp.velocity(optimal_eps(vp)), x, 0.0, vp.T - 1.0, TIGHT, exact=True)
    want = pushforward_nll(vp, x)
    assert (got.nats - want).abs().max().item() < TOL_NATS
    assert got.probe_stderr is None and got.nfe > 10


def test_ode_nll_equals_the_data_nll_when_the_prior_matches():
    """Cosine schedule: ᾱ(T−1) ≈ 2e-9, so the prior N(0, I) is the process's own end point, and the
    ODE NLL is the exact Gaussian NLL of the data at the first noise level σ(0) (√β_1 ≈ 6e-3)
    within 1e-3 nats; that smoothing moves the data's own NLL by < 1e-3 nats on these points."""
    vp = _schedule(cosine_betas(1000))
    x = _points()
    got = ode_nll(vp.velocity(optimal_eps(vp)), x, 0.0, vp.T - 1.0, TIGHT, exact=True)
    assert (got.nats - gaussian_nll(x, *marginal(vp, 0.0))).abs().max().item() < TOL_NATS
    assert (gaussian_nll(x, *marginal(vp, 0.0)) - gaussian_nll(x, MU, SIGMA)).abs().max().item() < TOL_NATS


def test_vp_schedule_hits_the_discrete_noise_levels():
    """At integer timesteps ᾱ(s) is the trained ᾱ_i; β(s) integrates back to λ."""
    betas = linear_betas(100)
    ac = torch.cumprod(1 - betas, 0)
    vp = VPSchedule(ac)
    for i in (0, 1, 37, 99):
        assert vp.alpha_bar(float(i)) == pytest.approx(ac[i].item(), rel=1e-12)
    grid = torch.linspace(0, 99, 20001, dtype=torch.float64)
    b = torch.tensor([vp.beta(s) for s in grid.tolist()])
    assert torch.trapezoid(b, grid).item() == pytest.approx(vp.lam(99.0) - vp.lam(0.0), rel=1e-6)


def test_the_defaults_agree():
    """[eval]'s ode_* defaults, OdeSettings' and flowmatch's headline tolerances are one setting."""
    from bench.families.flowmatch import FlowMatchHparams
    from bench.metrics import EvalConfig

    cfg, hp, ode = EvalConfig(), FlowMatchHparams(), OdeSettings()
    assert (cfg.ode_rtol, cfg.ode_atol, cfg.ode_probes) == (ode.rtol, ode.atol, ode.probes)
    assert (hp.nll_rtol, hp.nll_atol, hp.nll_probes) == (ode.rtol, ode.atol, ode.probes)


def _conv_field():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 8, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv2d(8, 2, 3, padding=1))
    return lambda x: net(x) + 0.5 * x.pow(2)


def test_hutchinson_trace_is_within_three_standard_errors_of_the_exact_trace():
    """Image-shaped (B, 2, 4, 4) nonlinear field: the Rademacher estimate over 400 probes lies within
    3 of its standard errors of the exact trace (autograd, one VJP per dimension), per example, and
    its standard error is what 400 probes of a non-trivial field give (neither 0 nor the trace)."""
    fn = _conv_field()
    x = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    with torch.enable_grad():
        xg = x.requires_grad_(True)
        exact = exact_divergence(fn(xg), xg)
    mean, se = hutchinson_trace(fn, x, 400, torch.Generator().manual_seed(2))
    assert ((mean - exact).abs() < 3 * se).all(), (mean, exact, se)
    assert (se > 0).all() and (se < 0.2 * exact.abs()).all()


def test_hutchinson_ode_nll_is_unbiased_for_the_exact_one():
    """The same solve with 8 probes per example: within 3 standard errors (its own, per example) of
    the exact-divergence NLL; a solve on images takes this path."""
    vp = _schedule(linear_betas(200))
    x = _points(16)
    v = vp.velocity(optimal_eps(vp))
    exact = ode_nll(v, x, 0.0, vp.T - 1.0, OdeSettings(1e-5, 1e-5), exact=True)
    est = ode_nll(v, x, 0.0, vp.T - 1.0, OdeSettings(1e-5, 1e-5, probes=8), exact=False, generator=torch.Generator())
    assert est.probe_stderr is not None and (est.probe_stderr > 0).all()
    assert ((est.nats - exact.nats).abs() < 3 * est.probe_stderr + 1e-4).all()


def test_ode_columns_summarise_the_per_example_estimates():
    """bench.metrics.nll.ode_columns on known per-example values: the mean in bits/dim, the standard
    error over examples, the mean NFE over solves, the probes' share √(Σ se_i²)/n; NaN without an ODE."""
    import contextlib
    import json

    from bench.datasets import make_dataset
    from bench.families.ode import OdeNll
    from bench.metrics import EvalConfig
    from bench.metrics.nll import ode_columns

    spec = make_dataset("digits").spec
    per_dim_bits = spec.dim * math.log(2)

    class Fake:
        device = torch.device("cpu")
        calls = 0

        def fp32(self):
            return contextlib.nullcontext()

        def ode_nll(self, x, generator=None, *, settings):
            self.calls += 1
            nats = torch.arange(len(x), dtype=torch.float64) * per_dim_bits  # 0, 1, 2, ... bits/dim
            return OdeNll(nats, torch.full((len(x),), 0.5 * per_dim_bits), nfe=10 * self.calls)

    cfg = EvalConfig(nll_batch=4, ode_probes=2)
    row = ode_columns(Fake(), torch.zeros(8, *spec.shape), spec, cfg, generator=None)
    values = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3], dtype=torch.float64)
    assert row["nll_ode"] == pytest.approx(1.5)
    assert row["nll_ode_stderr"] == pytest.approx(values.std().item() / math.sqrt(8))
    assert row["nll_ode_nfe"] == 15  # solves of 10 and 20 evaluations
    solver = json.loads(row["nll_ode_solver"])
    assert solver["hutchinson_stderr"] == pytest.approx(math.sqrt(8 * 0.25) / 8)
    assert solver["divergence"] == "hutchinson-2" and solver["examples"] == 8

    class NoOde(Fake):
        def ode_nll(self, x, generator=None, *, settings):
            return None

    row = ode_columns(NoOde(), torch.zeros(8, *spec.shape), spec, cfg, generator=None)
    assert math.isnan(row["nll_ode"]) and json.loads(row["nll_ode_solver"]) == {}
