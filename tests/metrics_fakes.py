"""Small fake datasets and families with known answers, for the bench.metrics unit tests.

They implement the real `Dataset` / `Family` interfaces, so evaluate() sees exactly what a trial
gives it, but every quantity is analytic: Gaussian NLLs, known mode layouts, perfect samplers.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from bench.datasets.base import Dataset, DataSpec
from bench.families.base import Family


@dataclass
class NoOptions:
    pass


class RingPoints(Dataset):
    """K isotropic Gaussians N(c_k, std² I) on a circle of radius 3, equal weights, labels = k.

    Mode k sits at angle offset + 2πk/K; offset 0 with even K is symmetric under y -> -y, like
    8gaussians.
    """

    Options = NoOptions

    def __init__(
        self,
        k: int = 8,
        std: float = 0.1,
        n_train: int = 2000,
        n_test: int = 1000,
        seed: int = 0,
        offset: float = 0.0,
    ):
        super().__init__(NoOptions())
        angles = offset + torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
        self.modes = (3 * torch.stack([angles.cos(), angles.sin()], dim=1)).float()  # (K, 2)
        self.std = std
        g = torch.Generator().manual_seed(seed)
        self._train, _ = self.draw(n_train, g)
        self._test, self._test_y = self.draw(n_test, g)

    def draw(self, n: int, g: torch.Generator, modes: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        choices = torch.tensor(modes if modes is not None else list(range(len(self.modes))))
        y = choices[torch.randint(len(choices), (n,), generator=g)]
        return self.modes[y] + self.std * torch.randn(n, 2, generator=g), y

    @property
    def spec(self) -> DataSpec:
        return DataSpec(name="fake-ring", shape=(2,), kind="points")

    def train(self) -> torch.Tensor:
        return self._train

    def test(self) -> torch.Tensor:
        return self._test

    def test_labels(self) -> torch.Tensor:
        return self._test_y


class Bars(Dataset):
    """1×8×8 images, 17 levels, 4 classes: class k lights rows 2k and 2k+1, plus ±1-level noise."""

    Options = NoOptions
    LEVELS = 17

    def __init__(self, n_train: int = 400, n_test: int = 200, seed: int = 0, name: str = "fake-bars"):
        super().__init__(NoOptions())
        self.name = name
        g = torch.Generator().manual_seed(seed)
        self._train, self._train_y = self.draw(n_train, g)
        self._test, self._test_y = self.draw(n_test, g)

    def draw(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(4, (n,), generator=g)
        levels = torch.full((n, 1, 8, 8), 2)
        for k in range(4):
            levels[y == k, :, 2 * k : 2 * k + 2, :] = 14
        levels = (levels + torch.randint(-1, 2, levels.shape, generator=g)).clamp(0, self.LEVELS - 1)
        return self.spec.from_levels(levels), y

    @property
    def spec(self) -> DataSpec:
        return DataSpec(name=self.name, shape=(1, 8, 8), kind="image", levels=self.LEVELS)

    def train(self) -> torch.Tensor:
        return self._train

    def test(self) -> torch.Tensor:
        return self._test

    def train_labels(self) -> torch.Tensor:
        return self._train_y

    def test_labels(self) -> torch.Tensor:
        return self._test_y


@dataclass
class FakeHparams:
    batch_size: int = 16
    lr: float = 1e-3


class _FakeFamily(Family):
    """Shared plumbing: one parameter (so `device` works), no training."""

    Hparams = FakeHparams
    nll_kind = None

    def __init__(self, spec: DataSpec):
        super().__init__(spec, FakeHparams())
        self.net = nn.Linear(1, 1)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.1)

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        return {"loss": 0.0}


class GaussianFamily(_FakeFamily):
    """N(mean, std² I) with its exact NLL; imputes hidden entries with the mean."""

    nll_kind = "exact"

    def __init__(self, spec: DataSpec, mean: torch.Tensor, std: float):
        super().__init__(spec)
        self.mean, self.std = mean.float(), std

    def sample(self, n, generator=None, *, steps=None):
        if steps is not None:
            raise ValueError("one-shot")
        return self.mean + self.std * torch.randn(n, *self.spec.shape, generator=generator)

    def nll(self, x, generator=None, *, iwae_k=None):
        d = self.spec.dim
        sq = ((x - self.mean) ** 2).flatten(1).sum(1) / self.std**2
        return {"exact": 0.5 * sq + d * math.log(self.std) + 0.5 * d * math.log(2 * math.pi)}

    def impute(self, x, known, generator=None):
        return torch.where(known, x, self.mean.expand_as(x))


class DatasetSampler(_FakeFamily):
    """Draws from a dataset's own generator (a perfect model), optionally blurred or partial."""

    def __init__(self, data, blur: bool = False, modes: list[int] | None = None, seed: int = 123):
        super().__init__(data.spec)
        self.data, self.blur, self.modes_used = data, blur, modes
        self.g = torch.Generator().manual_seed(seed)

    def sample(self, n, generator=None, *, steps=None):
        x = self.data.draw(n, self.g, self.modes_used)[0] if self.modes_used else self.data.draw(n, self.g)[0]
        if self.blur:  # 3×3 box blur: the kind of softness the sharpness ratio must detect
            x = nn.functional.avg_pool2d(nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        return x


class SleepySampler(_FakeFamily):
    """sample(n) sleeps `per_batch` s (+ `first_extra` s on the first call, a warm-up cost); with
    `per_step`, an iterative sampler sleeping `per_step` s per step (default `T` steps)."""

    def __init__(
        self,
        spec: DataSpec,
        per_batch: float = 0.0,
        first_extra: float = 0.0,
        per_step: float = 0.0,
        T: int | None = None,
    ):
        super().__init__(spec)
        self.per_batch, self.first_extra, self.per_step, self.T = (
            per_batch,
            first_extra,
            per_step,
            T,
        )
        self.calls: list[tuple[int, int | None]] = []
        self.now = 0.0  # virtual clock: the nominal seconds slept so far (exact, unlike a loaded machine's)

    def clock(self) -> float:
        return self.now

    def sample(self, n, generator=None, *, steps=None):
        if steps is not None and self.T is None:
            raise ValueError("one-shot")
        steps = steps if steps is not None else self.T
        seconds = self.per_batch + (self.first_extra if not self.calls else 0.0) + self.per_step * (steps or 0)
        time.sleep(seconds)
        self.now += seconds
        self.calls.append((n, steps))
        return torch.zeros(n, *self.spec.shape)

    def sampling_steps(self):
        return self.T

    def nfe_per_sample(self, steps=None):
        return 1 if self.T is None else (steps if steps is not None else self.T)


class IWAEFamily(GaussianFamily):
    """A Gaussian whose nll() reports "iwae-K" (headline, K = the caller's iwae_k) and "elbo", like
    the VAE: NLL_K = exact NLL + 1/K nats, so tests see which K the evaluation passed."""

    nll_kind = "iwae"

    def nll(self, x, generator=None, *, iwae_k=None):
        exact = super().nll(x)["exact"]
        return {f"iwae-{iwae_k}": exact + 1 / iwae_k, "elbo": exact + 1.0}
