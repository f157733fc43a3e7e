"""Known-answer sample sets made from a suite's own data: what each control feeds the measures.

Every set has the suite's n examples (`bench.metrics.reference.compared_count`) and is drawn from a
seeded generator, so a control is reproducible and differs from seed to seed like a trial does.

Points (a toy with a fixed mixture, such as 8gaussians; its `modes` and `mode_std` say where the
components sit): true samples are fresh draws from the density (an independent split of the same
toy); the effects are one of the modes dropped, every component widened (std × 1.2), a single
Gaussian with the data's mean and covariance, and memorised training points.
Images: real images stand in for a perfect sampler (training images for the quality measures,
which compare with the test images; the test images themselves for memorisation, which compares
with the training set); the effects are a 3×3 binomial blur, additive N(0, 0.3²) noise, 30 %
exact training copies and training copies plus small noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.datasets import make_dataset

WIDEN = 1.2  # std × 1.2: every component wider
COPY_SHARE = 0.3  # 30 % exact training copies among fresh samples
# copies plus noise at half the training set's nearest-neighbour spacing: still closer to their
# original than any unseen point is. (A fixed N(0, 0.05²) is not a copy at the quick suite's 20 000
# points: their median spacing is 0.012, so such a "copy" sits 5× farther than an unseen point.)
POINT_COPY_SPACING = 0.5
IMAGE_NOISE = 0.3  # additive N(0, 0.3²) on [-1, 1] images, clamped
IMAGE_COPY_NOISE = 0.05  # training copies plus N(0, 0.05²): about a third of one of 17 digits levels
BINOMIAL = torch.tensor([1.0, 2.0, 1.0]) / 4.0  # 3×3 binomial blur = this ⊗ this


@dataclass(frozen=True)
class ControlSet:
    """One control: a name, the sample set it makes, and whether it carries an effect at all."""

    name: str
    make: Callable[[object, int, torch.Generator], torch.Tensor]  # (dataset, n, generator) -> (n, *shape)
    effect: bool  # False: a stand-in for a perfect sampler (measures must read "no effect")
    needs_modes: bool = False  # made from the mixture's components (`modes`): 8gaussians, not moons

    def usable(self, dataset) -> bool:
        return not self.needs_modes or getattr(dataset, "modes", None) is not None


def _fresh_toy(dataset, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n fresh draws of the same toy (an independent split) and their component labels."""
    seed = int(torch.randint(1, 2**31 - 1, (1,), generator=g))
    options = {"n_train": 1, "n_test": n, "data_seed": seed}
    fresh = make_dataset(dataset.spec.name, {**vars(dataset.options), **options})
    return fresh.test(), fresh.test_labels()


def _pick(x: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    return x[torch.randperm(len(x), generator=g)[:n]]


def true_points(dataset, n: int, g: torch.Generator) -> torch.Tensor:
    return _fresh_toy(dataset, n, g)[0]


def dropped_mode(dataset, n: int, g: torch.Generator) -> torch.Tensor:
    """Fresh draws with component 0 removed (the other seven take its share)."""
    x, labels = _fresh_toy(dataset, 2 * n, g)
    return x[labels != 0][:n]


def widened(dataset, n: int, g: torch.Generator) -> torch.Tensor:
    """Every draw pushed away from its component's mean: std × WIDEN."""
    x, labels = _fresh_toy(dataset, n, g)
    centres = dataset.modes[labels]
    return centres + WIDEN * (x - centres)


def one_gaussian(dataset, n: int, g: torch.Generator) -> torch.Tensor:
    """A single Gaussian with the training data's mean and covariance (FID cannot tell it apart)."""
    train = dataset.train().double()
    mean, cov = train.mean(0), torch.cov(train.T)
    z = torch.randn(n, train.shape[1], generator=g, dtype=torch.float64)
    return (mean + z @ torch.linalg.cholesky(cov).T).float()


def memorised(dataset, n: int, g: torch.Generator) -> torch.Tensor:
    """n training examples drawn without replacement: every sample is a copy."""
    return _pick(dataset.train(), n, g)


def _with_copies(fresh: torch.Tensor, train: torch.Tensor, g: torch.Generator, noise: float) -> torch.Tensor:
    k = math.ceil(COPY_SHARE * len(fresh))
    copies = _pick(train, k, g)
    if noise:
        copies = copies + noise * torch.randn(copies.shape, generator=g)
    out = torch.cat([copies, fresh[k:]])
    return out[torch.randperm(len(out), generator=g)]


def point_copies(dataset, n: int, g: torch.Generator) -> torch.Tensor:
    return _with_copies(true_points(dataset, n, g), dataset.train(), g, 0.0)


def point_noisy_copies(dataset, n: int, g: torch.Generator) -> torch.Tensor:
    train = dataset.train()
    return _with_copies(true_points(dataset, n, g), train, g, POINT_COPY_SPACING * nn_spacing(train))


def nn_spacing(x: torch.Tensor, probes: int = 1000) -> float:
    """Median distance from a training point to its nearest other training point (per coordinate)."""
    probe = x[:probes]
    d = torch.cdist(probe.double(), x.double())
    d[torch.arange(len(probe)), torch.arange(len(probe))] = math.inf
    return d.min(dim=1).values.median().item() / math.sqrt(x.shape[1])


def train_images(dataset, n: int, g: torch.Generator) -> torch.Tensor:
    """Real images of the training split: a perfect sampler as far as the test images can tell."""
    return _pick(dataset.train(), n, g)


def test_images(dataset, n: int, g: torch.Generator) -> torch.Tensor:
    """The test images: real, and never seen in training (memorisation's null)."""
    return _pick(dataset.test(), n, g)


def blurred(dataset, n: int, g: torch.Generator) -> torch.Tensor:
    x = train_images(dataset, n, g)
    c = x.shape[1]
    kernel = torch.outer(BINOMIAL, BINOMIAL).to(x.dtype).expand(c, 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=c)


def noisy(dataset, n: int, g: torch.Generator) -> torch.Tensor:
    x = train_images(dataset, n, g)
    return (x + IMAGE_NOISE * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def image_copies(dataset, n: int, g: torch.Generator) -> torch.Tensor:
    return _with_copies(test_images(dataset, n, g), dataset.train(), g, 0.0)


def image_noisy_copies(dataset, n: int, g: torch.Generator) -> torch.Tensor:
    return _with_copies(test_images(dataset, n, g), dataset.train(), g, IMAGE_COPY_NOISE).clamp(-1, 1)


POINT_SETS = (
    ControlSet("true samples", true_points, effect=False),
    ControlSet("one of 8 modes dropped", dropped_mode, effect=True),
    ControlSet("std x 1.2", widened, effect=True, needs_modes=True),
    ControlSet("one Gaussian with the data's moments", one_gaussian, effect=True),
    ControlSet("memorised training points", memorised, effect=True),
    ControlSet("30% training copies", point_copies, effect=True),
    ControlSet("30% copies + noise (half the NN spacing)", point_noisy_copies, effect=True),
)
IMAGE_SETS = (
    ControlSet("real images (training split)", train_images, effect=False),
    ControlSet("real test images", test_images, effect=False),
    ControlSet("3x3 binomial blur", blurred, effect=True),
    ControlSet("noise N(0, 0.3^2)", noisy, effect=True),
    ControlSet("30% training copies", image_copies, effect=True),
    ControlSet("copies + N(0, 0.05^2)", image_noisy_copies, effect=True),
)
