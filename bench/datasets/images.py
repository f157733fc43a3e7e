"""Image datasets, all offline: sklearn digits (bundled), MNIST / Fashion-MNIST / CIFAR-10
(torchvision, download=False from a local root; Fashion-MNIST by default from Debian's
`dataset-fashion-mnist` package) and a folder of PNG/JPEG files.

Images are integer levels mapped to model space with `DataSpec.from_levels` ([-1, 1], bin width Δ);
their NLL unit is bits/dim of the discrete data. Splits are fixed so every trial sees the same data.
Loading is lazy (first call of train()/test()) and cached; a missing root fails at construction.
"""

from __future__ import annotations

import gzip
import logging
import math
import pickle
import shutil
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from bench.datasets.base import Dataset, DataSpec, Facts, OptionError
from bench.errors import DataError

log = logging.getLogger(__name__)

# What torchvision raises when a downloaded file is missing, truncated or not in its format.
_READ_ERRORS = (
    RuntimeError,
    OSError,
    ValueError,
    TypeError,
    AssertionError,
    KeyError,
    EOFError,
    pickle.UnpicklingError,
)


def _existing_root(root: str, name: str, expected: str) -> Path:
    """The root as a Path; a one-line DataError naming path and dataset when it is unusable."""
    if not root:
        raise DataError(f"dataset {name!r}: option 'root' is required (a local folder holding {expected})")
    path = Path(root).expanduser()
    if path.exists() and not path.is_dir():
        raise DataError(
            f"dataset {name!r}: root {str(path)!r} is a file, not a folder (expected a folder holding {expected})"
        )
    if not path.is_dir():
        raise DataError(
            f"dataset {name!r}: root {str(path)!r} does not exist or is not a directory "
            f"(expected it to hold {expected})"
        )
    return path


ROOT_HINT = "set options.root (relative paths are resolved against --data-root, else $GENBENCH_DATA_ROOT, else ./data)"


def _checked_root(root: str, name: str, expected: str) -> Path:
    """_existing_root for validation: the same check as an OptionError on `root` with the hint."""
    try:
        return _existing_root(root, name, expected)
    except DataError as exc:
        raise OptionError("root", f"{exc}; {ROOT_HINT}") from None


def _head(x: torch.Tensor, n: int) -> torch.Tensor:
    """The first n rows (n = 0 keeps all): a deterministic cap."""
    return x[:n] if n > 0 else x


def _first_line(exc: BaseException) -> str:
    """The cause in one line, without torchvision's download advice (we never download)."""
    line = (str(exc).splitlines() or [""])[0].split(" You can use download=True")[0]
    return line or type(exc).__name__


@dataclass
class SplitCaps:
    n_train: int = 0  # keep at most the first n_train training images (0 = all)
    n_test: int = 0  # keep at most the first n_test test images (0 = all)

    def validate(self) -> None:
        if self.n_train < 0 or self.n_test < 0:
            raise ValueError(f"n_train and n_test must be >= 0 (0 = all), got {self.n_train}, {self.n_test}")


class Digits(Dataset):
    """scikit-learn's 8×8 handwritten digits (1797 images, 17 intensity levels 0..16), (1, 8, 8)."""

    @dataclass
    class Options:
        test_fraction: float = 0.2  # held-out share, stratified by digit class
        split_seed: int = 0  # fixes the split so every trial sees the same images

        def validate(self) -> None:
            if not 0 < self.test_fraction < 1:
                raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")

    N_IMAGES = 1797  # sklearn's bundled copy

    @classmethod
    def facts(cls, options) -> Facts:
        # sklearn's train_test_split rounds the test share up
        return Facts(kind="image", labels=True, n_test=math.ceil(cls.N_IMAGES * options.test_fraction))

    @property
    def spec(self) -> DataSpec:
        return DataSpec(name="digits", shape=(1, 8, 8), kind="image", levels=17)

    @cached_property
    def _data(self) -> dict[str, torch.Tensor]:
        # imported here: scikit-learn and torchvision cost ~1 s of every trial's start-up otherwise
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()  # bundled with sklearn: no network
        levels = torch.from_numpy(digits.data.astype(np.int64)).view(-1, *self.spec.shape)
        labels = torch.from_numpy(digits.target.astype(np.int64))
        idx_train, idx_test = train_test_split(
            np.arange(len(labels)),
            test_size=self.options.test_fraction,
            random_state=self.options.split_seed,
            stratify=digits.target,
        )
        idx_train, idx_test = torch.from_numpy(idx_train), torch.from_numpy(idx_test)
        return {
            "train": self.spec.from_levels(levels[idx_train]),
            "test": self.spec.from_levels(levels[idx_test]),
            "train_labels": labels[idx_train],
            "test_labels": labels[idx_test],
        }

    def train(self) -> torch.Tensor:
        """(N_train, 1, 8, 8) float32 in [-1, 1]."""
        return self._data["train"]

    def test(self) -> torch.Tensor:
        """(N_test, 1, 8, 8) float32 in [-1, 1]."""
        return self._data["test"]

    def train_labels(self) -> torch.Tensor:
        """(N_train,) int64 digit classes."""
        return self._data["train_labels"]

    def test_labels(self) -> torch.Tensor:
        """(N_test,) int64 digit classes."""
        return self._data["test_labels"]


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
        self.root = _existing_root(options.root, self.name, self.layout)

    @classmethod
    def facts(cls, options) -> Facts:
        root = _checked_root(options.root, cls.name, cls.layout)
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
        except _READ_ERRORS as exc:
            raise DataError(
                f"dataset {self.name!r}: cannot read the {split} split from "
                f"{str(self.root / self.layout)!r} ({_first_line(exc)})"
            ) from exc
        if tuple(q.shape[1:]) != self.shape or q.dtype != torch.uint8:
            raise DataError(
                f"dataset {self.name!r}: {str(self.root / self.layout)!r} holds {split} "
                f"images of shape {tuple(q.shape[1:])} {q.dtype}, expected {self.shape} uint8"
            )
        n = self.options.n_train if train else self.options.n_test
        q, y = _head(q, n), _head(y, n)
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
        root = _checked_root(options.root, cls.name, f"the published *-ubyte.gz files or {cls.layout}/")
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


