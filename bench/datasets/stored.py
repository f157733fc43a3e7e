"""Image datasets stored on disk in torchvision's formats, read with download=False from a local root:
MNIST, Fashion-MNIST (by default from Debian's `dataset-fashion-mnist` package) and CIFAR-10.
torchvision's errors become one-line DataErrors naming the dataset and the path.
"""

from __future__ import annotations

import gzip
import logging
import shutil
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from bench.datasets.base import Dataset, DataSpec, Facts, OptionError
from bench.datasets.images import READ_ERRORS, ROOT_HINT, SplitCaps, checked_root, existing_root, first_line, head_of
from bench.errors import DataError

log = logging.getLogger(__name__)


class _TorchvisionDataset(Dataset):
    """MNIST / CIFAR-10 through torchvision with download=False; its errors become DataErrors."""

    name = "torchvision"
    shape: tuple[int, int, int] = (1, 1, 1)
    layout = "folder"  # what the root must contain, for error messages
    files: tuple[str, ...] = ()  # files torchvision needs under root/layout
    test_size = 0  # images in the official test split

    @dataclass
    class Options(SplitCaps):
        root: str = ""  # local folder holding the dataset in torchvision's layout (required)

    def __init__(self, options):
        super().__init__(options)
        self.root = existing_root(options.root, self.name, self.layout)

    @classmethod
    def facts(cls, options) -> Facts:
        root = checked_root(options.root, cls.name, cls.layout)
        missing = [f for f in cls.files if not (root / cls.layout / f).is_file()]
        if missing:
            raise OptionError(
                "root",
                f"dataset {cls.name!r}: root {str(root)!r} lacks {cls.layout}/{missing[0]} "
                f"(expected {cls.layout}/{{{','.join(cls.files)}}}); {ROOT_HINT}",
            )
        n_test = min(options.n_test, cls.test_size) if options.n_test else cls.test_size
        return Facts(kind="image", labels=True, n_test=n_test)

    @property
    def spec(self) -> DataSpec:
        return DataSpec(name=self.name, shape=self.shape, kind="image", levels=256)

    def _read(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 (N, C, H, W), int64 labels (N,)) from torchvision's object."""
        raise NotImplementedError

    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        split = "train" if train else "test"
        try:
            q, y = self._read(train)
        except READ_ERRORS as exc:
            raise DataError(
                f"dataset {self.name!r}: cannot read the {split} split from "
                f"{str(self.root / self.layout)!r} ({first_line(exc)})"
            ) from exc
        if tuple(q.shape[1:]) != self.shape or q.dtype != torch.uint8:
            raise DataError(
                f"dataset {self.name!r}: {str(self.root / self.layout)!r} holds {split} "
                f"images of shape {tuple(q.shape[1:])} {q.dtype}, expected {self.shape} uint8"
            )
        n = self.options.n_train if train else self.options.n_test
        q, y = head_of(q, n), head_of(y, n)
        log.info("%s %s: %d images from %s", self.name, split, len(q), self.root)
        return self.spec.from_levels(q), y

    @cached_property
    def _train(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._load(train=True)

    @cached_property
    def _test(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._load(train=False)

    def train(self) -> torch.Tensor:
        """(N_train, *shape) float32 in [-1, 1]."""
        return self._train[0]

    def test(self) -> torch.Tensor:
        """(N_test, *shape) float32 in [-1, 1]."""
        return self._test[0]

    def train_labels(self) -> torch.Tensor:
        """(N_train,) int64 classes."""
        return self._train[1]

    def test_labels(self) -> torch.Tensor:
        """(N_test,) int64 classes."""
        return self._test[1]


class MNIST(_TorchvisionDataset):
    """MNIST, (1, 28, 28), 256 levels.

    Root holds MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (the unzipped files;
    torchvision checks that they exist, not their checksums)."""

    name = "mnist"
    shape = (1, 28, 28)
    layout = "MNIST/raw"
    files = tuple(f"{p}-{k}-ubyte" for p in ("train", "t10k") for k in ("images-idx3", "labels-idx1"))
    test_size = 10_000

    def _read(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        import torchvision  # only for datasets stored in its layout (see load_digits)

        tv = torchvision.datasets.MNIST(root=str(self.root), train=train, download=False)
        return tv.data.unsqueeze(1), tv.targets.long()


DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"  # where `apt-get install dataset-fashion-mnist` puts it


class FashionMNIST(_TorchvisionDataset):
    """Fashion-MNIST (Xiao et al. 2017), (1, 28, 28), 256 levels, 10 classes, 60 000 + 10 000 images.

    Root holds either the four files as published, {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    (Debian's `dataset-fashion-mnist` installs them in DEBIAN_FASHION_MNIST, the default root), or
    torchvision's layout FashionMNIST/raw/ with the unzipped files. torchvision reads only unzipped
    files: published ones are unzipped into a temporary folder for the read (~0.5 s), then deleted."""

    name = "fashion-mnist"
    shape = (1, 28, 28)
    layout = "FashionMNIST/raw"
    files = MNIST.files
    test_size = 10_000

    @dataclass
    class Options(SplitCaps):
        root: str = DEBIAN_FASHION_MNIST  # the published .gz files, or a folder in torchvision's layout

    @classmethod
    def published(cls, root: Path) -> bool:
        """root holds the four published .gz files."""
        return all((root / f"{f}.gz").is_file() for f in cls.files)

    @classmethod
    def facts(cls, options) -> Facts:
        root = checked_root(options.root, cls.name, f"the published *-ubyte.gz files or {cls.layout}/")
        if not cls.published(root):
            return super().facts(options)
        n_test = min(options.n_test, cls.test_size) if options.n_test else cls.test_size
        return Facts(kind="image", labels=True, n_test=n_test)

    def _read(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        import torchvision  # only for datasets stored in its layout (see load_digits)

        if not self.published(self.root):
            tv = torchvision.datasets.FashionMNIST(root=str(self.root), train=train, download=False)
            return tv.data.unsqueeze(1), tv.targets.long()
        with tempfile.TemporaryDirectory(prefix="genbench-fashion-") as tmp:
            raw = Path(tmp) / self.layout
            raw.mkdir(parents=True)
            for f in self.files:
                with gzip.open(self.root / f"{f}.gz", "rb") as src, open(raw / f, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            tv = torchvision.datasets.FashionMNIST(root=tmp, train=train, download=False)
            return tv.data.unsqueeze(1).clone(), tv.targets.long().clone()


class CIFAR10(_TorchvisionDataset):
    """CIFAR-10, (3, 32, 32), 256 levels.

    Root holds cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta) as unpacked
    from the official python tarball.

    torchvision verifies every batch file against the official md5 sums; we keep that check (a
    truncated or foreign file fails loudly as a DataError) rather than bypass it. Tests write fake
    batches in the same pickle format and substitute their md5s in torchvision's checksum table.
    """

    name = "cifar10"
    shape = (3, 32, 32)
    layout = "cifar-10-batches-py"
    files = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")
    test_size = 10_000

    def _read(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        import torchvision  # only for datasets stored in its layout (see load_digits)

        tv = torchvision.datasets.CIFAR10(root=str(self.root), train=train, download=False)
        q = torch.from_numpy(np.ascontiguousarray(tv.data)).permute(0, 3, 1, 2)  # HWC -> CHW
        return q.contiguous(), torch.as_tensor(tv.targets, dtype=torch.int64)
