"""2-D toys: 8gaussians and checkerboard exactly as in FFJORD's toy data, and sklearn moons.

Every toy draws its split from a fixed `data_seed`, so every trial of a suite sees the same points;
train and test come from independent streams (changing `n_train` leaves the test set alone).
Points live in raw coordinates (model space = data space); NLLs are in nats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from bench.datasets.base import Dataset, DataSpec, Facts

_TRAIN, _TEST = 0, 1  # stream ids mixed into the seed of each split


def _seed(data_seed: int, stream: int) -> int:
    """An independent 32-bit seed per (data_seed, stream) pair (SeedSequence avoids overlaps)."""
    return int(np.random.SeedSequence([data_seed, stream]).generate_state(1)[0])


@dataclass
class ToyOptions:
    n_train: int = 50_000  # training points (a fixed set, the same for every family)
    n_test: int = 5_000  # held-out points for test NLL and sample metrics
    data_seed: int = 0  # fixes the split so every trial and every family sees the same points

    def validate(self) -> None:
        if self.n_train < 1 or self.n_test < 1:
            raise ValueError(f"n_train and n_test must be >= 1, got {self.n_train}, {self.n_test}")
        if self.data_seed < 0:
            raise ValueError(f"data_seed must be >= 0, got {self.data_seed}")


class _Toy(Dataset):
    """Shared caching; subclasses implement `_sample(n, rng) -> (points (n, 2), labels (n,))`."""

    Options = ToyOptions
    name = "toy"

    def __init__(self, options: ToyOptions):
        super().__init__(options)
        self._splits: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def facts(cls, options: ToyOptions) -> Facts:
        return Facts(kind="points", labels=True, n_test=options.n_test)

    @property
    def spec(self) -> DataSpec:
        return DataSpec(name=self.name, shape=(2,), kind="points")

    def _sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _split(self, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
        if stream not in self._splits:
            n = self.options.n_train if stream == _TRAIN else self.options.n_test
            rng = np.random.default_rng(_seed(self.options.data_seed, stream))
            x, y = self._sample(n, rng)
            self._splits[stream] = (
                torch.from_numpy(np.asarray(x, dtype=np.float32)),
                torch.from_numpy(np.asarray(y, dtype=np.int64)),
            )
        return self._splits[stream]

    def train(self) -> torch.Tensor:
        """(n_train, 2) float32."""
        return self._split(_TRAIN)[0]

    def test(self) -> torch.Tensor:
        """(n_test, 2) float32."""
        return self._split(_TEST)[0]

    def train_labels(self) -> torch.Tensor:
        """(n_train,) int64: the mixture component / square / moon each point came from."""
        return self._split(_TRAIN)[1]

    def test_labels(self) -> torch.Tensor:
        """(n_test,) int64: the mixture component / square / moon each test point came from."""
        return self._split(_TEST)[1]


class EightGaussians(_Toy):
    """FFJORD's 8gaussians: centre (unit circle, 8 directions) * 4 + 0.5·N(0, I), all / 1.414.

    So in model space it is an equal mixture of N(4·c_k / 1.414, (0.5 / 1.414)² I).
    """

    name = "8gaussians"
    SCALE = 4.0  # FFJORD's `scale`
    NOISE_STD = 0.5  # FFJORD's `randn * 0.5`
    SHRINK = 1.414  # FFJORD's final `dataset /= 1.414` (literally 1.414, not sqrt(2))
    MC_SAMPLES = 250_000  # std of -log p is ~1 nat, so the standard error is ~0.002 nats
    MC_SEED = 20_180_926  # fixed so true_nll_nats is reproducible; independent of data_seed

    def __init__(self, options: ToyOptions):
        super().__init__(options)
        self._true_nll: tuple[float, float] | None = None

    @staticmethod
    def _unit_centres() -> np.ndarray:
        r = 1.0 / np.sqrt(2.0)
        return np.array(
            [(1, 0), (-1, 0), (0, 1), (0, -1), (r, r), (r, -r), (-r, r), (-r, -r)], dtype=np.float64
        )  # FFJORD's order, so labels match its component index

    @property
    def modes(self) -> torch.Tensor:
        """(8, 2) float32: the component means in model space (for mode-coverage metrics)."""
        return torch.from_numpy(self._unit_centres() * self.SCALE / self.SHRINK).float()

    @property
    def mode_std(self) -> float:
        """Per-coordinate standard deviation of each component in model space."""
        return self.NOISE_STD / self.SHRINK

    def _sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        idx = rng.integers(0, 8, size=n)
        point = rng.standard_normal((n, 2)) * self.NOISE_STD + self._unit_centres()[idx] * self.SCALE
        return point / self.SHRINK, idx

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 2) -> (N,) exact log-density in nats of the scaled mixture (computed in float64)."""
        mu = torch.from_numpy(self._unit_centres() * self.SCALE / self.SHRINK)  # (8, 2)
        var = self.mode_std**2  # the 1/1.414 Jacobian is in this variance
        d2 = ((x.double()[:, None, :] - mu[None]) ** 2).sum(-1)  # (N, 8)
        log_comp = -d2 / (2 * var) - math.log(2 * math.pi * var)  # 2-D Gaussian log-density
        return (torch.logsumexp(log_comp, dim=1) - math.log(8)).to(x.dtype)

    def true_nll_nats(self) -> tuple[float, float]:
        """(entropy, standard error) in nats by Monte Carlo on MC_SAMPLES fresh points (≈ 2.831)."""
        if self._true_nll is None:
            rng = np.random.default_rng(self.MC_SEED)
            x, _ = self._sample(self.MC_SAMPLES, rng)
            nll = -self.log_density(torch.from_numpy(x))  # float64
            self._true_nll = (nll.mean().item(), nll.std().item() / math.sqrt(self.MC_SAMPLES))
        return self._true_nll


