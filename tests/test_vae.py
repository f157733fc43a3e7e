"""VAE: its bounds against a linear-Gaussian model with a closed-form likelihood (probabilistic
PCA), its discretized image decoder, its interface. Pure unit tests on synthetic tensors.

pPCA: p(z) = N(0, I_L), p(x|z) = N(Wz + b, σ² I_D)  =>  log p(x) = log N(x; b, WWᵀ + σ² I), and the
exact posterior is N(M⁻¹Wᵀ(x − b), σ² M⁻¹) with M = WᵀW + σ² I (diagonal when W's columns are
orthogonal).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from bench.datasets.base import DataSpec
from bench.errors import ConfigError
from bench.families.vae import VAE
from bench.hparams import build

D, L, SIGMA = 5, 2, 0.5
IMG = DataSpec("t", (1, 8, 8), "image", levels=17)


def _ppca_vae(W, b, enc_A, enc_c, enc_log_std) -> VAE:
    """Linear VAE (hidden_layers=0): decoder N(Wz + b, σ²I), encoder mean A x + c, fixed log-std."""
    hp = build(VAE.Hparams, {"latent": L, "hidden_layers": 0}, owner="test")
    vae = VAE(DataSpec("ppca", (D,), "points"), hp)
    enc, dec = vae.encoder.net[0], vae.decoder.net[0]  # the single nn.Linear of each side
    with torch.no_grad():
        enc.weight.zero_()
        enc.weight[:L] = enc_A
        enc.bias[:L] = enc_c
        enc.bias[L:] = enc_log_std  # rows L: (log-std) get zero weight: a constant log-std
        dec.weight.copy_(W)
        dec.bias.copy_(b)
        vae.decoder.log_std.fill_(math.log(SIGMA))
    return vae


def _marginal(W, b) -> MultivariateNormal:
    return MultivariateNormal(b, W @ W.T + SIGMA**2 * torch.eye(D))


def _exact_posterior(W, b):
    """(A, c, std) with posterior mean A x + c and the posterior's marginal stds (L,)."""
    m_inv = torch.linalg.inv(W.T @ W + SIGMA**2 * torch.eye(L))
    A = m_inv @ W.T
    return A, -A @ b, (SIGMA**2 * m_inv.diagonal()).sqrt()


def _analytic_elbo(x, W, b, m, s):
    """Closed-form pPCA ELBO for q = N(m, diag s²): E_q log N(x; Wz+b, σ²I) − KL(q ‖ N(0, I))."""
    resid = ((x - m @ W.T - b) ** 2).sum(-1) + (s**2 * (W**2).sum(0)).sum(-1)
    rec = -0.5 * D * math.log(2 * math.pi * SIGMA**2) - resid / (2 * SIGMA**2)
    kl = 0.5 * (s**2 + m**2 - 1 - 2 * s.log()).sum(-1)
    return rec - kl


def _mean_se(t: torch.Tensor) -> tuple[float, float]:
    return t.mean().item(), (t.std() / math.sqrt(t.numel())).item()


