"""What every family shares, defined once in the base class: the `ema` hyper-parameter and its
weight average (swapped in for evaluation, carried by extra_state), and the divergence rule."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from bench.datasets.base import DataSpec
from bench.families import FAMILIES, make_family
from bench.families.base import EMA_DEFAULT, LOSS_LIMIT

PLANE = DataSpec("p", (2,), "points")


def test_every_family_has_the_same_ema_default():
    for name in FAMILIES.names():
        fields = {f.name: f.default for f in dataclasses.fields(FAMILIES.get(name).Hparams)}
        assert fields["ema"] == EMA_DEFAULT, name


@pytest.mark.families(baseline=False)  # the baselines have no parameters to average
def test_ema_is_the_warmed_up_average_and_evaluation_swaps_it_in(family):
    torch.manual_seed(0)
    model = make_family(family, PLANE, FAMILIES.get(family).tiny_hparams | {"batch_size": 32})
    x = torch.randn(32, 2)
    snapshots = []
    for _ in range(3):
        model.step(x)
        snapshots.append([p.detach().clone() for _, _, p in model._named_params()])
    # decay_n = min(ema, (1+n)/(10+n)): avg_0 = p_1, then avg_n = d_n avg_{n-1} + (1 − d_n) p_{n+1}
    d1, d2 = 2 / 11, 3 / 12
    want = [d2 * (d1 * a + (1 - d1) * b) + (1 - d2) * c for a, b, c in zip(*snapshots)]
    raw = snapshots[-1]
    assert model.weights_evaluated() == "ema"
    with model.evaluation_weights() as which:
        assert which == "ema"
        for (_, _, p), w in zip(model._named_params(), want):
            assert torch.allclose(p, w, atol=1e-6)
    for (_, _, p), r in zip(model._named_params(), raw):
        assert torch.equal(p, r)  # training weights restored
    # the average travels with the checkpoint hook
    fresh = make_family(family, PLANE, FAMILIES.get(family).tiny_hparams | {"batch_size": 32})
    for name, module in fresh.modules().items():
        module.load_state_dict(model.unwrapped(model.modules()[name]).state_dict())
    fresh.load_extra_state(model.extra_state())
    with fresh.evaluation_weights(), model.evaluation_weights():
        for (_, _, p), (_, _, q) in zip(fresh._named_params(), model._named_params()):
            assert torch.equal(p, q)


def test_ema_zero_evaluates_raw_weights():
    model = make_family("gan", PLANE, {"hidden": 16, "ema": 0.0})
    model.step(torch.randn(16, 2))
    with model.evaluation_weights() as which:
        assert which == "raw" and model.extra_state()["ema"] == {}


def test_one_divergence_rule_for_every_family(family):
    model = make_family(family, PLANE, FAMILIES.get(family).tiny_hparams)
    assert model.check_divergence({"loss": 1e3}) is None
    assert "non-finite" in model.check_divergence({"loss": float("inf")})
    assert "beyond" in model.check_divergence({"loss": -2 * LOSS_LIMIT})
