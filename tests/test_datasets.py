"""Datasets: toy densities against closed forms, image loaders on tiny fake copies in the real
on-disk formats (written here, never downloaded), determinism of every split."""

from __future__ import annotations

import hashlib
import math
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from sklearn.datasets import load_digits

from bench.datasets import make_dataset
from bench.datasets.base import OptionError
from bench.datasets.stored import DEBIAN_FASHION_MNIST
from bench.errors import ConfigError, DataError

SMALL = {"n_train": 4000, "n_test": 1000}


def grid(lo: float, hi: float, h: float) -> torch.Tensor:
    """Midpoints of an h-grid on [lo, hi]^2 as (M, 2) float64."""
    g = torch.arange(lo, hi, h, dtype=torch.float64) + h / 2
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], dim=1)


# ---------------------------------------------------------------- toys: determinism and shapes


@pytest.mark.parametrize("name", ["8gaussians", "checkerboard", "moons"])
def test_toy_splits_are_deterministic_float32_and_seeded(name):
    a, b = make_dataset(name, SMALL), make_dataset(name, SMALL)
    assert a.spec.shape == (2,) and a.spec.kind == "points" and a.spec.nll_unit == "nats"
    assert a.train().shape == (4000, 2) and a.test().shape == (1000, 2)
    assert a.train().dtype == a.test().dtype == torch.float32
    assert torch.equal(a.train(), b.train()) and torch.equal(a.test(), b.test())
    assert torch.equal(a.test_labels(), b.test_labels()) and a.test_labels().dtype == torch.int64
    assert a.train_labels().shape == (4000,) and torch.equal(a.train_labels(), b.train_labels())
    assert a.train() is a.train()  # cached
    assert not torch.equal(a.train()[:1000], a.test())  # independent streams
    other = make_dataset(name, SMALL | {"data_seed": 1})
    assert not torch.equal(a.train(), other.train())
    # the test set does not depend on n_train
    assert torch.equal(make_dataset(name, SMALL | {"n_train": 10}).test(), a.test())


@pytest.mark.parametrize("bad", [{"n_train": 0}, {"n_test": -1}, {"data_seed": -2}, {"n_test": 1.5}])
def test_toy_options_are_checked(bad):
    with pytest.raises(ConfigError, match="dataset '8gaussians'"):
        make_dataset("8gaussians", bad)


# ---------------------------------------------------------------- 8gaussians


@pytest.fixture(scope="module")
def gaussians():
    return make_dataset("8gaussians")


def test_8gaussians_is_ffjords_construction(gaussians):
    """Components at 4·c/1.414 on the 8 compass directions with std 0.5/1.414 (FFJORD)."""
    modes = gaussians.modes
    assert modes.shape == (8, 2)
    assert torch.allclose(modes.norm(dim=1), torch.full((8,), 4 / 1.414))
    angles = torch.sort(torch.remainder(torch.atan2(modes[:, 1], modes[:, 0]), 2 * math.pi)).values
    assert torch.allclose(angles, torch.arange(8) * math.pi / 4, atol=1e-6)
    assert gaussians.mode_std == pytest.approx(0.5 / 1.414)
    x, y = gaussians.test(), gaussians.test_labels()
    for k in range(8):
        xk = x[y == k].double()
        assert len(xk) > 450  # ~625 each: labels are uniform over the 8 components
        se = gaussians.mode_std / math.sqrt(len(xk))
        assert torch.allclose(xk.mean(0), modes[k].double(), atol=5 * se)
        assert torch.allclose(
            xk.std(0),
            torch.full((2,), gaussians.mode_std, dtype=torch.float64),
            atol=0.06 * gaussians.mode_std,
        )


def test_8gaussians_log_density_integrates_to_one(gaussians):
    h = 0.02
    p = gaussians.log_density(grid(-5, 5, h)).exp()
    assert (p.sum() * h * h).item() == pytest.approx(1.0, abs=1e-6)


def test_8gaussians_log_density_matches_histogram_of_samples(gaussians):
    """Chi-square of 50k samples against bin masses integrated from log_density."""
    x = gaussians.train().double()
    edges = torch.arange(-4.5, 4.5 + 1e-9, 0.3, dtype=torch.float64)
    counts = torch.histogramdd(x, bins=[edges, edges]).hist
    sub = 5  # midpoint rule with sub×sub points per bin
    h = 0.3 / sub
    pts = grid(-4.5, 4.5, h)
    dens = gaussians.log_density(pts).exp().view(len(edges) - 1, sub, len(edges) - 1, sub)
    expected = dens.sum(dim=(1, 3)) * h * h * len(x)
    keep = expected >= 5
    chi2 = (((counts - expected) ** 2)[keep] / expected[keep]).sum().item()
    dof = int(keep.sum())
    assert dof > 200
    assert chi2 < dof + 5 * math.sqrt(2 * dof), (chi2, dof)
    # a density off by the 1/1.414 Jacobian (factor 2) or with the unscaled std would be far off
    assert (counts.sum() / len(x)).item() > 0.999


