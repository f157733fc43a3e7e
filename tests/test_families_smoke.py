"""Every registered family trains a few steps on 8gaussians and digits and samples correctly."""

from __future__ import annotations

import math

import pytest
import torch

from bench.datasets import DATASETS, make_dataset
from bench.errors import ConfigError
from bench.families import FAMILIES, build_hparams, make_family

# Tiny networks so that four families × two datasets stay within a few seconds on 2 CPUs.
TINY = {
    "gan": {"hidden": 32, "width": 8},
    "vae": {"hidden": 32, "width": 8},
    "flow": {"coupling_layers": 2, "hidden": 32, "width": 8, "blocks": 1},
    "ddpm": {"hidden": 32, "width": 8, "timesteps": 20},
}


@pytest.fixture(scope="module")
def data():
    return {
        name: make_dataset(name, {"n_train": 512, "n_test": 128} if name == "8gaussians" else None)
        for name in ("8gaussians", "digits")
    }


@pytest.mark.parametrize("dataset", ["8gaussians", "digits"])
@pytest.mark.parametrize("family", ["gan", "vae", "flow", "ddpm"])
def test_family_trains_and_samples(family, dataset, data):
    torch.manual_seed(0)
    ds = data[dataset]
    model = make_family(family, ds.spec, TINY[family] | {"batch_size": 16})
    x = ds.train()[:16]
    for _ in range(3):
        losses = model.train_step(x)
        assert losses and all(math.isfinite(v) for v in losses.values()), losses
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        s = model.sample(7, generator=g)
    assert s.shape == (7, *ds.spec.shape)
    assert s.dtype == x.dtype == torch.float32
    assert torch.isfinite(s).all()
    if ds.spec.is_image:  # images live on [-1, 1]
        assert s.min() >= -1 and s.max() <= 1
    with torch.no_grad():
        nll = model.nll(ds.test()[:5], generator=g)
    if model.nll_kind is None:
        assert nll == {}  # no likelihood: no number, never a fake one
    else:
        label, values = next(iter(nll.items()))
        assert label.startswith(model.nll_kind)
        assert values.shape == (5,) and torch.isfinite(values).all()


def test_registries_hold_the_four_families_and_the_datasets():
    assert FAMILIES.names() == ["ddpm", "flow", "gan", "vae"]
    assert {"8gaussians", "checkerboard", "moons", "digits", "mnist", "cifar10", "folder"} <= set(DATASETS.names())


def test_unknown_family_dataset_and_hparam_give_one_clear_error():
    with pytest.raises(ConfigError, match="unknown family 'gann'") as e:
        FAMILIES.get("gann")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="unknown dataset '9gaussians'"):
        make_dataset("9gaussians")
    with pytest.raises(ConfigError, match=r"unknown hyper-parameter 'coupling_layer' for family 'flow'") as e:
        build_hparams("flow", {"coupling_layer": 4})
    assert "\n" not in str(e.value)
