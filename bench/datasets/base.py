"""The shared dataset interface.

Conventions (the whole package relies on them):
- Every dataset yields float32 tensors of shape (N, *spec.shape) in *model space*.
- Point clouds ("points") are unscaled coordinates; their NLL unit is nats.
- Images ("image") have `levels` discrete intensities per channel, mapped to model space as
  x = level / (levels - 1) * 2 - 1, a grid on [-1, 1] with bin width Δ = 2 / (levels - 1).
  Their NLL unit is bits/dim of the discrete data; `to_levels` maps model space back to integers.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from bench.errors import ConfigError

Kind = Literal["points", "image"]


@dataclass(frozen=True)
class DataSpec:
    """What a family needs to know about its data to build networks and likelihoods."""

    name: str
    shape: tuple[int, ...]  # per-example shape: (2,) for points, (C, H, W) for images
    kind: Kind
    levels: int | None = None  # discrete intensity levels per channel (images only)

    @property
    def dim(self) -> int:
        """D, the number of scalar dimensions per example."""
        return math.prod(self.shape)

    @property
    def is_image(self) -> bool:
        return self.kind == "image"

    @property
    def bin_width(self) -> float | None:
        """Δ, the model-space width of one intensity level (images only)."""
        return None if self.levels is None else 2.0 / (self.levels - 1)

    @property
    def nll_unit(self) -> str:
        return "bits_per_dim" if self.is_image else "nats"

    def to_levels(self, x: torch.Tensor) -> torch.Tensor:
        """Model-space images -> integer levels (uint8 when levels <= 256), clamped to range."""
        assert self.levels is not None, f"{self.name} is not an image dataset"
        q = torch.round((x.clamp(-1, 1) + 1) / 2 * (self.levels - 1))
        return q.to(torch.uint8 if self.levels <= 256 else torch.int32)

    def from_levels(self, q: torch.Tensor) -> torch.Tensor:
        assert self.levels is not None, f"{self.name} is not an image dataset"
        return q.float() / (self.levels - 1) * 2 - 1


@dataclass(frozen=True)
class Facts:
    """What validation needs to know about a dataset before any trial loads it."""

    kind: Kind  # points or image: decides what "auto" feature extractor means
    labels: bool  # train_labels() returns labels (the classifier feature extractor trains on them)
    n_test: int  # test examples (the metrics' real side is capped at this)


class OptionError(ConfigError):
    """A dataset option that cannot work (a root without the expected files); names the option."""

    def __init__(self, option: str, message: str):
        super().__init__(message)
        self.option = option


class Dataset(ABC):
    """A fixed train/test split in model space. Constructed from a typed `Options` dataclass."""

    Options: ClassVar[type]  # dataclass of loader options (root, n_train, ...), checked like hparams

    def __init__(self, options):
        self.options = options

    @classmethod
    def facts(cls, options) -> Facts:
        """Cheap checks before anything runs (root layout, file counts; no data is decoded).

        Raises OptionError naming the option at fault; called by suite validation, so every
        registered dataset implements it (tests/test_registry.py checks).
        """
        raise NotImplementedError(f"{cls.__name__} does not implement Dataset.facts")

    @property
    @abstractmethod
    def spec(self) -> DataSpec: ...

    @abstractmethod
    def train(self) -> torch.Tensor:
        """(N_train, *shape) float32, model space."""

    @abstractmethod
    def test(self) -> torch.Tensor:
        """(N_test, *shape) float32, model space."""

    # --- validation split (hyper-parameter tuning) ------------------------------------------
    # A fixed, seeded share of the training split, held out while tuning: tuning trials train on
    # the rest (`tuning_train`) and are scored on `val`, never on `test`. train() itself is
    # unchanged, so untuned suites and the final (phase 2) trials of a tuning run train on all of it.
    VAL_FRACTION: ClassVar[float] = 0.1  # share of the training split held out for validation
    VAL_MAX: ClassVar[int] = 5000  # at most this many validation examples (large training sets)
    VAL_SEED: ClassVar[int] = 20_250_101  # fixes which examples are held out (same for every trial)

    def val_indices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(validation indices, remaining indices) into train(), both sorted; cached."""
        cached = self.__dict__.get("_val_index")
        if cached is None:
            n = len(self.train())
            n_val = min(self.VAL_MAX, max(1, round(self.VAL_FRACTION * n)))
            if n_val >= n:
                raise ValueError(f"dataset {self.spec.name!r}: {n} training examples leave none after validation")
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.VAL_SEED))
            cached = self.__dict__["_val_index"] = (order[:n_val].sort().values, order[n_val:].sort().values)
        return cached

    def val(self) -> torch.Tensor:
        """(N_val, *shape) float32: the held-out part of train() (see VAL_FRACTION, VAL_MAX)."""
        return self.train()[self.val_indices()[0]]

    def tuning_train(self) -> torch.Tensor:
        """(N_train - N_val, *shape) float32: what tuning trials train on (train() minus val())."""
        return self.train()[self.val_indices()[1]]

    def train_labels(self) -> torch.Tensor | None:
        """(N_train,) int64 class labels where the dataset has them, else None.

        bench.metrics trains its offline classifier feature extractor on these (train split only).
        """
        return None

    def test_labels(self) -> torch.Tensor | None:
        """(N_test,) int64 class labels where the dataset has them (digits, MNIST), else None."""
        return None

    def log_density(self, x: torch.Tensor) -> torch.Tensor | None:
        """True log-density in nats at x, (N,), for datasets of known density; else None."""
        return None

    def true_nll_nats(self) -> tuple[float, float] | None:
        """(true NLL = entropy in nats, its standard error) for known densities; else None."""
        return None