def test_8gaussians_monte_carlo_entropy(gaussians):
    nll, se = gaussians.true_nll_nats()
    assert 0 < se <= 0.003
    assert nll == pytest.approx(2.83, abs=0.01)
    # agrees with a deterministic quadrature of -∫ p log p
    h = 0.02
    lp = gaussians.log_density(grid(-5, 5, h))
    quad = -(lp.exp() * lp).sum().item() * h * h
    assert abs(nll - quad) < 4 * se, (nll, quad, se)
    assert gaussians.true_nll_nats() == (nll, se)  # seeded: reproducible


# ---------------------------------------------------------------- checkerboard


def test_checkerboard_true_nll_is_ln32_and_density_integrates_to_one():
    ds = make_dataset("checkerboard", SMALL)
    assert ds.true_nll_nats() == (math.log(32), 0.0)
    h = 0.05  # square edges at even integers fall on cell edges: the midpoint sum is exact
    lp = ds.log_density(grid(-5, 5, h))
    assert (lp.exp().sum() * h * h).item() == pytest.approx(1.0, abs=1e-9)
    assert (torch.isfinite(lp).sum() * h * h).item() == pytest.approx(32.0)  # support area
    assert set(lp[torch.isfinite(lp)].unique().tolist()) == {-math.log(32)}


def test_checkerboard_samples_are_uniform_on_the_eight_squares():
    ds = make_dataset("checkerboard", SMALL)
    x = ds.train()
    assert (x.abs() <= 4).all()
    assert torch.equal(ds.log_density(x), torch.full((len(x),), -math.log(32)))
    # hand-checked against FFJORD's sampler (e.g. x1/2 = -0.5: odd floor, so x2/2 in [1,2)∪[-1,0))
    pts = torch.tensor([[3.0, 3.0], [-3.0, -3.0], [1.0, -1.0], [3.0, 1.0], [-1.0, -1.0], [5.0, 0.0]])
    assert torch.isfinite(ds.log_density(pts)).tolist() == [True, True, False, False, True, False]
    # on a grid: support == the set FFJORD's sampler can reach, i.e. x1/2 in [-2, 2) and
    # x2/2 - floor(x1/2) % 2 in [0, 1) ∪ [-2, -1)
    g = grid(-5, 5, 0.1)
    u1, u2 = g[:, 0] / 2, g[:, 1] / 2
    x2_ = u2 - torch.remainder(torch.floor(u1), 2)
    reachable = (u1 >= -2) & (u1 < 2) & (((x2_ >= 0) & (x2_ < 1)) | ((x2_ >= -2) & (x2_ < -1)))
    assert torch.equal(torch.isfinite(ds.log_density(g)), reachable)
    counts = torch.bincount(ds.test_labels(), minlength=8)
    n = len(ds.test())
    assert len(counts) == 8 and (counts - n / 8).abs().max() < 5 * math.sqrt(n / 8)


# ---------------------------------------------------------------- moons


def test_moons_lie_on_sklearns_half_circles_and_have_unknown_density():
    ds = make_dataset("moons", SMALL | {"noise": 0.0})
    x, y = ds.test().double(), ds.test_labels()
    upper, lower = x[y == 0], x[y == 1]
    assert torch.allclose(upper.norm(dim=1), torch.ones(len(upper), dtype=torch.float64), atol=1e-6)
    assert (upper[:, 1] >= -1e-6).all()
    centre = torch.tensor([1.0, 0.5], dtype=torch.float64)
    assert torch.allclose((lower - centre).norm(dim=1), torch.ones(len(lower), dtype=torch.float64), atol=1e-6)
    assert ds.log_density(x) is None and ds.true_nll_nats() is None
    noisy = make_dataset("moons", SMALL)  # default noise 0.05
    r = noisy.test()[noisy.test_labels() == 0].double().norm(dim=1) - 1
    assert r.std().item() == pytest.approx(0.05, rel=0.15)
    with pytest.raises(ConfigError, match="noise"):
        make_dataset("moons", {"noise": -0.1})


# ---------------------------------------------------------------- digits


