"""The real test data that samples are compared against, bound to one feature extractor.

`Reference.build` fixes the protocol once per evaluation: which n_real test examples (a fixed
permutation, the same for every trial; n_real = n_fake = `compared_count`), how they are
quantised (exactly like samples: through `spec.to_levels`), which extractor, and the
content-addressed cache name of their features (dataset, n_real, hash of the uint8 bytes,
extractor name + weights hash). Then `quality(samples)` gives every sample-quality column and
`fid(samples)` the FID alone (DDPM steps curve).
The classifier two-sample test and copy_fraction use the same features as FID (raw coordinates,
or the extractor's FID layer); the training set's features are cached per dataset and extractor.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.metrics import fidelity, quality, twosample
from bench.metrics.cache import atomic_torch_save, file_lock, safe_name, tensor_hash
from bench.metrics.extractors import (
    Extractor,
    classifier_input,
    label_classifier,
    resolve_extractor,
)

log = logging.getLogger(__name__)

REAL_SUBSET_SEED = 0  # fixed: every trial compares against the same real examples
QUALITY_KEYS = (
    "fid",
    "kid_mean",
    "kid_std",
    "precision",
    "recall",
    "mode_coverage",
    "mode_kl_nats",
    "sharpness_ratio",
    "c2st_accuracy",
    "c2st_auc",
    "c2st_p_value",
    "copy_fraction",
    "memorization_p",
    "blur_index",
)


def compared_count(cfg, n_test: int) -> int:
    """n_real = n_fake of every family: min(eval.n_samples, eval.n_real, test size); FID and KID
    are biased by the sample count, so both sides and every row use the same n."""
    return min(cfg.n_samples, cfg.n_real, n_test)


@dataclass
class Reference:
    spec: object  # DataSpec
    real: torch.Tensor  # (n_real, *shape) model space, on the data grid for images
    extractor: Extractor
    cache_root: Path  # torch-fidelity cache of real features
    cache_name: str  # content-addressed name of the real features in that cache
    centres: torch.Tensor | None  # (K, D) mode centres of point data, else None
    classifier: torch.nn.Module | None  # labels images for mode coverage, else None
    cfg: object  # EvalConfig
    cuda: bool
    seed: int
    train: torch.Tensor  # (N_train, *shape) model space: the memorisation check's neighbours
    heldout: torch.Tensor  # (N_test, *shape) model space: every test example, the memorisation test's null
    feature_cache: Path  # cached training-set features (images), by content and extractor

    @classmethod
    def build(cls, dataset, cfg, *, cache_dir: Path, device: torch.device, seed: int) -> Reference:
        spec, test = dataset.spec, dataset.test()
        n_real = compared_count(cfg, len(test))
        order = torch.randperm(len(test), generator=torch.Generator().manual_seed(REAL_SUBSET_SEED))
        real = quantise(test[order[:n_real]], spec)
        extractor = resolve_extractor(dataset, cfg, cache_dir)
        content = tensor_hash(fidelity.to_uint8(real, spec) if spec.is_image else real)
        return cls(
            spec=spec,
            real=real,
            extractor=extractor,
            cache_root=Path(cache_dir) / "fidelity",
            cache_name=safe_name(spec.name, f"n{n_real}", content, extractor.name, extractor.hash or "none"),
            centres=mode_centres(dataset),
            classifier=label_classifier(dataset, cfg, cache_dir, extractor),
            cfg=cfg,
            cuda=device.type == "cuda",
            seed=seed,
            train=dataset.train(),
            heldout=quantise(test, spec),
            feature_cache=Path(cache_dir) / "features",
        )

    @property
    def n_real(self) -> int:
        return len(self.real)

    def quality(self, samples: torch.Tensor) -> dict[str, float]:
        """Every sample-quality column for (n, *shape) model-space samples (NaN: not applicable)."""
        row = dict.fromkeys(QUALITY_KEYS, math.nan)
        if not torch.isfinite(samples).all():
            log.warning("samples contain non-finite values: sample-quality metrics are NaN")
            return row
        samples = quantise(samples, self.spec)
        row |= self._distances(samples, only_fid=False)
        if self.centres is not None:
            row |= quality.point_mode_coverage(samples, self.real, self.centres)
        if self.classifier is not None:
            inputs = classifier_input(samples, self.spec)
            row |= quality.class_mode_coverage(inputs, self.classifier, self.classifier.head[-1].out_features)
        if self.spec.is_image:
            row["sharpness_ratio"] = quality.sharpness_ratio(samples, self.real)
            row["blur_index"] = quality.blur_index(samples, self.real)
        fake, train = self.features(samples), self.train_features()
        c2st = twosample.c2st_test(self.real_features(), fake, seed=self.seed)
        row["c2st_accuracy"], row["c2st_auc"], row["c2st_p_value"] = c2st.accuracy, c2st.auc, c2st.p_value
        row["copy_fraction"] = twosample.copy_fraction(fake, train)
        row["memorization_p"] = twosample.memorization_test(
            train, self.heldout_features(), fake, seed=self.seed
        ).p_value
        return row

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, F) float64 features of quantised model-space x: raw coordinates or the extractor's."""
        if self.extractor.fidelity is None:
            return x.flatten(1).double()
        images = fidelity.to_uint8(x, self.spec)
        return fidelity.extract_features(images, self.extractor.fidelity, cuda=self.cuda)

    def real_features(self) -> torch.Tensor:
        """Features of the n_real test examples (images: cached on disk under the FID cache's name)."""
        return self._cached(self.real, self.cache_name)

    def heldout_features(self) -> torch.Tensor:
        """Features of every test example (images: cached per content and extractor)."""
        if self.extractor.fidelity is None:
            return self.features(self.heldout)
        key = tensor_hash(fidelity.to_uint8(self.heldout, self.spec))
        return self._cached(
            self.heldout, safe_name(self.spec.name, "test", key, self.extractor.name, self.extractor.hash)
        )

    def train_features(self) -> torch.Tensor:
        """Features of the whole training set (images: cached per content and extractor)."""
        train = quantise(self.train, self.spec)
        if self.extractor.fidelity is None:
            return self.features(train)
        key = tensor_hash(fidelity.to_uint8(train, self.spec))
        return self._cached(train, safe_name(self.spec.name, "train", key, self.extractor.name, self.extractor.hash))

    def _cached(self, x: torch.Tensor, name: str) -> torch.Tensor:
        if self.extractor.fidelity is None:
            return self.features(x)
        path = self.feature_cache / f"{name}.pt"
        with file_lock(path.with_suffix(".lock")):
            if not path.exists():
                atomic_torch_save(self.features(x), path)
        return torch.load(path, weights_only=True)

    def fid(self, samples: torch.Tensor) -> float:
        if not torch.isfinite(samples).all():
            return math.nan
        return self._distances(quantise(samples, self.spec), only_fid=True)["fid"]

    def _distances(self, samples: torch.Tensor, *, only_fid: bool) -> dict[str, float]:
        cfg = self.cfg
        if self.extractor.fidelity is None:  # raw features: coordinates / flattened pixels
            fake, real = samples.flatten(1), self.real.flatten(1)
            if only_fid:
                return {"fid": fidelity.frechet_distance(fidelity.fd_statistics(fake), fidelity.fd_statistics(real))}
            return fidelity.feature_metrics(
                fake,
                real,
                kid_subset_size=cfg.kid_subset_size,
                kid_subsets=cfg.kid_subsets,
                prc_neighborhood=cfg.prc_neighborhood,
                seed=self.seed,
            )
        return fidelity.image_metrics(
            fidelity.to_uint8(samples, self.spec),
            fidelity.to_uint8(self.real, self.spec),
            self.extractor.fidelity,
            cuda=self.cuda,
            cache_root=self.cache_root,
            real_cache_name=self.cache_name,
            kid_subset_size=cfg.kid_subset_size,
            kid_subsets=cfg.kid_subsets,
            prc_neighborhood=cfg.prc_neighborhood,
            seed=self.seed,
            only_fid=only_fid,
        )


def quantise(x: torch.Tensor, spec) -> torch.Tensor:
    """Images onto the data grid (what an 8-bit PNG of the sample holds); points unchanged."""
    return spec.from_levels(spec.to_levels(x.cpu())) if spec.is_image else x.cpu().float()


def mode_centres(dataset) -> torch.Tensor | None:
    """(K, D) mode centres of point data, from its optional `modes` attribute (8gaussians)."""
    modes = getattr(dataset, "modes", None)
    if modes is None or dataset.spec.is_image:
        return None
    modes = modes() if callable(modes) else modes
    return torch.as_tensor(modes, dtype=torch.float64)