def test_ppca_elbo_le_iwae_le_log_px_and_iwae_converges_as_k_grows():
    torch.manual_seed(0)
    W, b = torch.randn(D, L), torch.randn(D)
    A, c, std = _exact_posterior(W, b)
    # a deliberately wrong encoder: shrunk, shifted mean and a 35 % too wide posterior
    vae = _ppca_vae(W, b, 0.8 * A, 0.8 * c + 0.1, std.log() + 0.3)
    x = _marginal(W, b).sample((500,))
    log_px = _marginal(W, b).log_prob(x)
    g = torch.Generator().manual_seed(1)
    gaps = {}  # K -> per-example IWAE-K − log p(x)
    for k in (1, 10, 100, 1000):
        elbo, iwae = vae.bounds(x, k, g)
        gaps[k] = iwae - log_px
        mean, se = _mean_se(gaps[k])
        assert mean <= 3 * se, f"IWAE-{k} above log p(x) by {mean:.4f} (se {se:.4f})"
    # the MC ELBO (k = 1000 samples) equals the closed form within its Monte-Carlo error
    m = x @ (0.8 * A).T + 0.8 * c + 0.1
    elbo_exact = _analytic_elbo(x, W, b, m, torch.exp(std.log() + 0.3).expand_as(m))
    mean, se = _mean_se(elbo - elbo_exact)
    assert abs(mean) < 4 * se + 1e-3, f"MC ELBO − closed form = {mean:.4f} (se {se:.4f})"
    elbo_gap = (elbo_exact - log_px).mean().item()
    assert elbo_gap < -1.0  # the encoder is wrong enough for the test to mean something
    # IWAE-1 is an ELBO estimate; IWAE-K rises (paired differences) towards log p(x)
    mean, se = _mean_se(gaps[1] - (elbo_exact - log_px))
    assert abs(mean) < 4 * se, f"IWAE-1 differs from the ELBO by {mean:.4f} (se {se:.4f})"
    for k1, k2 in ((1, 10), (10, 100), (100, 1000)):
        mean, se = _mean_se(gaps[k2] - gaps[k1])
        assert mean >= -3 * se, f"IWAE-{k2} below IWAE-{k1} by {-mean:.4f} (se {se:.4f})"
    assert gaps[10].mean() > gaps[1].mean() + 1.0  # strictly tighter, by a lot, for this encoder
    assert abs(gaps[1000].mean().item()) < 0.05, f"IWAE-1000 gap {gaps[1000].mean():.4f} nats"


def test_ppca_with_exact_posterior_makes_every_bound_exact():
    """q(z|x) = p(z|x) makes every importance weight p(x): ELBO = IWAE-K = log p(x) per example."""
    torch.manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(D, L))
    W, b = q * torch.tensor([2.0, 0.7]), torch.randn(D)  # orthogonal columns: diagonal posterior
    A, c, std = _exact_posterior(W, b)
    vae = _ppca_vae(W, b, A, c, std.log())
    vae.CHUNK_ELEMENTS = 7 * D * 3  # force several chunks (7 examples of k = 3) through `bounds`
    x = _marginal(W, b).sample((50,))
    elbo, iwae = vae.bounds(x, 3, torch.Generator().manual_seed(0))
    log_px = _marginal(W, b).log_prob(x)
    torch.testing.assert_close(elbo, log_px, atol=1e-4, rtol=0)
    torch.testing.assert_close(iwae, log_px, atol=1e-4, rtol=0)


def test_nll_labels_signs_and_one_batched_decoder_pass():
    torch.manual_seed(2)
    hp = build(VAE.Hparams, {"hidden": 16}, owner="test")
    vae = VAE(DataSpec("p", (3,), "points"), hp)
    calls = []
    vae.decoder.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape))
    x = torch.randn(40, 3)
    nll = vae.nll(x, torch.Generator().manual_seed(0), iwae_k=10)
    assert list(nll) == ["iwae-10", "elbo"]  # headline first
    assert calls == [torch.Size([10 * 40, vae.hp.latent])]  # K·B latents in one decoder call
    assert all(v.shape == (40,) and torch.isfinite(v).all() for v in nll.values())
    assert (nll["elbo"] >= nll["iwae-10"] - 1e-5).all()  # same samples: Jensen holds per example
    iw = vae.iwae(x, 10, torch.Generator().manual_seed(0))
    torch.testing.assert_close(iw, -nll["iwae-10"])  # same generator state, same samples


def _images(n: int) -> torch.Tensor:
    return IMG.from_levels(torch.randint(0, IMG.levels, (n, *IMG.shape)))


def test_image_vae_trains_bounds_and_samples():
    torch.manual_seed(3)
    vae = VAE(IMG, build(VAE.Hparams, {"latent": 4, "width": 8}, owner="test"))
    x = _images(16)
    for _ in range(3):
        losses = vae.train_step(x)
        assert losses and all(math.isfinite(v) for v in losses.values()), losses
    nll = vae.nll(x[:5], torch.Generator().manual_seed(0), iwae_k=8)
    assert list(nll) == ["iwae-8", "elbo"]
    for v in nll.values():  # discrete data: −log P ≥ 0, and finite
        assert v.shape == (5,) and torch.isfinite(v).all() and (v > 0).all()
    s = vae.sample(7, torch.Generator().manual_seed(0))
    assert s.shape == (7, *IMG.shape) and s.dtype == torch.float32
    assert s.min() >= -1 and s.max() <= 1
    with pytest.raises(ValueError, match="steps"):
        vae.sample(2, steps=10)