class ImageFolder(Dataset):
    """Every *.png / *.jpg / *.jpeg under `root` (recursively), centre-cropped to a square and
    resized to image_size, 256 levels, shape (channels, image_size, image_size). No labels."""

    SUFFIXES = (".png", ".jpg", ".jpeg")

    @dataclass
    class Options:
        root: str = ""  # folder searched recursively for images (required)
        image_size: int = 32  # side after crop+resize; divisible by 4 for the conv nets' 2 downsamplings
        channels: int = 3  # 3 = RGB, 1 = greyscale (PIL mode "L")
        test_fraction: float = 0.1  # held-out share (at least one image each side)
        seed: int = 0  # fixes the shuffled split so every trial sees the same images

        def validate(self) -> None:
            if self.image_size < 4 or self.image_size % 4:
                raise ValueError(f"image_size must be a positive multiple of 4, got {self.image_size}")
            if self.channels not in (1, 3):
                raise ValueError(f"channels must be 1 or 3, got {self.channels}")
            if not 0 < self.test_fraction < 1:
                raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")

    def __init__(self, options):
        super().__init__(options)
        self.root = _existing_root(options.root, "folder", "*.png / *.jpg images")
        self.files = self._images(self.root)
        if len(self.files) < 2:
            raise DataError(
                f"dataset 'folder': {str(self.root)!r} holds {len(self.files)} png/jpg "
                "images; need at least 2 (one train, one test)"
            )

    @classmethod
    def _images(cls, root: Path) -> list[Path]:
        return sorted(p for p in root.rglob("*") if p.suffix.lower() in cls.SUFFIXES)

    @staticmethod
    def _n_test(n: int, fraction: float) -> int:
        """Test images of an n-image folder: at least one on each side."""
        return min(max(1, round(n * fraction)), n - 1)

    @classmethod
    def _unusable(cls, root: Path, files: list[Path]) -> list[tuple[Path, str]]:
        """(file, why) for every file that resolves outside root (a link out of it) or that Pillow
        cannot verify as an image: validation refuses them rather than let every trial fail."""
        inside, bad = root.resolve(), []
        for path in files:
            target = path.resolve()
            if not target.is_relative_to(inside):
                bad.append((path, f"a link to {str(target)!r}, outside the root"))
                continue
            try:
                with Image.open(target) as img:
                    img.verify()  # reads the whole file: truncated and foreign files fail here
            except Exception as exc:  # Pillow raises many types for broken files
                bad.append((path, f"not a readable image: {_first_line(exc)}"))
        return bad

    @classmethod
    def facts(cls, options) -> Facts:
        root = _checked_root(options.root, "folder", "*.png / *.jpg images")
        files = cls._images(root)
        bad = cls._unusable(root, files)
        if bad:
            (first, why), more = bad[0], (f" ({len(bad)} of {len(files)} files)" if len(bad) > 1 else "")
            raise OptionError("root", f"dataset 'folder': {str(first)!r} is {why}{more}")
        n = len(files)
        if n < 2:
            raise OptionError(
                "root",
                f"dataset 'folder': {str(root)!r} holds {n} png/jpg images; need at least 2 (one train, one test)",
            )
        return Facts(kind="image", labels=False, n_test=cls._n_test(n, options.test_fraction))

    @property
    def spec(self) -> DataSpec:
        s = self.options.image_size
        return DataSpec(name="folder", shape=(self.options.channels, s, s), kind="image", levels=256)

    def _read(self, path: Path) -> np.ndarray:
        """One image as uint8 (C, S, S)."""
        size = self.options.image_size
        try:
            with Image.open(path) as img:
                img = img.convert("L" if self.options.channels == 1 else "RGB")
                img = ImageOps.fit(img, (size, size), Image.Resampling.BICUBIC)
                a = np.asarray(img, dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"dataset 'folder': cannot read image {str(path)!r} ({_first_line(exc)})") from exc
        return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)

    @cached_property
    def _data(self) -> dict[str, torch.Tensor]:
        files = tqdm(self.files, desc=f"loading {self.root.name}", unit="img", disable=None, leave=False)
        q = torch.from_numpy(np.stack([self._read(p) for p in files]))
        order = torch.from_numpy(np.random.default_rng(self.options.seed).permutation(len(q)))
        n_test = self._n_test(len(q), self.options.test_fraction)
        x = self.spec.from_levels(q[order])
        return {"train": x[n_test:], "test": x[:n_test]}

    def train(self) -> torch.Tensor:
        """(N_train, C, S, S) float32 in [-1, 1]."""
        return self._data["train"]

    def test(self) -> torch.Tensor:
        """(N_test, C, S, S) float32 in [-1, 1]."""
        return self._data["test"]