def test_digits_is_sklearns_data_on_17_levels_with_a_fixed_stratified_split():
    ds, again = make_dataset("digits"), make_dataset("digits")
    spec = ds.spec
    assert spec.shape == (1, 8, 8) and spec.levels == 17 and spec.nll_unit == "bits_per_dim"
    train, test = ds.train(), ds.test()
    assert train.dtype == torch.float32 and len(train) + len(test) == 1797 and len(test) == 360
    assert torch.equal(train, again.train()) and torch.equal(ds.test_labels(), again.test_labels())
    assert train.min() == -1 and train.max() == 1
    ref = load_digits()
    q = spec.to_levels(torch.cat([train, test])).view(-1, 64).numpy()
    assert np.array_equal(
        spec.from_levels(torch.from_numpy(q)).view(-1, 1, 8, 8), torch.cat([train, test])
    )  # exactly on the level grid
    rows = lambda a: a[np.lexsort(a.T[::-1])]  # noqa: E731 -- sort images to compare as multisets
    assert np.array_equal(rows(q.astype(np.int64)), rows(ref.data.astype(np.int64)))
    assert len(ds.train_labels()) == len(train)
    by_image = {img.tobytes(): int(t) for img, t in zip(ref.data.astype(np.uint8), ref.target)}
    labels = torch.cat([ds.train_labels(), ds.test_labels()]).tolist()
    agree = [by_image[row.astype(np.uint8).tobytes()] == t for row, t in zip(q, labels)]
    assert all(agree)  # each image keeps its label (the 1797 images are all distinct)
    test_counts = torch.bincount(ds.test_labels(), minlength=10).numpy()
    assert np.abs(test_counts - np.bincount(ref.target) * 0.2).max() <= 1  # stratified


# ---------------------------------------------------------------- fake MNIST / CIFAR-10 on disk


