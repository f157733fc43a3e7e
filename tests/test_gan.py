"""GAN: the discriminator against fixed 1-D Gaussians (D* = p_r/(p_r+p_g), JS from the value), its
losses in closed form, the collapse check, images and the interface. Pure unit tests on synthetic
tensors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from bench.datasets.base import DataSpec
from bench.errors import ConfigError
from bench.families.gan import GAN, js_estimate
from bench.hparams import build

# p_r = N(MU_R, SD_R²), p_g = N(MU_G, SD_G²); unequal widths make the logit of D* quadratic in x
MU_R, SD_R, MU_G, SD_G = 0.0, 1.0, 1.5, 0.7
LINE = DataSpec("line", (1,), "points")
IMG = DataSpec("t", (1, 8, 8), "image", levels=17)


def _gan(spec: DataSpec, **hp) -> GAN:
    return GAN(spec, build(GAN.Hparams, hp, owner="family 'gan'"))


def _js_quadrature() -> float:
    """JS(p_r ‖ p_g) in nats by adaptive quadrature."""

    def integrand(x):
        pr, pg = stats.norm.pdf(x, MU_R, SD_R), stats.norm.pdf(x, MU_G, SD_G)
        m = (pr + pg) / 2
        return 0.5 * pr * np.log(pr / m) + 0.5 * pg * np.log(pg / m)

    return integrate.quad(integrand, -12, 12, limit=200)[0]


def _draw(n: int, g: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    real = MU_R + SD_R * torch.randn(n, 1, generator=g)
    fake = MU_G + SD_G * torch.randn(n, 1, generator=g)
    return real, fake


def _constant_discriminator(gan: GAN, logit: float) -> None:
    """Make d(x) = logit everywhere: zero the last layer's weights, set its bias."""
    last = gan.d_net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(logit)


def test_trained_discriminator_is_optimal_and_its_value_gives_the_js_divergence():
    torch.manual_seed(0)
    gan = _gan(LINE, hidden=64, layers=2, lr=1e-3, betas=(0.9, 0.999))
    for _ in range(800):
        gan.discriminator_step(*_draw(512))
    # D ≈ D* = p_r/(p_r+p_g) where the mixture (p_r+p_g)/2 has density > 0.02 (≈ 99 % of its mass)
    xs = np.linspace(-4, 5, 901)
    pr, pg = stats.norm.pdf(xs, MU_R, SD_R), stats.norm.pdf(xs, MU_G, SD_G)
    with torch.no_grad():
        d = torch.sigmoid(gan.logits(torch.tensor(xs, dtype=torch.float32)[:, None])).numpy()
    where = (pr + pg) / 2 > 0.02
    err = np.abs(d - pr / (pr + pg))[where].max()
    assert err < 0.05, f"max |D − D*| = {err:.4f}"
    # (L + 2 log 2)/2 on 200k fresh samples per side vs quadrature: MC se ≈ 0.002 nats, and a
    # near-optimal D under-estimates JS only slightly (L(D) ≤ L(D*)), so 0.01 nats.
    js_true = _js_quadrature()
    js = js_estimate(gan.value(*_draw(200_000, torch.Generator().manual_seed(1))))
    assert abs(js - js_true) < 0.01, f"JS estimate {js:.4f} vs quadrature {js_true:.4f} nats"


