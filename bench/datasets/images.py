"""Image datasets, all offline: sklearn digits (bundled) and a folder of PNG/JPEG files here;
MNIST / Fashion-MNIST / CIFAR-10 in torchvision's on-disk formats in bench.datasets.stored. The
root checks and split caps they share live here.

Images are integer levels mapped to model space with `DataSpec.from_levels` ([-1, 1], bin width Δ);
their NLL unit is bits/dim of the discrete data. Splits are fixed so every trial sees the same data.
Loading is lazy (first call of train()/test()) and cached; a missing root fails at construction.
"""

from __future__ import annotations

import logging
import math
import pickle
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
READ_ERRORS = (
    RuntimeError,
    OSError,
    ValueError,
    TypeError,
    AssertionError,
    KeyError,
    EOFError,
    pickle.UnpicklingError,
)


def existing_root(root: str, name: str, expected: str) -> Path:
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


def checked_root(root: str, name: str, expected: str) -> Path:
    """existing_root for validation: the same check as an OptionError on `root` with the hint."""
    try:
        return existing_root(root, name, expected)
    except DataError as exc:
        raise OptionError("root", f"{exc}; {ROOT_HINT}") from None


def head_of(x: torch.Tensor, n: int) -> torch.Tensor:
    """The first n rows (n = 0 keeps all): a deterministic cap."""
    return x[:n] if n > 0 else x


def first_line(exc: BaseException) -> str:
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
        self.root = existing_root(options.root, "folder", "*.png / *.jpg images")
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
                bad.append((path, f"not a readable image: {first_line(exc)}"))
        return bad

    @classmethod
    def facts(cls, options) -> Facts:
        root = checked_root(options.root, "folder", "*.png / *.jpg images")
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
            raise DataError(f"dataset 'folder': cannot read image {str(path)!r} ({first_line(exc)})") from exc
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