def write_idx(path, array: np.ndarray) -> None:
    """The MNIST idx-ubyte format: magic (0, 0, 0x08 = ubyte, ndim), big-endian dims, raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_fake_mnist(root, n_train=12, n_test=7, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    data = {
        "train": rng.integers(0, 256, (n_train, 28, 28)),
        "t10k": rng.integers(0, 256, (n_test, 28, 28)),
    }
    labels = {k: rng.integers(0, 10, len(v)) for k, v in data.items()}
    for prefix in data:
        write_idx(raw / f"{prefix}-images-idx3-ubyte", data[prefix])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels[prefix])
    return {
        "train": data["train"],
        "test": data["t10k"],
        "train_labels": labels["train"],
        "test_labels": labels["t10k"],
    }


def test_mnist_loads_fake_idx_files_through_torchvision(tmp_path):
    fake = write_fake_mnist(tmp_path)
    ds = make_dataset("mnist", {"root": str(tmp_path)})
    assert ds.spec.shape == (1, 28, 28) and ds.spec.levels == 256
    assert ds.train().shape == (12, 1, 28, 28) and ds.train().dtype == torch.float32
    assert torch.equal(ds.spec.to_levels(ds.train()), torch.from_numpy(fake["train"]).to(torch.uint8)[:, None])
    assert torch.equal(ds.test(), ds.spec.from_levels(torch.from_numpy(fake["test"])[:, None]))
    assert torch.equal(ds.test_labels(), torch.from_numpy(fake["test_labels"]))
    assert torch.equal(ds.train_labels(), torch.from_numpy(fake["train_labels"]))
    capped = make_dataset("mnist", {"root": str(tmp_path), "n_train": 5, "n_test": 3})
    assert torch.equal(capped.train(), ds.train()[:5]) and len(capped.test_labels()) == 3


def test_mnist_errors_name_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=f"'mnist'.*{re.escape(str(missing))}") as e:
        make_dataset("mnist", {"root": str(missing)})
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="'mnist': option 'root' is required"):
        make_dataset("mnist")
    ds = make_dataset("mnist", {"root": str(tmp_path)})  # exists, but holds no MNIST/raw
    with pytest.raises(DataError, match=f"'mnist'.*{re.escape(str(tmp_path / 'MNIST' / 'raw'))}.*not found") as e:
        ds.train()
    assert "download=True" not in str(e.value) and "\n" not in str(e.value)
    write_fake_mnist(tmp_path)
    write_idx(tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte", np.zeros((3, 784)))  # wrong ndim
    with pytest.raises(DataError, match="'mnist'.*test split"):
        make_dataset("mnist", {"root": str(tmp_path)}).test()


def test_fashion_mnist_reads_the_published_gz_files_and_torchvisions_layout(tmp_path):
    """The published *-ubyte.gz files (what Debian's package ships) and torchvision's unzipped
    layout give the same tensors; validation names the root when it holds neither."""
    import gzip

    fake = write_fake_mnist(tmp_path / "tv")  # MNIST/raw/... unzipped
    (tmp_path / "tv" / "MNIST").rename(tmp_path / "tv" / "FashionMNIST")
    published = tmp_path / "published"
    published.mkdir()
    for f in (tmp_path / "tv" / "FashionMNIST" / "raw").iterdir():
        (published / f"{f.name}.gz").write_bytes(gzip.compress(f.read_bytes()))
    a = make_dataset("fashion-mnist", {"root": str(published)})
    b = make_dataset("fashion-mnist", {"root": str(tmp_path / "tv")})
    assert torch.equal(a.spec.to_levels(a.train()), torch.from_numpy(fake["train"]).to(torch.uint8)[:, None])
    assert torch.equal(a.train(), b.train()) and torch.equal(a.test_labels(), b.test_labels())
    assert a.facts(a.options).n_test == 10_000 and a.facts(a.Options(root=str(published), n_test=3)).n_test == 3
    with pytest.raises(OptionError, match=f"'fashion-mnist'.*{re.escape(str(tmp_path))}.*FashionMNIST/raw"):
        a.facts(a.Options(root=str(tmp_path)))


@pytest.mark.skipif(
    not Path(DEBIAN_FASHION_MNIST).is_dir(),
    reason=f"{DEBIAN_FASHION_MNIST} missing: install Debian's dataset-fashion-mnist (`make test` does, as root)",
)
def test_fashion_mnist_on_the_real_debian_files():
    """The real data: 60 000 + 10 000 images, 6 000 / 1 000 per class, and the pixel mean and std
    everyone normalises Fashion-MNIST with (0.2860, 0.3530 on [0, 1], training split)."""
    ds = make_dataset("fashion-mnist")  # the default root is Debian's
    train, test = ds.train(), ds.test()
    assert train.shape == (60_000, 1, 28, 28) and test.shape == (10_000, 1, 28, 28)
    assert ds.train_labels().bincount().tolist() == [6000] * 10
    assert ds.test_labels().bincount().tolist() == [1000] * 10
    unit = (train.double() + 1) / 2
    assert unit.mean().item() == pytest.approx(0.2860, abs=5e-5)
    assert unit.std().item() == pytest.approx(0.3530, abs=5e-5)
    assert ds.spec.to_levels(train).max() == 255 and ds.spec.to_levels(train).min() == 0


CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def write_fake_cifar(root, per_batch=2, n_test=3, seed=0) -> dict[str, np.ndarray]:
    """Python-pickle CIFAR-10 batches: {'data': (n, 3072) uint8 rows (R, G, B planes), 'labels'}."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in CIFAR_FILES:
        n = n_test if name == "test_batch" else per_batch
        batches[name] = {
            "data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
            "labels": rng.integers(0, 10, n).tolist(),
            "batch_label": name,
        }
        (folder / name).write_bytes(pickle.dumps(batches[name]))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    return batches


@pytest.fixture
def cifar_md5s_of_fake_files(monkeypatch):
    """Point torchvision's CIFAR-10 md5 table at the fake files' md5s (the check itself runs)."""

    def patch(root):
        folder = root / "cifar-10-batches-py"
        md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
        cls = torchvision.datasets.CIFAR10
        monkeypatch.setattr(cls, "train_list", [[n, md5[n]] for n, _ in cls.train_list])
        monkeypatch.setattr(cls, "test_list", [[n, md5[n]] for n, _ in cls.test_list])
        monkeypatch.setattr(cls, "meta", cls.meta | {"md5": md5[cls.meta["filename"]]})

    return patch


def test_cifar10_loads_fake_batches_through_torchvision(tmp_path, cifar_md5s_of_fake_files):
    batches = write_fake_cifar(tmp_path)
    cifar_md5s_of_fake_files(tmp_path)
    ds = make_dataset("cifar10", {"root": str(tmp_path)})
    assert ds.spec.shape == (3, 32, 32) and ds.spec.levels == 256
    train_rows = np.concatenate([batches[n]["data"] for n in CIFAR_FILES[:5]])
    expected = torch.from_numpy(train_rows).view(-1, 3, 32, 32)  # each row is 3 planes of 32x32
    assert ds.train().shape == (10, 3, 32, 32) and ds.train().dtype == torch.float32
    assert torch.equal(ds.spec.to_levels(ds.train()), expected)
    assert torch.equal(
        ds.test(),
        ds.spec.from_levels(torch.from_numpy(batches["test_batch"]["data"]).view(-1, 3, 32, 32)),
    )
    assert ds.test_labels().tolist() == batches["test_batch"]["labels"]
    assert ds.train_labels().tolist() == sum((batches[n]["labels"] for n in CIFAR_FILES[:5]), [])
    assert len(make_dataset("cifar10", {"root": str(tmp_path), "n_train": 4}).train()) == 4


def test_cifar10_keeps_torchvisions_md5_check_and_reports_it_as_data_error(tmp_path):
    write_fake_cifar(tmp_path)  # right format, but not the official files' checksums
    ds = make_dataset("cifar10", {"root": str(tmp_path)})
    with pytest.raises(
        DataError, match=f"'cifar10'.*{re.escape(str(tmp_path / 'cifar-10-batches-py'))}.*corrupted"
    ) as e:
        ds.train()
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match=f"'cifar10'.*{re.escape(str(tmp_path / 'absent'))}"):
        make_dataset("cifar10", {"root": str(tmp_path / "absent")})