def test_value_at_d_one_half_is_minus_two_log_two():
    gan = _gan(LINE, hidden=8, layers=1)
    _constant_discriminator(gan, 0.0)  # D ≡ 1/2
    real, fake = _draw(100)
    assert gan.value(real, fake) == pytest.approx(-2 * math.log(2), abs=1e-6)
    assert js_estimate(gan.value(real, fake)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("logit", [0.0, -3.0, 2.5])
def test_train_step_reports_minimax_d_loss_and_non_saturating_g_loss(logit):
    """Constant D = σ(c): loss_d = softplus(−c) + softplus(c), loss_g = −log σ(c) = softplus(−c)
    (the saturating generator loss would be log(1 − σ(c)) = −softplus(c) instead)."""
    gan = _gan(LINE, hidden=8, layers=1, lr=1e-9, d_steps=2)  # tiny lr: D stays constant
    _constant_discriminator(gan, logit)
    out = gan.train_step(torch.randn(64, 1))
    sp = torch.nn.functional.softplus
    assert set(out) == {"loss_d", "loss_g", "value", "js"}
    c = torch.tensor(logit)
    assert out["loss_d"] == pytest.approx((sp(-c) + sp(c)).item(), abs=1e-5)
    assert out["loss_g"] == pytest.approx(sp(-c).item(), abs=1e-5)
    assert out["value"] == pytest.approx(-out["loss_d"])
    assert out["js"] == pytest.approx((out["value"] + 2 * math.log(2)) / 2)


def test_d_steps_discriminator_steps_per_generator_step():
    gan = _gan(LINE, hidden=8, layers=1, d_steps=3)
    gan.train_step(torch.randn(16, 1))
    assert gan.opt_d.state[gan.d_net[0].weight]["step"] == 3
    assert gan.opt_g.state[gan.g_net[0].weight]["step"] == 1


def test_collapse_is_a_measured_column_not_a_divergence():
    gan = _gan(LINE, hidden=8, layers=1)
    assert "non-finite" in gan.check_divergence({"loss_d": float("nan"), "loss_g": 1.0})
    assert gan.mode_collapsed() is False
    for _ in range(GAN.COLLAPSE_STEPS - 1):
        gan._track_collapse(GAN.COLLAPSE_LOSS_D / 10)
    gan._track_collapse(1.3)  # a healthy step resets the run
    for _ in range(GAN.COLLAPSE_STEPS - 1):
        gan._track_collapse(GAN.COLLAPSE_LOSS_D / 10)
    assert gan.mode_collapsed() is False
    low = {"loss_d": GAN.COLLAPSE_LOSS_D / 10, "loss_g": 9.0}
    gan._track_collapse(low["loss_d"])
    assert gan.mode_collapsed() is True
    assert gan.check_divergence(low) is None  # finite, moderate losses: not diverged
    state = gan.extra_state()
    fresh = _gan(LINE, hidden=8, layers=1)
    fresh.load_extra_state(state)
    assert fresh.mode_collapsed() is True


def test_a_gan_at_lr_1e3_is_diverged_by_the_one_rule():
    """Adam at lr = 1e3 on a 2-D GAN sends the weights, then the losses, far past LOSS_LIMIT (or to
    inf/NaN) within a few hundred steps; the base rule (same for every family) flags it."""
    from bench.families.base import LOSS_LIMIT

    torch.manual_seed(0)
    gan = _gan(DataSpec("p", (2,), "points"), hidden=32, layers=2, lr=1e3)
    x = torch.randn(256, 2)
    reasons, peak = [], 0.0
    for _ in range(300):
        losses = gan.train_step(x)
        peak = max(peak, *(abs(v) for v in losses.values() if math.isfinite(v)))
        reason = gan.check_divergence(losses)
        if reason is not None:
            reasons.append(reason)
            break
    assert reasons, f"not flagged; peak |loss| {peak:.3g}"
    assert "non-finite" in reasons[0] or "beyond" in reasons[0]
    assert gan.check_divergence({"loss_d": 2 * LOSS_LIMIT, "loss_g": 1.0}).startswith("loss beyond")
    assert gan.check_divergence({"loss_d": -2 * LOSS_LIMIT, "loss_g": 1.0}) is not None
    assert gan.check_divergence({"loss_d": 1.3, "loss_g": 0.7}) is None


def test_image_gan_trains_and_samples_in_range():
    torch.manual_seed(1)
    gan = _gan(IMG, width=8, latent=8)
    x = IMG.from_levels(torch.randint(0, IMG.levels, (16, *IMG.shape)))
    for _ in range(3):
        out = gan.train_step(x)
        assert all(math.isfinite(v) for v in out.values()), out
    s = gan.sample(5, torch.Generator().manual_seed(0))
    assert s.shape == (5, *IMG.shape) and s.dtype == torch.float32
    assert s.min() >= -1 and s.max() <= 1
    assert gan.nll(x) == {} and gan.nll_kind is None and not GAN.has_likelihood()
    with pytest.raises(ValueError, match="steps"):
        gan.sample(2, steps=5)


def test_hparams_unknown_key_and_bad_value_give_config_errors():
    with pytest.raises(ConfigError, match="unknown hyper-parameter 'd_step' for family 'gan'") as e:
        build(GAN.Hparams, {"d_step": 2}, owner="family 'gan'")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="betas"):
        build(GAN.Hparams, {"betas": [0.5, 1.5]}, owner="family 'gan'")


def test_gan_under_accelerate_with_two_optimizers():
    accelerate = pytest.importorskip("accelerate")
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)  # the state is a per-process singleton (library notes)
    try:
        torch.manual_seed(2)
        gan = _gan(DataSpec("p", (2,), "points"), hidden=16, layers=1)
        gan.attach(accelerate.Accelerator(cpu=True))
        assert set(gan.optimizers()) == {"opt_d", "opt_g"}
        out = gan.train_step(torch.randn(32, 2))
        assert all(math.isfinite(v) for v in out.values())
        assert gan.sample(3).shape == (3, 2)
    finally:
        AcceleratorState._reset_state(True)
