"""bench.families.likelihood against closed forms: the discretized Gaussian is a distribution over the levels."""

from __future__ import annotations

import math

import pytest
import torch

from bench.families.likelihood import discretized_gaussian_log_likelihood, gaussian_log_prob, normal_kl


@pytest.mark.parametrize("levels", [2, 17, 256])
def test_discretized_gaussian_probabilities_sum_to_one_over_levels(levels):
    bin_width = 2.0 / (levels - 1)
    grid = torch.linspace(-1, 1, levels, dtype=torch.float64)  # every level, (L,)
    g = torch.Generator().manual_seed(0)
    # means inside, at the edge of and outside [-1, 1]; stds from far below to far above a bin
    rand = torch.rand(2, 40, generator=g, dtype=torch.float64)
    mean = torch.cat([rand[0] * 3 - 1.5, torch.tensor([-1.0, 1.0, 0.0], dtype=torch.float64)])
    log_std = torch.cat([rand[1] * 8 - 6, torch.tensor([-7.0, -7.0, 1.0], dtype=torch.float64)])
    lp = discretized_gaussian_log_likelihood(grid[:, None], mean[None], log_std[None], bin_width)  # (L, M)
    assert torch.isfinite(lp).all() and (lp <= 1e-12).all()
    total = lp.exp().sum(0)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-5), total


def test_discretized_gaussian_matches_cdf_differences():
    """Interior level: Φ((x+Δ/2−μ)/σ) − Φ((x−Δ/2−μ)/σ); lowest level: Φ((x+Δ/2−μ)/σ); highest: 1 − Φ(...)."""
    bin_width = 2.0 / 16  # 17 levels
    normal = torch.distributions.Normal(torch.tensor(0.1, dtype=torch.float64), torch.tensor(0.3, dtype=torch.float64))
    x = torch.tensor([-1.0, -0.25, 0.125, 1.0], dtype=torch.float64)
    lp = discretized_gaussian_log_likelihood(x, torch.full_like(x, 0.1), torch.full_like(x, math.log(0.3)), bin_width)
    h = bin_width / 2
    expect = torch.stack(
        [
            normal.cdf(x[0] + h),
            normal.cdf(x[1] + h) - normal.cdf(x[1] - h),
            normal.cdf(x[2] + h) - normal.cdf(x[2] - h),
            1 - normal.cdf(x[3] - h),
        ]
    )
    assert torch.allclose(lp.exp(), expect, atol=1e-7)


def test_gaussian_log_prob_and_kl_closed_forms():
    x, m, s = torch.tensor(0.7), torch.tensor(0.2), torch.tensor(1.5)
    expect = torch.distributions.Normal(m, s).log_prob(x)
    assert torch.allclose(gaussian_log_prob(x, m, s.log()), expect)
    m1, v1, m2, v2 = 0.3, 0.5, -0.2, 2.0  # KL(N(m1,v1)‖N(m2,v2)) = ½(log v2/v1 + v1/v2 + (m1−m2)²/v2 − 1)
    kl = normal_kl(torch.tensor(m1), torch.tensor(math.log(v1)), torch.tensor(m2), torch.tensor(math.log(v2)))
    assert math.isclose(kl.item(), 0.5 * (math.log(v2 / v1) + v1 / v2 + (m1 - m2) ** 2 / v2 - 1), rel_tol=1e-6)
