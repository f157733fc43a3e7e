"""Every registered family trains a few steps on 8gaussians and digits and samples correctly."""

from __future__ import annotations

import math

import pytest
import torch

from bench.datasets import DATASETS, make_dataset
from bench.errors import ConfigError
from bench.families import FAMILIES, build_hparams, make_family


def tiny(family: str) -> dict:
    """The family's own tiny networks: every family × two datasets within a few seconds on 2 CPUs."""
    return dict(FAMILIES.get(family).tiny_hparams)


@pytest.fixture(scope="module")
def smoke_data():
    return {
        name: make_dataset(name, {"n_train": 512, "n_test": 128} if name == "8gaussians" else None)
        for name in ("8gaussians", "digits")
    }


@pytest.mark.parametrize("dataset", ["8gaussians", "digits"])
def test_family_trains_and_samples(family, dataset, smoke_data):
    torch.manual_seed(0)
    ds = smoke_data[dataset]
    model = make_family(family, ds.spec, tiny(family) | {"batch_size": 16})
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
        nll = model.nll(ds.test()[:5], generator=g, iwae_k=4)
    if model.nll_kind is None:
        assert nll == {}  # no likelihood: no number, never a fake one
    else:
        label, values = next(iter(nll.items()))
        assert label.startswith(model.nll_kind)
        assert values.shape == (5,) and torch.isfinite(values).all()


def test_registries_hold_the_families_baselines_and_the_datasets():
    assert {"gan", "vae", "flow", "ddpm", "copy", "gmm"} <= set(FAMILIES.names())  # the lecture's four, two baselines
    assert [n for n in FAMILIES.names() if FAMILIES.get(n).baseline] == ["copy", "gmm"]
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


def _trained_parameters(family, ds, accelerator=None, after_attach=lambda: None, steps=4):
    """Parameters after `steps` train steps on fixed batches, seeded identically every call."""
    torch.manual_seed(0)
    model = make_family(family, ds.spec, tiny(family) | {"batch_size": 16, "grad_clip": 0.5})
    if accelerator is not None:
        model.attach(accelerator)
        after_attach()
    model.train(True)
    g = torch.Generator().manual_seed(1)
    data = ds.train()
    for _ in range(steps):
        model.train_step(data[torch.randint(len(data), (16,), generator=g)])
    return model, [p.detach().clone() for m in model.modules().values() for p in m.parameters()]


@pytest.mark.parametrize("scaler", [False, True], ids=["no-scaler", "loss-scaler"])
@pytest.mark.families(baseline=False)
def test_attached_training_equals_bare_pytorch_training(family, scaler, smoke_data, monkeypatch):
    """Accelerate changes where and in what precision a family trains, never what it computes.

    Without a loss scaler the optimizers are the bare ones (no per-step wrapper cost). With one (fp16
    on CUDA) they stay Accelerate's: the loss is scaled, each optimizer's gradients are unscaled
    before clipping, and the scaler steps. On CPU that state is built by hand, without fp16 autocast,
    and a power-of-two scale keeps the fp32 arithmetic exact, so the parameters must match bit for bit.
    """
    from accelerate import Accelerator
    from accelerate.optimizer import AcceleratedOptimizer
    from accelerate.state import AcceleratorState

    ds = smoke_data["8gaussians"]
    _, bare = _trained_parameters(family, ds)
    AcceleratorState._reset_state(reset_partial_state=True)
    accelerator = Accelerator(cpu=True)

    def fp16_scaler_state():  # after prepare(), so that forward is not wrapped in fp16 autocast
        accelerator.native_amp = True
        monkeypatch.setattr(Accelerator, "mixed_precision", property(lambda self: "fp16"))

    if scaler:
        accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    model, attached = _trained_parameters(family, ds, accelerator, fp16_scaler_state if scaler else lambda: None)
    wrapped = [isinstance(opt, AcceleratedOptimizer) for opt in model.optimizers().values()]
    assert wrapped == [scaler] * len(wrapped)
    if scaler:
        assert accelerator.scaler.get_scale() == 2.0**10  # no step was skipped as overflowing
    assert len(bare) == len(attached)
    for b, a in zip(bare, attached):
        assert torch.equal(b, a)
