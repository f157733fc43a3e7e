"""FID / KID / precision-recall, computed by torch-fidelity (never re-implemented here).

Two entry points, one per kind of feature:
- `feature_metrics(fake, real, ...)`: features already in hand (raw 2-D coordinates, or features a
  test extracted itself) -> torch-fidelity's pure feature -> statistics -> metric functions.
- `image_metrics(fake_u8, real_u8, extractor, ...)`: uint8 images ->
  `torch_fidelity.calculate_metrics` with the extractor named explicitly for every metric,
  real-image features cached on disk under a content-addressed name (`input2_cache_name`), no
  downloads, no DataLoader worker processes.

Conventions: features are (N, F) tensors; images are (N, 3 or C, H, W) uint8 on 0..255; input1 /
features_1 is GENERATED, input2 / features_2 is REAL (torch-fidelity's precision/recall convention).
FID and KID are in squared feature units; precision and recall are fractions in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch_fidelity
from torch_fidelity import metric_fid, metric_kid, metric_prc

KID_DEFAULT_SUBSETS = 100  # torch-fidelity's default number of KID subsets


def fd_statistics(features: torch.Tensor) -> dict[str, np.ndarray]:
    """(N, F) features -> {"mu": (F,), "sigma": (F, F)} in float64 (FD: a difference of traces)."""
    return metric_fid.fid_features_to_statistics(features.detach().cpu().double())


def frechet_distance(stats_fake: dict[str, np.ndarray], stats_real: dict[str, np.ndarray]) -> float:
    """||mu1 - mu2||² + tr(S1 + S2 - 2 (S1 S2)^½), in squared feature units."""
    return metric_fid.fid_statistics_to_metric(stats_fake, stats_real, verbose=False)[metric_fid.KEY_METRIC_FID]


def clamp_kid_subset(subset_size: int, n_fake: int, n_real: int) -> int:
    """KID draws subsets without replacement, so the subset cannot exceed either sample count."""
    return max(2, min(subset_size, n_fake, n_real))


def kid(
    features_fake: torch.Tensor,
    features_real: torch.Tensor,
    *,
    subset_size: int,
    subsets: int = KID_DEFAULT_SUBSETS,
    seed: int = 0,
) -> tuple[float, float]:
    """(mean, std) over `subsets` random subsets of the unbiased MMD², cubic polynomial kernel."""
    out = metric_kid.kid_features_to_metric(
        features_fake.detach().cpu().double(),
        features_real.detach().cpu().double(),
        kid_subsets=subsets,
        kid_subset_size=clamp_kid_subset(subset_size, len(features_fake), len(features_real)),
        rng_seed=seed,
        verbose=False,
    )
    return out[metric_kid.KEY_METRIC_KID_MEAN], out[metric_kid.KEY_METRIC_KID_STD]


def precision_recall(
    features_fake: torch.Tensor, features_real: torch.Tensor, *, neighborhood: int
) -> tuple[float, float]:
    """Improved precision/recall (Kynkäänniemi et al. 2019) on k-NN balls, k = `neighborhood`."""
    out = metric_prc.prc_features_to_metric(
        features_fake.detach().cpu().float(),
        features_real.detach().cpu().float(),
        prc_neighborhood=neighborhood,
        prc_batch_size=10000,
        save_cpu_ram=True,
        verbose=False,
    )
    return out[metric_prc.KEY_METRIC_PRECISION], out[metric_prc.KEY_METRIC_RECALL]


def feature_metrics(
    features_fake: torch.Tensor,
    features_real: torch.Tensor,
    *,
    kid_subset_size: int,
    kid_subsets: int,
    prc_neighborhood: int,
    seed: int,
) -> dict[str, float]:
    """All four sample-quality columns from two feature sets (N_fake, F) and (N_real, F)."""
    kid_mean, kid_std = kid(features_fake, features_real, subset_size=kid_subset_size, subsets=kid_subsets, seed=seed)
    precision, recall = precision_recall(features_fake, features_real, neighborhood=prc_neighborhood)
    return {
        "fid": frechet_distance(fd_statistics(features_fake), fd_statistics(features_real)),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
    }


class Uint8Images(torch.utils.data.Dataset):
    """Fixed uint8 (C, H, W) images as torch-fidelity reads them (a tensor, not a tuple)."""

    def __init__(self, images: torch.Tensor):
        assert images.dtype == torch.uint8 and images.dim() == 4, (images.dtype, images.shape)
        self.images = images.cpu()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


@dataclass(frozen=True)
class FidelityExtractor:
    """A feature extractor registered with torch-fidelity, and how to call it."""

    name: str  # name in torch-fidelity's FEATURE_EXTRACTORS_REGISTRY
    layer: str  # feature layer used for FID, KID and PRC alike
    weights_path: str  # local weights file (passed as feature_extractor_weights_path; never downloaded)
    weights_hash: str  # content hash of the weights: part of every cache name and of the result row
    rgb: bool  # the network needs 3 channels: 1-channel images are repeated


def image_metrics(
    fake: torch.Tensor,
    real: torch.Tensor,
    extractor: FidelityExtractor,
    *,
    cuda: bool,
    cache_root: Path,
    real_cache_name: str | None,
    kid_subset_size: int,
    kid_subsets: int,
    prc_neighborhood: int,
    seed: int,
    only_fid: bool = False,
    batch_size: int = 64,
) -> dict[str, float]:
    """FID/KID/PRC of uint8 images `fake` vs `real` through `torch_fidelity.calculate_metrics`.

    `real_cache_name` names the real images' cached features (None: no caching). The caller builds
    it from the data's content hash, because torch-fidelity keys its cache by this name only.
    """
    fake, real = _channels_for(extractor, fake), _channels_for(extractor, real)
    layer = extractor.layer
    out = torch_fidelity.calculate_metrics(
        input1=Uint8Images(fake),
        input2=Uint8Images(real),
        input2_cache_name=real_cache_name,
        cache=real_cache_name is not None,
        cache_root=str(cache_root),
        cuda=cuda,
        batch_size=batch_size,
        save_cpu_ram=True,
        verbose=False,
        rng_seed=seed,
        fid=True,
        kid=not only_fid,
        prc=not only_fid,
        feature_extractor=extractor.name,
        feature_extractor_weights_path=extractor.weights_path,
        feature_layer_fid=layer,
        feature_layer_kid=layer,
        feature_layer_prc=layer,
        kid_subsets=kid_subsets,
        kid_subset_size=clamp_kid_subset(kid_subset_size, len(fake), len(real)),
        prc_neighborhood=prc_neighborhood,
        datasets_download=False,
    )
    row = {"fid": out[torch_fidelity.KEY_METRIC_FID]}
    if not only_fid:
        row |= {
            "kid_mean": out[torch_fidelity.KEY_METRIC_KID_MEAN],
            "kid_std": out[torch_fidelity.KEY_METRIC_KID_STD],
            "precision": out[torch_fidelity.KEY_METRIC_PRECISION],
            "recall": out[torch_fidelity.KEY_METRIC_RECALL],
        }
    return row


def extract_features(images: torch.Tensor, extractor: FidelityExtractor, *, cuda: bool, batch_size: int = 64):
    """(N, F) float64 features of uint8 images at the extractor's FID layer, through torch-fidelity.

    The same network and layer as FID/KID/PRC, for the metrics torch-fidelity does not compute
    (the classifier two-sample test, copy_fraction).
    """
    net = torch_fidelity.utils.create_feature_extractor(
        extractor.name,
        [extractor.layer],
        cuda=cuda,
        feature_extractor_weights_path=extractor.weights_path,
        verbose=False,
    )
    feats = torch_fidelity.utils.get_featuresdict_from_dataset(
        Uint8Images(_channels_for(extractor, images)), net, batch_size, cuda, True, False
    )
    return feats[extractor.layer].double().flatten(1)


def _channels_for(extractor: FidelityExtractor, images: torch.Tensor) -> torch.Tensor:
    return images.repeat(1, 3, 1, 1) if extractor.rgb and images.shape[1] == 1 else images


def to_uint8(x: torch.Tensor, spec) -> torch.Tensor:
    """Model-space images (N, C, H, W) -> uint8 on 0..255 (what torch-fidelity extractors expect).

    `spec.to_levels` gives the dataset's own integer levels (0..levels-1); they are stretched to
    0..255 so that 17-level digits and 256-level CIFAR-10 look alike to the extractor.
    """
    q = spec.to_levels(x.detach().cpu()).float()
    return torch.round(q * (255.0 / (spec.levels - 1))).clamp(0, 255).to(torch.uint8)
