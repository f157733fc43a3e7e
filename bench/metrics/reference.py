"""The real test data that samples are compared against, bound to one feature extractor.

`Reference.build` fixes the protocol once per evaluation: which n_real test examples (a fixed
permutation, the same for every trial), how they are quantised (exactly like samples: through
`spec.to_levels`), which extractor, and the content-addressed cache name of their features
(dataset, n_real, hash of the uint8 bytes, extractor name + weights hash). Then `quality(samples)`
gives every sample-quality column and `fid(samples)` the FID alone (DDPM steps curve).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.metrics import fidelity, quality
from bench.metrics.cache import safe_name, tensor_hash
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
)


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

    @classmethod
    def build(cls, dataset, cfg, *, cache_dir: Path, device: torch.device, seed: int) -> Reference:
        spec, test = dataset.spec, dataset.test()
        n_real = min(cfg.n_real, len(test))
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
        return row

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