class Checkerboard(_Toy):
    """FFJORD's checkerboard: uniform on 8 squares of side 2 inside [-4, 4]², density 1/32."""

    name = "checkerboard"
    AREA = 32.0  # 8 squares of side 2

    def _sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        # FFJORD: x1 = rand*4-2; x2_ = rand - randint(0,2)*2; x2 = x2_ + floor(x1) % 2; cat * 2
        x1 = rng.random(n) * 4 - 2
        x2_ = rng.random(n) - rng.integers(0, 2, size=n) * 2
        x2 = x2_ + np.floor(x1) % 2
        x = np.stack([x1, x2], axis=1) * 2
        # label = which of the 8 squares (column 0..3, lower/upper) — for coverage metrics
        labels = (np.floor(x1) + 2) * 2 + (x2_ >= 0)
        return x, labels

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 2) -> (N,): -ln 32 on the 8 black squares, -inf elsewhere."""
        u = torch.floor(x.double() / 2)  # unit-square indices in FFJORD's unscaled coordinates
        inside = ((u >= -2) & (u <= 1)).all(dim=1)  # x in [-4, 4)^2
        black = torch.remainder(u[:, 0] + u[:, 1], 2) == 0  # floor(x1)+floor(x2) even on the support
        out = torch.full(x.shape[:1], -math.inf, dtype=torch.float64)
        out[inside & black] = -math.log(self.AREA)
        return out.to(x.dtype)

    def true_nll_nats(self) -> tuple[float, float]:
        """Exactly ln 32 (uniform density 1/32), standard error 0."""
        return math.log(self.AREA), 0.0


@dataclass
class MoonsOptions(ToyOptions):
    noise: float = 0.05  # std of the Gaussian noise sklearn adds to both half circles

    def validate(self) -> None:
        super().validate()
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")


class Moons(_Toy):
    """sklearn's two interleaving half circles; unknown density (log_density, true NLL: None)."""

    Options = MoonsOptions
    name = "moons"

    def _sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        state = np.random.RandomState(rng.integers(0, 2**32 - 1))  # sklearn wants a RandomState
        from sklearn.datasets import make_moons  # here: scikit-learn costs ~0.5 s to import, only moons needs it

        return make_moons(n_samples=n, noise=self.options.noise, random_state=state)
