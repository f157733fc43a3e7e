"""Classifier two-sample test and copy_fraction on 8gaussians, where the answers are known: a
single Gaussian with the data's mean and covariance fools the Fréchet distance but not C2ST or mode
coverage; copies of training points are copies, independent draws are not (≈ 1/9 by chance in 2-D).
"""

from __future__ import annotations

import math

import pytest
import torch

from bench.datasets import make_dataset
from bench.families import make_family
from bench.metrics import EvalConfig, evaluate, fidelity, quality
from bench.metrics.twosample import c2st_accuracy, copy_fraction

N = 1000


@pytest.fixture(scope="module")
def gaussians():
    return make_dataset("8gaussians", {"n_train": 20_000, "n_test": 2_000})


def single_gaussian(x: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n draws of N(mean(x), cov(x)): the data's first two moments, none of its modes."""
    mvn = torch.distributions.MultivariateNormal(x.double().mean(0), torch.cov(x.double().T))
    torch.manual_seed(seed)
    return mvn.sample((n,)).float()


def test_single_gaussian_loses_to_a_perfect_sampler_on_c2st_and_modes_but_not_on_fid(gaussians):
    real = gaussians.test()[:N]
    perfect = gaussians.train()[:N]  # i.i.d. draws of the data distribution, independent of the test set
    blob = single_gaussian(gaussians.train(), N, seed=0)
    c2st_perfect, c2st_blob = c2st_accuracy(real, perfect, seed=0), c2st_accuracy(real, blob, seed=0)
    # 2 000 held-out predictions: chance accuracy has sd ≈ 0.011
    assert abs(c2st_perfect - 0.5) < 0.05, c2st_perfect
    assert c2st_blob > 0.7 and c2st_blob > c2st_perfect + 0.2, (c2st_blob, c2st_perfect)
    centres = gaussians.modes
    assert quality.point_mode_coverage(perfect, real, centres)["mode_coverage"] == pytest.approx(1.0)
    # the blob's share near each mode sits just under the half-share bar n/16, so at most one mode
    # scrapes over it by chance (measured: 0 or 1/8 over seeds)
    assert quality.point_mode_coverage(blob, real, centres)["mode_coverage"] <= 0.125
    # the reason for the test: FID on raw 2-D coordinates compares two Gaussians and cannot see modes
    fd = {
        name: fidelity.frechet_distance(fidelity.fd_statistics(x), fidelity.fd_statistics(real))
        for name, x in (("perfect", perfect), ("blob", blob))
    }
    assert fd["blob"] < 3 * fd["perfect"] + 0.05, fd  # the blob is not worse on FID


def test_c2st_extremes_and_determinism():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 3, generator=g), torch.randn(400, 3, generator=g)
    far = b + 100.0
    assert c2st_accuracy(a, far) == 1.0
    assert c2st_accuracy(a, b, seed=3) == c2st_accuracy(a, b, seed=3)  # seeded split, no training noise
    assert abs(c2st_accuracy(a, b) - 0.5) < 0.08
    assert math.isnan(c2st_accuracy(a[:3], b[:3]))  # too few examples for 2 folds


def test_copy_fraction_of_copies_is_one_and_of_fresh_points_about_one_ninth(gaussians):
    train = gaussians.train()
    assert copy_fraction(train[torch.randperm(len(train))[:N]], train) == 1.0
    fresh = copy_fraction(gaussians.test()[:N], train)  # Poisson-like points: P(d1 < d2/3) = 1/9 in 2-D
    assert 1 / 9 - 0.04 < fresh < 1 / 9 + 0.04, fresh
    # duplicates in the training set: an exact copy of a duplicated point is still a copy
    dup = torch.cat([train[:50], train[:50]])
    assert copy_fraction(train[:50], dup) == 1.0


def _evaluate(family, ds, tmp_path):
    cfg = EvalConfig(
        n_samples=600,
        n_real=600,
        sample_batch=300,
        speed_batches=(300,),
        speed_repeats=1,
        nll_examples=200,
        impute=False,
    )
    cfg.kid_subset_size, cfg.kid_subsets = 300, 5
    return evaluate(family, ds, cfg, cache_dir=tmp_path / "cache", out_dir=None, seed=0)


def test_copy_baseline_is_flagged_and_a_trained_gan_is_not(tmp_path):
    ds = make_dataset("8gaussians", {"n_train": 5_000, "n_test": 1_000})
    torch.manual_seed(0)
    copy = make_family("copy", ds.spec, {"batch_size": 256})
    gan = make_family("gan", ds.spec, {"hidden": 64, "layers": 2, "lr": 1e-3})
    train = ds.train()
    for step in range(400):
        batch = train[torch.randint(len(train), (256,))]
        gan.step(batch)
        if step < 20:
            copy.step(batch)
    rows = {name: _evaluate(f, ds, tmp_path) for name, f in (("copy", copy), ("gan", gan))}
    assert rows["copy"]["copy_fraction"] >= 0.9
    assert rows["gan"]["copy_fraction"] < 0.3, rows["gan"]["copy_fraction"]  # ~1/9 by chance
    assert rows["copy"]["n_fake"] == rows["copy"]["n_real"] == 600
    assert abs(rows["copy"]["c2st_accuracy"] - 0.5) < 0.06  # copies of the training set: indistinguishable


def test_the_c2st_auc_is_sklearns_roc_auc_with_ties():
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from bench.metrics.twosample import _auc

    rng = np.random.default_rng(0)
    for _ in range(5):
        y, score = rng.integers(0, 2, 300), rng.integers(0, 7, 300) / 7  # k-NN votes: many ties
        assert _auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
