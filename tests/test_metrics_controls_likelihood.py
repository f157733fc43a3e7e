"""Known-answer controls for two measures: exact likelihood vs stochastic estimate
(bench.metrics.exactness) and fair imputation scores (bench.metrics.imputation).

Every expected answer comes from a closed form (a Gaussian's log-density, the 8gaussians mixture's
exact conditional, the Var/M identity of an averaged sampler), from construction (a flow's
likelihood is a deterministic function of x; an IWAE-K draws K fresh latents), or from a strict
ordering a proper score guarantees. Seeds are fixed; each assertion can fail.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

from bench.datasets import make_dataset
from bench.datasets.base import DataSpec
from bench.families import FAMILIES, make_family
from bench.metrics.exactness import (
    MASS_TOL,
    SPREAD_TOL_NATS,
    exactness_test,
    grid_mass,
    headline_nll_fn,
    reevaluation_spread,
)
from bench.metrics.imputation import (
    block_mask,
    conditional_mean_mse,
    conditional_mean_squared_errors,
    energy_score,
    energy_scores,
    gaussian_mixture_conditional,
    knn_impute,
    random_mask,
)

BOX = (-8.0, 8.0)  # 8gaussians lies within |x| < 4.2; an N(0, 2²)-wide density loses < 1e-4 outside
IWAE_K = 16
SE_BOUND = 4.0  # "within a few standard errors": a correct measure fails this with p < 1e-4


def _generators(r: int = 5) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed) for seed in range(r)]


def _mean_se(t: torch.Tensor) -> tuple[float, float]:
    return t.mean().item(), (t.std() / math.sqrt(t.numel())).item()


@pytest.fixture(scope="module")
def gaussians():
    return make_dataset("8gaussians", {"n_train": 4096, "n_test": 4000})


def _trained(name: str, ds, steps: int = 500):
    """A tiny family (its own tiny_hparams) after `steps` fixed-seed Adam steps on 8gaussians."""
    torch.manual_seed(0)
    hp = dict(FAMILIES.get(name).tiny_hparams) | {"batch_size": 128, "ema": 0.0}
    model = make_family(name, ds.spec, hp)
    data, g = ds.train(), torch.Generator().manual_seed(1)
    model.train(True)
    for _ in range(steps):
        model.step(data[torch.randint(len(data), (128,), generator=g)])
    model.train(False)
    return model


# --- exactness -----------------------------------------------------------------------------------
def test_flow_is_exact_and_vae_iwae_is_not_though_both_integrate_to_one(gaussians):
    """Known by construction: a flow's NLL on points is −log N(f(x)) − log|det|, a deterministic
    function of x, so re-evaluating it under other generators and batch orders moves it only by
    rounding; the change of variables makes it a normalised density (mass 1). The VAE's −IWAE-K
    draws K fresh latents per call, so it moves; but exp(IWAE-K) is an unbiased estimate of the
    VAE's normalised marginal, so its grid mass is ≈ 1 as well: the mass cannot tell them apart."""
    x = gaussians.test()[:256]
    flow = exactness_test(headline_nll_fn(_trained("flow", gaussians)), x, _generators(), box=BOX)
    vae_fn = headline_nll_fn(_trained("vae", gaussians), iwae_k=IWAE_K)
    vae = exactness_test(vae_fn, x, _generators(), box=BOX)
    print(f"flow {flow}  vae iwae-{IWAE_K} {vae}")  # observed: flow 0.0 nats, mass 0.99985; vae 0.37 nats, 1.0033
    assert flow.exact and flow.spread_nats < SPREAD_TOL_NATS and abs(flow.mass - 1) < MASS_TOL
    assert not vae.exact and vae.spread_nats > 100 * SPREAD_TOL_NATS
    assert abs(vae.mass - 1) < MASS_TOL  # the mass alone would have called the VAE exact
    assert reevaluation_spread(vae_fn, x, _generators()).mean_nats > 100 * SPREAD_TOL_NATS  # not one outlier


