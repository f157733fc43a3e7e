"""A family is one module and one registry line: a family defined here, registered for this module
with one line, runs through every family-generic test of the suite without any test table naming it.

The generic tests are imported below and re-collected in this module; tests/conftest.py
parametrises them over `FAMILIES_UNDER_TEST`. The family is a diagonal Gaussian fitted by maximum
likelihood: an exact density on points, a dequantized one on images, like the flow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType

import pytest
import torch
from test_families_equal_terms import (  # noqa: F401
    test_ema_is_the_warmed_up_average_and_evaluation_swaps_it_in,
    test_every_family_has_the_same_ema_default,
    test_one_divergence_rule_for_every_family,
)
from test_families_smoke import (  # noqa: F401
    smoke_data,
    test_attached_training_equals_bare_pytorch_training,
    test_family_trains_and_samples,
)
from test_lifecycle import cells, test_resumed_trial_equals_the_uninterrupted_one_bit_for_bit  # noqa: F401
from test_metrics_integration import cache_dir, data, test_evaluate_real_family  # noqa: F401
from torch import nn

from bench.datasets.base import DataSpec
from bench.families import FAMILIES
from bench.families.base import CONTINUOUS_DENSITY, CommonHparams, Family


@dataclass
class GaussHparams(CommonHparams):
    lr: float = 1e-2  # Adam learning rate
    batch_size: int = 64  # examples per optimizer step (drawn by the trial loop)
    grad_clip: float = 0.0  # max global gradient norm; 0 disables clipping


class DiagonalGaussian(nn.Module):
    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(shape))
        self.log_std = nn.Parameter(torch.zeros(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x; mean, diag(std²)) in nats, (B, *shape) -> (B,)."""
        z = (x - self.mean) * torch.exp(-self.log_std)
        per_entry = -0.5 * z**2 - self.log_std - 0.5 * math.log(2 * math.pi)
        return per_entry.flatten(1).sum(1)


class Gauss(Family):
    Hparams = GaussHparams
    tiny_hparams = MappingProxyType({})
    nll_kinds = CONTINUOUS_DENSITY

    def __init__(self, spec: DataSpec, hparams: GaussHparams):
        super().__init__(spec, hparams)
        self.net = DiagonalGaussian(spec.shape)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=hparams.lr)

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        loss = self.dequantization_nats() - self.net(self.dequantize(x)).float().mean()
        self.opt.zero_grad(set_to_none=True)
        self.backward(loss / self.spec.dim)
        self.clip_gradients(self.opt, self.hp.grad_clip)
        self.opt.step()
        return {"loss": loss.item()}

    @torch.no_grad()
    def nll(self, x, generator=None, *, iwae_k=None) -> dict[str, torch.Tensor]:
        x = self.dequantize(x.to(self.device).float(), generator)
        return {self.nll_kind: self.dequantization_nats() - self.unwrapped(self.net)(x)}

    @torch.no_grad()
    def sample(self, n: int, generator=None, *, steps=None) -> torch.Tensor:
        if steps is not None:
            raise ValueError(f"a Gaussian samples in one pass; steps must be None, got {steps}")
        net = self.unwrapped(self.net)
        return self.to_data_range(net.mean + net.log_std.exp() * self.randn((n, *self.spec.shape), generator))


FAMILIES_UNDER_TEST = {"gauss-test": Gauss}  # what conftest parametrises this module's tests over


@pytest.fixture(autouse=True, scope="module")
def gauss_registered():
    with FAMILIES.registered("gauss-test", Gauss):  # the one registry line, for this module's tests
        yield


def test_the_family_is_registered_for_this_module_only():
    assert FAMILIES.get("gauss-test") is Gauss


def test_every_generic_test_is_collected_here(request):
    """Each family-generic test of the suite ran here over the new family (a generic test added
    elsewhere and not imported above fails this test)."""
    generic = {
        item.originalname
        for item in request.session.items
        if "family" in getattr(item, "fixturenames", ())
        and item.module.__name__ != __name__
        and getattr(item, "callspec", None) is not None
        and "family" in item.callspec.params
        and not any("family" in m.args[0] for m in item.iter_markers("parametrize"))
    }
    here = {item.originalname for item in request.session.items if item.module.__name__ == __name__}
    assert generic and generic <= here, sorted(generic - here)
