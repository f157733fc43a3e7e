"""Dataset registry. Adding a dataset: one class with an `Options` dataclass and one register line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.datasets.base import Dataset, DataSpec, Facts, OptionError
from bench.datasets.images import Digits, ImageFolder
from bench.datasets.stored import CIFAR10, MNIST, FashionMNIST
from bench.datasets.toy import Checkerboard, EightGaussians, Moons
from bench.hparams import build
from bench.registry import Registry

DATASETS: Registry[Dataset] = Registry("dataset", Dataset)
DATASETS.register("8gaussians", EightGaussians)
DATASETS.register("checkerboard", Checkerboard)
DATASETS.register("moons", Moons)
DATASETS.register("digits", Digits)
DATASETS.register("mnist", MNIST)
DATASETS.register("fashion-mnist", FashionMNIST)
DATASETS.register("cifar10", CIFAR10)
DATASETS.register("folder", ImageFolder)


def build_options(name: str, options: Mapping[str, Any] | None = None):
    """Checked loader options for dataset `name` (unknown keys raise ConfigError)."""
    return build(DATASETS.get(name).Options, options, owner=f"dataset {name!r}", noun="option")


def make_dataset(name: str, options: Any = None) -> Dataset:
    """Dataset `name` from its built Options (as a Cell carries them) or a plain mapping."""
    cls = DATASETS.get(name)
    return cls(options if isinstance(options, cls.Options) else build_options(name, options))


__all__ = ["DATASETS", "DataSpec", "Dataset", "Facts", "OptionError", "build_options", "make_dataset"]
