"""The `copy` and `gmm` baseline families: their semantics, the GMM's NLL against scipy, and both
running as suite cells like any other family."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from tiny_suite import write_suite

from bench.datasets import make_dataset
from bench.datasets.base import DataSpec
from bench.families import make_family
from bench.suite import load_suite
from bench.trial.run import run_trial

PLANE = DataSpec("p", (2,), "points")
IMG = DataSpec("t", (1, 4, 4), "image", levels=17)


def test_copy_samples_only_memorised_examples_from_a_ring_buffer():
    torch.manual_seed(0)
    copy = make_family("copy", PLANE, {"capacity": 5, "batch_size": 3})
    with pytest.raises(RuntimeError, match="empty"):
        copy.sample(2)
    batches = [torch.full((3, 2), float(i)) for i in range(3)]  # 9 examples into 5 slots
    for b in batches:
        assert copy.step(b) == {"loss": 0.0}
    kept = {float(v) for v in copy.bank.examples()[:, 0]}
    assert kept == {1.0, 2.0} and copy.bank.size == 5  # the 5 most recent: one 1 was overwritten
    s = copy.sample(200, torch.Generator().manual_seed(1))
    assert s.shape == (200, 2) and set(s[:, 0].tolist()) <= kept
    assert copy.weights_evaluated() == "raw" and copy.param_count() == 0  # nothing to average


def test_bad_baseline_hparams_are_config_errors():
    from bench.errors import ConfigError

    for family, hp in (("gmm", {"components": 300}), ("gmm", {"covariance": "banded"}), ("copy", {"capacity": 0})):
        with pytest.raises(ConfigError):
            make_family(family, PLANE, hp)


def test_gmm_nll_is_the_exact_mixture_density_and_samples_follow_it():
    ds = make_dataset("8gaussians", {"n_train": 5_000, "n_test": 1_000})
    torch.manual_seed(0)
    gmm = make_family("gmm", ds.spec, {"components": 8})
    train = ds.train()
    for _ in range(40):
        gmm.step(train[torch.randint(len(train), (256,))])
    m = gmm.mixture
    x = ds.test()[:300]
    # reference: scipy's multivariate normal densities of the stored parameters
    dens = sum(
        w * stats.multivariate_normal(mu, cov).pdf(x.double().numpy())
        for w, mu, cov in zip(m.weights.numpy(), m.means.numpy(), m.covariances.numpy())
    )
    assert torch.allclose(gmm.nll(x)["exact"].double(), torch.from_numpy(-np.log(dens)), atol=1e-4)
    # 8 well-separated modes: EM finds them and its NLL is close to the truth (≈ 2.83 nats)
    gap = (gmm.nll(ds.test())["exact"].double() + ds.log_density(ds.test()).double()).mean().item()
    assert abs(gap) < 0.05, gap
    s = gmm.sample(20_000, torch.Generator().manual_seed(2)).double()
    assert torch.allclose(s.mean(0), (m.weights[:, None] * m.means).sum(0), atol=0.05)
    # state round trip: a fresh GMM loaded from the buffers scores identically
    fresh = make_family("gmm", ds.spec, {"components": 8})
    for name, module in fresh.modules().items():
        module.load_state_dict(gmm.state_dict()[name])
    assert torch.equal(fresh.nll(x)["exact"], gmm.nll(x)["exact"])


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical", "tied"])
def test_gmm_on_images_is_a_dequantized_bound_in_range(covariance):
    torch.manual_seed(0)
    gmm = make_family("gmm", IMG, {"components": 2, "covariance": covariance, "batch_size": 32})
    x = IMG.from_levels(torch.randint(0, 17, (64, *IMG.shape)))
    for _ in range(3):
        assert math.isfinite(gmm.step(x)["loss"])
    nll = gmm.nll(x[:5], torch.Generator().manual_seed(0))
    assert list(nll) == ["dequantized"] and gmm.nll_kind == "dequantized" and torch.isfinite(nll["dequantized"]).all()
    s = gmm.sample(7, torch.Generator().manual_seed(0))
    assert s.shape == (7, *IMG.shape) and s.min() >= -1 and s.max() <= 1


# this test's evaluation: 300 samples and real examples (checked as n_fake = n_real below), 200 NLL examples
EVAL = {
    "n_samples": 300,
    "n_real": 300,
    "speed_batches": [100],
    "speed_repeats": 2,
    "nll_examples": 200,
    "nll_batch": None,
    "kid_subset_size": 100,
    "kid_subsets": 3,
    "impute_examples": 20,
    "classifier_steps": None,
}


def test_baselines_run_as_suite_cells(tmp_path):
    toy = {"name": "8gaussians", "options": {"n_train": 2000, "n_test": 400}}
    models = [{"family": "copy"}, {"family": "gmm"}]
    path = write_suite(tmp_path, "baselines", datasets=[toy], models=models, steps=15, eval=EVAL)
    rows = {cell.family: run_trial(cell, results_dir=tmp_path / "results") for cell in load_suite(path).cells()}
    for family, row in rows.items():
        assert row["status"] == "ok", (family, row["error"])
        assert row["n_fake"] == row["n_real"] == 300 and row["weights_evaluated"] == "raw"
        assert row["samples_per_s"] > 0 and row["samples_per_cpu_s"] > 0
    copy, gmm = rows["copy"], rows["gmm"]
    assert copy["copy_fraction"] >= 0.9 and copy["nll_kind"] == "none" and math.isnan(copy["nll"])
    assert gmm["nll_kind"] == "exact" and gmm["copy_fraction"] < 0.3
    assert abs(gmm["nll_gap_nats"]) < 0.15 and gmm["density_mass"] == pytest.approx(1.0, abs=0.01)