def _latent_gaussian():
    """x = z + ε, z ~ N(m, A), ε ~ N(0, b² I): marginal N(m, A + b² I), known in closed form."""
    m, a, b = torch.tensor([0.5, -0.3]), torch.tensor([[1.0, 0.3], [0.3, 0.6]]), 0.7
    return m, a, b, MultivariateNormal(m, a + b**2 * torch.eye(2))


def _seeded_sample(dist, n: int = 256) -> torch.Tensor:
    """n draws from dist under a fixed seed, whatever ran before (sample() uses the global RNG)."""
    torch.manual_seed(2)
    return dist.sample((n,))


def test_closed_form_gaussian_exact_passes_and_its_importance_sampled_estimate_fails():
    """Known answer: log N(x; m, A + b²I) is exact (torch's closed form). Its importance-sampling
    estimate log (1/K) Σ_k N(x; z_k, b²I), z_k ~ N(m, A) (the prior as proposal, fresh draws per
    call) is unbiased in exp (E_z N(x; z, b²I) = the marginal), so it integrates to ≈ 1 but moves."""
    m, a, b, marginal = _latent_gaussian()

    def exact(x, g):
        return -marginal.log_prob(x)

    def importance(x, g):
        z = m + torch.randn(IWAE_K, len(x), 2, generator=g) @ torch.linalg.cholesky(a).T  # (K, B, 2)
        log_w = Normal(z, b).log_prob(x).sum(-1)  # (K, B)
        return -(torch.logsumexp(log_w, 0) - math.log(IWAE_K))

    x = _seeded_sample(marginal)
    ok = exactness_test(exact, x, _generators(), box=BOX)
    est = exactness_test(importance, x, _generators(), box=BOX)
    print(f"exact {ok}  importance {est}")
    assert ok.exact and ok.spread_nats < SPREAD_TOL_NATS and abs(ok.mass - 1) < 1e-3
    assert not est.exact and est.spread_nats > 100 * SPREAD_TOL_NATS and abs(est.mass - 1) < MASS_TOL


def test_spread_sees_a_deterministic_but_batch_dependent_nll():
    """Known answer: an NLL standardised by the statistics of its batch chunk (a BatchNorm left in
    training mode) draws no random numbers, yet changes with the batch order, so it is no likelihood
    of x alone; the re-evaluation in a fresh order per generator must show a spread."""
    _, _, _, marginal = _latent_gaussian()

    def batch_dependent(x, g):
        return torch.cat([-marginal.log_prob((c - c.mean(0)) / c.std(0)) for c in x.split(64)])

    spread = reevaluation_spread(batch_dependent, _seeded_sample(marginal), _generators())
    assert spread.max_nats > 100 * SPREAD_TOL_NATS


def test_grid_mass_sees_an_unnormalised_density():
    """Known answer: a density scaled by 1/2 integrates to 1/2, and one whose mass lies half outside
    the box to ≈ 1/2: the mass check can fail (it just cannot show exactness)."""
    _, _, _, marginal = _latent_gaussian()
    assert grid_mass(lambda p: -marginal.log_prob(p) + math.log(2), *BOX) == pytest.approx(0.5, abs=1e-3)
    centred = MultivariateNormal(torch.zeros(2), torch.eye(2))
    assert grid_mass(lambda p: -centred.log_prob(p), [0.0, -8.0], [8.0, 8.0]) == pytest.approx(0.5, abs=1e-3)


# --- imputation on 8gaussians: the exact conditional ----------------------------------------------
def test_mixture_conditional_matches_quadrature_of_the_datasets_density(gaussians):
    """Known answer: p(x_h | x_o) ∝ p(x_o, x_h), so its mean and variance are ratios of 1-D integrals
    of toy.py's own log_density; the closed form (built from the dataset's modes and mode_std, not
    re-typed numbers) must agree."""
    x = gaussians.test()[:20].double()
    hidden = random_mask(len(x), gaussians.spec)
    cond = gaussian_mixture_conditional(x, hidden, gaussians.modes, gaussians.mode_std)
    grid = torch.linspace(-8, 8, 8001, dtype=torch.float64)
    for i in range(len(x)):
        h = int(hidden[i].nonzero())
        pts = x[i].expand(len(grid), 2).clone()
        pts[:, h] = grid
        p = gaussians.log_density(pts).exp()
        mean = (p * grid).sum() / p.sum()
        var = (p * grid**2).sum() / p.sum() - mean**2
        assert cond.mean[i, h].item() == pytest.approx(mean.item(), abs=1e-6)
        assert cond.var[i, h].item() == pytest.approx(var.item(), abs=1e-6)
        assert cond.mean[i, 1 - h] == x[i, 1 - h] and cond.var[i, 1 - h] == 0