def test_discretized_decoder_probabilities_sum_to_one_over_levels():
    torch.manual_seed(4)
    vae = VAE(IMG, build(VAE.Hparams, {"latent": 4, "width": 8}, owner="test"))
    with torch.no_grad():
        mean, log_std = vae.decoder(torch.randn(3, 4))
    levels = IMG.from_levels(torch.arange(IMG.levels)).view(-1, 1, 1, 1, 1)  # (17, 1, 1, 1, 1)
    # the decoder's own output, plus narrow/wide and off-centre ones at the edges of [-1, 1]
    cases = ((mean, log_std), (mean * 0 + 0.97, log_std * 0 - 4), (mean * 0 - 1.3, log_std * 0 + 1))
    for m, ls in cases:
        logp = vae.log_likelihood(levels.expand(-1, *m.shape), m, ls)  # (17, 3, 1, 8, 8)
        torch.testing.assert_close(logp.exp().sum(0), torch.ones_like(m), atol=1e-5, rtol=0)


def test_impute_keeps_known_entries_and_fills_the_rest():
    torch.manual_seed(5)
    vae = VAE(IMG, build(VAE.Hparams, {"latent": 4, "width": 8, "impute_steps": 3}, owner="test"))
    x = _images(4)
    known = torch.rand(x.shape) < 0.5
    out = vae.impute(x, known)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert torch.equal(out[known], x[known])
    assert out.min() >= -1 and out.max() <= 1


def test_impute_iterates_on_the_clamped_completion():
    """Each iteration must re-encode the [-1, 1]-clamped completion: a discretized decoder's mean
    may leave [-1, 1], and feeding it back unclamped ran away (±1e3 on digits)."""
    torch.manual_seed(6)
    vae = VAE(IMG, build(VAE.Hparams, {"latent": 4, "width": 8, "impute_steps": 1}, owner="test"))
    with torch.no_grad():
        vae.decoder.net.body[-1].bias[0] = 3.0  # mean channel far above the top level
    x, known = _images(4), torch.rand(4, *IMG.shape) < 0.5
    once = vae.impute(x, known)
    with torch.no_grad():
        recon, _ = vae.decoder(vae.encoder(once)[0])
    vae.hp.impute_steps = 2
    torch.testing.assert_close(vae.impute(x, known), torch.where(known, x, recon.clamp(-1, 1)))


def test_hparams_unknown_key_and_bad_value_give_config_errors():
    with pytest.raises(ConfigError, match="unknown hyper-parameter 'latnet' for family 'vae'") as e:
        build(VAE.Hparams, {"latnet": 3}, owner="family 'vae'")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="latent must be >= 1"):
        build(VAE.Hparams, {"latent": 0}, owner="family 'vae'")
    with pytest.raises(ConfigError, match="unknown hyper-parameter 'iwae_k'"):  # an [eval] option
        build(VAE.Hparams, {"iwae_k": 8}, owner="family 'vae'")


def test_vae_under_accelerate():
    accelerate = pytest.importorskip("accelerate")
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)  # the state is a per-process singleton (library notes)
    try:
        torch.manual_seed(6)
        vae = VAE(DataSpec("p", (2,), "points"), build(VAE.Hparams, {"hidden": 16}, owner="test"))
        vae.attach(accelerate.Accelerator(cpu=True))
        assert vae.accelerator is not None
        losses = vae.train_step(torch.randn(32, 2))
        assert all(math.isfinite(v) for v in losses.values())
        assert torch.isfinite(vae.nll(torch.randn(4, 2), iwae_k=64)["iwae-64"]).all()
    finally:
        AcceleratorState._reset_state(True)
