"""Flow matching: its ODE likelihood against the closed form of the optimal OT-path velocity, its
fixed-grid samplers against their orders and NFE counts, and trained NLLs against the truth."""

from __future__ import annotations

import math

import pytest
import torch

from bench.datasets import make_dataset
from bench.families import make_family
from bench.families.flowmatch import SAMPLERS, dopri5_fixed, euler
from bench.families.ode import OdeSettings, ode_nll

MU = torch.tensor([1.0, -0.5], dtype=torch.float64)
SIGMA = torch.tensor([[0.6, 0.25], [0.25, 0.3]], dtype=torch.float64)


def optimal_velocity(x: torch.Tensor, t: float) -> torch.Tensor:
    """E[x_1 − z | x_t] for x_1 ~ N(μ, Σ), z ~ N(0, I), x_t = t x_1 + (1 − t) z: with C = t²Σ + (1−t)²I,
    E[x_1|x_t] = μ + tΣC⁻¹(x_t − tμ) and E[z|x_t] = (1 − t)C⁻¹(x_t − tμ)."""
    cov = t * t * SIGMA + (1 - t) ** 2 * torch.eye(2, dtype=torch.float64)
    r = torch.linalg.solve(cov, (x - t * MU).T).T
    return MU + t * r @ SIGMA - (1 - t) * r


def test_ode_nll_of_the_optimal_velocity_is_the_gaussian_nll():
    """The flow-matching orientation (data at t = 1, noise at t = 0): exact NLL within 1e-3 nats."""
    x = (
        MU
        + torch.randn(32, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        @ torch.linalg.cholesky(SIGMA).T
    )
    got = ode_nll(optimal_velocity, x, 1.0, 0.0, OdeSettings(1e-7, 1e-7), exact=True)
    want = -torch.distributions.MultivariateNormal(MU, SIGMA).log_prob(x)
    assert (got.nats - want).abs().max().item() < 1e-3


@pytest.mark.parametrize("name,order", [("euler", 1), ("dopri5", 5)])
def test_fixed_grid_samplers_have_their_order_and_nfe(name, order):
    """dx/dt = −t x from x(0) = 1: x(1) = e^{−1/2}. Doubling the steps divides the error by at least
    ≈ 2^order (dopri5's 5th-order solution does a little better on this smooth problem);
    the velocity is called exactly the NFE the family reports."""
    calls = [0]

    def v(x, t):
        calls[0] += 1
        return -t * x

    solve, nfe = SAMPLERS[name]
    errors = []
    for steps in (25, 49) if name == "dopri5" else (50, 100):  # dopri5: 4 and 8 steps
        calls[0] = 0
        x1 = solve(v, torch.ones(1, dtype=torch.float64), steps)
        assert calls[0] == nfe(steps)
        errors.append(abs(x1.item() - math.exp(-0.5)))
    assert order - 0.5 < math.log2(errors[0] / errors[1]) < order + 1.5
    assert solve in (euler, dopri5_fixed)


def _trained(family: str, hparams: dict, steps: int = 1500):
    """The quick suite's budget: `steps` steps on batches of 128 of 8gaussians (20 000 points)."""
    ds = make_dataset("8gaussians", {"n_train": 20000, "n_test": 2000})
    torch.manual_seed(0)
    fam = make_family(family, ds.spec, {"batch_size": 128, **hparams})
    data, g = ds.train(), torch.Generator().manual_seed(0)
    for _ in range(steps):
        fam.step(data[torch.randint(len(data), (128,), generator=g)])
    fam.train(False)
    return fam, ds


def test_flowmatch_learns_8gaussians_within_0_2_nats_at_the_quick_budget():
    """1500 steps, batch 128, default hparams (~6 CPU-s): ODE NLL − true NLL on the same 300 test
    points (paired) is in [−3 se, 0.2] nats (measured: 0.07)."""
    fam, ds = _trained("flowmatch", {})
    x = ds.test()[:300]
    with fam.evaluation_weights(), torch.no_grad():
        nll = fam.nll(x, torch.Generator().manual_seed(0))["ode"].double()
    gap = nll - (-ds.log_density(x).double())
    se = gap.std().item() / math.sqrt(len(gap))
    assert -3 * se < gap.mean().item() < 0.2


def test_ddpm_ode_nll_is_near_its_vlb_and_above_the_truth():
    """The quick suite's DDPM (T = 200): nll_ode on 300 test points lies within 0.5 nats of its own
    VLB (measured: 0.20 below it) and above the true NLL minus 3 paired standard errors and the
    solver tolerance (cross-entropy ≥ entropy)."""
    fam, ds = _trained("ddpm", {"timesteps": 200})
    x = ds.test()[:300]
    g = torch.Generator().manual_seed(0)
    with fam.evaluation_weights(), torch.no_grad():
        vlb = fam.nll(x, g)["vlb"].double()
        ode = fam.ode_nll(x, g, settings=OdeSettings()).nats.double()
    assert abs(ode.mean().item() - vlb.mean().item()) < 0.5
    gap = ode - (-ds.log_density(x).double())
    assert gap.mean().item() > -3 * gap.std().item() / math.sqrt(len(gap)) - 1e-3


def test_flowmatch_is_a_reference_family_of_the_report():
    """Neither a lecture family nor a baseline: the report shows it as a reference where a lecture
    claim compares with "the other families" (a class fact, no hand list)."""
    from bench.families import FAMILIES
    from bench.report.columns import BASELINES, REFERENCES

    assert "flowmatch" in REFERENCES and "flowmatch" not in BASELINES
    assert set(BASELINES) <= set(REFERENCES)
    assert not {"gan", "vae", "flow", "ddpm"} & set(REFERENCES)
    assert all(FAMILIES.get(f).lecture for f in ("gan", "vae", "flow", "ddpm"))


def test_flowmatch_is_compared_as_a_reference_where_a_claim_says_other_families():
    """DDPM slower than every other family: whether flowmatch is faster or slower than the DDPM, it
    is a reference comparison (shown, never deciding), while the lecture family (the GAN) decides."""
    from report_synth import rows_from

    from bench.report.claims import DDPM_SLOWER

    fast = [1e4, 1.1e4, 0.9e4]
    for fm in (fast, [1.0, 1.1, 0.9]):  # flowmatch faster, then slower than the DDPM
        df = rows_from(
            {
                "ddpm": {"samples_per_s": [100.0, 110.0, 90.0]},
                "gan": {"samples_per_s": fast},
                "flowmatch": {"samples_per_s": fm},
            }
        )
        found, _ = DDPM_SLOWER.evaluate(df)
        by_family = {e.b_family: e for e in found}
        assert by_family["flowmatch"].reference and not by_family["gan"].reference


def test_the_dopri5_sampler_draws_on_its_nfe_budget():
    """sampler = dopri5: samples of the data's shape, and nfe_per_sample is the fixed-grid count."""
    ds = make_dataset("8gaussians", {"n_train": 200, "n_test": 100})
    fam = make_family("flowmatch", ds.spec, {"hidden": 16, "sampler": "dopri5", "sample_steps": 25})
    x = fam.sample(7, torch.Generator().manual_seed(0), steps=13)
    assert x.shape == (7, 2) and torch.isfinite(x).all()
    assert fam.nfe_per_sample(13) == 13 and fam.nfe_per_sample() == 25