def _conditional(ds, m: int, seed: int = 0):
    x = ds.test().double()
    hidden = random_mask(len(x), ds.spec)  # one of the two coordinates per example
    gen = torch.Generator().manual_seed(seed)
    return x, hidden, gaussian_mixture_conditional(x, hidden, ds.modes, ds.mode_std, n_draws=m, generator=gen)


def test_sampler_and_mean_imputer_agree_up_to_var_over_m(gaussians):
    """Known answer: for M draws from the true conditional, E[(X̄ − y)²] = Var + Var/M while the
    conditional mean scores Var (y is a test point, itself a draw from the conditional). So the
    per-example difference sampler − mean imputer has mean E[Var]/M, computed here from the exact
    conditional variance; and the mean imputer's MSE is E[Var]."""
    m = 4
    x, hidden, cond = _conditional(gaussians, m)
    v = cond.var[hidden]  # (N,): one hidden coordinate each
    point = conditional_mean_squared_errors(cond.mean[None], x, hidden)
    sampler = conditional_mean_squared_errors(cond.draws, x, hidden)
    diff, se = _mean_se(sampler - point)
    predicted = v.mean().item() / m
    print(f"M={m}: difference {diff:.4f} ± {se:.4f}, predicted Var/M {predicted:.4f}")
    assert abs(diff - predicted) < SE_BOUND * se
    assert predicted > SE_BOUND * se  # the Var/M term is really seen, not lost in the noise
    resid, se_point = _mean_se(point - v)
    assert abs(resid) < SE_BOUND * se_point
    assert conditional_mean_mse(cond.draws, x, hidden) == pytest.approx(sampler.mean().item())


def test_one_draw_of_a_perfect_sampler_scores_twice_the_conditional_variance(gaussians):
    """Known answer: with M = 1, E[(X − y)²] = 2·Var(x_h | x_o) for independent X, y from the same
    conditional, twice the conditional-mean imputer's Var: MSE on single draws penalises sampling."""
    x, hidden, cond = _conditional(gaussians, 1)
    v = cond.var[hidden]
    sampler = conditional_mean_squared_errors(cond.draws, x, hidden)
    point = conditional_mean_squared_errors(cond.mean[None], x, hidden)
    resid, se = _mean_se(sampler - 2 * v)
    factor = conditional_mean_mse(cond.draws, x, hidden) / conditional_mean_mse(cond.mean[None], x, hidden)
    # factor − 2 = mean(sampler − 2·point) / mean(point): its standard error from the paired differences
    se_factor = _mean_se(sampler - 2 * point)[1] / point.mean().item()
    print(f"M=1: sampler MSE {sampler.mean():.4f} vs 2·E[Var] {2 * v.mean():.4f} (± {se:.4f}); ", end="")
    print(f"factor {factor:.3f} ± {se_factor:.3f}")
    assert abs(resid) < SE_BOUND * se
    assert abs(factor - 2) < SE_BOUND * se_factor


def test_energy_score_ranks_the_true_conditional_first(gaussians):
    """Known answer: the energy score is strictly proper (Gneiting & Raftery 2007), so the true
    conditional has the lowest expected score; a point mass at its mean and a single Gaussian with
    its mean and variance differ from it (the conditional is bimodal where x_o ≈ 0) and score worse.
    Paired over the same examples, each margin must exceed SE_BOUND standard errors."""
    m = 16
    x, hidden, cond = _conditional(gaussians, m)
    gen = torch.Generator().manual_seed(7)
    gauss = torch.where(hidden, cond.mean + cond.var.sqrt() * torch.randn(m, *x.shape, generator=gen), x)
    true = energy_scores(cond.draws, x, hidden)
    for name, draws in {"point mass": cond.mean[None], "moment-matched Gaussian": gauss}.items():
        margin, se = _mean_se(energy_scores(draws, x, hidden) - true)
        print(f"energy score: {name} worse by {margin:.4f} ± {se:.4f} (true {true.mean():.4f})")
        assert margin > SE_BOUND * se
    assert energy_score(cond.draws, x, hidden) == pytest.approx(true.mean().item())