# ---------------------------------------------------------------- folder of images


COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (10, 200, 77), (128, 128, 128), (0, 0, 0)]


def write_pngs(folder, colours=COLOURS) -> None:
    (folder / "sub").mkdir(parents=True)
    for i, c in enumerate(colours):  # non-square, some in a sub-folder: crop + resize + recursion
        Image.new("RGB", (20, 12), c).save(folder / ("sub" if i % 2 else ".") / f"img{i}.png")
    (folder / "notes.txt").write_text("not an image")


def test_folder_loads_resizes_and_splits_pngs(tmp_path):
    write_pngs(tmp_path)
    opts = {"root": str(tmp_path), "image_size": 8, "test_fraction": 0.34}
    ds, again = make_dataset("folder", opts), make_dataset("folder", opts)
    assert ds.spec.shape == (3, 8, 8) and ds.spec.levels == 256
    assert ds.train().shape == (4, 3, 8, 8) and ds.test().shape == (2, 3, 8, 8)
    assert torch.equal(ds.train(), again.train()) and torch.equal(ds.test(), again.test())
    q = ds.spec.to_levels(torch.cat([ds.train(), ds.test()]))
    colours = {tuple(img[:, 0, 0].tolist()) for img in q}
    assert colours == set(COLOURS)  # every image once, solid colours survive the resize
    assert all((img == img[:, :1, :1]).all() for img in q)
    grey = make_dataset("folder", opts | {"channels": 1, "image_size": 4})
    assert grey.train().shape == (4, 1, 4, 4)
    levels = set(grey.spec.to_levels(torch.cat([grey.train(), grey.test()]))[:, 0, 0, 0].tolist())
    assert {128, 0} <= levels  # greys keep their level in mode "L"


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match=f"'folder'.*{re.escape(str(tmp_path / 'nope'))}"):
        make_dataset("folder", {"root": str(tmp_path / "nope")})
    with pytest.raises(DataError, match=f"'folder'.*{re.escape(str(tmp_path))}.*holds 0 png/jpg"):
        make_dataset("folder", {"root": str(tmp_path)})
    with pytest.raises(ConfigError, match="image_size must be a positive multiple of 4"):
        make_dataset("folder", {"root": str(tmp_path), "image_size": 30})
    with pytest.raises(ConfigError, match="channels must be 1 or 3"):
        make_dataset("folder", {"root": str(tmp_path), "channels": 2})
    write_pngs(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read image .*broken.png"):
        make_dataset("folder", {"root": str(tmp_path)}).train()


def test_folder_validation_refuses_fake_images_and_links_out_of_the_root(tmp_path):
    """A text file named .png or a link to a file outside the root is refused at validation, in
    one line naming the file, instead of failing every trial later."""
    from bench.datasets import DATASETS

    cls, root = DATASETS.get("folder"), tmp_path / "images"
    write_pngs(root)
    options = cls.Options(root=str(root))
    assert cls.facts(options).n_test == 1  # six real images: fine
    (root / "fake.png").write_text("not an image")
    with pytest.raises(OptionError, match=r"fake\.png' is not a readable image") as e:
        cls.facts(options)
    assert "\n" not in str(e.value)
    (root / "fake.png").unlink()
    outside = tmp_path / "secret.png"
    Image.new("RGB", (4, 4)).save(outside)
    (root / "link.png").symlink_to(outside)
    with pytest.raises(OptionError, match=r"link\.png' is a link to .*secret\.png', outside the root"):
        cls.facts(options)
    (root / "link.png").unlink()
    (root / "sub" / "inside.png").symlink_to(root / "img0.png")  # a link within the root is fine
    assert cls.facts(options).n_test == 1