def test_energy_score_of_a_point_forecast_is_the_distance():
    """Known answer: for draws that all equal c, ES = ‖c − y‖ on the hidden entries (the pairwise
    term vanishes); known entries never count. One example: hidden (3, 4) off by 3 and 4 → 5."""
    truth = torch.zeros(1, 3)
    hidden = torch.tensor([[True, True, False]])
    c = torch.tensor([[3.0, 4.0, 100.0]])
    assert energy_score(c.expand(5, 1, 3), truth, hidden) == pytest.approx(5.0)
    assert energy_score(c[None], truth, hidden) == pytest.approx(5.0)


# --- masks and the k-NN baseline -----------------------------------------------------------------
def test_masks_are_seeded_and_hide_the_intended_share():
    """Known answer by construction: a seeded mask is a pure function of (n, spec, share, seed);
    random masks hide ⌊share·P⌋ pixel positions (all channels together) or ⌊D/2⌋ coordinates, block
    masks one h×w rectangle."""
    rgb = DataSpec("t", (3, 8, 8), "image", levels=256)
    assert torch.equal(random_mask(50, rgb), random_mask(50, rgb))
    assert not torch.equal(random_mask(50, rgb), random_mask(50, rgb, seed=1))
    hidden = random_mask(50, rgb, share=0.3)
    assert (hidden[:, 0].flatten(1).sum(1) == int(0.3 * 64)).all()
    assert (hidden == hidden[:, :1]).all()  # a pixel's channels go together
    points = DataSpec("p", (5,), "points")
    assert (random_mask(40, points).sum(1) == 2).all()
    block = block_mask(50, rgb, share=0.25)
    assert torch.equal(block, block_mask(50, rgb, share=0.25))
    rows, cols = block[:, 0].any(2), block[:, 0].any(1)
    assert (block[:, 0].flatten(1).sum(1) == 16).all() and (rows.sum(1) == 4).all() and (cols.sum(1) == 4).all()
    assert len({tuple(r.nonzero().flatten().tolist()) for r in rows}) > 1  # the block moves
    run = block_mask(30, points, share=0.5)
    starts = run.int().argmax(1)
    assert (run.sum(1) == 2).all() and run[torch.arange(30), starts + 1].all()


def test_knn_uses_only_the_known_entries():
    """Known answer: with k = 1 the imputation copies the training row nearest on the known entries,
    even when another row matches the hidden entries better (a distance that peeked would pick it)."""
    train = torch.tensor([[0.0, 0.0, 9.0], [1.0, 1.0, 0.0]])
    x = torch.tensor([[0.1, 0.1, 0.0]])
    known = torch.tensor([[True, True, False]])
    assert torch.equal(knn_impute(train, x, known, k=1), torch.tensor([[0.1, 0.1, 9.0]]))
    assert knn_impute(train, x, known, k=2)[0, 2].item() == pytest.approx(4.5)


def test_knn_beats_the_training_mean_on_digits():
    """Known answer: digits are strongly structured (a stroke continues), so the nearest training
    images on the visible half predict the hidden half far better than the per-pixel training mean;
    the training-mean imputer is the protocol's baseline (bench.metrics.impute)."""
    ds = make_dataset("digits")
    train, test = ds.train(), ds.test()
    hidden = random_mask(len(test), ds.spec)
    assert hidden.double().mean().item() == 0.5
    observed = test.masked_fill(hidden, 0.0)  # the imputer cannot peek
    knn = conditional_mean_mse(knn_impute(train, observed, ~hidden, k=5)[None], test, hidden)
    mean = conditional_mean_mse(train.mean(0).expand_as(test)[None], test, hidden)
    print(f"digits, half the pixels hidden: kNN-5 MSE {knn:.4f}, training mean {mean:.4f}")
    assert knn < 0.6 * mean
